// SPDX-License-Identifier: GPL-2.0
/*
 * oomloop: OOM one memory cgroup over and over and time each round.
 *
 * Each round forks a child which raises its oom_score_adj to 1000 and
 * allocates --mb MiB, more than its cgroup's memory.max, so that the memcg
 * OOM killer kills it; the parent (give it oom_score_adj -1000) waits and
 * reports how long the round took. A memcg OOM takes oom_lock like a global
 * one: while another OOM domain holds it (e.g. reaping a big victim under
 * it), these rounds wait, and their longest round shows it.
 *
 *   oomloop --mb N [--rounds N] [--seconds N] [--chunk-mb N] [--pause-ms N]
 *
 * --mb N        memory each child allocates (required; more than memory.max)
 * --rounds N    stop after N rounds (default 0: no limit)
 * --seconds N   stop after N seconds (default 0: no limit)
 * --chunk-mb N  mmap granularity (default 1)
 * --pause-ms N  sleep between rounds (default 50)
 *
 * Marker per round (/dev/kmsg, parsed by the harness):
 *   "mark oom_round ms=M killed=0|1 round=N"
 * Exit status 0 once the rounds or seconds are done.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "stressor.h"

static const char usage[] =
	"--mb N [--rounds N] [--seconds N] [--chunk-mb N] [--pause-ms N]";

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	long mb = -1, rounds = 0, seconds = 0, chunk_mb = 1, pause_ms = 50;
	const struct opt opts[] = {
		{ "--mb", OPT_MB, &mb, 1, LONG_MAX },
		{ "--rounds", OPT_LONG, &rounds, 0, LONG_MAX },
		{ "--seconds", OPT_LONG, &seconds, 0, 1L << 30 },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--pause-ms", OPT_LONG, &pause_ms, 0, 60000 },
		{ NULL }
	};
	long page = sysconf(_SC_PAGESIZE);
	double start;

	parse_opts(argc, argv, opts, usage);
	if (mb < 0)
		die_usage(argv[0], usage);
	start = now_ms();
	for (long r = 1; !rounds || r <= rounds; r++) {
		double t0 = now_ms();
		int status;
		pid_t pid;

		if (seconds && t0 - start >= seconds * 1e3)
			break;
		pid = fork();
		if (pid < 0) {
			perror("oomloop: fork");
			return 1;
		}
		if (pid == 0) {
			set_oom_score_adj("/proc/self/oom_score_adj", 1000);
			for (long done = 0; done < mb; done += chunk_mb)
				map_touch_retry((size_t)chunk_mb << 20, page);
			_exit(0);
		}
		if (waitpid(pid, &status, 0) < 0) {
			perror("oomloop: waitpid");
			return 1;
		}
		kmsg("mark oom_round ms=%.1f killed=%d round=%ld\n", now_ms() - t0,
		     WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, r);
		if (pause_ms) {
			struct timespec ts = { pause_ms / 1000,
					       (pause_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	printf("oomloop done\n");
	return 0;
}
