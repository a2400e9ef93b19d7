/*
 * Split virtqueue (virtio 1.2, section 2.7), both roles.
 *
 * Device role (struct virtq): rings live in guest memory shared by a VMM; we
 * walk the guest's descriptor chains and publish used entries. Every
 * guest-supplied value is read once into a local copy and checked.
 *
 * Driver role (struct virtq_drv): rings live in memory we own and share with
 * a device backend; we publish chains and reap used entries, checking what
 * the backend writes back just as carefully.
 *
 * Both support VIRTIO_F_RING_INDIRECT_DESC and VIRTIO_F_RING_EVENT_IDX.
 * The host is little-endian (virtio 1.x rings are LE); virtq.c asserts it.
 */
#ifndef VB_VIRTQ_H
#define VB_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bridge/gmem.h"

#define VIRTQ_MAX_SIZE 32768

#define VRING_DESC_F_NEXT          1
#define VRING_DESC_F_WRITE         2
#define VRING_DESC_F_INDIRECT      4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY     1

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32
#define VIRTIO_F_ACCESS_PLATFORM    33 /* no IOTLB: addresses are guest physical */
#define VIRTIO_F_RING_PACKED        34 /* split rings only */
#define VIRTIO_F_IN_ORDER           35 /* chains complete in the order the link returns them */
#define VIRTIO_F_ORDER_PLATFORM     36
#define VIRTIO_F_SR_IOV             37
#define VIRTIO_F_NOTIFICATION_DATA  38 /* kicks are plain eventfd counters */
#define VIRTIO_F_RING_RESET         40 /* no per-queue reset message in vhost-user 7.2 */
#define VHOST_F_LOG_ALL_BIT         26
#define VHOST_USER_F_PROTOCOL_BIT   30

/*
 * Feature bits that belong to one hop (ring layout, notification, vhost-user
 * transport) and are never carried end to end (ARCHITECTURE section 2): each
 * hop negotiates its own, and what no hop can honour is never offered.
 */
#define VIRTIO_HOP_FEATURES                                                                        \
	((1ull << VIRTIO_F_RING_INDIRECT_DESC) | (1ull << VIRTIO_F_RING_EVENT_IDX) |               \
	 (1ull << VHOST_USER_F_PROTOCOL_BIT) | (1ull << VHOST_F_LOG_ALL_BIT) |                     \
	 (1ull << VIRTIO_F_ACCESS_PLATFORM) | (1ull << VIRTIO_F_RING_PACKED) |                     \
	 (1ull << VIRTIO_F_IN_ORDER) | (1ull << VIRTIO_F_ORDER_PLATFORM) |                         \
	 (1ull << VIRTIO_F_SR_IOV) | (1ull << VIRTIO_F_NOTIFICATION_DATA) |                        \
	 (1ull << VIRTIO_F_RING_RESET))

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

/*
 * EVENT_IDX (2.7.7.2, 2.7.10.2): moving an index from old to new_idx crossed
 * event, i.e. an entry was placed at index event, so the other side wants a
 * notification.
 */
bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx);

/* Bytes of each ring part for a queue of num entries (with the event fields). */
size_t vring_desc_bytes(uint16_t num);
size_t vring_avail_bytes(uint16_t num);
size_t vring_used_bytes(uint16_t num);

/* One descriptor chain as host memory segments: readable ones first. */
struct virtq_chain {
	uint16_t head;
	uint16_t ndesc; /* descriptors walked, indirect ones included */
	int nrd, nwr;   /* iov[0..nrd) readable, iov[nrd..nrd+nwr) writable */
	uint32_t rd_len, wr_len;
	struct iovec *iov; /* the queue's scratch: valid until its next walk */
};

/* ---- device role ---- */

struct virtq {
	uint16_t num;
	bool event_idx;
	bool broken;
	const struct gmem *mem;
	struct vring_desc *desc; /* host pointers into guest memory */
	uint16_t *avail;         /* flags, idx, ring[num], used_event */
	uint16_t *used;          /* flags, idx, ring (as vring_used_elem), avail_event */
	uint16_t last_avail;     /* next avail ring slot to consume */
	uint16_t used_idx;       /* shadow of used->idx */
	uint16_t signalled_used; /* used_idx at the last notification */
	bool signalled_valid;
	uint16_t inflight; /* chains popped and not pushed */
	bool kick_off;     /* virtq_kick_enable(false): avail_event is left alone */
	struct iovec *scratch;
	int scratch_max;
	char err[160]; /* what the guest did wrong, once broken */
};

/*
 * Sets up a queue over rings given by frontend virtual addresses (as in
 * SET_VRING_ADDR); vq must be zeroed or have been through virtq_fini(). Checks num (power of
 * two, 1..VIRTQ_MAX_SIZE), alignment (desc 16, avail 2, used 4) and that each part is wholly mapped
 * in one region. last_avail starts at base; used_idx is taken from the guest's used->idx. 0 or
 * -errno with vq->err set.
 */
int virtq_init(struct virtq *vq, const struct gmem *mem, uint16_t num, uint64_t desc_uaddr,
               uint64_t avail_uaddr, uint64_t used_uaddr, uint16_t base, bool event_idx);
/*
 * Re-translates ring addresses after a memory table change. On failure the
 * queue is broken and holds no pointer into guest memory any more.
 */
int virtq_remap(struct virtq *vq, uint64_t desc_uaddr, uint64_t avail_uaddr, uint64_t used_uaddr);
void virtq_fini(struct virtq *vq);

/*
 * Takes the next available chain. 1 with *c filled, 0 if none, -EPROTO if
 * the guest broke the rules (vq->broken set, vq->err says how).
 */
int virtq_pop(struct virtq *vq, struct virtq_chain *c);
/* Walks the chain at head again (to write a completion). Same checks; 0 or -EPROTO. */
int virtq_walk(struct virtq *vq, uint16_t head, struct virtq_chain *c);
/*
 * Publishes a used entry for head with len bytes written. 0, -EPROTO if the
 * queue is broken, -EINVAL if head is out of range or nothing is in flight.
 */
int virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* After pushes: does the guest want an interrupt (EVENT_IDX or flags)? */
bool virtq_should_notify(struct virtq *vq);
/*
 * Asks the guest for kicks (enable) or not. With enable, returns true if
 * buffers became available meanwhile (the caller must process them).
 */
bool virtq_kick_enable(struct virtq *vq, bool enable);
bool virtq_has_avail(struct virtq *vq);

/* ---- driver role ---- */

struct virtq_buf {
	uint64_t addr; /* as the device sees it */
	uint32_t len;
};

struct virtq_drv {
	uint16_t num;
	bool event_idx;
	bool indirect;
	bool broken;
	struct vring_desc *desc;
	uint16_t *avail;
	uint16_t *used;
	uint64_t desc_addr, avail_addr, used_addr; /* device view */
	struct vring_desc *indir;                  /* num tables of indir_max entries */
	uint64_t indir_addr;
	uint16_t indir_max;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t avail_idx;  /* shadow of avail->idx */
	uint16_t kicked_idx; /* avail_idx at the last kick decision */
	uint16_t last_used;
	uint16_t *next_free;   /* free list links, per descriptor */
	uint16_t *chain_ndesc; /* per head: descriptors used in the table */
	void **token;          /* per head: caller's cookie, NULL when free */
	bool cb_off;           /* virtq_drv_cb_enable(false): used_event is left alone */
	char err[160];
};

/* Bytes of memory the driver role needs for num (rings + indirect tables). */
size_t virtq_drv_mem_bytes(uint16_t num, bool indirect, uint16_t indir_max);

/*
 * Lays the rings out in mem (host pointer) that the device sees at addr,
 * 4096-aligned parts; mem must be zeroed and virtq_drv_mem_bytes() long,
 * mem and addr at least 16-aligned (page-aligned for page-aligned parts).
 * 0, -EINVAL (num not a power of two <= VIRTQ_MAX_SIZE, alignment) or -ENOMEM.
 */
int virtq_drv_init(struct virtq_drv *vq, uint16_t num, void *mem, uint64_t addr, bool event_idx,
                   bool indirect, uint16_t indir_max);
void virtq_drv_fini(struct virtq_drv *vq);

/*
 * Adds a chain of nrd readable then nwr writable buffers; token (non-NULL)
 * comes back from virtq_drv_get(). Uses an indirect table when enabled and
 * the chain has more than one buffer (and fits a table). 0 or -ENOSPC /
 * -EINVAL (no buffer, a zero length, more than num, total >= 2^32) /
 * -EPROTO (the queue is broken).
 */
int virtq_drv_add(struct virtq_drv *vq, const struct virtq_buf *bufs, unsigned nrd, unsigned nwr,
                  void *token);
/* Publishes added chains (release barrier); true if the device wants a kick. */
bool virtq_drv_kick_prepare(struct virtq_drv *vq);
/*
 * Reaps one used entry. 1 with *token and *len, 0 if none, -EPROTO if the
 * device wrote an id that is out of range or not outstanding, or moved
 * used->idx by more than num (vq->broken set, vq->err says how).
 */
int virtq_drv_get(struct virtq_drv *vq, void **token, uint32_t *len);
/* Asks the device for interrupts or not; with enable returns true if used entries are pending. */
bool virtq_drv_cb_enable(struct virtq_drv *vq, bool enable);

#endif
