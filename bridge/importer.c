/*
 * Importer: the driver ECU's side. The guest's chains become REQUESTs on the
 * link; COMPLETIONs are written back into the guest's writable buffers.
 *
 * Request ids are (sequence << 16 | head): monotonic per device session as
 * the protocol requires, and the completion finds its slot from the id
 * without a search. A slot is checked against the full id, so a completion
 * for an unknown, stale or duplicate id is caught.
 */
#include "bridge/importer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/config.h"
#include "bridge/jw.h"
#include "bridge/link.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/qtime.h"
#include "bridge/util.h"
#include "bridge/vu_dev.h"
#include "bridge/wire.h"

#define IQ_BUDGET           256 /* chains per queue per pass, so one queue cannot starve others */
#define IMPORT_RETRY_MIN_NS (1ull * 1000000000ull)
#define IMPORT_RETRY_MAX_NS (60ull * 1000000000ull)
#define IMPORT_ACK_DELAY_NS (10ull * 1000000ull)

enum import_state {
	IMPORT_WAIT_LINK,
	IMPORT_ATTACHING,
	IMPORT_ATTACHED,
	IMPORT_REFUSED, /* the exporter said no; retried later */
};

static const char *const import_state_names[] = {
    [IMPORT_WAIT_LINK] = "waiting-for-link",
    [IMPORT_ATTACHING] = "attaching",
    [IMPORT_ATTACHED] = "attached",
    [IMPORT_REFUSED] = "refused",
};

struct iq_slot {
	uint64_t id;
	uint32_t wr_len;
	bool busy;
	bool held; /* completed, its data in the guest's buffers; released at t_release */
	uint16_t flags;
	uint32_t written;
	int64_t t_capture, t_deadline; /* of the request */
	int64_t t_done, t_release;     /* of its completion, while held */
};

struct iq {
	struct import *im;
	unsigned index;
	struct virtq *vq;  /* NULL when stopped */
	uint64_t first_id; /* ids below this belong to an earlier start of the queue */
	struct iq_slot *slots;
	struct iovec *tx_iov;
	uint32_t inflight;
	bool blocked;   /* waiting for link room */
	uint16_t *held; /* heads of held completions, nheld of them */
	uint32_t nheld;
	struct qtime *tm; /* timing of the queue's completions; kept across restarts */
	uint64_t requests, completions, bytes_out, bytes_in, abandoned;
};

struct import {
	struct node *node;
	const struct vb_import *cfg;
	struct link *link;
	int chan;
	enum import_state state;
	struct vb_timer *retry;
	struct vb_timer *flush;
	struct vb_timer *ack_timer;
	struct vb_timer *release; /* the next held completion is due */
	int64_t release_at;       /* when it is armed for; INT64_MAX: not armed */
	bool holding;             /* on-unsync=hold, and the clock is not synchronized */
	/* the remote device, from ATTACH_OK */
	uint32_t device_id;
	uint64_t features;
	uint16_t num_queues;
	uint16_t max_queue_size;
	uint8_t config[WIRE_CONFIG_MAX];
	uint16_t config_len;
	uint64_t acked;
	bool features_set;
	struct vu_dev *dev;
	struct iq q[VU_DEV_MAX_QUEUES];
	uint64_t seq;
	uint64_t session;        /* from the last ATTACH_OK; 0 before the first */
	uint64_t completions_rx; /* COMPLETIONs received in it: the ack (protocol.md 7.3) */
	uint64_t ack_sent;
	uint64_t attaches;
	uint64_t retry_ns;
	char last_error[WIRE_REASON_MAX + 64];
};

static void import_fsm(struct import *im, enum import_state next, const char *reason)
{
	if (im->state == next) {
		return;
	}
	log_info("import %s: state change %s -> %s, reason: %s", im->cfg->name,
	         import_state_names[im->state], import_state_names[next], reason);
	im->state = next;
}

static bool import_online(const struct import *im)
{
	return im->state == IMPORT_ATTACHED && link_is_up(im->link);
}

static void import_guest_error(struct import *im, struct iq *iq, const char *what)
{
	char why[240];

	snprintf(why, sizeof(why), "queue %u: %s", iq->index, what);
	log_warnx("import %s: guest error: %s", im->cfg->name, why);
	vu_dev_disconnect(im->dev, why);
}

/*
 * The VMM truncated the file behind guest memory while we used it: the
 * SIGBUS guard gave us zero pages instead of a crash. The guest's data is
 * gone (its own VMM destroyed it); end the session without completing
 * anything more.
 */
static bool import_mem_lost(struct import *im, struct iq *iq)
{
	if (!gmem_faulted(vu_dev_mem(im->dev))) {
		return false;
	}
	import_guest_error(im, iq, "guest memory was truncated under us (SIGBUS)");
	return true;
}

static int iq_send(struct iq *iq, uint16_t head, const struct virtq_chain *c, uint64_t id)
{
	struct import *im = iq->im;
	uint8_t hdr[WIRE_REQ_HDR_LEN];
	struct wire_request r = {
	    .queue = (uint16_t)iq->index,
	    .wr_len = c->wr_len,
	    .id = id,
	    .ack = im->completions_rx,
	    .rd_len = c->rd_len,
	    .flags = iq->slots[head].flags,
	    .t_capture = (uint64_t)iq->slots[head].t_capture,
	    .t_deadline = (uint64_t)iq->slots[head].t_deadline,
	};

	wire_encode_request_hdr(hdr, (uint32_t)im->chan, &r);
	iq->tx_iov[0].iov_base = hdr;
	iq->tx_iov[0].iov_len = sizeof(hdr);
	memcpy(&iq->tx_iov[1], c->iov, (size_t)c->nrd * sizeof(struct iovec));
	im->ack_sent = r.ack;
	return link_sendv(im->link, iq->tx_iov, 1 + c->nrd);
}

/*
 * Capture time, and with a latency budget the deadline and its policy
 * flags (protocol.md 4.9). An unsynchronized clock sets no deadline: the
 * exporter could not honour it (on-unsync=hold sends nothing meanwhile).
 */
static void iq_stamp(struct iq *iq, struct iq_slot *s)
{
	const struct vb_import *cfg = iq->im->cfg;
	uint64_t lat = cfg->latency_ns[iq->index];

	s->t_capture = node_time(iq->im->node);
	s->t_deadline = 0;
	s->flags = 0;
	if (!lat) {
		return;
	}
	if (!node_synced(iq->im->node)) {
		iq->tm->unsync++;
		return;
	}
	s->t_deadline = s->t_capture + (int64_t)lat;
	if (cfg->late_drop & (1ull << iq->index)) {
		s->flags |= WIRE_REQ_DROP_LATE;
	}
	if (cfg->on_unsync_hold) {
		s->flags |= WIRE_REQ_HOLD_UNSYNC;
	}
}

/* Takes one chain from the guest and sends it. 1 sent, 0 nothing to do, -1 error. */
static int iq_pop_one(struct iq *iq)
{
	struct import *im = iq->im;
	uint32_t max = link_max_msg(im->link);
	struct virtq_chain c;
	struct iq_slot *s;
	char why[160];
	int rc;

	rc = virtq_pop(iq->vq, &c);
	if (rc <= 0) {
		if (rc < 0) {
			import_guest_error(im, iq, iq->vq->err);
		}
		return rc;
	}
	if ((uint64_t)c.rd_len + WIRE_REQ_HDR_LEN > max ||
	    (uint64_t)c.wr_len + WIRE_CPL_HDR_LEN > max) {
		snprintf(why, sizeof(why), "request of %u+%u bytes exceeds max-msg %u", c.rd_len,
		         c.wr_len, max);
		import_guest_error(im, iq, why);
		return -1;
	}
	s = &iq->slots[c.head];
	if (s->busy) {
		snprintf(why, sizeof(why), "head %u made available twice", c.head);
		import_guest_error(im, iq, why);
		return -1;
	}
	s->id = (++im->seq << 16) | c.head;
	s->wr_len = c.wr_len;
	s->busy = true;
	iq_stamp(iq, s);
	iq->inflight++;
	rc = iq_send(iq, c.head, &c, s->id);
	if (import_mem_lost(im, iq)) {
		return -1;
	}
	if (rc < 0) {
		/* Kept in its slot: re-sent when the link is attached again. */
		log_debug("import %s: request %llu held: %s", im->cfg->name,
		          (unsigned long long)s->id, strerror(-rc));
	}
	iq->requests++;
	iq->bytes_out += c.rd_len;
	return 1;
}

static void iq_process(struct iq *iq)
{
	struct import *im = iq->im;
	unsigned budget = IQ_BUDGET;

	if (!iq->vq || !import_online(im) || im->holding) {
		return;
	}
	virtq_kick_enable(iq->vq, false);
	for (;;) {
		int rc;

		if (!link_writable(im->link)) {
			iq->blocked = true;
			return;
		}
		if (budget-- == 0) {
			vb_timer_arm(im->flush, 0);
			return;
		}
		rc = iq_pop_one(iq);
		if (rc < 0) {
			return;
		}
		if (rc == 0 && !virtq_kick_enable(iq->vq, true)) {
			break;
		}
	}
	iq->blocked = false;
}

static void import_process_all(struct import *im)
{
	for (unsigned q = 0; q < im->num_queues; q++) {
		iq_process(&im->q[q]);
	}
}

/* Deferred work after a burst of messages: notify the guest, keep queues moving. */
static void import_flush(void *arg)
{
	struct import *im = arg;

	for (unsigned q = 0; q < im->num_queues; q++) {
		if (im->q[q].vq) {
			vu_dev_notify(im->dev, q);
		}
	}
	import_process_all(im);
}

static void import_send_ack(void *arg)
{
	struct import *im = arg;
	struct wire_msg m = {.type = WIRE_ACK, .chan = (uint32_t)im->chan};

	if (!import_online(im)) {
		return;
	}
	m.u.ack.ack = im->completions_rx;
	if (m.u.ack.ack != im->ack_sent && link_send(im->link, &m) == 0) {
		im->ack_sent = m.u.ack.ack;
	}
}

static const char *const verdict_names[] = {
    [QT_NOW] = "now",
    [QT_HOLD] = "held",
    [QT_LATE] = "late",
    [QT_DROP] = "dropped",
};

/* Gives a completed chain back to the guest (the used ring; notified by the flush). */
static void iq_release(struct iq *iq, uint16_t head, int64_t now, enum qtime_verdict v)
{
	struct import *im = iq->im;
	struct iq_slot *s = &iq->slots[head];

	if (s->t_release) {
		qtime_released(iq->tm, now, s->t_release, v == QT_HOLD);
		qtime_trace(im->node->trace, "import", im->cfg->name, iq->index, s->id, s->t_done,
		            s->t_release, now, verdict_names[v]);
	}
	s->busy = false;
	s->held = false;
	iq->inflight--;
	iq->completions++;
	virtq_push(iq->vq, head, s->written);
}

/* Arms the release timer for time next (INT64_MAX: nothing held, disarm). */
static void import_arm_release(struct import *im, int64_t next)
{
	im->release_at = next;
	node_arm_at(im->node, im->release, next);
}

/* The release timer: every held completion whose time has come goes to the guest. */
static void import_release(void *arg)
{
	struct import *im = arg;
	int64_t now = node_time_at(im->node, im->release_at);
	int64_t next = INT64_MAX;

	for (unsigned q = 0; q < im->num_queues; q++) {
		struct iq *iq = &im->q[q];
		uint32_t keep = 0;
		bool any = false;

		for (uint32_t i = 0; i < iq->nheld; i++) {
			uint16_t head = iq->held[i];

			/* Never before its time: a timer that fired early waits again. */
			if (iq->slots[head].t_release > now) {
				next = VB_MIN(next, iq->slots[head].t_release);
				iq->held[keep++] = head;
				continue;
			}
			iq_release(iq, head, now, QT_HOLD);
			any = true;
		}
		iq->nheld = keep;
		if (any) {
			vu_dev_notify(im->dev, q);
		}
	}
	import_arm_release(im, next);
}

static void import_on_completion(struct import *im, const struct wire_completion *c)
{
	struct iq *iq;
	struct iq_slot *s;
	struct virtq_chain ch;
	uint16_t head = (uint16_t)(c->id & 0xffff);
	enum qtime_verdict v;
	uint32_t written;
	uint64_t lat;
	int64_t now, d;

	/* Every COMPLETION counts, also one discarded or refused below (protocol.md 7.3). */
	im->completions_rx++;
	vb_timer_arm(im->ack_timer, IMPORT_ACK_DELAY_NS);
	if (c->queue >= im->num_queues) {
		link_drop(im->link, "import %s: completion for queue %u of %u", im->cfg->name,
		          c->queue, im->num_queues);
		return;
	}
	iq = &im->q[c->queue];
	if (!iq->vq || c->id < iq->first_id) {
		/* The queue was stopped: the guest no longer waits for this one. */
		iq->abandoned++;
		return;
	}
	s = head < iq->vq->num ? &iq->slots[head] : NULL;
	if (!s || !s->busy || s->id != c->id) {
		link_drop(im->link, "import %s: completion for unknown request id %llu",
		          im->cfg->name, (unsigned long long)c->id);
		return;
	}
	if (c->written > s->wr_len) {
		link_drop(im->link, "import %s: request %llu: %u bytes written, %u writable",
		          im->cfg->name, (unsigned long long)c->id, c->written, s->wr_len);
		return;
	}
	if (s->held) {
		link_drop(im->link, "import %s: second completion for request id %llu",
		          im->cfg->name, (unsigned long long)c->id);
		return;
	}
	if (c->status == WIRE_CPL_FAILED) {
		log_warnx("import %s: request %llu failed on the exporter", im->cfg->name,
		          (unsigned long long)c->id);
	}
	/* The chain is re-read with every check; the guest must not have changed it (2.7.13). */
	if (virtq_walk(iq->vq, head, &ch) < 0 || ch.wr_len != s->wr_len) {
		import_guest_error(im, iq,
		                   iq->vq->broken ? iq->vq->err : "chain changed in flight");
		return;
	}
	now = node_time(im->node);
	qtime_arrival(iq->tm, now, (int64_t)c->t_done);
	lat = im->cfg->latency_ns[c->queue];
	d = lat && c->t_done && c->status == WIRE_CPL_OK ? (int64_t)(c->t_done + lat) : 0;
	if (d && d - now > QTIME_AHEAD_MAX_NS) {
		link_drop(im->link, "import %s: completion %llu done %.1f s in the future",
		          im->cfg->name, (unsigned long long)c->id,
		          (double)((int64_t)c->t_done - now) / 1e9);
		return;
	}
	v = qtime_decide(iq->tm, now, d, node_synced(im->node),
	                 im->cfg->late_drop & (1ull << c->queue));
	written = v == QT_DROP ? 0 : c->written;
	iov_from_buf(ch.iov + ch.nrd, ch.nwr, 0, c->data, written);
	if (import_mem_lost(im, iq)) {
		return;
	}
	iq->bytes_in += written;
	s->written = written;
	s->t_done = (int64_t)c->t_done;
	s->t_release = d;
	if (v == QT_HOLD) {
		/* In the guest's buffers already; the used ring gets it at d. */
		s->held = true;
		iq->held[iq->nheld++] = head;
		if (d < im->release_at) {
			import_arm_release(im, d);
		}
		return;
	}
	iq_release(iq, head, now, v);
	vb_timer_arm(im->flush, 0);
}

static void import_send_queue_start(struct import *im, unsigned q)
{
	struct wire_msg m = {.type = WIRE_QUEUE_START, .chan = (uint32_t)im->chan};

	m.u.queue.index = (uint16_t)q;
	m.u.queue.size = im->q[q].vq->num;
	link_send(im->link, &m);
}

/* After a (re)attach: bring the remote device to the state the guest set up. */
static void import_resync(struct import *im)
{
	struct wire_msg m = {.type = WIRE_FEATURES, .chan = (uint32_t)im->chan};

	if (im->features_set) {
		m.u.features.features = im->acked;
		link_send(im->link, &m);
	}
	for (unsigned q = 0; q < im->num_queues; q++) {
		struct iq *iq = &im->q[q];
		struct virtq_chain c;

		if (!iq->vq) {
			continue;
		}
		import_send_queue_start(im, q);
		for (unsigned h = 0; h < iq->vq->num; h++) {
			if (iq->slots[h].busy && !iq->slots[h].held &&
			    virtq_walk(iq->vq, (uint16_t)h, &c) == 0) {
				iq_send(iq, (uint16_t)h, &c, iq->slots[h].id);
			}
		}
	}
}

/* ---- vhost-user side ---- */

static uint64_t import_get_features(void *arg)
{
	struct import *im = arg;

	return im->features;
}

static void import_set_features(void *arg, uint64_t f)
{
	struct import *im = arg;
	struct wire_msg m = {.type = WIRE_FEATURES, .chan = (uint32_t)im->chan};

	im->acked = f & im->features;
	im->features_set = true;
	m.u.features.features = im->acked;
	if (import_online(im)) {
		link_send(im->link, &m);
	}
}

static int import_get_config(void *arg, uint32_t off, uint8_t *buf, uint32_t len)
{
	struct import *im = arg;

	if (off > WIRE_CONFIG_MAX || len > WIRE_CONFIG_MAX - off) {
		return -EINVAL;
	}
	memset(buf, 0, len);
	if (off < im->config_len) {
		memcpy(buf, im->config + off, VB_MIN(len, im->config_len - off));
	}
	return 0;
}

static int import_set_config(void *arg, uint32_t off, const uint8_t *buf, uint32_t len)
{
	struct import *im = arg;
	struct wire_msg m = {.type = WIRE_CONFIG_SET, .chan = (uint32_t)im->chan};

	if (off > im->config_len || len > im->config_len - off) {
		return -EINVAL;
	}
	memcpy(im->config + off, buf, len);
	m.u.config.offset = off;
	m.u.config.len = len;
	m.u.config.data = buf;
	return import_online(im) ? link_send(im->link, &m) : -ENOTCONN;
}

static void iq_free_bufs(struct iq *iq)
{
	free(iq->slots);
	free(iq->tx_iov);
	free(iq->held);
	iq->slots = NULL;
	iq->tx_iov = NULL;
	iq->held = NULL;
	iq->nheld = 0;
}

static void import_queue_start(void *arg, unsigned q, struct virtq *vq)
{
	struct import *im = arg;
	struct iq *iq = &im->q[q];
	char why[120];

	if (vq->num > im->max_queue_size) {
		snprintf(why, sizeof(why), "queue %u size %u over the remote maximum %u", q,
		         vq->num, im->max_queue_size);
		vu_dev_disconnect(im->dev, why);
		return;
	}
	iq->slots = calloc(vq->num, sizeof(*iq->slots));
	iq->tx_iov = calloc((size_t)vq->scratch_max + 1, sizeof(*iq->tx_iov));
	iq->held = calloc(vq->num, sizeof(*iq->held));
	if (!iq->tm && (iq->tm = malloc(sizeof(*iq->tm)))) {
		qtime_init(iq->tm);
	}
	if (!iq->slots || !iq->tx_iov || !iq->held || !iq->tm) {
		iq_free_bufs(iq);
		vu_dev_disconnect(im->dev, "out of memory");
		return;
	}
	iq->nheld = 0;
	iq->vq = vq;
	iq->inflight = 0;
	iq->first_id = (im->seq + 1) << 16;
	log_info("import %s: queue %u started, size %u%s", im->cfg->name, q, vq->num,
	         vq->event_idx ? ", event-idx" : "");
	if (import_online(im)) {
		import_send_queue_start(im, q);
	}
	iq_process(iq);
}

static void import_queue_stop(void *arg, unsigned q)
{
	struct import *im = arg;
	struct iq *iq = &im->q[q];
	struct wire_msg m = {.type = WIRE_QUEUE_STOP, .chan = (uint32_t)im->chan};

	if (!iq->vq) {
		return;
	}
	if (iq->inflight) {
		log_warnx("import %s: queue %u stopped with %u requests in flight", im->cfg->name,
		          q, iq->inflight);
		iq->abandoned += iq->inflight;
	}
	iq->vq = NULL;
	iq_free_bufs(iq);
	iq->inflight = 0;
	m.u.queue.index = (uint16_t)q;
	if (import_online(im)) {
		link_send(im->link, &m);
	}
	log_info("import %s: queue %u stopped", im->cfg->name, q);
}

static void import_queue_kick(void *arg, unsigned q)
{
	struct import *im = arg;

	iq_process(&im->q[q]);
}

static void import_reset(void *arg)
{
	struct import *im = arg;
	struct wire_msg m = {.type = WIRE_RESET, .chan = (uint32_t)im->chan};

	im->features_set = false;
	if (import_online(im)) {
		link_send(im->link, &m);
	}
}

static void import_connected(void *arg)
{
	struct import *im = arg;

	log_info("import %s: VMM connected", im->cfg->name);
}

static void import_disconnected(void *arg, const char *reason)
{
	struct import *im = arg;

	log_info("import %s: VMM went away: %s", im->cfg->name, reason);
	import_reset(im);
}

static const struct vu_dev_ops import_vu_ops = {
    .get_features = import_get_features,
    .set_features = import_set_features,
    .get_config = import_get_config,
    .set_config = import_set_config,
    .queue_start = import_queue_start,
    .queue_stop = import_queue_stop,
    .queue_kick = import_queue_kick,
    .reset = import_reset,
    .connected = import_connected,
    .disconnected = import_disconnected,
};

/* ---- link side ---- */

static void import_send_attach(struct import *im)
{
	struct wire_msg m = {.type = WIRE_ATTACH, .chan = (uint32_t)im->chan};

	snprintf(m.u.attach.name, sizeof(m.u.attach.name), "%s", im->cfg->name);
	m.u.attach.session = im->session;
	m.u.attach.received = im->completions_rx;
	if (link_send(im->link, &m) == 0) {
		import_fsm(im, IMPORT_ATTACHING, "link up");
	}
}

static void import_retry(void *arg)
{
	struct import *im = arg;

	if (link_is_up(im->link) && im->state != IMPORT_ATTACHED) {
		import_send_attach(im);
	}
}

static int import_create_socket(struct import *im)
{
	struct vu_dev_params p = {
	    .path = im->cfg->socket,
	    .name = im->cfg->name,
	    .num_queues = im->num_queues,
	    .max_queue_size = im->max_queue_size,
	    .max_mem_slots = 32,
	};
	char err[200];

	im->dev = vu_dev_new(im->node->loop, &p, &import_vu_ops, im, err, sizeof(err));
	if (!im->dev) {
		log_errx("import %s: %s", im->cfg->name, err);
		return -1;
	}
	log_info("import %s: vhost-user socket %s ready (%u queues)", im->cfg->name,
	         im->cfg->socket, im->num_queues);
	return 0;
}

static void import_on_attach_ok(struct import *im, const struct wire_attach_ok *a)
{
	bool same = im->dev && a->num_queues == im->num_queues && a->features == im->features;

	if (im->state != IMPORT_ATTACHING) {
		link_drop(im->link, "import %s: unexpected ATTACH_OK", im->cfg->name);
		return;
	}
	if (a->num_queues > VU_DEV_MAX_QUEUES) {
		link_send_error(im->link, (uint32_t)im->chan, WIRE_E_LIMIT, "%u queues, at most %u",
		                a->num_queues, VU_DEV_MAX_QUEUES);
		import_fsm(im, IMPORT_REFUSED, "too many queues");
		return;
	}
	if (im->dev && !same) {
		log_warnx("import %s: the remote device changed; dropping the VMM", im->cfg->name);
		vu_dev_free(im->dev);
		im->dev = NULL;
	}
	im->device_id = a->device_id;
	im->features = a->features & ~VIRTIO_HOP_FEATURES;
	im->num_queues = a->num_queues;
	im->max_queue_size = a->max_queue_size;
	im->config_len = a->config_len;
	memcpy(im->config, a->config, a->config_len);
	if (a->session != im->session) {
		/* A new device session: its completions are counted from 1 (protocol.md 7.3). */
		im->session = a->session;
		im->completions_rx = 0;
		im->ack_sent = 0;
	}
	im->attaches++;
	import_fsm(im, IMPORT_ATTACHED, "attach accepted");
	im->retry_ns = IMPORT_RETRY_MIN_NS;
	if (!im->dev && import_create_socket(im) < 0) {
		return;
	}
	import_resync(im);
	import_process_all(im);
}

/*
 * The exporter said no (or let go): retry with back-off. The same refusal
 * again is logged at debug level only, so a missing export does not flood
 * the log.
 */
static void import_refused(struct import *im, const char *code, const char *reason)
{
	char why[sizeof(im->last_error)];

	snprintf(why, sizeof(why), "%s: %s", code, reason);
	if (strcmp(why, im->last_error) != 0) {
		log_warnx("import %s: %s refused: %s", im->cfg->name, im->cfg->source, why);
		snprintf(im->last_error, sizeof(im->last_error), "%s", why);
	} else {
		log_debug("import %s: refused again: %s", im->cfg->name, why);
	}
	import_fsm(im, IMPORT_REFUSED, im->last_error);
	vb_timer_arm(im->retry, im->retry_ns);
	im->retry_ns = VB_MIN(im->retry_ns * 2, IMPORT_RETRY_MAX_NS);
}

static void import_on_msg(void *arg, const struct wire_msg *m)
{
	struct import *im = arg;

	switch (m->type) {
	case WIRE_ATTACH_OK:
		import_on_attach_ok(im, &m->u.attach_ok);
		break;
	case WIRE_COMPLETION:
		import_on_completion(im, &m->u.completion);
		break;
	case WIRE_CONFIG_CHANGED:
		if (m->u.config.offset != 0 || m->u.config.len > WIRE_CONFIG_MAX) {
			link_drop(im->link, "import %s: bad CONFIG_CHANGED", im->cfg->name);
			return;
		}
		memcpy(im->config, m->u.config.data, m->u.config.len);
		im->config_len = (uint16_t)m->u.config.len;
		log_info("import %s: config space changed", im->cfg->name);
		if (im->dev) {
			vu_dev_config_changed(im->dev);
		}
		break;
	case WIRE_ERROR:
		import_refused(im, wire_error_name(m->u.error.code), m->u.error.reason);
		break;
	case WIRE_DETACH:
		import_refused(im, "DETACH", "the exporter detached the device");
		break;
	default:
		link_drop(im->link, "import %s: unexpected %s", im->cfg->name,
		          wire_type_name(m->type));
		break;
	}
}

static void import_on_up(void *arg)
{
	import_send_attach(arg);
}

static void import_on_down(void *arg, const char *reason)
{
	struct import *im = arg;

	import_fsm(im, IMPORT_WAIT_LINK, reason);
}

static void import_on_writable(void *arg)
{
	struct import *im = arg;

	for (unsigned q = 0; q < im->num_queues; q++) {
		if (im->q[q].blocked) {
			iq_process(&im->q[q]);
		}
	}
}

static const struct link_chan_ops import_chan_ops = {
    .on_msg = import_on_msg,
    .on_up = import_on_up,
    .on_down = import_on_down,
    .on_writable = import_on_writable,
};

struct import *import_new(struct node *n, const struct vb_import *cfg)
{
	struct import *im = calloc(1, sizeof(*im));

	if (!im) {
		return NULL;
	}
	im->node = n;
	im->cfg = cfg;
	im->chan = -1;
	im->retry_ns = IMPORT_RETRY_MIN_NS;
	for (unsigned q = 0; q < VU_DEV_MAX_QUEUES; q++) {
		im->q[q].im = im;
		im->q[q].index = q;
	}
	im->retry = vb_timer_new(n->loop, import_retry, im);
	im->flush = vb_timer_new(n->loop, import_flush, im);
	im->ack_timer = vb_timer_new(n->loop, import_send_ack, im);
	im->release = vb_timer_new(n->loop, import_release, im);
	im->release_at = INT64_MAX;
	im->link = node_link_for(n, cfg->source);
	im->holding = cfg->on_unsync_hold && !node_synced(n);
	if (!im->retry || !im->flush || !im->ack_timer || !im->release || !im->link) {
		import_free(im);
		return NULL;
	}
	im->chan = link_chan_open(im->link, 0, &import_chan_ops, im);
	if (im->chan < 0) {
		log_errx("import %s: no free channel on %s", cfg->name, cfg->source);
		import_free(im);
		return NULL;
	}
	link_chan_set_class(im->link, (uint32_t)im->chan, cfg->cls);
	if (link_is_up(im->link)) {
		import_send_attach(im);
	}
	return im;
}

void import_free(struct import *im)
{
	if (!im) {
		return;
	}
	vu_dev_free(im->dev);
	for (unsigned q = 0; q < VU_DEV_MAX_QUEUES; q++) {
		iq_free_bufs(&im->q[q]);
		free(im->q[q].tm);
	}
	if (im->link && im->chan > 0) {
		struct wire_msg m = {.type = WIRE_DETACH, .chan = (uint32_t)im->chan};

		if (link_is_up(im->link)) {
			link_send(im->link, &m);
		}
		link_chan_close(im->link, (uint32_t)im->chan);
	}
	vb_timer_free(im->retry);
	vb_timer_free(im->flush);
	vb_timer_free(im->ack_timer);
	vb_timer_free(im->release);
	free(im);
}

void import_time_changed(struct import *im)
{
	bool hold = im->cfg->on_unsync_hold && !node_synced(im->node);

	if (hold == im->holding) {
		return;
	}
	im->holding = hold;
	log_notice("import %s: %s", im->cfg->name,
	           hold
	               ? "clock not synchronized: holding the guest's new requests (on-unsync=hold)"
	               : "clock synchronized again: requests flow");
	if (!hold) {
		import_process_all(im);
	}
}

/* The timing fields status and stats share: of the import, and of queue q. */
static void import_time_json(const struct import *im, struct jw *w)
{
	jw_str(w, "on_unsync", im->cfg->on_unsync_hold ? "hold" : "deliver");
	jw_bool(w, "holding", im->holding);
}

static void iq_time_json(const struct import *im, unsigned q, struct jw *w)
{
	jw_u64(w, "latency_budget_ns", im->cfg->latency_ns[q]);
	jw_str(w, "late", im->cfg->late_drop & (1ull << q) ? "drop" : "deliver");
	jw_u64(w, "held_now", im->q[q].nheld);
}

void import_stats_json(const struct import *im, struct jw *w)
{
	jw_obj_begin(w, NULL);
	jw_str(w, "name", im->cfg->name);
	import_time_json(im, w);
	jw_arr_begin(w, "queues");
	for (unsigned q = 0; q < im->num_queues; q++) {
		const struct iq *iq = &im->q[q];

		jw_obj_begin(w, NULL);
		jw_u64(w, "index", q);
		iq_time_json(im, q, w);
		jw_u64(w, "requests", iq->requests);
		jw_u64(w, "completions", iq->completions);
		if (iq->tm) {
			qtime_json(iq->tm, w, "completions_timing");
		}
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

void import_status_json(const struct import *im, struct jw *w)
{
	const struct vb_device_type *t = vb_device_type_by_id(im->device_id);

	jw_obj_begin(w, NULL);
	jw_str(w, "name", im->cfg->name);
	jw_str(w, "source", im->cfg->source);
	jw_str(w, "socket", im->cfg->socket);
	jw_str(w, "state", import_state_names[im->state]);
	jw_u64(w, "channel", im->chan > 0 ? (uint64_t)im->chan : 0);
	jw_u64(w, "device_id", im->device_id);
	jw_str(w, "device_type", t ? t->name : "unknown");
	jw_hex(w, "device_features", im->features);
	jw_hex(w, "driver_features", im->acked);
	jw_bool(w, "vmm_connected", im->dev && vu_dev_connected(im->dev));
	jw_u64(w, "attaches", im->attaches);
	jw_str(w, "last_error", im->last_error);
	import_time_json(im, w);
	jw_arr_begin(w, "queues");
	for (unsigned q = 0; q < im->num_queues; q++) {
		const struct iq *iq = &im->q[q];

		jw_obj_begin(w, NULL);
		jw_u64(w, "index", q);
		jw_bool(w, "started", iq->vq != NULL);
		jw_u64(w, "size", iq->vq ? iq->vq->num : 0);
		jw_u64(w, "requests", iq->requests);
		jw_u64(w, "completions", iq->completions);
		jw_u64(w, "inflight", iq->inflight);
		jw_u64(w, "bytes_out", iq->bytes_out);
		jw_u64(w, "bytes_in", iq->bytes_in);
		jw_u64(w, "abandoned", iq->abandoned);
		iq_time_json(im, q, w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}
