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
#include <sys/wait.h>

#include "stressor.h"

static const char usage[] =
	"[--mb N] [--chunk-mb N] [--hold] [--rounds N] [--parent-oom-score-adj N] [--child-oom-score-adj N]";

int main(int argc, char **argv)
{
	long mb = 0, chunk_mb = 1, rounds = 1, hold = 0;
	long parent_adj = OPT_UNSET, child_adj = OPT_UNSET;
	const struct opt opts[] = {
		{ "--mb", OPT_MB, &mb, 0, LONG_MAX },
		{ "--chunk-mb", OPT_MB, &chunk_mb, 1, LONG_MAX },
		{ "--hold", OPT_FLAG, &hold, 1 },
		{ "--rounds", OPT_MB, &rounds, 0, LONG_MAX },
		{ "--parent-oom-score-adj", OPT_LONG, &parent_adj, -1000, 1000 },
		{ "--child-oom-score-adj", OPT_LONG, &child_adj, -1000, 1000 },
		{ NULL }
	};
	long page = sysconf(_SC_PAGESIZE);

	parse_opts(argc, argv, opts, usage);
	if (parent_adj != OPT_UNSET &&
	    set_oom_score_adj("/proc/self/oom_score_adj", parent_adj)) {
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

			if (child_adj != OPT_UNSET &&
			    set_oom_score_adj("/proc/self/oom_score_adj",
					      child_adj))
				syscall(SYS_exit, 3);
			for (long n = 0; !nchunks || n < nchunks; n++)
				map_touch_retry(len, page);
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
