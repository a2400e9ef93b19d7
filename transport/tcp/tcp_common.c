/*
 * Framing, the receive buffer and socket helpers shared by tcp:// and
 * tls:// links (tcp_common.h). The link files keep their own state
 * machines; this file does no upcalls and owns no link.
 */
#include "transport/tcp/tcp_common.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "bridge/log.h"
#include "bridge/util.h"

#define TCP_LISTEN_BACKLOG 64
#define TCP_ACCEPT_RETRY_S 1

/* --- receive buffer and framing ------------------------------------------------------------ */

int tcp_rx_init(struct tcp_rx *rx, size_t max_msg)
{
	memset(rx, 0, sizeof(*rx));
	rx->max_msg = max_msg;
	rx->buf = malloc(TCP_RX_INIT);
	if (!rx->buf) {
		return -ENOMEM;
	}
	rx->cap = TCP_RX_INIT;
	return 0;
}

void tcp_rx_free(struct tcp_rx *rx)
{
	free(rx->buf);
	rx->buf = NULL;
	rx->cap = rx->head = rx->tail = 0;
}

/* The prefix is the message's total length, itself included (docs/protocol.md). */
static int tcp_frame_check(uint32_t len, size_t max_msg)
{
	return len < TRANSPORT_MIN_MSG || len > max_msg ? -EBADMSG : 0;
}

/*
 * The prefix is range-checked as soon as its 4 bytes are in, before waiting
 * for (or allocating) the body (adversarial case 33). A message is consumed
 * before it is returned, so a pause or close in its upcall leaves exactly
 * the rest queued; nothing moves while a message is out (tcp_rx_room does).
 */
int tcp_rx_next(struct tcp_rx *rx, const uint8_t **msg, uint32_t *len)
{
	const uint8_t *m;
	uint32_t n;

	if (tcp_rx_left(rx) < TCP_PREFIX_LEN) {
		return 0;
	}
	m = rx->buf + rx->head;
	n = get_le32(m);
	*len = n;
	if (tcp_frame_check(n, rx->max_msg) < 0) {
		return -EBADMSG;
	}
	if (tcp_rx_left(rx) < n) {
		return 0;
	}
	rx->head += n;
	if (n > TCP_RX_INIT) {
		rx->small_run = 0;
	} else if (rx->small_run < TCP_RX_SHRINK_AFTER) {
		rx->small_run++;
	}
	*msg = m;
	return 1;
}

uint32_t tcp_rx_wanted(const struct tcp_rx *rx)
{
	return tcp_rx_left(rx) >= TCP_PREFIX_LEN ? get_le32(rx->buf + rx->head) : 0;
}

/* Sets the capacity to cap (at least what is buffered); 0 or -ENOMEM, the old buffer kept. */
static int tcp_rx_resize(struct tcp_rx *rx, size_t cap)
{
	uint8_t *b = realloc(rx->buf, cap);

	if (!b) {
		return -ENOMEM;
	}
	rx->buf = b;
	rx->cap = cap;
	return 0;
}

/*
 * The undelivered bytes are at most one partial message whose prefix, if
 * complete, tcp_rx_next() has checked: so `need` is at most max_msg and the
 * buffer stays under max_msg + TCP_RX_AHEAD.
 */
ssize_t tcp_rx_room(struct tcp_rx *rx)
{
	size_t have = tcp_rx_left(rx);
	size_t need = TCP_PREFIX_LEN;

	if (have >= TCP_PREFIX_LEN) {
		need = get_le32(rx->buf + rx->head);
	}
	if (rx->head > 0) {
		memmove(rx->buf, rx->buf + rx->head, have);
		rx->head = 0;
		rx->tail = have;
	}
	if (need > rx->cap) {
		if (tcp_rx_resize(rx, need + TCP_RX_AHEAD) < 0) {
			return -ENOMEM;
		}
	} else if (need <= TCP_RX_INIT && rx->cap > TCP_RX_INIT &&
	           rx->small_run >= TCP_RX_SHRINK_AFTER) {
		/* realloc keeps the partial message; if it fails the old buffer stays. */
		tcp_rx_resize(rx, TCP_RX_INIT);
	}
	return (ssize_t)(rx->cap - rx->tail);
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

int tcp_msg_check(const struct iovec *iov, int iovcnt, size_t max_msg, size_t *total)
{
	uint8_t prefix[TCP_PREFIX_LEN];

	if (tcp_iov_scan(iov, iovcnt, total, prefix) < 0 || *total < TRANSPORT_MIN_MSG) {
		return -EINVAL;
	}
	if (*total > max_msg) {
		return -EMSGSIZE;
	}
	/* A prefix that disagrees would desynchronise the peer's framing. */
	return get_le32(prefix) == *total ? 0 : -EINVAL;
}

/* --- sockets ------------------------------------------------------------------------------- */

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

void tcp_sock_setopts(int fd)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tcp_sockopts); i++) {
		if (setsockopt(fd, tcp_sockopts[i].level, tcp_sockopts[i].name,
		               &tcp_sockopts[i].value, sizeof(int)) < 0) {
			log_warn("tcp: setsockopt %s", tcp_sockopts[i].what);
		}
	}
}

void tcp_sock_uri(const struct sockaddr *sa, socklen_t salen, const char *scheme, char *buf,
                  size_t len)
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
		snprintf(buf, len, "%s://?", scheme);
		return;
	}
	snprintf(buf, len, sa->sa_family == AF_INET6 ? "%s://[%s]:%s" : "%s://%s:%s", scheme, host,
	         serv);
}

/* Numeric hosts first (no DNS round trip, no blocking); names through the resolver. */
int tcp_sock_resolve(const struct transport_hostport *hp, int passive, struct addrinfo **out)
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

/* A nonblocking connect of our own: CLOEXEC, options set first, and the real errno. */
int tcp_sock_connect(const struct addrinfo *ai)
{
	int fd, err;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		return -errno;
	}
	tcp_sock_setopts(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A listening socket; [::] also takes IPv4 (V6ONLY off whatever the sysctl says). */
static int tcp_sock_bind(const struct addrinfo *ai)
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

/* Parses, resolves and binds addr; the bound fd or -errno (logged). */
static int tcp_sock_listen_fd(const char *scheme, const char *addr)
{
	struct transport_hostport hp;
	struct addrinfo *ai;
	int rc, fd;

	if (transport_parse_hostport(addr, strlen(addr), &hp) < 0) {
		log_warnx("%s: bad listen address \"%s\" (want HOST:PORT)", scheme, addr);
		return -EINVAL;
	}
	rc = tcp_sock_resolve(&hp, 1, &ai);
	if (rc != 0) {
		log_warnx("%s: resolve %s: %s", scheme, hp.host, gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	fd = tcp_sock_bind(ai);
	freeaddrinfo(ai);
	if (fd < 0) {
		errno = -fd;
		log_warn("%s: bind %s", scheme, addr);
	}
	return fd;
}

/* --- acceptor ------------------------------------------------------------------------------ */

static void tcp_acceptor_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                                   struct sockaddr *sa, int salen, void *arg)
{
	struct tcp_acceptor *a = arg;

	/* The owner may free the acceptor in cb: nothing of it is touched afterwards. */
	a->cb(fd, sa, (socklen_t)salen, a->arg);
}

static void tcp_acceptor_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_acceptor *a = arg;

	evconnlistener_enable(a->lev);
}

/* Out of fds or memory: accept would fail again at once, so back off instead of spinning. */
static void tcp_acceptor_error_cb(struct evconnlistener *lev, void *arg)
{
	const struct timeval retry = {.tv_sec = TCP_ACCEPT_RETRY_S};
	struct tcp_acceptor *a = arg;
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("listener %s: accept: %s", a->uri, strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(lev);
		evtimer_add(a->retry_ev, &retry);
	}
}

int tcp_acceptor_open(struct tcp_acceptor *a, struct event_base *evb, const char *scheme,
                      const char *addr, tcp_acceptor_cb cb, void *arg, char *uri, size_t urilen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = tcp_sock_listen_fd(scheme, addr);

	memset(a, 0, sizeof(*a));

	if (fd < 0) {
		return fd;
	}
	a->cb = cb;
	a->arg = arg;
	a->uri = uri;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	tcp_sock_uri((struct sockaddr *)&ss, sslen, scheme, uri, urilen);
	errno = 0;
	a->lev = evconnlistener_new(evb, tcp_acceptor_accept_cb, a,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                            TCP_LISTEN_BACKLOG, fd);
	if (!a->lev) {
		int err = errno ? -errno : -ENOMEM;

		log_warnx("%s: listen %s: %s", scheme, addr, strerror(-err));
		close(fd);
		return err;
	}
	/* The listener owns fd from here on. */
	evconnlistener_set_error_cb(a->lev, tcp_acceptor_error_cb);
	a->retry_ev = evtimer_new(evb, tcp_acceptor_retry_cb, a);
	if (!a->retry_ev) {
		tcp_acceptor_close(a);
		return -ENOMEM;
	}
	return 0;
}

void tcp_acceptor_close(struct tcp_acceptor *a)
{
	if (a->lev) {
		evconnlistener_free(a->lev);
		a->lev = NULL;
	}
	if (a->retry_ev) {
		event_free(a->retry_ev);
		a->retry_ev = NULL;
	}
}
