// SPDX-License-Identifier: GPL-2.0
/*
 * threadhog: one process, N threads, all of them touching memory.
 *
 * The OOM killer kills the whole thread group, but before the series only
 * one thread is marked as the OOM victim (TIF_MEMDIE) and thawed when the
 * group sits in a cgroup v1 freezer or the PM freezer; the others stay
 * frozen. Every thread allocates its share of --mb, then keeps rewriting it
 * (--spin, default) or sleeps (--hold).
 *
 *   threadhog [--threads N] [--mb N] [--chunk-mb N] [--hold | --spin]
 *             [--oom-score-adj N]
 *
 * --threads N        worker threads, 1..4096 (default 8); the main thread
 *                    only waits and reports
 * --mb N             total memory over all workers, split evenly
 *                    (default 0: every worker allocates until killed)
 * --chunk-mb N       mmap granularity (default 1)
 * --hold             sleep once the share is allocated
 * --spin             keep rewriting the share once allocated (default)
 * --oom-score-adj N  write N to /proc/self/oom_score_adj first
 *
 * Markers (/dev/kmsg): "threadhog <pid> start threads=N mb=M",
 * "threadhog <pid> ready threads=N mb=M" once every thread holds its share.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "stressor.h"

static const char usage[] =
	"[--threads N] [--mb N] [--chunk-mb N] [--hold | --spin] [--oom-score-adj N]";

static long share_mb, chunk_mb = 1;
static int hold;
static long page;
static volatile long ready_threads;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *hog(void *arg)
{
	size_t len = (size_t)chunk_mb << 20;
	long nchunks = share_mb ? (share_mb + chunk_mb - 1) / chunk_mb : 0;
	char *chunks[4096];
	long n = 0;

	(void)arg;
	for (;;) {
		char *p;

		if (nchunks && n >= nchunks)
			break;
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			usleep(10000);
			continue;
		}
		for (size_t off = 0; off < len; off += page)
			p[off] = 1;
		if (n < (long)(sizeof(chunks) / sizeof(chunks[0])))
			chunks[n] = p;
		n++;
	}
	pthread_mutex_lock(&lock);
	ready_threads++;
	pthread_mutex_unlock(&lock);
	if (hold) {
		for (;;)
			pause();
	}
	if (n > (long)(sizeof(chunks) / sizeof(chunks[0])))
		n = sizeof(chunks) / sizeof(chunks[0]);
	for (unsigned long gen = 2;; gen++)
		for (long c = 0; c < n; c++)
			for (size_t off = 0; off < len; off += page)
				chunks[c][off] = (char)gen;
	return NULL;
}

int main(int argc, char **argv)
{
	long threads = 8, mb = 0, adj = 0;
	int have_adj = 0;
	pthread_attr_t attr;

	page = sysconf(_SC_PAGESIZE);
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
		if (!v)
			die_usage(argv[0], usage);
		if (!strcmp(a, "--threads")) {
			threads = parse_mb(v);
		} else if (!strcmp(a, "--mb")) {
			mb = parse_mb(v);
		} else if (!strcmp(a, "--chunk-mb")) {
			chunk_mb = parse_mb(v);
		} else if (!strcmp(a, "--oom-score-adj")) {
			char *end;

			adj = strtol(v, &end, 10);
			if (*end || adj < -1000 || adj > 1000)
				die_usage(argv[0], usage);
			have_adj = 1;
		} else {
			die_usage(argv[0], usage);
		}
		i++;
	}
	if (threads < 1 || threads > 4096 || mb < 0 || chunk_mb <= 0)
		die_usage(argv[0], usage);

	if (have_adj) {
		char buf[16];
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

		snprintf(buf, sizeof(buf), "%ld", adj);
		if (fd < 0 || write(fd, buf, strlen(buf)) < 0) {
			perror("threadhog: oom_score_adj");
			return 1;
		}
		close(fd);
	}

	share_mb = mb ? (mb + threads - 1) / threads : 0;
	if (mb && share_mb < chunk_mb)
		share_mb = chunk_mb;
	kmsg("threadhog %d start threads=%ld mb=%ld\n", getpid(), threads, mb);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (long t = 0; t < threads; t++) {
		pthread_t th;
		int err = pthread_create(&th, &attr, hog, NULL);

		if (err) {
			fprintf(stderr, "threadhog: pthread_create: %s\n",
				strerror(err));
			return 1;
		}
	}
	if (mb) {
		while (ready_threads < threads)
			usleep(10000);
		kmsg("threadhog %d ready threads=%ld mb=%ld\n", getpid(),
		     threads, mb);
		printf("threadhog %d ready threads=%ld mb=%ld\n", getpid(),
		       threads, mb);
		fflush(stdout);
	}
	for (;;)
		pause();
	return 0;
}
