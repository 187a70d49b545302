// SPDX-License-Identifier: GPL-2.0
/*
 * rthog: a SCHED_FIFO busy loop pinned to one CPU.
 *
 * It never sleeps and never yields, so on its CPU nothing of a lower class
 * runs except what the kernel forces in: RT throttling (disable it with
 * kernel.sched_rt_runtime_us=-1, see --unthrottle) and, since 6.12, the fair
 * deadline server which still gives CFS tasks (SCHED_IDLE included) 50 ms
 * per second (disable it with --fair-server-runtime 0).
 *
 *   rthog [--cpu N] [--hogs K] [--prio P] [--seconds S] [--unthrottle]
 *         [--fair-server-runtime NS]
 *
 * --cpu N                  CPU to pin to (default 0)
 * --hogs K                 hog K CPUs: N, N-1, ... (wrapping around the
 *                          online CPUs), one process each; the extra ones
 *                          are children that die with this process
 *                          (default 1)
 * --prio P                 SCHED_FIFO priority 1..99 (default 50)
 * --seconds S              stop after S seconds (default 0: run until killed)
 * --unthrottle             write -1 to /proc/sys/kernel/sched_rt_runtime_us
 * --fair-server-runtime NS write NS to
 *                          /sys/kernel/debug/sched/fair_server/cpuN/runtime
 *                          for the hogged CPU before starting (0 starves CFS)
 *
 * On a kernel without a fair server (before 6.12: the scheduler's debugfs
 * directory has no fair_server) --fair-server-runtime 0 holds as it is and
 * is only noted; any other runtime fails.
 *
 * Both writes are skipped when the file already holds the value: rewriting
 * either resets the deadline servers and lets CFS tasks queued on the
 * hogged CPU run once more. Set them before starting the victim.
 *
 * Markers (/dev/kmsg): "rthog <pid> start cpu=N prio=P",
 * "rthog <pid> stop spins=N".
 */
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include "stressor.h"

static const char usage[] =
	"[--cpu N] [--hogs K] [--prio P] [--seconds S] [--unthrottle] [--fair-server-runtime NS]";

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "rthog: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = write(fd, val, strlen(val));
	if (n < 0)
		fprintf(stderr, "rthog: write %s to %s: %s\n", val, path,
			strerror(errno));
	close(fd);
	return n < 0 ? -1 : 0;
}

/*
 * Write val to path unless it already holds it: rewriting either
 * sched_rt_runtime_us or a fair_server runtime resets the deadline servers
 * and lets CFS tasks queued on the hogged CPU run once more.
 */
static int write_if_changed(const char *path, const char *val)
{
	char cur[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, cur, sizeof(cur) - 1);

		cur[n > 0 ? n : 0] = 0;
		close(fd);
		if (cur[0] && strtol(cur, NULL, 10) == strtol(val, NULL, 10))
			return 0;
	}
	return write_str(path, val);
}

/*
 * A kernel without the fair deadline server (before 6.12) has the
 * scheduler's debugfs directory but no fair_server in it. Without the
 * directory (debugfs not mounted, no SCHED_DEBUG) nothing can be told:
 * the write is tried and fails as it should.
 */
static int no_fair_server(void)
{
	return access("/sys/kernel/debug/sched", F_OK) == 0 &&
	       access("/sys/kernel/debug/sched/fair_server", F_OK) != 0 &&
	       errno == ENOENT;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long cpu = 0, prio = 50, seconds = 0, fair_runtime = -1, unthrottle = 0;
	long hogs = 1, ncpus;
	const struct opt opts[] = {
		{ "--cpu", OPT_LONG, &cpu, 0, CPU_SETSIZE - 1 },
		{ "--hogs", OPT_LONG, &hogs, 1, CPU_SETSIZE },
		{ "--prio", OPT_LONG, &prio, 1, 99 },
		{ "--seconds", OPT_LONG, &seconds, 0, 1L << 30 },
		{ "--unthrottle", OPT_FLAG, &unthrottle, 1 },
		{ "--fair-server-runtime", OPT_LONG, &fair_runtime, 0, 1000000000L },
		{ NULL }
	};
	struct sched_param sp;
	cpu_set_t set;
	unsigned long long spins = 0;
	volatile unsigned long sink = 0;
	double end;

	parse_opts(argc, argv, opts, usage);
	if (unthrottle &&
	    write_if_changed("/proc/sys/kernel/sched_rt_runtime_us", "-1"))
		return 1;
	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (hogs > ncpus) {
		fprintf(stderr, "rthog: --hogs %ld but %ld CPUs online\n", hogs,
			ncpus);
		return 1;
	}
	/* One child per extra CPU, each pinned below like this process. */
	for (long i = 1; i < hogs; i++) {
		pid_t parent = getpid(), pid = fork();

		if (pid < 0) {
			perror("rthog: fork");
			return 1;
		}
		if (pid == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
				_exit(1);
			cpu -= i;
			if (cpu < 0) /* wrap; a CPU too high stays so: fails */
				cpu += ncpus;
			break;
		}
	}
	if (fair_runtime >= 0 && no_fair_server()) {
		/*
		 * Before 6.12 nothing but RT throttling gives CFS time beside
		 * an RT hog: a request for runtime 0 is met as it stands.
		 */
		if (fair_runtime > 0) {
			fprintf(stderr, "rthog: --fair-server-runtime %ld: this kernel has no fair server (/sys/kernel/debug/sched/fair_server)\n",
				fair_runtime);
			return 1;
		}
		kmsg("rthog %d cpu=%ld: no fair server in this kernel: RT throttling alone decides\n",
		     getpid(), cpu);
	} else if (fair_runtime >= 0) {
		char path[96], val[32];

		snprintf(path, sizeof(path),
			 "/sys/kernel/debug/sched/fair_server/cpu%ld/runtime", cpu);
		snprintf(val, sizeof(val), "%ld", fair_runtime);
		if (write_if_changed(path, val))
			return 1;
	}

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "rthog: sched_setaffinity cpu %ld: %s\n", cpu,
			strerror(errno));
		return 1;
	}
	memset(&sp, 0, sizeof(sp));
	sp.sched_priority = prio;
	if (sched_setscheduler(0, SCHED_FIFO, &sp)) {
		fprintf(stderr, "rthog: sched_setscheduler FIFO %ld: %s\n", prio,
			strerror(errno));
		return 1;
	}

	kmsg("rthog %d start cpu=%ld prio=%ld\n", getpid(), cpu, prio);
	printf("rthog %d start cpu=%ld prio=%ld\n", getpid(), cpu, prio);
	fflush(stdout);

	end = seconds ? now_s() + seconds : 0;
	for (;;) {
		for (int j = 0; j < 1000000; j++)
			sink += j;
		spins++;
		if (end && now_s() >= end)
			break;
	}
	kmsg("rthog %d stop spins=%llu\n", getpid(), spins);
	return 0;
}
