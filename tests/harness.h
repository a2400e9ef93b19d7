/*
 * What the unit tests and the fuzzers both do around the code under test:
 * count the process's descriptors and mappings, hand descriptors over a
 * socket, drive a vb_loop by hand. No cmocka here (the fuzzers link none):
 * a function that can fail returns -1 and the caller asserts in its own way.
 */
#ifndef VB_TESTS_HARNESS_H
#define VB_TESTS_HARNESS_H

#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "bridge/loop.h"

/* ---- the process: descriptors and mappings ---- */

/* Descriptors open in this process (not counting the one this takes); -1 without /proc. */
static inline int harness_fd_count(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir) {
		return -1;
	}
	while ((e = readdir(dir))) {
		n += e->d_name[0] != '.';
	}
	closedir(dir);
	return n - 1; /* the DIR's own fd */
}

/* Mappings whose /proc/self/maps line names tag (a memfd's name); -1 without /proc. */
static inline int harness_map_count(const char *tag)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f) {
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		n += strstr(line, tag) != NULL;
	}
	fclose(f);
	return n;
}

/* ---- handing descriptors over a UNIX socket ---- */

#define HARNESS_MAX_FDS 16

/* Room for one SCM_RIGHTS message of up to HARNESS_MAX_FDS descriptors. */
union harness_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(HARNESS_MAX_FDS * sizeof(int))];
};

/*
 * Attaches fds[0..nfds) to mh as one SCM_RIGHTS message kept in *cm (which
 * must live until the sendmsg); nothing for nfds 0. -1 if they do not fit.
 */
static inline int harness_attach_fds(struct msghdr *mh, union harness_cmsg *cm, const int *fds,
                                     unsigned nfds)
{
	struct cmsghdr *c;

	if (nfds == 0) {
		return 0;
	}
	if (nfds > HARNESS_MAX_FDS) {
		return -1;
	}
	memset(cm, 0, sizeof(*cm));
	mh->msg_control = cm->buf;
	mh->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	return 0;
}

/* ---- driving a vb_loop by hand ---- */

#define HARNESS_PUMP_ROUNDS 8 /* what a unit test's pump() runs */

/* Runs rounds non-blocking iterations of loop: whatever is ready now, and what that sets off. */
static inline void harness_pump(struct vb_loop *loop, int rounds)
{
	struct event_base *base = vb_loop_base(loop);

	for (int i = 0; i < rounds; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
}

/* Pumps loop until fd is readable (or hung up); false after timeout_ms. */
static inline bool harness_wait_readable(struct vb_loop *loop, int fd, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		harness_pump(loop, HARNESS_PUMP_ROUNDS);
		if (poll(&p, 1, 1) > 0) {
			return true;
		}
	}
	return false;
}

#endif
