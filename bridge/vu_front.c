/*
 * vhost-user front-end role. Every request is a synchronous round trip with
 * a bounded wait. A back-end is a peer like any other: replies are checked
 * for the REPLY flag, the request code, the exact size and the absence of
 * fds, and the first violation (or timeout) breaks the connection for good,
 * since the stream can no longer be trusted to be in step.
 */
#include "bridge/vu_front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bridge/log.h"
#include "bridge/util.h"
#include "bridge/vu_io.h"

#define NO_REPLY      (-1) /* set-request: no reply body (an ack with REPLY_ACK) */
#define NO_ACK        (-2) /* set-request that never carries NEED_REPLY */
#define SPLIT_IDX_MAX 0xffffu

struct vu_front {
	int fd;
	int backend_fd;
	int timeout_ms;
	uint64_t pf;
	bool broken;
	char err[256];
	struct vu_msg tx;
	struct vu_msg rx;
	struct vu_msg bmsg;
	struct vu_rx brx;
};

static int front_fail(struct vu_front *f, int ret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int front_fail(struct vu_front *f, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
	if (!f->broken) {
		log_warnx("vhost-user backend: %s", f->err);
	}
	f->broken = true;
	return ret;
}

static bool has_pf(const struct vu_front *f, unsigned bit)
{
	return (f->pf & (1ull << bit)) != 0;
}

static int connect_retry(int fd, const struct sockaddr_un *sa, int timeout_ms)
{
	uint64_t deadline = vb_now_ns() + (uint64_t)VB_MAX(timeout_ms, 0) * 1000000ull;
	const struct timespec pause = {.tv_nsec = 10 * 1000000};

	for (;;) {
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
			return 0;
		}
		/* A UNIX socket whose backlog is full says EAGAIN, not EINPROGRESS. */
		if (errno != EAGAIN && errno != EINTR) {
			return -errno;
		}
		if (vb_now_ns() >= deadline) {
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
}

struct vu_front *vu_front_connect(const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vu_front *f;
	int ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->backend_fd = -1;
	f->timeout_ms = timeout_ms;
	f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (f->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto free_f;
	}
	ret = connect_retry(f->fd, &sa, timeout_ms);
	if (ret < 0) {
		snprintf(err, errlen, "connect %s: %s", path, strerror(-ret));
		goto close_fd;
	}
	return f;

close_fd:
	close(f->fd);
free_f:
	free(f);
	return NULL;
}

void vu_front_free(struct vu_front *f)
{
	if (!f) {
		return;
	}
	vu_rx_reset(&f->brx);
	if (f->backend_fd >= 0) {
		close(f->backend_fd);
	}
	close(f->fd);
	free(f);
}

int vu_front_fd(const struct vu_front *f)
{
	return f->fd;
}

bool vu_front_broken(const struct vu_front *f)
{
	return f->broken;
}

const char *vu_front_error(const struct vu_front *f)
{
	return f->err;
}

uint64_t vu_front_protocol_features(const struct vu_front *f)
{
	return f->pf;
}

static int recv_reply(struct vu_front *f, uint32_t req, uint32_t size)
{
	const char *name = vu_request_name(req);
	const char *why = "?";
	int ret;

	ret = vu_recv(f->fd, &f->rx, true, f->timeout_ms, &why);
	if (ret < 0) {
		return front_fail(f, ret, "%s reply: %s", name, why);
	}
	/* GET_CONFIG: "zero length of payload to indicate an error", the stream stays in step. */
	if (req == VHOST_USER_GET_CONFIG && f->rx.size == 0 && f->rx.request == req &&
	    f->rx.nfds == 0) {
		snprintf(f->err, sizeof(f->err), "GET_CONFIG refused by the backend");
		return -EIO;
	}
	ret = vu_msg_check_reply(&f->rx, req, size, &why);
	if (ret < 0) {
		ret = front_fail(f, ret, "%s reply (%s, %u bytes, %u fds): %s", name,
		                 vu_request_name(f->rx.request), f->rx.size, f->rx.nfds, why);
		vu_msg_close_fds(&f->rx);
	}
	return ret;
}

/*
 * Sends f->tx and collects what it earns: reply_size bytes of reply, or
 * with NO_REPLY and REPLY_ACK negotiated a u64 ack (REPLY_ACK section:
 * zero on success, non-zero on failure).
 */
static int front_request(struct vu_front *f, int reply_size)
{
	uint32_t req = f->tx.request;
	bool ack = reply_size == NO_REPLY && has_pf(f, VU_PF_REPLY_ACK);
	uint64_t v;
	int ret;

	if (f->broken) {
		return -EPIPE;
	}
	if (ack) {
		f->tx.flags |= VU_FLAG_NEED_REPLY;
	}
	ret = vu_send(f->fd, &f->tx, f->timeout_ms);
	if (ret < 0) {
		return front_fail(f, ret, "sending %s: %s", vu_request_name(req), strerror(-ret));
	}
	if (reply_size < 0 && !ack) {
		return 0;
	}
	ret = recv_reply(f, req, ack ? 8u : (uint32_t)reply_size);
	if (ret < 0 || !ack) {
		return ret;
	}
	if (vu_get_u64(&f->rx, &v, NULL) == 0 && v != 0) {
		snprintf(f->err, sizeof(f->err), "%s refused by the backend (%llu)",
		         vu_request_name(req), (unsigned long long)v);
		log_warnx("vhost-user backend: %s", f->err);
		return -EIO;
	}
	return 0;
}

static int get_u64(struct vu_front *f, uint32_t req, uint64_t *v)
{
	int ret;

	vu_msg_init(&f->tx, req, 0);
	ret = front_request(f, 8);
	if (ret < 0) {
		return ret;
	}
	return vu_get_u64(&f->rx, v, NULL);
}

static int set_u64(struct vu_front *f, uint32_t req, uint64_t v, int reply)
{
	vu_msg_init(&f->tx, req, 0);
	vu_put_u64(&f->tx, v);
	return front_request(f, reply);
}

static int set_none(struct vu_front *f, uint32_t req)
{
	vu_msg_init(&f->tx, req, 0);
	return front_request(f, NO_REPLY);
}

static int set_state(struct vu_front *f, uint32_t req, unsigned idx, unsigned num)
{
	struct vu_vring_state s = {.index = idx, .num = num};

	vu_msg_init(&f->tx, req, 0);
	vu_put_vring_state(&f->tx, &s);
	return front_request(f, NO_REPLY);
}

int vu_front_get_features(struct vu_front *f, uint64_t *features)
{
	return get_u64(f, VHOST_USER_GET_FEATURES, features);
}

int vu_front_set_features(struct vu_front *f, uint64_t features)
{
	return set_u64(f, VHOST_USER_SET_FEATURES, features, NO_REPLY);
}

int vu_front_get_protocol_features(struct vu_front *f, uint64_t *pf)
{
	return get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES, pf);
}

int vu_front_set_protocol_features(struct vu_front *f, uint64_t pf)
{
	/* Never acked: REPLY_ACK only takes effect once this message is processed. */
	int ret = set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf, NO_ACK);

	if (ret == 0) {
		f->pf = pf;
	}
	return ret;
}

int vu_front_set_owner(struct vu_front *f)
{
	return set_none(f, VHOST_USER_SET_OWNER);
}

int vu_front_reset_owner(struct vu_front *f)
{
	return set_none(f, VHOST_USER_RESET_OWNER);
}

int vu_front_get_queue_num(struct vu_front *f, uint64_t *n)
{
	return get_u64(f, VHOST_USER_GET_QUEUE_NUM, n);
}

int vu_front_set_mem_table(struct vu_front *f, const struct vu_mem_region *r, const int *fds,
                           unsigned n)
{
	struct vu_mem_table t = {.nregions = n};

	if (n == 0 || n > VU_MEM_TABLE_REGIONS) {
		return -EINVAL;
	}
	vu_msg_init(&f->tx, VHOST_USER_SET_MEM_TABLE, 0);
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] < 0) {
			return -EINVAL;
		}
		t.r[i] = r[i];
		f->tx.fds[i] = fds[i];
	}
	vu_put_mem_table(&f->tx, &t);
	f->tx.nfds = n;
	return front_request(f, NO_REPLY);
}

int vu_front_set_vring_num(struct vu_front *f, unsigned idx, unsigned num)
{
	return set_state(f, VHOST_USER_SET_VRING_NUM, idx, num);
}

int vu_front_set_vring_addr(struct vu_front *f, const struct vu_vring_addr *a)
{
	vu_msg_init(&f->tx, VHOST_USER_SET_VRING_ADDR, 0);
	vu_put_vring_addr(&f->tx, a);
	return front_request(f, NO_REPLY);
}

int vu_front_set_vring_base(struct vu_front *f, unsigned idx, unsigned base)
{
	return set_state(f, VHOST_USER_SET_VRING_BASE, idx, base);
}

int vu_front_get_vring_base(struct vu_front *f, unsigned idx, unsigned *base)
{
	struct vu_vring_state s = {.index = idx};
	int ret;

	vu_msg_init(&f->tx, VHOST_USER_GET_VRING_BASE, 0);
	vu_put_vring_state(&f->tx, &s);
	ret = front_request(f, 8);
	if (ret < 0) {
		return ret;
	}
	vu_get_vring_state(&f->rx, &s, NULL);
	/* We only drive split rings: the base is a 16-bit avail index (virtio 1.2, 2.7). */
	if (s.index != idx || s.num > SPLIT_IDX_MAX) {
		return front_fail(f, -EPROTO, "GET_VRING_BASE reply: index %u base %u for ring %u",
		                  s.index, s.num, idx);
	}
	*base = s.num;
	return 0;
}

static int set_vring_fd(struct vu_front *f, uint32_t req, unsigned idx, int fd)
{
	uint64_t v = idx;

	/* The vring file index has 8 bits (SET_VRING_KICK: "Bits (0-7)"). */
	if (idx > VU_VRING_IDX_MASK) {
		return -EINVAL;
	}
	vu_msg_init(&f->tx, req, 0);
	if (fd < 0) {
		v |= VU_VRING_NOFD;
	} else {
		f->tx.fds[0] = fd;
		f->tx.nfds = 1;
	}
	vu_put_u64(&f->tx, v);
	return front_request(f, NO_REPLY);
}

int vu_front_set_vring_kick(struct vu_front *f, unsigned idx, int fd)
{
	return set_vring_fd(f, VHOST_USER_SET_VRING_KICK, idx, fd);
}

int vu_front_set_vring_call(struct vu_front *f, unsigned idx, int fd)
{
	return set_vring_fd(f, VHOST_USER_SET_VRING_CALL, idx, fd);
}

int vu_front_set_vring_enable(struct vu_front *f, unsigned idx, bool enable)
{
	return set_state(f, VHOST_USER_SET_VRING_ENABLE, idx, enable ? 1 : 0);
}

static int config_args_ok(uint32_t offset, uint32_t len)
{
	return len <= VU_MAX_CONFIG && offset <= VU_MAX_CONFIG - len;
}

int vu_front_get_config(struct vu_front *f, uint32_t offset, uint8_t *buf, uint32_t len)
{
	struct vu_config c = {.offset = offset, .size = len};
	const char *why = "?";
	int ret;

	if (!config_args_ok(offset, len)) {
		return -EINVAL;
	}
	vu_msg_init(&f->tx, VHOST_USER_GET_CONFIG, 0);
	vu_put_config(&f->tx, &c);
	ret = front_request(f, (int)(12 + len));
	if (ret < 0) {
		return ret;
	}
	if (vu_get_config(&f->rx, &c, &why) < 0) {
		return front_fail(f, -EPROTO, "GET_CONFIG reply: %s", why);
	}
	memcpy(buf, c.data, len);
	return 0;
}

int vu_front_set_config(struct vu_front *f, uint32_t offset, const uint8_t *buf, uint32_t len)
{
	struct vu_config c = {.offset = offset, .size = len};

	if (!config_args_ok(offset, len)) {
		return -EINVAL;
	}
	memcpy(c.data, buf, len);
	vu_msg_init(&f->tx, VHOST_USER_SET_CONFIG, 0);
	vu_put_config(&f->tx, &c);
	return front_request(f, NO_REPLY);
}

static void backend_close(struct vu_front *f)
{
	vu_rx_reset(&f->brx);
	if (f->backend_fd >= 0) {
		close(f->backend_fd);
	}
	f->backend_fd = -1;
}

int vu_front_open_backend_channel(struct vu_front *f)
{
	int sv[2];
	int ret;

	if (f->broken) {
		return -EPIPE;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		return -errno;
	}
	/* Only our end is non-blocking: O_NONBLOCK would be shared with the peer's end. */
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) < 0) {
		ret = -errno;
		goto close_both;
	}
	vu_msg_init(&f->tx, VHOST_USER_SET_BACKEND_REQ_FD, 0);
	f->tx.fds[0] = sv[1];
	f->tx.nfds = 1;
	ret = front_request(f, NO_REPLY);
	if (ret < 0) {
		goto close_both;
	}
	close(sv[1]);
	backend_close(f);
	f->backend_fd = sv[0];
	vu_rx_init(&f->brx, &f->bmsg, false);
	return sv[0];

close_both:
	close(sv[0]);
	close(sv[1]);
	return ret;
}

int vu_front_backend_fd(const struct vu_front *f)
{
	return f->backend_fd;
}

/* A misbehaving back-end loses the whole session, not only its channel. */
static int backend_fail(struct vu_front *f, int ret, const char *why)
{
	backend_close(f);
	if (ret == -ECONNRESET) {
		/* The backend may close its channel: the session stays, the reason is kept. */
		snprintf(f->err, sizeof(f->err), "backend channel: %s", why);
		log_warnx("vhost-user backend channel: %s", why);
		return ret;
	}
	return front_fail(f, ret, "backend channel: %s", why);
}

static int backend_ack(struct vu_front *f, const struct vu_msg *req)
{
	struct vu_msg *m = &f->tx;

	vu_msg_init(m, req->request, VU_FLAG_REPLY);
	vu_put_u64(m, 0);
	return vu_send(f->backend_fd, m, f->timeout_ms);
}

int vu_front_backend_read(struct vu_front *f, uint32_t *request)
{
	const char *why = "?";
	int ret;

	if (f->backend_fd < 0) {
		return -ENOTCONN;
	}
	/* Broken means every call fails: a broken session acks nothing more. */
	if (f->broken) {
		backend_close(f);
		return -EPIPE;
	}
	ret = vu_rx_read(f->backend_fd, &f->brx, &why);
	if (ret <= 0) {
		return ret == 0 ? 0 : backend_fail(f, ret, why);
	}
	ret = vu_msg_check_backend_request(&f->bmsg, &why);
	if (ret == 0 && !has_pf(f, VU_PF_CONFIG)) {
		/* CONFIG_CHANGE_MSG: "When VHOST_USER_PROTOCOL_F_CONFIG is negotiated". */
		why = "config change without the CONFIG protocol feature";
		ret = -EPROTO;
	}
	if (ret < 0) {
		vu_msg_close_fds(&f->bmsg);
		return backend_fail(f, ret, why);
	}
	if ((f->bmsg.flags & VU_FLAG_NEED_REPLY) && (ret = backend_ack(f, &f->bmsg)) < 0) {
		return backend_fail(f, ret, "sending the ack failed");
	}
	*request = f->bmsg.request;
	return 1;
}
