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

#include "stressor.h"

static const char usage[] =
	"[--threads N] [--mb N] [--chunk-mb N] [--hold | --spin] [--oom-score-adj N]";

static long share_mb, chunk_mb = 1;
static long hold;
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
	for (; !nchunks || n < nchunks; n++) {
		char *p = map_touch_retry(len, page);

		if (n < (long)(sizeof(chunks) / sizeof(chunks[0])))
			chunks[n] = p;
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
			touch_pages(chunks[c], len, page, (char)gen);
	return NULL;
}

int main(int argc, char **argv)
{
	long threads = 8, mb = 0, adj = OPT_UNSET;
	const struct opt opts[] = {
		{ "--threads", OPT_MB, &threads, 1, 4096 },
		{ "--mb", OPT_MB, &mb, 0, LONG_MAX },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ "--spin", OPT_FLAG, &hold, 0 },
		{ "--oom-score-adj", OPT_LONG, &adj, -1000, 1000 },
		{ NULL }
	};
	pthread_attr_t attr;

	page = sysconf(_SC_PAGESIZE);
	parse_opts(argc, argv, opts, usage);
	if (adj != OPT_UNSET &&
	    set_oom_score_adj("/proc/self/oom_score_adj", adj)) {
		perror("threadhog: oom_score_adj");
		return 1;
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
