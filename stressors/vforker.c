// SPDX-License-Identifier: GPL-2.0
/*
 * vforker: a parent that vforks a child which allocates.
 *
 * Between vfork() and exec()/_exit() the child borrows the parent's mm while
 * the parent sleeps in the kernel. The OOM killer must not pick the vforked
 * child (in_vfork(): killing it frees nothing the parent would not keep) and
 * must kill every task sharing the mm when it picks the parent. With
 * --parent-oom-score-adj -1000 the parent is unkillable and the memory is
 * charged to a task the OOM killer cannot select.
 *
 *   vforker [--mb N] [--chunk-mb N] [--hold] [--rounds N]
 *           [--parent-oom-score-adj N] [--child-oom-score-adj N]
 *
 * --mb N                     MiB the vforked child allocates (default 0:
 *                            until killed)
 * --chunk-mb N               mmap granularity (default 1); what the child
 *                            maps stays in the shared mm after it exits
 * --hold                     the child sleeps once it holds --mb (default:
 *                            it _exit()s and the parent vforks again)
 * --rounds N                 vfork rounds (default 1, 0 = forever)
 * --parent-oom-score-adj N   write N to the parent's oom_score_adj first
 * --child-oom-score-adj N    the child writes N to its own oom_score_adj
 *
 * The child uses raw system calls only. The parent reports how each child
 * ended: stdout and /dev/kmsg "vforker <pid> child <pid> exited N" /
 * "killed by signal N".
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "stressor.h"

static const char usage[] =
	"[--mb N] [--chunk-mb N] [--hold] [--rounds N] [--parent-oom-score-adj N] [--child-oom-score-adj N]";

static long parse_adj(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < -1000 || v > 1000) {
		fprintf(stderr, "vforker: bad oom_score_adj: %s\n", s);
		exit(2);
	}
	return v;
}

static int set_adj(const char *path, const char *val)
{
	int fd = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return -1;
	n = syscall(SYS_write, fd, val, strlen(val));
	syscall(SYS_close, fd);
	return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	long mb = 0, chunk_mb = 1, rounds = 1;
	const char *parent_adj = NULL, *child_adj = NULL;
	int hold = 0;
	long page = sysconf(_SC_PAGESIZE);

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
		if (!v)
			die_usage(argv[0], usage);
		if (!strcmp(a, "--mb")) {
			mb = parse_mb(v);
		} else if (!strcmp(a, "--chunk-mb")) {
			chunk_mb = parse_mb(v);
		} else if (!strcmp(a, "--rounds")) {
			rounds = parse_mb(v);
		} else if (!strcmp(a, "--parent-oom-score-adj")) {
			parse_adj(v);
			parent_adj = v;
		} else if (!strcmp(a, "--child-oom-score-adj")) {
			parse_adj(v);
			child_adj = v;
		} else {
			die_usage(argv[0], usage);
		}
		i++;
	}
	if (mb < 0 || chunk_mb <= 0 || rounds < 0)
		die_usage(argv[0], usage);

	if (parent_adj && set_adj("/proc/self/oom_score_adj", parent_adj)) {
		perror("vforker: parent oom_score_adj");
		return 1;
	}

	kmsg("vforker %d start mb=%ld rounds=%ld\n", getpid(), mb, rounds);
	for (long r = 0; !rounds || r < rounds; r++) {
		int status;
		pid_t pid = vfork();

		if (pid < 0) {
			perror("vforker: vfork");
			return 1;
		}
		if (pid == 0) {
			/* Borrowed mm and stack: raw system calls only. */
			size_t len = (size_t)chunk_mb << 20;
			long nchunks = mb ? (mb + chunk_mb - 1) / chunk_mb : 0;

			if (child_adj &&
			    set_adj("/proc/self/oom_score_adj", child_adj))
				syscall(SYS_exit, 3);
			for (long n = 0; !nchunks || n < nchunks;) {
				char *p = (char *)syscall(SYS_mmap, NULL, len,
						PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS,
						-1, 0);

				if ((long)p < 0 && (long)p > -4096) {
					struct timespec ts = { 0, 10000000L };

					syscall(SYS_nanosleep, &ts, NULL);
					continue;
				}
				for (size_t off = 0; off < len; off += page)
					p[off] = 1;
				n++;
			}
			while (hold)
				syscall(SYS_pause);
			syscall(SYS_exit, 0);
		}
		if (waitpid(pid, &status, 0) < 0) {
			perror("vforker: waitpid");
			return 1;
		}
		if (WIFSIGNALED(status)) {
			printf("child %d killed by signal %d\n", pid,
			       WTERMSIG(status));
			kmsg("vforker %d child %d killed by signal %d\n",
			     getpid(), pid, WTERMSIG(status));
		} else {
			printf("child %d exited %d\n", pid, WEXITSTATUS(status));
			kmsg("vforker %d child %d exited %d\n", getpid(), pid,
			     WEXITSTATUS(status));
		}
		fflush(stdout);
	}
	return 0;
}
