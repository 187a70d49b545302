/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the oomlab stressors. They run inside a guest
 * with no libc beyond the static one linked in, and they must keep working
 * while the machine is out of memory: no allocation here, no stdio buffering
 * for the markers.
 */
#ifndef OOMLAB_STRESSOR_H
#define OOMLAB_STRESSOR_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/*
 * kmsg() writes one marker line to /dev/kmsg so that the stressor's own
 * events share the kernel's timestamps in the console log. Failures are
 * ignored: a marker is a convenience, never a reason to stop.
 */
static inline void kmsg(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int fd, n;

	n = snprintf(buf, sizeof(buf), "oomlab: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, buf, n) < 0) {
		/* nothing useful to do */
	}
	close(fd);
}

/*
 * Command-line options. Each program describes its options in a table ended
 * by { NULL } and calls parse_opts() first thing in main():
 *
 *   OPT_FLAG  takes no value and stores min in *val (so --hold and --spin
 *             can both write one variable)
 *   OPT_LONG  a decimal integer in [min, max]
 *   OPT_MB    the same with an optional unit: "512" and "512m" are 512,
 *             "1g" is 1024 (MiB sizes; also accepted by some counts)
 *
 * --help and -h print "usage: PROG USAGE" to stdout and exit 0. An unknown
 * option or a missing value prints what is wrong and the usage line to
 * stderr; a value that is not an integer in [min, max] prints
 * "PROG: bad value for --name: VALUE (want MIN..MAX)", or "(want >= MIN)"
 * when max is LONG_MAX. Both exit 2. A
 * default of OPT_UNSET, which no option accepts, tells "not given".
 * parse_opts runs at start-up, before memory is tight: stdio is fine here.
 */
#define OPT_UNSET LONG_MIN

enum opt_type { OPT_FLAG, OPT_LONG, OPT_MB };

struct opt {
	const char *name;
	enum opt_type type;
	long *val;
	long min, max;
};

static inline void die_usage(const char *prog, const char *usage)
{
	fprintf(stderr, "usage: %s %s\n", prog, usage);
	exit(2);
}

/* opt_number parses s as a decimal integer, with a unit if mb; -1 on error. */
static inline int opt_number(const char *s, int mb, long *v)
{
	char *end;
	long mul = 1;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (mb && (*end == 'g' || *end == 'G')) {
		mul = 1024;
		end++;
	} else if (mb && (*end == 'm' || *end == 'M')) {
		end++;
	}
	if (*end || *v > LONG_MAX / mul || *v < LONG_MIN / mul)
		return -1;
	*v *= mul;
	return 0;
}

static inline void parse_opts(int argc, char **argv, const struct opt *opts,
			      const char *usage)
{
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1
						 : argv[0];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt *o = opts;
		long v;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: %s %s\n", argv[0], usage);
			exit(0);
		}
		while (o->name && strcmp(o->name, a))
			o++;
		if (!o->name) {
			fprintf(stderr, "%s: unknown option %s\n", prog, a);
			die_usage(argv[0], usage);
		}
		if (o->type == OPT_FLAG) {
			*o->val = o->min;
			continue;
		}
		if (++i == argc) {
			fprintf(stderr, "%s: missing value for %s\n", prog, a);
			die_usage(argv[0], usage);
		}
		if (opt_number(argv[i], o->type == OPT_MB, &v) ||
		    v < o->min || v > o->max) {
			if (o->max == LONG_MAX)
				fprintf(stderr, "%s: bad value for %s: %s (want >= %ld)\n",
					prog, a, argv[i], o->min);
			else
				fprintf(stderr, "%s: bad value for %s: %s (want %ld..%ld)\n",
					prog, a, argv[i], o->min, o->max);
			exit(2);
		}
		*o->val = v;
	}
}

/*
 * Memory. These use raw system calls only: the CLONE_VM children of clonevm
 * and the vforked child of vforker share the parent's libc state and call
 * them too.
 */

/* touch_pages writes v to the first byte of every page in [p, p + len). */
static inline void touch_pages(char *p, size_t len, long page, char v)
{
	for (size_t off = 0; off < len; off += page)
		p[off] = v;
}

/* Map len bytes of anonymous memory with these flags and write every page. */
static inline char *map_touch_flags(size_t len, long page, int flags)
{
	long p = syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE,
			 flags | MAP_ANONYMOUS, -1, 0);

	if (p < 0 && p > -4096)
		return NULL;
	touch_pages((char *)p, len, page, 1);
	return (char *)p;
}

/*
 * map_touch maps len bytes of private anonymous memory and writes every
 * page, so that the memory is really committed. NULL if the mmap fails.
 */
static inline char *map_touch(size_t len, long page)
{
	return map_touch_flags(len, page, MAP_PRIVATE);
}

/*
 * map_touch_shared is map_touch with MAP_SHARED | MAP_ANONYMOUS: shmem
 * pages, which the OOM reaper skips (only the last unmap frees them).
 */
static inline char *map_touch_shared(size_t len, long page)
{
	return map_touch_flags(len, page, MAP_SHARED);
}

/*
 * map_touch_retry is map_touch, retried every 10 ms until the mmap succeeds:
 * overcommit refused, keep pushing, the OOM killer is the point.
 */
static inline char *map_touch_retry(size_t len, long page)
{
	char *p;

	while (!(p = map_touch(len, page))) {
		struct timespec ts = { 0, 10000000L };

		syscall(SYS_nanosleep, &ts, NULL);
	}
	return p;
}

/*
 * set_oom_score_adj writes val to path (a /proc/PID/oom_score_adj file);
 * 0 or -1 with errno set.
 */
static inline int set_oom_score_adj(const char *path, long val)
{
	char buf[24], *s = buf + sizeof(buf);
	unsigned long u = val < 0 ? -(unsigned long)val : (unsigned long)val;
	long fd, n;

	do
		*--s = '0' + u % 10;
	while (u /= 10);
	if (val < 0)
		*--s = '-';
	fd = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = syscall(SYS_write, fd, s, buf + sizeof(buf) - s);
	syscall(SYS_close, fd);
	return n < 0 ? -1 : 0;
}

/*
 * Make the caller SCHED_IDLE and/or pin it to one CPU (cpu < 0: leave the
 * affinity alone), the way OOM victims starved by a real-time hog are set
 * up. Prints "<prog>: ..." and returns -1 on failure.
 */
static inline int starve_self(const char *prog, int idle, long cpu)
{
	if (idle) {
		struct sched_param sp = { .sched_priority = 0 };

		if (sched_setscheduler(0, SCHED_IDLE, &sp)) {
			fprintf(stderr, "%s: sched_setscheduler SCHED_IDLE: %s\n", prog, strerror(errno));
			return -1;
		}
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			fprintf(stderr, "%s: sched_setaffinity: %s\n", prog, strerror(errno));
			return -1;
		}
	}
	return 0;
}

#endif
