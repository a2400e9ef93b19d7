/*
 * tsn:// links: bridge messages over raw Ethernet in IEEE 1722 frames with
 * reliable, ordered delivery (docs/protocol.md section 11).
 *
 * Layers: tsn_port.c reads and writes frames in batches on one AF_PACKET
 * socket per interface; avtp.c encodes and checks frames; rel.c decides
 * sequence numbers, acknowledgements and retransmissions per traffic class.
 * This file holds the links: set-up (OPEN/ACCEPT), segmentation of queued
 * messages into the sender's slots, reassembly from the receiver's slots,
 * keepalive, and the demultiplexer that hands each frame of a port to its
 * link (by peer MAC and our token) or to the listener (OPEN).
 *
 * Memory is bounded: per class and direction `TSN_CAP` slots of one segment,
 * one reassembly buffer of at most max_msg, and queued output refused past
 * 4 x tx_high_water + max_msg (as on tcp://). A class's slots are allocated
 * when the class is first used; today every message travels in `control`.
 *
 * Backpressure is the credit: while the bridge pauses reception we stop
 * popping segments, the receive window closes, and the peer stops sending.
 *
 * Re-entrancy follows tcp_link.c: callbacks run between tsn_enter() and
 * tsn_leave(); transport_close() from inside an upcall only marks the link,
 * and the outermost tsn_leave() frees it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "transport/transport_private.h"
#include "transport/tsn/avtp.h"
#include "transport/tsn/frag.h"
#include "transport/tsn/rel.h"
#include "transport/tsn/tsn_port.h"

#define TSN_CAP          256u          /* segments per class and direction */
#define TSN_OPEN_NS      200000000ull  /* OPEN every 200 ms ... */
#define TSN_OPEN_TRIES   50u           /* ... for 10 s */
#define TSN_PING_NS      1000000000ull /* PING after 1 s without sending */
#define TSN_SILENT_NS    5000000000ull /* nothing heard for 5 s: peer lost */
#define TSN_MAX_ACCEPTED 64u           /* links one listener holds at once */
#define TSN_MAX_PER_MAC  4u            /* of them from one peer MAC */

enum tsn_state {
	TSN_OPENING,
	TSN_UP,
	TSN_DOWN,
};

static const char *const tsn_state_names[] = {
    [TSN_OPENING] = "opening",
    [TSN_UP] = "up",
    [TSN_DOWN] = "down",
};

/* One traffic class: a reliable stream each way. */
struct tsn_cls {
	bool ready;
	struct rel_tx tx;
	struct rel_rx rx;
	uint8_t *txbuf, *rxbuf; /* TSN_CAP slots of tx_seg / AVTP_SEG_DATA_MAX bytes */
	uint16_t txlen[TSN_CAP], rxlen[TSN_CAP];
	uint8_t txflags[TSN_CAP], rxflags[TSN_CAP];
	uint32_t txchan[TSN_CAP];
	uint8_t avtp_seq;
	struct evbuffer *pend; /* whole messages queued, not yet segmented */
	struct frag_tx cut;    /* the message being segmented */
	struct frag_rx join;   /* the message being reassembled */
	uint64_t ping_ns;      /* last PING for a closed window */
};

struct tsn_demux;

struct tsn_link {
	struct transport base; /* first: container_of from the public handle */
	struct tsn_link *next; /* of the demux */
	struct tsn_demux *dm;
	struct event_base *evb;
	struct event *timer;
	struct event *kick; /* sends what transport_send() queued, once per loop turn */
	bool accepted;
	uint8_t peer[AVTP_MAC_LEN];
	enum tsn_state state;
	bool closed, paused, down_reported, tx_blocked;
	int in_cb;
	uint32_t my_token, peer_token, my_isn, peer_isn;
	uint16_t peer_max_seg, peer_window;
	uint16_t tx_seg; /* data bytes per segment we send */
	unsigned open_tries;
	uint64_t last_rx_ns, last_tx_ns;
	size_t max_msg, tx_high_water;
	bool tagged; /* 802.1Q tag: VID vid, PCP the class's priority */
	uint16_t vid;
	uint8_t chan_cls[256]; /* class of each channel's messages (transport_set_class) */
	struct transport_stats st;
	uint64_t dup_segs, ooo_drops, bad_token;
	struct tsn_cls cls[AVTP_NCLASS];
};

struct tsn_listener {
	struct transport_listener base;
	struct tsn_demux *dm;
	struct event_base *evb;
	transport_accept_cb cb;
	void *arg;
	struct transport_params p;
};

/* One per port: its links, its listener, and what it dropped before any link saw it. */
struct tsn_demux {
	struct tsn_demux *next;
	unsigned refs;
	struct tsn_port *port;
	struct tsn_link *links;
	struct tsn_listener *lst;
	uint64_t drops[AVTP_E_COUNT];
	uint64_t not_ours, no_link;
};

static struct tsn_demux *tsn_demuxes;

static void tsn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void tsn_kick_cb(evutil_socket_t fd, short what, void *arg);
static void tsn_schedule(struct tsn_link *l, uint64_t now);

/* --- helpers -------------------------------------------------------------------------------- */

static uint32_t tsn_random32(void)
{
	uint32_t v = 0;

	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
			fatalx("getrandom failed");
		}
	}
	return v;
}

static const uint8_t *tsn_mac(const struct tsn_link *l)
{
	return tsn_port_mac(l->dm->port);
}

/* --- demux ---------------------------------------------------------------------------------- */

static void tsn_demux_frame(struct tsn_port *p, const uint8_t *buf, size_t len, void *arg);
static void tsn_demux_batch_end(struct tsn_port *p, void *arg);

static const struct tsn_port_handler tsn_demux_handler = {
    .frame = tsn_demux_frame,
    .batch_end = tsn_demux_batch_end,
};

static struct tsn_demux *tsn_demux_get(struct event_base *evb, const char *ifname, char *err,
                                       size_t errlen)
{
	struct tsn_port *port = tsn_port_get(evb, ifname, err, errlen);
	struct tsn_demux *dm;

	if (!port) {
		return NULL;
	}
	for (dm = tsn_demuxes; dm; dm = dm->next) {
		if (dm->port == port) {
			tsn_port_put(port); /* the demux holds one reference */
			dm->refs++;
			return dm;
		}
	}
	dm = calloc(1, sizeof(*dm));
	if (!dm) {
		tsn_port_put(port);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dm->refs = 1;
	dm->port = port;
	dm->next = tsn_demuxes;
	tsn_demuxes = dm;
	tsn_port_set_handler(port, &tsn_demux_handler, dm);
	return dm;
}

static void tsn_demux_put(struct tsn_demux *dm)
{
	struct tsn_demux **pp;

	if (!dm || --dm->refs > 0) {
		return;
	}
	for (pp = &tsn_demuxes; *pp; pp = &(*pp)->next) {
		if (*pp == dm) {
			*pp = dm->next;
			break;
		}
	}
	tsn_port_set_handler(dm->port, NULL, NULL);
	tsn_port_put(dm->port);
	free(dm);
}

static void tsn_demux_unlink(struct tsn_link *l)
{
	struct tsn_link **pp;

	for (pp = &l->dm->links; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			return;
		}
	}
}

/* --- link life ------------------------------------------------------------------------------ */

static void tsn_cls_free(struct tsn_cls *c)
{
	if (!c->ready) {
		return;
	}
	rel_tx_fini(&c->tx);
	rel_rx_fini(&c->rx);
	free(c->txbuf);
	free(c->rxbuf);
	frag_rx_fini(&c->join);
	evbuffer_free(c->pend);
	memset(c, 0, sizeof(*c));
}

/* Slots and engines of class c, made when first used. 0 or -ENOMEM. */
static int tsn_cls_ready(struct tsn_link *l, unsigned ci)
{
	struct tsn_cls *c = &l->cls[ci];
	struct rel_tx_cfg cfg = {.isn = l->my_isn, .cap = TSN_CAP, .window = l->peer_window};

	if (c->ready) {
		return 0;
	}
	c->txbuf = malloc((size_t)TSN_CAP * l->tx_seg);
	c->rxbuf = malloc((size_t)TSN_CAP * AVTP_SEG_DATA_MAX);
	c->pend = evbuffer_new();
	if (!c->txbuf || !c->rxbuf || !c->pend || rel_tx_init(&c->tx, &cfg) < 0) {
		goto fail;
	}
	if (rel_rx_init(&c->rx, l->peer_isn, TSN_CAP) < 0) {
		rel_tx_fini(&c->tx);
		goto fail;
	}
	frag_rx_init(&c->join, l->max_msg);
	c->ready = true;
	return 0;
fail:
	free(c->txbuf);
	free(c->rxbuf);
	if (c->pend) {
		evbuffer_free(c->pend);
	}
	memset(c, 0, sizeof(*c));
	return -ENOMEM;
}

static void tsn_link_free(struct tsn_link *l)
{
	tsn_demux_unlink(l);
	for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
		tsn_cls_free(&l->cls[ci]);
	}
	if (l->timer) {
		event_free(l->timer);
	}
	if (l->kick) {
		event_free(l->kick);
	}
	tsn_demux_put(l->dm);
	free(l);
}

static struct tsn_link *tsn_link_new(struct tsn_demux *dm, struct event_base *evb,
                                     const struct transport_params *p, const uint8_t peer[6])
{
	struct tsn_link *l = calloc(1, sizeof(*l));
	char mac[AVTP_MAC_STRLEN];

	if (!l) {
		return NULL;
	}
	l->base.ops = &tsn_transport_ops;
	l->dm = dm;
	dm->refs++;
	l->evb = evb;
	memcpy(l->peer, peer, AVTP_MAC_LEN);
	l->max_msg = p->max_msg;
	l->tx_high_water = p->tx_high_water;
	l->tagged = p->tsn_tagged != 0;
	l->vid = (uint16_t)VB_MIN(p->tsn_vid, AVTP_VID_MAX);
	l->my_token = tsn_random32();
	l->my_isn = tsn_random32();
	l->timer = evtimer_new(evb, tsn_timer_cb, l);
	l->kick = event_new(evb, -1, 0, tsn_kick_cb, l);
	if (!l->timer || !l->kick) {
		l->next = NULL;
		tsn_link_free(l);
		return NULL;
	}
	snprintf(l->base.peer, sizeof(l->base.peer), "tsn://%s/%s", tsn_port_name(dm->port),
	         avtp_mac_format(peer, mac));
	l->next = dm->links;
	dm->links = l;
	return l;
}

static void tsn_enter(struct tsn_link *l)
{
	l->in_cb++;
}

static void tsn_leave(struct tsn_link *l)
{
	if (--l->in_cb == 0 && l->closed) {
		tsn_link_free(l);
	}
}

static void tsn_set_state(struct tsn_link *l, enum tsn_state st, const char *why)
{
	log_debug("tsn link %s: state change %s -> %s, reason: %s", l->base.peer,
	          tsn_state_names[l->state], tsn_state_names[st], why);
	l->state = st;
}

/* --- transmit ------------------------------------------------------------------------------- */

struct tsn_frame {
	struct avtp_builder b;
	bool open;
	unsigned ci;
};

static void tsn_frame_finish(struct tsn_link *l, struct tsn_frame *f)
{
	if (!f->open) {
		return;
	}
	tsn_port_tx_commit(l->dm->port, f->ci, avtp_build_finish(&f->b));
	f->open = false;
	l->last_tx_ns = vb_now_ns();
}

static int tsn_frame_begin(struct tsn_link *l, struct tsn_frame *f, unsigned ci, uint8_t subtype,
                           uint32_t chan)
{
	struct tsn_cls *c = &l->cls[ci];
	struct avtp_hdr h = {
	    .subtype = subtype,
	    .seq = c->avtp_seq++,
	    .stream_id = avtp_stream_id(tsn_mac(l), ci, subtype == AVTP_SUBTYPE_TSCF ? chan : 0),
	};
	int rc;

	memcpy(h.dst, l->peer, AVTP_MAC_LEN);
	memcpy(h.src, tsn_mac(l), AVTP_MAC_LEN);
	if (l->tagged) {
		h.vlan = true;
		h.vid = l->vid;
		h.pcp = (uint8_t)(tsn_port_priority(l->dm->port, ci) & AVTP_PCP_MAX);
	}
	rc = avtp_build_begin(&f->b, tsn_port_tx_buf(l->dm->port, ci), TSN_FRAME_MAX,
	                      tsn_port_mtu(l->dm->port), &h);
	if (rc < 0) {
		return rc;
	}
	f->open = true;
	f->ci = ci;
	return 0;
}

/* Puts the segment of slot seq into the open data frame, or a new one. */
static void tsn_frame_seg(struct tsn_link *l, struct tsn_frame *f, unsigned ci, uint32_t seq)
{
	struct tsn_cls *c = &l->cls[ci];
	uint32_t slot = rel_slot(seq, TSN_CAP);
	struct avtp_seg s = {
	    .flags = c->txflags[slot],
	    .cls = (uint8_t)ci,
	    .token = l->peer_token,
	    .seq = seq,
	    .data_len = c->txlen[slot],
	    .data = c->txbuf + (size_t)slot * l->tx_seg,
	};

	if (f->open && avtp_build_seg_room(&f->b) < s.data_len) {
		tsn_frame_finish(l, f);
	}
	if (!f->open && tsn_frame_begin(l, f, ci, AVTP_SUBTYPE_TSCF, c->txchan[slot]) < 0) {
		return; /* the MTU shrank under us: the retransmission timer tries again */
	}
	if (avtp_build_seg(&f->b, &s) < 0) {
		tsn_frame_finish(l, f);
	}
}

/* One NTSCF frame with an ACK of class ci. */
static void tsn_send_ack(struct tsn_link *l, unsigned ci)
{
	struct tsn_cls *c = &l->cls[ci];
	struct rel_ack ra;
	struct avtp_ack a;
	struct tsn_frame f = {0};

	rel_rx_ack(&c->rx, &ra);
	a = (struct avtp_ack){.cls = (uint8_t)ci,
	                      .token = l->peer_token,
	                      .cum = ra.cum,
	                      .window = ra.window,
	                      .sack = ra.sack};
	if (tsn_frame_begin(l, &f, ci, AVTP_SUBTYPE_NTSCF, 0) == 0 &&
	    avtp_build_ack(&f.b, &a) == 0) {
		tsn_frame_finish(l, &f);
	}
}

static void tsn_send_ctl(struct tsn_link *l, uint8_t op, uint64_t time, const char *reason)
{
	struct avtp_ctl c = {
	    .op = op,
	    .token = op == AVTP_CTL_OPEN ? 0 : l->peer_token,
	    .my_token = l->my_token,
	    .max_seg = AVTP_SEG_DATA_MAX,
	    .window = TSN_CAP,
	    .isn = l->my_isn,
	    .time = time,
	    .reason_len = reason ? (uint32_t)VB_MIN(strlen(reason), AVTP_CTL_REASON_MAX) : 0,
	    .reason = reason,
	};
	struct tsn_frame f = {0};

	if (op != AVTP_CTL_OPEN && op != AVTP_CTL_ACCEPT) {
		c.max_seg = 0;
		c.window = 0;
		c.isn = 0;
	}
	if (tsn_frame_begin(l, &f, AVTP_CLASS_CONTROL, AVTP_SUBTYPE_NTSCF, 0) == 0 &&
	    avtp_build_ctl(&f.b, &c) == 0) {
		tsn_frame_finish(l, &f);
	}
}

static size_t tsn_queued(const struct tsn_link *l)
{
	size_t n = 0;

	for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
		const struct tsn_cls *c = &l->cls[ci];

		if (c->ready) {
			n += evbuffer_get_length(c->pend) +
			     (size_t)rel_tx_outstanding(&c->tx) * l->tx_seg;
		}
	}
	return n;
}

/* Cuts the next segment of queued messages into a new slot. */
static void tsn_cls_cut(struct tsn_link *l, struct tsn_cls *c, uint32_t seq)
{
	uint32_t slot = rel_slot(seq, TSN_CAP);
	uint8_t hdr[12] = {0};
	size_t n;

	if (c->cut.left == 0) {
		/* Whole messages only are queued: the length and channel are there. */
		evbuffer_copyout(c->pend, hdr, sizeof(hdr));
	}
	frag_tx_next(&c->cut, hdr, l->tx_seg, &n, &c->txflags[slot], &c->txchan[slot]);
	evbuffer_remove(c->pend, c->txbuf + (size_t)slot * l->tx_seg, n);
	c->txlen[slot] = (uint16_t)n;
}

/* Retransmissions due, then new segments while credit lasts. */
static void tsn_cls_pump(struct tsn_link *l, unsigned ci, uint64_t now)
{
	struct tsn_cls *c = &l->cls[ci];
	struct tsn_frame f = {0};
	uint32_t seq;

	if (!c->ready) {
		return;
	}
	while (rel_tx_next_due(&c->tx, now, &seq)) {
		tsn_frame_seg(l, &f, ci, seq);
	}
	while (evbuffer_get_length(c->pend) && rel_tx_can_send(&c->tx)) {
		if (rel_tx_push(&c->tx, now, &seq) < 0) {
			break;
		}
		tsn_cls_cut(l, c, seq);
		tsn_frame_seg(l, &f, ci, seq);
	}
	tsn_frame_finish(l, &f);
	/* Credit, not capacity, stops us: ask (once per RTO) for a window update. */
	if (evbuffer_get_length(c->pend) && rel_tx_window_closed(&c->tx) &&
	    now - c->ping_ns >= c->tx.rto) {
		c->ping_ns = now;
		tsn_send_ctl(l, AVTP_CTL_PING, now, NULL);
	}
}

static void tsn_pump(struct tsn_link *l, uint64_t now)
{
	if (l->state != TSN_UP) {
		return;
	}
	for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
		tsn_cls_pump(l, ci, now);
	}
}

/* --- state changes and upcalls -------------------------------------------------------------- */

static void tsn_upcall_state(struct tsn_link *l, enum transport_state st, const char *reason)
{
	if (l->base.up && l->base.up->on_state) {
		l->base.up->on_state(&l->base, st, reason, l->base.arg);
	}
}

static void tsn_link_down(struct tsn_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tsn_link_down(struct tsn_link *l, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (l->state == TSN_DOWN || l->closed) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (l->state == TSN_UP) {
		tsn_send_ctl(l, AVTP_CTL_CLOSE, 0, why);
		tsn_port_flush(l->dm->port);
	}
	tsn_set_state(l, TSN_DOWN, why);
	evtimer_del(l->timer);
	if (!l->down_reported) {
		l->down_reported = true;
		tsn_upcall_state(l, TRANSPORT_DOWN, why);
	}
}

static void tsn_writable_check(struct tsn_link *l)
{
	if (l->tx_blocked && !l->closed && l->state == TSN_UP && tsn_queued(l) < l->tx_high_water) {
		l->tx_blocked = false;
		if (l->base.up && l->base.up->on_writable) {
			l->base.up->on_writable(&l->base, l->base.arg);
		}
	}
}

/* The peer's OPEN or ACCEPT: its token, isn and limits; the link is UP. 0 or -errno. */
static int tsn_link_established(struct tsn_link *l, const struct avtp_ctl *c)
{
	unsigned mtu = tsn_port_mtu(l->dm->port);
	size_t room = mtu > AVTP_TSCF_HDR_LEN + AVTP_SEG_HDR_LEN + 4
	                  ? mtu - AVTP_TSCF_HDR_LEN - AVTP_SEG_HDR_LEN
	                  : 0;

	l->peer_token = c->my_token;
	l->peer_isn = c->isn;
	l->peer_max_seg = c->max_seg;
	l->peer_window = c->window;
	/* Whole quadlets, so a full segment fills the MTU exactly. */
	l->tx_seg = (uint16_t)(VB_MIN(VB_MIN(room, (size_t)c->max_seg), AVTP_SEG_DATA_MAX) & ~3u);
	if (l->tx_seg < 64 || c->window == 0) {
		return -EINVAL;
	}
	return tsn_cls_ready(l, AVTP_CLASS_CONTROL);
}

/* --- receive -------------------------------------------------------------------------------- */

/* Pops in-order segments of class ci into messages and hands them up. */
static void tsn_cls_deliver(struct tsn_link *l, unsigned ci)
{
	struct tsn_cls *c = &l->cls[ci];
	uint32_t seq;

	while (c->ready && !l->paused && !l->closed && l->state == TSN_UP &&
	       rel_rx_pop(&c->rx, &seq)) {
		uint32_t slot = rel_slot(seq, TSN_CAP);
		const uint8_t *msg;
		const char *why;
		size_t len;
		int rc = frag_rx_push(&c->join, c->rxflags[slot],
		                      c->rxbuf + (size_t)slot * AVTP_SEG_DATA_MAX, c->rxlen[slot],
		                      &msg, &len, &why);

		if (rc < 0) {
			tsn_link_down(l, "class %s segment %u: %s", avtp_class_name(ci), seq, why);
			return;
		}
		if (rc == 0) {
			continue;
		}
		l->st.rx_msgs++;
		l->st.rx_bytes += len;
		if (l->base.up && l->base.up->on_message) {
			l->base.up->on_message(&l->base, msg, len, l->base.arg);
		}
	}
}

static void tsn_rx_seg(struct tsn_link *l, const struct avtp_seg *s)
{
	struct tsn_cls *c;
	uint32_t slot;

	if (tsn_cls_ready(l, s->cls) < 0) {
		tsn_link_down(l, "out of memory for class %s", avtp_class_name(s->cls));
		return;
	}
	c = &l->cls[s->cls];
	switch (rel_rx_on_seg(&c->rx, s->seq)) {
	case REL_NEW:
		slot = rel_slot(s->seq, TSN_CAP);
		memcpy(c->rxbuf + (size_t)slot * AVTP_SEG_DATA_MAX, s->data, s->data_len);
		c->rxlen[slot] = s->data_len;
		c->rxflags[slot] = s->flags;
		break;
	case REL_DUP:
		l->dup_segs++;
		break;
	case REL_OUT_OF_WINDOW:
		l->ooo_drops++;
		break;
	}
}

static void tsn_rx_ack(struct tsn_link *l, const struct avtp_ack *a, uint64_t now)
{
	struct tsn_cls *c = &l->cls[a->cls];
	struct rel_ack ra = {.cum = a->cum, .window = a->window, .sack = a->sack};
	uint32_t first;

	if (!c->ready) {
		/* A class we never sent on: the peer's answer to a PING, acking nothing. */
		if (a->cum == l->my_isn && a->sack == 0) {
			return;
		}
	} else if (rel_tx_on_ack(&c->tx, now, &ra, &first) >= 0) {
		return;
	}
	tsn_link_down(l, "class %s: acknowledgement of segments never sent (cum %u)",
	              avtp_class_name(a->cls), a->cum);
}

static void tsn_rx_ctl(struct tsn_link *l, const struct avtp_ctl *c, uint64_t now)
{
	char reason[AVTP_CTL_REASON_MAX + 1];

	switch (c->op) {
	case AVTP_CTL_ACCEPT:
		if (l->state != TSN_OPENING || l->accepted) {
			return; /* a repeated ACCEPT: our OPEN crossed it */
		}
		if (tsn_link_established(l, c) < 0) {
			tsn_link_down(l,
			              "peer accepted with unusable limits (max_seg %u, window %u)",
			              c->max_seg, c->window);
			return;
		}
		tsn_set_state(l, TSN_UP, "accepted");
		log_info("tsn link %s: up, segments of %u bytes, window %u", l->base.peer,
		         l->tx_seg, l->peer_window);
		tsn_upcall_state(l, TRANSPORT_UP, "accepted");
		break;
	case AVTP_CTL_PING:
		tsn_send_ctl(l, AVTP_CTL_PONG, c->time, NULL);
		for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
			if (l->cls[ci].ready) {
				tsn_send_ack(l, ci);
			}
		}
		break;
	case AVTP_CTL_PONG:
		break;
	case AVTP_CTL_CLOSE:
		/* Whatever arrived in order before the CLOSE is delivered first. */
		for (unsigned ci = 0; ci < AVTP_NCLASS && !l->closed && l->state == TSN_UP; ci++) {
			tsn_cls_deliver(l, ci);
		}
		if (l->closed || l->state != TSN_UP) {
			return;
		}
		snprintf(reason, sizeof(reason), "%.*s", (int)c->reason_len, c->reason);
		tsn_link_down(l, "peer closed the link: %s", c->reason_len ? reason : "no reason");
		break;
	default: /* OPEN goes to the listener */
		break;
	}
}

/* Every message of one frame for link l (the demux matched MAC and token). */
static void tsn_link_rx(struct tsn_link *l, const struct avtp_frame *f, uint64_t now)
{
	l->last_rx_ns = now;
	for (unsigned i = 0; i < f->n_acf && !l->closed && l->state != TSN_DOWN; i++) {
		const struct avtp_acf *m = &f->acf[i];
		struct avtp_seg s;
		struct avtp_ack a;
		struct avtp_ctl c;

		if (m->type == AVTP_ACF_CTL && avtp_ctl_decode(m->msg, m->len, &c) == 0) {
			tsn_rx_ctl(l, &c, now);
		} else if (l->state != TSN_UP) {
			continue; /* data before ACCEPT: the OPEN retry sorts it out */
		} else if (m->type == AVTP_ACF_SEG && avtp_seg_decode(m->msg, m->len, &s) == 0) {
			tsn_rx_seg(l, &s);
		} else if (m->type == AVTP_ACF_ACK && avtp_ack_decode(m->msg, m->len, &a) == 0) {
			tsn_rx_ack(l, &a, now);
		}
	}
}

/* The token a frame addresses (the first message's; all of a frame go to one link). */
static int tsn_frame_token(const struct avtp_frame *f, uint32_t *token, struct avtp_ctl *open)
{
	const struct avtp_acf *m = &f->acf[0];
	struct avtp_seg s;
	struct avtp_ack a;

	if (f->n_acf == 0) {
		return -1;
	}
	switch (m->type) {
	case AVTP_ACF_SEG:
		avtp_seg_decode(m->msg, m->len, &s);
		*token = s.token;
		return 0;
	case AVTP_ACF_ACK:
		avtp_ack_decode(m->msg, m->len, &a);
		*token = a.token;
		return 0;
	default:
		avtp_ctl_decode(m->msg, m->len, open);
		*token = open->token;
		return open->op == AVTP_CTL_OPEN ? 1 : 0;
	}
}

static void tsn_listener_open(struct tsn_demux *dm, const struct avtp_frame *f,
                              const struct avtp_ctl *c, uint64_t now);

static void tsn_demux_frame(struct tsn_port *p, const uint8_t *buf, size_t len, void *arg)
{
	struct tsn_demux *dm = arg;
	struct avtp_frame f;
	struct avtp_ctl open;
	struct tsn_link *l;
	uint32_t token = 0;
	int rc = avtp_decode(buf, len, &f);

	if (rc < 0) {
		dm->drops[-rc < AVTP_E_COUNT ? -rc : 0]++;
		return;
	}
	if (memcmp(f.h.dst, tsn_port_mac(p), AVTP_MAC_LEN) != 0) {
		dm->not_ours++; /* multicast 1722 streams, or another station's */
		return;
	}
	rc = tsn_frame_token(&f, &token, &open);
	if (rc == 1) {
		dm->refs++; /* the accept callback may close the listener */
		tsn_listener_open(dm, &f, &open, vb_now_ns());
		tsn_demux_put(dm);
		return;
	}
	for (l = dm->links; l; l = l->next) {
		if (!l->closed && !memcmp(l->peer, f.h.src, AVTP_MAC_LEN)) {
			if (l->my_token == token) {
				break;
			}
			l->bad_token++; /* an earlier session's, or replayed */
		}
	}
	if (!l || rc < 0) {
		dm->no_link++;
		return;
	}
	dm->refs++; /* the link's last close must not free the demux under us */
	tsn_enter(l);
	tsn_link_rx(l, &f, vb_now_ns());
	tsn_leave(l);
	tsn_demux_put(dm);
}

/* After a batch: deliver, acknowledge once per class, send what the credit allows. */
/* Deliver what is in order, acknowledge, send what the credit allows, re-arm. */
static void tsn_link_service(struct tsn_link *l, uint64_t now)
{
	for (unsigned ci = 0; ci < AVTP_NCLASS && !l->closed; ci++) {
		tsn_cls_deliver(l, ci);
	}
	for (unsigned ci = 0; ci < AVTP_NCLASS && !l->closed && l->state == TSN_UP; ci++) {
		if (l->cls[ci].ready && rel_rx_ack_need(&l->cls[ci].rx) != REL_ACK_NONE) {
			tsn_send_ack(l, ci);
		}
	}
	if (!l->closed) {
		tsn_pump(l, now);
		tsn_writable_check(l);
	}
	if (!l->closed && l->state == TSN_UP) {
		tsn_schedule(l, now);
	}
}

/*
 * After a batch: every link serviced once. Upcalls may close any link, so
 * the next one is held (tsn_enter) while the current one runs: a close
 * then only marks it, and it is freed when we let go of it.
 */
static void tsn_demux_batch_end(struct tsn_port *p, void *arg)
{
	struct tsn_demux *dm = arg;
	uint64_t now = vb_now_ns();
	struct tsn_link *l = dm->links, *next;

	dm->refs++; /* as in tsn_demux_frame */
	if (l) {
		tsn_enter(l);
	}
	while (l) {
		next = l->next;
		if (next) {
			tsn_enter(next);
		}
		if (!l->closed && l->state == TSN_UP) {
			tsn_link_service(l, now);
		}
		tsn_leave(l);
		l = next;
	}
	tsn_port_flush(dm->port);
	tsn_demux_put(dm);
}

/* --- timers --------------------------------------------------------------------------------- */

static void tsn_schedule(struct tsn_link *l, uint64_t now)
{
	uint64_t next = UINT64_MAX, ns;
	struct timeval tv;

	switch (l->state) {
	case TSN_OPENING:
		next = now + TSN_OPEN_NS;
		break;
	case TSN_UP:
		next = VB_MIN(l->last_rx_ns + TSN_SILENT_NS, l->last_tx_ns + TSN_PING_NS);
		for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
			if (l->cls[ci].ready) {
				next = VB_MIN(next, rel_tx_timer(&l->cls[ci].tx));
			}
		}
		break;
	case TSN_DOWN:
		return;
	}
	ns = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(ns / 1000000000u);
	tv.tv_usec = (suseconds_t)(ns % 1000000000u / 1000u);
	evtimer_add(l->timer, &tv);
}

static void tsn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tsn_link *l = arg;
	uint64_t now = vb_now_ns();

	tsn_enter(l);
	if (l->state == TSN_OPENING) {
		if (l->open_tries++ >= TSN_OPEN_TRIES) {
			tsn_link_down(l, "no ACCEPT from %s after %u OPENs", l->base.peer,
			              TSN_OPEN_TRIES);
		} else {
			tsn_send_ctl(l, AVTP_CTL_OPEN, 0, NULL);
			l->last_rx_ns = now;
		}
	} else if (l->state == TSN_UP) {
		if (now - l->last_rx_ns >= TSN_SILENT_NS) {
			tsn_link_down(l, "peer silent for %llu s",
			              (unsigned long long)((now - l->last_rx_ns) / 1000000000u));
		} else {
			if (now - l->last_tx_ns >= TSN_PING_NS) {
				tsn_send_ctl(l, AVTP_CTL_PING, now, NULL);
			}
			tsn_pump(l, now);
		}
	}
	if (!l->closed && l->state != TSN_DOWN) {
		tsn_schedule(l, now);
	}
	tsn_port_flush(l->dm->port);
	tsn_leave(l);
}

/* Output queued by transport_send(), or input held while paused: once per loop turn. */
static void tsn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tsn_link *l = arg;

	tsn_enter(l);
	if (!l->closed && l->state == TSN_UP) {
		tsn_link_service(l, vb_now_ns());
	}
	tsn_port_flush(l->dm->port);
	tsn_leave(l);
}

/* --- listener ------------------------------------------------------------------------------- */

static void tsn_listener_open(struct tsn_demux *dm, const struct avtp_frame *f,
                              const struct avtp_ctl *c, uint64_t now)
{
	struct tsn_listener *ls = dm->lst;
	unsigned total = 0, from_mac = 0;
	struct tsn_link *l;

	if (!ls) {
		dm->no_link++;
		return;
	}
	for (l = dm->links; l; l = l->next) {
		if (!l->accepted || l->closed) {
			continue;
		}
		total++;
		if (!memcmp(l->peer, f->h.src, AVTP_MAC_LEN)) {
			from_mac++;
			if (l->peer_token == c->my_token) {
				/* Our ACCEPT was lost: the same answer again. */
				if (l->state == TSN_UP) {
					tsn_send_ctl(l, AVTP_CTL_ACCEPT, 0, NULL);
					tsn_port_flush(dm->port);
				}
				return;
			}
		}
	}
	if (total >= TSN_MAX_ACCEPTED || from_mac >= TSN_MAX_PER_MAC) {
		dm->no_link++;
		log_warnx("tsn listener %s: OPEN refused, %u links (%u from that MAC)",
		          ls->base.uri, total, from_mac);
		return;
	}
	l = tsn_link_new(dm, ls->evb, &ls->p, f->h.src);
	if (!l) {
		log_warnx("tsn listener %s: out of memory for a link", ls->base.uri);
		return;
	}
	l->accepted = true;
	l->last_rx_ns = l->last_tx_ns = now;
	if (tsn_link_established(l, c) < 0) {
		log_warnx(
		    "tsn listener %s: OPEN from %s with unusable limits (max_seg %u, window %u)",
		    ls->base.uri, l->base.peer, c->max_seg, c->window);
		l->closed = true;
		tsn_link_free(l);
		return;
	}
	tsn_set_state(l, TSN_UP, "accepted");
	tsn_send_ctl(l, AVTP_CTL_ACCEPT, 0, NULL);
	tsn_port_flush(dm->port);
	tsn_schedule(l, now);
	log_info("tsn listener %s: link from %s, segments of %u bytes, window %u", ls->base.uri,
	         l->base.peer, l->tx_seg, l->peer_window);
	/* The callback sets the upcalls or closes the link. */
	tsn_enter(l);
	ls->cb(&l->base, ls->arg);
	tsn_leave(l);
}

/* --- transport ops -------------------------------------------------------------------------- */

static int tsn_parse_connect(const char *addr, char *ifname, size_t iflen,
                             uint8_t mac[AVTP_MAC_LEN])
{
	const char *slash = strchr(addr, '/');

	if (!slash || (size_t)(slash - addr) >= iflen || slash == addr ||
	    avtp_mac_parse(slash + 1, mac) < 0 || (mac[0] & 1)) {
		return -EINVAL;
	}
	memcpy(ifname, addr, (size_t)(slash - addr));
	ifname[slash - addr] = '\0';
	return 0;
}

/* Linux interface names: 1..15 bytes, no '/', ':' or white space, not "." or "..". */
static int tsn_ifname_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 16 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2))) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' || s[i] == ':') {
			return 0;
		}
	}
	return 1;
}

static int tsn_check(const char *addr, int listen, char *why, size_t len)
{
	const char *slash = strchr(addr, '/');
	uint8_t mac[AVTP_MAC_LEN];

	if (!tsn_ifname_ok(addr, slash ? (size_t)(slash - addr) : strlen(addr))) {
		snprintf(why, len, "bad interface name in tsn://%s", addr);
		return -EINVAL;
	}
	if (listen && slash) {
		snprintf(why, len, "tsn://%s: listen on tsn://IFNAME (no peer)", addr);
		return -EINVAL;
	}
	if (!listen && (!slash || avtp_mac_parse(slash + 1, mac) < 0)) {
		snprintf(why, len, "tsn://%s: want tsn://IFNAME/PEER-MAC (e.g. 02:00:00:00:00:0a)",
		         addr);
		return -EINVAL;
	}
	if (!listen && (mac[0] & 1)) {
		snprintf(why, len, "tsn://%s: the peer MAC must be unicast", addr);
		return -EINVAL;
	}
	return 0;
}

static int tsn_connect(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                       struct transport **out)
{
	struct event_base *evb = vb_loop_base(loop);
	char ifname[64], err[160];
	uint8_t mac[AVTP_MAC_LEN];
	struct tsn_demux *dm;
	struct tsn_link *l;

	if (tsn_parse_connect(addr, ifname, sizeof(ifname), mac) < 0) {
		log_warnx("tsn: bad address \"%s\" (want IFNAME/PEER-MAC, a unicast MAC)", addr);
		return -EINVAL;
	}
	dm = tsn_demux_get(evb, ifname, err, sizeof(err));
	if (!dm) {
		log_warnx("tsn: %s", err);
		return -ENODEV;
	}
	l = tsn_link_new(dm, evb, p, mac);
	tsn_demux_put(dm); /* the link holds its own reference */
	if (!l) {
		return -ENOMEM;
	}
	tsn_set_state(l, TSN_OPENING, "connect");
	/* The first OPEN from the loop, so every outcome arrives as an upcall. */
	{
		struct timeval now = {0, 0};

		evtimer_add(l->timer, &now);
	}
	*out = &l->base;
	return 0;
}

static int tsn_listen(struct vb_loop *loop, const char *addr, const struct transport_params *p,
                      transport_accept_cb cb, void *arg, struct transport_listener **out)
{
	struct event_base *evb = vb_loop_base(loop);
	struct tsn_listener *ls;
	char err[160];

	if (!addr[0] || strchr(addr, '/')) {
		log_warnx("tsn: bad listen address \"%s\" (want IFNAME)", addr);
		return -EINVAL;
	}
	ls = calloc(1, sizeof(*ls));
	if (!ls) {
		return -ENOMEM;
	}
	ls->dm = tsn_demux_get(evb, addr, err, sizeof(err));
	if (!ls->dm) {
		log_warnx("tsn: %s", err);
		free(ls);
		return -ENODEV;
	}
	if (ls->dm->lst) {
		log_warnx("tsn: already listening on %s", addr);
		tsn_demux_put(ls->dm);
		free(ls);
		return -EADDRINUSE;
	}
	ls->base.ops = &tsn_transport_ops;
	ls->evb = evb;
	ls->cb = cb;
	ls->arg = arg;
	ls->p = *p;
	ls->dm->lst = ls;
	snprintf(ls->base.uri, sizeof(ls->base.uri), "tsn://%s", addr);
	*out = &ls->base;
	return 0;
}

static void tsn_listener_free(struct transport_listener *base)
{
	struct tsn_listener *ls = container_of(base, struct tsn_listener, base);

	ls->dm->lst = NULL;
	tsn_demux_put(ls->dm);
	free(ls);
}

/* The first 12 bytes of a message given as an iovec (the wire header). */
static void tsn_msg_header(const struct iovec *iov, int iovcnt, uint8_t hdr[12])
{
	size_t got = 0;

	for (int i = 0; i < iovcnt && got < 12; i++) {
		size_t n = VB_MIN(iov[i].iov_len, 12 - got);

		memcpy(hdr + got, iov[i].iov_base, n);
		got += n;
	}
}

static int tsn_send(struct transport *t, const struct iovec *iov, int iovcnt)
{
	struct tsn_link *l = container_of(t, struct tsn_link, base);
	struct tsn_cls *c;
	size_t total = 0;
	uint8_t hdr[12];
	uint32_t chan;
	int i;

	if (l->state != TSN_UP || l->closed) {
		return -ENOTCONN;
	}
	for (i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
	}
	if (total < TRANSPORT_MIN_MSG || iovcnt < 1) {
		return -EINVAL;
	}
	tsn_msg_header(iov, iovcnt, hdr);
	if (get_le32(hdr) != total) {
		return -EINVAL;
	}
	chan = get_le32(hdr + 8);
	c = &l->cls[chan < ARRAY_SIZE(l->chan_cls) ? l->chan_cls[chan] : AVTP_CLASS_CONTROL];
	if (tsn_cls_ready(l, (unsigned)(c - l->cls)) < 0) {
		return -ENOMEM;
	}
	if (total > l->max_msg) {
		return -EMSGSIZE;
	}
	if (tsn_queued(l) + total > 4 * l->tx_high_water + l->max_msg) {
		return -ENOBUFS;
	}
	/* Reserve first so a failed copy never leaves half a message queued. */
	if (evbuffer_expand(c->pend, total) < 0) {
		return -ENOMEM;
	}
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && evbuffer_add(c->pend, iov[i].iov_base, iov[i].iov_len) < 0) {
			fatalx("tsn: evbuffer_add failed after evbuffer_expand");
		}
	}
	l->st.tx_msgs++;
	l->st.tx_bytes += total;
	if (tsn_queued(l) >= l->tx_high_water) {
		l->tx_blocked = true;
	}
	event_active(l->kick, EV_TIMEOUT, 0);
	return 0;
}

static int tsn_writable(const struct transport *t)
{
	const struct tsn_link *l = container_of(t, const struct tsn_link, base);

	return l->state == TSN_UP && !l->closed && tsn_queued(l) < l->tx_high_water;
}

static void tsn_pause_rx(struct transport *t, int pause)
{
	struct tsn_link *l = container_of(t, struct tsn_link, base);
	bool was = l->paused;

	l->paused = pause != 0;
	if (was && !l->paused && l->state == TSN_UP && !l->closed) {
		/* Deliver what waited, and open the window again, from the loop. */
		event_active(l->kick, EV_TIMEOUT, 0);
	}
}

static void tsn_close(struct transport *t)
{
	struct tsn_link *l = container_of(t, struct tsn_link, base);

	if (l->state == TSN_UP && !l->closed) {
		/*
		 * What the bridge queued last (a DETACH, an ERROR) goes out first, as far
		 * as the credit allows; then CLOSE. There is no lingering for acks: a
		 * segment lost now is lost, as data in flight is when any link drops.
		 */
		tsn_pump(l, vb_now_ns());
		tsn_send_ctl(l, AVTP_CTL_CLOSE, 0, "closed by the bridge");
		tsn_port_flush(l->dm->port);
	}
	l->state = TSN_DOWN;
	l->closed = true;
	l->base.up = NULL;
	evtimer_del(l->timer);
	event_del(l->kick);
	if (l->in_cb == 0) {
		tsn_link_free(l);
	}
}

static void tsn_get_stats(const struct transport *t, struct transport_stats *st)
{
	const struct tsn_link *l = container_of(t, const struct tsn_link, base);

	*st = l->st;
	st->tx_queued = tsn_queued(l);
}

static void tsn_detail(const struct transport *t, char *buf, size_t len)
{
	const struct tsn_link *l = container_of(t, const struct tsn_link, base);
	size_t off = 0;

	for (unsigned ci = 0; ci < AVTP_NCLASS && off < len; ci++) {
		int n = snprintf(buf + off, len - off, "%s%s: %s", ci ? "; " : "",
		                 avtp_class_name(ci), tsn_port_tx_mode(l->dm->port, ci));

		if (n < 0) {
			break;
		}
		off += (size_t)n;
	}
}

static void tsn_set_class(struct transport *t, uint32_t chan, unsigned cls)
{
	struct tsn_link *l = container_of(t, struct tsn_link, base);

	/* transport.h's classes are section 11.3's, in the same order. */
	if (chan < ARRAY_SIZE(l->chan_cls) && cls < AVTP_NCLASS) {
		l->chan_cls[chan] = (uint8_t)cls;
	}
}

static unsigned tsn_counters(const struct transport *t, struct transport_counter *out, unsigned max)
{
	const struct tsn_link *l = container_of(t, const struct tsn_link, base);
	const struct tsn_demux *dm = l->dm;
	struct rel_tx_stats tx = {0};
	uint64_t port_drops = dm->not_ours + dm->no_link, rtt = 0, rto = 0, window = 0;
	struct transport_counter c[] = {
	    {"segments_sent", 0}, {"retransmits_fast", 0},  {"retransmits_timeout", 0},
	    {"timeouts", 0},      {"segments_received", 0}, {"duplicates", 0},
	    {"out_of_window", 0}, {"wrong_token", 0},       {"srtt_us", 0},
	    {"rto_us", 0},        {"peer_window", 0},       {"segment_bytes", 0},
	    {"port_dropped", 0},  {"port_tx_dropped", 0},   {"txtime_invalid", 0},
	    {"txtime_missed", 0},
	};
	struct tsn_port_stats ps;
	unsigned n = 0;

	for (unsigned ci = 0; ci < AVTP_NCLASS; ci++) {
		const struct tsn_cls *k = &l->cls[ci];

		if (!k->ready) {
			continue;
		}
		tx.sent += k->tx.stats.sent;
		tx.retx_fast += k->tx.stats.retx_fast;
		tx.retx_timeout += k->tx.stats.retx_timeout;
		tx.timeouts += k->tx.stats.timeouts;
		c[4].value += k->rx.stats.received;
		if (ci == AVTP_CLASS_CONTROL) {
			rtt = k->tx.srtt / 1000;
			rto = k->tx.rto / 1000;
			window = (uint32_t)(k->tx.edge - k->tx.una);
		}
	}
	for (unsigned e = 0; e < AVTP_E_COUNT; e++) {
		port_drops += dm->drops[e];
	}
	c[0].value = tx.sent;
	c[1].value = tx.retx_fast;
	c[2].value = tx.retx_timeout;
	c[3].value = tx.timeouts;
	c[5].value = l->dup_segs;
	c[6].value = l->ooo_drops;
	c[7].value = l->bad_token;
	c[8].value = rtt;
	c[9].value = rto;
	c[10].value = window;
	c[11].value = l->tx_seg;
	c[12].value = port_drops;
	tsn_port_get_stats(dm->port, &ps);
	c[13].value = ps.tx_dropped;
	tsn_port_txtime_stats(dm->port, &c[14].value, &c[15].value);
	for (; n < ARRAY_SIZE(c) && n < max; n++) {
		out[n] = c[n];
	}
	return n;
}

const struct transport_ops tsn_transport_ops = {
    .scheme = "tsn",
    .connect = tsn_connect,
    .listen = tsn_listen,
    .listener_free = tsn_listener_free,
    .send = tsn_send,
    .writable = tsn_writable,
    .pause_rx = tsn_pause_rx,
    .close = tsn_close,
    .get_stats = tsn_get_stats,
    .set_class = tsn_set_class,
    .detail = tsn_detail,
    .counters = tsn_counters,
    .check = tsn_check,
};

_Static_assert((int)TRANSPORT_CLASS_CONTROL == (int)AVTP_CLASS_CONTROL &&
                   (int)TRANSPORT_CLASS_AUDIO == (int)AVTP_CLASS_AUDIO &&
                   (int)TRANSPORT_CLASS_VIDEO == (int)AVTP_CLASS_VIDEO &&
                   (int)TRANSPORT_CLASS_BULK == (int)AVTP_CLASS_BULK &&
                   (int)TRANSPORT_NCLASS == (int)AVTP_NCLASS,
               "transport.h classes are section 11.3's");
