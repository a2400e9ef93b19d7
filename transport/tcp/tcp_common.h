/*
 * What tcp:// and tls:// links share (internal to transport/tcp/): framing
 * and the contiguous receive buffer, the send-side message check, socket
 * set-up, and a listening socket that backs off when out of descriptors.
 */
#ifndef VB_TCP_COMMON_H
#define VB_TCP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "transport/transport_private.h"

struct addrinfo;
struct event;
struct event_base;
struct evconnlistener;

#define TCP_PREFIX_LEN      4
#define TCP_READ_MAX        (256 * 1024)  /* per read call, bounded by the free space */
#define TCP_RX_BUDGET       (1024 * 1024) /* per wakeup, for fairness between links */
#define TCP_RX_INIT         (128 * 1024)  /* a 64 KiB request with its header fits */
#define TCP_RX_AHEAD        (64 * 1024)   /* room beyond a large message when growing */
#define TCP_RX_SHRINK_AFTER 16

/*
 * Received bytes [head, tail) not yet delivered: whole messages, then at
 * most one partial one. See tcp_link.c's top comment for the sizing policy.
 */
struct tcp_rx {
	uint8_t *buf;
	size_t cap, head, tail;
	size_t max_msg;
	unsigned small_run; /* messages in a row that fit TCP_RX_INIT */
};

/* Allocates the initial buffer. 0 or -ENOMEM. */
int tcp_rx_init(struct tcp_rx *rx, size_t max_msg);
void tcp_rx_free(struct tcp_rx *rx);

/* Bytes received and not yet delivered. */
static inline size_t tcp_rx_left(const struct tcp_rx *rx)
{
	return rx->tail - rx->head;
}

/*
 * Makes room behind the undelivered bytes (moving them to the front,
 * growing to what a checked prefix announces, or shrinking). Returns the
 * free space at rx->buf + rx->tail (> 0), or -ENOMEM with the buffer kept.
 */
ssize_t tcp_rx_room(struct tcp_rx *rx);

/* Records n bytes written at rx->buf + rx->tail. */
static inline void tcp_rx_commit(struct tcp_rx *rx, size_t n)
{
	rx->tail += n;
}

/*
 * The next whole message. 1: *msg and *len describe it, already consumed
 * (valid until the next tcp_rx_room()); 0: more bytes needed; -EBADMSG: the
 * prefix (*len) is below TRANSPORT_MIN_MSG or above max_msg.
 */
int tcp_rx_next(struct tcp_rx *rx, const uint8_t **msg, uint32_t *len);

/* The length announced by the partial message at the front (0 if not yet known). */
uint32_t tcp_rx_wanted(const struct tcp_rx *rx);

/*
 * Checks a message handed to transport_send(): total length and a prefix
 * that equals it. 0, -EINVAL (malformed) or -EMSGSIZE (over max_msg).
 */
int tcp_msg_check(const struct iovec *iov, int iovcnt, size_t max_msg, size_t *total);

/* TCP_NODELAY and keepalive; failures are logged, not fatal. */
void tcp_sock_setopts(int fd);
/* "SCHEME://a.b.c.d:port" or "SCHEME://[v6]:port"; a v4-mapped v6 address prints as v4. */
void tcp_sock_uri(const struct sockaddr *sa, socklen_t salen, const char *scheme, char *buf,
                  size_t len);
/* getaddrinfo(): numeric hosts first, names through the resolver. 0 or an EAI_* code. */
int tcp_sock_resolve(const struct transport_hostport *hp, int passive, struct addrinfo **out);
/* A nonblocking, CLOEXEC socket with options set and connect(2) started. fd or -errno. */
int tcp_sock_connect(const struct addrinfo *ai);

/* A listening socket on libevent; accepted fds (CLOEXEC, nonblocking) go to cb. */
typedef void (*tcp_acceptor_cb)(int fd, const struct sockaddr *sa, socklen_t salen, void *arg);

struct tcp_acceptor {
	struct evconnlistener *lev;
	struct event *retry_ev;
	tcp_acceptor_cb cb;
	void *arg;
	const char *uri; /* the owner's listener URI, for logs */
};

/*
 * Binds and listens on addr ("HOST:PORT", port 0 picks one) and writes the
 * bound address as SCHEME://... into uri. 0 or -errno (logged). cb may free
 * the acceptor.
 */
int tcp_acceptor_open(struct tcp_acceptor *a, struct event_base *evb, const char *scheme,
                      const char *addr, tcp_acceptor_cb cb, void *arg, char *uri, size_t urilen);
/* Closes the socket; a zeroed or closed acceptor is a no-op. */
void tcp_acceptor_close(struct tcp_acceptor *a);

#endif
