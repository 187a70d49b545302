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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* parse_mb parses a size in MiB ("512", "1g" = 1024); -1 on error. */
static inline long parse_mb(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	if (*end == 'g' || *end == 'G') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		end++;
	}
	return *end ? -1 : v;
}

static inline void die_usage(const char *prog, const char *usage)
{
	fprintf(stderr, "usage: %s %s\n", prog, usage);
	exit(2);
}

#endif
