// SPDX-License-Identifier: GPL-2.0
/*
 * robustmutex: a PTHREAD_MUTEX_ROBUST | PTHREAD_PROCESS_SHARED mutex in a
 * MAP_SHARED file, an owner which dies holding it, and a waiter in another
 * process which must get EOWNERDEAD.
 *
 * When a thread exits holding a robust mutex, the kernel's exit path
 * (exit_robust_list(), from the thread's own context) walks the list whose
 * head glibc keeps in the thread's TLS (private anonymous memory), marks
 * each mutex FUTEX_OWNER_DIED and wakes one waiter. If the OOM reaper (or an
 * allocating task reaping directly) unmaps the victim's private memory
 * before that walk, the walk faults and stops: the waiter sleeps forever.
 * That is why OOM_REAPER_DELAY exists.
 *
 *   robustmutex --owner --file PATH [--mb N] [--chunk-mb N] [--cpu N]
 *               [--idle] [--hold | --spin] [--oom-score-adj N]
 *   robustmutex --waiter --file PATH [--timeout-s N] [--start-s N]
 *               [--oom-score-adj N]
 *
 * --owner           create PATH (a file on tmpfs: /dev/shm, /run),
 *                   initialise the mutex in it and lock it, then allocate
 *                   and touch --mb MiB of private anonymous memory, turn
 *                   SCHED_IDLE (--idle), pin to --cpu, and hold the mutex
 *                   until killed (rewriting the memory with --spin, the
 *                   default, or sleeping with --hold)
 * --waiter          wait (up to --start-s seconds, default 60) for an owner
 *                   to have locked the mutex in PATH, then block in
 *                   pthread_mutex_lock() on it (pthread_mutex_timedlock()
 *                   with --timeout-s N > 0)
 * --file PATH       the shared file (required)
 * --mb N            owner: private memory to allocate (default 0)
 * --chunk-mb N      owner: mmap granularity (default 4)
 * --cpu N           owner: pin here once allocated (default: no pinning)
 * --idle            owner: SCHED_IDLE once allocated
 * --oom-score-adj N write N to /proc/self/oom_score_adj first
 *
 * Markers (/dev/kmsg, the kernel's clock; parsed by the harness):
 *   "mark robust_owner pid=P"                 owner holds the mutex
 *   "mark robust_waiting pid=W owner=P"       waiter is about to block
 *   "mark robust_released pid=W owner=P result=owner_died"
 *                                             waiter got EOWNERDEAD
 *   "mark robust_released pid=W owner=P result=acquired|error"
 *   "mark robust_timeout pid=W owner=P"       --timeout-s expired
 *
 * Waiter exit status: 0 on EOWNERDEAD, 3 on timeout, 4 if it acquired the
 * mutex without the owner dying (the owner never unlocks: a bug), 1 on
 * any other failure, 2 on usage errors.
 */
#include <pthread.h>
#include <sched.h>

#include "stressor.h"

static const char usage[] =
	"--owner|--waiter --file PATH [--mb N] [--chunk-mb N] [--cpu N] [--idle] "
	"[--hold | --spin] [--timeout-s N] [--start-s N] [--oom-score-adj N]";

#define READY_MAGIC 0x6f6f6d6cL /* "ooml" */

struct shared {
	pthread_mutex_t m;
	volatile long ready;	/* READY_MAGIC once the owner holds m */
	volatile long owner;	/* the owner's pid */
};

static const char *file;

static struct shared *map_shared(int create)
{
	int fd = open(file, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0),
		      0666);
	void *p;

	if (fd < 0)
		return NULL;
	if (create && ftruncate(fd, sizeof(struct shared))) {
		perror("robustmutex: ftruncate");
		exit(1);
	}
	p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		perror("robustmutex: mmap");
		exit(1);
	}
	return p;
}

static int owner(long mb, long chunk_mb, long cpu, long idle, long hold)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)chunk_mb << 20;
	long nchunks = mb ? (mb + chunk_mb - 1) / chunk_mb : 0;
	struct shared *s = map_shared(1);
	pthread_mutexattr_t a;
	char **chunks;
	int err;

	if (!s) {
		fprintf(stderr, "robustmutex: %s: %s\n", file, strerror(errno));
		return 1;
	}
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	err = pthread_mutex_init(&s->m, &a);
	if (!err)
		err = pthread_mutex_lock(&s->m);
	if (err) {
		fprintf(stderr, "robustmutex: mutex: %s\n", strerror(err));
		return 1;
	}
	s->owner = getpid();
	__sync_synchronize();
	s->ready = READY_MAGIC;
	kmsg("mark robust_owner pid=%d\n", getpid());

	chunks = calloc(nchunks + 1, sizeof(*chunks));
	if (!chunks)
		return 1;
	for (long c = 0; c < nchunks; c++) {
		chunks[c] = map_touch(len, page);
		if (!chunks[c]) {
			perror("robustmutex: mmap");
			return 1;
		}
	}
	if (starve_self("robustmutex", idle, cpu))
		return 1;
	kmsg("robustmutex %d ready mb=%ld cpu=%ld idle=%ld\n", getpid(), mb,
	     cpu, idle);
	printf("robustmutex %d owner ready mb=%ld cpu=%ld idle=%ld\n", getpid(),
	       mb, cpu, idle);
	fflush(stdout);
	if (hold || !nchunks) {
		for (;;)
			pause();
	}
	for (unsigned long gen = 2;; gen++)
		for (long c = 0; c < nchunks; c++)
			touch_pages(chunks[c], len, page, (char)gen);
	return 0;
}

static int waiter(long timeout_s, long start_s)
{
	struct shared *s = NULL;
	long owner_pid;
	int err;

	for (long waited_ms = 0;; waited_ms += 10) {
		if (!s)
			s = map_shared(0);
		if (s && s->ready == READY_MAGIC)
			break;
		if (waited_ms >= start_s * 1000) {
			fprintf(stderr, "robustmutex: no owner in %s after %lds\n",
				file, start_s);
			return 1;
		}
		usleep(10000);
	}
	__sync_synchronize();
	owner_pid = s->owner;
	kmsg("mark robust_waiting pid=%d owner=%ld\n", getpid(), owner_pid);
	printf("robustmutex %d waiting for owner %ld\n", getpid(), owner_pid);
	fflush(stdout);

	if (timeout_s > 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += timeout_s;
		err = pthread_mutex_timedlock(&s->m, &ts);
	} else {
		err = pthread_mutex_lock(&s->m);
	}
	switch (err) {
	case EOWNERDEAD:
		kmsg("mark robust_released pid=%d owner=%ld result=owner_died\n",
		     getpid(), owner_pid);
		printf("robustmutex %d released: EOWNERDEAD\n", getpid());
		pthread_mutex_consistent(&s->m);
		pthread_mutex_unlock(&s->m);
		return 0;
	case ETIMEDOUT:
		kmsg("mark robust_timeout pid=%d owner=%ld\n", getpid(), owner_pid);
		printf("robustmutex %d timed out after %lds\n", getpid(), timeout_s);
		return 3;
	case 0:
		kmsg("mark robust_released pid=%d owner=%ld result=acquired\n",
		     getpid(), owner_pid);
		printf("robustmutex %d acquired without EOWNERDEAD\n", getpid());
		return 4;
	default:
		kmsg("mark robust_released pid=%d owner=%ld result=error\n",
		     getpid(), owner_pid);
		fprintf(stderr, "robustmutex: lock: %s\n", strerror(err));
		return 1;
	}
}

int main(int argc, char **argv)
{
	long role = 0, mb = 0, chunk_mb = 4, cpu = -1, idle = 0, hold = 0;
	long timeout_s = 0, start_s = 60, adj = OPT_UNSET;
	const struct opt opts[] = {
		{ "--owner", OPT_FLAG, &role, 1 },
		{ "--waiter", OPT_FLAG, &role, 2 },
		{ "--mb", OPT_MB, &mb, 0, LONG_MAX },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--cpu", OPT_LONG, &cpu, 0, CPU_SETSIZE - 1 },
		{ "--idle", OPT_FLAG, &idle, 1 },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ "--spin", OPT_FLAG, &hold, 0 },
		{ "--timeout-s", OPT_LONG, &timeout_s, 0, 1L << 30 },
		{ "--start-s", OPT_LONG, &start_s, 0, 1L << 30 },
		{ "--oom-score-adj", OPT_LONG, &adj, -1000, 1000 },
		{ NULL }
	};

	/* --file takes a path, not a number: pick it out before parse_opts. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--file"))
			continue;
		if (i + 1 == argc) {
			fprintf(stderr, "robustmutex: missing value for --file\n");
			die_usage(argv[0], usage);
		}
		file = argv[i + 1];
		for (int j = i; j + 2 <= argc; j++)
			argv[j] = argv[j + 2];
		argc -= 2;
		i--;
	}
	parse_opts(argc, argv, opts, usage);
	if (!role || !file || !*file)
		die_usage(argv[0], usage);
	if (adj != OPT_UNSET &&
	    set_oom_score_adj("/proc/self/oom_score_adj", adj)) {
		perror("robustmutex: oom_score_adj");
		return 1;
	}
	if (role == 1)
		return owner(mb, chunk_mb, cpu, idle, hold);
	return waiter(timeout_s, start_s);
}
