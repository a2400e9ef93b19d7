/*
 * tls:// links: TLS 1.3 (tls_ctx.c) over TCP sockets driven by our own
 * libevent read and write events, without bufferevent_openssl (its 2.1
 * EOF handling, read watermarks against SSL_pending, and fd/SSL ownership
 * on failure are all avoided this way).
 *
 * Framing, bounds and the contiguous receive buffer are tcp://'s
 * (tcp_common.c): SSL_read() decrypts straight into the buffer, the
 * prefix is checked before the body is awaited, on_message() gets a
 * pointer into it. Output is plaintext in an evbuffer that SSL_write()
 * consumes record by record (partial writes on, moving buffer allowed:
 * a retry after WANT_WRITE passes the same, possibly grown, first chain)
 * into a BIO pair, which tls_net_flush() empties with send(2): many
 * records per system call, MSG_NOSIGNAL, and alerts leave when we say.
 *
 * Lifecycle: CONNECTING (TCP, outgoing only) -> HANDSHAKE -> UP -> DOWN.
 * An outgoing link reports UP after the handshake and our verification of
 * the server passed. In TLS 1.3 the client finishes before the server has
 * checked the client's certificate, so a refusal by the server arrives
 * right after UP, as an alert: DOWN with the alert's name. An accepted
 * link is handed to the accept callback only once its handshake passed;
 * until then the listener owns it, and a failure or timeout just closes
 * it with a (rate-limited) log line.
 *
 * OpenSSL may need to write while reading and to read while writing; the
 * two *_wants_* flags route the opposite event back (tls_events_update()).
 * With read-ahead, records can sit inside SSL while the socket has nothing
 * more: after the handshake, on resume, and when the per-wakeup budget
 * runs out with SSL_has_pending(), a zero timeout (kick_ev) reads again.
 * A timer, not event_active(): libevent would run an activated event in
 * the same pass, before polling the other fds again.
 *
 * EOF with or without close_notify is a lost link, like TCP's EOF: the
 * bridge's own framing and acks detect truncation. close_notify is sent
 * (one nonblocking attempt, after one flush) on close and when we drop a
 * link whose TLS state is sound.
 *
 * Re-entrancy and teardown follow tcp_link.c: enter/leave around every
 * callback, close from an upcall only marks the link, DOWN is reported
 * once, the socket and SSL go when the callback that saw the loss returns.
 */
#include "transport/tcp/tcp_common.h"
#include "transport/tcp/tls.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"

#define TLS_CONNECT_TIMEOUT_S 10
#define TLS_WRITE_MAX         (256 * 1024) /* per SSL_write(); it returns after each record */
#define TLS_MAX_PENDING       128          /* accepted links still in their handshake */
#define TLS_LOG_BURST         10           /* handshake failures logged per second and listener */

enum tls_link_state {
	TLS_CONNECTING,
	TLS_HANDSHAKE,
	TLS_UP,
	TLS_DOWN,
};

static const char *const tls_state_names[] = {
    [TLS_CONNECTING] = "connecting",
    [TLS_HANDSHAKE] = "handshake",
    [TLS_UP] = "up",
    [TLS_DOWN] = "down",
};

struct tls_listener;

struct tls_link {
	struct transport base; /* first: container_of from the public handle */
	struct event_base *evb;
	struct tls_session ts; /* ts.tls: our reference */
	int fd;
	struct event *rd_ev, *wr_ev; /* persistent, on fd; armed by tls_events_update() */
	struct event *tmo_ev;        /* TCP connect, then handshake */
	struct event *kick_ev;       /* zero timeout: read what SSL or our buffer holds */
	struct event *start_ev;      /* outgoing: resolve and connect from the loop */
	struct evbuffer *out;        /* plaintext accepted by send, not yet taken by SSL_write */
	struct tcp_rx rx;
	struct addrinfo *ai_list, *ai_next;
	struct transport_hostport hp;
	struct tls_listener *listener; /* set while an accepted link is in its handshake */
	TAILQ_ENTRY(tls_link) pending;
	size_t max_msg;
	size_t tx_high_water;
	enum tls_link_state state;
	unsigned in_cb;
	bool closed;
	bool paused;
	bool tx_blocked;  /* writable() went false; on_writable owed */
	bool hs_wants_wr; /* the handshake waits for writability, else readability */
	bool rd_wants_wr; /* SSL_read() returned WANT_WRITE */
	bool wr_wants_rd; /* SSL_write() returned WANT_READ */
	bool ssl_sound;   /* handshake done, no fatal error and no EOF: close_notify may go */
	struct transport_stats st;
	char reason[320];
};

struct tls_listener {
	struct transport_listener base; /* first */
	struct event_base *evb;
	struct tcp_acceptor acc;
	struct transport_params params; /* params.tls: our reference */
	transport_accept_cb cb;
	void *arg;
	TAILQ_HEAD(, tls_link) pending;
	unsigned npending;
	uint64_t log_window_ns; /* start of the current second of failure logging */
	unsigned log_count, log_dropped;
};

static void tls_io_cb(evutil_socket_t fd, short what, void *arg);
static void tls_tmo_cb(evutil_socket_t fd, short what, void *arg);
static void tls_start_cb(evutil_socket_t fd, short what, void *arg);
static void tls_kick_cb(evutil_socket_t fd, short what, void *arg);
static void tls_link_free(struct tls_link *l);

/* --- link lifetime ------------------------------------------------------------------------- */

static struct tls_link *tls_link_new(struct event_base *evb, const struct transport_params *p)
{
	struct tls_link *l = calloc(1, sizeof(*l));

	if (!l) {
		return NULL;
	}
	l->base.ops = &tls_transport_ops;
	l->evb = evb;
	l->fd = -1;
	l->max_msg = p->max_msg;
	l->tx_high_water = p->tx_high_water;
	l->ts.tls = tls_ref(p->tls);
	l->out = evbuffer_new();
	l->tmo_ev = evtimer_new(evb, tls_tmo_cb, l);
	l->kick_ev = evtimer_new(evb, tls_kick_cb, l);
	if (!l->out || !l->tmo_ev || !l->kick_ev) {
		tls_link_free(l);
		return NULL;
	}
	return l;
}

/* Watches fd for the link; the link owns fd from here on, also on failure. 0 or -ENOMEM. */
static int tls_link_attach_fd(struct tls_link *l, int fd)
{
	l->fd = fd;
	l->rd_ev = event_new(l->evb, fd, EV_READ | EV_PERSIST, tls_io_cb, l);
	l->wr_ev = event_new(l->evb, fd, EV_WRITE | EV_PERSIST, tls_io_cb, l);
	return l->rd_ev && l->wr_ev ? 0 : -ENOMEM;
}

/* Ciphertext SSL wrote into the pair that the socket has not taken yet. */
static size_t tls_net_pending(const struct tls_link *l)
{
	return l->ts.net ? BIO_ctrl_pending(l->ts.net) : 0;
}

/*
 * Sends what SSL wrote into the pair. 0: all sent; 1: the socket is full
 * (EV_WRITE will call again); -errno: the connection failed.
 */
static int tls_net_flush(struct tls_link *l)
{
	char *p;
	ssize_t n;
	int avail;

	while (l->ts.net && l->fd >= 0 && (avail = BIO_nread0(l->ts.net, &p)) > 0) {
		n = send(l->fd, p, (size_t)avail, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
		}
		BIO_nread(l->ts.net, &p, (int)n);
	}
	return 0;
}

/* Sends close_notify once, nonblocking, if the TLS state allows it (never after a fatal error). */
static void tls_link_notify_close(struct tls_link *l)
{
	if (l->ts.ssl && l->ssl_sound) {
		ERR_clear_error();
		SSL_shutdown(l->ts.ssl);
		ERR_clear_error();
		tls_net_flush(l);
		l->ssl_sound = false;
	}
}

/* The events first (they watch fd), then the SSL (it reads fd), then fd. */
static void tls_link_release_io(struct tls_link *l)
{
	tls_link_notify_close(l);
	if (l->rd_ev) {
		event_free(l->rd_ev);
		l->rd_ev = NULL;
	}
	if (l->wr_ev) {
		event_free(l->wr_ev);
		l->wr_ev = NULL;
	}
	tls_session_end(&l->ts);
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	tcp_rx_free(&l->rx);
	if (l->out) {
		evbuffer_drain(l->out, evbuffer_get_length(l->out));
	}
	l->rd_wants_wr = l->wr_wants_rd = false;
}

static void tls_link_free(struct tls_link *l)
{
	if (l->listener) {
		TAILQ_REMOVE(&l->listener->pending, l, pending);
		l->listener->npending--;
		l->listener = NULL;
	}
	if (l->start_ev) {
		event_free(l->start_ev);
	}
	if (l->tmo_ev) {
		event_free(l->tmo_ev);
	}
	if (l->kick_ev) {
		event_free(l->kick_ev);
	}
	tls_link_release_io(l);
	if (l->out) {
		evbuffer_free(l->out);
	}
	if (l->ai_list) {
		freeaddrinfo(l->ai_list);
	}
	transport_tls_free(l->ts.tls);
	free(l);
}

static void tls_link_enter(struct tls_link *l)
{
	l->in_cb++;
}

/* Ends a callback; the outermost one frees a closed link or the socket of a lost one. */
static void tls_link_leave(struct tls_link *l)
{
	if (--l->in_cb > 0) {
		return;
	}
	if (l->closed) {
		tls_link_free(l);
	} else if (l->state == TLS_DOWN) {
		tls_link_release_io(l);
	}
}

static void tls_link_set_state(struct tls_link *l, enum tls_link_state st, const char *reason)
{
	log_debug("tls link %s: state change %s -> %s, reason: %s", l->base.peer,
	          tls_state_names[l->state], tls_state_names[st], reason);
	l->state = st;
}

static void tls_upcall_state(struct tls_link *l, enum transport_state st, const char *reason)
{
	if (!l->closed && l->base.up && l->base.up->on_state) {
		l->base.up->on_state(&l->base, st, reason, l->base.arg);
	}
}

/* --- events -------------------------------------------------------------------------------- */

static size_t tls_plain_queued(const struct tls_link *l)
{
	return l->out ? evbuffer_get_length(l->out) : 0;
}

/* Accepted by send() and not yet taken by the socket: plaintext, then records in the pair. */
static size_t tls_queued(const struct tls_link *l)
{
	return tls_plain_queued(l) + tls_net_pending(l);
}

static bool tls_rx_active(const struct tls_link *l)
{
	return l->state == TLS_UP && !l->paused && !l->closed;
}

static void tls_event_set(struct event *ev, bool on)
{
	if (!ev) {
		return;
	}
	if (on && !event_pending(ev, EV_READ | EV_WRITE, NULL)) {
		event_add(ev, NULL);
	} else if (!on && event_pending(ev, EV_READ | EV_WRITE, NULL)) {
		event_del(ev);
	}
}

/* Which readiness the link waits for, from its state and what OpenSSL last asked. */
static void tls_events_update(struct tls_link *l)
{
	bool rd = false, wr = false;

	if (l->closed) {
		/* nothing */
	} else if (l->state == TLS_CONNECTING) {
		wr = true;
	} else if (l->state == TLS_HANDSHAKE) {
		wr = l->hs_wants_wr || tls_net_pending(l) > 0;
		rd = !l->hs_wants_wr;
	} else if (l->state == TLS_UP) {
		rd = (tls_rx_active(l) && !l->rd_wants_wr) || l->wr_wants_rd;
		wr = (tls_plain_queued(l) > 0 && !l->wr_wants_rd) || tls_net_pending(l) > 0 ||
		     l->rd_wants_wr;
	}
	tls_event_set(l->rd_ev, rd);
	tls_event_set(l->wr_ev, wr);
}

/* Records may wait inside SSL, or messages in our buffer, with nothing on the socket to wake us. */
static void tls_rx_kick(struct tls_link *l)
{
	static const struct timeval now = {0, 0};

	if (tls_rx_active(l)) {
		evtimer_add(l->kick_ev, &now);
	}
}

/* Reports the loss once; the socket goes when the current callback returns. */
static void tls_link_down(struct tls_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tls_link_down(struct tls_link *l, const char *fmt, ...)
{
	va_list ap;

	if (l->state == TLS_DOWN || l->closed) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
	va_end(ap);
	tls_link_set_state(l, TLS_DOWN, l->reason);
	evtimer_del(l->tmo_ev);
	evtimer_del(l->kick_ev);
	tls_events_update(l);
	tls_upcall_state(l, TRANSPORT_DOWN, l->reason);
}

/* --- receive ------------------------------------------------------------------------------- */

static void tls_link_process(struct tls_link *l)
{
	const uint8_t *msg;
	uint32_t len;
	int rc;

	while (tls_rx_active(l) && (rc = tcp_rx_next(&l->rx, &msg, &len)) != 0) {
		if (rc < 0) {
			log_warnx("tls link %s: frame length %" PRIu32 " outside %u..%zu",
			          l->base.peer, len, TRANSPORT_MIN_MSG, l->max_msg);
			tls_link_down(l, "bad frame length %" PRIu32 " (allowed %u..%zu)", len,
			              TRANSPORT_MIN_MSG, l->max_msg);
			return;
		}
		l->st.rx_msgs++;
		l->st.rx_bytes += len;
		if (l->base.up && l->base.up->on_message) {
			l->base.up->on_message(&l->base, msg, len, l->base.arg);
		}
	}
}

/* The peer closed (or TLS failed) once every whole message before it was delivered. */
static void tls_rx_lost(struct tls_link *l, int ssl_err)
{
	size_t left = tcp_rx_left(&l->rx);
	char why[200];
	int eof;

	eof = tls_session_failure(&l->ts, ssl_err, why, sizeof(why));
	l->ssl_sound = false;
	tls_net_flush(l); /* our alert, if any, so the peer learns why */
	if (!eof) {
		tls_link_down(l, "read error: %s", why);
	} else if (left) {
		tls_link_down(l, "%s mid-message (%zu bytes left)", why, left);
	} else {
		tls_link_down(l, "%s", why);
	}
}

/* One SSL_read() into the free space. 1: got bytes; 0: nothing more for now; -1: down. */
static int tls_rx_read(struct tls_link *l, size_t *budget)
{
	ssize_t room = tcp_rx_room(&l->rx);
	int n, err;

	if (room < 0) {
		tls_link_down(l, "no memory for a %" PRIu32 "-byte message", tcp_rx_wanted(&l->rx));
		return -1;
	}
	ERR_clear_error();
	errno = 0;
	n = SSL_read(l->ts.ssl, l->rx.buf + l->rx.tail, (int)VB_MIN((size_t)room, TCP_READ_MAX));
	l->rd_wants_wr = false;
	if (n > 0) {
		tcp_rx_commit(&l->rx, (size_t)n);
		*budget -= VB_MIN(*budget, (size_t)n);
		return 1;
	}
	err = SSL_get_error(l->ts.ssl, n);
	if (err == SSL_ERROR_WANT_READ) {
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		l->rd_wants_wr = true;
		return 0;
	}
	tls_rx_lost(l, err);
	return -1;
}

/* As tcp_rx_cb: buffered messages first, then reads alternate with delivery. */
static void tls_rx(struct tls_link *l)
{
	size_t budget = TCP_RX_BUDGET;
	int more = 1;

	tls_link_process(l);
	while (more > 0 && budget > 0 && tls_rx_active(l)) {
		more = tls_rx_read(l, &budget);
		tls_link_process(l);
	}
	/* The socket's own readiness (level-triggered) covers bytes not yet read into SSL. */
	if (more > 0 && budget == 0 && l->ts.ssl && SSL_has_pending(l->ts.ssl)) {
		tls_rx_kick(l);
	}
}

/* --- transmit ------------------------------------------------------------------------------ */

static void tls_tx_writable(struct tls_link *l)
{
	if (l->tx_blocked && l->state == TLS_UP && tls_queued(l) < l->tx_high_water) {
		l->tx_blocked = false;
		if (!l->closed && l->base.up && l->base.up->on_writable) {
			l->base.up->on_writable(&l->base, l->base.arg);
		}
	}
}

/*
 * Hands queued plaintext to SSL_write() until the pair is full. The first
 * chain only grows while it waits (appends go behind it), so a retry
 * passes at least what the blocked call did, as OpenSSL requires. 0, or
 * -1 if the link went down.
 */
static int tls_tx_encrypt(struct tls_link *l)
{
	struct evbuffer_iovec v;
	char why[200];
	int n, err;

	while (tls_plain_queued(l) > 0) {
		if (evbuffer_peek(l->out, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
			v.iov_len = VB_MIN(tls_plain_queued(l), TLS_WRITE_MAX);
			v.iov_base = evbuffer_pullup(l->out, (ssize_t)v.iov_len);
			if (!v.iov_base) {
				tls_link_down(l, "no memory to send");
				return -1;
			}
		}
		ERR_clear_error();
		errno = 0;
		n = SSL_write(l->ts.ssl, v.iov_base, (int)VB_MIN(v.iov_len, TLS_WRITE_MAX));
		l->wr_wants_rd = false;
		if (n > 0) {
			evbuffer_drain(l->out, (size_t)n);
			continue;
		}
		err = SSL_get_error(l->ts.ssl, n);
		if (err == SSL_ERROR_WANT_WRITE) {
			return 0;
		}
		if (err == SSL_ERROR_WANT_READ) {
			l->wr_wants_rd = true;
			return 0;
		}
		tls_session_failure(&l->ts, err, why, sizeof(why));
		l->ssl_sound = false;
		tls_link_down(l, "write error: %s", why);
		return -1;
	}
	return 0;
}

/* Encrypts and sends until the socket is full or all is sent. 0, or -1: the link went down. */
static int tls_tx_flush(struct tls_link *l)
{
	size_t before;
	int net;

	do {
		before = tls_plain_queued(l);
		if (tls_tx_encrypt(l) < 0) {
			return -1;
		}
		net = tls_net_flush(l);
		if (net < 0) {
			l->ssl_sound = false;
			tls_link_down(l, "write error: %s", strerror(-net));
			return -1;
		}
	} while (net == 0 && tls_plain_queued(l) > 0 && tls_plain_queued(l) < before);
	return 0;
}

static void tls_tx(struct tls_link *l)
{
	if (tls_tx_flush(l) == 0) {
		tls_tx_writable(l);
	}
}

/* --- handshake ----------------------------------------------------------------------------- */

/* Logs at most TLS_LOG_BURST failures per second per listener; a scan cannot flood the log. */
static void tls_listener_log(struct tls_listener *tl, const char *peer, const char *why)
{
	uint64_t now = vb_now_ns();

	if (now - tl->log_window_ns >= 1000000000u) {
		if (tl->log_dropped) {
			log_warnx("tls listener %s: %u more failed handshakes not logged",
			          tl->base.uri, tl->log_dropped);
		}
		tl->log_window_ns = now;
		tl->log_count = tl->log_dropped = 0;
	}
	if (tl->log_count++ < TLS_LOG_BURST) {
		log_warnx("tls listener %s: handshake with %s failed: %s", tl->base.uri, peer, why);
	} else {
		tl->log_dropped++;
	}
}

static void tls_handshake_fail(struct tls_link *l, const char *why)
{
	l->ssl_sound = false;
	if (l->listener) {
		/* Never handed out: nobody to tell but the log; freed when the callback returns. */
		tls_listener_log(l->listener, l->base.peer, why);
		tls_link_set_state(l, TLS_DOWN, why);
		l->closed = true;
		tls_events_update(l);
		return;
	}
	tls_link_down(l, "TLS handshake with %s failed: %s", l->base.peer, why);
}

/* The accept callback may set upcalls, pause, send or close; it may free the listener. */
static void tls_accept_finish(struct tls_link *l)
{
	struct tls_listener *tl = l->listener;

	TAILQ_REMOVE(&tl->pending, l, pending);
	tl->npending--;
	l->listener = NULL;
	tl->cb(&l->base, tl->arg);
}

static void tls_handshake_done(struct tls_link *l)
{
	char why[200];

	if (tls_session_established(&l->ts, why, sizeof(why)) < 0) {
		tls_handshake_fail(l, why);
		return;
	}
	if (tcp_rx_init(&l->rx, l->max_msg) < 0) {
		tls_handshake_fail(l, "no memory for the receive buffer");
		return;
	}
	evtimer_del(l->tmo_ev);
	if (l->ai_list) {
		freeaddrinfo(l->ai_list);
		l->ai_list = l->ai_next = NULL;
	}
	l->ssl_sound = true;
	tls_link_set_state(l, TLS_UP, l->ts.security);
	log_debug("tls link %s: peer %s, %s", l->base.peer, l->ts.identity, l->ts.security);
	if (l->listener) {
		tls_accept_finish(l);
	} else {
		tls_upcall_state(l, TRANSPORT_UP, "connected");
	}
	tls_rx_kick(l);
}

/* One step; what it wrote (our flight, or the alert saying why we refuse) is sent at once. */
static void tls_handshake_step(struct tls_link *l)
{
	char why[200];
	int rc, err, net;

	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(l->ts.ssl);
	err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(l->ts.ssl, rc);
	if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
		if (tls_session_failure(&l->ts, err, why, sizeof(why))) {
			snprintf(why, sizeof(why),
			         "peer closed the connection during the handshake");
		}
		tls_net_flush(l);
		tls_handshake_fail(l, why);
		return;
	}
	net = tls_net_flush(l);
	if (net < 0) {
		snprintf(why, sizeof(why), "send: %s", strerror(-net));
		tls_handshake_fail(l, why);
	} else if (rc == 1) {
		tls_handshake_done(l);
	} else {
		l->hs_wants_wr = err == SSL_ERROR_WANT_WRITE;
	}
}

static void tls_handshake_start(struct tls_link *l, int server)
{
	unsigned ms = tls_handshake_timeout_ms(l->ts.tls);
	const struct timeval tmo = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	if (tls_session_start(&l->ts, l->fd, server) < 0) {
		tls_handshake_fail(l, "no memory for a TLS session");
		return;
	}
	tls_link_set_state(l, TLS_HANDSHAKE, server ? "accepted" : "connected");
	evtimer_add(l->tmo_ev, &tmo);
	tls_handshake_step(l);
}

/* --- connect ------------------------------------------------------------------------------- */

/* Tries the remaining resolved addresses in order; err is why the last one failed. */
static void tls_connect_next(struct tls_link *l, int err)
{
	const struct timeval tmo = {.tv_sec = TLS_CONNECT_TIMEOUT_S};

	tls_link_release_io(l);
	while (l->ai_next) {
		const struct addrinfo *ai = l->ai_next;
		int fd;

		l->ai_next = ai->ai_next;
		fd = tcp_sock_connect(ai);
		if (fd < 0) {
			err = -fd;
			continue;
		}
		if (tls_link_attach_fd(l, fd) < 0) {
			err = ENOMEM;
			tls_link_release_io(l);
			continue;
		}
		evtimer_add(l->tmo_ev, &tmo);
		return;
	}
	tls_link_down(l, "connect to %s: %s", l->base.peer,
	              err ? strerror(err) : "no address to try");
}

static void tls_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_link *l = arg;
	int rc;

	tls_link_enter(l);
	rc = tcp_sock_resolve(&l->hp, 0, &l->ai_list);
	if (rc != 0) {
		l->ai_list = NULL;
		tls_link_down(l, "resolve %s: %s", l->hp.host, gai_strerror(rc));
	} else {
		l->ai_next = l->ai_list;
		tls_connect_next(l, 0);
	}
	tls_events_update(l);
	tls_link_leave(l);
}

static int tls_connect(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                       struct transport **out)
{
	struct event_base *evb = vb_loop_base(loop);
	struct transport_hostport hp;
	struct tls_link *l;

	if (!p->tls) {
		log_warnx("tls: connect to %s without a certificate configuration", addr);
		return -EINVAL;
	}
	if (transport_parse_hostport(addr, strlen(addr), &hp) < 0 || hp.port == 0) {
		log_warnx("tls: bad address \"%s\" (want HOST:PORT, PORT 1..65535)", addr);
		return -EINVAL;
	}
	l = tls_link_new(evb, p);
	if (!l) {
		return -ENOMEM;
	}
	l->hp = hp;
	snprintf(l->base.peer, sizeof(l->base.peer), "tls://%s", addr);
	/* Resolve and connect from the loop, so every outcome arrives as an upcall. */
	l->start_ev = event_new(evb, -1, 0, tls_start_cb, l);
	if (!l->start_ev) {
		tls_link_free(l);
		return -ENOMEM;
	}
	event_active(l->start_ev, EV_TIMEOUT, 0);
	*out = &l->base;
	return 0;
}

/* --- event dispatch ------------------------------------------------------------------------ */

static void tls_io_connecting(struct tls_link *l, short what)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
		err = errno;
	}
	if (err) {
		tls_connect_next(l, err);
		return;
	}
	evtimer_del(l->tmo_ev);
	tls_handshake_start(l, 0);
}

static void tls_io_handshake(struct tls_link *l, short what)
{
	tls_handshake_step(l);
}

static bool tls_up(const struct tls_link *l)
{
	return l->state == TLS_UP && !l->closed;
}

/*
 * Each direction runs on its own readiness, or on the other one when
 * OpenSSL asked for it. Sending goes first: a read that wanted to write
 * needs room in the pair. What reading wrote (an alert, a KeyUpdate
 * answer) leaves right after.
 */
static void tls_io_up(struct tls_link *l, short what)
{
	bool rx = (what & (l->rd_wants_wr ? EV_WRITE : EV_READ)) != 0;
	bool tx = (what & (l->wr_wants_rd ? EV_READ : EV_WRITE)) != 0;

	if (tx) {
		tls_tx(l);
	}
	if (rx && tls_up(l)) {
		tls_rx(l);
	}
	if (tls_up(l) && tls_net_pending(l) > 0) {
		tls_tx(l);
	}
}

static void tls_io_down(struct tls_link *l, short what)
{
}

static void (*const tls_io_handlers[])(struct tls_link *l, short what) = {
    [TLS_CONNECTING] = tls_io_connecting,
    [TLS_HANDSHAKE] = tls_io_handshake,
    [TLS_UP] = tls_io_up,
    [TLS_DOWN] = tls_io_down,
};

static void tls_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_link *l = arg;

	tls_link_enter(l);
	if (!l->closed) {
		tls_io_handlers[l->state](l, what);
	}
	tls_events_update(l);
	tls_link_leave(l);
}

static void tls_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_link *l = arg;

	tls_link_enter(l);
	if (tls_rx_active(l) && !l->rd_wants_wr) {
		tls_rx(l);
	}
	tls_events_update(l);
	tls_link_leave(l);
}

static void tls_tmo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_link *l = arg;

	tls_link_enter(l);
	if (l->state == TLS_CONNECTING) {
		tls_connect_next(l, ETIMEDOUT);
	} else if (l->state == TLS_HANDSHAKE) {
		tls_handshake_fail(l, "handshake timed out");
	}
	tls_events_update(l);
	tls_link_leave(l);
}

/* --- link ops ------------------------------------------------------------------------------ */

static int tls_send(struct transport *t, const struct iovec *iov, int iovcnt)
{
	struct tls_link *l = container_of(t, struct tls_link, base);
	size_t total;
	int i, rc;

	if (l->state != TLS_UP || l->closed) {
		return -ENOTCONN;
	}
	rc = tcp_msg_check(iov, iovcnt, l->max_msg, &total);
	if (rc < 0) {
		return rc;
	}
	/* Bounded memory: a caller honouring writable() stays under hw + max_msg. */
	if (tls_queued(l) + total > 4 * l->tx_high_water + l->max_msg) {
		return -ENOBUFS;
	}
	/* Reserve first so a failed copy never leaves half a message in the stream. */
	if (evbuffer_expand(l->out, total) < 0) {
		return -ENOMEM;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && evbuffer_add(l->out, iov[i].iov_base, iov[i].iov_len) < 0) {
			fatalx("tls: evbuffer_add failed after evbuffer_expand");
		}
	}
	l->st.tx_msgs++;
	l->st.tx_bytes += total;
	if (tls_queued(l) >= l->tx_high_water) {
		l->tx_blocked = true;
	}
	/* Written from the loop, like tcp://: messages sent in one go share records. */
	tls_events_update(l);
	return 0;
}

static int tls_writable(const struct transport *t)
{
	const struct tls_link *l = container_of(t, const struct tls_link, base);

	return l->state == TLS_UP && !l->closed && tls_queued(l) < l->tx_high_water;
}

static void tls_pause_rx(struct transport *t, int pause)
{
	struct tls_link *l = container_of(t, struct tls_link, base);

	l->paused = pause != 0;
	if (l->state != TLS_UP || l->closed) {
		return;
	}
	tls_events_update(l);
	/* Whole messages may sit in our buffer, and records inside SSL: no fd event announces them.
	 */
	if (!l->paused) {
		tls_rx_kick(l);
	}
}

static void tls_close(struct transport *t)
{
	struct tls_link *l = container_of(t, struct tls_link, base);

	l->closed = true;
	l->base.up = NULL;
	if (l->state == TLS_UP && l->ts.ssl) {
		/* One nonblocking push of what is queued (e.g. a final ERROR), then close_notify.
		 */
		tls_tx_flush(l);
		tls_link_notify_close(l);
	}
	tls_events_update(l);
	evtimer_del(l->tmo_ev);
	evtimer_del(l->kick_ev);
	if (l->start_ev) {
		event_del(l->start_ev);
	}
	if (l->in_cb == 0) {
		tls_link_free(l);
	}
}

static void tls_get_stats(const struct transport *t, struct transport_stats *st)
{
	const struct tls_link *l = container_of(t, const struct tls_link, base);

	*st = l->st;
	st->tx_queued = tls_queued(l);
}

static const char *tls_peer_identity(const struct transport *t)
{
	return container_of(t, const struct tls_link, base)->ts.identity;
}

static const char *tls_security(const struct transport *t)
{
	return container_of(t, const struct tls_link, base)->ts.security;
}

/* --- listeners ----------------------------------------------------------------------------- */

static void tls_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct tls_listener *tl = arg;
	struct tls_link *l;
	char peer[128];

	tcp_sock_uri(sa, salen, "tls", peer, sizeof(peer));
	if (tl->npending >= TLS_MAX_PENDING) {
		tls_listener_log(tl, peer, "too many handshakes in progress");
		close(fd);
		return;
	}
	l = tls_link_new(tl->evb, &tl->params);
	if (!l) {
		log_warnx("tls listener %s: out of memory, dropping a connection", tl->base.uri);
		close(fd);
		return;
	}
	tcp_sock_setopts(fd);
	memcpy(l->base.peer, peer, sizeof(peer));
	l->listener = tl;
	TAILQ_INSERT_TAIL(&tl->pending, l, pending);
	tl->npending++;
	tls_link_enter(l);
	if (tls_link_attach_fd(l, fd) < 0) {
		tls_handshake_fail(l, "no memory for the socket events");
	} else {
		tls_handshake_start(l, 1);
	}
	tls_events_update(l);
	tls_link_leave(l);
}

/* Links still in their handshake belong to the listener and go with it. */
static void tls_listener_free(struct transport_listener *base)
{
	struct tls_listener *tl = container_of(base, struct tls_listener, base);
	struct tls_link *l;

	tcp_acceptor_close(&tl->acc);
	while ((l = TAILQ_FIRST(&tl->pending)) != NULL) {
		TAILQ_REMOVE(&tl->pending, l, pending);
		l->listener = NULL;
		l->closed = true;
		tls_events_update(l);
		evtimer_del(l->tmo_ev);
		evtimer_del(l->kick_ev);
		if (l->in_cb == 0) {
			tls_link_free(l);
		}
	}
	transport_tls_free(tl->params.tls);
	free(tl);
}

static int tls_listen(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                      transport_accept_cb cb, void *arg, struct transport_listener **out)
{
	struct tls_listener *tl;
	int rc;

	if (!p->tls) {
		log_warnx("tls: listen on %s without a certificate configuration", addr);
		return -EINVAL;
	}
	tl = calloc(1, sizeof(*tl));
	if (!tl) {
		return -ENOMEM;
	}
	tl->base.ops = &tls_transport_ops;
	tl->evb = vb_loop_base(loop);
	tl->params = *p;
	tl->cb = cb;
	tl->arg = arg;
	TAILQ_INIT(&tl->pending);
	rc = tcp_acceptor_open(&tl->acc, tl->evb, "tls", addr, tls_accept_cb, tl, tl->base.uri,
	                       sizeof(tl->base.uri));
	if (rc < 0) {
		free(tl);
		return rc;
	}
	tls_ref(tl->params.tls);
	log_debug("tls: listening on %s", tl->base.uri);
	*out = &tl->base;
	return 0;
}

const struct transport_ops tls_transport_ops = {
    .scheme = "tls",
    .connect = tls_connect,
    .listen = tls_listen,
    .listener_free = tls_listener_free,
    .send = tls_send,
    .writable = tls_writable,
    .pause_rx = tls_pause_rx,
    .close = tls_close,
    .get_stats = tls_get_stats,
    .peer_identity = tls_peer_identity,
    .security = tls_security,
};
