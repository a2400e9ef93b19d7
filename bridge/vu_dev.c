/*
 * vhost-user backend role (QEMU docs/interop/vhost-user.rst, 7.2 era).
 *
 * The endpoint is single-threaded and owns no event loop: it asks bridge/loop.h
 * for watches on the listening socket, the frontend connection, the backend
 * channel and each started ring's kick eventfd. The owner's callbacks may call
 * back into vu_dev_disconnect(); while we are inside a callback (d->busy) the
 * teardown is deferred until the outermost callback returns, so no handler
 * ever runs on state that was freed under it. vu_dev_free() must not be called
 * from inside a callback.
 *
 * Ownership of received fds: vu_rx_read() hands them to us with the message;
 * a handler that keeps one takes it out of the message (msg_take_fd), and the
 * dispatcher closes whatever is left, on success and on every error path.
 */
#include "bridge/vu_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge/gmem.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_io.h"
#include "bridge/vu_msg.h"

#define VU_DEV_REPLY_TIMEOUT_MS 1000
#define VU_DEV_MSGS_PER_WAKEUP  32 /* then yield to the other watches */
#define VU_DEV_LISTEN_BACKLOG   4
#define VU_DEV_ACCEPT_RETRY_NS  1000000000ull /* after EMFILE and the like */

#define BIT64(n) (1ull << (n))

/* Transport feature bits (virtio 1.2, section 6): those we offer per hop, and the rest we strip. */
#define VU_RING_FEATURES (BIT64(VIRTIO_F_RING_INDIRECT_DESC) | BIT64(VIRTIO_F_RING_EVENT_IDX))
#define VU_UNSUPPORTED_FEATURES                                                                    \
	(VIRTIO_HOP_FEATURES & ~VU_RING_FEATURES & ~BIT64(VHOST_USER_F_PROTOCOL_FEATURES))

/* STATUS (16) is deliberately absent: SET/GET_STATUS are then rejected. */
#define VU_PROTOCOL_OFFERED                                                                        \
	(BIT64(VU_PF_MQ) | BIT64(VU_PF_REPLY_ACK) | BIT64(VU_PF_BACKEND_REQ) |                     \
	 BIT64(VU_PF_CONFIG) | BIT64(VU_PF_CONFIGURE_MEM_SLOTS) | BIT64(VU_PF_RESET_DEVICE))

/* VHOST_USER_SET_CONFIG flags ("Virtio device config space" in the spec). */
#define VU_CONFIG_FLAGS_MAX 1u

/* Handler results; negative values are protocol errors that drop the frontend. */
enum { VU_OK = 0, VU_NACK = 1 };

struct vu_vring {
	struct vu_dev *d;
	unsigned idx;
	struct virtq vq; /* valid while started */
	struct vb_watch *kick_w;
	int kick_fd, call_fd, err_fd;
	uint64_t desc, avail, used; /* frontend virtual addresses (SET_VRING_ADDR) */
	uint32_t num;               /* 0 until SET_VRING_NUM */
	uint16_t base;              /* SET_VRING_BASE, or last_avail after a stop */
	bool addr_set, enabled, started;
};

struct vu_dev {
	struct vb_loop *loop;
	const struct vu_dev_ops *ops;
	void *arg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[64];
	unsigned num_queues;
	uint16_t max_queue_size;
	uint32_t max_mem_slots;

	int listen_fd;
	struct vb_watch *listen_w;
	struct vb_timer *accept_retry;
	int conn_fd;
	struct vb_watch *conn_w;
	int backend_fd;
	struct vb_watch *backend_w;

	struct vu_rx rx;
	struct vu_msg msg;   /* the request being handled */
	struct vu_msg reply; /* replies on the frontend socket */
	struct vu_msg bmsg;  /* requests on the backend channel */

	uint64_t acked;     /* virtio features incl. ring and protocol bits */
	uint64_t pfeatures; /* negotiated protocol features */
	struct gmem mem;
	struct vu_vring vr[VU_DEV_MAX_QUEUES];

	unsigned busy;     /* nesting depth of our callbacks into the owner */
	bool drop_pending; /* teardown requested while busy */
	bool closing;      /* teardown in progress */
	char reason[224];  /* why the frontend is being dropped */
	char whybuf[192];  /* formatted protocol-error details */
};

typedef int (*vu_handler_fn)(struct vu_dev *d, struct vu_msg *m, const char **why);

struct vu_handler {
	uint32_t request;
	int pf;         /* protocol feature that must be negotiated, or -1 */
	bool has_reply; /* the request has its own reply body (no REPLY_ACK ack) */
	vu_handler_fn fn;
};

static void conn_teardown(struct vu_dev *d);

/* ---- small helpers ---- */

static void dev_enter(struct vu_dev *d)
{
	d->busy++;
}

static void dev_leave(struct vu_dev *d)
{
	if (--d->busy == 0 && d->drop_pending) {
		conn_teardown(d);
	}
}

/* Records why the frontend goes away; tears down now unless inside a callback. */
static void conn_drop(struct vu_dev *d, const char *reason)
{
	if (d->conn_fd < 0 || d->closing) {
		return;
	}
	if (!d->drop_pending) {
		if (reason != d->reason) {
			snprintf(d->reason, sizeof(d->reason), "%s", reason);
		}
		d->drop_pending = true;
	}
	if (d->busy == 0) {
		conn_teardown(d);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int msg_take_fd(struct vu_msg *m)
{
	int fd;

	if (m->nfds < 1) {
		return -1;
	}
	fd = m->fds[0];
	m->fds[0] = -1;
	return fd;
}

static void msg_close_fds(struct vu_msg *m)
{
	for (unsigned i = 0; i < m->nfds && i < VU_MAX_FDS; i++) {
		close_fd(&m->fds[i]);
	}
	m->nfds = 0;
}

static const char *whyf(struct vu_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *whyf(struct vu_dev *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->whybuf, sizeof(d->whybuf), fmt, ap);
	va_end(ap);
	return d->whybuf;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		return -errno;
	}
	return 0;
}

/* Kick, call and err must be eventfds (adversarial case 8): "anon_inode:[eventfd]". */
static bool fd_is_eventfd(int fd)
{
	char path[32], link[64];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0 || S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) {
		return false;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		return false;
	}
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

static bool fd_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ---- replies ---- */

static int send_reply(struct vu_dev *d, const char **why)
{
	int r;

	d->reply.nfds = 0;
	r = vu_send(d->conn_fd, &d->reply, VU_DEV_REPLY_TIMEOUT_MS);
	if (r < 0) {
		*why = whyf(d, "cannot send reply: %s", strerror(-r));
	}
	return r;
}

static int send_u64(struct vu_dev *d, uint32_t request, uint64_t v, const char **why)
{
	vu_msg_init(&d->reply, request, VU_VERSION | VU_FLAG_REPLY);
	vu_put_u64(&d->reply, v);
	return send_reply(d, why);
}

/* ---- features ---- */

static bool pf_negotiated(const struct vu_dev *d, int pf)
{
	return (d->pfeatures & BIT64(pf)) != 0;
}

/*
 * Device features are end to end, ring and vhost-user bits are ours
 * (ARCHITECTURE.md section 2); VERSION_1 is mandatory for a non-legacy device.
 */
static uint64_t features_offered(const struct vu_dev *d)
{
	uint64_t f = d->ops->get_features(d->arg) & ~VU_UNSUPPORTED_FEATURES;

	return f | BIT64(VIRTIO_F_VERSION_1) | VU_RING_FEATURES |
	       BIT64(VHOST_USER_F_PROTOCOL_FEATURES);
}

static int h_get_features(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	return send_u64(d, m->request, features_offered(d), why);
}

static int h_set_features(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	uint64_t f, extra;

	if (vu_get_u64(m, &f, why) < 0) {
		return -EPROTO;
	}
	extra = f & ~features_offered(d);
	if (extra) {
		*why = whyf(d, "feature bits 0x%llx were not offered", (unsigned long long)extra);
		return -EPROTO;
	}
	d->acked = f;
	d->ops->set_features(d->arg,
	                     f & ~(VU_RING_FEATURES | BIT64(VHOST_USER_F_PROTOCOL_FEATURES)));
	return VU_OK;
}

static int h_get_protocol_features(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	return send_u64(d, m->request, VU_PROTOCOL_OFFERED, why);
}

static int h_set_protocol_features(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	uint64_t pf;

	if (vu_get_u64(m, &pf, why) < 0) {
		return -EPROTO;
	}
	if (pf & ~VU_PROTOCOL_OFFERED) {
		*why = whyf(d, "protocol feature bits 0x%llx were not offered",
		            (unsigned long long)(pf & ~VU_PROTOCOL_OFFERED));
		return -EPROTO;
	}
	d->pfeatures = pf;
	return VU_OK;
}

static int h_get_queue_num(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	return send_u64(d, m->request, d->num_queues, why);
}

static int h_get_max_mem_slots(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	return send_u64(d, m->request, d->max_mem_slots, why);
}

/* "session start" flag only (spec: VHOST_USER_SET_OWNER). */
static int h_set_owner(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	return VU_OK;
}

/* ---- vrings ---- */

static bool vring_enabled(const struct vu_dev *d, const struct vu_vring *v)
{
	/* Ring states: without F_PROTOCOL_FEATURES a ring starts enabled. */
	return v->enabled || !(d->acked & BIT64(VHOST_USER_F_PROTOCOL_FEATURES));
}

static void vring_stop(struct vu_dev *d, struct vu_vring *v)
{
	if (!v->started) {
		return;
	}
	v->started = false;
	vb_watch_free(v->kick_w);
	v->kick_w = NULL;
	d->ops->queue_stop(d->arg, v->idx);
	v->base = v->vq.last_avail;
	virtq_fini(&v->vq);
	log_debug("vhost-user %s: queue %u stopped at %u", d->name, v->idx, v->base);
}

/* Back to the initial state (spec: RESET_DEVICE, and a new connection). */
static void vring_reset(struct vu_dev *d, struct vu_vring *v)
{
	vring_stop(d, v);
	close_fd(&v->kick_fd);
	close_fd(&v->call_fd);
	close_fd(&v->err_fd);
	v->num = 0;
	v->base = 0;
	v->addr_set = false;
	v->enabled = false;
}

static void vrings_reset(struct vu_dev *d)
{
	for (unsigned i = 0; i < d->num_queues; i++) {
		vring_reset(d, &d->vr[i]);
	}
}

static void kick_cb(int fd, unsigned events, void *arg)
{
	struct vu_vring *v = arg;
	struct vu_dev *d = v->d;
	uint64_t cnt;

	/* The counter only wakes us; its value means nothing (spec: Introduction). */
	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN) {
		log_debug("vhost-user %s: queue %u: kick read failed", d->name, v->idx);
	}
	dev_enter(d);
	d->ops->queue_kick(d->arg, v->idx);
	dev_leave(d);
}

static int vring_try_start(struct vu_dev *d, struct vu_vring *v, const char **why)
{
	bool event_idx = (d->acked & BIT64(VIRTIO_F_RING_EVENT_IDX)) != 0;
	int r;

	if (v->started || !v->addr_set || !v->num || v->kick_fd < 0 || !vring_enabled(d, v)) {
		return VU_OK;
	}
	memset(&v->vq, 0, sizeof(v->vq));
	r = virtq_init(&v->vq, &d->mem, (uint16_t)v->num, v->desc, v->avail, v->used, v->base,
	               event_idx);
	if (r < 0) {
		*why = whyf(d, "queue %u: %s", v->idx, v->vq.err);
		virtq_fini(&v->vq);
		return r;
	}
	v->kick_w = vb_watch_new(d->loop, v->kick_fd, VB_EV_READ, kick_cb, v);
	if (!v->kick_w) {
		virtq_fini(&v->vq);
		*why = "cannot watch the kick eventfd";
		return -ENOMEM;
	}
	v->started = true;
	log_debug("vhost-user %s: queue %u started (size %u, base %u)", d->name, v->idx, v->num,
	          v->base);
	d->ops->queue_start(d->arg, v->idx, &v->vq);
	return VU_OK;
}

/* Every per-vring index is checked at full width (CVE-2020-10723 truncated it). */
static struct vu_vring *vring_get(struct vu_dev *d, uint32_t idx, const char **why)
{
	if (idx >= d->num_queues) {
		*why = whyf(d, "vring index %u out of range (%u queues)", idx, d->num_queues);
		return NULL;
	}
	return &d->vr[idx];
}

static struct vu_vring *vring_state_get(struct vu_dev *d, struct vu_msg *m,
                                        struct vu_vring_state *s, const char **why)
{
	if (vu_get_vring_state(m, s, why) < 0) {
		return NULL;
	}
	return vring_get(d, s->index, why);
}

static int h_set_vring_num(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_state s;
	struct vu_vring *v = vring_state_get(d, m, &s, why);

	if (!v) {
		return -EPROTO;
	}
	if (v->started) {
		*why = "ring is running";
		return -EBUSY;
	}
	/* virtio 1.2, 2.7: Queue Size is a power of 2, at most 32768. */
	if (s.num == 0 || s.num > d->max_queue_size || (s.num & (s.num - 1))) {
		*why =
		    whyf(d, "ring size %u invalid (power of two, 1..%u)", s.num, d->max_queue_size);
		return -EPROTO;
	}
	v->num = s.num;
	return vring_try_start(d, v, why);
}

static int h_set_vring_base(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_state s;
	struct vu_vring *v = vring_state_get(d, m, &s, why);

	if (!v) {
		return -EPROTO;
	}
	if (v->started) {
		*why = "ring is running";
		return -EBUSY;
	}
	/* Split rings: the base is a 16-bit avail index (no packed wrap counter). */
	if (s.num > UINT16_MAX) {
		*why = whyf(d, "ring base %u out of range", s.num);
		return -EPROTO;
	}
	v->base = (uint16_t)s.num;
	return VU_OK;
}

static int h_set_vring_addr(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_addr a;
	struct vu_vring *v;

	if (vu_get_vring_addr(m, &a, why) < 0 || !(v = vring_get(d, a.index, why))) {
		return -EPROTO;
	}
	/* virtio 1.2, 2.7: desc 16, avail 2, used 4 byte alignment. The log flag is
	 * ignored: VHOST_F_LOG_ALL is never offered. */
	if ((a.desc & 15) || (a.avail & 1) || (a.used & 3)) {
		*why = "misaligned ring address";
		return -EPROTO;
	}
	v->desc = a.desc;
	v->avail = a.avail;
	v->used = a.used;
	v->addr_set = true;
	if (v->started && virtq_remap(&v->vq, v->desc, v->avail, v->used) < 0) {
		*why = whyf(d, "queue %u: %s", v->idx, v->vq.err);
		return -EPROTO;
	}
	return vring_try_start(d, v, why);
}

static struct vu_vring *vring_file_get(struct vu_dev *d, struct vu_msg *m, struct vu_vring_file *f,
                                       const char **why)
{
	if (vu_get_vring_file(m, f, why) < 0) {
		return NULL;
	}
	if (!f->nofd && (m->nfds != 1 || !fd_is_eventfd(m->fds[0]))) {
		*why = "fd is not an eventfd";
		return NULL;
	}
	return vring_get(d, f->index, why);
}

/* A running ring keeps running: only the watch moves to the new eventfd. */
static int vring_set_kick(struct vu_dev *d, struct vu_vring *v, int fd, const char **why)
{
	if (v->started) {
		struct vb_watch *w = vb_watch_new(d->loop, fd, VB_EV_READ, kick_cb, v);

		if (!w) {
			close(fd);
			*why = "cannot watch the kick eventfd";
			return -ENOMEM;
		}
		vb_watch_free(v->kick_w);
		v->kick_w = w;
	}
	close_fd(&v->kick_fd);
	v->kick_fd = fd;
	return vring_try_start(d, v, why);
}

static int h_set_vring_kick(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_file f;
	struct vu_vring *v = vring_file_get(d, m, &f, why);

	if (!v) {
		return -EPROTO;
	}
	if (f.nofd) {
		/* Spec: the invalid-FD flag asks for polling, which we do not do. */
		*why = "polling mode (no kick fd) is not supported";
		return -EPROTO;
	}
	if (set_nonblock(m->fds[0]) < 0) {
		*why = "cannot make the kick eventfd non-blocking";
		return -EPROTO;
	}
	return vring_set_kick(d, v, msg_take_fd(m), why);
}

/* Our copy shares the file description: O_NONBLOCK so a full counter never blocks us. */
static int vring_file_replace(struct vu_dev *d, struct vu_msg *m, const struct vu_vring_file *f,
                              int *slot, const char **why)
{
	if (!f->nofd && set_nonblock(m->fds[0]) < 0) {
		*why = "cannot make the eventfd non-blocking";
		return -EPROTO;
	}
	close_fd(slot);
	if (!f->nofd) {
		*slot = msg_take_fd(m);
	}
	return VU_OK;
}

static int h_set_vring_call(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_file f;
	struct vu_vring *v = vring_file_get(d, m, &f, why);

	return v ? vring_file_replace(d, m, &f, &v->call_fd, why) : -EPROTO;
}

static int h_set_vring_err(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_file f;
	struct vu_vring *v = vring_file_get(d, m, &f, why);

	return v ? vring_file_replace(d, m, &f, &v->err_fd, why) : -EPROTO;
}

static int h_set_vring_enable(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_state s;
	struct vu_vring *v = vring_state_get(d, m, &s, why);

	if (!v) {
		return -EPROTO;
	}
	if (s.num > 1) {
		*why = whyf(d, "enable value %u is not 0 or 1", s.num);
		return -EPROTO;
	}
	v->enabled = s.num == 1;
	if (!v->enabled) {
		vring_stop(d, v);
		return VU_OK;
	}
	return vring_try_start(d, v, why);
}

/*
 * Spec, Ring states: GET_VRING_BASE stops the ring. The kick fd goes with it
 * (the frontend sends a new one before restarting), so a stale kick cannot
 * restart it.
 */
static int h_get_vring_base(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_vring_state s;
	struct vu_vring *v = vring_state_get(d, m, &s, why);

	if (!v) {
		return -EPROTO;
	}
	vring_stop(d, v);
	close_fd(&v->kick_fd);
	s.num = v->base;
	vu_msg_init(&d->reply, m->request, VU_VERSION | VU_FLAG_REPLY);
	vu_put_vring_state(&d->reply, &s);
	return send_reply(d, why);
}

/* ---- memory ---- */

static bool part_mapped(const struct gmem *mem, uint64_t uaddr, size_t len)
{
	void *host;

	return gmem_uva(mem, uaddr, len, &host) == len;
}

static bool vring_fits(const struct vu_vring *v, const struct gmem *mem)
{
	uint16_t n = (uint16_t)v->num;

	return part_mapped(mem, v->desc, vring_desc_bytes(n)) &&
	       part_mapped(mem, v->avail, vring_avail_bytes(n)) &&
	       part_mapped(mem, v->used, vring_used_bytes(n));
}

/* [a, a+alen) and [b, b+blen) intersect; written so that no sum can overflow. */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return (a >= b && a - b < blen) || (b >= a && b - a < alen);
}

static bool vring_in_range(const struct vu_vring *v, uint64_t uaddr, uint64_t size)
{
	uint16_t n = (uint16_t)v->num;

	return ranges_overlap(v->desc, vring_desc_bytes(n), uaddr, size) ||
	       ranges_overlap(v->avail, vring_avail_bytes(n), uaddr, size) ||
	       ranges_overlap(v->used, vring_used_bytes(n), uaddr, size);
}

/*
 * A started ring whose memory is about to go away is stopped while it is
 * still mapped, so the owner's queue_stop never touches unmapped memory
 * (adversarial case 18).
 */
static void vrings_stop_unless_fit(struct vu_dev *d, const struct gmem *next)
{
	for (unsigned i = 0; i < d->num_queues; i++) {
		struct vu_vring *v = &d->vr[i];

		if (v->started && !vring_fits(v, next)) {
			log_warnx("vhost-user %s: queue %u: rings not mapped by the new memory "
			          "table; stopping it",
			          d->name, i);
			vring_stop(d, v);
		}
	}
}

static void vrings_stop_in_range(struct vu_dev *d, uint64_t uaddr, uint64_t size)
{
	for (unsigned i = 0; i < d->num_queues; i++) {
		struct vu_vring *v = &d->vr[i];

		if (v->started && vring_in_range(v, uaddr, size)) {
			log_warnx("vhost-user %s: queue %u: its rings are in a removed region; "
			          "stopping it",
			          d->name, i);
			vring_stop(d, v);
		}
	}
}

/* Host pointers of started rings are re-derived after every table change. */
static void vrings_remap(struct vu_dev *d)
{
	for (unsigned i = 0; i < d->num_queues; i++) {
		struct vu_vring *v = &d->vr[i];

		if (v->started && virtq_remap(&v->vq, v->desc, v->avail, v->used) < 0) {
			log_warnx("vhost-user %s: queue %u: %s; stopping it", d->name, i,
			          v->vq.err);
			vring_stop(d, v);
		}
	}
}

static int mem_add(struct gmem *mem, const struct vu_mem_region *r, int fd, const char **why)
{
	int ret = gmem_check(mem, r->gpa, r->size, r->uaddr, r->mmap_offset, why);

	if (ret < 0) {
		return ret;
	}
	return gmem_add_fd(mem, r->gpa, r->size, r->uaddr, r->mmap_offset, fd, why);
}

/* SET_MEM_TABLE replaces the whole table: the new one is mapped before the old goes. */
static int h_set_mem_table(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_mem_table t;
	struct gmem next, old;
	int r;

	if (vu_get_mem_table(m, &t, why) < 0) {
		return -EPROTO;
	}
	gmem_init(&next);
	for (uint32_t i = 0; i < t.nregions; i++) {
		r = mem_add(&next, &t.r[i], m->fds[i], why);
		if (r < 0) {
			gmem_clear(&next);
			return r;
		}
	}
	vrings_stop_unless_fit(d, &next);
	/* Moved, not copied: the SIGBUS guards must report into d->mem (sigbus.h). */
	gmem_move(&old, &d->mem);
	gmem_move(&d->mem, &next);
	/* A fault in the old memory (queue_stop above touches rings) still ends the session. */
	d->mem.fault |= old.fault;
	vrings_remap(d);
	gmem_clear(&old);
	return VU_OK;
}

static int h_add_mem_reg(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_mem_region r;
	int ret;

	if (vu_get_mem_region(m, &r, why) < 0) {
		return -EPROTO;
	}
	if (m->nfds != 1) {
		*why = "expected exactly one fd";
		return -EPROTO;
	}
	if (d->mem.nregions >= d->max_mem_slots) {
		*why = whyf(d, "all %u memory slots in use", d->max_mem_slots);
		return -ENOSPC;
	}
	ret = mem_add(&d->mem, &r, m->fds[0], why);
	if (ret < 0) {
		return ret;
	}
	vrings_remap(d);
	return VU_OK;
}

/*
 * Spec, REM_MEM_REG: identified by guest address, user address and size; the
 * mmap offset is ignored. QEMU 7.2 still attaches the region's fd: the
 * dispatcher closes it unused, as the spec asks.
 */
static int h_rem_mem_reg(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_mem_region r;

	if (vu_get_mem_region(m, &r, why) < 0) {
		return -EPROTO;
	}
	vrings_stop_in_range(d, r.uaddr, r.size);
	if (gmem_remove(&d->mem, r.gpa, r.size, r.uaddr) < 0) {
		log_warnx("vhost-user %s: %s: no region gpa 0x%llx size 0x%llx uaddr 0x%llx",
		          d->name, vu_request_name(m->request), (unsigned long long)r.gpa,
		          (unsigned long long)r.size, (unsigned long long)r.uaddr);
		return VU_NACK;
	}
	vrings_remap(d);
	return VU_OK;
}

/* ---- config space, backend channel, reset ---- */

/* Spec, GET_CONFIG: a reply with a zero-length payload tells the frontend it failed. */
static int h_get_config(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_config c;
	bool ok;

	if (vu_get_config(m, &c, why) < 0) {
		return -EPROTO;
	}
	ok = c.offset <= VU_MAX_CONFIG - c.size &&
	     d->ops->get_config(d->arg, c.offset, c.data, c.size) == 0;
	vu_msg_init(&d->reply, m->request, VU_VERSION | VU_FLAG_REPLY);
	if (ok) {
		vu_put_config(&d->reply, &c);
	} else {
		log_warnx("vhost-user %s: GET_CONFIG offset %u size %u failed", d->name, c.offset,
		          c.size);
		d->reply.size = 0;
	}
	return send_reply(d, why);
}

static int h_set_config(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	struct vu_config c;

	if (vu_get_config(m, &c, why) < 0) {
		return -EPROTO;
	}
	if (c.flags > VU_CONFIG_FLAGS_MAX || c.offset > VU_MAX_CONFIG - c.size ||
	    d->ops->set_config(d->arg, c.offset, c.data, c.size) < 0) {
		log_warnx("vhost-user %s: SET_CONFIG offset %u size %u flags %u refused", d->name,
		          c.offset, c.size, c.flags);
		return VU_NACK;
	}
	return VU_OK;
}

static void backend_close(struct vu_dev *d)
{
	vb_watch_free(d->backend_w);
	d->backend_w = NULL;
	close_fd(&d->backend_fd);
}

/* We never set NEED_REPLY there, so anything the frontend sends is discarded. */
static void backend_cb(int fd, unsigned events, void *arg)
{
	struct vu_dev *d = arg;
	uint8_t buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		log_info("vhost-user %s: backend channel closed by the frontend", d->name);
		backend_close(d);
	}
}

static int h_set_backend_req_fd(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	if (m->nfds != 1 || !fd_is_socket(m->fds[0])) {
		*why = "backend channel fd is not a socket";
		return -EPROTO;
	}
	if (set_nonblock(m->fds[0]) < 0) {
		*why = "cannot make the backend channel non-blocking";
		return -EPROTO;
	}
	backend_close(d);
	d->backend_fd = msg_take_fd(m);
	d->backend_w = vb_watch_new(d->loop, d->backend_fd, VB_EV_READ, backend_cb, d);
	if (!d->backend_w) {
		close_fd(&d->backend_fd);
		*why = "cannot watch the backend channel";
		return -ENOMEM;
	}
	return VU_OK;
}

/*
 * RESET_OWNER is deprecated ("use it to disable all rings"), RESET_DEVICE
 * resets device state; both stop and forget every ring. Memory and the
 * negotiated features stay: QEMU sends them again before the next start.
 */
static int h_reset(struct vu_dev *d, struct vu_msg *m, const char **why)
{
	vrings_reset(d);
	d->ops->reset(d->arg);
	return VU_OK;
}

/* ---- dispatch ---- */

static const struct vu_handler vu_handlers[] = {
    {VHOST_USER_GET_FEATURES, -1, true, h_get_features},
    {VHOST_USER_SET_FEATURES, -1, false, h_set_features},
    {VHOST_USER_SET_OWNER, -1, false, h_set_owner},
    {VHOST_USER_RESET_OWNER, -1, false, h_reset},
    {VHOST_USER_SET_MEM_TABLE, -1, false, h_set_mem_table},
    {VHOST_USER_SET_VRING_NUM, -1, false, h_set_vring_num},
    {VHOST_USER_SET_VRING_ADDR, -1, false, h_set_vring_addr},
    {VHOST_USER_SET_VRING_BASE, -1, false, h_set_vring_base},
    {VHOST_USER_GET_VRING_BASE, -1, true, h_get_vring_base},
    {VHOST_USER_SET_VRING_KICK, -1, false, h_set_vring_kick},
    {VHOST_USER_SET_VRING_CALL, -1, false, h_set_vring_call},
    {VHOST_USER_SET_VRING_ERR, -1, false, h_set_vring_err},
    {VHOST_USER_GET_PROTOCOL_FEATURES, -1, true, h_get_protocol_features},
    {VHOST_USER_SET_PROTOCOL_FEATURES, -1, false, h_set_protocol_features},
    {VHOST_USER_GET_QUEUE_NUM, -1, true, h_get_queue_num},
    {VHOST_USER_SET_VRING_ENABLE, -1, false, h_set_vring_enable},
    {VHOST_USER_SET_BACKEND_REQ_FD, VU_PF_BACKEND_REQ, false, h_set_backend_req_fd},
    {VHOST_USER_GET_CONFIG, VU_PF_CONFIG, true, h_get_config},
    {VHOST_USER_SET_CONFIG, VU_PF_CONFIG, false, h_set_config},
    {VHOST_USER_RESET_DEVICE, VU_PF_RESET_DEVICE, false, h_reset},
    {VHOST_USER_GET_MAX_MEM_SLOTS, VU_PF_CONFIGURE_MEM_SLOTS, true, h_get_max_mem_slots},
    {VHOST_USER_ADD_MEM_REG, VU_PF_CONFIGURE_MEM_SLOTS, false, h_add_mem_reg},
    {VHOST_USER_REM_MEM_REG, VU_PF_CONFIGURE_MEM_SLOTS, false, h_rem_mem_reg},
};

static const struct vu_handler *handler_find(const struct vu_dev *d, uint32_t request,
                                             const char **why)
{
	for (size_t i = 0; i < ARRAY_SIZE(vu_handlers); i++) {
		const struct vu_handler *h = &vu_handlers[i];

		if (h->request != request) {
			continue;
		}
		/* Gated requests are legal only once their protocol feature was negotiated. */
		if (h->pf >= 0 && !pf_negotiated(d, h->pf)) {
			*why = "protocol feature not negotiated";
			return NULL;
		}
		return h;
	}
	*why = "unsupported request";
	return NULL;
}

static void proto_error(struct vu_dev *d, const char *what, const char *why)
{
	char reason[sizeof(d->reason)];

	snprintf(reason, sizeof(reason), "%s: %s", what, why ? why : "error");
	log_warnx("vhost-user %s: %s; closing connection", d->name, reason);
	conn_drop(d, reason);
}

/* Spec, REPLY_ACK: exactly one u64 reply, 0 on success, non-zero on failure. */
static int send_ack(struct vu_dev *d, const struct vu_msg *m, int r, const char **why)
{
	if (!(m->flags & VU_FLAG_NEED_REPLY) || d->conn_fd < 0) {
		return 0;
	}
	return send_u64(d, m->request, r == VU_OK ? 0 : 1, why);
}

static void msg_dispatch(struct vu_dev *d, struct vu_msg *m)
{
	const struct vu_handler *h = NULL;
	const char *why = NULL;
	int r;

	r = vu_msg_check_request(m, &why);
	if (r == 0) {
		h = handler_find(d, m->request, &why);
		r = h ? h->fn(d, m, &why) : -EPROTO;
	}
	if (!h || !h->has_reply) {
		const char *swhy = NULL;

		if (send_ack(d, m, r, &swhy) < 0 && r >= 0) {
			r = -EIO;
			why = swhy;
		}
	}
	msg_close_fds(m);
	if (r < 0) {
		proto_error(d, vu_request_name(m->request), why);
	} else if (r == VU_NACK) {
		log_debug("vhost-user %s: %s refused", d->name, vu_request_name(m->request));
	}
}

static void conn_read_cb(int fd, unsigned events, void *arg)
{
	struct vu_dev *d = arg;
	const char *why = NULL;

	dev_enter(d);
	for (int n = 0; n < VU_DEV_MSGS_PER_WAKEUP && !d->drop_pending; n++) {
		int r = vu_rx_read(fd, &d->rx, &why);

		if (r == 0) {
			break;
		}
		if (r == -ECONNRESET) {
			log_info("vhost-user %s: frontend closed the connection", d->name);
			conn_drop(d, "frontend closed the connection");
			break;
		}
		if (r < 0) {
			proto_error(d, "receive", why);
			break;
		}
		msg_dispatch(d, &d->msg);
	}
	dev_leave(d);
}

/* The only place a frontend session ends (STYLE.md practice 7). */
static void conn_teardown(struct vu_dev *d)
{
	d->closing = true;
	vrings_reset(d);
	gmem_clear(&d->mem);
	backend_close(d);
	vu_rx_reset(&d->rx);
	vb_watch_free(d->conn_w);
	d->conn_w = NULL;
	close_fd(&d->conn_fd);
	d->acked = 0;
	d->pfeatures = 0;
	d->drop_pending = false;
	d->ops->disconnected(d->arg, d->reason);
	d->closing = false;
}

static int conn_open(struct vu_dev *d, int fd)
{
	d->conn_w = vb_watch_new(d->loop, fd, VB_EV_READ, conn_read_cb, d);
	if (!d->conn_w) {
		return -ENOMEM;
	}
	d->conn_fd = fd;
	d->reason[0] = '\0';
	vu_rx_init(&d->rx, &d->msg, false);
	d->msg.nfds = 0;
	gmem_init(&d->mem);
	d->ops->connected(d->arg);
	return 0;
}

static void log_peer(const struct vu_dev *d, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		log_info("vhost-user %s: frontend connected (pid %d uid %u)", d->name,
		         (int)cred.pid, (unsigned)cred.uid);
	} else {
		log_info("vhost-user %s: frontend connected", d->name);
	}
}

static void accept_cb(int lfd, unsigned events, void *arg)
{
	struct vu_dev *d = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		/* Out of fds the listener stays readable: pause it rather than spin. */
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
			log_warn("vhost-user %s: accept", d->name);
			vb_watch_set(d->listen_w, 0);
			vb_timer_arm(d->accept_retry, VU_DEV_ACCEPT_RETRY_NS);
		}
		return;
	}
	/* One frontend owns the device (spec: SET_OWNER); others are turned away. */
	if (d->conn_fd >= 0) {
		log_warnx("vhost-user %s: refusing a second frontend while one is connected",
		          d->name);
		close(fd);
		return;
	}
	log_peer(d, fd);
	dev_enter(d);
	if (conn_open(d, fd) < 0) {
		log_warnx("vhost-user %s: cannot watch the new connection", d->name);
		close(fd);
	}
	dev_leave(d);
}

static void accept_retry_cb(void *arg)
{
	struct vu_dev *d = arg;

	vb_watch_set(d->listen_w, VB_EV_READ);
}

/* ---- listening socket ---- */

/* Replace a stale socket file, never anything else that happens to be there. */
static int unlink_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	if (unlink(path) < 0) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static int listen_open(struct vu_dev *d, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	memcpy(sa.sun_path, d->path, sizeof(d->path));
	r = unlink_stale(d->path, err, errlen);
	if (r < 0) {
		if (!err[0]) {
			snprintf(err, errlen, "%s: %s", d->path, strerror(-r));
		}
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	/* chmod before listen(): nobody can connect while the mode is still wider. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(d->path, 0660) < 0 ||
	    listen(fd, VU_DEV_LISTEN_BACKLOG) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", d->path, strerror(errno));
		close(fd);
		return r;
	}
	d->listen_fd = fd;
	return 0;
}

static int params_check(const struct vu_dev_params *p, char *err, size_t errlen)
{
	if (!p->path || !p->path[0] ||
	    strlen(p->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "socket path missing or longer than %zu bytes",
		         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -EINVAL;
	}
	if (p->num_queues < 1 || p->num_queues > VU_DEV_MAX_QUEUES) {
		snprintf(err, errlen, "number of queues %u out of range 1..%u", p->num_queues,
		         VU_DEV_MAX_QUEUES);
		return -EINVAL;
	}
	/* Any maximum will do (virtio-pci queue_num_max need not be a power of two). */
	if (p->max_queue_size < 1 || p->max_queue_size > VIRTQ_MAX_SIZE) {
		snprintf(err, errlen, "max queue size %u out of range 1..%u", p->max_queue_size,
		         VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	if (p->max_mem_slots < 1 || p->max_mem_slots > GMEM_MAX_REGIONS) {
		snprintf(err, errlen, "max memory slots %u out of range 1..%u", p->max_mem_slots,
		         GMEM_MAX_REGIONS);
		return -EINVAL;
	}
	return 0;
}

static void dev_init(struct vu_dev *d, struct vb_loop *loop, const struct vu_dev_params *p,
                     const struct vu_dev_ops *ops, void *arg)
{
	d->loop = loop;
	d->ops = ops;
	d->arg = arg;
	snprintf(d->path, sizeof(d->path), "%s", p->path);
	snprintf(d->name, sizeof(d->name), "%s", p->name ? p->name : p->path);
	d->num_queues = p->num_queues;
	d->max_queue_size = p->max_queue_size;
	d->max_mem_slots = p->max_mem_slots;
	d->listen_fd = d->conn_fd = d->backend_fd = -1;
	gmem_init(&d->mem);
	for (unsigned i = 0; i < VU_DEV_MAX_QUEUES; i++) {
		struct vu_vring *v = &d->vr[i];

		v->d = d;
		v->idx = i;
		v->kick_fd = v->call_fd = v->err_fd = -1;
	}
}

struct vu_dev *vu_dev_new(struct vb_loop *loop, const struct vu_dev_params *p,
                          const struct vu_dev_ops *ops, void *arg, char *err, size_t errlen)
{
	struct vu_dev *d;

	err[0] = '\0';
	if (params_check(p, err, errlen) < 0) {
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dev_init(d, loop, p, ops, arg);
	if (listen_open(d, err, errlen) < 0) {
		free(d);
		return NULL;
	}
	d->listen_w = vb_watch_new(loop, d->listen_fd, VB_EV_READ, accept_cb, d);
	d->accept_retry = vb_timer_new(loop, accept_retry_cb, d);
	if (!d->listen_w || !d->accept_retry) {
		snprintf(err, errlen, "cannot watch %s", d->path);
		vb_watch_free(d->listen_w);
		vb_timer_free(d->accept_retry);
		close(d->listen_fd);
		unlink(d->path);
		free(d);
		return NULL;
	}
	log_info("vhost-user %s: listening on %s", d->name, d->path);
	return d;
}

void vu_dev_free(struct vu_dev *d)
{
	if (!d) {
		return;
	}
	if (d->conn_fd >= 0) {
		snprintf(d->reason, sizeof(d->reason), "shutting down");
		conn_teardown(d);
	}
	vb_timer_free(d->accept_retry);
	vb_watch_free(d->listen_w);
	close_fd(&d->listen_fd);
	unlink(d->path);
	free(d);
}

/* ---- owner API ---- */

void vu_dev_notify(struct vu_dev *d, unsigned q)
{
	struct vu_vring *v;
	uint64_t one = 1;

	if (q >= d->num_queues) {
		return;
	}
	v = &d->vr[q];
	if (!v->started || v->call_fd < 0 || !virtq_should_notify(&v->vq)) {
		return;
	}
	/* EAGAIN: the counter is saturated, the frontend has a wakeup pending anyway. */
	if (write(v->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
		log_debug("vhost-user %s: queue %u: call write failed", d->name, q);
	}
}

int vu_dev_config_changed(struct vu_dev *d)
{
	int r;

	if (d->backend_fd < 0 || !pf_negotiated(d, VU_PF_CONFIG)) {
		return -ENOTCONN;
	}
	/* Spec, Back-end message types: no NEED_REPLY, so nothing to wait for. */
	vu_msg_init(&d->bmsg, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, VU_VERSION);
	d->bmsg.nfds = 0;
	r = vu_send(d->backend_fd, &d->bmsg, VU_DEV_REPLY_TIMEOUT_MS);
	if (r < 0) {
		log_warnx("vhost-user %s: CONFIG_CHANGE_MSG: %s; closing the backend channel",
		          d->name, strerror(-r));
		backend_close(d);
	}
	return r;
}

void vu_dev_disconnect(struct vu_dev *d, const char *reason)
{
	if (d->conn_fd < 0 || d->closing) {
		return;
	}
	log_warnx("vhost-user %s: %s; closing connection", d->name, reason);
	conn_drop(d, reason);
}

bool vu_dev_connected(const struct vu_dev *d)
{
	return d->conn_fd >= 0;
}

const struct gmem *vu_dev_mem(const struct vu_dev *d)
{
	return &d->mem;
}

uint64_t vu_dev_acked_features(const struct vu_dev *d)
{
	return d->acked;
}
