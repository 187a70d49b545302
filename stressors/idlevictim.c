// SPDX-License-Identifier: GPL-2.0
/*
 * idlevictim: the OOM victim that cannot get CPU to exit.
 *
 * It first allocates and touches --mb MiB of private anonymous memory (at
 * normal priority, on any CPU), then makes itself SCHED_IDLE, optionally
 * pins itself to --cpu, and then either sleeps (--hold) or keeps rewriting
 * its memory (--spin, the default) so that it is always runnable. Put a
 * SCHED_FIFO hog (rthog) on the same CPU and make it the biggest task (or
 * give it --oom-score-adj 1000): once OOM-killed it can only release its
 * memory when it gets CPU time, or when someone reaps its address space.
 *
 *   idlevictim --mb N [--cpu N] [--chunk-mb N] [--oom-score-adj N]
 *              [--hold | --spin] [--nice-only]
 *
 * --mb N             memory to allocate and touch (required)
 * --cpu N            pin to this CPU after allocating (default: no pinning)
 * --chunk-mb N       mmap granularity (default 4)
 * --oom-score-adj N  write N to /proc/self/oom_score_adj first
 * --hold             sleep once ready (woken only by the kill)
 * --spin             keep rewriting the memory once ready (default)
 * --nice-only        use nice 19 instead of SCHED_IDLE
 *
 * Markers (/dev/kmsg): "idlevictim <pid> start mb=N",
 * "idlevictim <pid> ready mb=N cpu=C policy=idle" (also on stdout).
 */
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "stressor.h"

static const char usage[] =
	"--mb N [--cpu N] [--chunk-mb N] [--oom-score-adj N] [--hold | --spin] [--nice-only]";

static long parse_long(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "idlevictim: bad value for %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long mb = -1, cpu = -1, chunk_mb = 4, adj = 0;
	int have_adj = 0, hold = 0, nice_only = 0;
	long page = sysconf(_SC_PAGESIZE);
	char **chunks;
	long nchunks, done = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: %s %s\n", argv[0], usage);
			return 0;
		}
		if (!strcmp(a, "--hold")) {
			hold = 1;
			continue;
		}
		if (!strcmp(a, "--spin")) {
			hold = 0;
			continue;
		}
		if (!strcmp(a, "--nice-only")) {
			nice_only = 1;
			continue;
		}
		if (!v)
			die_usage(argv[0], usage);
		if (!strcmp(a, "--mb")) {
			mb = parse_mb(v);
		} else if (!strcmp(a, "--cpu")) {
			cpu = parse_long(v, 0, CPU_SETSIZE - 1, a);
		} else if (!strcmp(a, "--chunk-mb")) {
			chunk_mb = parse_mb(v);
		} else if (!strcmp(a, "--oom-score-adj")) {
			adj = parse_long(v, -1000, 1000, a);
			have_adj = 1;
		} else {
			die_usage(argv[0], usage);
		}
		i++;
	}
	if (mb <= 0 || chunk_mb <= 0)
		die_usage(argv[0], usage);

	if (have_adj) {
		char buf[16];
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

		snprintf(buf, sizeof(buf), "%ld", adj);
		if (fd < 0 || write(fd, buf, strlen(buf)) < 0) {
			perror("idlevictim: oom_score_adj");
			return 1;
		}
		close(fd);
	}

	nchunks = (mb + chunk_mb - 1) / chunk_mb;
	chunks = calloc(nchunks, sizeof(*chunks));
	if (!chunks)
		return 1;

	kmsg("idlevictim %d start mb=%ld\n", getpid(), mb);
	for (long c = 0; c < nchunks; c++) {
		size_t len = (size_t)chunk_mb << 20;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("idlevictim: mmap");
			return 1;
		}
		for (size_t off = 0; off < len; off += page)
			p[off] = 1;
		chunks[c] = p;
		done += chunk_mb;
	}

	if (nice_only) {
		if (setpriority(PRIO_PROCESS, 0, 19))
			perror("idlevictim: setpriority");
	} else {
		struct sched_param sp = { .sched_priority = 0 };

		if (sched_setscheduler(0, SCHED_IDLE, &sp)) {
			perror("idlevictim: sched_setscheduler SCHED_IDLE");
			return 1;
		}
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("idlevictim: sched_setaffinity");
			return 1;
		}
	}

	kmsg("idlevictim %d ready mb=%ld cpu=%ld policy=%s\n", getpid(), done,
	     cpu, nice_only ? "nice19" : "idle");
	printf("idlevictim %d ready mb=%ld cpu=%ld policy=%s\n", getpid(), done,
	       cpu, nice_only ? "nice19" : "idle");
	fflush(stdout);

	if (hold) {
		for (;;)
			pause();
	}
	for (unsigned long gen = 2;; gen++) {
		for (long c = 0; c < nchunks; c++) {
			size_t len = (size_t)chunk_mb << 20;

			for (size_t off = 0; off < len; off += page)
				chunks[c][off] = (char)gen;
		}
	}
	return 0;
}
