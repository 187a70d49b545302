// SPDX-License-Identifier: GPL-2.0
/*
 * memhog: allocate and touch anonymous memory until told to stop or killed.
 *
 * It is the plainest way to drive a guest into the OOM killer: private
 * anonymous pages that can only be freed by the task exiting or by the OOM
 * reaper. Every page is written, so the memory is really committed.
 *
 *   memhog [--mb N] [--chunk-mb N] [--rate-mb-s N] [--forks N] [--hold]
 *
 * --mb N        stop allocating after N MiB (0, the default: never stop)
 * --chunk-mb N  mmap granularity (default 4)
 * --rate-mb-s N throttle to about N MiB/s (default 0: as fast as possible)
 * --forks N     run N copies in child processes (default 0: just this one);
 *               the parent waits and reports how each child ended
 * --hold        after reaching --mb, sleep until killed instead of exiting
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "stressor.h"

static const char usage[] =
	"[--mb N] [--chunk-mb N] [--rate-mb-s N] [--forks N] [--hold]";

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int hog(long total_mb, long chunk_mb, long rate, int hold)
{
	long page = sysconf(_SC_PAGESIZE);
	long done = 0;
	double start = now_s();

	kmsg("memhog %d start mb=%ld\n", getpid(), total_mb);
	while (total_mb == 0 || done < total_mb) {
		map_touch_retry((size_t)chunk_mb << 20, page);
		done += chunk_mb;
		if (rate > 0) {
			double ahead = (double)done / rate - (now_s() - start);

			if (ahead > 0)
				sleep_ms((long)(ahead * 1000));
		}
	}
	kmsg("memhog %d reached %ld MiB\n", getpid(), done);
	while (hold)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	long total_mb = 0, chunk_mb = 4, rate = 0, forks = 0, hold = 0;
	const struct opt opts[] = {
		{ "--mb", OPT_MB, &total_mb, 0, LONG_MAX },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--rate-mb-s", OPT_MB, &rate, 0, LONG_MAX },
		{ "--forks", OPT_MB, &forks, 0, LONG_MAX },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ NULL }
	};

	parse_opts(argc, argv, opts, usage);
	if (forks == 0)
		return hog(total_mb, chunk_mb, rate, hold);

	for (long i = 0; i < forks; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("memhog: fork");
			return 1;
		}
		if (pid == 0)
			_exit(hog(total_mb, chunk_mb, rate, hold));
	}
	/* Report each child's end on stdout: the host counts SIGKILLs. */
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0)
			break;
		if (WIFSIGNALED(status))
			printf("child %d killed by signal %d\n", pid, WTERMSIG(status));
		else
			printf("child %d exited %d\n", pid, WEXITSTATUS(status));
		fflush(stdout);
	}
	return 0;
}
