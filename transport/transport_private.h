/* What a transport implementation provides; bridge/ never includes this. */
#ifndef VB_TRANSPORT_PRIVATE_H
#define VB_TRANSPORT_PRIVATE_H

#include "transport/transport.h"

struct transport_ops {
	const char *scheme; /* "tcp" matches "tcp://..." */
	/*
	 * addr is the URI without "scheme://". Must not run any upcall before it
	 * returns: transport_connect() installs the upcalls afterwards.
	 */
	int (*connect)(struct vb_loop *loop, const char *addr, const struct transport_params *p,
	               struct transport **out);
	int (*listen)(struct vb_loop *loop, const char *addr, const struct transport_params *p,
	              transport_accept_cb cb, void *arg, struct transport_listener **out);
	void (*listener_free)(struct transport_listener *l);
	int (*send)(struct transport *t, const struct iovec *iov, int iovcnt);
	int (*writable)(const struct transport *t);
	void (*pause_rx)(struct transport *t, int pause);
	void (*close)(struct transport *t);
	void (*get_stats)(const struct transport *t, struct transport_stats *st);
	/* Optional: NULL means a plaintext link ("" and "plaintext"). */
	const char *(*peer_identity)(const struct transport *t);
	const char *(*security)(const struct transport *t);
	/* Optional: transport_set_class(). */
	void (*set_class)(struct transport *t, uint32_t chan, unsigned cls);
	/* Optional: transport_detail(). */
	void (*detail)(const struct transport *t, char *buf, size_t len);
	/* Optional: transport_counters(). */
	unsigned (*counters)(const struct transport *t, struct transport_counter *out,
	                     unsigned max);
	/* Optional: address syntax (addr as for connect/listen); 0 or -EINVAL + why. */
	int (*check)(const char *addr, int listen, char *why, size_t len);
};

/* Embedded first in every implementation's link struct. */
struct transport {
	const struct transport_ops *ops;
	const struct transport_upcalls *up;
	void *arg;
	char peer[128];
};

struct transport_listener {
	const struct transport_ops *ops;
	char uri[128];
};

/* "HOST:PORT" of a tcp:// (or tls://) address. */
struct transport_hostport {
	char host[256]; /* a name, an IPv4 literal, or an IPv6 literal without brackets */
	uint16_t port;  /* 0 is accepted here; connect rejects it, listen binds any port */
};

/*
 * Parses len bytes of "HOST:PORT" (HOST a name, a.b.c.d or [v6], PORT decimal,
 * required). 0 or -EINVAL.
 */
int transport_parse_hostport(const char *s, size_t len, struct transport_hostport *out);

/* Registered implementations (transport.c holds the table). */
extern const struct transport_ops tcp_transport_ops;
extern const struct transport_ops tls_transport_ops;
extern const struct transport_ops tsn_transport_ops;

#endif
