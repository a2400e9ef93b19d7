/*
 * Links between nodes: HELLO exchange, keepalive, channel dispatch,
 * reconnect with back-off for outgoing links.
 */
#include "bridge/link.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/jw.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/util.h"
#include "transport/transport.h"

#define LINK_PING_NS        (5ull * 1000000000ull)
#define LINK_SILENT_NS      (20ull * 1000000000ull)
#define LINK_HELLO_NS       (10ull * 1000000000ull)
#define LINK_BACKOFF_MIN_NS (200ull * 1000000ull)
#define LINK_BACKOFF_MAX_NS (10ull * 1000000000ull)

enum link_state {
	LINK_IDLE,       /* outgoing, waiting to reconnect */
	LINK_CONNECTING, /* transport not up yet */
	LINK_HELLO,      /* transport up, waiting for the peer's HELLO */
	LINK_UP,
	LINK_CLOSED, /* accepted link that ended; freed soon */
};

static const char *const link_state_names[] = {
    [LINK_IDLE] = "idle", [LINK_CONNECTING] = "connecting", [LINK_HELLO] = "hello",
    [LINK_UP] = "up",     [LINK_CLOSED] = "closed",
};

struct link_chan {
	const struct link_chan_ops *ops;
	void *arg;
	unsigned cls; /* traffic class of its messages (transport.h) */
};

struct link {
	struct node *node;
	struct transport *t;
	char uri[VB_URI_MAX + 1];
	bool outgoing;
	enum link_state state;
	struct wire_hello peer;
	struct link_chan chans[LINK_MAX_CHANS];
	struct vb_timer *retry;
	struct vb_timer *ping;
	struct vb_timer *reaper;
	uint64_t backoff_ns;
	uint64_t last_rx_ns;
	uint64_t rtt_ns;
	uint64_t connects;
	uint64_t drops;
	uint64_t rx_unknown_chan;
	unsigned rx_pauses;
	struct transport_stats saved; /* counters of transports already closed */
	char last_error[200];
};

static void link_fsm(struct link *l, enum link_state next, const char *reason)
{
	if (l->state == next) {
		return;
	}
	log_info("link %s: state change %s -> %s, reason: %s", l->uri, link_state_names[l->state],
	         link_state_names[next], reason);
	l->state = next;
}

static void link_save_stats(struct link *l)
{
	struct transport_stats st;

	if (!l->t) {
		return;
	}
	transport_get_stats(l->t, &st);
	l->saved.tx_msgs += st.tx_msgs;
	l->saved.rx_msgs += st.rx_msgs;
	l->saved.tx_bytes += st.tx_bytes;
	l->saved.rx_bytes += st.rx_bytes;
}

/*
 * Tells every channel that the link is gone. Channels of outgoing links
 * belong to imports that outlive a connection and stay registered; those of
 * accepted links die with it.
 */
static void link_chans_down(struct link *l, const char *reason, bool forget)
{
	for (uint32_t c = 1; c < LINK_MAX_CHANS; c++) {
		struct link_chan ch = l->chans[c];

		if (!ch.ops) {
			continue;
		}
		if (forget) {
			memset(&l->chans[c], 0, sizeof(l->chans[c]));
		}
		if (ch.ops->on_down) {
			ch.ops->on_down(ch.arg, reason);
		}
	}
}

static void link_reap(void *arg)
{
	link_free(arg);
}

static void link_lost(struct link *l, const char *reason)
{
	if (l->state == LINK_CLOSED || l->state == LINK_IDLE) {
		return;
	}
	snprintf(l->last_error, sizeof(l->last_error), "%s", reason);
	l->drops++;
	link_save_stats(l);
	transport_close(l->t);
	l->t = NULL;
	l->rx_pauses = 0;
	vb_timer_cancel(l->ping);
	if (l->outgoing) {
		link_fsm(l, LINK_IDLE, reason);
		vb_timer_arm(l->retry, l->backoff_ns);
		l->backoff_ns = VB_MIN(l->backoff_ns * 2, LINK_BACKOFF_MAX_NS);
	} else {
		link_fsm(l, LINK_CLOSED, reason);
		vb_timer_arm(l->reaper, 0);
	}
	link_chans_down(l, reason, !l->outgoing);
}

void link_drop(struct link *l, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("link %s (%s): %s; dropping link", l->uri, l->peer.name[0] ? l->peer.name : "?",
	          why);
	link_lost(l, why);
}

int link_send(struct link *l, const struct wire_msg *m)
{
	uint8_t buf[WIRE_HDR_LEN + 512];
	struct iovec iov;
	size_t n;

	n = wire_encode(buf, sizeof(buf), m);
	if (!n) {
		log_warnx("link %s: cannot encode %s", l->uri, wire_type_name(m->type));
		return -EINVAL;
	}
	iov.iov_base = buf;
	iov.iov_len = n;
	return link_sendv(l, &iov, 1);
}

int link_sendv(struct link *l, const struct iovec *iov, int n)
{
	if (!l->t || (l->state != LINK_UP && l->state != LINK_HELLO)) {
		return -ENOTCONN;
	}
	return transport_send(l->t, iov, n);
}

void link_send_error(struct link *l, uint32_t chan, uint32_t code, const char *fmt, ...)
{
	struct wire_msg m = {.type = WIRE_ERROR, .chan = chan};
	va_list ap;

	m.u.error.code = code;
	va_start(ap, fmt);
	vsnprintf(m.u.error.reason, sizeof(m.u.error.reason), fmt, ap);
	va_end(ap);
	link_send(l, &m);
}

static void link_send_hello(struct link *l)
{
	struct wire_msg m = {.type = WIRE_HELLO, .chan = 0};

	m.u.hello.ver_min = WIRE_VERSION;
	m.u.hello.ver_max = WIRE_VERSION;
	m.u.hello.epoch = l->node->epoch;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "%s", l->node->cfg->node);
	link_send(l, &m);
}

static void link_on_hello(struct link *l, const struct wire_hello *h)
{
	const char *id;

	if (l->state == LINK_UP) {
		link_drop(l, "second HELLO");
		return;
	}
	if (h->ver_min > WIRE_VERSION || h->ver_max < WIRE_VERSION) {
		link_send_error(l, 0, WIRE_E_VERSION, "protocol versions %u..%u not supported (%u)",
		                h->ver_min, h->ver_max, WIRE_VERSION);
		link_drop(l, "peer speaks protocol versions %u..%u only", h->ver_min, h->ver_max);
		return;
	}
	id = transport_peer_identity(l->t);
	if (id[0] && strcmp(id, h->name) != 0) {
		link_send_error(l, 0, WIRE_E_DENIED,
		                "you claim node %s but your certificate says %s", h->name, id);
		link_drop(l, "peer claims node %s but its certificate says %s", h->name, id);
		return;
	}
	l->peer = *h;
	l->backoff_ns = LINK_BACKOFF_MIN_NS;
	link_fsm(l, LINK_UP, "hello received");
	log_info("link %s: peer node %s, epoch %016llx", l->uri, h->name,
	         (unsigned long long)h->epoch);
	for (uint32_t c = 1; c < LINK_MAX_CHANS; c++) {
		if (l->chans[c].ops && l->chans[c].ops->on_up) {
			l->chans[c].ops->on_up(l->chans[c].arg);
		}
	}
}

static void link_on_link_msg(struct link *l, const struct wire_msg *m)
{
	struct wire_msg pong = {.type = WIRE_PONG};

	switch (m->type) {
	case WIRE_HELLO:
		link_on_hello(l, &m->u.hello);
		break;
	case WIRE_PING:
		pong.u.ping.t_send = vb_now_ns();
		pong.u.ping.t_echo = m->u.ping.t_send;
		link_send(l, &pong);
		break;
	case WIRE_PONG:
		l->rtt_ns = vb_now_ns() - m->u.ping.t_echo;
		break;
	case WIRE_ERROR:
		link_drop(l, "peer reports error %s: %s", wire_error_name(m->u.error.code),
		          m->u.error.reason);
		break;
	default:
		link_drop(l, "%s on channel 0", wire_type_name(m->type));
		break;
	}
}

/* Who may send a device message: the importer (to accepted links) or the exporter. */
#define FROM_IMPORTER 1u
#define FROM_EXPORTER 2u

static const uint8_t chan_msg_senders[WIRE_TYPE_MAX] = {
    [WIRE_ATTACH] = FROM_IMPORTER,
    [WIRE_ATTACH_OK] = FROM_EXPORTER,
    [WIRE_DETACH] = FROM_IMPORTER | FROM_EXPORTER,
    [WIRE_FEATURES] = FROM_IMPORTER,
    [WIRE_QUEUE_START] = FROM_IMPORTER,
    [WIRE_QUEUE_STOP] = FROM_IMPORTER,
    [WIRE_RESET] = FROM_IMPORTER,
    [WIRE_STATUS] = FROM_IMPORTER,
    [WIRE_REQUEST] = FROM_IMPORTER,
    [WIRE_COMPLETION] = FROM_EXPORTER,
    [WIRE_ACK] = FROM_IMPORTER,
    [WIRE_CONFIG_GET] = FROM_IMPORTER,
    [WIRE_CONFIG] = FROM_EXPORTER,
    [WIRE_CONFIG_SET] = FROM_IMPORTER,
    [WIRE_CONFIG_CHANGED] = FROM_EXPORTER,
    [WIRE_ERROR] = FROM_IMPORTER | FROM_EXPORTER,
};

static void link_on_chan_msg(struct link *l, const struct wire_msg *m)
{
	unsigned peer_role = l->outgoing ? FROM_EXPORTER : FROM_IMPORTER;
	struct link_chan *ch;

	if (m->chan >= LINK_MAX_CHANS) {
		link_drop(l, "channel %u out of range", m->chan);
		return;
	}
	if (!(chan_msg_senders[m->type] & peer_role)) {
		link_drop(l, "%s from the %s side", wire_type_name(m->type),
		          l->outgoing ? "exporting" : "importing");
		return;
	}
	ch = &l->chans[m->chan];
	if (ch->ops) {
		ch->ops->on_msg(ch->arg, m);
		return;
	}
	if (!l->outgoing && m->type == WIRE_ATTACH) {
		node_attach(l->node, l, m->chan, m->u.attach.name);
		return;
	}
	/* Late traffic for a channel that was just closed is normal; count it. */
	l->rx_unknown_chan++;
	log_debug("link %s: %s for channel %u that is not open", l->uri, wire_type_name(m->type),
	          m->chan);
}

static void link_on_message(struct transport *t, const uint8_t *buf, size_t len, void *arg)
{
	struct link *l = arg;
	struct wire_msg m;
	const char *why = NULL;

	if (wire_decode(buf, len, &m, &why) < 0) {
		link_drop(l, "malformed message: %s", why ? why : "?");
		return;
	}
	l->last_rx_ns = vb_now_ns();
	if (l->state != LINK_UP && m.type != WIRE_HELLO && m.type != WIRE_ERROR) {
		link_drop(l, "%s before HELLO", wire_type_name(m.type));
		return;
	}
	if (m.chan == 0) {
		link_on_link_msg(l, &m);
	} else {
		link_on_chan_msg(l, &m);
	}
}

static void link_on_state(struct transport *t, enum transport_state st, const char *reason,
                          void *arg)
{
	struct link *l = arg;

	if (st == TRANSPORT_UP) {
		l->connects++;
		l->last_rx_ns = vb_now_ns();
		link_fsm(l, LINK_HELLO, "transport up");
		link_send_hello(l);
		vb_timer_arm(l->ping, LINK_PING_NS);
		return;
	}
	log_warnx("link %s: %s", l->uri, reason ? reason : "lost");
	link_lost(l, reason ? reason : "transport down");
}

static void link_on_writable(struct transport *t, void *arg)
{
	struct link *l = arg;

	for (uint32_t c = 1; c < LINK_MAX_CHANS; c++) {
		if (l->chans[c].ops && l->chans[c].ops->on_writable) {
			l->chans[c].ops->on_writable(l->chans[c].arg);
		}
	}
}

static const struct transport_upcalls link_upcalls = {
    .on_message = link_on_message,
    .on_state = link_on_state,
    .on_writable = link_on_writable,
};

static void link_ping(void *arg)
{
	struct link *l = arg;
	struct wire_msg m = {.type = WIRE_PING};
	uint64_t now = vb_now_ns();

	if (l->state == LINK_HELLO && now - l->last_rx_ns > LINK_HELLO_NS) {
		link_drop(l, "no HELLO within %llu s", LINK_HELLO_NS / 1000000000ull);
		return;
	}
	if (now - l->last_rx_ns > LINK_SILENT_NS) {
		link_drop(l, "peer silent for %llu s", (now - l->last_rx_ns) / 1000000000ull);
		return;
	}
	m.u.ping.t_send = now;
	if (l->state == LINK_UP) {
		link_send(l, &m);
	}
	vb_timer_arm(l->ping, LINK_PING_NS);
}

/* Every transport the link gets learns the classes of its open channels. */
static void link_apply_classes(struct link *l)
{
	for (uint32_t c = 1; c < LINK_MAX_CHANS && l->t; c++) {
		if (l->chans[c].ops && l->chans[c].cls != TRANSPORT_CLASS_CONTROL) {
			transport_set_class(l->t, c, l->chans[c].cls);
		}
	}
}

static void link_start_connect(void *arg)
{
	struct link *l = arg;
	int rc;

	link_fsm(l, LINK_CONNECTING, "connecting");
	rc = transport_connect(l->node->loop, l->uri, &l->node->tp, &link_upcalls, l, &l->t);
	if (rc == 0) {
		link_apply_classes(l);
	}
	if (rc < 0) {
		l->t = NULL;
		snprintf(l->last_error, sizeof(l->last_error), "connect: %s", strerror(-rc));
		link_fsm(l, LINK_IDLE, l->last_error);
		vb_timer_arm(l->retry, l->backoff_ns);
		l->backoff_ns = VB_MIN(l->backoff_ns * 2, LINK_BACKOFF_MAX_NS);
	}
}

static struct link *link_alloc(struct node *n, const char *uri, bool outgoing)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l) {
		return NULL;
	}
	l->node = n;
	l->outgoing = outgoing;
	l->state = outgoing ? LINK_IDLE : LINK_HELLO;
	l->backoff_ns = LINK_BACKOFF_MIN_NS;
	snprintf(l->uri, sizeof(l->uri), "%s", uri);
	l->retry = vb_timer_new(n->loop, link_start_connect, l);
	l->ping = vb_timer_new(n->loop, link_ping, l);
	l->reaper = vb_timer_new(n->loop, link_reap, l);
	if (!l->retry || !l->ping || !l->reaper || node_add_link(n, l) < 0) {
		vb_timer_free(l->retry);
		vb_timer_free(l->ping);
		vb_timer_free(l->reaper);
		free(l);
		return NULL;
	}
	return l;
}

struct link *link_connect(struct node *n, const char *uri)
{
	struct link *l = link_alloc(n, uri, true);

	if (l) {
		vb_timer_arm(l->retry, 0);
	}
	return l;
}

struct link *link_accept(struct node *n, struct transport *t)
{
	struct link *l = link_alloc(n, transport_peer(t), false);

	if (!l) {
		transport_close(t);
		return NULL;
	}
	l->t = t;
	l->connects = 1;
	l->last_rx_ns = vb_now_ns();
	transport_set_upcalls(t, &link_upcalls, l);
	log_info("link %s: accepted", l->uri);
	link_send_hello(l);
	vb_timer_arm(l->ping, LINK_PING_NS);
	return l;
}

void link_free(struct link *l)
{
	if (!l) {
		return;
	}
	link_chans_down(l, "link closed", true);
	transport_close(l->t);
	vb_timer_free(l->retry);
	vb_timer_free(l->ping);
	vb_timer_free(l->reaper);
	node_del_link(l->node, l);
	free(l);
}

int link_chan_open(struct link *l, uint32_t chan, const struct link_chan_ops *ops, void *arg)
{
	if (chan == 0) {
		for (chan = 1; chan < LINK_MAX_CHANS && l->chans[chan].ops; chan++) {
		}
	}
	if (chan >= LINK_MAX_CHANS) {
		return -ENOSPC;
	}
	if (l->chans[chan].ops) {
		return -EBUSY;
	}
	l->chans[chan].ops = ops;
	l->chans[chan].arg = arg;
	return (int)chan;
}

void link_chan_set_class(struct link *l, uint32_t chan, unsigned cls)
{
	if (chan == 0 || chan >= LINK_MAX_CHANS || cls >= TRANSPORT_NCLASS) {
		return;
	}
	l->chans[chan].cls = cls;
	if (l->t) {
		transport_set_class(l->t, chan, cls);
	}
}

void link_chan_close(struct link *l, uint32_t chan)
{
	if (chan > 0 && chan < LINK_MAX_CHANS) {
		memset(&l->chans[chan], 0, sizeof(l->chans[chan]));
	}
}

void link_pause_rx(struct link *l, bool pause)
{
	unsigned before = l->rx_pauses;

	if (pause) {
		l->rx_pauses++;
	} else if (l->rx_pauses > 0) {
		l->rx_pauses--;
	}
	if (l->t && (before == 0) != (l->rx_pauses == 0)) {
		transport_pause_rx(l->t, l->rx_pauses > 0);
	}
}

bool link_is_up(const struct link *l)
{
	return l->state == LINK_UP;
}

bool link_writable(const struct link *l)
{
	return l->t && l->state == LINK_UP && transport_writable(l->t);
}

const char *link_uri(const struct link *l)
{
	return l->uri;
}

const char *link_peer_name(const struct link *l)
{
	return l->peer.name;
}

uint32_t link_max_msg(const struct link *l)
{
	return (uint32_t)l->node->tp.max_msg;
}

void link_status_json(const struct link *l, struct jw *w)
{
	struct transport_stats st = {0};
	unsigned nchans = 0;

	if (l->t) {
		transport_get_stats(l->t, &st);
	}
	for (uint32_t c = 1; c < LINK_MAX_CHANS; c++) {
		nchans += l->chans[c].ops != NULL;
	}
	jw_obj_begin(w, NULL);
	jw_str(w, "uri", l->uri);
	jw_str(w, "direction", l->outgoing ? "out" : "in");
	jw_str(w, "state", link_state_names[l->state]);
	if (l->t) {
		jw_str(w, "transport", transport_kind(l->t));
	} else {
		char scheme[8] = "";

		sscanf(l->uri, "%7[a-z]://", scheme);
		jw_str(w, "transport", scheme);
	}
	jw_str(w, "security", l->t ? transport_security(l->t) : "");
	jw_str(w, "peer_identity", l->t ? transport_peer_identity(l->t) : "");
	jw_str(w, "peer_node", l->peer.name);
	jw_hex(w, "peer_epoch", l->peer.epoch);
	jw_u64(w, "channels", nchans);
	jw_u64(w, "connects", l->connects);
	jw_u64(w, "drops", l->drops);
	jw_u64(w, "rtt_us", l->rtt_ns / 1000);
	jw_u64(w, "tx_msgs", l->saved.tx_msgs + st.tx_msgs);
	jw_u64(w, "rx_msgs", l->saved.rx_msgs + st.rx_msgs);
	jw_u64(w, "tx_bytes", l->saved.tx_bytes + st.tx_bytes);
	jw_u64(w, "rx_bytes", l->saved.rx_bytes + st.rx_bytes);
	jw_u64(w, "tx_queued", st.tx_queued);
	jw_u64(w, "rx_unknown_channel", l->rx_unknown_chan);
	jw_str(w, "last_error", l->last_error);
	if (l->t) {
		char detail[512];

		transport_detail(l->t, detail, sizeof(detail));
		if (detail[0]) {
			jw_str(w, "transport_detail", detail);
		}
	}
	if (l->t) {
		struct transport_counter c[TRANSPORT_MAX_COUNTERS];
		unsigned n = transport_counters(l->t, c, ARRAY_SIZE(c));

		if (n) {
			jw_obj_begin(w, "transport_counters");
			for (unsigned i = 0; i < n; i++) {
				jw_u64(w, c[i].name, c[i].value);
			}
			jw_obj_end(w);
		}
	}
	jw_obj_end(w);
}
