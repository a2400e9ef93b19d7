/*
 * The one interface the bridge sees for links between nodes.
 *
 * A transport carries whole bridge messages. Every message starts with its
 * total length as a little-endian u32 (the bridge wire header, docs/protocol.md);
 * stream transports use that prefix for framing and drop the link when it is
 * below TRANSPORT_MIN_MSG or above the configured maximum, before allocating
 * anything. Schemes: tcp://HOST:PORT, tls://HOST:PORT (TLS 1.3, mutual
 * certificates; tsn:// comes later).
 */
#ifndef VB_TRANSPORT_H
#define VB_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct vb_loop;
struct transport;
struct transport_listener;
struct transport_tls; /* certificate, key, CA, pins: shared by links, reloadable */

#define TRANSPORT_MIN_MSG 12u

enum transport_state {
	TRANSPORT_UP,   /* connected; messages may be sent */
	TRANSPORT_DOWN, /* lost or failed; the owner must call transport_close() */
};

struct transport_upcalls {
	/* One whole message; buf is valid only during the call. */
	void (*on_message)(struct transport *t, const uint8_t *buf, size_t len, void *arg);
	/* Connection established, or lost (reason says why). */
	void (*on_state)(struct transport *t, enum transport_state st, const char *reason,
	                 void *arg);
	/* Queued output fell below the high-water mark again. */
	void (*on_writable)(struct transport *t, void *arg);
};

struct transport_params {
	size_t max_msg;            /* largest message accepted either way */
	size_t tx_high_water;      /* transport_writable() is false above this */
	struct transport_tls *tls; /* required by tls:// (-EINVAL without), ignored by tcp:// */
	/* tsn://: an 802.1Q tag on every frame, VID tsn_vid (0: priority tag), PCP from the class
	 */
	int tsn_tagged;
	unsigned tsn_vid;
};

/*
 * Traffic classes (docs/protocol.md 11.3). On tsn:// each class is its own
 * reliable stream with its own socket priority (and 802.1Q PCP), so bulk
 * traffic never waits behind control; other transports ignore classes.
 */
enum transport_class {
	TRANSPORT_CLASS_CONTROL,
	TRANSPORT_CLASS_AUDIO,
	TRANSPORT_CLASS_VIDEO,
	TRANSPORT_CLASS_BULK,
	TRANSPORT_NCLASS
};

const char *transport_class_name(unsigned cls); /* "control", ...; "?" out of range */
/* 0..TRANSPORT_NCLASS-1, or -EINVAL. */
int transport_class_parse(const char *name);

struct transport_stats {
	uint64_t tx_msgs, rx_msgs;
	uint64_t tx_bytes, rx_bytes;
	size_t tx_queued; /* bytes accepted by transport_send() but not yet sent */
};

/* Starts an outgoing connection; upcalls report UP or DOWN later. 0 or -errno. */
int transport_connect(struct vb_loop *loop, const char *uri, const struct transport_params *p,
                      const struct transport_upcalls *up, void *arg, struct transport **out);

/*
 * Accepted links start without upcalls; the callback must call transport_set_upcalls()
 * (or transport_close()). An accepted link is already UP: no UP upcall follows.
 */
typedef void (*transport_accept_cb)(struct transport *t, void *arg);
int transport_listen(struct vb_loop *loop, const char *uri, const struct transport_params *p,
                     transport_accept_cb cb, void *arg, struct transport_listener **out);
void transport_listener_free(struct transport_listener *l);
/* The bound address (useful with port 0), e.g. "tcp://127.0.0.1:7800". */
const char *transport_listener_uri(const struct transport_listener *l);

void transport_set_upcalls(struct transport *t, const struct transport_upcalls *up, void *arg);

/*
 * Checks the syntax of a URI for transport_listen() (listen != 0) or
 * transport_connect(), without opening anything: 0, or -EINVAL /
 * -EPROTONOSUPPORT with the reason in why.
 */
int transport_check_uri(const char *uri, int listen, char *why, size_t len);

/*
 * Queues one whole message given as an iovec (its first 4 bytes are the
 * length prefix, equal to the iovec total). 0, -EMSGSIZE (over max_msg),
 * -ENOBUFS (far over the high-water mark: the caller ignored backpressure),
 * -ENOTCONN.
 */
int transport_send(struct transport *t, const struct iovec *iov, int iovcnt);
/* Nonzero while queued output is under the high-water mark. */
int transport_writable(const struct transport *t);
/*
 * Stop (1) or resume (0) delivering incoming messages. While paused nothing is
 * read from the peer, so its close is seen after resuming, once the messages
 * sent before it were delivered.
 */
void transport_pause_rx(struct transport *t, int pause);
/*
 * Messages of channel chan go in class cls from now on (every message of a
 * channel must use one class, or they may be reordered). Default: control.
 */
void transport_set_class(struct transport *t, uint32_t chan, unsigned cls);
/* Closes and frees; no upcall runs afterwards. Safe from inside an upcall. NULL is a no-op. */
void transport_close(struct transport *t);

const char *transport_kind(const struct transport *t); /* "tcp", "tls" */
const char *transport_peer(const struct transport *t); /* "tcp://10.0.0.1:7800" */
void transport_get_stats(const struct transport *t, struct transport_stats *st);
/*
 * The authenticated peer identity (certificate SAN DNS or CN), "" on
 * plaintext links. Set once the link is UP (an accepted link already is);
 * the bridge must still compare it with the name the peer claims.
 */
const char *transport_peer_identity(const struct transport *t);
/* "plaintext", or on tls:// once UP e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384" ("" before). */
const char *transport_security(const struct transport *t);

/* A transport's own counters (tsn://: retransmissions, duplicates, drops ...). */
struct transport_counter {
	const char *name; /* static, [a-z0-9_] */
	uint64_t value;
};
#define TRANSPORT_MAX_COUNTERS 24
/* Fills up to max counters; returns how many (0 for transports without any). */
unsigned transport_counters(const struct transport *t, struct transport_counter *out, unsigned max);
/*
 * A line about how the transport sends, for status (tsn://: per class,
 * launch time or immediate and why); "" for transports with nothing to say.
 */
void transport_detail(const struct transport *t, char *buf, size_t len);

/*
 * TLS for tls:// links (OpenSSL): TLS 1.3 only, both sides present a
 * certificate chaining to `ca` (the system store is not used), no session
 * resumption. The peer identity is the first SAN DNS name of its
 * certificate, or its CN when it has no SAN DNS name; 1..253 characters of
 * [A-Za-z0-9._-], else the handshake fails. Pins, if given, must match the
 * SHA-256 of the peer certificate's SubjectPublicKeyInfo (any one of them),
 * in addition to the chain. The client does not match the server's name
 * against the URI: the bridge checks the identity against the HELLO name.
 */
struct transport_tls_config {
	const char *cert, *key, *ca;   /* PEM files: chain (leaf first), key, trusted CA(s) */
	const char *const *pins;       /* "sha256//BASE64" or 64 hex chars, may be NULL */
	unsigned npins;                /* at most TRANSPORT_TLS_MAX_PINS */
	unsigned handshake_timeout_ms; /* 0 = 10000 */
	const char *identity; /* our own certificate must name this node (NULL: unchecked) */
};

#define TRANSPORT_TLS_MAX_PINS 8

/*
 * Loads the files and builds the context; NULL with a reason in err (errlen > 0).
 * With c->identity, a certificate that names another node (the peers' check
 * against HELLO would refuse every link) is refused here, and by reloads.
 */
struct transport_tls *transport_tls_new(const struct transport_tls_config *c, char *err,
                                        size_t errlen);
/*
 * Builds a fresh context from the same files and swaps it in for new links;
 * existing links keep theirs. 0, or -errno (-ENOENT/-EACCES unreadable
 * file, -EINVAL bad or mismatched files, -ENOMEM) with the reason in err
 * (and logged), keeping the old context.
 */
int transport_tls_reload(struct transport_tls *tls, char *err, size_t errlen);
/* Drops the caller's reference; links and listeners hold their own. NULL is a no-op. */
void transport_tls_free(struct transport_tls *tls);

#endif
