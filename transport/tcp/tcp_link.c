/*
 * TCP links on libevent 2.1 bufferevents.
 *
 * Framing: every bridge message starts with its total length as a u32 LE
 * (docs/protocol.md). The prefix is range-checked as soon as its 4 bytes are
 * in, before waiting for (or allocating) the body, so a hostile length drops
 * the link without a large allocation (adversarial case 33). The buffer and
 * framing code is shared with tls:// links (tcp_common.c).
 *
 * Receive path: the bufferevent only writes (and connects); reading is our
 * own persistent EV_READ event on the same fd (libevent's epoll changelist
 * merges the two into one registration). libevent 2.1 reads at most 4 KiB
 * per evbuffer_read() and once per loop iteration, and evbuffer_pullup()
 * copies messages that span chains; here recv(2) fills one contiguous
 * buffer with up to TCP_READ_MAX per call and TCP_RX_BUDGET per wakeup
 * (then other fds get a turn; epoll is level-triggered, so the rest waits
 * for the next iteration), and on_message() gets a pointer into it.
 *
 * The buffer starts at TCP_RX_INIT and grows only when a prefix, already
 * range-checked, announces a message that cannot fit; the most it reaches
 * is max_msg + TCP_RX_AHEAD. It shrinks back to TCP_RX_INIT after
 * TCP_RX_SHRINK_AFTER messages in a row that fit TCP_RX_INIT, as soon as
 * the partial message left at the front fits too: one large message does
 * not pin its buffer for the life of the link (an idle bridge link still
 * carries pings, which count), and a stream of large messages, or large
 * ones mixed with a few small, does not reallocate per message.
 *
 * Re-entrancy: every libevent callback into a link runs between
 * tcp_link_enter() and tcp_link_leave(). transport_close() from inside an
 * upcall only marks the link and detaches it from libevent; the outermost
 * tcp_link_leave() frees it. The link's code re-checks `closed` after every
 * upcall, so nothing touches freed memory and no upcall follows a close.
 * Likewise DOWN is reported once (tcp_link_down() ignores later calls) and
 * the socket is released when the callback that saw the loss returns.
 */
#include "transport/tcp/tcp_common.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"

#define TCP_CONNECT_TIMEOUT_S 10
#define TCP_WRITE_MAX         (256 * 1024) /* per writev(2); libevent's default is 16 KiB */

enum tcp_link_state {
	TCP_CONNECTING,
	TCP_UP,
	TCP_DOWN,
};

static const char *const tcp_state_names[] = {
    [TCP_CONNECTING] = "connecting",
    [TCP_UP] = "up",
    [TCP_DOWN] = "down",
};

struct tcp_link {
	struct transport base; /* first: container_of from the public handle */
	struct event_base *evb;
	struct bufferevent *bev;
	struct event *start_ev; /* outgoing: resolve and connect from the loop */
	struct event *proc_ev;  /* delivers input left buffered while paused */
	struct event *rx_ev;    /* EV_READ on the socket while UP and not paused */
	struct tcp_rx rx;
	struct addrinfo *ai_list, *ai_next;
	struct transport_hostport hp;
	size_t max_msg;
	size_t tx_high_water;
	enum tcp_link_state state;
	unsigned in_cb;
	bool closed;
	bool paused;
	bool tx_blocked; /* writable() went false; on_writable owed */
	struct transport_stats st;
	char reason[192];
};

struct tcp_listener {
	struct transport_listener base; /* first */
	struct event_base *evb;
	struct tcp_acceptor acc;
	struct transport_params params;
	transport_accept_cb cb;
	void *arg;
};

/* --- links --------------------------------------------------------------------------------- */

static void tcp_rx_cb(evutil_socket_t fd, short what, void *arg);
static void tcp_write_cb(struct bufferevent *bev, void *arg);
static void tcp_event_cb(struct bufferevent *bev, short what, void *arg);
static void tcp_proc_cb(evutil_socket_t fd, short what, void *arg);

static struct tcp_link *tcp_link_new(struct event_base *evb, const struct transport_params *p)
{
	struct tcp_link *l = calloc(1, sizeof(*l));

	if (!l) {
		return NULL;
	}
	l->base.ops = &tcp_transport_ops;
	l->evb = evb;
	l->max_msg = p->max_msg;
	l->tx_high_water = p->tx_high_water;
	l->proc_ev = event_new(evb, -1, 0, tcp_proc_cb, l);
	if (!l->proc_ev) {
		free(l);
		return NULL;
	}
	return l;
}

/* The read event first: freeing the bev closes the fd it watches. */
static void tcp_link_release_io(struct tcp_link *l)
{
	if (l->rx_ev) {
		event_free(l->rx_ev);
		l->rx_ev = NULL;
	}
	tcp_rx_free(&l->rx);
	if (l->bev) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}
}

static void tcp_link_free(struct tcp_link *l)
{
	if (l->start_ev) {
		event_free(l->start_ev);
	}
	event_free(l->proc_ev);
	tcp_link_release_io(l);
	if (l->ai_list) {
		freeaddrinfo(l->ai_list);
	}
	free(l);
}

/* Callbacks set before the bev may run; the write low-water mark drives on_writable. */
static void tcp_link_attach(struct tcp_link *l, struct bufferevent *bev)
{
	l->bev = bev;
	bufferevent_setcb(bev, NULL, tcp_write_cb, tcp_event_cb, l);
	/* The write callback runs when output is at or below low: writable is queued < hw. */
	bufferevent_setwatermark(bev, EV_WRITE, l->tx_high_water - 1, 0);
	bufferevent_set_max_single_write(bev, TCP_WRITE_MAX);
}

/* The receive side of an established link: its read event and buffer. 0 or -ENOMEM. */
static int tcp_rx_setup(struct tcp_link *l)
{
	l->rx_ev = event_new(l->evb, bufferevent_getfd(l->bev), EV_READ | EV_PERSIST, tcp_rx_cb, l);
	if (!l->rx_ev) {
		return -ENOMEM;
	}
	return tcp_rx_init(&l->rx, l->max_msg);
}

static bool tcp_rx_active(const struct tcp_link *l)
{
	return l->state == TCP_UP && !l->paused && !l->closed;
}

static void tcp_rx_arm(struct tcp_link *l)
{
	if (l->rx_ev && tcp_rx_active(l)) {
		event_add(l->rx_ev, NULL);
	}
}

static void tcp_link_enter(struct tcp_link *l)
{
	l->in_cb++;
}

/* Ends a callback; the outermost one frees a closed link or the socket of a lost one. */
static void tcp_link_leave(struct tcp_link *l)
{
	if (--l->in_cb > 0) {
		return;
	}
	if (l->closed) {
		tcp_link_free(l);
	} else if (l->state == TCP_DOWN) {
		tcp_link_release_io(l);
	}
}

static void tcp_link_set_state(struct tcp_link *l, enum tcp_link_state st, const char *reason)
{
	log_debug("tcp link %s: state change %s -> %s, reason: %s", l->base.peer,
	          tcp_state_names[l->state], tcp_state_names[st], reason);
	l->state = st;
}

static void tcp_upcall_state(struct tcp_link *l, enum transport_state st, const char *reason)
{
	if (!l->closed && l->base.up && l->base.up->on_state) {
		l->base.up->on_state(&l->base, st, reason, l->base.arg);
	}
}

/* Reports the loss once; the socket goes when the current callback returns. */
static void tcp_link_down(struct tcp_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tcp_link_down(struct tcp_link *l, const char *fmt, ...)
{
	va_list ap;

	if (l->state == TCP_DOWN || l->closed) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
	va_end(ap);
	tcp_link_set_state(l, TCP_DOWN, l->reason);
	if (l->bev) {
		bufferevent_disable(l->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(l->bev, NULL, NULL, NULL, NULL);
	}
	if (l->rx_ev) {
		event_del(l->rx_ev);
	}
	event_del(l->proc_ev);
	tcp_upcall_state(l, TRANSPORT_DOWN, l->reason);
}

/*
 * Delivers each whole buffered message in place (tcp_rx_next). Stops on
 * pause, close, a bad prefix or a partial tail.
 */
static void tcp_link_process(struct tcp_link *l)
{
	const uint8_t *msg;
	uint32_t len;
	int rc;

	while (tcp_rx_active(l) && (rc = tcp_rx_next(&l->rx, &msg, &len)) != 0) {
		if (rc < 0) {
			log_warnx("tcp link %s: frame length %" PRIu32 " outside %u..%zu",
			          l->base.peer, len, TRANSPORT_MIN_MSG, l->max_msg);
			tcp_link_down(l, "bad frame length %" PRIu32 " (allowed %u..%zu)", len,
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

/* The peer's FIN, seen once every whole message before it was delivered. */
static void tcp_rx_eof(struct tcp_link *l)
{
	size_t left = tcp_rx_left(&l->rx);

	if (left) {
		tcp_link_down(l, "peer closed the connection mid-message (%zu bytes left)", left);
	} else {
		tcp_link_down(l, "peer closed the connection");
	}
}

/*
 * One recv(2) into the free space. 1: it filled what was asked, more may be
 * waiting; 0: the socket is drained for now; -1: the link went down.
 */
static int tcp_rx_read(struct tcp_link *l, size_t *budget)
{
	ssize_t room = tcp_rx_room(&l->rx);
	size_t want;
	ssize_t n;

	if (room < 0) {
		tcp_link_down(l, "no memory for a %" PRIu32 "-byte message", tcp_rx_wanted(&l->rx));
		return -1;
	}
	want = VB_MIN((size_t)room, TCP_READ_MAX);
	do {
		n = recv(event_get_fd(l->rx_ev), l->rx.buf + l->rx.tail, want, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		tcp_rx_commit(&l->rx, (size_t)n);
		*budget -= VB_MIN(*budget, (size_t)n);
		return (size_t)n == want;
	}
	if (n == 0) {
		tcp_rx_eof(l);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		return 0;
	} else {
		tcp_link_down(l, "read error: %s", strerror(errno));
	}
	return -1;
}

/*
 * Whole messages already buffered go first, so a FIN is only read once
 * they are delivered; then reads alternate with delivery until the socket
 * is drained, the budget spent, or the owner paused or closed.
 */
static void tcp_rx_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_link *l = arg;
	size_t budget = TCP_RX_BUDGET;
	int more = 1;

	tcp_link_enter(l);
	tcp_link_process(l);
	while (more > 0 && budget > 0 && tcp_rx_active(l)) {
		more = tcp_rx_read(l, &budget);
		tcp_link_process(l);
	}
	tcp_link_leave(l);
}

static void tcp_proc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_link *l = arg;

	tcp_link_enter(l);
	tcp_link_process(l);
	tcp_link_leave(l);
}

static void tcp_write_cb(struct bufferevent *bev, void *arg)
{
	struct tcp_link *l = arg;

	tcp_link_enter(l);
	if (l->tx_blocked && l->state == TCP_UP &&
	    evbuffer_get_length(bufferevent_get_output(bev)) < l->tx_high_water) {
		l->tx_blocked = false;
		if (!l->closed && l->base.up && l->base.up->on_writable) {
			l->base.up->on_writable(&l->base, l->base.arg);
		}
	}
	tcp_link_leave(l);
}

static void tcp_link_up(struct tcp_link *l)
{
	bufferevent_set_timeouts(l->bev, NULL, NULL);
	if (l->ai_list) {
		freeaddrinfo(l->ai_list);
		l->ai_list = l->ai_next = NULL;
	}
	if (tcp_rx_setup(l) < 0) {
		tcp_link_down(l, "no memory for the receive buffer");
		return;
	}
	tcp_link_set_state(l, TCP_UP, "connected");
	bufferevent_enable(l->bev, EV_WRITE);
	tcp_rx_arm(l);
	tcp_upcall_state(l, TRANSPORT_UP, "connected");
}

/* A nonblocking connect of our own (tcp_sock_connect): CLOEXEC, options set first, real errno. */
static int tcp_connect_addr(struct tcp_link *l, const struct addrinfo *ai)
{
	const struct timeval tmo = {.tv_sec = TCP_CONNECT_TIMEOUT_S};
	struct bufferevent *bev;
	int fd = tcp_sock_connect(ai);

	if (fd < 0) {
		return fd;
	}
	bev = bufferevent_socket_new(l->evb, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return -ENOMEM;
	}
	tcp_link_attach(l, bev);
	/* While connecting libevent waits for writability: the write timeout bounds the SYN. */
	bufferevent_set_timeouts(bev, NULL, &tmo);
	if (bufferevent_socket_connect(bev, NULL, 0) < 0) {
		bufferevent_free(bev);
		l->bev = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Tries the remaining resolved addresses in order; err is why the last one failed. */
static void tcp_connect_next(struct tcp_link *l, int err)
{
	if (l->bev) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}
	while (l->ai_next) {
		const struct addrinfo *ai = l->ai_next;

		l->ai_next = ai->ai_next;
		err = -tcp_connect_addr(l, ai);
		if (err == 0) {
			return;
		}
	}
	tcp_link_down(l, "connect to %s: %s", l->base.peer,
	              err ? strerror(err) : "no address to try");
}

static void tcp_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_link *l = arg;
	int rc;

	tcp_link_enter(l);
	rc = tcp_sock_resolve(&l->hp, 0, &l->ai_list);
	if (rc != 0) {
		l->ai_list = NULL;
		tcp_link_down(l, "resolve %s: %s", l->hp.host, gai_strerror(rc));
	} else {
		l->ai_next = l->ai_list;
		tcp_connect_next(l, 0);
	}
	tcp_link_leave(l);
}

static void tcp_event_connecting(struct tcp_link *l, short what, int err)
{
	if (what & BEV_EVENT_CONNECTED) {
		tcp_link_up(l);
	} else if (what & BEV_EVENT_TIMEOUT) {
		tcp_connect_next(l, ETIMEDOUT);
	} else {
		/* An immediate refusal is reported without a fresh errno. */
		tcp_connect_next(l, err ? err : ECONNREFUSED);
	}
}

static void tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tcp_link *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	tcp_link_enter(l);
	if (l->state == TCP_CONNECTING) {
		tcp_event_connecting(l, what, err);
	} else if (what & BEV_EVENT_EOF) {
		/* Only a write reports this (the bev never reads); whole messages go first. */
		tcp_link_process(l);
		tcp_rx_eof(l);
	} else if (what & BEV_EVENT_ERROR) {
		tcp_link_down(l, "%s error: %s", what & BEV_EVENT_READING ? "read" : "write",
		              strerror(err));
	}
	tcp_link_leave(l);
}

static int tcp_connect(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                       struct transport **out)
{
	struct event_base *evb = vb_loop_base(loop);
	struct transport_hostport hp;
	struct tcp_link *l;

	if (transport_parse_hostport(addr, strlen(addr), &hp) < 0 || hp.port == 0) {
		log_warnx("tcp: bad address \"%s\" (want HOST:PORT, PORT 1..65535)", addr);
		return -EINVAL;
	}
	l = tcp_link_new(evb, p);
	if (!l) {
		return -ENOMEM;
	}
	l->hp = hp;
	snprintf(l->base.peer, sizeof(l->base.peer), "tcp://%s", addr);
	/* Resolve and connect from the loop, so every outcome arrives as an upcall. */
	l->start_ev = event_new(evb, -1, 0, tcp_start_cb, l);
	if (!l->start_ev) {
		tcp_link_free(l);
		return -ENOMEM;
	}
	event_active(l->start_ev, EV_TIMEOUT, 0);
	*out = &l->base;
	return 0;
}

static size_t tcp_queued(const struct tcp_link *l)
{
	return l->bev ? evbuffer_get_length(bufferevent_get_output(l->bev)) : 0;
}

static int tcp_send(struct transport *t, const struct iovec *iov, int iovcnt)
{
	struct tcp_link *l = container_of(t, struct tcp_link, base);
	struct evbuffer *out;
	size_t total;
	int i, rc;

	if (l->state != TCP_UP || l->closed || !l->bev) {
		return -ENOTCONN;
	}
	rc = tcp_msg_check(iov, iovcnt, l->max_msg, &total);
	if (rc < 0) {
		return rc;
	}
	out = bufferevent_get_output(l->bev);
	/* Bounded memory: a caller honouring writable() stays under hw + max_msg. */
	if (evbuffer_get_length(out) + total > 4 * l->tx_high_water + l->max_msg) {
		return -ENOBUFS;
	}
	/* Reserve first so a failed copy never leaves half a message in the stream. */
	if (evbuffer_expand(out, total) < 0) {
		return -ENOMEM;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && evbuffer_add(out, iov[i].iov_base, iov[i].iov_len) < 0) {
			fatalx("tcp: evbuffer_add failed after evbuffer_expand");
		}
	}
	l->st.tx_msgs++;
	l->st.tx_bytes += total;
	if (evbuffer_get_length(out) >= l->tx_high_water) {
		l->tx_blocked = true;
	}
	return 0;
}

static int tcp_writable(const struct transport *t)
{
	const struct tcp_link *l = container_of(t, const struct tcp_link, base);

	return l->state == TCP_UP && !l->closed && tcp_queued(l) < l->tx_high_water;
}

static void tcp_pause_rx(struct transport *t, int pause)
{
	struct tcp_link *l = container_of(t, struct tcp_link, base);

	l->paused = pause != 0;
	if (l->state != TCP_UP || l->closed || !l->rx_ev) {
		return;
	}
	if (l->paused) {
		event_del(l->rx_ev);
		return;
	}
	event_add(l->rx_ev, NULL);
	/* Whole messages may already sit in the buffer: no read event would fire for them. */
	event_active(l->proc_ev, EV_READ, 0);
}

/* One nonblocking attempt to push what is queued (e.g. a final ERROR) before closing. */
static void tcp_flush_once(struct tcp_link *l)
{
	struct evbuffer *out = bufferevent_get_output(l->bev);

	if (l->state != TCP_UP || evbuffer_get_length(out) == 0) {
		return;
	}
	evbuffer_unfreeze(out, 1);
	if (evbuffer_write(out, bufferevent_getfd(l->bev)) < 0) {
		log_debug("tcp link %s: flush on close: %s", l->base.peer, strerror(errno));
	}
}

static void tcp_close(struct transport *t)
{
	struct tcp_link *l = container_of(t, struct tcp_link, base);

	l->closed = true;
	l->base.up = NULL;
	if (l->bev) {
		tcp_flush_once(l);
		bufferevent_disable(l->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(l->bev, NULL, NULL, NULL, NULL);
	}
	if (l->rx_ev) {
		event_del(l->rx_ev);
	}
	event_del(l->proc_ev);
	if (l->start_ev) {
		event_del(l->start_ev);
	}
	if (l->in_cb == 0) {
		tcp_link_free(l);
	}
}

static void tcp_get_stats(const struct transport *t, struct transport_stats *st)
{
	const struct tcp_link *l = container_of(t, const struct tcp_link, base);

	*st = l->st;
	st->tx_queued = tcp_queued(l);
}

/* --- listeners ----------------------------------------------------------------------------- */

static void tcp_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct tcp_listener *tl = arg;
	struct bufferevent *bev;
	struct tcp_link *l;

	l = tcp_link_new(tl->evb, &tl->params);
	bev = l ? bufferevent_socket_new(tl->evb, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		log_warnx("tcp listener %s: out of memory, dropping a connection", tl->base.uri);
		if (l) {
			tcp_link_free(l);
		}
		close(fd);
		return;
	}
	tcp_sock_setopts(fd);
	tcp_link_attach(l, bev);
	if (tcp_rx_setup(l) < 0) {
		log_warnx("tcp listener %s: out of memory, dropping a connection", tl->base.uri);
		tcp_link_free(l); /* the bev closes fd */
		return;
	}
	tcp_sock_uri(sa, salen, "tcp", l->base.peer, sizeof(l->base.peer));
	tcp_link_set_state(l, TCP_UP, "accepted");
	/* The callback may set upcalls, pause, send or close; tl may be freed by it. */
	tcp_link_enter(l);
	tl->cb(&l->base, tl->arg);
	if (!l->closed) {
		bufferevent_enable(bev, EV_WRITE);
		tcp_rx_arm(l);
	}
	tcp_link_leave(l);
}

static void tcp_listener_free(struct transport_listener *base)
{
	struct tcp_listener *tl = container_of(base, struct tcp_listener, base);

	tcp_acceptor_close(&tl->acc);
	free(tl);
}

static int tcp_listen(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                      transport_accept_cb cb, void *arg, struct transport_listener **out)
{
	struct tcp_listener *tl;
	int rc;

	tl = calloc(1, sizeof(*tl));
	if (!tl) {
		return -ENOMEM;
	}
	tl->base.ops = &tcp_transport_ops;
	tl->evb = vb_loop_base(loop);
	tl->params = *p;
	tl->cb = cb;
	tl->arg = arg;
	rc = tcp_acceptor_open(&tl->acc, tl->evb, "tcp", addr, tcp_accept_cb, tl, tl->base.uri,
	                       sizeof(tl->base.uri));
	if (rc < 0) {
		free(tl);
		return rc;
	}
	log_debug("tcp: listening on %s", tl->base.uri);
	*out = &tl->base;
	return 0;
}

const struct transport_ops tcp_transport_ops = {
    .scheme = "tcp",
    .connect = tcp_connect,
    .listen = tcp_listen,
    .listener_free = tcp_listener_free,
    .send = tcp_send,
    .writable = tcp_writable,
    .pause_rx = tcp_pause_rx,
    .close = tcp_close,
    .get_stats = tcp_get_stats,
};
