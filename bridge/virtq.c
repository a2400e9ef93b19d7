/*
 * Split virtqueue engine (virtio 1.2, section 2.7), device and driver role.
 *
 * The other side of a ring is a peer we do not trust: the guest (device
 * role) or a device backend (driver role). Every index it writes is bounded
 * by the queue size before use, every descriptor is copied out once and
 * checked on the copy (a guest rewriting it meanwhile cannot change what we
 * checked, CVE-2020-14375 class), every walk is bounded so a loop stops.
 *
 * Ring indices are shared 16-bit words written by one side while the other
 * reads them: they are accessed with __atomic builtins so that each access is
 * one untorn load or store the compiler cannot repeat or merge, and with the
 * acquire/release/full ordering the spec's memory barriers ask for (2.7.13,
 * 2.7.14). The rest of the ring contents is ordered by those accesses.
 */
#include "bridge/virtq.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/log.h"
#include "bridge/util.h"

/* virtio 1.x rings are little-endian (2.7); descriptors are used as laid out. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vbridge needs a little-endian host");
_Static_assert(sizeof(struct vring_desc) == 16, "virtq_desc is 16 bytes (2.7.5)");
_Static_assert(sizeof(struct vring_used_elem) == 8, "virtq_used_elem is 8 bytes (2.7.8)");

#define VRING_PAGE 4096u

/* ---- shared index access ---- */

static inline uint16_t idx_load(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Pairs with the producer's release of the index: entries behind it are complete. */
static inline uint16_t idx_load_acquire(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void idx_store(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Everything written before (descriptors, ring entries, buffer bytes) is visible first. */
static inline void idx_store_release(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/*
 * Store-load ordering: our index or suppression store must be visible before
 * we read the other side's, or both sides can decide the other will notify
 * and a buffer sits unseen (2.7.7.2, 2.7.10.2 "not synchronized").
 */
static inline void full_barrier(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	/* Entries went to indices old..new-1; did one of them land on event? */
	return (uint16_t)(event - old_idx) < (uint16_t)(new_idx - old_idx);
}

size_t vring_desc_bytes(uint16_t num)
{
	return sizeof(struct vring_desc) * num;
}

size_t vring_avail_bytes(uint16_t num)
{
	return 4 + 2 * (size_t)num + 2;
}

size_t vring_used_bytes(uint16_t num)
{
	return 4 + sizeof(struct vring_used_elem) * num + 2;
}

static bool num_valid(uint16_t num)
{
	return num != 0 && num <= VIRTQ_MAX_SIZE && (num & (num - 1)) == 0;
}

/* avail: flags, idx, ring[num], used_event. used: flags, idx, ring[num], avail_event. */
static inline uint16_t *avail_ring(uint16_t *avail, uint16_t num, uint16_t slot)
{
	return &avail[2 + (slot & (num - 1))];
}

static inline uint16_t *used_event_of(uint16_t *avail, uint16_t num)
{
	return &avail[2 + num];
}

static inline struct vring_used_elem *used_elem(uint16_t *used, uint16_t num, uint16_t slot)
{
	return (struct vring_used_elem *)&used[2] + (slot & (num - 1));
}

static inline uint16_t *avail_event_of(uint16_t *used, uint16_t num)
{
	return &used[2 + 4 * (size_t)num];
}

/* ---- device role ---- */

__attribute__((format(printf, 2, 3))) static int vq_broken(struct virtq *vq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vq->err, sizeof(vq->err), fmt, ap);
	va_end(ap);
	vq->broken = true;
	log_warnx("virtq: guest broke the ring: %s", vq->err);
	return -EPROTO;
}

struct ring_part {
	const char *name;
	uint64_t uaddr;
	size_t bytes;
	size_t align; /* 2.7 "Alignment requirements": desc 16, avail 2, used 4 */
	void **out;
};

static int map_part(struct virtq *vq, const struct ring_part *p)
{
	void *host;

	if (p->uaddr % p->align != 0) {
		snprintf(vq->err, sizeof(vq->err), "%s ring at 0x%" PRIx64 " is misaligned",
		         p->name, p->uaddr);
		return -EINVAL;
	}
	if (gmem_uva(vq->mem, p->uaddr, p->bytes, &host) < p->bytes) {
		snprintf(vq->err, sizeof(vq->err),
		         "%s ring at 0x%" PRIx64 " (+%zu) is not inside one memory region", p->name,
		         p->uaddr, p->bytes);
		return -EFAULT;
	}
	if ((uintptr_t)host % p->align != 0) {
		snprintf(vq->err, sizeof(vq->err), "%s ring is misaligned in our mapping", p->name);
		return -EINVAL;
	}
	*p->out = host;
	return 0;
}

/* The event fields exist in guest memory only when EVENT_IDX was negotiated. */
static int map_rings(struct virtq *vq, uint64_t desc_uaddr, uint64_t avail_uaddr,
                     uint64_t used_uaddr, void **desc, void **avail, void **used)
{
	size_t ev = vq->event_idx ? 0 : 2;
	const struct ring_part parts[] = {
	    {"descriptor", desc_uaddr, vring_desc_bytes(vq->num), 16, desc},
	    {"available", avail_uaddr, vring_avail_bytes(vq->num) - ev, 2, avail},
	    {"used", used_uaddr, vring_used_bytes(vq->num) - ev, 4, used},
	};

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		int rc = map_part(vq, &parts[i]);

		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

int virtq_init(struct virtq *vq, const struct gmem *mem, uint16_t num, uint64_t desc_uaddr,
               uint64_t avail_uaddr, uint64_t used_uaddr, uint16_t base, bool event_idx)
{
	void *desc, *avail, *used;
	int rc;

	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->num = num;
	vq->event_idx = event_idx;
	vq->broken = true; /* until set up */
	if (!num_valid(num)) {
		snprintf(vq->err, sizeof(vq->err), "queue size %u is not a power of two <= %u", num,
		         VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	rc = map_rings(vq, desc_uaddr, avail_uaddr, used_uaddr, &desc, &avail, &used);
	if (rc < 0) {
		return rc;
	}
	/* Room for a chain of num descriptors, some of them split at region ends. */
	vq->scratch_max = 2 * num + 16;
	vq->scratch = calloc((size_t)vq->scratch_max, sizeof(*vq->scratch));
	if (vq->scratch == NULL) {
		snprintf(vq->err, sizeof(vq->err), "out of memory");
		return -ENOMEM;
	}
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->last_avail = base;
	/* 2.7.8: the used index is the guest's view; resync from it on (re)start. */
	vq->used_idx = idx_load(&vq->used[1]);
	vq->broken = false;
	return 0;
}

int virtq_remap(struct virtq *vq, uint64_t desc_uaddr, uint64_t avail_uaddr, uint64_t used_uaddr)
{
	void *desc, *avail, *used;
	int rc;

	rc = map_rings(vq, desc_uaddr, avail_uaddr, used_uaddr, &desc, &avail, &used);
	if (rc < 0) {
		/* The old pointers may point into unmapped memory now. */
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		vq->broken = true;
		return rc;
	}
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	return 0;
}

void virtq_fini(struct virtq *vq)
{
	free(vq->scratch);
	vq->scratch = NULL;
	vq->scratch_max = 0;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->mem = NULL;
	vq->broken = true;
	snprintf(vq->err, sizeof(vq->err), "queue stopped");
}

/*
 * One copy of a descriptor out of shared memory; the compiler barrier keeps
 * the compiler from reading the guest's copy again instead of ours.
 */
static void desc_copy_done(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void desc_read(const struct vring_desc *src, struct vring_desc *d)
{
	memcpy(d, src, sizeof(*d));
	desc_copy_done();
}

/*
 * Indirect tables are guest buffers like any other: they may cross a region
 * boundary, so each descriptor is copied through the translation, in pieces
 * if it straddles one (never assume the table is contiguous in our mapping).
 */
static int desc_read_gpa(const struct gmem *mem, uint64_t gpa, struct vring_desc *d)
{
	uint8_t raw[sizeof(*d)];
	size_t done = 0;

	while (done < sizeof(raw)) {
		void *host;
		uint64_t got = gmem_gpa(mem, gpa + done, sizeof(raw) - done, &host);

		if (got == 0) {
			return -EFAULT;
		}
		memcpy(raw + done, host, (size_t)got);
		done += (size_t)got;
	}
	desc_copy_done();
	memcpy(d, raw, sizeof(*d));
	return 0;
}

struct walk {
	struct virtq *vq;
	struct virtq_chain *c;
	uint64_t total; /* bytes, readable and writable */
	unsigned nbuf;  /* buffer descriptors, indirect ones included */
	int nseg;
};

/* A buffer descriptor: checks, then its segments appended to the scratch iovec. */
static int walk_buf(struct walk *w, const struct vring_desc *d)
{
	struct virtq *vq = w->vq;
	struct virtq_chain *c = w->c;
	bool wr = (d->flags & VRING_DESC_F_WRITE) != 0;
	int before = w->nseg, rc;

	if (d->len == 0) {
		return vq_broken(vq, "head %u: zero-length descriptor", c->head);
	}
	/* 2.7.4: device-readable descriptors come before device-writable ones. */
	if (!wr && c->nwr > 0) {
		return vq_broken(vq, "head %u: readable descriptor after a writable one", c->head);
	}
	/* 2.7.5.3.1: no chain longer than the queue size, indirect tables included. */
	if (++w->nbuf > vq->num) {
		return vq_broken(vq, "head %u: chain has more than %u descriptors", c->head,
		                 vq->num);
	}
	/* 2.7.5.1: a chain is less than 2^32 bytes, so lengths fit in the used len. */
	w->total += d->len;
	if (w->total > UINT32_MAX) {
		return vq_broken(vq, "head %u: chain length reaches 2^32", c->head);
	}
	rc = gmem_iov(vq->mem, d->addr, d->len, vq->scratch, &w->nseg, vq->scratch_max);
	if (rc == -EFAULT) {
		return vq_broken(vq, "head %u: buffer 0x%" PRIx64 "+%u is not in guest memory",
		                 c->head, d->addr, d->len);
	}
	if (rc < 0) {
		return vq_broken(vq, "head %u: chain needs more than %d segments", c->head,
		                 vq->scratch_max);
	}
	if (wr) {
		c->nwr += w->nseg - before;
		c->wr_len += d->len;
	} else {
		c->nrd += w->nseg - before;
		c->rd_len += d->len;
	}
	return 0;
}

static int indirect_check(struct walk *w, const struct vring_desc *d)
{
	struct virtq *vq = w->vq;
	uint16_t head = w->c->head;

	/* 2.7.5.3.1: a driver MUST NOT set both INDIRECT and NEXT. */
	if (d->flags & VRING_DESC_F_NEXT) {
		return vq_broken(vq, "head %u: indirect descriptor with NEXT", head);
	}
	if (d->len == 0 || d->len % sizeof(struct vring_desc) != 0) {
		return vq_broken(vq, "head %u: indirect table length %u is not a multiple of 16",
		                 head, d->len);
	}
	if (d->len / sizeof(struct vring_desc) > vq->num) {
		return vq_broken(vq, "head %u: indirect table of %zu entries exceeds queue size %u",
		                 head, d->len / sizeof(struct vring_desc), vq->num);
	}
	if (d->addr > UINT64_MAX - d->len) {
		return vq_broken(vq, "head %u: indirect table address wraps", head);
	}
	return 0;
}

/* 2.7.5.3: the table's chain starts at entry 0 and follows next inside the table. */
static int walk_indirect(struct walk *w, const struct vring_desc *d)
{
	struct virtq *vq = w->vq;
	uint16_t head = w->c->head;
	unsigned n, i = 0;
	struct vring_desc e;
	int rc;

	rc = indirect_check(w, d);
	if (rc < 0) {
		return rc;
	}
	n = d->len / sizeof(struct vring_desc);
	for (unsigned hops = 1;; hops++) {
		if (hops > n) {
			return vq_broken(vq, "head %u: loop in indirect table", head);
		}
		if (desc_read_gpa(vq->mem, d->addr + (uint64_t)i * sizeof(e), &e) < 0) {
			return vq_broken(
			    vq, "head %u: indirect table 0x%" PRIx64 " not in guest memory", head,
			    d->addr);
		}
		/* 2.7.5.3.1: only one table per descriptor. */
		if (e.flags & VRING_DESC_F_INDIRECT) {
			return vq_broken(vq, "head %u: INDIRECT inside an indirect table", head);
		}
		rc = walk_buf(w, &e);
		if (rc < 0 || !(e.flags & VRING_DESC_F_NEXT)) {
			return rc;
		}
		if (e.next >= n) {
			return vq_broken(vq, "head %u: indirect next %u beyond table of %u", head,
			                 e.next, n);
		}
		i = e.next;
	}
}

/*
 * Direct descriptors, optionally ending in one indirect descriptor (2.7.5.3.2:
 * the device must handle normal descriptors followed by a single indirect one).
 */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	struct walk w = {.vq = vq, .c = c};
	struct vring_desc d;
	uint16_t i = head;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->head = head;
	c->iov = vq->scratch;
	for (unsigned hops = 1;; hops++) {
		if (hops > vq->num) {
			return vq_broken(vq, "head %u: descriptor loop (more than %u hops)", head,
			                 vq->num);
		}
		desc_read(&vq->desc[i], &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			rc = walk_indirect(&w, &d);
			break;
		}
		rc = walk_buf(&w, &d);
		if (rc < 0 || !(d.flags & VRING_DESC_F_NEXT)) {
			break;
		}
		if (d.next >= vq->num) {
			return vq_broken(vq, "head %u: next %u beyond queue size %u", head, d.next,
			                 vq->num);
		}
		i = d.next;
	}
	c->ndesc = (uint16_t)w.nbuf;
	return rc;
}

/*
 * With EVENT_IDX and kicks wanted, ask for a kick at the next entry, then look
 * again: a buffer added before our store reached the guest would get no kick.
 */
static uint16_t avail_idx_rearm(struct virtq *vq, uint16_t avail_idx)
{
	if (avail_idx != vq->last_avail || !vq->event_idx || vq->kick_off) {
		return avail_idx;
	}
	idx_store(avail_event_of(vq->used, vq->num), vq->last_avail);
	full_barrier();
	return idx_load_acquire(&vq->avail[1]);
}

int virtq_pop(struct virtq *vq, struct virtq_chain *c)
{
	uint16_t avail_idx, pending, head;
	int rc;

	if (vq->broken) {
		return -EPROTO;
	}
	avail_idx = avail_idx_rearm(vq, idx_load_acquire(&vq->avail[1]));
	pending = (uint16_t)(avail_idx - vq->last_avail);
	/* 2.7.6: the driver can be at most num entries ahead of us. */
	if (pending > vq->num) {
		return vq_broken(vq, "avail idx %u is %u ahead of %u (queue size %u)", avail_idx,
		                 pending, vq->last_avail, vq->num);
	}
	if (pending == 0) {
		return 0;
	}
	if (vq->inflight >= vq->num) {
		return vq_broken(vq, "more than %u chains in flight", vq->num);
	}
	head = idx_load(avail_ring(vq->avail, vq->num, vq->last_avail));
	if (head >= vq->num) {
		return vq_broken(vq, "head %u beyond queue size %u", head, vq->num);
	}
	rc = walk_chain(vq, head, c);
	if (rc < 0) {
		return rc;
	}
	vq->last_avail++;
	vq->inflight++;
	return 1;
}

int virtq_walk(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	if (vq->broken) {
		return -EPROTO;
	}
	if (head >= vq->num) {
		return vq_broken(vq, "head %u beyond queue size %u", head, vq->num);
	}
	return walk_chain(vq, head, c);
}

int virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e;

	if (vq->broken) {
		return -EPROTO;
	}
	if (head >= vq->num || vq->inflight == 0) {
		log_warnx("virtq: push of head %u with %u in flight", head, vq->inflight);
		return -EINVAL;
	}
	e = used_elem(vq->used, vq->num, vq->used_idx);
	__atomic_store_n(&e->id, head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* 2.7.8.1: len (and the bytes written) before the used index moves. */
	idx_store_release(&vq->used[1], vq->used_idx);
	vq->inflight--;
	return 0;
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_valid;

	if (vq->broken) {
		return false;
	}
	full_barrier();
	if (!vq->event_idx) {
		/* 2.7.7.2: flags 1 means the driver does not want interrupts. */
		if ((valid && old == vq->used_idx) ||
		    (idx_load(&vq->avail[0]) & VRING_AVAIL_F_NO_INTERRUPT)) {
			return false;
		}
		vq->signalled_used = vq->used_idx;
		vq->signalled_valid = true;
		return true;
	}
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (!valid) {
		return true;
	}
	return virtq_need_event(idx_load(used_event_of(vq->avail, vq->num)), vq->used_idx, old);
}

bool virtq_kick_enable(struct virtq *vq, bool enable)
{
	if (vq->broken) {
		return false;
	}
	vq->kick_off = !enable;
	if (vq->event_idx) {
		/*
		 * 2.7.10: flags must stay 0. Off: point avail_event at the entry
		 * just consumed; a well-behaved driver is at most num ahead of
		 * us, so it does not come round to it while kicks are off.
		 */
		idx_store(avail_event_of(vq->used, vq->num),
		          (uint16_t)(vq->last_avail - (enable ? 0 : 1)));
	} else {
		idx_store(&vq->used[0], enable ? 0 : VRING_USED_F_NO_NOTIFY);
	}
	if (!enable) {
		return false;
	}
	full_barrier();
	return idx_load_acquire(&vq->avail[1]) != vq->last_avail;
}

bool virtq_has_avail(struct virtq *vq)
{
	if (vq->broken) {
		return false;
	}
	return idx_load_acquire(&vq->avail[1]) != vq->last_avail;
}

/* ---- driver role ---- */

__attribute__((format(printf, 2, 3))) static int drv_broken(struct virtq_drv *vq, const char *fmt,
                                                            ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vq->err, sizeof(vq->err), fmt, ap);
	va_end(ap);
	vq->broken = true;
	log_warnx("virtq: device broke the ring: %s", vq->err);
	return -EPROTO;
}

struct drv_layout {
	size_t avail, used, indir, total;
};

static size_t page_up(size_t n)
{
	return (n + VRING_PAGE - 1) & ~(size_t)(VRING_PAGE - 1);
}

static void drv_layout(uint16_t num, bool indirect, uint16_t indir_max, struct drv_layout *l)
{
	l->avail = page_up(vring_desc_bytes(num));
	l->used = l->avail + page_up(vring_avail_bytes(num));
	l->indir = l->used + page_up(vring_used_bytes(num));
	l->total = l->indir;
	if (indirect) {
		l->total += page_up((size_t)num * indir_max * sizeof(struct vring_desc));
	}
}

size_t virtq_drv_mem_bytes(uint16_t num, bool indirect, uint16_t indir_max)
{
	struct drv_layout l;

	drv_layout(num, indirect, indir_max, &l);
	return l.total;
}

static int drv_alloc(struct virtq_drv *vq)
{
	vq->next_free = calloc(vq->num, sizeof(*vq->next_free));
	vq->chain_ndesc = calloc(vq->num, sizeof(*vq->chain_ndesc));
	vq->token = calloc(vq->num, sizeof(*vq->token));
	if (vq->next_free == NULL || vq->chain_ndesc == NULL || vq->token == NULL) {
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < vq->num; i++) {
		vq->next_free[i] = (uint16_t)(i + 1);
	}
	vq->free_head = 0;
	vq->num_free = vq->num;
	return 0;
}

int virtq_drv_init(struct virtq_drv *vq, uint16_t num, void *mem, uint64_t addr, bool event_idx,
                   bool indirect, uint16_t indir_max)
{
	struct drv_layout l;
	uint8_t *base = mem;

	memset(vq, 0, sizeof(*vq));
	vq->broken = true; /* until set up */
	/*
	 * indir_max may exceed num (callers size it for their largest request):
	 * chains are capped at num buffers anyway (2.7.5.3.1), so no table
	 * longer than num reaches the device.
	 */
	if (!num_valid(num)) {
		return -EINVAL;
	}
	drv_layout(num, indirect, indir_max, &l);
	if (mem == NULL || (uintptr_t)mem % 16 != 0 || addr % 16 != 0 ||
	    addr > UINT64_MAX - l.total) {
		return -EINVAL;
	}
	vq->num = num;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->indir_max = indirect ? indir_max : 0;
	vq->desc = (struct vring_desc *)base;
	vq->avail = (uint16_t *)(base + l.avail);
	vq->used = (uint16_t *)(base + l.used);
	vq->indir = indirect ? (struct vring_desc *)(base + l.indir) : NULL;
	vq->desc_addr = addr;
	vq->avail_addr = addr + l.avail;
	vq->used_addr = addr + l.used;
	vq->indir_addr = indirect ? addr + l.indir : 0;
	if (drv_alloc(vq) < 0) {
		virtq_drv_fini(vq);
		return -ENOMEM;
	}
	vq->broken = false;
	return 0;
}

void virtq_drv_fini(struct virtq_drv *vq)
{
	free(vq->next_free);
	free(vq->chain_ndesc);
	free(vq->token);
	vq->next_free = NULL;
	vq->chain_ndesc = NULL;
	vq->token = NULL;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->indir = NULL;
	vq->num_free = 0;
	vq->broken = true;
}

static void desc_put(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static uint16_t buf_flags(unsigned k, unsigned nrd, unsigned total)
{
	return (uint16_t)((k >= nrd ? VRING_DESC_F_WRITE : 0) |
	                  (k + 1 < total ? VRING_DESC_F_NEXT : 0));
}

/* One descriptor in the ring pointing at this head's own table. */
static void drv_fill_indirect(struct virtq_drv *vq, uint16_t head, const struct virtq_buf *bufs,
                              unsigned nrd, unsigned total)
{
	size_t first = (size_t)head * vq->indir_max;
	struct vring_desc *t = vq->indir + first;

	for (unsigned k = 0; k < total; k++) {
		desc_put(&t[k], bufs[k].addr, bufs[k].len, buf_flags(k, nrd, total),
		         (uint16_t)(k + 1 < total ? k + 1 : 0));
	}
	desc_put(&vq->desc[head], vq->indir_addr + first * sizeof(*t),
	         (uint32_t)(total * sizeof(*t)), VRING_DESC_F_INDIRECT, 0);
	vq->free_head = vq->next_free[head];
	vq->chain_ndesc[head] = 1;
}

/*
 * Takes total descriptors off the free list in list order; their next_free
 * links stay as they are, so our private list (not the shared table, which
 * the device could scribble on) says how to free the chain again.
 */
static void drv_fill_direct(struct virtq_drv *vq, uint16_t head, const struct virtq_buf *bufs,
                            unsigned nrd, unsigned total)
{
	uint16_t i = head;

	for (unsigned k = 0; k < total; k++) {
		uint16_t next = k + 1 < total ? vq->next_free[i] : 0;

		desc_put(&vq->desc[i], bufs[k].addr, bufs[k].len, buf_flags(k, nrd, total), next);
		if (k + 1 < total) {
			i = next;
		}
	}
	vq->free_head = vq->next_free[i];
	vq->chain_ndesc[head] = (uint16_t)total;
}

static void drv_free_chain(struct virtq_drv *vq, uint16_t head)
{
	uint16_t n = vq->chain_ndesc[head], last = head;

	for (uint16_t k = 1; k < n; k++) {
		last = vq->next_free[last];
	}
	vq->next_free[last] = vq->free_head;
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free + n);
	vq->chain_ndesc[head] = 0;
}

/* What the device role would reject, refused here already (2.7.5.1, 2.7.5.3.1). */
static int drv_bufs_valid(const struct virtq_drv *vq, const struct virtq_buf *bufs, unsigned nrd,
                          unsigned nwr)
{
	uint64_t bytes = 0;

	if (nrd > vq->num || nwr > vq->num || nrd + nwr == 0 || nrd + nwr > vq->num) {
		return -EINVAL;
	}
	for (unsigned k = 0; k < nrd + nwr; k++) {
		if (bufs[k].len == 0) {
			return -EINVAL;
		}
		bytes += bufs[k].len;
	}
	return bytes > UINT32_MAX ? -EINVAL : 0;
}

int virtq_drv_add(struct virtq_drv *vq, const struct virtq_buf *bufs, unsigned nrd, unsigned nwr,
                  void *token)
{
	unsigned total = nrd + nwr;
	bool use_indirect;
	uint16_t head;
	int rc;

	if (vq->broken) {
		return -EPROTO;
	}
	rc = drv_bufs_valid(vq, bufs, nrd, nwr);
	if (rc < 0 || token == NULL) {
		return -EINVAL;
	}
	use_indirect = vq->indirect && total > 1 && total <= vq->indir_max;
	if (vq->num_free < (use_indirect ? 1 : total)) {
		return -ENOSPC;
	}
	head = vq->free_head;
	if (use_indirect) {
		drv_fill_indirect(vq, head, bufs, nrd, total);
	} else {
		drv_fill_direct(vq, head, bufs, nrd, total);
	}
	vq->num_free = (uint16_t)(vq->num_free - vq->chain_ndesc[head]);
	vq->token[head] = token;
	/* Visible to the device only once kick_prepare releases avail->idx. */
	idx_store(avail_ring(vq->avail, vq->num, vq->avail_idx), head);
	vq->avail_idx++;
	return 0;
}

bool virtq_drv_kick_prepare(struct virtq_drv *vq)
{
	uint16_t old = vq->kicked_idx;

	if (vq->broken) {
		return false;
	}
	/* 2.7.13: descriptors and ring entries before the index that exposes them. */
	idx_store_release(&vq->avail[1], vq->avail_idx);
	full_barrier();
	vq->kicked_idx = vq->avail_idx;
	if (vq->event_idx) {
		return virtq_need_event(idx_load(avail_event_of(vq->used, vq->num)), vq->avail_idx,
		                        old);
	}
	return vq->avail_idx != old && !(idx_load(&vq->used[0]) & VRING_USED_F_NO_NOTIFY);
}

/* As avail_idx_rearm() for the device role, with used_event. */
static uint16_t used_idx_rearm(struct virtq_drv *vq, uint16_t used_idx)
{
	if (used_idx != vq->last_used || !vq->event_idx || vq->cb_off) {
		return used_idx;
	}
	idx_store(used_event_of(vq->avail, vq->num), vq->last_used);
	full_barrier();
	return idx_load_acquire(&vq->used[1]);
}

int virtq_drv_get(struct virtq_drv *vq, void **token, uint32_t *len)
{
	struct vring_used_elem *e;
	uint16_t used_idx, ahead;
	uint32_t id, l;

	if (vq->broken) {
		return -EPROTO;
	}
	used_idx = used_idx_rearm(vq, idx_load_acquire(&vq->used[1]));
	ahead = (uint16_t)(used_idx - vq->last_used);
	if (ahead > vq->num) {
		return drv_broken(vq, "used idx %u is %u ahead of %u (queue size %u)", used_idx,
		                  ahead, vq->last_used, vq->num);
	}
	if (ahead == 0) {
		return 0;
	}
	e = used_elem(vq->used, vq->num, vq->last_used);
	id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
	l = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	if (id >= vq->num) {
		return drv_broken(vq, "used id %" PRIu32 " beyond queue size %u", id, vq->num);
	}
	if (vq->token[id] == NULL) {
		return drv_broken(vq, "used id %" PRIu32 " is not outstanding", id);
	}
	*token = vq->token[id];
	*len = l;
	vq->token[id] = NULL;
	drv_free_chain(vq, (uint16_t)id);
	vq->last_used++;
	return 1;
}

bool virtq_drv_cb_enable(struct virtq_drv *vq, bool enable)
{
	if (vq->broken) {
		return false;
	}
	vq->cb_off = !enable;
	if (vq->event_idx) {
		/*
		 * 2.7.7: flags must stay 0. Off: used_event at the entry just
		 * reaped, which the device, at most num ahead, does not reach.
		 */
		idx_store(used_event_of(vq->avail, vq->num),
		          (uint16_t)(vq->last_used - (enable ? 0 : 1)));
	} else {
		idx_store(&vq->avail[0], enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (!enable) {
		return false;
	}
	full_barrier();
	return idx_load_acquire(&vq->used[1]) != vq->last_used;
}
