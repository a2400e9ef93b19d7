/*
 * vhost-user socket I/O. Reads never cross a message boundary: the header is
 * read alone, then exactly its payload. A sender attaches SCM_RIGHTS to the
 * first byte of a message, and Linux delivers fds with the bytes they rode
 * on, so reading past the current message could hand us the next message's
 * fds (unix(7): "ancillary data ... is received with the first byte").
 */
#include "bridge/vu_io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bridge/util.h"

#define CMSG_FD_SPACE CMSG_SPACE(VU_MAX_FDS * sizeof(int))

union fd_cmsg {
	struct cmsghdr align;
	char buf[CMSG_FD_SPACE];
};

void vu_msg_close_fds(struct vu_msg *m)
{
	for (unsigned i = 0; i < m->nfds && i < VU_MAX_FDS; i++) {
		if (m->fds[i] >= 0) {
			close(m->fds[i]);
		}
		m->fds[i] = -1;
	}
	m->nfds = 0;
}

void vu_rx_init(struct vu_rx *rx, struct vu_msg *msg, bool is_reply)
{
	memset(rx->hdr, 0, sizeof(rx->hdr));
	rx->have = 0;
	rx->size = 0;
	rx->is_reply = is_reply;
	rx->msg = msg;
	msg->nfds = 0;
}

void vu_rx_reset(struct vu_rx *rx)
{
	/* After a whole message (have == 0) the fds belong to the caller. */
	if (rx->have) {
		vu_msg_close_fds(rx->msg);
	}
	rx->have = 0;
	rx->size = 0;
}

static int rx_fail(struct vu_rx *rx, int err, const char **why, const char *msg)
{
	if (why && msg) {
		*why = msg;
	}
	vu_msg_close_fds(rx->msg);
	rx->have = 0;
	rx->size = 0;
	return err;
}

/*
 * Moves the fds of every SCM_RIGHTS cmsg into m. Fds that do not fit are
 * closed at once; returns -EPROTO if there were any.
 */
static int take_fds(struct msghdr *mh, struct vu_msg *m)
{
	int ret = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0)) {
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < VU_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				ret = -EPROTO;
			}
		}
	}
	return ret;
}

/*
 * One recvmsg of at most len bytes into buf; fds are added to rx->msg even
 * when the call fails, so that the caller's error path closes them.
 * Returns >0, 0 on EOF, or -errno with *why set.
 */
static ssize_t rx_recv(int fd, struct vu_rx *rx, void *buf, size_t len, const char **why)
{
	union fd_cmsg cm;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	do {
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		mh.msg_flags = 0;
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		*why = "recvmsg failed";
		return -errno;
	}
	if (take_fds(&mh, rx->msg) < 0) {
		*why = "more than 8 fds on one message";
		return -EPROTO;
	}
	/* The kernel dropped the fds that did not fit; what did arrive must go too. */
	if (mh.msg_flags & MSG_CTRUNC) {
		*why = "fds truncated (MSG_CTRUNC)";
		return -EPROTO;
	}
	if (n == 0) {
		*why = "peer closed the connection";
		return -ECONNRESET;
	}
	return n;
}

int vu_rx_read(int fd, struct vu_rx *rx, const char **why)
{
	struct vu_msg *m = rx->msg;
	const char *err = NULL;

	for (;;) {
		uint8_t *dst;
		size_t want;
		ssize_t n;

		if (rx->have == 0) {
			m->nfds = 0;
		}
		if (rx->have < VU_HDR_SIZE) {
			dst = rx->hdr + rx->have;
			want = VU_HDR_SIZE - rx->have;
		} else {
			dst = m->payload + (rx->have - VU_HDR_SIZE);
			want = rx->size - (rx->have - VU_HDR_SIZE);
		}
		n = rx_recv(fd, rx, dst, want, &err);
		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			return 0;
		}
		if (n < 0) {
			return rx_fail(rx, (int)n, why, err);
		}
		rx->have += (size_t)n;
		if (rx->have == VU_HDR_SIZE) {
			/* size is bounded here, before any payload byte is read. */
			if (vu_hdr_parse(rx->hdr, rx->is_reply, &m->request, &m->flags, &m->size,
			                 &err) < 0) {
				return rx_fail(rx, -EPROTO, why, err);
			}
			rx->size = m->size;
		}
		if (rx->have >= VU_HDR_SIZE && rx->have == VU_HDR_SIZE + rx->size) {
			rx->have = 0;
			rx->size = 0;
			return 1;
		}
	}
}

static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = vb_now_ns();
		struct pollfd p = {.fd = fd, .events = events};
		int ms, r;

		if (now >= deadline_ns) {
			return -ETIMEDOUT;
		}
		/* Rounded up so that a sub-millisecond remainder still waits. */
		ms = (int)VB_MIN((deadline_ns - now + 999999) / 1000000, (uint64_t)INT32_MAX);
		r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR) {
			return -errno;
		}
		if (r > 0) {
			return 0;
		}
	}
}

static uint64_t deadline_after(int timeout_ms)
{
	return vb_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
}

/* Sends from byte off of the serialized message; the fds ride with the first byte only. */
static ssize_t send_part(int fd, const struct vu_msg *m, const uint8_t *hdr, size_t off)
{
	union fd_cmsg cm;
	struct iovec iov[2];
	struct msghdr mh = {.msg_iov = iov};
	size_t fdlen = m->nfds * sizeof(int);
	size_t poff = 0;

	if (off < VU_HDR_SIZE) {
		iov[mh.msg_iovlen++] = (struct iovec){(void *)(hdr + off), VU_HDR_SIZE - off};
	} else {
		poff = off - VU_HDR_SIZE;
	}
	if (m->size > poff) {
		iov[mh.msg_iovlen++] = (struct iovec){(void *)(m->payload + poff), m->size - poff};
	}
	if (off == 0 && m->nfds) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(fdlen);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(fdlen);
		memcpy(CMSG_DATA(c), m->fds, fdlen);
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int vu_send(int fd, const struct vu_msg *m, int timeout_ms)
{
	uint8_t hdr[VU_HDR_SIZE];
	size_t total = VU_HDR_SIZE + m->size;
	uint64_t deadline = deadline_after(timeout_ms);
	size_t off = 0;

	if (m->size > VU_MAX_PAYLOAD || m->nfds > VU_MAX_FDS) {
		return -EINVAL;
	}
	vu_hdr_put(hdr, m->request, m->flags, m->size);
	while (off < total) {
		ssize_t n = send_part(fd, m, hdr, off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			return -errno;
		}
		int ret = wait_fd(fd, POLLOUT, deadline);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

int vu_recv(int fd, struct vu_msg *m, bool is_reply, int timeout_ms, const char **why)
{
	uint64_t deadline = deadline_after(timeout_ms);
	struct vu_rx rx;

	vu_rx_init(&rx, m, is_reply);
	for (;;) {
		int ret = vu_rx_read(fd, &rx, why);

		if (ret == 1) {
			return 0;
		}
		if (ret < 0) {
			return ret;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret < 0) {
			vu_rx_reset(&rx);
			if (why) {
				*why = ret == -ETIMEDOUT ? "timed out waiting for a message"
				                         : "poll failed";
			}
			return ret;
		}
	}
}
