// SPDX-License-Identifier: GPL-2.0
/*
 * timedwrite: write a value to a file and report how long the write took.
 *
 * Made for /sys/power/state: with /sys/power/pm_test set to "freezer", a
 * write of "freeze" freezes every task and disables the OOM killer
 * (oom_killer_disable(), which waits for every OOM victim to exit), waits
 * the test delay and thaws again. The write's duration is the time to
 * freeze, and its error is how the freeze failed (EBUSY: tasks refused
 * to freeze or OOM victims did not go away in time).
 *
 *   timedwrite [--oom-score-adj N] FILE VALUE
 *
 * --oom-score-adj N  write N to /proc/self/oom_score_adj first
 *
 * Marker (/dev/kmsg, parsed by the harness) and stdout:
 *   "mark timed_write ms=M errno=E path=FILE"   (errno 0: success)
 * Exit status 0 when the write succeeded, 1 when it failed.
 */
#include <time.h>

#include "stressor.h"

static const char usage[] = "[--oom-score-adj N] FILE VALUE";

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	long adj = OPT_UNSET;
	const struct opt opts[] = {
		{ "--oom-score-adj", OPT_LONG, &adj, -1000, 1000 },
		{ NULL }
	};
	const char *path, *val;
	double t0, ms;
	int fd, err = 0;
	ssize_t n;

	/*
	 * FILE VALUE are the last two arguments, options come before. When
	 * the tail does not look like FILE VALUE, parse_opts sees everything
	 * (--help, an unknown option, a missing value) and, if it all parses,
	 * the usage is printed.
	 */
	if (argc < 3 || argv[argc - 1][0] == '-' || argv[argc - 2][0] == '-') {
		parse_opts(argc, argv, opts, usage);
		die_usage(argv[0], usage);
	}
	path = argv[argc - 2];
	val = argv[argc - 1];
	parse_opts(argc - 2, argv, opts, usage);
	if (adj != OPT_UNSET &&
	    set_oom_score_adj("/proc/self/oom_score_adj", adj)) {
		perror("timedwrite: oom_score_adj");
		return 1;
	}

	t0 = now_ms();
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
	} else {
		n = write(fd, val, strlen(val));
		if (n < 0)
			err = errno;
		close(fd);
	}
	ms = now_ms() - t0;
	kmsg("mark timed_write ms=%.1f errno=%d path=%s\n", ms, err, path);
	printf("timedwrite %s %s: %.1f ms, %s\n", path, val, ms,
	       err ? strerror(err) : "ok");
	return err ? 1 : 0;
}
