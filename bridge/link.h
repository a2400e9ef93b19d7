/*
 * A link: one transport session between two vbridged nodes carrying many
 * device channels. HELLO is exchanged first; then channel messages are
 * dispatched to whoever opened the channel. Outgoing links reconnect with
 * back-off; a protocol error drops the link with a log line.
 */
#ifndef VB_LINK_H
#define VB_LINK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bridge/wire.h"

struct node;
struct link;
struct transport;
struct jw;

struct link_chan_ops {
	/* A decoded message for this channel. */
	void (*on_msg)(void *arg, const struct wire_msg *m);
	/* HELLO completed (also after a reconnect). */
	void (*on_up)(void *arg);
	/* Link lost: the channel is closed by the link afterwards. */
	void (*on_down)(void *arg, const char *reason);
	/* Output room again after backpressure. */
	void (*on_writable)(void *arg);
};

#define LINK_MAX_CHANS 256

/* Outgoing link to uri (tcp://...), connecting now and after every loss. */
struct link *link_connect(struct node *n, const char *uri);
/* Takes over an accepted transport. */
struct link *link_accept(struct node *n, struct transport *t);
void link_free(struct link *l);

/* Opens channel chan (0 = pick a free one); returns the number or -errno. */
int link_chan_open(struct link *l, uint32_t chan, const struct link_chan_ops *ops, void *arg);
void link_chan_close(struct link *l, uint32_t chan);
/* The traffic class (transport.h) of the channel's messages, kept across reconnects. */
void link_chan_set_class(struct link *l, uint32_t chan, unsigned cls);

bool link_is_up(const struct link *l);
bool link_writable(const struct link *l);
const char *link_uri(const struct link *l);
const char *link_peer_name(const struct link *l);
uint32_t link_max_msg(const struct link *l);

/* Counted pause of incoming messages (every channel asking must resume). */
void link_pause_rx(struct link *l, bool pause);

/* Encodes and sends a small message; 0 or -errno. */
int link_send(struct link *l, const struct wire_msg *m);
/* Sends a message already encoded as an iovec (REQUEST/COMPLETION). */
int link_sendv(struct link *l, const struct iovec *iov, int n);
/* Sends ERROR(code, reason) on chan. */
void link_send_error(struct link *l, uint32_t chan, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Protocol error by the peer: log why, close the transport (outgoing links retry). */
void link_drop(struct link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void link_status_json(const struct link *l, struct jw *w);

#endif
