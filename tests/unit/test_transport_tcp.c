/*
 * TCP transport over 127.0.0.1: a listener on port 0 and a client (or a raw
 * socket peer playing a hostile node) on one event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "transport/transport.h"
#include "transport/transport_private.h"

#define MIB (1u << 20)

static struct vb_loop *loop;
static struct event *tick;

/* --- loop helpers ------------------------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void run_until(bool (*done)(void *), void *arg, unsigned ms)
{
	uint64_t end = vb_now_ns() + (uint64_t)ms * 1000000u;

	while (!(done && done(arg)) && vb_now_ns() < end) {
		event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
	}
}

static void run_for(unsigned ms)
{
	run_until(NULL, NULL, ms);
}

/* Runs what is ready now: on loopback a write has reached the peer when send() returns. */
static void run_ready(void)
{
	event_base_loop(vb_loop_base(loop), EVLOOP_NONBLOCK);
	event_base_loop(vb_loop_base(loop), EVLOOP_NONBLOCK);
}

/* --- messages: [u32 len][u32 seq][pattern of (seq, offset)] ------------------------------- */

static uint8_t pattern(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static uint8_t *msg_make(size_t len, uint32_t seq)
{
	uint8_t *m = malloc(len);
	size_t i;

	assert_non_null(m);
	put_le32(m, (uint32_t)len);
	put_le32(m + 4, seq);
	for (i = 8; i < len; i++) {
		m[i] = pattern(seq, i);
	}
	return m;
}

static bool msg_ok(const uint8_t *m, size_t len, uint32_t seq)
{
	size_t i;

	if (len < TRANSPORT_MIN_MSG || get_le32(m) != len || get_le32(m + 4) != seq) {
		return false;
	}
	for (i = 8; i < len; i++) {
		if (m[i] != pattern(seq, i)) {
			return false;
		}
	}
	return true;
}

static int send_msg(struct transport *t, size_t len, uint32_t seq)
{
	uint8_t *m = msg_make(len, seq);
	struct iovec iov = {.iov_base = m, .iov_len = len};
	int rc = transport_send(t, &iov, 1);

	free(m);
	return rc;
}

/* --- an endpoint recording its upcalls ---------------------------------------------------- */

struct ep {
	struct transport *t;
	int accepts, ups, downs, writables, errors, echo_fail;
	char reason[256];
	uint32_t rx;         /* messages received, also the next expected seq */
	const size_t *sizes; /* expected size of message seq, if set */
	size_t nsizes, sent; /* sender: sizes[sent..] still to send */
	bool echo;           /* send each message back; pause while not writable */
	uint32_t pause_at;   /* pause_rx(1) from on_message once rx reaches this (0: never) */
	uint32_t bounce_at;  /* pause_rx(1) then pause_rx(0) from on_message at this rx */
	bool pause_every;    /* pause_rx(1) from every on_message */
	bool close_on_msg, close_on_down, close_on_writable, close_on_accept;
};

static void ep_pump(struct ep *e)
{
	while (e->t && e->sent < e->nsizes && transport_writable(e->t)) {
		if (send_msg(e->t, e->sizes[e->sent], (uint32_t)e->sent) < 0) {
			e->errors++;
			return;
		}
		e->sent++;
	}
}

static void ep_close(struct ep *e)
{
	transport_close(e->t);
	e->t = NULL;
}

static void on_message(struct transport *t, const uint8_t *buf, size_t len, void *arg)
{
	struct ep *e = arg;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	if (t != e->t || !msg_ok(buf, len, e->rx) || (e->sizes && len != e->sizes[e->rx])) {
		e->errors++;
	}
	e->rx++;
	if (e->echo) {
		if (transport_send(t, &iov, 1) < 0) {
			e->echo_fail++;
		}
		if (!transport_writable(t)) {
			transport_pause_rx(t, 1);
		}
	}
	if (e->pause_at && e->rx == e->pause_at) {
		transport_pause_rx(t, 1);
	}
	if (e->bounce_at && e->rx == e->bounce_at) {
		transport_pause_rx(t, 1);
		transport_pause_rx(t, 0);
	}
	if (e->pause_every) {
		transport_pause_rx(t, 1);
	}
	if (e->close_on_msg) {
		ep_close(e);
	}
}

static void on_state(struct transport *t, enum transport_state st, const char *reason, void *arg)
{
	struct ep *e = arg;

	if (t != e->t) {
		e->errors++;
	}
	if (st == TRANSPORT_UP) {
		e->ups++;
		ep_pump(e);
		return;
	}
	e->downs++;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
	if (e->close_on_down) {
		ep_close(e);
	}
}

static void on_writable(struct transport *t, void *arg)
{
	struct ep *e = arg;

	e->writables++;
	if (e->close_on_writable) {
		ep_close(e);
		return;
	}
	if (e->echo) {
		transport_pause_rx(t, 0);
	}
	ep_pump(e);
}

static const struct transport_upcalls ep_upcalls = {
    .on_message = on_message,
    .on_state = on_state,
    .on_writable = on_writable,
};

static void accept_cb(struct transport *t, void *arg)
{
	struct ep *e = arg;

	e->accepts++;
	e->t = t;
	if (e->close_on_accept) {
		ep_close(e);
		return;
	}
	transport_set_upcalls(t, &ep_upcalls, e);
}

/* --- a listener and its peer -------------------------------------------------------------- */

struct pair {
	struct transport_listener *l;
	struct ep cli, srv;
	int raw; /* raw socket peer, or -1 */
};

static const struct transport_params params_default = {.max_msg = MIB, .tx_high_water = 256 * 1024};

static bool pair_ready(void *arg)
{
	struct pair *p = arg;

	return p->srv.accepts > 0 && (p->raw >= 0 || p->cli.ups > 0 || p->cli.downs > 0);
}

static void pair_listen(struct pair *p, const struct transport_params *tp)
{
	memset(p, 0, sizeof(*p));
	p->raw = -1;
	assert_int_equal(transport_listen(loop, "tcp://127.0.0.1:0", tp, accept_cb, &p->srv, &p->l),
	                 0);
}

static void pair_open(struct pair *p, const struct transport_params *tp)
{
	pair_listen(p, tp);
	assert_int_equal(transport_connect(loop, transport_listener_uri(p->l), tp, &ep_upcalls,
	                                   &p->cli, &p->cli.t),
	                 0);
	run_until(pair_ready, p, 3000);
	assert_int_equal(p->cli.ups, 1);
	assert_int_equal(p->srv.accepts, 1);
	assert_non_null(p->srv.t);
}

static int uri_port(const char *uri)
{
	const char *c = strrchr(uri, ':');

	assert_non_null(c);
	return atoi(c + 1);
}

/* A raw peer on a nonblocking socket; the loop runs whenever the kernel pushes back. */
static void pair_open_raw(struct pair *p, const struct transport_params *tp)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	pair_listen(p, tp);
	sin.sin_port = htons((uint16_t)uri_port(transport_listener_uri(p->l)));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->raw = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->raw >= 0);
	/* Without Nagle each small write leaves at once, so the pieces arrive as written. */
	assert_int_equal(setsockopt(p->raw, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)), 0);
	assert_int_equal(connect(p->raw, (struct sockaddr *)&sin, sizeof(sin)), 0);
	run_until(pair_ready, p, 3000);
	assert_non_null(p->srv.t);
}

static void raw_write(struct pair *p, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = send(p->raw, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
			continue;
		}
		b += n;
		len -= (size_t)n;
	}
}

static void pair_close(struct pair *p)
{
	ep_close(&p->cli);
	ep_close(&p->srv);
	transport_listener_free(p->l);
	if (p->raw >= 0) {
		close(p->raw);
	}
	run_for(5);
}

static bool srv_down(void *arg)
{
	return ((struct pair *)arg)->srv.downs > 0;
}

static bool cli_down(void *arg)
{
	return ((struct pair *)arg)->cli.downs > 0;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_parse_hostport(void **state)
{
	static const char host255[] =
	    "h234567890123456789012345678901234567890123456789012345678901234"
	    "5678901234567890123456789012345678901234567890123456789012345678"
	    "9012345678901234567890123456789012345678901234567890123456789012"
	    "345678901234567890123456789012345678901234567890123456789012345";
	static const struct {
		const char *in;
		int rc;
		const char *host;
		uint16_t port;
	} cases[] = {
	    {"127.0.0.1:7800", 0, "127.0.0.1", 7800},
	    {"[::1]:80", 0, "::1", 80},
	    {"[::]:0", 0, "::", 0},
	    {"[fe80::1%eth0]:1", 0, "fe80::1%eth0", 1},
	    {"ecu-a.local:7800", 0, "ecu-a.local", 7800},
	    {"h:65535", 0, "h", 65535},
	    {"h:007", 0, "h", 7},
	    {"h:65536", -EINVAL, NULL, 0},
	    {"h:99999", -EINVAL, NULL, 0},
	    {"h:000080", -EINVAL, NULL, 0},
	    {"h:", -EINVAL, NULL, 0},
	    {":80", -EINVAL, NULL, 0},
	    {"h", -EINVAL, NULL, 0},
	    {"", -EINVAL, NULL, 0},
	    {"::1:80", -EINVAL, NULL, 0},
	    {"fe80::1:80", -EINVAL, NULL, 0},
	    {"[::1]", -EINVAL, NULL, 0},
	    {"[::1]80", -EINVAL, NULL, 0},
	    {"[::1]:", -EINVAL, NULL, 0},
	    {"[]:80", -EINVAL, NULL, 0},
	    {"[::1:80", -EINVAL, NULL, 0},
	    {"[a b]:80", -EINVAL, NULL, 0},
	    {"h:80/x", -EINVAL, NULL, 0},
	    {"h:-1", -EINVAL, NULL, 0},
	    {"h:+80", -EINVAL, NULL, 0},
	    {"h:8 0", -EINVAL, NULL, 0},
	    {"a b:80", -EINVAL, NULL, 0},
	    {"user@h:80", -EINVAL, NULL, 0},
	    {"h%e:80", -EINVAL, NULL, 0},
	};
	struct transport_hostport hp;
	char longhost[300];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(&hp, 0xa5, sizeof(hp));
		assert_int_equal(transport_parse_hostport(cases[i].in, strlen(cases[i].in), &hp),
		                 cases[i].rc);
		if (cases[i].rc == 0) {
			assert_string_equal(hp.host, cases[i].host);
			assert_int_equal(hp.port, cases[i].port);
		}
	}
	/* The length bounds the parse: a NUL inside it is junk. */
	assert_int_equal(transport_parse_hostport("h:80\0", 5, &hp), -EINVAL);
	assert_int_equal(transport_parse_hostport("h:8080", 4, &hp), 0);
	assert_int_equal(hp.port, 80);
	/* 255 host bytes fit, 256 do not. */
	snprintf(longhost, sizeof(longhost), "%s:1", host255);
	assert_int_equal(transport_parse_hostport(longhost, strlen(longhost), &hp), 0);
	assert_string_equal(hp.host, host255);
	snprintf(longhost, sizeof(longhost), "%sx:1", host255);
	assert_int_equal(transport_parse_hostport(longhost, strlen(longhost), &hp), -EINVAL);
}

static void test_bad_uri_and_params(void **state)
{
	static const struct {
		const char *uri;
		int rc;
	} cases[] = {
	    {"udp://127.0.0.1:1", -EPROTONOSUPPORT},
	    {"tc://127.0.0.1:1", -EPROTONOSUPPORT},
	    {"tcpx://127.0.0.1:1", -EPROTONOSUPPORT},
	    {"127.0.0.1:1", -EINVAL},
	    {"tcp:/127.0.0.1:1", -EINVAL},
	    {"tcp://127.0.0.1", -EINVAL},
	    {"tcp://127.0.0.1:0", -EINVAL}, /* connect needs a port */
	    {"tcp://127.0.0.1:70000", -EINVAL},
	    {"tcp://::1:80", -EINVAL},
	};
	const struct transport_params small = {.max_msg = TRANSPORT_MIN_MSG - 1,
	                                       .tx_high_water = 4096};
	const struct transport_params nohw = {.max_msg = 4096, .tx_high_water = 0};
	const struct transport_params huge = {.max_msg = (size_t)UINT32_MAX + 1,
	                                      .tx_high_water = 4096};
	struct transport_listener *l = NULL;
	struct transport *t = NULL;
	struct ep e = {0};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(
		    transport_connect(loop, cases[i].uri, &params_default, &ep_upcalls, &e, &t),
		    cases[i].rc);
	}
	assert_int_equal(transport_connect(loop, "tcp://127.0.0.1:1", &small, &ep_upcalls, &e, &t),
	                 -EINVAL);
	assert_int_equal(transport_connect(loop, "tcp://127.0.0.1:1", &nohw, &ep_upcalls, &e, &t),
	                 -EINVAL);
	assert_int_equal(transport_connect(loop, "tcp://127.0.0.1:1", &huge, &ep_upcalls, &e, &t),
	                 -EINVAL);
	assert_int_equal(transport_connect(loop, "tcp://127.0.0.1:1", NULL, &ep_upcalls, &e, &t),
	                 -EINVAL);
	assert_int_equal(
	    transport_listen(loop, "tcp://127.0.0.1", &params_default, accept_cb, &e, &l), -EINVAL);
	assert_int_equal(
	    transport_listen(loop, "sctp://127.0.0.1:0", &params_default, accept_cb, &e, &l),
	    -EPROTONOSUPPORT);
	assert_null(l);
	assert_null(t);
	run_for(5);
	assert_int_equal(e.ups + e.downs, 0);
}

static void test_listener_uri(void **state)
{
	struct transport_listener *l, *l2 = NULL, *l6;
	struct pair p;
	char uri[64];

	assert_int_equal(
	    transport_listen(loop, "tcp://127.0.0.1:0", &params_default, accept_cb, NULL, &l), 0);
	assert_true(strncmp(transport_listener_uri(l), "tcp://127.0.0.1:", 16) == 0);
	assert_true(uri_port(transport_listener_uri(l)) > 0);
	/* Taken port: SO_REUSEADDR does not allow two listeners. */
	assert_int_equal(transport_listen(loop, transport_listener_uri(l), &params_default,
	                                  accept_cb, NULL, &l2),
	                 -EADDRINUSE);
	assert_null(l2);
	transport_listener_free(l);
	transport_listener_free(NULL);

	/* [::] takes IPv4 too (dual stack), and reports a bracketed address. */
	if (transport_listen(loop, "tcp://[::]:0", &params_default, accept_cb, NULL, &l6) != 0) {
		skip();
	}
	assert_true(strncmp(transport_listener_uri(l6), "tcp://[::]:", 11) == 0);
	assert_true(uri_port(transport_listener_uri(l6)) > 0);
	transport_listener_free(l6);
	memset(&p, 0, sizeof(p));
	assert_int_equal(
	    transport_listen(loop, "tcp://[::]:0", &params_default, accept_cb, &p.srv, &p.l), 0);
	p.raw = -1;
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", uri_port(transport_listener_uri(p.l)));
	assert_int_equal(
	    transport_connect(loop, uri, &params_default, &ep_upcalls, &p.cli, &p.cli.t), 0);
	run_until(pair_ready, &p, 3000);
	assert_int_equal(p.cli.ups, 1);
	assert_int_equal(p.srv.accepts, 1);
	/* The v4-mapped peer address prints as plain IPv4. */
	assert_true(strncmp(transport_peer(p.srv.t), "tcp://127.0.0.1:", 16) == 0);
	assert_string_equal(transport_peer(p.cli.t), uri);
	assert_string_equal(transport_kind(p.cli.t), "tcp");
	pair_close(&p);
}

static bool cli_got_all(void *arg)
{
	struct pair *p = arg;

	return p->cli.rx >= p->cli.nsizes || p->cli.errors || p->srv.errors || p->cli.downs;
}

/* Client sends sizes[] honouring backpressure; the server echoes; both check order and bytes. */
static void test_roundtrip_sizes(void **state)
{
	static const size_t sizes[] = {
	    12,      13,  100, 4095, 4096, 4097, 65535, 65536, 65537, 262143, 262144,
	    MIB - 1, MIB, 12,  MIB,  1000, MIB,  17,    MIB,   MIB,   300000,
	};
	struct transport_stats cs, ss;
	struct pair p;

	pair_open(&p, &params_default);
	p.srv.echo = true;
	p.srv.sizes = p.cli.sizes = sizes;
	p.cli.nsizes = ARRAY_SIZE(sizes);
	ep_pump(&p.cli);
	run_until(cli_got_all, &p, 20000);
	assert_int_equal(p.cli.errors, 0);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.echo_fail, 0);
	assert_int_equal(p.cli.downs + p.srv.downs, 0);
	assert_int_equal(p.cli.sent, ARRAY_SIZE(sizes));
	assert_int_equal(p.srv.rx, ARRAY_SIZE(sizes));
	assert_int_equal(p.cli.rx, ARRAY_SIZE(sizes));

	transport_get_stats(p.cli.t, &cs);
	transport_get_stats(p.srv.t, &ss);
	assert_int_equal(cs.tx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(cs.rx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(ss.tx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(ss.rx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(cs.tx_bytes, ss.rx_bytes);
	assert_int_equal(ss.tx_bytes, cs.rx_bytes);
	assert_int_equal(cs.tx_queued, 0);
	assert_int_equal(ss.tx_queued, 0);
	pair_close(&p);
}

static bool srv_rx_n(void *arg)
{
	struct pair *p = arg;

	return p->srv.rx >= p->srv.nsizes || p->srv.downs;
}

/* Many messages in one write, then one message dribbled in small pieces. */
static void test_many_in_one_write(void **state)
{
	enum { N = 300 };
	size_t sizes[N], total = 0, off = 0, i;
	uint8_t *buf, *m;
	struct pair p;

	for (i = 0; i < N; i++) {
		sizes[i] = TRANSPORT_MIN_MSG + (i * 37) % 3001;
		total += sizes[i];
	}
	buf = malloc(total);
	assert_non_null(buf);
	for (i = 0; i < N; i++) {
		m = msg_make(sizes[i], (uint32_t)i);
		memcpy(buf + off, m, sizes[i]);
		off += sizes[i];
		free(m);
	}
	pair_open_raw(&p, &params_default);
	p.srv.sizes = NULL;
	p.srv.nsizes = N;
	raw_write(&p, buf, total);
	run_until(srv_rx_n, &p, 5000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 0);
	free(buf);

	/* 5000 bytes in 7-byte pieces: nothing is delivered before the last piece. */
	m = msg_make(5000, N);
	for (off = 0; off < 5000; off += 7) {
		raw_write(&p, m + off, VB_MIN(7, 5000 - off));
		event_base_loop(vb_loop_base(loop), EVLOOP_NONBLOCK);
		if (off + 7 < 5000) {
			assert_int_equal(p.srv.rx, N);
		}
	}
	p.srv.nsizes = N + 1;
	run_until(srv_rx_n, &p, 3000);
	assert_int_equal(p.srv.rx, N + 1);
	assert_int_equal(p.srv.errors, 0);
	free(m);
	pair_close(&p);
}

/* A hostile length prefix drops the link on its 4 bytes alone, before any body arrives. */
static void test_bad_prefix(void **state)
{
	static const struct {
		uint32_t prefix;
		bool drop;
	} cases[] = {
	    {0, true},    {4, true},       {11, true},          {12, false},
	    {MIB, false}, {MIB + 1, true}, {0x7fffffffu, true}, {0xffffffffu, true},
	};
	uint8_t hdr[4], *m;
	struct pair p;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		pair_open_raw(&p, &params_default);
		put_le32(hdr, cases[i].prefix);
		raw_write(&p, hdr, sizeof(hdr));
		run_until(srv_down, &p, cases[i].drop ? 2000 : 100);
		assert_int_equal(p.srv.downs, cases[i].drop ? 1 : 0);
		assert_int_equal(p.srv.rx, 0);
		if (cases[i].drop) {
			assert_non_null(strstr(p.srv.reason, "length"));
			/* DOWN once, even if the peer keeps sending or closes. */
			raw_write(&p, "junkjunkjunk", 12);
			close(p.raw);
			p.raw = -1;
			run_for(50);
			assert_int_equal(p.srv.downs, 1);
		} else {
			/* A valid prefix waits for its body and then delivers it. */
			m = msg_make(cases[i].prefix, 0);
			p.srv.nsizes = 1;
			raw_write(&p, m + 4, cases[i].prefix - 4);
			run_until(srv_rx_n, &p, 3000);
			assert_int_equal(p.srv.rx, 1);
			assert_int_equal(p.srv.errors, 0);
			assert_int_equal(p.srv.downs, 0);
			free(m);
		}
		pair_close(&p);
	}
}

static void test_peer_close(void **state)
{
	uint8_t *m = msg_make(100, 0);
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	struct pair p;

	/* Orderly close after a message: the message, then exactly one DOWN. */
	pair_open_raw(&p, &params_default);
	raw_write(&p, m, 100);
	close(p.raw);
	p.raw = -1;
	run_until(srv_down, &p, 2000);
	run_for(50);
	assert_int_equal(p.srv.rx, 1);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 1);
	assert_true(strlen(p.srv.reason) > 0);
	pair_close(&p);

	/* Close mid-message. */
	pair_open_raw(&p, &params_default);
	raw_write(&p, m, 50);
	close(p.raw);
	p.raw = -1;
	run_until(srv_down, &p, 2000);
	run_for(50);
	assert_int_equal(p.srv.rx, 0);
	assert_int_equal(p.srv.downs, 1);
	assert_non_null(strstr(p.srv.reason, "mid-message"));
	pair_close(&p);

	/* Reset. */
	pair_open_raw(&p, &params_default);
	assert_int_equal(setsockopt(p.raw, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(p.raw);
	p.raw = -1;
	run_until(srv_down, &p, 2000);
	run_for(50);
	assert_int_equal(p.srv.downs, 1);
	pair_close(&p);

	/* Link to link: the server closes; the client sees one DOWN, the server none. */
	pair_open(&p, &params_default);
	ep_close(&p.srv);
	run_until(cli_down, &p, 2000);
	run_for(50);
	assert_int_equal(p.cli.downs, 1);
	assert_int_equal(p.srv.downs, 0);
	assert_int_equal(send_msg(p.cli.t, 100, 0), -ENOTCONN);
	assert_false(transport_writable(p.cli.t));
	pair_close(&p);
	free(m);
}

static bool cli_writable_and_srv_all(void *arg)
{
	struct pair *p = arg;

	return (p->cli.writables > 0 && p->srv.rx >= p->cli.sent) || p->srv.downs || p->cli.downs;
}

static void test_backpressure(void **state)
{
	const struct transport_params tp = {.max_msg = 256 * 1024, .tx_high_water = 256 * 1024};
	const size_t limit = 4 * tp.tx_high_water + tp.max_msg;
	struct transport_stats st;
	bool blocked = false;
	int rounds, rc;
	struct pair p;

	pair_open(&p, &tp);
	transport_pause_rx(p.srv.t, 1);
	/* Fill our buffer and the kernel's until the link stays unwritable. */
	for (rounds = 0; rounds < 2000 && !blocked; rounds++) {
		while (transport_writable(p.cli.t)) {
			assert_int_equal(send_msg(p.cli.t, tp.max_msg, (uint32_t)p.cli.sent), 0);
			p.cli.sent++;
		}
		run_for(10);
		if (!transport_writable(p.cli.t)) {
			p.cli.writables = 0;
			run_for(100);
			blocked = !transport_writable(p.cli.t) && p.cli.writables == 0;
		}
	}
	assert_true(blocked);
	assert_int_equal(p.srv.rx, 0);

	/* Ignoring backpressure is refused once far over the mark; memory stays bounded. */
	do {
		rc = send_msg(p.cli.t, 1000, (uint32_t)p.cli.sent);
		if (rc == 0) {
			p.cli.sent++;
		}
		transport_get_stats(p.cli.t, &st);
		assert_true(st.tx_queued <= limit);
	} while (rc == 0);
	assert_int_equal(rc, -ENOBUFS);
	assert_true(st.tx_queued + 1000 > limit);

	transport_pause_rx(p.srv.t, 0);
	run_until(cli_writable_and_srv_all, &p, 10000);
	assert_true(p.cli.writables >= 1);
	assert_true(transport_writable(p.cli.t));
	assert_int_equal(p.srv.rx, p.cli.sent);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs + p.cli.downs, 0);
	pair_close(&p);
}

/*
 * Pausing from on_message holds the messages already buffered behind it;
 * resuming delivers them although no new data arrives. Pausing from outside
 * holds what arrives later.
 */
static void test_pause_resume(void **state)
{
	uint8_t buf[20 * 64];
	struct pair p;
	uint32_t i;
	uint8_t *m;

	pair_open_raw(&p, &params_default);
	for (i = 0; i < 20; i++) {
		m = msg_make(64, i);
		memcpy(buf + 64 * i, m, 64);
		free(m);
	}
	p.srv.pause_at = 3;
	raw_write(&p, buf, sizeof(buf)); /* one segment: all 20 land in one read */
	run_for(100);
	assert_int_equal(p.srv.rx, 3);
	transport_pause_rx(p.srv.t, 0);
	p.srv.nsizes = 20;
	run_until(srv_rx_n, &p, 2000);
	assert_int_equal(p.srv.rx, 20);
	assert_int_equal(p.srv.errors, 0);

	p.srv.pause_at = 0;
	transport_pause_rx(p.srv.t, 1);
	for (i = 20; i < 30; i++) {
		m = msg_make(64, i);
		raw_write(&p, m, 64);
		free(m);
	}
	run_for(100);
	assert_int_equal(p.srv.rx, 20);
	transport_pause_rx(p.srv.t, 0);
	p.srv.nsizes = 30;
	run_until(srv_rx_n, &p, 2000);
	assert_int_equal(p.srv.rx, 30);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 0);
	pair_close(&p);
}

/* sizes[i] bytes of message seq first_seq + i, back to back, as one stream. */
static uint8_t *stream_make(const size_t *sizes, size_t n, uint32_t first_seq, size_t *total)
{
	size_t off = 0, i;
	uint8_t *buf, *m;

	*total = 0;
	for (i = 0; i < n; i++) {
		*total += sizes[i];
	}
	buf = malloc(*total);
	assert_non_null(buf);
	for (i = 0; i < n; i++) {
		m = msg_make(sizes[i], first_seq + (uint32_t)i);
		memcpy(buf + off, m, sizes[i]);
		off += sizes[i];
		free(m);
	}
	return buf;
}

/* Writes in pieces of `piece` bytes, letting the link read after each. */
static void raw_write_pieces(struct pair *p, const uint8_t *buf, size_t len, size_t piece)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = VB_MIN(piece, len - off);
		raw_write(p, buf + off, n);
		event_base_loop(vb_loop_base(loop), EVLOOP_NONBLOCK);
	}
}

/*
 * Messages larger than the receive buffer make it grow (with a partial
 * message already in it, as the odd piece size splits them anywhere); a run
 * of small ones lets it shrink; large ones after that grow it again. Order,
 * bytes and stats must survive every resize.
 */
static void test_rx_buffer_growth(void **state)
{
	const struct transport_params tp = {.max_msg = 2 * MIB, .tx_high_water = 256 * 1024};
	/* Around 64 KiB (the first buffer) and at max_msg; then 80 small ones, then large again. */
	static const size_t head[] = {100, 70000, 12, 2 * MIB, 65535, 65536, 65537, 13, 2 * MIB};
	static const size_t pieces[] = {100003, 65536, 4093, 1 * MIB + 1};
	static size_t sizes[200];
	struct transport_stats st;
	size_t n = 0, total, i, k;
	struct pair p;
	uint8_t *buf;

	for (i = 0; i < ARRAY_SIZE(head); i++) {
		sizes[n++] = head[i];
	}
	for (i = 0; i < 80; i++) {
		sizes[n++] = TRANSPORT_MIN_MSG + i * 97;
	}
	sizes[n++] = 300000;
	sizes[n++] = 12;
	sizes[n++] = 2 * MIB - 1;
	sizes[n++] = 70000;
	buf = stream_make(sizes, n, 0, &total);

	for (k = 0; k < ARRAY_SIZE(pieces); k++) {
		pair_open_raw(&p, &tp);
		p.srv.sizes = sizes;
		p.srv.nsizes = n;
		raw_write_pieces(&p, buf, total, pieces[k]);
		run_until(srv_rx_n, &p, 10000);
		assert_int_equal(p.srv.rx, n);
		assert_int_equal(p.srv.errors, 0);
		assert_int_equal(p.srv.downs, 0);
		transport_get_stats(p.srv.t, &st);
		assert_int_equal(st.rx_msgs, n);
		assert_int_equal(st.rx_bytes, total);
		pair_close(&p);
	}
	free(buf);
}

static bool srv_rx_any(void *arg)
{
	return ((struct pair *)arg)->srv.rx > 0;
}

/* Many small messages in one segment are all delivered by the wakeup that reads them. */
static void test_many_small_one_read(void **state)
{
	enum { N = 1000 };
	static size_t sizes[N];
	size_t total, i;
	struct pair p;
	uint8_t *buf;

	for (i = 0; i < N; i++) {
		sizes[i] = TRANSPORT_MIN_MSG + i % 40;
	}
	buf = stream_make(sizes, N, 0, &total);
	assert_true(total < 64 * 1024); /* one segment on loopback, one read */
	pair_open_raw(&p, &params_default);
	p.srv.sizes = sizes;
	raw_write(&p, buf, total);
	run_until(srv_rx_any, &p, 2000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 0);
	free(buf);
	pair_close(&p);
}

/*
 * One byte per write: every split of a prefix and of a body. A message is
 * delivered by the byte that completes it, not before; a bad prefix drops
 * the link on its fourth byte, not before.
 */
static void test_split_every_byte(void **state)
{
	static const size_t sizes[] = {16, 12, 20, 13};
	static const struct {
		uint32_t prefix;
		bool drop;
	} tails[] = {
	    {11, true}, {MIB + 1, true}, {0xffffffffu, true}, {0x01000000u, true}, {300, false},
	};
	size_t total, i, t, done, want;
	uint8_t *buf, hdr[4];
	struct pair p;

	buf = stream_make(sizes, ARRAY_SIZE(sizes), 0, &total);
	for (t = 0; t < ARRAY_SIZE(tails); t++) {
		pair_open_raw(&p, &params_default);
		p.srv.sizes = sizes;
		for (i = 0, done = 0, want = 0; i < total; i++) {
			raw_write(&p, buf + i, 1);
			if (i + 1 == done + sizes[want]) {
				done += sizes[want++];
				p.srv.nsizes = want;
				run_until(srv_rx_n, &p, 2000);
			} else {
				run_ready();
			}
			assert_int_equal(p.srv.rx, want);
		}
		assert_int_equal(p.srv.errors, 0);
		put_le32(hdr, tails[t].prefix);
		for (i = 0; i < 3; i++) {
			raw_write(&p, hdr + i, 1);
			run_ready();
			assert_int_equal(p.srv.downs, 0);
		}
		raw_write(&p, hdr + 3, 1);
		run_until(srv_down, &p, tails[t].drop ? 2000 : 50);
		assert_int_equal(p.srv.downs, tails[t].drop ? 1 : 0);
		assert_int_equal(p.srv.rx, ARRAY_SIZE(sizes));
		pair_close(&p);
	}
	free(buf);
}

static bool srv_rx_or_down(void *arg)
{
	struct pair *p = arg;

	return p->srv.rx >= p->srv.nsizes || p->srv.downs;
}

/*
 * Pausing inside on_message holds every message already buffered behind
 * it, and the peer's FIN behind them; each resume delivers from the buffer
 * without new data; pause and resume in one upcall changes nothing.
 */
static void test_pause_in_message_buffered(void **state)
{
	enum { N = 20 };
	static size_t sizes[N + 1];
	size_t total, i;
	struct pair p;
	uint8_t *buf;

	for (i = 0; i < N; i++) {
		sizes[i] = 100 + i;
	}
	sizes[N] = 200000;
	buf = stream_make(sizes, N + 1, 0, &total);

	/* One message per resume, then the FIN once all are delivered. */
	pair_open_raw(&p, &params_default);
	p.srv.sizes = sizes;
	p.srv.pause_every = true;
	raw_write(&p, buf, total - sizes[N]);
	shutdown(p.raw, SHUT_WR);
	run_for(50);
	assert_int_equal(p.srv.rx, 1);
	for (i = 2; i <= N; i++) {
		transport_pause_rx(p.srv.t, 0);
		run_for(5);
		assert_int_equal(p.srv.rx, i);
		assert_int_equal(p.srv.downs, 0);
	}
	transport_pause_rx(p.srv.t, 0);
	run_until(srv_down, &p, 2000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.downs, 1);
	assert_null(strstr(p.srv.reason, "mid-message"));
	assert_int_equal(p.srv.errors, 0);
	pair_close(&p);

	/* Paused at 3 with a partial large message buffered too; its rest arrives later. */
	pair_open_raw(&p, &params_default);
	p.srv.sizes = sizes;
	p.srv.pause_at = 3;
	raw_write(&p, buf, total - 1000);
	run_for(50);
	assert_int_equal(p.srv.rx, 3);
	transport_pause_rx(p.srv.t, 0);
	p.srv.nsizes = N;
	run_until(srv_rx_or_down, &p, 2000);
	run_for(20);
	assert_int_equal(p.srv.rx, N);
	raw_write(&p, buf + total - 1000, 1000);
	p.srv.nsizes = N + 1;
	run_until(srv_rx_or_down, &p, 2000);
	assert_int_equal(p.srv.rx, N + 1);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 0);
	pair_close(&p);

	/* Pause and resume inside one upcall: delivery goes on. */
	pair_open_raw(&p, &params_default);
	p.srv.sizes = sizes;
	p.srv.bounce_at = 2;
	p.srv.nsizes = N;
	raw_write(&p, buf, total - sizes[N]);
	run_until(srv_rx_or_down, &p, 2000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.errors, 0);
	pair_close(&p);

	/* Paused from outside: messages, a partial one and the FIN wait; then DOWN mid-message. */
	pair_open_raw(&p, &params_default);
	p.srv.sizes = sizes;
	transport_pause_rx(p.srv.t, 1);
	raw_write(&p, buf, total - 1000);
	shutdown(p.raw, SHUT_WR);
	run_for(50);
	assert_int_equal(p.srv.rx, 0);
	assert_int_equal(p.srv.downs, 0);
	transport_pause_rx(p.srv.t, 0);
	run_until(srv_down, &p, 2000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.downs, 1);
	assert_non_null(strstr(p.srv.reason, "mid-message"));
	assert_int_equal(p.srv.errors, 0);
	pair_close(&p);
	free(buf);
}

static void test_send_errors(void **state)
{
	const struct transport_params tp = {.max_msg = 65536, .tx_high_water = 65536};
	uint8_t *m = msg_make(65537, 0);
	struct iovec iov[4];
	struct pair p;

	pair_open(&p, &tp);
	/* Over max_msg. */
	iov[0] = (struct iovec){.iov_base = m, .iov_len = 65537};
	assert_int_equal(transport_send(p.cli.t, iov, 1), -EMSGSIZE);
	/* Under the minimum, a prefix that disagrees, no iovec. */
	put_le32(m, 8);
	iov[0].iov_len = 8;
	assert_int_equal(transport_send(p.cli.t, iov, 1), -EINVAL);
	put_le32(m, 100);
	iov[0].iov_len = 99;
	assert_int_equal(transport_send(p.cli.t, iov, 1), -EINVAL);
	assert_int_equal(transport_send(p.cli.t, iov, 0), -EINVAL);
	assert_int_equal(transport_send(p.cli.t, NULL, 1), -EINVAL);
	free(m);

	/* Exactly max_msg, as a gather list that splits the prefix. */
	m = msg_make(65536, 0);
	iov[0] = (struct iovec){.iov_base = m, .iov_len = 1};
	iov[1] = (struct iovec){.iov_base = m + 1, .iov_len = 0};
	iov[2] = (struct iovec){.iov_base = m + 1, .iov_len = 3};
	iov[3] = (struct iovec){.iov_base = m + 4, .iov_len = 65536 - 4};
	assert_int_equal(transport_send(p.cli.t, iov, 4), 0);
	p.srv.nsizes = 1;
	run_until(srv_rx_n, &p, 3000);
	assert_int_equal(p.srv.rx, 1);
	assert_int_equal(p.srv.errors, 0);
	/* Nothing of the refused sends reached the peer. */
	run_for(20);
	assert_int_equal(p.srv.downs, 0);
	free(m);
	pair_close(&p);

	/* Not connected yet: the connect has not even started. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(
	    transport_connect(loop, "tcp://127.0.0.1:9", &tp, &ep_upcalls, &p.cli, &p.cli.t), 0);
	assert_int_equal(send_msg(p.cli.t, 100, 0), -ENOTCONN);
	assert_false(transport_writable(p.cli.t));
	ep_close(&p.cli);
	run_for(20);
	assert_int_equal(p.cli.ups + p.cli.downs, 0);
}

static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void test_connect_refused(void **state)
{
	struct pair p;
	char uri[64];

	memset(&p, 0, sizeof(p));
	p.raw = -1;
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", free_port());
	assert_int_equal(
	    transport_connect(loop, uri, &params_default, &ep_upcalls, &p.cli, &p.cli.t), 0);
	run_until(cli_down, &p, 5000);
	run_for(50);
	assert_int_equal(p.cli.ups, 0);
	assert_int_equal(p.cli.downs, 1);
	assert_non_null(strstr(p.cli.reason, "connect"));
	assert_non_null(strstr(p.cli.reason, "refused"));
	assert_int_equal(send_msg(p.cli.t, 100, 0), -ENOTCONN);
	ep_close(&p.cli);

	/* Closing from inside the DOWN upcall. */
	p.cli.close_on_down = true;
	p.cli.downs = 0;
	assert_int_equal(
	    transport_connect(loop, uri, &params_default, &ep_upcalls, &p.cli, &p.cli.t), 0);
	run_until(cli_down, &p, 5000);
	run_for(50);
	assert_int_equal(p.cli.downs, 1);
	assert_null(p.cli.t);
}

static bool cli_up_or_down(void *arg)
{
	struct pair *p = arg;

	return p->cli.ups || p->cli.downs;
}

static void test_close_in_upcall(void **state)
{
	struct pair p;
	uint32_t i;

	/* The server closes in its first on_message; later messages raise no upcall. */
	pair_open(&p, &params_default);
	p.srv.close_on_msg = true;
	for (i = 0; i < 5; i++) {
		assert_int_equal(send_msg(p.cli.t, 64 + i, i), 0);
	}
	run_until(cli_down, &p, 2000);
	run_for(50);
	assert_int_equal(p.srv.rx, 1);
	assert_null(p.srv.t);
	assert_int_equal(p.srv.downs, 0);
	assert_int_equal(p.cli.downs, 1);
	pair_close(&p);

	/* The client closes in on_writable. */
	pair_open(&p, &params_default);
	p.cli.close_on_writable = true;
	assert_int_equal(send_msg(p.cli.t, MIB, 0), 0);
	assert_false(transport_writable(p.cli.t));
	run_until(srv_down, &p, 3000);
	assert_int_equal(p.cli.writables, 1);
	assert_null(p.cli.t);
	assert_int_equal(p.srv.downs, 1);
	pair_close(&p);

	/* The accept callback closes the link at once. */
	pair_listen(&p, &params_default);
	p.srv.close_on_accept = true;
	assert_int_equal(transport_connect(loop, transport_listener_uri(p.l), &params_default,
	                                   &ep_upcalls, &p.cli, &p.cli.t),
	                 0);
	run_until(cli_down, &p, 3000);
	assert_int_equal(p.srv.accepts, 1);
	assert_int_equal(p.cli.downs, 1);
	pair_close(&p);

	/* Closed before the loop ran the connect: no upcall ever, no connection. */
	pair_listen(&p, &params_default);
	assert_int_equal(transport_connect(loop, transport_listener_uri(p.l), &params_default,
	                                   &ep_upcalls, &p.cli, &p.cli.t),
	                 0);
	ep_close(&p.cli);
	run_until(cli_up_or_down, &p, 100);
	assert_int_equal(p.cli.ups + p.cli.downs, 0);
	assert_int_equal(p.srv.accepts, 0);
	pair_close(&p);
}

static int group_setup(void **state)
{
	const struct timeval tv = {.tv_usec = 5000};

	log_init(1, getenv("VB_TEST_VERBOSE") != NULL, "test_transport_tcp");
	loop = vb_loop_new();
	if (!loop) {
		return -1;
	}
	tick = event_new(vb_loop_base(loop), -1, EV_PERSIST, tick_cb, NULL);
	return tick && event_add(tick, &tv) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	event_free(tick);
	vb_loop_free(loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_hostport),
	    cmocka_unit_test(test_bad_uri_and_params),
	    cmocka_unit_test(test_listener_uri),
	    cmocka_unit_test(test_roundtrip_sizes),
	    cmocka_unit_test(test_many_in_one_write),
	    cmocka_unit_test(test_bad_prefix),
	    cmocka_unit_test(test_peer_close),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_pause_resume),
	    cmocka_unit_test(test_send_errors),
	    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_close_in_upcall),
	    cmocka_unit_test(test_rx_buffer_growth),
	    cmocka_unit_test(test_many_small_one_read),
	    cmocka_unit_test(test_split_every_byte),
	    cmocka_unit_test(test_pause_in_message_buffered),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
