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
 *   idlevictim --mb N [--shmem-mb N] [--cpu N] [--chunk-mb N]
 *              [--oom-score-adj N] [--hold | --spin] [--nice-only]
 *
 * --mb N             memory to allocate and touch (required)
 * --shmem-mb N       of which this much is shared anonymous memory
 *                    (MAP_SHARED | MAP_ANONYMOUS: shmem, which the OOM
 *                    reaper cannot free; only the victim's exit does)
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
#include <sys/resource.h>

#include "stressor.h"

static const char usage[] =
	"--mb N [--shmem-mb N] [--cpu N] [--chunk-mb N] [--oom-score-adj N] [--hold | --spin] [--nice-only]";

int main(int argc, char **argv)
{
	long mb = -1, shmem_mb = 0, cpu = -1, chunk_mb = 4, adj = OPT_UNSET;
	long hold = 0, nice_only = 0;
	const struct opt opts[] = {
		{ "--mb", OPT_MB, &mb, 1, LONG_MAX },
		{ "--shmem-mb", OPT_MB, &shmem_mb, 0, LONG_MAX },
		{ "--cpu", OPT_LONG, &cpu, 0, CPU_SETSIZE - 1 },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--oom-score-adj", OPT_LONG, &adj, -1000, 1000 },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ "--spin", OPT_FLAG, &hold, 0 },
		{ "--nice-only", OPT_FLAG, &nice_only, 1 },
		{ NULL }
	};
	long page = sysconf(_SC_PAGESIZE);
	size_t len;
	char **chunks;
	long nchunks, done = 0;

	parse_opts(argc, argv, opts, usage);
	if (mb < 0) /* --mb is required */
		die_usage(argv[0], usage);
	if (shmem_mb > mb) {
		fprintf(stderr, "idlevictim: --shmem-mb %ld is more than --mb %ld\n",
			shmem_mb, mb);
		return 2;
	}

	if (adj != OPT_UNSET &&
	    set_oom_score_adj("/proc/self/oom_score_adj", adj)) {
		perror("idlevictim: oom_score_adj");
		return 1;
	}

	len = (size_t)chunk_mb << 20;
	nchunks = (mb + chunk_mb - 1) / chunk_mb;
	chunks = calloc(nchunks, sizeof(*chunks));
	if (!chunks)
		return 1;

	kmsg("idlevictim %d start mb=%ld shmem_mb=%ld\n", getpid(), mb, shmem_mb);
	for (long c = 0; c < nchunks; c++) {
		if (done < shmem_mb)
			chunks[c] = map_touch_shared(len, page);
		else
			chunks[c] = map_touch(len, page);
		if (!chunks[c]) {
			perror("idlevictim: mmap");
			return 1;
		}
		done += chunk_mb;
	}

	if (nice_only && setpriority(PRIO_PROCESS, 0, 19))
		perror("idlevictim: setpriority");
	if (starve_self("idlevictim", !nice_only, cpu))
		return 1;

	kmsg("idlevictim %d ready mb=%ld cpu=%ld policy=%s\n", getpid(), done,
	     cpu, nice_only ? "nice19" : "idle");
	printf("idlevictim %d ready mb=%ld cpu=%ld policy=%s\n", getpid(), done,
	       cpu, nice_only ? "nice19" : "idle");
	fflush(stdout);

	if (hold) {
		for (;;)
			pause();
	}
	for (unsigned long gen = 2;; gen++)
		for (long c = 0; c < nchunks; c++)
			touch_pages(chunks[c], len, page, (char)gen);
	return 0;
}
