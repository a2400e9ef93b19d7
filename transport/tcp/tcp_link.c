/*
 * TCP links on libevent 2.1 bufferevents.
 *
 * Framing: every bridge message starts with its total length as a u32 LE
 * (docs/protocol.md). The prefix is range-checked as soon as its 4 bytes are
 * in, before waiting for (or allocating) the body, so a hostile length drops
 * the link without a large allocation (adversarial case 33).
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
#include "transport/transport_private.h"

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
#include <event2/listener.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"

#define TCP_CONNECT_TIMEOUT_S 10
#define TCP_LISTEN_BACKLOG    64
#define TCP_ACCEPT_RETRY_S    1
#define TCP_WRITE_MAX         (256 * 1024)  /* per writev(2); libevent's default is 16 KiB */
#define TCP_READ_MAX          (256 * 1024)  /* per recv(2), bounded by the free space */
#define TCP_RX_BUDGET         (1024 * 1024) /* per wakeup, for fairness between links */
#define TCP_RX_INIT           (128 * 1024)  /* a 64 KiB request with its header fits */
#define TCP_RX_AHEAD          (64 * 1024)   /* room beyond a large message when growing */
#define TCP_RX_SHRINK_AFTER   16
#define TCP_PREFIX_LEN        4

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
	uint8_t *rx_buf;        /* [rx_head, rx_tail) received, not yet delivered */
	size_t rx_cap, rx_head, rx_tail;
	unsigned rx_small_run; /* messages in a row that fit TCP_RX_INIT */
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
	struct evconnlistener *lev;
	struct event *retry_ev;
	struct transport_params params;
	transport_accept_cb cb;
	void *arg;
};

/*
 * Keepalive notices a silently dead peer within about IDLE + CNT * INTVL
 * seconds even while no message flows; the bridge's pings sit on top.
 */
static const struct {
	int level, name, value;
	const char *what;
} tcp_sockopts[] = {
    {IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
    {SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
    {IPPROTO_TCP, TCP_KEEPIDLE, 10, "TCP_KEEPIDLE"},
    {IPPROTO_TCP, TCP_KEEPINTVL, 5, "TCP_KEEPINTVL"},
    {IPPROTO_TCP, TCP_KEEPCNT, 3, "TCP_KEEPCNT"},
};

static void tcp_set_sockopts(int fd)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tcp_sockopts); i++) {
		if (setsockopt(fd, tcp_sockopts[i].level, tcp_sockopts[i].name,
		               &tcp_sockopts[i].value, sizeof(int)) < 0) {
			log_warn("tcp: setsockopt %s", tcp_sockopts[i].what);
		}
	}
}

/* "tcp://a.b.c.d:port" or "tcp://[v6]:port"; a v4-mapped v6 address prints as v4. */
static void tcp_sockaddr_uri(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	struct sockaddr_in sin;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = sin6->sin6_port;
		memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
		sa = (const struct sockaddr *)&sin;
		salen = sizeof(sin);
	}
	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, len, "tcp://?");
		return;
	}
	snprintf(buf, len, sa->sa_family == AF_INET6 ? "tcp://[%s]:%s" : "tcp://%s:%s", host, serv);
}

/* Numeric hosts first (no DNS round trip, no blocking); names through the resolver. */
static int tcp_resolve(const struct transport_hostport *hp, int passive, struct addrinfo **out)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", hp->port);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	rc = getaddrinfo(hp->host, port, &hints, out);
	if (rc == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
		rc = getaddrinfo(hp->host, port, &hints, out);
	}
	return rc;
}

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
	free(l->rx_buf);
	l->rx_buf = NULL;
	l->rx_cap = l->rx_head = l->rx_tail = 0;
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
static int tcp_rx_init(struct tcp_link *l)
{
	l->rx_ev = event_new(l->evb, bufferevent_getfd(l->bev), EV_READ | EV_PERSIST, tcp_rx_cb, l);
	l->rx_buf = malloc(TCP_RX_INIT);
	if (!l->rx_ev || !l->rx_buf) {
		return -ENOMEM;
	}
	l->rx_cap = TCP_RX_INIT;
	return 0;
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

/* The prefix is the message's total length, itself included (docs/protocol.md). */
static int tcp_frame_check(uint32_t len, size_t max_msg)
{
	return len < TRANSPORT_MIN_MSG || len > max_msg ? -EBADMSG : 0;
}

/*
 * Delivers each whole buffered message in place. A message is consumed
 * before its upcall, so a pause or close inside it leaves exactly the rest
 * queued. Stops on pause, close, a bad prefix or a partial tail; moving
 * bytes is left to tcp_rx_room(), never done while a message is out.
 */
static void tcp_link_process(struct tcp_link *l)
{
	const uint8_t *msg;
	uint32_t len;

	while (tcp_rx_active(l) && l->rx_tail - l->rx_head >= TCP_PREFIX_LEN) {
		msg = l->rx_buf + l->rx_head;
		len = get_le32(msg);
		if (tcp_frame_check(len, l->max_msg) < 0) {
			log_warnx("tcp link %s: frame length %" PRIu32 " outside %u..%zu",
			          l->base.peer, len, TRANSPORT_MIN_MSG, l->max_msg);
			tcp_link_down(l, "bad frame length %" PRIu32 " (allowed %u..%zu)", len,
			              TRANSPORT_MIN_MSG, l->max_msg);
			return;
		}
		if (l->rx_tail - l->rx_head < len) {
			return;
		}
		l->rx_head += len;
		if (len > TCP_RX_INIT) {
			l->rx_small_run = 0;
		} else if (l->rx_small_run < TCP_RX_SHRINK_AFTER) {
			l->rx_small_run++;
		}
		l->st.rx_msgs++;
		l->st.rx_bytes += len;
		if (l->base.up && l->base.up->on_message) {
			l->base.up->on_message(&l->base, msg, len, l->base.arg);
		}
	}
}

/* Sets the capacity to cap (at least what is buffered); 0 or -ENOMEM, the old buffer kept. */
static int tcp_rx_resize(struct tcp_link *l, size_t cap)
{
	uint8_t *b = realloc(l->rx_buf, cap);

	if (!b) {
		return -ENOMEM;
	}
	l->rx_buf = b;
	l->rx_cap = cap;
	return 0;
}

/*
 * Makes room behind the undelivered bytes, which are at most one partial
 * message whose prefix, if complete, tcp_link_process() has checked: the
 * tail moves to the front, and the buffer grows to hold the announced
 * length, or shrinks (see the top of the file). Returns the free space
 * (> 0) or -ENOMEM.
 */
static ssize_t tcp_rx_room(struct tcp_link *l)
{
	size_t have = l->rx_tail - l->rx_head;
	size_t need = TCP_PREFIX_LEN;

	if (have >= TCP_PREFIX_LEN) {
		need = get_le32(l->rx_buf + l->rx_head);
	}
	if (l->rx_head > 0) {
		memmove(l->rx_buf, l->rx_buf + l->rx_head, have);
		l->rx_head = 0;
		l->rx_tail = have;
	}
	if (need > l->rx_cap) {
		/* need <= max_msg (checked), so the buffer stays under max_msg + TCP_RX_AHEAD. */
		if (tcp_rx_resize(l, need + TCP_RX_AHEAD) < 0) {
			return -ENOMEM;
		}
	} else if (need <= TCP_RX_INIT && l->rx_cap > TCP_RX_INIT &&
	           l->rx_small_run >= TCP_RX_SHRINK_AFTER) {
		/* realloc keeps the partial message; if it fails the old buffer stays. */
		tcp_rx_resize(l, TCP_RX_INIT);
	}
	return (ssize_t)(l->rx_cap - l->rx_tail);
}

/* The peer's FIN, seen once every whole message before it was delivered. */
static void tcp_rx_eof(struct tcp_link *l)
{
	size_t left = l->rx_tail - l->rx_head;

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
	ssize_t room = tcp_rx_room(l);
	size_t want;
	ssize_t n;

	if (room < 0) {
		tcp_link_down(l, "no memory for a %" PRIu32 "-byte message",
		              get_le32(l->rx_buf + l->rx_head));
		return -1;
	}
	want = VB_MIN((size_t)room, TCP_READ_MAX);
	do {
		n = recv(event_get_fd(l->rx_ev), l->rx_buf + l->rx_tail, want, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		l->rx_tail += (size_t)n;
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
	if (l->rx_buf) {
		tcp_link_process(l);
	}
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
	if (tcp_rx_init(l) < 0) {
		tcp_link_down(l, "no memory for the receive buffer");
		return;
	}
	tcp_link_set_state(l, TCP_UP, "connected");
	bufferevent_enable(l->bev, EV_WRITE);
	tcp_rx_arm(l);
	tcp_upcall_state(l, TRANSPORT_UP, "connected");
}

/* A nonblocking connect of our own: CLOEXEC, options set first, and the real errno. */
static int tcp_connect_addr(struct tcp_link *l, const struct addrinfo *ai)
{
	const struct timeval tmo = {.tv_sec = TCP_CONNECT_TIMEOUT_S};
	struct bufferevent *bev;
	int fd, err;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		return -errno;
	}
	tcp_set_sockopts(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
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
	rc = tcp_resolve(&l->hp, 0, &l->ai_list);
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

/* Total length of the iovec and its first 4 bytes (the prefix); -EINVAL if malformed. */
static int tcp_iov_scan(const struct iovec *iov, int iovcnt, size_t *total, uint8_t *prefix)
{
	size_t sum = 0, got = 0, n;
	int i;

	if (!iov || iovcnt <= 0) {
		return -EINVAL;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - sum) {
			return -EINVAL;
		}
		sum += iov[i].iov_len;
		n = VB_MIN(iov[i].iov_len, TCP_PREFIX_LEN - got);
		memcpy(prefix + got, iov[i].iov_base, n);
		got += n;
	}
	*total = sum;
	return got == TCP_PREFIX_LEN ? 0 : -EINVAL;
}

static int tcp_send(struct transport *t, const struct iovec *iov, int iovcnt)
{
	struct tcp_link *l = container_of(t, struct tcp_link, base);
	uint8_t prefix[TCP_PREFIX_LEN];
	struct evbuffer *out;
	size_t total;
	int i;

	if (l->state != TCP_UP || l->closed || !l->bev) {
		return -ENOTCONN;
	}
	if (tcp_iov_scan(iov, iovcnt, &total, prefix) < 0 || total < TRANSPORT_MIN_MSG) {
		return -EINVAL;
	}
	if (total > l->max_msg) {
		return -EMSGSIZE;
	}
	/* A prefix that disagrees would desynchronise the peer's framing. */
	if (get_le32(prefix) != total) {
		return -EINVAL;
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

static void tcp_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
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
	tcp_set_sockopts(fd);
	tcp_link_attach(l, bev);
	if (tcp_rx_init(l) < 0) {
		log_warnx("tcp listener %s: out of memory, dropping a connection", tl->base.uri);
		tcp_link_free(l); /* the bev closes fd */
		return;
	}
	tcp_sockaddr_uri(sa, (socklen_t)salen, l->base.peer, sizeof(l->base.peer));
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

static void tcp_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_listener *tl = arg;

	evconnlistener_enable(tl->lev);
}

/* Out of fds or memory: accept would fail again at once, so back off instead of spinning. */
static void tcp_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	const struct timeval retry = {.tv_sec = TCP_ACCEPT_RETRY_S};
	struct tcp_listener *tl = arg;
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("tcp listener %s: accept: %s", tl->base.uri, strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(lev);
		evtimer_add(tl->retry_ev, &retry);
	}
}

/* A listening socket; [::] also takes IPv4 (V6ONLY off whatever the sysctl says). */
static int tcp_bind(const struct addrinfo *ai)
{
	const int on = 1, off = 0;
	int fd, err;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void tcp_listener_free(struct transport_listener *base)
{
	struct tcp_listener *tl = container_of(base, struct tcp_listener, base);

	if (tl->lev) {
		evconnlistener_free(tl->lev);
	}
	if (tl->retry_ev) {
		event_free(tl->retry_ev);
	}
	free(tl);
}

/* Binds the first resolved address; the listener owns fd from here on. */
static int tcp_listener_start(struct tcp_listener *tl, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	tl->lev = evconnlistener_new(tl->evb, tcp_accept_cb, tl,
	                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                             TCP_LISTEN_BACKLOG, fd);
	if (!tl->lev) {
		int err = errno ? -errno : -ENOMEM;

		close(fd);
		return err;
	}
	evconnlistener_set_error_cb(tl->lev, tcp_accept_error_cb);
	tl->retry_ev = evtimer_new(tl->evb, tcp_accept_retry_cb, tl);
	if (!tl->retry_ev) {
		return -ENOMEM;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		return -errno;
	}
	tcp_sockaddr_uri((struct sockaddr *)&ss, sslen, tl->base.uri, sizeof(tl->base.uri));
	return 0;
}

static int tcp_listen(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                      transport_accept_cb cb, void *arg, struct transport_listener **out)
{
	struct transport_hostport hp;
	struct addrinfo *ai;
	struct tcp_listener *tl;
	int rc, fd;

	if (transport_parse_hostport(addr, strlen(addr), &hp) < 0) {
		log_warnx("tcp: bad listen address \"%s\" (want HOST:PORT)", addr);
		return -EINVAL;
	}
	rc = tcp_resolve(&hp, 1, &ai);
	if (rc != 0) {
		log_warnx("tcp: resolve %s: %s", hp.host, gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	fd = tcp_bind(ai);
	freeaddrinfo(ai);
	if (fd < 0) {
		errno = -fd;
		log_warn("tcp: bind %s", addr);
		return fd;
	}
	tl = calloc(1, sizeof(*tl));
	if (!tl) {
		close(fd);
		return -ENOMEM;
	}
	tl->base.ops = &tcp_transport_ops;
	tl->evb = vb_loop_base(loop);
	tl->params = *p;
	tl->cb = cb;
	tl->arg = arg;
	rc = tcp_listener_start(tl, fd);
	if (rc < 0) {
		log_warnx("tcp: listen %s: %s", addr, strerror(-rc));
		tcp_listener_free(&tl->base);
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
