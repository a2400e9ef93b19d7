/*
 * Exporter: the device ECU's side. Each attach opens a device session: a
 * vhost-user frontend connection to the backend, one memfd that holds our
 * rings and the buffer pool, and per queue a driver-role split ring.
 * Requests are copied once into the pool, published as chains, and their
 * completions are sent back from the pool.
 */
#include "bridge/exporter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge/config.h"
#include "bridge/jw.h"
#include "bridge/link.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/pool.h"
#include "bridge/qtime.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_front.h"
#include "bridge/wire.h"

#define EX_MAX_QUEUES    64
#define EX_RING_MAX      1024 /* libvhost-user's largest queue */
#define EX_INDIR_MAX     2    /* our chains: one readable run, one writable run */
#define EX_TIMEOUT_MS    3000
#define EX_BUDGET        256
#define EX_RING_FEATURES ((1ull << VIRTIO_F_RING_INDIRECT_DESC) | (1ull << VIRTIO_F_RING_EVENT_IDX))
#define EX_PROTOCOL_FEATURES                                                                       \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG) |                 \
	 (1ull << VU_PF_BACKEND_REQ))

struct xreq {
	uint64_t id;
	uint64_t t_capture;
	int64_t t_deadline;
	int64_t rd_off, wr_off;
	uint32_t rd_len, wr_len;
	struct xreq *next_free; /* on the free list, or the next held one */
};

/* Why a pending request waits, besides room in the pool or ring. */
enum xwait {
	XW_ROOM,     /* only for room */
	XW_DEADLINE, /* for its deadline (it arrived early) */
	XW_SYNC,     /* for this node's clock (HOLD_UNSYNC) */
};

/* A request that did not fit in the pool or ring yet, or is held, copied aside. */
struct xpend {
	struct xpend *next;
	enum xwait wait;
	bool timed; /* its deadline is honoured: the release goes into the error histogram */
	struct wire_request r;
	uint8_t data[];
};

struct xq {
	struct xsess *s;
	unsigned index;
	bool started;
	uint16_t size; /* the importer's queue size: most requests in flight */
	struct virtq_drv vq;
	size_t area_off;
	int kick_fd, call_fd;
	struct vb_watch *call_w;
	struct xreq *reqs;
	struct xreq *free_reqs;
	struct xpend *pend_head, **pend_tail;
	/* Requests staged in the pool, waiting for their deadline, in arrival order. */
	struct xreq *held_head, **held_tail;
	uint32_t nheld;
	uint32_t inflight, npend;
	bool kick_pending;
	bool blocked;    /* used entries may be left: the link was full or the budget spent */
	struct qtime tm; /* timing of the requests */
	uint64_t requests, completions, bytes_in, bytes_out;
};

struct xsess {
	struct export *ex;
	struct link *link;
	uint32_t chan;
	struct vu_front *f;
	struct vb_watch *front_w, *backend_w;
	struct vb_timer *flush;
	struct vb_timer *release; /* the first held request is due */
	int64_t release_at;       /* when it is armed for; INT64_MAX: not armed */
	uint64_t backend_features;
	uint64_t protocol_features;
	uint64_t offered; /* device features offered to the importer */
	uint64_t ring_features;
	bool features_set;
	bool mem_set;
	uint16_t num_queues, max_queue_size;
	uint8_t config[WIRE_CONFIG_MAX];
	uint16_t config_len;
	int memfd;
	uint8_t *mem;
	size_t mem_size, ring_area, pool_off;
	struct pool pool;
	size_t pend_bytes;
	bool rx_paused;
	uint64_t ack;
	uint64_t session; /* sent in ATTACH_OK: nonzero, random (protocol.md 7.1) */
	uint64_t orphaned;
	uint8_t driver_status;
	struct xq q[EX_MAX_QUEUES];
};

struct export
{
	struct node *node;
	const struct vb_export *cfg;
	struct xsess *sess;
	uint64_t attaches, refused, failures;
	char last_error[200];
};

static void xsess_free(struct xsess *s);

static void xsess_fail(struct xsess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The device session ends: tell the importer why, log, free. */
static void xsess_fail(struct xsess *s, const char *fmt, ...)
{
	struct export *ex = s->ex;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ex->last_error, sizeof(ex->last_error), fmt, ap);
	va_end(ap);
	log_warnx("export %s: %s; closing device session", ex->cfg->name, ex->last_error);
	ex->failures++;
	link_send_error(s->link, s->chan, WIRE_E_DEVICE, "export %s: %s", ex->cfg->name,
	                ex->last_error);
	xsess_free(s);
}

/* Why a frontend call failed: the frontend's words, else the errno's. */
static const char *xsess_front_why(const struct xsess *s, int rc, const char *dflt)
{
	const char *why = vu_front_error(s->f);

	if (why && why[0]) {
		return why;
	}
	return rc < 0 ? strerror(-rc) : dflt;
}

static int xsess_front_err(struct xsess *s, const char *what, int rc)
{
	xsess_fail(s, "backend %s: %s: %s", s->ex->cfg->path, what, xsess_front_why(s, rc, ""));
	return rc;
}

/* ---- memory ---- */

static int xsess_alloc_mem(struct xsess *s)
{
	size_t ring = virtq_drv_mem_bytes(EX_RING_MAX, true, EX_INDIR_MAX);

	s->ring_area = (ring + 4095) & ~(size_t)4095;
	s->pool_off = s->ring_area * s->num_queues;
	s->mem_size = s->pool_off + (s->ex->cfg->pool_size & ~(uint64_t)(POOL_CHUNK - 1));
	s->memfd = memfd_create("vbridge-export", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (s->memfd < 0) {
		return -errno;
	}
	if (ftruncate(s->memfd, (off_t)s->mem_size) < 0) {
		return -errno;
	}
	/* The backend may map it but never resize it under us. */
	if (fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		return -errno;
	}
	s->mem = mmap(NULL, s->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
	if (s->mem == MAP_FAILED) {
		s->mem = NULL;
		return -errno;
	}
	return pool_init(&s->pool, s->mem_size - s->pool_off);
}

/* Our region: guest-physical 0 .. mem_size, frontend address = our mapping. */
static int xsess_set_mem(struct xsess *s)
{
	struct vu_mem_region r = {
	    .gpa = 0,
	    .size = s->mem_size,
	    .uaddr = (uint64_t)(uintptr_t)s->mem,
	    .mmap_offset = 0,
	};
	int rc;

	if (s->mem_set) {
		return 0;
	}
	rc = vu_front_set_mem_table(s->f, &r, &s->memfd, 1);
	if (rc < 0) {
		return xsess_front_err(s, "SET_MEM_TABLE", rc);
	}
	s->mem_set = true;
	return 0;
}

/* ---- data path ---- */

static void xq_kick(struct xq *xq)
{
	uint64_t one = 1;

	if (virtq_drv_kick_prepare(&xq->vq) && write(xq->kick_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN) {
		log_warn("export %s: queue %u kick", xq->s->ex->cfg->name, xq->index);
	}
}

static const char *const xwait_verdicts[] = {
    [XW_ROOM] = "now",
    [XW_DEADLINE] = "held",
    [XW_SYNC] = "held",
};

/* A request with an honoured deadline goes to the device now: how far off was it? */
static void xq_released(struct xq *xq, uint64_t id, uint64_t t_capture, int64_t d, enum xwait why)
{
	struct xsess *s = xq->s;
	int64_t now = node_time(s->ex->node);

	qtime_released(&xq->tm, now, d, why != XW_ROOM);
	qtime_trace(s->ex->node->trace, "export", s->ex->cfg->name, xq->index, id,
	            (int64_t)t_capture, d, now,
	            why == XW_ROOM && now > d ? "late" : xwait_verdicts[why]);
}

/*
 * Copies a request into the pool and takes a slot for it (counted in
 * flight: it holds pool and slot until it completes). NULL: no room now.
 */
static struct xreq *xq_stage(struct xq *xq, const struct wire_request *r, const uint8_t *data)
{
	struct xsess *s = xq->s;
	struct xreq *x = xq->free_reqs;
	int64_t rd = -1, wr = -1;

	if (!x) {
		return NULL;
	}
	if (r->rd_len && (rd = pool_alloc(&s->pool, r->rd_len)) < 0) {
		return NULL;
	}
	if (r->wr_len && (wr = pool_alloc(&s->pool, r->wr_len)) < 0) {
		pool_free(&s->pool, rd, r->rd_len);
		return NULL;
	}
	if (rd >= 0) {
		memcpy(s->mem + s->pool_off + rd, data, r->rd_len);
	}
	xq->free_reqs = x->next_free;
	*x = (struct xreq){.id = r->id,
	                   .t_capture = r->t_capture,
	                   .t_deadline = (int64_t)r->t_deadline,
	                   .rd_off = rd,
	                   .wr_off = wr,
	                   .rd_len = r->rd_len,
	                   .wr_len = r->wr_len};
	xq->inflight++;
	return x;
}

static void xq_unstage(struct xq *xq, struct xreq *x)
{
	pool_free(&xq->s->pool, x->rd_off, x->rd_len);
	pool_free(&xq->s->pool, x->wr_off, x->wr_len);
	x->next_free = xq->free_reqs;
	xq->free_reqs = x;
	xq->inflight--;
}

/* Sends a COMPLETION of request id, done now, with the len bytes at data. */
static int xq_send_cpl(struct xq *xq, uint64_t id, uint64_t t_capture, uint16_t status,
                       uint8_t *data, uint32_t len)
{
	struct xsess *s = xq->s;
	uint8_t hdr[WIRE_CPL_HDR_LEN];
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {data, len}};
	struct wire_completion c = {
	    .queue = (uint16_t)xq->index,
	    .status = status,
	    .id = id,
	    .t_capture = t_capture,
	    .t_done = (uint64_t)node_time(s->ex->node),
	    .written = len,
	};

	wire_encode_completion_hdr(hdr, s->chan, &c);
	xq->completions++;
	xq->bytes_out += len;
	return link_sendv(s->link, iov, len ? 2 : 1);
}

/* Gives a staged request to the backend. 1, or 0 when the ring has no room now. */
static int xq_publish(struct xq *xq, struct xreq *x)
{
	struct xsess *s = xq->s;
	struct virtq_buf bufs[2];
	unsigned nrd = 0, nwr = 0;

	if (x->rd_off >= 0) {
		bufs[nrd++] = (struct virtq_buf){s->pool_off + (uint64_t)x->rd_off, x->rd_len};
	}
	if (x->wr_off >= 0) {
		bufs[nrd + nwr++] =
		    (struct virtq_buf){s->pool_off + (uint64_t)x->wr_off, x->wr_len};
	}
	if (virtq_drv_add(&xq->vq, bufs, nrd, nwr, x) < 0) {
		return 0;
	}
	xq->kick_pending = true;
	vb_timer_arm(s->flush, 0);
	return 1;
}

/* Places a request into the pool and ring. 1 placed, 0 no room now. */
static int xq_place(struct xq *xq, const struct wire_request *r, const uint8_t *data)
{
	struct xreq *x = xq_stage(xq, r, data);

	if (!x) {
		return 0;
	}
	if (!xq_publish(xq, x)) {
		xq_unstage(xq, x);
		return 0;
	}
	return 1;
}

/* Publishes the staged requests whose deadline has come, in order. */
static void xq_release_held(struct xq *xq)
{
	int64_t now = xq->held_head ? node_time(xq->s->ex->node) : 0;
	struct xreq *x;

	while ((x = xq->held_head) && x->t_deadline <= now && xq_publish(xq, x)) {
		xq->held_head = x->next_free;
		if (!xq->held_head) {
			xq->held_tail = &xq->held_head;
		}
		xq->nheld--;
		xq_released(xq, x->id, x->t_capture, x->t_deadline, XW_DEADLINE);
	}
}

static void xsess_update_rx_pause(struct xsess *s)
{
	bool want = s->pend_bytes > s->pool.nchunks * POOL_CHUNK;

	if (want != s->rx_paused) {
		s->rx_paused = want;
		link_pause_rx(s->link, want);
	}
}

static int xq_defer(struct xq *xq, const struct wire_request *r, enum xwait wait, bool timed)
{
	struct xpend *p = malloc(sizeof(*p) + r->rd_len);

	if (!p) {
		return -ENOMEM;
	}
	p->next = NULL;
	p->wait = wait;
	p->timed = timed;
	p->r = *r;
	memcpy(p->data, r->data, r->rd_len);
	p->r.data = NULL;
	*xq->pend_tail = p;
	xq->pend_tail = &p->next;
	xq->npend++;
	xq->s->pend_bytes += r->rd_len;
	xsess_update_rx_pause(xq->s);
	return 0;
}

/*
 * Is the first pending request free to go (its deadline come, the clock
 * back)? A request held for the clock is decided again when it is back:
 * early, it waits for its deadline; late, it is counted (and dropped with
 * DROP_LATE: -1).
 */
static int xq_due(struct xq *xq, struct xpend *p, int64_t now)
{
	switch (p->wait) {
	case XW_ROOM:
		return 1;
	case XW_SYNC:
		if (!node_synced(xq->s->ex->node)) {
			return 0;
		}
		if (now < (int64_t)p->r.t_deadline) {
			p->wait = XW_DEADLINE;
			return 0;
		}
		xq->tm.late++;
		p->wait = XW_ROOM;
		if (p->r.flags & WIRE_REQ_DROP_LATE) {
			xq->tm.dropped++;
			return -1;
		}
		return 1;
	case XW_DEADLINE:
		return now >= (int64_t)p->r.t_deadline;
	}
	return 1;
}

static int xq_send_late(struct xq *xq, const struct wire_request *r);

/* Places what it can of the pending requests. -1 if the session ended. */
static int xq_place_pending(struct xq *xq)
{
	int64_t now = xq->pend_head ? node_time(xq->s->ex->node) : 0;
	struct xpend *p;
	int due;

	/* The staged ones arrived first: nothing pending goes before them. */
	xq_release_held(xq);
	if (xq->held_head) {
		return 0;
	}
	while ((p = xq->pend_head) && (due = xq_due(xq, p, now)) != 0) {
		if (due < 0) {
			if (xq_send_late(xq, &p->r) < 0) {
				return -1;
			}
		} else if (!xq_place(xq, &p->r, p->data)) {
			break;
		} else if (p->timed) {
			xq_released(xq, p->r.id, p->r.t_capture, (int64_t)p->r.t_deadline, p->wait);
		}
		xq->pend_head = p->next;
		if (!xq->pend_head) {
			xq->pend_tail = &xq->pend_head;
		}
		xq->npend--;
		xq->s->pend_bytes -= p->r.rd_len;
		free(p);
	}
	xsess_update_rx_pause(xq->s);
	return 0;
}

/* The first held request of any queue is due: arm the release timer for it. */
static void xsess_arm_release(struct xsess *s)
{
	int64_t next = INT64_MAX;

	for (unsigned q = 0; q < s->num_queues; q++) {
		const struct xq *xq = &s->q[q];
		const struct xpend *p = xq->started ? xq->pend_head : NULL;

		if (xq->started && xq->held_head) {
			next = VB_MIN(next, xq->held_head->t_deadline);
		} else if (p && p->wait == XW_DEADLINE) {
			next = VB_MIN(next, (int64_t)p->r.t_deadline);
		}
	}
	s->release_at = next;
	node_arm_at(s->ex->node, s->release, next);
}

static void xsess_flush(void *arg);

static void xsess_release(void *arg)
{
	struct xsess *s = arg;

	node_time_at(s->ex->node, s->release_at); /* spins to it when it is that close */
	for (unsigned q = 0; q < s->num_queues; q++) {
		if (s->q[q].started && (s->q[q].pend_head || s->q[q].held_head) &&
		    xq_place_pending(&s->q[q]) < 0) {
			return;
		}
	}
	xsess_arm_release(s);
	xsess_flush(s);
}

/* A late request with DROP_LATE: completed LATE, never run (protocol.md 4.10). */
static int xq_send_late(struct xq *xq, const struct wire_request *r)
{
	struct xsess *s = xq->s;

	qtime_trace(s->ex->node->trace, "export", s->ex->cfg->name, xq->index, r->id,
	            (int64_t)r->t_capture, (int64_t)r->t_deadline, node_time(s->ex->node),
	            "dropped");
	if (xq_send_cpl(xq, r->id, r->t_capture, WIRE_CPL_LATE, NULL, 0) < 0) {
		xsess_fail(s, "cannot send completion");
		return -1;
	}
	return 0;
}

/*
 * The timing of a request (protocol.md 4.9): where it waits, if anywhere.
 * XW_ROOM: go now; -1: dropped (LATE sent, or the session failed).
 */
static int xq_timing(struct xq *xq, const struct wire_request *r, bool *timed)
{
	struct node *n = xq->s->ex->node;
	int64_t now = node_time(n);
	bool synced = node_synced(n);

	*timed = false;
	qtime_arrival(&xq->tm, now, (int64_t)r->t_capture);
	if (!r->t_deadline) {
		return XW_ROOM;
	}
	if ((int64_t)r->t_deadline - now > QTIME_AHEAD_MAX_NS) {
		link_drop(xq->s->link,
		          "export %s: request %llu: deadline %.1f s ahead, over %.0f s",
		          xq->s->ex->cfg->name, (unsigned long long)r->id,
		          (double)((int64_t)r->t_deadline - now) / 1e9, QTIME_AHEAD_MAX_NS / 1e9);
		return -1;
	}
	if (!synced && (r->flags & WIRE_REQ_HOLD_UNSYNC)) {
		xq->tm.timed++;
		if (!xq->tm.unsync_held++) {
			log_warnx(
			    "export %s: queue %u: holding requests until this node's clock is "
			    "synchronized (the importer asked: on-unsync=hold)",
			    xq->s->ex->cfg->name, xq->index);
		}
		*timed = true;
		return XW_SYNC;
	}
	switch (qtime_decide(&xq->tm, now, (int64_t)r->t_deadline, synced,
	                     r->flags & WIRE_REQ_DROP_LATE)) {
	case QT_HOLD:
		*timed = true;
		return XW_DEADLINE;
	case QT_DROP:
		xq_send_late(xq, r);
		return -1;
	case QT_LATE:
		*timed = true;
		return XW_ROOM;
	case QT_NOW:
		*timed = synced;
		return XW_ROOM;
	}
	return XW_ROOM;
}

static void xsess_on_request(struct xsess *s, const struct wire_request *r)
{
	struct xq *xq = r->queue < s->num_queues ? &s->q[r->queue] : NULL;
	bool timed;
	int wait;

	if (!xq || !xq->started) {
		link_drop(s->link, "export %s: request for queue %u that is not started",
		          s->ex->cfg->name, r->queue);
		return;
	}
	if (xq->inflight + xq->npend >= xq->size) {
		link_drop(s->link, "export %s: queue %u: more than %u requests in flight",
		          s->ex->cfg->name, r->queue, xq->size);
		return;
	}
	if ((uint64_t)r->rd_len + r->wr_len > s->pool.nchunks * POOL_CHUNK) {
		xsess_fail(s, "request of %u+%u bytes larger than the buffer pool", r->rd_len,
		           r->wr_len);
		return;
	}
	s->ack = VB_MAX(s->ack, r->ack);
	xq->requests++;
	xq->bytes_in += r->rd_len;
	wait = xq_timing(xq, r, &timed);
	if (wait < 0) {
		return;
	}
	if (wait == XW_ROOM && !xq->pend_head && !xq->held_head && xq_place(xq, r, r->data)) {
		if (timed) {
			xq_released(xq, r->id, r->t_capture, (int64_t)r->t_deadline, XW_ROOM);
		}
		return;
	}
	/* Early: staged in the pool now (no copy aside), published at its deadline. */
	if (wait == XW_DEADLINE && !xq->pend_head) {
		struct xreq *x = xq_stage(xq, r, r->data);

		if (x) {
			x->next_free = NULL;
			*xq->held_tail = x;
			xq->held_tail = &x->next_free;
			xq->nheld++;
			xsess_arm_release(s);
			return;
		}
	}
	if (xq_defer(xq, r, (enum xwait)wait, timed) < 0) {
		xsess_fail(s, "out of memory");
		return;
	}
	if (wait == XW_DEADLINE) {
		xsess_arm_release(s);
	}
}

static int xq_complete(struct xq *xq, struct xreq *x, uint32_t len)
{
	uint8_t *data = len ? xq->s->mem + xq->s->pool_off + x->wr_off : NULL;
	int rc = xq_send_cpl(xq, x->id, x->t_capture, WIRE_CPL_OK, data, len);

	xq_unstage(xq, x);
	return rc;
}

/* Reaps used entries from the backend and sends completions. -1 if the session ended. */
static int xq_reap(struct xq *xq)
{
	struct xsess *s = xq->s;
	unsigned budget = EX_BUDGET;

	for (;;) {
		void *tok;
		uint32_t len;
		int rc;

		if (!link_writable(s->link)) {
			xq->blocked = true;
			break;
		}
		if (budget-- == 0) {
			/* Callbacks are off: xsess_flush must come back for the rest. */
			xq->blocked = true;
			vb_timer_arm(s->flush, 0);
			break;
		}
		virtq_drv_cb_enable(&xq->vq, false);
		rc = virtq_drv_get(&xq->vq, &tok, &len);
		if (rc < 0) {
			xsess_fail(s, "backend broke queue %u: %s", xq->index, xq->vq.err);
			return -1;
		}
		if (rc == 0) {
			if (!virtq_drv_cb_enable(&xq->vq, true)) {
				xq->blocked = false;
				break;
			}
			continue;
		}
		if (len > ((struct xreq *)tok)->wr_len) {
			xsess_fail(s, "backend wrote %u bytes into %u on queue %u", len,
			           ((struct xreq *)tok)->wr_len, xq->index);
			return -1;
		}
		if (xq_complete(xq, tok, len) < 0) {
			xsess_fail(s, "cannot send completion");
			return -1;
		}
	}
	return xq_place_pending(xq);
}

static void xq_on_call(int fd, unsigned ev, void *arg)
{
	struct xq *xq = arg;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
		log_warn("export %s: queue %u call", xq->s->ex->cfg->name, xq->index);
	}
	xq_reap(xq);
}

static void xsess_flush(void *arg)
{
	struct xsess *s = arg;

	for (unsigned q = 0; q < s->num_queues; q++) {
		struct xq *xq = &s->q[q];

		if (!xq->started) {
			continue;
		}
		if (xq->kick_pending) {
			xq->kick_pending = false;
			xq_kick(xq);
		}
		if (xq->blocked && xq_reap(xq) < 0) {
			return;
		}
	}
}

/* ---- queue control ---- */

static void xq_drop_pending(struct xq *xq)
{
	struct xpend *p, *next;

	for (p = xq->pend_head; p; p = next) {
		next = p->next;
		xq->s->pend_bytes -= p->r.rd_len;
		free(p);
	}
	xq->pend_head = NULL;
	xq->pend_tail = &xq->pend_head;
	xq->npend = 0;
}

static void xq_stop(struct xq *xq, bool tell_backend)
{
	struct xsess *s = xq->s;
	unsigned base;

	if (!xq->started) {
		return;
	}
	if (tell_backend && s->f && !vu_front_broken(s->f)) {
		vu_front_get_vring_base(s->f, xq->index, &base);
	}
	/*
	 * The backend may still write into buffers of requests it had taken:
	 * their pool runs are not reused until the session ends.
	 */
	s->orphaned += xq->inflight; /* staged ones too: their slots go with xq->reqs */
	xq->held_head = NULL;
	xq->held_tail = &xq->held_head;
	xq->nheld = 0;
	xq_drop_pending(xq);
	xsess_update_rx_pause(s);
	vb_watch_free(xq->call_w);
	xq->call_w = NULL;
	if (xq->kick_fd >= 0) {
		close(xq->kick_fd);
	}
	if (xq->call_fd >= 0) {
		close(xq->call_fd);
	}
	xq->kick_fd = xq->call_fd = -1;
	virtq_drv_fini(&xq->vq);
	free(xq->reqs);
	xq->reqs = NULL;
	xq->started = false;
	xq->inflight = 0;
	log_info("export %s: queue %u stopped", s->ex->cfg->name, xq->index);
}

static int xq_setup_backend(struct xq *xq)
{
	struct xsess *s = xq->s;
	uint64_t uaddr = (uint64_t)(uintptr_t)s->mem;
	struct vu_vring_addr a = {
	    .index = xq->index,
	    .desc = uaddr + xq->vq.desc_addr,
	    .used = uaddr + xq->vq.used_addr,
	    .avail = uaddr + xq->vq.avail_addr,
	};
	int rc;

	if ((rc = vu_front_set_vring_num(s->f, xq->index, xq->vq.num)) < 0) {
		return xsess_front_err(s, "SET_VRING_NUM", rc);
	}
	if ((rc = vu_front_set_vring_base(s->f, xq->index, 0)) < 0) {
		return xsess_front_err(s, "SET_VRING_BASE", rc);
	}
	if ((rc = vu_front_set_vring_addr(s->f, &a)) < 0) {
		return xsess_front_err(s, "SET_VRING_ADDR", rc);
	}
	if ((rc = vu_front_set_vring_kick(s->f, xq->index, xq->kick_fd)) < 0) {
		return xsess_front_err(s, "SET_VRING_KICK", rc);
	}
	if ((rc = vu_front_set_vring_call(s->f, xq->index, xq->call_fd)) < 0) {
		return xsess_front_err(s, "SET_VRING_CALL", rc);
	}
	if (s->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		if ((rc = vu_front_set_vring_enable(s->f, xq->index, true)) < 0) {
			return xsess_front_err(s, "SET_VRING_ENABLE", rc);
		}
	}
	return 0;
}

static void xsess_queue_start(struct xsess *s, const struct wire_queue *wq)
{
	struct xq *xq = wq->index < s->num_queues ? &s->q[wq->index] : NULL;
	bool indirect = s->ring_features & (1ull << VIRTIO_F_RING_INDIRECT_DESC);
	uint16_t num;

	if (!xq || xq->started || !s->features_set || wq->size == 0 ||
	    (wq->size & (wq->size - 1)) || wq->size > s->max_queue_size) {
		link_drop(s->link, "export %s: bad QUEUE_START %u size %u", s->ex->cfg->name,
		          wq->index, wq->size);
		return;
	}
	if (xsess_set_mem(s) < 0) {
		return;
	}
	/* Without indirect tables a request takes two descriptors. */
	num = indirect ? wq->size : (uint16_t)VB_MIN(2u * wq->size, EX_RING_MAX);
	xq->size = wq->size;
	xq->area_off = s->ring_area * xq->index;
	memset(s->mem + xq->area_off, 0, s->ring_area);
	xq->reqs = calloc(wq->size, sizeof(*xq->reqs));
	xq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	xq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!xq->reqs || xq->kick_fd < 0 || xq->call_fd < 0 ||
	    virtq_drv_init(&xq->vq, num, s->mem + xq->area_off, xq->area_off,
	                   s->ring_features & (1ull << VIRTIO_F_RING_EVENT_IDX), indirect,
	                   EX_INDIR_MAX) < 0) {
		xq->started = true;
		xq_stop(xq, false);
		xsess_fail(s, "queue %u: out of resources", wq->index);
		return;
	}
	xq->free_reqs = NULL;
	for (unsigned i = wq->size; i-- > 0;) {
		xq->reqs[i].next_free = xq->free_reqs;
		xq->free_reqs = &xq->reqs[i];
	}
	xq->started = true;
	if (xq_setup_backend(xq) < 0) {
		return;
	}
	xq->call_w = vb_watch_new(s->ex->node->loop, xq->call_fd, VB_EV_READ, xq_on_call, xq);
	log_info("export %s: queue %u started, size %u, ring %u%s%s", s->ex->cfg->name, xq->index,
	         wq->size, num, indirect ? ", indirect" : "",
	         xq->vq.event_idx ? ", event-idx" : "");
}

static void xsess_queue_stop(struct xsess *s, const struct wire_queue *wq)
{
	if (wq->index >= s->num_queues) {
		link_drop(s->link, "export %s: QUEUE_STOP for queue %u", s->ex->cfg->name,
		          wq->index);
		return;
	}
	xq_stop(&s->q[wq->index], true);
}

static void xsess_set_features(struct xsess *s, uint64_t f)
{
	uint64_t set;
	int rc;

	if (f & ~s->offered) {
		link_drop(s->link, "export %s: driver features 0x%llx not offered",
		          s->ex->cfg->name, (unsigned long long)(f & ~s->offered));
		return;
	}
	for (unsigned q = 0; q < s->num_queues; q++) {
		xq_stop(&s->q[q], true);
	}
	s->ring_features = s->backend_features & EX_RING_FEATURES;
	set =
	    f | s->ring_features | (s->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	if ((rc = vu_front_set_features(s->f, set)) < 0) {
		xsess_front_err(s, "SET_FEATURES", rc);
		return;
	}
	s->features_set = true;
}

static void xsess_set_config(struct xsess *s, const struct wire_config *c)
{
	int rc = vu_front_set_config(s->f, c->offset, c->data, c->len);

	if (rc < 0) {
		xsess_front_err(s, "SET_CONFIG", rc);
	}
}

/* Reads config space from the backend afresh and answers with CONFIG. */
static void xsess_get_config(struct xsess *s, const struct wire_config *c)
{
	struct wire_msg m = {.type = WIRE_CONFIG, .chan = s->chan};
	uint8_t buf[WIRE_CONFIG_MAX];
	int rc;

	if (c->offset > s->config_len || c->len > s->config_len - c->offset || c->len == 0) {
		link_send_error(s->link, s->chan, WIRE_E_PROTO,
		                "CONFIG_GET %u+%u outside the %u bytes of config space", c->offset,
		                c->len, s->config_len);
		return;
	}
	rc = vu_front_get_config(s->f, c->offset, buf, c->len);
	if (rc < 0) {
		xsess_front_err(s, "GET_CONFIG", rc);
		return;
	}
	m.u.config.offset = c->offset;
	m.u.config.len = c->len;
	m.u.config.data = buf;
	link_send(s->link, &m);
}

static void xsess_reset(struct xsess *s)
{
	for (unsigned q = 0; q < s->num_queues; q++) {
		xq_stop(&s->q[q], true);
	}
	s->features_set = false;
}

static void xsess_on_msg(void *arg, const struct wire_msg *m)
{
	struct xsess *s = arg;

	switch (m->type) {
	case WIRE_REQUEST:
		xsess_on_request(s, &m->u.request);
		break;
	case WIRE_ACK:
		s->ack = VB_MAX(s->ack, m->u.ack.ack);
		break;
	case WIRE_FEATURES:
		xsess_set_features(s, m->u.features.features);
		break;
	case WIRE_QUEUE_START:
		xsess_queue_start(s, &m->u.queue);
		break;
	case WIRE_QUEUE_STOP:
		xsess_queue_stop(s, &m->u.queue);
		break;
	case WIRE_RESET:
		xsess_reset(s);
		break;
	case WIRE_CONFIG_SET:
		xsess_set_config(s, &m->u.config);
		break;
	case WIRE_CONFIG_GET:
		xsess_get_config(s, &m->u.config);
		break;
	case WIRE_STATUS:
		/* Status is per hop in vhost-user without the STATUS feature; noted for status
		 * output. */
		s->driver_status = m->u.status.status;
		break;
	case WIRE_DETACH:
		log_info("export %s: detached by %s", s->ex->cfg->name, link_peer_name(s->link));
		xsess_free(s);
		break;
	default:
		link_drop(s->link, "export %s: unexpected %s", s->ex->cfg->name,
		          wire_type_name(m->type));
		break;
	}
}

static void xsess_on_down(void *arg, const char *reason)
{
	struct xsess *s = arg;

	log_info("export %s: link lost (%s); closing device session", s->ex->cfg->name, reason);
	s->link = NULL;
	xsess_free(s);
}

static void xsess_on_writable(void *arg)
{
	struct xsess *s = arg;

	for (unsigned q = 0; q < s->num_queues; q++) {
		if (s->q[q].started && s->q[q].blocked && xq_reap(&s->q[q]) < 0) {
			return;
		}
	}
}

static const struct link_chan_ops xsess_chan_ops = {
    .on_msg = xsess_on_msg,
    .on_down = xsess_on_down,
    .on_writable = xsess_on_writable,
};

/* ---- backend connection ---- */

static void xsess_on_front(int fd, unsigned ev, void *arg)
{
	struct xsess *s = arg;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN) {
		return;
	}
	xsess_fail(s, "backend %s %s", s->ex->cfg->path,
	           n == 0 ? "closed the connection" : "sent an unsolicited message");
}

static void xsess_on_backend_chan(int fd, unsigned ev, void *arg)
{
	struct xsess *s = arg;
	struct wire_msg m = {.type = WIRE_CONFIG_CHANGED, .chan = s->chan};
	uint32_t req;
	int rc = vu_front_backend_read(s->f, &req);

	if (rc < 0) {
		log_warnx("export %s: backend channel closed: %s", s->ex->cfg->name,
		          xsess_front_why(s, rc, ""));
		vb_watch_free(s->backend_w);
		s->backend_w = NULL;
		return;
	}
	if (rc == 0 || req != VHOST_USER_BACKEND_CONFIG_CHANGE_MSG || !s->config_len) {
		return;
	}
	if (vu_front_get_config(s->f, 0, s->config, s->config_len) < 0) {
		xsess_front_err(s, "GET_CONFIG", -EPROTO);
		return;
	}
	m.u.config.len = s->config_len;
	m.u.config.data = s->config;
	log_info("export %s: config space changed", s->ex->cfg->name);
	link_send(s->link, &m);
}

/* The set-up sequence toward the backend, up to the point where queues can start. */
static int xsess_open_backend(struct xsess *s, char *err, size_t errlen)
{
	const struct vb_export *cfg = s->ex->cfg;
	uint64_t pf = 0, nq = 1;

	s->f = vu_front_connect(cfg->path, EX_TIMEOUT_MS, err, errlen);
	if (!s->f) {
		return -1;
	}
	if (vu_front_get_features(s->f, &s->backend_features) < 0) {
		goto front_err;
	}
	if (s->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		if (vu_front_get_protocol_features(s->f, &pf) < 0 ||
		    vu_front_set_protocol_features(s->f, pf & EX_PROTOCOL_FEATURES) < 0) {
			goto front_err;
		}
		s->protocol_features = pf & EX_PROTOCOL_FEATURES;
	}
	if (vu_front_set_owner(s->f) < 0) {
		goto front_err;
	}
	if ((s->protocol_features & (1ull << VU_PF_MQ)) && vu_front_get_queue_num(s->f, &nq) < 0) {
		goto front_err;
	}
	if (nq == 0 || nq > EX_MAX_QUEUES) {
		snprintf(err, errlen, "backend reports %llu queues", (unsigned long long)nq);
		return -1;
	}
	s->num_queues = (uint16_t)nq;
	s->config_len = (uint16_t)VB_MIN(cfg->config_size, WIRE_CONFIG_MAX);
	if (!(s->protocol_features & (1ull << VU_PF_CONFIG))) {
		s->config_len = 0;
	}
	if (s->config_len && vu_front_get_config(s->f, 0, s->config, s->config_len) < 0) {
		goto front_err;
	}
	if (s->protocol_features & (1ull << VU_PF_BACKEND_REQ)) {
		int bfd = vu_front_open_backend_channel(s->f);

		if (bfd < 0) {
			goto front_err;
		}
		s->backend_w =
		    vb_watch_new(s->ex->node->loop, bfd, VB_EV_READ, xsess_on_backend_chan, s);
	}
	log_info("export %s: backend %s: features 0x%llx, protocol features 0x%llx of 0x%llx, "
	         "%u queues, %u config bytes",
	         cfg->name, cfg->path, (unsigned long long)s->backend_features,
	         (unsigned long long)s->protocol_features, (unsigned long long)pf, s->num_queues,
	         s->config_len);
	s->front_w =
	    vb_watch_new(s->ex->node->loop, vu_front_fd(s->f), VB_EV_READ, xsess_on_front, s);
	return 0;
front_err:
	snprintf(err, errlen, "backend %s: %s", cfg->path, xsess_front_why(s, 0, "set-up failed"));
	return -1;
}

static void xsess_free(struct xsess *s)
{
	if (!s) {
		return;
	}
	for (unsigned q = 0; q < EX_MAX_QUEUES; q++) {
		xq_stop(&s->q[q], false);
	}
	if (s->link) {
		if (s->rx_paused) {
			link_pause_rx(s->link, false);
		}
		link_chan_close(s->link, s->chan);
	}
	vb_watch_free(s->front_w);
	vb_watch_free(s->backend_w);
	vu_front_free(s->f);
	vb_timer_free(s->flush);
	vb_timer_free(s->release);
	pool_fini(&s->pool);
	if (s->mem) {
		munmap(s->mem, s->mem_size);
	}
	if (s->memfd >= 0) {
		close(s->memfd);
	}
	if (s->ex->sess == s) {
		s->ex->sess = NULL;
	}
	free(s);
}

static struct xsess *xsess_new(struct export *ex, struct link *l, uint32_t chan)
{
	struct xsess *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->ex = ex;
	s->link = l;
	s->chan = chan;
	s->memfd = -1;
	s->max_queue_size = (uint16_t)VB_MIN(ex->node->cfg->max_queue_size, EX_RING_MAX);
	for (unsigned q = 0; q < EX_MAX_QUEUES; q++) {
		s->q[q].s = s;
		s->q[q].index = q;
		s->q[q].kick_fd = s->q[q].call_fd = -1;
		s->q[q].pend_tail = &s->q[q].pend_head;
		s->q[q].held_tail = &s->q[q].held_head;
		qtime_init(&s->q[q].tm);
	}
	s->flush = vb_timer_new(ex->node->loop, xsess_flush, s);
	s->release = vb_timer_new(ex->node->loop, xsess_release, s);
	s->release_at = INT64_MAX;
	if (!s->flush || !s->release) {
		vb_timer_free(s->flush);
		vb_timer_free(s->release);
		free(s);
		return NULL;
	}
	return s;
}

/* Random, not a counter: ids must not repeat across exporter restarts (protocol.md 7.1). */
static int xsess_draw_session(uint64_t *id)
{
	ssize_t n;

	do {
		n = getrandom(id, sizeof(*id), 0);
	} while ((n < 0 && errno == EINTR) || (n == sizeof(*id) && *id == 0));
	return n == sizeof(*id) ? 0 : -EIO;
}

/*
 * allow= names the node identities that may attach; without it any peer
 * that passed the link's authentication may. On tls:// links the name is
 * the one the certificate proves (the link checks HELLO against it).
 */
static bool export_allowed(const struct export *ex, const char *node)
{
	if (ex->cfg->nallow == 0) {
		return true;
	}
	for (unsigned i = 0; i < ex->cfg->nallow; i++) {
		if (strcmp(ex->cfg->allow[i], node) == 0) {
			return true;
		}
	}
	return false;
}

void export_attach(struct export *ex, struct link *l, uint32_t chan)
{
	struct wire_msg m = {.type = WIRE_ATTACH_OK, .chan = chan};
	struct xsess *s;
	char err[200];
	int rc;

	if (!export_allowed(ex, link_peer_name(l))) {
		ex->refused++;
		log_warnx("export %s: node %s is not on its allow list; refused", ex->cfg->name,
		          link_peer_name(l));
		link_send_error(l, chan, WIRE_E_DENIED, "node %s may not attach export %s",
		                link_peer_name(l), ex->cfg->name);
		return;
	}
	if (ex->sess) {
		ex->refused++;
		link_send_error(l, chan, WIRE_E_BUSY, "export %s is in use by node %s",
		                ex->cfg->name, link_peer_name(ex->sess->link));
		return;
	}
	s = xsess_new(ex, l, chan);
	if (!s) {
		link_send_error(l, chan, WIRE_E_LIMIT, "export %s: out of memory", ex->cfg->name);
		return;
	}
	if (xsess_draw_session(&s->session) < 0) {
		log_warn("export %s: getrandom", ex->cfg->name);
		link_send_error(l, chan, WIRE_E_DEVICE, "export %s: no session id", ex->cfg->name);
		xsess_free(s);
		return;
	}
	if (xsess_open_backend(s, err, sizeof(err)) < 0 || (rc = xsess_alloc_mem(s)) < 0) {
		if (!s->mem) {
			snprintf(err, sizeof(err), "buffer memory: %s", strerror(errno));
		}
		snprintf(ex->last_error, sizeof(ex->last_error), "%s", err);
		log_warnx("export %s: attach by %s failed: %s", ex->cfg->name, link_peer_name(l),
		          err);
		link_send_error(l, chan, WIRE_E_DEVICE, "export %s: %s", ex->cfg->name, err);
		xsess_free(s);
		return;
	}
	if (link_chan_open(l, chan, &xsess_chan_ops, s) < 0) {
		link_send_error(l, chan, WIRE_E_PROTO, "channel %u busy", chan);
		xsess_free(s);
		return;
	}
	link_chan_set_class(l, chan, ex->cfg->cls);
	ex->sess = s;
	ex->attaches++;
	s->offered = s->backend_features & ~VIRTIO_HOP_FEATURES;
	m.u.attach_ok.device_id = ex->cfg->device_id;
	m.u.attach_ok.num_queues = s->num_queues;
	m.u.attach_ok.max_queue_size = s->max_queue_size;
	m.u.attach_ok.features = s->offered;
	m.u.attach_ok.session = s->session; /* flags 0: sessions do not outlive the link yet */
	m.u.attach_ok.config_len = s->config_len;
	m.u.attach_ok.config = s->config;
	link_send(l, &m);
	log_info("export %s: attached by node %s on channel %u (%u queues, features 0x%llx)",
	         ex->cfg->name, link_peer_name(l), chan, s->num_queues,
	         (unsigned long long)s->offered);
}

struct export *export_new(struct node *n, const struct vb_export *cfg)
{
	struct export *ex = calloc(1, sizeof(*ex));

	if (ex) {
		ex->node = n;
		ex->cfg = cfg;
	}
	return ex;
}

void export_free(struct export *ex)
{
	if (!ex) {
		return;
	}
	xsess_free(ex->sess);
	free(ex);
}

const char *export_name(const struct export *ex)
{
	return ex->cfg->name;
}

void export_status_json(const struct export *ex, struct jw *w)
{
	const struct xsess *s = ex->sess;
	const struct vb_device_type *t = vb_device_type_by_id(ex->cfg->device_id);

	jw_obj_begin(w, NULL);
	jw_str(w, "name", ex->cfg->name);
	jw_str(w, "backend", ex->cfg->path);
	jw_str(w, "device_type", t ? t->name : "unknown");
	jw_str(w, "state", s ? "attached" : "idle");
	jw_str(w, "importer", s ? link_peer_name(s->link) : "");
	jw_u64(w, "attaches", ex->attaches);
	jw_u64(w, "refused", ex->refused);
	jw_u64(w, "failures", ex->failures);
	jw_str(w, "last_error", ex->last_error);
	if (s) {
		jw_hex(w, "device_features", s->offered);
		jw_hex(w, "ring_features", s->ring_features);
		jw_u64(w, "pool_bytes", s->pool.nchunks * POOL_CHUNK);
		jw_u64(w, "pool_used", pool_used_bytes(&s->pool));
		jw_u64(w, "ack", s->ack);
		jw_u64(w, "orphaned", s->orphaned);
		jw_u64(w, "driver_status", s->driver_status);
		jw_arr_begin(w, "queues");
		for (unsigned q = 0; q < s->num_queues; q++) {
			const struct xq *xq = &s->q[q];

			jw_obj_begin(w, NULL);
			jw_u64(w, "index", q);
			jw_bool(w, "started", xq->started);
			jw_u64(w, "size", xq->started ? xq->size : 0);
			jw_u64(w, "requests", xq->requests);
			jw_u64(w, "completions", xq->completions);
			jw_u64(w, "inflight", xq->inflight);
			jw_u64(w, "pending", xq->npend);
			jw_u64(w, "bytes_in", xq->bytes_in);
			jw_u64(w, "bytes_out", xq->bytes_out);
			jw_obj_end(w);
		}
		jw_arr_end(w);
	}
	jw_obj_end(w);
}

void export_time_changed(struct export *ex)
{
	/* Requests held for the clock (HOLD_UNSYNC) go when it is back. */
	if (ex->sess && node_synced(ex->node)) {
		xsess_release(ex->sess);
	}
}

void export_stats_json(const struct export *ex, struct jw *w)
{
	const struct xsess *s = ex->sess;

	jw_obj_begin(w, NULL);
	jw_str(w, "name", ex->cfg->name);
	jw_arr_begin(w, "queues");
	for (unsigned q = 0; s && q < s->num_queues; q++) {
		const struct xq *xq = &s->q[q];
		uint32_t held = xq->nheld;

		for (const struct xpend *p = xq->pend_head; p; p = p->next) {
			held += p->wait != XW_ROOM;
		}
		jw_obj_begin(w, NULL);
		jw_u64(w, "index", q);
		jw_u64(w, "requests", xq->requests);
		jw_u64(w, "completions", xq->completions);
		jw_u64(w, "held_now", held);
		qtime_json(&xq->tm, w, "requests_timing");
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}
