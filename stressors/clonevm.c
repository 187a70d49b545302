// SPDX-License-Identifier: GPL-2.0
/*
 * clonevm: several processes sharing one mm without being one thread group.
 *
 * The parent creates --children processes with raw clone(CLONE_VM | SIGCHLD)
 * (no CLONE_THREAD, no CLONE_SIGHAND): separate processes, separate signal
 * structs, one address space. Every child (and the parent with
 * --parent-allocates) maps and touches --mb MiB in the shared mm. When one of
 * them is OOM-killed the kernel must kill all of them, or the survivors keep
 * the memory pinned (and the reaped mm no longer holds what they wrote).
 *
 *   clonevm [--children N] [--mb N] [--chunk-mb N] [--parent-allocates]
 *           [--hold | --spin] [--fork-loop] [--check-score-adj N]
 *
 * --children N         CLONE_VM children, 1..1024 (default 4)
 * --mb N               MiB each child allocates (default 0: until killed)
 * --chunk-mb N         mmap granularity (default 1)
 * --parent-allocates   the parent allocates --mb too
 * --hold               children sleep once their share is allocated
 * --spin               children keep rewriting their share (default)
 * --fork-loop          each child keeps creating short-lived CLONE_VM
 *                      grandchildren while it allocates (races the OOM kill
 *                      with clone)
 * --check-score-adj N  no OOM: once the children hold their share, write N
 *                      to the parent's oom_score_adj, then N/2 to the last
 *                      child's, and check after each write that every task
 *                      sharing the mm shows the value (the 2016 "oom bypass"
 *                      series made oom_score_adj a property of the mm, so
 *                      that the OOM killer sees one value for it); kill the
 *                      children and exit 0 if so, 1 if not. N is
 *                      0..1000 and needs --mb; -1 (the default): no check
 *
 * The children use raw system calls only (they share the parent's TLS and
 * libc state). The parent reports how each child ended on stdout and in
 * /dev/kmsg: "clonevm <parent> child <pid> killed by signal N" / "exited N",
 * and "clonevm <parent> done children=N killed=K".
 */
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "stressor.h"

static const char usage[] =
	"[--children N] [--mb N] [--chunk-mb N] [--parent-allocates] [--hold | --spin] [--fork-loop] [--check-score-adj N]";

#define STACK_SIZE (64 << 10)

static long mb, chunk_mb = 1, page;
static long hold, fork_loop;

static int read_adj(int pid)
{
	char path[64], buf[16] = "";
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -10000;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -10000;
}

static int write_adj(int pid, int val)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
	return set_oom_score_adj(path, val);
}

/* check_adj: every sharer (parent and children) must show want. */
static int check_adj(const int *pids, long n, int want, const char *after)
{
	int bad = 0, v = read_adj(getpid());

	if (v != want) {
		printf("after %s: parent %d oom_score_adj %d, want %d\n", after,
		       getpid(), v, want);
		bad++;
	}
	for (long i = 0; i < n; i++) {
		v = read_adj(pids[i]);
		if (v != want) {
			printf("after %s: child %d oom_score_adj %d, want %d\n",
			       after, pids[i], v, want);
			bad++;
		}
	}
	printf("after %s: %ld sharers checked, %d inconsistent\n", after, n + 1,
	       bad);
	kmsg("clonevm %d score_adj after %s: want %d, %d inconsistent\n",
	     getpid(), after, want, bad);
	return bad;
}

static int grandchild(void *arg)
{
	(void)arg;
	syscall(SYS_exit, 0);
	return 0;
}

/* Runs in a CLONE_VM child: raw syscalls only, never returns. */
static int child(void *arg)
{
	size_t len = (size_t)chunk_mb << 20;
	long nchunks = mb ? (mb + chunk_mb - 1) / chunk_mb : 0;
	char *gc_stack = fork_loop ? map_touch(STACK_SIZE, page) : NULL;
	char *first = NULL;

	(void)arg;
	for (long n = 0; !nchunks || n < nchunks; n++) {
		char *p = map_touch_retry(len, page);

		if (!first)
			first = p;
		if (gc_stack) {
			/* A CLONE_VM grandchild which exits at once. */
			int pid = clone(grandchild, gc_stack + STACK_SIZE,
					CLONE_VM | SIGCHLD, NULL);

			if (pid > 0)
				syscall(SYS_wait4, pid, NULL, __WALL, NULL);
		}
	}
	for (;;) {
		if (hold || !first) {
			syscall(SYS_pause);
			continue;
		}
		for (size_t off = 0; off < len; off += page)
			first[off]++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long children = 4, killed = 0, spawned = 0, check_adj_val = -1;
	long parent_allocates = 0;
	const struct opt opts[] = {
		{ "--children", OPT_MB, &children, 1, 1024 },
		{ "--mb", OPT_MB, &mb, 0, LONG_MAX },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--parent-allocates", OPT_FLAG, &parent_allocates, 1 },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ "--spin", OPT_FLAG, &hold, 0 },
		{ "--fork-loop", OPT_FLAG, &fork_loop, 1 },
		{ "--check-score-adj", OPT_MB, &check_adj_val, -1, 1000 },
		{ NULL }
	};
	int pids[1024];

	page = sysconf(_SC_PAGESIZE);
	parse_opts(argc, argv, opts, usage);
	if (check_adj_val >= 0 && !mb)
		die_usage(argv[0], usage);

	kmsg("clonevm %d start children=%ld mb=%ld\n", getpid(), children, mb);
	for (long c = 0; c < children; c++) {
		char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		int pid;

		if (stack == MAP_FAILED) {
			perror("clonevm: mmap stack");
			break;
		}
		pid = clone(child, stack + STACK_SIZE, CLONE_VM | SIGCHLD, NULL);
		if (pid < 0) {
			perror("clonevm: clone");
			break;
		}
		pids[spawned++] = pid;
	}
	printf("clonevm %d spawned %ld children\n", getpid(), spawned);
	fflush(stdout);

	if (check_adj_val >= 0) {
		int bad, half = (int)check_adj_val / 2;

		/* Let the children map their share: it is the mm that counts. */
		sleep(1);
		if (write_adj(getpid(), (int)check_adj_val) ||
		    write_adj(pids[spawned - 1], half)) {
			perror("clonevm: write oom_score_adj");
			return 2;
		}
		/* Both writes done, then both checks: the second write must
		 * reach the parent and the other children too.
		 */
		bad = check_adj(pids, spawned, half, "write to last child");
		bad += write_adj(getpid(), (int)check_adj_val) ? 1 : 0;
		bad += check_adj(pids, spawned, (int)check_adj_val,
				 "write to parent");
		for (long c = 0; c < spawned; c++)
			kill(pids[c], SIGKILL);
		while (waitpid(-1, NULL, __WALL) > 0)
			;
		fflush(stdout);
		return bad ? 1 : 0;
	}

	if (parent_allocates) {
		long nchunks = mb ? (mb + chunk_mb - 1) / chunk_mb : 0;

		for (long n = 0; !nchunks || n < nchunks; n++)
			map_touch_retry((size_t)chunk_mb << 20, page);
	}

	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, __WALL);

		if (pid < 0)
			break;
		if (WIFSIGNALED(status)) {
			killed++;
			printf("child %d killed by signal %d\n", pid,
			       WTERMSIG(status));
			kmsg("clonevm %d child %d killed by signal %d\n",
			     getpid(), pid, WTERMSIG(status));
		} else {
			printf("child %d exited %d\n", pid, WEXITSTATUS(status));
			kmsg("clonevm %d child %d exited %d\n", getpid(), pid,
			     WEXITSTATUS(status));
		}
		fflush(stdout);
	}
	kmsg("clonevm %d done children=%ld killed=%ld\n", getpid(), spawned,
	     killed);
	printf("clonevm %d done children=%ld killed=%ld\n", getpid(), spawned,
	       killed);
	return 0;
}
