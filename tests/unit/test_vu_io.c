/*
 * vu_io and vu_front over real UNIX sockets: piecewise receive, fd
 * accounting on every error path, and a front-end driving a scripted fake
 * back-end thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "bridge/vu_front.h"
#include "bridge/vu_io.h"
#include "bridge/vu_msg.h"
#include "tests/unit/harness.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* sv[0]: the reading end (non-blocking), sv[1]: the writing end (blocking). */
static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

static void close_pair(int sv[2])
{
	close(sv[0]);
	close(sv[1]);
}

/* Raw write of len bytes with nfds copies of fd attached. */
static void send_raw(int sock, const void *buf, size_t len, int fd, int nfds)
{
	union harness_cmsg cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[HARNESS_MAX_FDS];

	assert_true(nfds >= 0 && nfds <= HARNESS_MAX_FDS);
	for (int i = 0; i < nfds; i++) {
		fds[i] = fd;
	}
	assert_int_equal(harness_attach_fds(&mh, &cm, fds, (unsigned)nfds), 0);
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void put_hdr_payload(uint8_t *buf, uint32_t req, uint32_t flags, uint32_t size, uint64_t v)
{
	vu_hdr_put(buf, req, flags, size);
	put_le64(buf + VU_HDR_SIZE, v);
}

static size_t pending(int sock)
{
	int n = 0;

	assert_int_equal(ioctl(sock, FIONREAD, &n), 0);
	return (size_t)n;
}

/* ---- vu_rx_read ---- */

static void test_split_header_payload(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	uint8_t buf[VU_HDR_SIZE + 8];
	const char *why = NULL;
	int sv[2], efd = eventfd(0, EFD_CLOEXEC);
	int base;

	pair(sv);
	base = fd_count();
	vu_rx_init(&rx, &m, false);
	put_hdr_payload(buf, VHOST_USER_SET_VRING_KICK, VU_VERSION, 8, 3);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0); /* nothing yet */
	send_raw(sv[1], buf, 5, efd, 1);                   /* fd with the first bytes */
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	send_raw(sv[1], buf + 5, VU_HDR_SIZE - 5, -1, 0);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	sleep_ms(200);
	send_raw(sv[1], buf + VU_HDR_SIZE, 3, -1, 0);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	send_raw(sv[1], buf + VU_HDR_SIZE + 3, 5, -1, 0);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 1);
	assert_int_equal(m.request, VHOST_USER_SET_VRING_KICK);
	assert_int_equal(m.size, 8);
	assert_int_equal(get_le64(m.payload), 3);
	assert_int_equal(m.nfds, 1);
	assert_int_equal(vu_msg_check_request(&m, &why), 0);
	/* MSG_CMSG_CLOEXEC */
	assert_true(fcntl(m.fds[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fd_count(), base + 1);
	vu_msg_close_fds(&m);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(fd_count(), base);
	/* Ready for the next message. */
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	close_pair(sv);
	close(efd);
}

struct delayed_writer {
	int sock;
	uint8_t buf[VU_HDR_SIZE + 8];
};

static void *delayed_writer(void *arg)
{
	struct delayed_writer *w = arg;

	(void)!write(w->sock, w->buf, VU_HDR_SIZE);
	sleep_ms(200);
	(void)!write(w->sock, w->buf + VU_HDR_SIZE, 8);
	return NULL;
}

static void test_recv_split_200ms(void **state)
{
	static struct vu_msg m;
	struct delayed_writer w;
	const char *why = NULL;
	pthread_t th;
	int sv[2];

	pair(sv);
	w.sock = sv[1];
	put_hdr_payload(w.buf, VHOST_USER_GET_FEATURES, VU_VERSION | VU_FLAG_REPLY, 8,
	                0x140000000ull);
	assert_int_equal(pthread_create(&th, NULL, delayed_writer, &w), 0);
	assert_int_equal(vu_recv(sv[0], &m, true, 2000, &why), 0);
	pthread_join(th, NULL);
	assert_int_equal(vu_msg_check_reply(&m, VHOST_USER_GET_FEATURES, 8, &why), 0);
	assert_true(get_le64(m.payload) == 0x140000000ull);
	close_pair(sv);
}

static void test_recv_timeout(void **state)
{
	static struct vu_msg m;
	const char *why = NULL;
	uint64_t t0 = vb_now_ns();
	int sv[2];

	pair(sv);
	send_raw(sv[1], "\x01\x00\x00\x00", 4, -1, 0); /* a partial header only */
	assert_int_equal(vu_recv(sv[0], &m, true, 100, &why), -ETIMEDOUT);
	assert_true(vb_now_ns() - t0 >= 100 * 1000000ull);
	assert_true(vb_now_ns() - t0 < 2000 * 1000000ull);
	assert_non_null(why);
	close_pair(sv);
}

static void test_eof_mid_header(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	const char *why = NULL;
	uint8_t buf[VU_HDR_SIZE];
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], base;

	pair(sv);
	base = fd_count();
	vu_rx_init(&rx, &m, false);
	vu_hdr_put(buf, VHOST_USER_SET_VRING_CALL, VU_VERSION, 8);
	send_raw(sv[1], buf, 6, efd, 2);
	close(sv[1]);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), -ECONNRESET);
	assert_non_null(why);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(fd_count(), base - 1); /* only sv[1] went away */
	close(sv[0]);
	close(efd);
}

static void test_eof_between_messages(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	const char *why = NULL;
	int sv[2];

	pair(sv);
	vu_rx_init(&rx, &m, false);
	close(sv[1]);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), -ECONNRESET);
	close(sv[0]);
}

struct bad_hdr_case {
	const char *what;
	uint32_t flags;
	uint32_t size;
};

static const struct bad_hdr_case bad_hdrs[] = {
    {"size 0xFFFFFFFF", VU_VERSION, 0xffffffffu},
    {"size 4097", VU_VERSION, VU_MAX_PAYLOAD + 1},
    {"version 0", 0, 8},
    {"version 3", 3, 8},
    {"REPLY on a request", VU_VERSION | VU_FLAG_REPLY, 8},
};

static void test_bad_header(void **state)
{
	static struct vu_msg m;
	int efd = eventfd(0, EFD_CLOEXEC);

	for (size_t i = 0; i < ARRAY_SIZE(bad_hdrs); i++) {
		struct vu_rx rx;
		const char *why = NULL;
		uint8_t buf[VU_HDR_SIZE + 64] = {0};
		int sv[2], base;

		pair(sv);
		base = fd_count();
		vu_rx_init(&rx, &m, false);
		vu_hdr_put(buf, VHOST_USER_SET_FEATURES, bad_hdrs[i].flags, bad_hdrs[i].size);
		send_raw(sv[1], buf, sizeof(buf), efd, 3);
		assert_int_equal(vu_rx_read(sv[0], &rx, &why), -EPROTO);
		print_message("bad header %s: %s\n", bad_hdrs[i].what, why);
		/* Rejected on the header alone: the payload bytes were not read. */
		assert_int_equal(pending(sv[0]), 64);
		assert_int_equal(fd_count(), base);
		close_pair(sv);
	}
	close(efd);
}

/* fds on a request that takes none, 10k times: the fd count stays flat. */
static void test_fds_on_fdless_request(void **state)
{
	static struct vu_msg tx, m;
	struct vu_rx rx;
	const char *why = NULL;
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], base;

	pair(sv);
	vu_rx_init(&rx, &m, false);
	vu_msg_init(&tx, VHOST_USER_GET_FEATURES, 0);
	tx.fds[0] = efd;
	tx.fds[1] = efd;
	tx.nfds = 2;
	base = fd_count();
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(vu_send(sv[1], &tx, 1000), 0);
		assert_int_equal(vu_rx_read(sv[0], &rx, &why), 1);
		assert_int_equal(m.nfds, 2);
		assert_int_equal(vu_msg_check_request(&m, &why), -EPROTO);
		vu_msg_close_fds(&m);
	}
	assert_int_equal(fd_count(), base);
	close_pair(sv);
	close(efd);
}

static void test_too_many_fds(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	const char *why = NULL;
	uint8_t buf[VU_HDR_SIZE + 8];
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], base;

	pair(sv);
	base = fd_count();
	put_hdr_payload(buf, VHOST_USER_SET_VRING_KICK, VU_VERSION, 8, 0);
	for (int i = 0; i < 1000; i++) {
		vu_rx_init(&rx, &m, false);
		send_raw(sv[1], buf, sizeof(buf), efd, 9 + i % 4);
		assert_int_equal(vu_rx_read(sv[0], &rx, &why), -EPROTO);
		assert_int_equal(m.nfds, 0);
		/* The payload is still queued; drain it for the next round. */
		assert_int_equal(pending(sv[0]), 8);
		assert_int_equal(read(sv[0], buf, 8), 8);
	}
	assert_int_equal(fd_count(), base);
	close_pair(sv);
	close(efd);
}

/* More than 8 fds over the two reads of one message (header, then payload). */
static void test_too_many_fds_split(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	const char *why = NULL;
	uint8_t buf[VU_HDR_SIZE + 8];
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], base;

	pair(sv);
	base = fd_count();
	vu_rx_init(&rx, &m, false);
	put_hdr_payload(buf, VHOST_USER_SET_VRING_KICK, VU_VERSION, 8, 0);
	send_raw(sv[1], buf, VU_HDR_SIZE, efd, 5);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	assert_int_equal(fd_count(), base + 5);
	send_raw(sv[1], buf + VU_HDR_SIZE, 8, efd, 4);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), -EPROTO);
	assert_int_equal(fd_count(), base);
	close_pair(sv);
	close(efd);
}

/* A partial message's fds are closed by vu_rx_reset. */
static void test_rx_reset_closes(void **state)
{
	static struct vu_msg m;
	struct vu_rx rx;
	const char *why = NULL;
	uint8_t buf[VU_HDR_SIZE];
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], base;

	pair(sv);
	base = fd_count();
	vu_rx_init(&rx, &m, false);
	vu_hdr_put(buf, VHOST_USER_SET_MEM_TABLE, VU_VERSION, 40);
	send_raw(sv[1], buf, VU_HDR_SIZE, efd, 3);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 0);
	assert_int_equal(fd_count(), base + 3);
	vu_rx_reset(&rx);
	assert_int_equal(fd_count(), base);
	assert_int_equal(m.nfds, 0);
	close_pair(sv);
	close(efd);
}

static ino_t inode_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* Two queued messages keep their own fds: reads never cross a message boundary. */
static void test_back_to_back_fds(void **state)
{
	static struct vu_msg tx, m;
	struct vu_rx rx;
	const char *why = NULL;
	int a = memfd_create("a", MFD_CLOEXEC), b = memfd_create("b", MFD_CLOEXEC);
	int sv[2];

	pair(sv);
	vu_rx_init(&rx, &m, false);
	vu_msg_init(&tx, VHOST_USER_SET_VRING_KICK, 0);
	vu_put_u64(&tx, 0);
	tx.fds[0] = a;
	tx.nfds = 1;
	assert_int_equal(vu_send(sv[1], &tx, 1000), 0);
	vu_msg_init(&tx, VHOST_USER_SET_VRING_CALL, 0);
	vu_put_u64(&tx, 1);
	tx.fds[0] = b;
	tx.nfds = 1;
	assert_int_equal(vu_send(sv[1], &tx, 1000), 0);

	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 1);
	assert_int_equal(m.request, VHOST_USER_SET_VRING_KICK);
	assert_int_equal(m.nfds, 1);
	assert_true(inode_of(m.fds[0]) == inode_of(a));
	vu_msg_close_fds(&m);
	assert_int_equal(vu_rx_read(sv[0], &rx, &why), 1);
	assert_int_equal(m.request, VHOST_USER_SET_VRING_CALL);
	assert_int_equal(m.nfds, 1);
	assert_true(inode_of(m.fds[0]) == inode_of(b));
	vu_msg_close_fds(&m);
	close_pair(sv);
	close(a);
	close(b);
}

static void test_send_limits(void **state)
{
	static struct vu_msg tx;
	uint64_t t0;
	int sv[2], small = 4096, r;

	pair(sv);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	vu_msg_init(&tx, VHOST_USER_SET_CONFIG, 0);
	tx.size = VU_MAX_PAYLOAD;
	memset(tx.payload, 0xab, VU_MAX_PAYLOAD);
	/* Nobody reads sv[1]: the send buffer fills and the bounded wait ends. */
	t0 = vb_now_ns();
	for (int i = 0; i < 10000; i++) {
		r = vu_send(sv[0], &tx, 50);
		if (r < 0) {
			break;
		}
	}
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(vb_now_ns() - t0 < 5000 * 1000000ull);

	tx.size = VU_MAX_PAYLOAD + 1;
	assert_int_equal(vu_send(sv[0], &tx, 50), -EINVAL);
	tx.size = 0;
	tx.nfds = VU_MAX_FDS + 1;
	assert_int_equal(vu_send(sv[0], &tx, 50), -EINVAL);
	tx.nfds = 0;
	/* Peer gone: an error, not SIGPIPE. */
	close(sv[1]);
	assert_int_equal(vu_send(sv[0], &tx, 50), -EPIPE);
	close(sv[0]);
}

struct slow_reader {
	int sock;
	int n;
	int bad;
};

static void *slow_reader(void *arg)
{
	struct slow_reader *r = arg;
	static struct vu_msg m;
	const char *why;

	for (int i = 0; i < r->n; i++) {
		if (i % 8 == 0) {
			sleep_ms(2);
		}
		if (vu_recv(r->sock, &m, false, 3000, &why) < 0) {
			r->bad++;
			break;
		}
		if (m.nfds != 1 || m.size != VU_MAX_PAYLOAD ||
		    m.payload[VU_MAX_PAYLOAD - 1] != 0xab) {
			r->bad++;
		}
		vu_msg_close_fds(&m);
	}
	return NULL;
}

/* Large messages through a small send buffer: partial sends carry the fds once. */
static void test_send_partial_fds_once(void **state)
{
	static struct vu_msg tx;
	struct slow_reader r = {.n = 200};
	int efd = eventfd(0, EFD_CLOEXEC);
	int sv[2], small = 4096, base;
	pthread_t th;

	pair(sv);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	base = fd_count();
	r.sock = sv[1];
	vu_msg_init(&tx, VHOST_USER_SET_CONFIG, 0);
	tx.size = VU_MAX_PAYLOAD;
	memset(tx.payload, 0xab, VU_MAX_PAYLOAD);
	tx.fds[0] = efd;
	tx.nfds = 1;
	assert_int_equal(pthread_create(&th, NULL, slow_reader, &r), 0);
	for (int i = 0; i < r.n; i++) {
		assert_int_equal(vu_send(sv[0], &tx, 3000), 0);
	}
	pthread_join(th, NULL);
	assert_int_equal(r.bad, 0);
	assert_int_equal(fd_count(), base);
	close_pair(sv);
	close(efd);
}

/* ---- vu_front against a scripted fake back-end ---- */

enum act {
	A_NONE,        /* read the request, send nothing */
	A_REPLY,       /* send the reply described by the step */
	A_ACK,         /* u64 0 with REPLY, same code */
	A_RAWHDR,      /* a bare header with rreq/rflags/rsize */
	A_CLOSE,       /* close the connection */
	A_CHAN_NOTIFY, /* CONFIG_CHANGE with NEED_REPLY on the channel, wait for the ack */
	A_CHAN_RAW,    /* send the step's message on the channel */
	A_CHAN_CLOSE,  /* close the channel */
};

struct step {
	uint32_t expect; /* request expected; 0: read nothing */
	int need_reply;
	int fds;
	enum act act;
	uint32_t rreq, rflags, rsize; /* 0: same code, VERSION|REPLY, 8 */
	uint64_t rval;
	int rfds;
	bool echo; /* reply payload = request payload, then patched */
	uint32_t patch_off, patch_len;
	uint8_t patch[8];
};

struct fake {
	char path[108];
	int lfd;
	int efd;
	int chan;
	pthread_t th;
	const struct step *steps;
	size_t nsteps;
	int errors;
	int extra;
	bool chan_acked;
	char err[256];
	struct vu_msg m, r;
};

static void fake_err(struct fake *fk, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fk->err, sizeof(fk->err), fmt, ap);
	va_end(ap);
	fk->errors++;
}

static void fake_build(struct fake *fk, const struct step *s)
{
	struct vu_msg *r = &fk->r;

	vu_msg_init(r, s->rreq ? s->rreq : fk->m.request, 0);
	r->flags = s->rflags ? s->rflags : (VU_VERSION | VU_FLAG_REPLY);
	if (s->echo) {
		memcpy(r->payload, fk->m.payload, fk->m.size);
		r->size = fk->m.size;
		memcpy(r->payload + s->patch_off, s->patch, s->patch_len);
	} else {
		put_le64(r->payload, s->rval);
		r->size = s->rsize ? s->rsize : 8;
		if (s->rsize == 0xdead) {
			r->size = 0;
		}
	}
	for (int i = 0; i < s->rfds; i++) {
		r->fds[r->nfds++] = fk->efd;
	}
}

static bool fake_expect(struct fake *fk, int c, const struct step *s)
{
	const char *why = "?";
	struct vu_msg *m = &fk->m;

	if (vu_recv(c, m, false, 3000, &why) < 0) {
		fake_err(fk, "step %s: recv: %s", vu_request_name(s->expect), why);
		return false;
	}
	if (m->request != s->expect || !!(m->flags & VU_FLAG_NEED_REPLY) != s->need_reply ||
	    (int)m->nfds != s->fds || vu_msg_check_request(m, &why) < 0) {
		fake_err(fk, "expected %s nr %d fds %d, got %s flags %x fds %u",
		         vu_request_name(s->expect), s->need_reply, s->fds,
		         vu_request_name(m->request), m->flags, m->nfds);
	}
	if (m->request == VHOST_USER_SET_BACKEND_REQ_FD && m->nfds == 1) {
		fk->chan = m->fds[0];
		m->nfds = 0;
	}
	vu_msg_close_fds(m);
	return true;
}

static void fake_chan_notify(struct fake *fk)
{
	const char *why = "?";
	uint64_t v = 1;

	vu_msg_init(&fk->r, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, VU_FLAG_NEED_REPLY);
	if (vu_send(fk->chan, &fk->r, 1000) < 0 ||
	    vu_recv(fk->chan, &fk->m, true, 3000, &why) < 0 ||
	    vu_msg_check_reply(&fk->m, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 8, &why) < 0 ||
	    vu_get_u64(&fk->m, &v, &why) < 0 || v != 0) {
		fake_err(fk, "channel ack: %s", why);
		return;
	}
	fk->chan_acked = true;
}

static void fake_act(struct fake *fk, int *c, const struct step *s)
{
	uint8_t hdr[VU_HDR_SIZE];

	switch (s->act) {
	case A_NONE:
		break;
	case A_REPLY:
		fake_build(fk, s);
		if (vu_send(*c, &fk->r, 1000) < 0) {
			fake_err(fk, "send reply");
		}
		break;
	case A_ACK:
		vu_msg_init(&fk->r, fk->m.request, VU_FLAG_REPLY);
		vu_put_u64(&fk->r, 0);
		if (vu_send(*c, &fk->r, 1000) < 0) {
			fake_err(fk, "send ack");
		}
		break;
	case A_RAWHDR:
		vu_hdr_put(hdr, s->rreq, s->rflags, s->rsize);
		(void)!write(*c, hdr, sizeof(hdr));
		break;
	case A_CLOSE:
		close(*c);
		*c = -1;
		break;
	case A_CHAN_NOTIFY:
		fake_chan_notify(fk);
		break;
	case A_CHAN_RAW:
		fake_build(fk, s);
		if (vu_send(fk->chan, &fk->r, 1000) < 0) {
			fake_err(fk, "send on channel");
		}
		break;
	case A_CHAN_CLOSE:
		close(fk->chan);
		fk->chan = -1;
		break;
	}
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	const char *why;
	int c = accept4(fk->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0) {
		fake_err(fk, "accept: %s", strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < fk->nsteps && c >= 0; i++) {
		const struct step *s = &fk->steps[i];

		if (s->expect && !fake_expect(fk, c, s)) {
			break;
		}
		fake_act(fk, &c, s);
	}
	/* Anything past the script is an error; the front-end's close ends it. */
	while (c >= 0 && vu_recv(c, &fk->m, false, 5000, &why) == 0) {
		fake_err(fk, "unexpected %s", vu_request_name(fk->m.request));
		fk->extra++;
		vu_msg_close_fds(&fk->m);
	}
	if (fk->chan >= 0) {
		close(fk->chan);
	}
	if (c >= 0) {
		close(c);
	}
	return NULL;
}

static int fake_seq;

static void fake_start(struct fake *fk, const struct step *steps, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(fk, 0, sizeof(*fk));
	fk->chan = -1;
	fk->steps = steps;
	fk->nsteps = n;
	snprintf(fk->path, sizeof(fk->path), "/tmp/vb-test-vu-io-%d-%d.sock", (int)getpid(),
	         fake_seq++);
	unlink(fk->path);
	memcpy(sa.sun_path, fk->path, sizeof(fk->path));
	fk->efd = eventfd(0, EFD_CLOEXEC);
	fk->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fk->efd >= 0 && fk->lfd >= 0);
	assert_int_equal(bind(fk->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fk->lfd, 1), 0);
	assert_int_equal(pthread_create(&fk->th, NULL, fake_main, fk), 0);
}

static void fake_stop(struct fake *fk)
{
	pthread_join(fk->th, NULL);
	close(fk->lfd);
	close(fk->efd);
	unlink(fk->path);
	if (fk->errors) {
		print_error("fake backend: %s\n", fk->err);
	}
	assert_int_equal(fk->errors, 0);
}

static struct vu_front *front_open(struct fake *fk, int timeout_ms)
{
	char err[128];
	struct vu_front *f = vu_front_connect(fk->path, timeout_ms, err, sizeof(err));

	if (!f) {
		print_error("connect: %s\n", err);
	}
	assert_non_null(f);
	assert_false(vu_front_broken(f));
	return f;
}

/* Polls the backend channel until one whole request has been handled. */
static int backend_read_wait(struct vu_front *f, uint32_t *req)
{
	for (int i = 0; i < 300; i++) {
		struct pollfd p = {.fd = vu_front_backend_fd(f), .events = POLLIN};
		int ret;

		if (p.fd < 0) {
			return -EBADF;
		}
		poll(&p, 1, 10);
		ret = vu_front_backend_read(f, req);
		if (ret != 0) {
			return ret;
		}
	}
	return 0;
}

#define PF_ALL                                                                                     \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_BACKEND_REQ) |            \
	 (1ull << VU_PF_CONFIG))
#define FEATURES ((1ull << 32) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))

static const struct step good_steps[] = {
    {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rval = FEATURES},
    {.expect = VHOST_USER_GET_PROTOCOL_FEATURES, .act = A_REPLY, .rval = PF_ALL},
    {.expect = VHOST_USER_SET_PROTOCOL_FEATURES, .act = A_NONE},
    {.expect = VHOST_USER_SET_OWNER, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_SET_FEATURES, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_GET_QUEUE_NUM, .act = A_REPLY, .rval = 2},
    {.expect = VHOST_USER_SET_MEM_TABLE, .need_reply = 1, .fds = 2, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_NUM, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_ADDR, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_BASE, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_KICK, .need_reply = 1, .fds = 1, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_CALL, .need_reply = 1, .fds = 0, .act = A_ACK},
    {.expect = VHOST_USER_SET_VRING_ENABLE, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_GET_CONFIG,
     .act = A_REPLY,
     .echo = true,
     .patch_off = 12,
     .patch_len = 4,
     .patch = "abcd"},
    {.expect = VHOST_USER_SET_CONFIG, .need_reply = 1, .act = A_ACK},
    {.expect = VHOST_USER_GET_VRING_BASE,
     .act = A_REPLY,
     .echo = true,
     .patch_off = 4,
     .patch_len = 4,
     .patch = {42}},
    {.expect = VHOST_USER_SET_BACKEND_REQ_FD, .need_reply = 1, .fds = 1, .act = A_ACK},
    {.act = A_CHAN_NOTIFY},
    /* A refusal (non-zero ack) fails the call but keeps the session. */
    {.expect = VHOST_USER_SET_FEATURES, .need_reply = 1, .act = A_REPLY, .rval = 1},
    /* GET_CONFIG answered with an empty payload: "error" per the spec. */
    {.expect = VHOST_USER_GET_CONFIG, .act = A_REPLY, .rsize = 0xdead},
    {.expect = VHOST_USER_RESET_OWNER, .need_reply = 1, .act = A_ACK},
};

static void test_front_good(void **state)
{
	struct fake fk;
	struct vu_front *f;
	struct vu_mem_region r[2] = {{0, 0x10000, 0x7f0000000000ull, 0},
	                             {0x100000, 0x10000, 0x7f0000100000ull, 0}};
	struct vu_vring_addr a = {0, 0, 0x1000, 0x2000, 0x3000, 0};
	uint8_t cfg[4], cfgw[4] = {1, 2, 3, 4};
	int base = fd_count();
	int mfds[2], efd = eventfd(0, EFD_CLOEXEC);
	uint64_t v;
	unsigned base_idx;
	uint32_t req;

	mfds[0] = memfd_create("r0", MFD_CLOEXEC);
	mfds[1] = memfd_create("r1", MFD_CLOEXEC);
	fake_start(&fk, good_steps, ARRAY_SIZE(good_steps));
	f = front_open(&fk, 2000);
	assert_int_equal(vu_front_get_features(f, &v), 0);
	assert_true(v == FEATURES);
	assert_int_equal(vu_front_get_protocol_features(f, &v), 0);
	assert_true(v == PF_ALL);
	assert_int_equal(vu_front_set_protocol_features(f, v), 0);
	assert_true(vu_front_protocol_features(f) == PF_ALL);
	assert_int_equal(vu_front_set_owner(f), 0);
	assert_int_equal(vu_front_set_features(f, FEATURES), 0);
	assert_int_equal(vu_front_get_queue_num(f, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(vu_front_set_mem_table(f, r, mfds, 2), 0);
	assert_int_equal(vu_front_set_vring_num(f, 0, 256), 0);
	assert_int_equal(vu_front_set_vring_addr(f, &a), 0);
	assert_int_equal(vu_front_set_vring_base(f, 0, 0), 0);
	assert_int_equal(vu_front_set_vring_kick(f, 0, efd), 0);
	assert_int_equal(vu_front_set_vring_call(f, 0, -1), 0);
	assert_int_equal(vu_front_set_vring_enable(f, 0, true), 0);
	assert_int_equal(vu_front_get_config(f, 0, cfg, 4), 0);
	assert_memory_equal(cfg, "abcd", 4);
	assert_int_equal(vu_front_set_config(f, 0, cfgw, 4), 0);
	assert_int_equal(vu_front_get_vring_base(f, 0, &base_idx), 0);
	assert_int_equal(base_idx, 42);
	assert_true(vu_front_open_backend_channel(f) >= 0);
	assert_int_equal(backend_read_wait(f, &req), 1);
	assert_int_equal(req, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	assert_int_equal(vu_front_set_features(f, FEATURES), -EIO);
	assert_false(vu_front_broken(f));
	assert_int_equal(vu_front_get_config(f, 0, cfg, 4), -EIO);
	assert_false(vu_front_broken(f));
	assert_int_equal(vu_front_reset_owner(f), 0);
	/* Arguments we refuse to send. */
	assert_int_equal(vu_front_set_mem_table(f, r, mfds, 0), -EINVAL);
	assert_int_equal(vu_front_set_mem_table(f, r, mfds, 9), -EINVAL);
	assert_int_equal(vu_front_set_vring_kick(f, 256, efd), -EINVAL);
	assert_int_equal(vu_front_get_config(f, 0, cfg, 257), -EINVAL);
	assert_int_equal(vu_front_set_config(f, 255, cfgw, 2), -EINVAL);
	assert_false(vu_front_broken(f));
	vu_front_free(f);
	fake_stop(&fk);
	assert_true(fk.chan_acked);
	close(mfds[0]);
	close(mfds[1]);
	close(efd);
	assert_int_equal(fd_count(), base);
}

/* Without REPLY_ACK, set-requests carry no NEED_REPLY and wait for nothing. */
static const struct step noack_steps[] = {
    {.expect = VHOST_USER_SET_OWNER, .act = A_NONE},
    {.expect = VHOST_USER_SET_PROTOCOL_FEATURES, .act = A_NONE},
    {.expect = VHOST_USER_SET_VRING_NUM, .act = A_NONE},
    {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rval = 7},
};

static void test_front_no_reply_ack(void **state)
{
	struct fake fk;
	struct vu_front *f;
	uint64_t v;
	int base = fd_count();

	fake_start(&fk, noack_steps, ARRAY_SIZE(noack_steps));
	f = front_open(&fk, 2000);
	assert_int_equal(vu_front_set_owner(f), 0);
	assert_int_equal(vu_front_set_protocol_features(f, 1ull << VU_PF_MQ), 0);
	assert_int_equal(vu_front_set_vring_num(f, 0, 128), 0);
	assert_int_equal(vu_front_get_features(f, &v), 0);
	assert_int_equal(v, 7);
	vu_front_free(f);
	fake_stop(&fk);
	assert_int_equal(fd_count(), base);
}

enum call { C_GET_FEATURES, C_SET_OWNER_ACK, C_GET_VRING_BASE };

struct bad_reply_case {
	const char *what;
	enum call call;
	struct step step;
	int expect; /* 0: any error */
};

static const struct bad_reply_case bad_replies[] = {
    {"reply without REPLY flag",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rflags = VU_VERSION},
     -EPROTO},
    {"reply version 2",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rflags = 2 | VU_FLAG_REPLY},
     -EPROTO},
    {"NEED_REPLY on a reply",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES,
      .act = A_REPLY,
      .rflags = VU_VERSION | VU_FLAG_REPLY | VU_FLAG_NEED_REPLY},
     -EPROTO},
    {"wrong code",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rreq = VHOST_USER_GET_PROTOCOL_FEATURES},
     -EPROTO},
    {"wrong size 4",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rsize = 4},
     -EPROTO},
    {"wrong size 16",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rsize = 16},
     -EPROTO},
    {"extra fd",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rfds = 1},
     -EPROTO},
    {"8 extra fds",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_REPLY, .rfds = 8},
     -EPROTO},
    {"size 0xFFFFFFFF",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES,
      .act = A_RAWHDR,
      .rreq = VHOST_USER_GET_FEATURES,
      .rflags = VU_VERSION | VU_FLAG_REPLY,
      .rsize = 0xffffffffu},
     -EPROTO},
    {"no reply", C_GET_FEATURES, {.expect = VHOST_USER_GET_FEATURES, .act = A_NONE}, -ETIMEDOUT},
    {"header cut short",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES,
      .act = A_RAWHDR,
      .rreq = VHOST_USER_GET_FEATURES,
      .rflags = VU_VERSION | VU_FLAG_REPLY,
      .rsize = 8},
     -ETIMEDOUT},
    {"connection closed",
     C_GET_FEATURES,
     {.expect = VHOST_USER_GET_FEATURES, .act = A_CLOSE},
     -ECONNRESET},
    {"ack wrong size",
     C_SET_OWNER_ACK,
     {.expect = VHOST_USER_SET_OWNER, .need_reply = 1, .act = A_REPLY, .rsize = 4},
     -EPROTO},
    {"ack wrong code",
     C_SET_OWNER_ACK,
     {.expect = VHOST_USER_SET_OWNER,
      .need_reply = 1,
      .act = A_REPLY,
      .rreq = VHOST_USER_RESET_OWNER},
     -EPROTO},
    {"ack with fd",
     C_SET_OWNER_ACK,
     {.expect = VHOST_USER_SET_OWNER, .need_reply = 1, .act = A_REPLY, .rfds = 1},
     -EPROTO},
    {"no ack",
     C_SET_OWNER_ACK,
     {.expect = VHOST_USER_SET_OWNER, .need_reply = 1, .act = A_NONE},
     -ETIMEDOUT},
    {"vring base for another ring",
     C_GET_VRING_BASE,
     {.expect = VHOST_USER_GET_VRING_BASE,
      .act = A_REPLY,
      .echo = true,
      .patch_len = 1,
      .patch = {7}},
     -EPROTO},
    {"vring base above 16 bits",
     C_GET_VRING_BASE,
     {.expect = VHOST_USER_GET_VRING_BASE,
      .act = A_REPLY,
      .echo = true,
      .patch_off = 6,
      .patch_len = 1,
      .patch = {1}},
     -EPROTO},
};

static int bad_call(struct vu_front *f, enum call c)
{
	uint64_t v;
	unsigned b;

	switch (c) {
	case C_GET_FEATURES:
		return vu_front_get_features(f, &v);
	case C_SET_OWNER_ACK:
		return vu_front_set_owner(f);
	case C_GET_VRING_BASE:
		return vu_front_get_vring_base(f, 0, &b);
	}
	return 0;
}

static void test_front_bad_replies(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_replies); i++) {
		const struct bad_reply_case *c = &bad_replies[i];
		struct step steps[2] = {
		    {.expect = VHOST_USER_SET_PROTOCOL_FEATURES, .act = A_NONE},
		    c->step,
		};
		struct fake fk;
		struct vu_front *f;
		uint64_t v;
		uint64_t t0;
		int base = fd_count();
		int ret;

		fake_start(&fk, steps, 2);
		f = front_open(&fk, 300);
		assert_int_equal(vu_front_set_protocol_features(f, 1ull << VU_PF_REPLY_ACK), 0);
		t0 = vb_now_ns();
		ret = bad_call(f, c->call);
		print_message("bad reply %-28s -> %d (%s) after %llu ms\n", c->what, ret,
		              vu_front_error(f),
		              (unsigned long long)((vb_now_ns() - t0) / 1000000));
		assert_int_equal(ret, c->expect);
		assert_true(vu_front_broken(f));
		assert_true(strlen(vu_front_error(f)) > 0);
		/* Bounded wait: the 300 ms timeout, not forever. */
		assert_true(vb_now_ns() - t0 < 3000 * 1000000ull);
		/* Broken for good, without another exchange. */
		assert_int_equal(vu_front_get_features(f, &v), -EPIPE);
		assert_int_equal(vu_front_set_owner(f), -EPIPE);
		assert_int_equal(vu_front_open_backend_channel(f), -EPIPE);
		vu_front_free(f);
		fake_stop(&fk);
		assert_int_equal(fd_count(), base);
	}
}

struct chan_case {
	const char *what;
	uint64_t pf;
	struct step step;
	int expect;
	bool broken;
};

#define PF_CHAN ((1ull << VU_PF_BACKEND_REQ) | (1ull << VU_PF_CONFIG))

static const struct chan_case chan_cases[] = {
    {"config change with fd",
     PF_CHAN,
     {.act = A_CHAN_RAW, .rreq = 2, .rflags = VU_VERSION, .rsize = 0xdead, .rfds = 1},
     -EPROTO,
     true},
    {"config change size 4",
     PF_CHAN,
     {.act = A_CHAN_RAW, .rreq = 2, .rflags = VU_VERSION, .rsize = 4},
     -EPROTO,
     true},
    {"config change flagged REPLY",
     PF_CHAN,
     {.act = A_CHAN_RAW, .rreq = 2, .rflags = VU_VERSION | VU_FLAG_REPLY, .rsize = 0xdead},
     -EPROTO,
     true},
    {"unknown code 9",
     PF_CHAN,
     {.act = A_CHAN_RAW, .rreq = 9, .rflags = VU_VERSION, .rsize = 0xdead},
     -EPROTO,
     true},
    {"IOTLB miss",
     PF_CHAN,
     {.act = A_CHAN_RAW, .rreq = 1, .rflags = VU_VERSION, .rsize = 32},
     -EPROTO,
     true},
    {"config change without CONFIG",
     1ull << VU_PF_BACKEND_REQ,
     {.act = A_CHAN_RAW, .rreq = 2, .rflags = VU_VERSION, .rsize = 0xdead},
     -EPROTO,
     true},
    {"channel closed", PF_CHAN, {.act = A_CHAN_CLOSE}, -ECONNRESET, false},
};

static void test_front_backend_channel(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(chan_cases); i++) {
		const struct chan_case *c = &chan_cases[i];
		struct step steps[3] = {
		    {.expect = VHOST_USER_SET_PROTOCOL_FEATURES, .act = A_NONE},
		    {.expect = VHOST_USER_SET_BACKEND_REQ_FD, .fds = 1, .act = A_NONE},
		    c->step,
		};
		struct fake fk;
		struct vu_front *f;
		uint32_t req = 0;
		int base = fd_count();
		int ret;

		fake_start(&fk, steps, 3);
		f = front_open(&fk, 1000);
		assert_int_equal(vu_front_set_protocol_features(f, c->pf), 0);
		assert_true(vu_front_open_backend_channel(f) >= 0);
		ret = backend_read_wait(f, &req);
		print_message("backend channel %-28s -> %d (%s)\n", c->what, ret,
		              vu_front_error(f));
		assert_int_equal(ret, c->expect);
		assert_int_equal(vu_front_backend_fd(f), -1);
		assert_int_equal(vu_front_broken(f), c->broken);
		/* Found by fuzz_vu_front: a closed channel left no reason. */
		assert_true(strlen(vu_front_error(f)) > 0);
		assert_int_equal(vu_front_backend_read(f, &req), -ENOTCONN);
		vu_front_free(f);
		fake_stop(&fk);
		assert_int_equal(fd_count(), base);
	}
}

/*
 * Found by fuzz_vu_front: once the session is broken the channel acked and
 * handed out requests still; now it fails like every other call.
 */
static const struct step broken_chan_steps[] = {
    {.expect = VHOST_USER_SET_PROTOCOL_FEATURES, .act = A_NONE},
    {.expect = VHOST_USER_SET_BACKEND_REQ_FD, .fds = 1, .act = A_NONE},
    {.expect = VHOST_USER_GET_FEATURES,
     .act = A_CHAN_RAW,
     .rreq = VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
     .rflags = VU_VERSION | VU_FLAG_NEED_REPLY,
     .rsize = 0xdead},
    /* The GET_FEATURES reply without the REPLY flag breaks the session. */
    {.act = A_REPLY, .rflags = VU_VERSION},
};

static void test_front_broken_channel(void **state)
{
	struct fake fk;
	struct vu_front *f;
	struct pollfd p;
	uint32_t req = 0;
	uint64_t v;
	int base = fd_count();

	fake_start(&fk, broken_chan_steps, ARRAY_SIZE(broken_chan_steps));
	f = front_open(&fk, 1000);
	assert_int_equal(vu_front_set_protocol_features(f, PF_CHAN), 0);
	assert_true(vu_front_open_backend_channel(f) >= 0);
	assert_int_equal(vu_front_get_features(f, &v), -EPROTO);
	assert_true(vu_front_broken(f));
	/* The CONFIG_CHANGE_MSG is waiting on the channel. */
	p = (struct pollfd){.fd = vu_front_backend_fd(f), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_int_equal(vu_front_backend_read(f, &req), -EPIPE);
	assert_int_equal(req, 0);
	assert_int_equal(vu_front_backend_fd(f), -1);
	assert_true(vu_front_broken(f));
	vu_front_free(f);
	fake_stop(&fk);
	assert_int_equal(fd_count(), base);
}

static void test_front_connect_fails(void **state)
{
	char err[128] = "";
	char longpath[200];
	int base = fd_count();

	assert_null(vu_front_connect("/tmp/vb-test-no-such-socket", 100, err, sizeof(err)));
	assert_true(strlen(err) > 0);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	assert_null(vu_front_connect(longpath, 100, err, sizeof(err)));
	assert_int_equal(fd_count(), base);
	vu_front_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_header_payload),
	    cmocka_unit_test(test_recv_split_200ms),
	    cmocka_unit_test(test_recv_timeout),
	    cmocka_unit_test(test_eof_mid_header),
	    cmocka_unit_test(test_eof_between_messages),
	    cmocka_unit_test(test_bad_header),
	    cmocka_unit_test(test_fds_on_fdless_request),
	    cmocka_unit_test(test_too_many_fds),
	    cmocka_unit_test(test_too_many_fds_split),
	    cmocka_unit_test(test_rx_reset_closes),
	    cmocka_unit_test(test_back_to_back_fds),
	    cmocka_unit_test(test_send_limits),
	    cmocka_unit_test(test_send_partial_fds_once),
	    cmocka_unit_test(test_front_good),
	    cmocka_unit_test(test_front_no_reply_ack),
	    cmocka_unit_test(test_front_bad_replies),
	    cmocka_unit_test(test_front_backend_channel),
	    cmocka_unit_test(test_front_broken_channel),
	    cmocka_unit_test(test_front_connect_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
