/*
 * vblk-bench: a userspace virtio-blk driver speaking vhost-user as the
 * front-end (the role QEMU plays), used to load a vhost-user-blk back-end
 * (qemu-storage-daemon, or a vbridged importer) with requests of a chosen
 * size at a chosen queue depth, and to prove a path with --verify.
 *
 * Memory: one sealed memfd, shared as one region at guest physical address
 * 0, holds the rings of every queue and every request's header, data and
 * status. Descriptors carry offsets in that region (gpa); SET_VRING_ADDR
 * carries our own virtual addresses, as the vhost-user spec asks ("ring
 * addresses ... in the front-end's virtual address space").
 *
 * Requests follow virtio 1.2, 5.2.6: a 16-byte device-readable header
 * {le32 type, le32 reserved, le64 sector}, the data (device-readable for
 * writes, device-writable for reads) and a device-writable status byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bridge/log.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_front.h"
#include "tools/bench.h"

/* virtio 1.2, 5.2.3 feature bits and 5.2.6 request types / status. */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_MQ       12
#define VIRTIO_BLK_T_IN       0u
#define VIRTIO_BLK_T_OUT      1u
#define VIRTIO_BLK_S_OK       0u
#define SECTOR_SIZE           512u
#define BLK_HDR_SIZE          16u
#define BLK_CONFIG_SIZE       60u /* struct virtio_blk_config up to write_zeroes_may_unmap */

#define PAGE              4096u
#define MAX_QUEUES        64u
#define MAX_SEGS          64u
#define MAX_REQ_BYTES     (64u << 20)
#define META_STRIDE       32u /* header at +0, status at +16 */
#define VU_TIMEOUT_MS     5000
#define STALL_TIMEOUT_NS  (10ull * 1000000000ull)
#define VERIFY_MAX_BLOCKS 4096u

#define BIT(n) (1ull << (n))

struct opts {
	const char *socket;
	uint64_t size;
	uint64_t depth; /* per queue */
	uint64_t queues;
	uint64_t queue_size;
	uint64_t max_seg; /* data bytes per descriptor, 0 = the whole request */
	const char *rw;
	double seconds;
	uint64_t requests;
	uint64_t warmup;
	uint64_t seed;
	bool json;
	bool verify;
	bool no_event_idx;
	bool no_indirect;
	bool quiet;
};

struct rw_mode {
	const char *name;
	uint32_t type;
	bool random;
};

static const struct rw_mode rw_modes[] = {
    {"read", VIRTIO_BLK_T_IN, false},
    {"write", VIRTIO_BLK_T_OUT, false},
    {"randread", VIRTIO_BLK_T_IN, true},
    {"randwrite", VIRTIO_BLK_T_OUT, true},
};

/* What GET_CONFIG said (5.2.4), the fields we need. */
struct blk_geom {
	uint64_t capacity; /* 512-byte sectors, whatever blk_size is */
	uint32_t size_max;
	uint32_t seg_max;
	uint32_t blk_size;
	uint16_t num_queues;
};

struct bq;

struct slot {
	struct bq *q;
	uint8_t *hdr, *status, *data;
	uint64_t hdr_gpa, status_gpa, data_gpa;
	uint64_t t0;
	uint64_t block;
	uint32_t type;
};

struct bq {
	unsigned index;
	struct virtq_drv vq;
	int kick, call;
	struct slot *slots;
	unsigned inflight;
};

/* One pass of requests: a workload, or one half of --verify. */
struct phase {
	uint32_t type;
	bool random;
	const uint64_t *list; /* blocks in order (verify), or NULL */
	uint64_t total;       /* requests to issue; 0 = until the deadline */
	uint64_t warmup;
	uint64_t deadline_ns; /* seconds mode: stop issuing after warmup + T */
	double seconds;
	uint64_t issued, done;
	uint64_t seq;
	uint64_t t_start, t_end; /* measured interval */
	uint64_t measured, bytes;
	uint64_t short_len;
	bool check; /* compare read data with the pattern */
	struct bench_hist *lat;
};

struct bench {
	struct opts o;
	struct vu_front *f;
	uint64_t features; /* acked */
	struct blk_geom geom;
	int memfd;
	uint8_t *mem;
	size_t mem_len;
	size_t ring_stride, meta_off, data_off, data_stride;
	unsigned nseg;
	uint32_t seg_len;
	uint64_t nblocks;
	uint64_t rng;
	struct bq q[MAX_QUEUES];
	struct slot *slots;
	struct bench_hist lat;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vblk-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- options ---- */

#define OPT(field) offsetof(struct opts, field)

static const struct bench_opt opt_table[] = {
    {"socket", BO_STR, OPT(socket), 0, 0, "PATH     vhost-user-blk back-end socket"},
    {"size", BO_NUM, OPT(size), SECTOR_SIZE, MAX_REQ_BYTES,
     "BYTES    request size, a multiple of 512 (k/M suffixes; default 4k)"},
    {"depth", BO_NUM, OPT(depth), 1, VIRTQ_MAX_SIZE,
     "N        requests in flight per queue (default 1)"},
    {"queues", BO_NUM, OPT(queues), 1, MAX_QUEUES, "N        virtqueues (default 1)"},
    {"queue-size", BO_NUM, OPT(queue_size), 1, VIRTQ_MAX_SIZE,
     "N        descriptors per virtqueue, a power of two (default 128)"},
    {"max-seg", BO_NUM, OPT(max_seg), SECTOR_SIZE, MAX_REQ_BYTES,
     "BYTES    split the data into descriptors of at most BYTES (default: one, or\n"
     "                           the device's size_max)"},
    {"rw", BO_STR, OPT(rw), 0, 0, "MODE     read|write|randread|randwrite (default randread)"},
    {"seconds", BO_SECONDS, OPT(seconds), 0, 0, "T        measure for T seconds (default 5)"},
    {"requests", BO_NUM, OPT(requests), 1, UINT64_MAX >> 1, "N        measure N requests instead"},
    {"warmup", BO_NUM, OPT(warmup), 0, UINT64_MAX >> 1,
     "N        requests completed before measuring (default 100)"},
    {"verify", BO_FLAG, OPT(verify), 0, 0,
     "         write a pattern to --requests blocks (default up to 4096),\n"
     "                           read it back and compare"},
    {"no-event-idx", BO_FLAG, OPT(no_event_idx), 0, 0,
     "         do not negotiate VIRTIO_F_RING_EVENT_IDX"},
    {"no-indirect", BO_FLAG, OPT(no_indirect), 0, 0,
     "         do not negotiate VIRTIO_F_RING_INDIRECT_DESC"},
    {"seed", BO_NUM, OPT(seed), 0, UINT64_MAX,
     "N        offsets and pattern seed (default: the clock)"},
    {"json", BO_FLAG, OPT(json), 0, 0, "         print one JSON object instead of a line"},
    {"quiet", BO_FLAG, OPT(quiet), 0, 0, "         no set-up details on stderr"},
};

static const char synopsis[] = "usage: vblk-bench --socket PATH [options]\n";

static const struct rw_mode *rw_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rw_modes); i++) {
		if (strcmp(rw_modes[i].name, name) == 0) {
			return &rw_modes[i];
		}
	}
	return NULL;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.size = 4096,
	                   .depth = 1,
	                   .queues = 1,
	                   .queue_size = 128,
	                   .rw = "randread",
	                   .warmup = 100,
	                   .seed = bench_now_ns()};
	bench_getopt(argc, argv, synopsis, opt_table, ARRAY_SIZE(opt_table), o);
	if (optind != argc || !o->socket) {
		bench_usage(stderr, synopsis, opt_table, ARRAY_SIZE(opt_table));
		exit(2);
	}
	if (!rw_lookup(o->rw)) {
		die("--rw %s: want read, write, randread or randwrite", o->rw);
	}
	if (o->size % SECTOR_SIZE) {
		die("--size %" PRIu64 ": want a multiple of 512", o->size);
	}
	if (o->queue_size & (o->queue_size - 1)) {
		die("--queue-size %" PRIu64 ": want a power of two", o->queue_size);
	}
	if (o->seconds == 0 && o->requests == 0) {
		o->seconds = 5;
	}
}

/* ---- vhost-user set-up ---- */

static void check(struct bench *b, int rc, const char *what)
{
	if (rc < 0) {
		die("%s: %s (%s)", what, strerror(-rc), vu_front_error(b->f));
	}
}

static void negotiate_protocol(struct bench *b)
{
	const uint64_t want = BIT(VU_PF_MQ) | BIT(VU_PF_REPLY_ACK) | BIT(VU_PF_CONFIG);
	uint64_t pf;

	check(b, vu_front_get_protocol_features(b->f, &pf), "GET_PROTOCOL_FEATURES");
	if (!(pf & BIT(VU_PF_CONFIG))) {
		die("back-end does not offer the CONFIG protocol feature (no capacity to read)");
	}
	check(b, vu_front_set_protocol_features(b->f, pf & want), "SET_PROTOCOL_FEATURES");
}

/* The features we ack: VERSION_1 (mandatory) and what we understand of the rest. */
static uint64_t pick_features(const struct opts *o, uint64_t offered)
{
	uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
	                BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) |
	                BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_RO);

	if (!(offered & BIT(VIRTIO_F_VERSION_1))) {
		die("back-end does not offer VIRTIO_F_VERSION_1 (legacy devices not supported)");
	}
	if (!o->no_event_idx) {
		want |= BIT(VIRTIO_F_RING_EVENT_IDX);
	}
	if (!o->no_indirect) {
		want |= BIT(VIRTIO_F_RING_INDIRECT_DESC);
	}
	if (o->queues > 1) {
		want |= BIT(VIRTIO_BLK_F_MQ);
	}
	return offered & want;
}

/* virtio 1.2, 5.2.4: fields are valid only with their feature bit. */
static void read_config(struct bench *b, uint64_t offered)
{
	uint8_t cfg[BLK_CONFIG_SIZE];

	check(b, vu_front_get_config(b->f, 0, cfg, sizeof(cfg)), "GET_CONFIG");
	b->geom.capacity = get_le64(cfg);
	b->geom.size_max = (offered & BIT(VIRTIO_BLK_F_SIZE_MAX)) ? get_le32(cfg + 8) : 0;
	b->geom.seg_max = (offered & BIT(VIRTIO_BLK_F_SEG_MAX)) ? get_le32(cfg + 12) : 0;
	b->geom.blk_size =
	    (offered & BIT(VIRTIO_BLK_F_BLK_SIZE)) ? get_le32(cfg + 20) : SECTOR_SIZE;
	b->geom.num_queues = (offered & BIT(VIRTIO_BLK_F_MQ)) ? get_le16(cfg + 34) : 1;
	/* The back-end is a peer like any other: what we compute with must make sense. */
	if (b->geom.capacity == 0 || b->geom.capacity > UINT64_MAX / SECTOR_SIZE) {
		die("back-end reports a capacity of %" PRIu64 " sectors", b->geom.capacity);
	}
	if (b->geom.blk_size < SECTOR_SIZE || b->geom.blk_size > (1u << 20) ||
	    (b->geom.blk_size & (b->geom.blk_size - 1))) {
		die("back-end reports a block size of %u", b->geom.blk_size);
	}
}

static void check_queues(struct bench *b, uint64_t offered)
{
	uint64_t n = 1;

	if (b->o.queues == 1) {
		return;
	}
	if (!(offered & BIT(VIRTIO_BLK_F_MQ))) {
		die("--queues %" PRIu64 ": back-end does not offer VIRTIO_BLK_F_MQ", b->o.queues);
	}
	if (vu_front_protocol_features(b->f) & BIT(VU_PF_MQ)) {
		check(b, vu_front_get_queue_num(b->f, &n), "GET_QUEUE_NUM");
	}
	if (b->o.queues > b->geom.num_queues || b->o.queues > n) {
		die("--queues %" PRIu64 ": back-end has %u (config) / %" PRIu64 " (GET_QUEUE_NUM)",
		    b->o.queues, b->geom.num_queues, n);
	}
}

static void negotiate(struct bench *b)
{
	char err[256];
	uint64_t offered;

	b->f = vu_front_connect(b->o.socket, VU_TIMEOUT_MS, err, sizeof(err));
	if (!b->f) {
		die("%s", err);
	}
	check(b, vu_front_get_features(b->f, &offered), "GET_FEATURES");
	if (offered & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
		negotiate_protocol(b);
	} else {
		die("back-end does not offer VHOST_USER_F_PROTOCOL_FEATURES (no GET_CONFIG)");
	}
	check(b, vu_front_set_owner(b->f), "SET_OWNER");
	read_config(b, offered);
	check_queues(b, offered);
	b->features = pick_features(&b->o, offered);
	if ((b->features & BIT(VIRTIO_BLK_F_RO)) &&
	    (rw_lookup(b->o.rw)->type == VIRTIO_BLK_T_OUT || b->o.verify)) {
		die("the device is read-only (VIRTIO_BLK_F_RO)");
	}
	if (!b->o.quiet) {
		fprintf(stderr,
		        "vblk-bench: %s: features 0x%" PRIx64 " of 0x%" PRIx64
		        ", protocol 0x%" PRIx64 ", %" PRIu64 " sectors, blk_size %u, size_max %u, "
		        "seg_max %u, %u queue(s)\n",
		        b->o.socket, b->features, offered, vu_front_protocol_features(b->f),
		        b->geom.capacity, b->geom.blk_size, b->geom.size_max, b->geom.seg_max,
		        b->geom.num_queues);
	}
}

/* ---- memory ---- */

static size_t page_up(size_t n)
{
	return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

static bool has(const struct bench *b, unsigned bit)
{
	return (b->features & BIT(bit)) != 0;
}

/* Splits the data by size_max / seg_max (5.2.4) and checks the rings can hold depth chains. */
static void plan_requests(struct bench *b)
{
	const struct opts *o = &b->o;
	unsigned per_chain;
	uint64_t seg = o->max_seg ? o->max_seg : o->size;

	if (b->geom.size_max && b->geom.size_max < seg) {
		seg = b->geom.size_max;
	}
	b->seg_len = (uint32_t)VB_MIN(seg, o->size) & ~(SECTOR_SIZE - 1);
	if (b->seg_len == 0) {
		die("device size_max %u is below one sector", b->geom.size_max);
	}
	b->nseg = (unsigned)((o->size + b->seg_len - 1) / b->seg_len);
	if (b->nseg > MAX_SEGS || (b->geom.seg_max && b->nseg > b->geom.seg_max)) {
		die("--size %" PRIu64 " needs %u segments (device seg_max %u, ours %u)", o->size,
		    b->nseg, b->geom.seg_max, MAX_SEGS);
	}
	if (o->size % b->geom.blk_size) {
		die("--size %" PRIu64 " is not a multiple of the device block size %u", o->size,
		    b->geom.blk_size);
	}
	b->nblocks = b->geom.capacity * SECTOR_SIZE / o->size;
	if (b->nblocks == 0) {
		die("device of %" PRIu64 " sectors is smaller than one request", b->geom.capacity);
	}
	per_chain = has(b, VIRTIO_F_RING_INDIRECT_DESC) ? 1 : b->nseg + 2;
	if (b->nseg + 2 > o->queue_size || (uint64_t)o->depth * per_chain > o->queue_size) {
		die("--depth %" PRIu64
		    " with %u descriptor(s) per request does not fit --queue-size %" PRIu64 "%s",
		    o->depth, per_chain, o->queue_size,
		    per_chain > 1 ? " (no indirect descriptors)" : "");
	}
}

static void layout(struct bench *b)
{
	const struct opts *o = &b->o;
	size_t nslots = (size_t)o->queues * o->depth;

	b->ring_stride = page_up(virtq_drv_mem_bytes(
	    (uint16_t)o->queue_size, has(b, VIRTIO_F_RING_INDIRECT_DESC), (uint16_t)(b->nseg + 2)));
	b->meta_off = b->ring_stride * o->queues;
	b->data_off = b->meta_off + page_up(nslots * META_STRIDE);
	b->data_stride = page_up(o->size);
	b->mem_len = b->data_off + nslots * b->data_stride;
}

/*
 * The back-end maps this memfd: seal its size so it can neither be shrunk
 * under the back-end's mapping (SIGBUS there) nor grown by anyone.
 */
static void map_memory(struct bench *b)
{
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

	layout(b);
	b->memfd = memfd_create("vblk-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (b->memfd < 0 || ftruncate(b->memfd, (off_t)b->mem_len) < 0) {
		die("memfd of %zu bytes: %s", b->mem_len, strerror(errno));
	}
	b->mem = mmap(NULL, b->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, b->memfd, 0);
	if (b->mem == MAP_FAILED) {
		die("mmap %zu bytes: %s", b->mem_len, strerror(errno));
	}
	if (fcntl(b->memfd, F_ADD_SEALS, seals) < 0) {
		die("sealing the memfd: %s", strerror(errno));
	}
}

static void set_mem_table(struct bench *b)
{
	struct vu_mem_region r = {
	    .gpa = 0,
	    .size = b->mem_len,
	    .uaddr = (uint64_t)(uintptr_t)b->mem,
	    .mmap_offset = 0,
	};

	check(b, vu_front_set_mem_table(b->f, &r, &b->memfd, 1), "SET_MEM_TABLE");
}

static void init_slots(struct bench *b, struct bq *q)
{
	for (unsigned i = 0; i < b->o.depth; i++) {
		size_t n = (size_t)q->index * b->o.depth + i;
		struct slot *s = &q->slots[i];

		s->q = q;
		s->hdr_gpa = b->meta_off + n * META_STRIDE;
		s->status_gpa = s->hdr_gpa + BLK_HDR_SIZE;
		s->data_gpa = b->data_off + n * b->data_stride;
		s->hdr = b->mem + s->hdr_gpa;
		s->status = b->mem + s->status_gpa;
		s->data = b->mem + s->data_gpa;
		/* Written data is not all zero, so a back-end cannot shortcut it. */
		memset(s->data, 0x5a ^ (int)(n & 0xff), b->o.size);
	}
}

static uint64_t uaddr_of(const struct bench *b, uint64_t gpa)
{
	return (uint64_t)(uintptr_t)b->mem + gpa;
}

static void start_queue(struct bench *b, struct bq *q)
{
	struct vu_vring_addr a = {.index = q->index};
	uint16_t num = (uint16_t)b->o.queue_size;
	int rc;

	rc = virtq_drv_init(&q->vq, num, b->mem + q->index * b->ring_stride,
	                    q->index * b->ring_stride, has(b, VIRTIO_F_RING_EVENT_IDX),
	                    has(b, VIRTIO_F_RING_INDIRECT_DESC), (uint16_t)(b->nseg + 2));
	if (rc < 0) {
		die("virtq_drv_init queue %u: %s", q->index, strerror(-rc));
	}
	q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick < 0 || q->call < 0) {
		die("eventfd: %s", strerror(errno));
	}
	a.desc = uaddr_of(b, q->vq.desc_addr);
	a.avail = uaddr_of(b, q->vq.avail_addr);
	a.used = uaddr_of(b, q->vq.used_addr);
	check(b, vu_front_set_vring_num(b->f, q->index, num), "SET_VRING_NUM");
	check(b, vu_front_set_vring_base(b->f, q->index, 0), "SET_VRING_BASE");
	check(b, vu_front_set_vring_addr(b->f, &a), "SET_VRING_ADDR");
	/* The call fd first: the back-end may complete as soon as it has the kick fd. */
	check(b, vu_front_set_vring_call(b->f, q->index, q->call), "SET_VRING_CALL");
	check(b, vu_front_set_vring_kick(b->f, q->index, q->kick), "SET_VRING_KICK");
	/* With VHOST_USER_F_PROTOCOL_FEATURES rings start disabled (vhost-user "Ring states"). */
	check(b, vu_front_set_vring_enable(b->f, q->index, true), "SET_VRING_ENABLE");
}

static void setup(struct bench *b)
{
	negotiate(b);
	plan_requests(b);
	map_memory(b);
	check(b, vu_front_set_features(b->f, b->features), "SET_FEATURES");
	set_mem_table(b);
	b->slots = calloc((size_t)b->o.queues * b->o.depth, sizeof(*b->slots));
	if (!b->slots) {
		die("out of memory");
	}
	for (unsigned i = 0; i < b->o.queues; i++) {
		struct bq *q = &b->q[i];

		q->index = i;
		q->slots = b->slots + (size_t)i * b->o.depth;
		init_slots(b, q);
		start_queue(b, q);
	}
}

static void teardown(struct bench *b)
{
	for (unsigned i = 0; i < b->o.queues; i++) {
		virtq_drv_fini(&b->q[i].vq);
		close(b->q[i].kick);
		close(b->q[i].call);
	}
	vu_front_free(b->f);
	munmap(b->mem, b->mem_len);
	close(b->memfd);
	free(b->slots);
}

/* ---- requests ---- */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: offsets only need to be spread, not secret. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The --verify content of a block: depends on seed and block, so stale data cannot pass. */
static void pattern_fill(const struct bench *b, uint64_t block, uint8_t *p)
{
	for (uint64_t i = 0; i < b->o.size; i += 8) {
		uint64_t v = mix64(b->o.seed ^ (block * b->o.size + i));

		memcpy(p + i, &v, 8);
	}
}

static void pattern_check(const struct bench *b, uint64_t block, const uint8_t *p)
{
	for (uint64_t i = 0; i < b->o.size; i += 8) {
		uint64_t v = mix64(b->o.seed ^ (block * b->o.size + i)), got;

		memcpy(&got, p + i, 8);
		if (got != v) {
			die("verify: block %" PRIu64 " (byte offset %" PRIu64
			    "): read 0x%016" PRIx64 " at +%" PRIu64 ", wrote 0x%016" PRIx64,
			    block, block * b->o.size, got, i, v);
		}
	}
}

static uint64_t next_block(struct bench *b, struct phase *ph)
{
	if (ph->list) {
		return ph->list[ph->issued];
	}
	if (ph->random) {
		return rng_next(&b->rng) % b->nblocks;
	}
	return ph->seq++ % b->nblocks;
}

static bool want_more(const struct phase *ph, uint64_t now)
{
	if (ph->total) {
		return ph->issued < ph->total;
	}
	return ph->t_start == 0 || now < ph->deadline_ns;
}

static int submit(struct bench *b, struct phase *ph, struct slot *s)
{
	struct virtq_buf bufs[MAX_SEGS + 2];
	bool rd = ph->type == VIRTIO_BLK_T_IN;
	unsigned n = 0;

	s->type = ph->type;
	s->block = next_block(b, ph);
	put_le32(s->hdr, s->type);
	put_le32(s->hdr + 4, 0);
	put_le64(s->hdr + 8, s->block * (b->o.size / SECTOR_SIZE));
	/* A value the device never writes: a completion that skips it shows. */
	*s->status = 0xff;
	if (ph->check && rd) {
		memset(s->data, 0xa5, b->o.size);
	} else if (ph->check) {
		pattern_fill(b, s->block, s->data);
	}
	bufs[n++] = (struct virtq_buf){s->hdr_gpa, BLK_HDR_SIZE};
	for (uint64_t off = 0; off < b->o.size; off += b->seg_len) {
		bufs[n++] = (struct virtq_buf){s->data_gpa + off,
		                               (uint32_t)VB_MIN(b->seg_len, b->o.size - off)};
	}
	bufs[n++] = (struct virtq_buf){s->status_gpa, 1};
	s->t0 = bench_now_ns();
	ph->issued++;
	s->q->inflight++;
	return virtq_drv_add(&s->q->vq, bufs, rd ? 1 : n - 1, rd ? n - 1 : 1, s);
}

static void kick(struct bq *q)
{
	if (virtq_drv_kick_prepare(&q->vq) && eventfd_write(q->kick, 1) < 0) {
		die("kick queue %u: %s", q->index, strerror(errno));
	}
}

/* The writable part is the data (reads) plus the status byte (5.2.6). */
static void check_completion(struct bench *b, struct phase *ph, struct slot *s, uint32_t len)
{
	uint32_t writable = (s->type == VIRTIO_BLK_T_IN ? (uint32_t)b->o.size : 0) + 1;

	if (*s->status != VIRTIO_BLK_S_OK) {
		die("queue %u: %s of block %" PRIu64 " (sector %" PRIu64
		    ") completed with status %u",
		    s->q->index, s->type == VIRTIO_BLK_T_IN ? "read" : "write", s->block,
		    s->block * (b->o.size / SECTOR_SIZE), *s->status);
	}
	if (len > writable) {
		die("queue %u: used len %u exceeds the %u writable bytes", s->q->index, len,
		    writable);
	}
	if (len != writable) {
		ph->short_len++;
	}
	if (ph->check && s->type == VIRTIO_BLK_T_IN) {
		pattern_check(b, s->block, s->data);
	}
}

static void start_clock(struct phase *ph, uint64_t now)
{
	ph->t_start = now;
	ph->deadline_ns = now + (uint64_t)(ph->seconds * 1e9);
}

static void account(struct bench *b, struct phase *ph, struct slot *s, uint64_t now)
{
	ph->done++;
	if (ph->done <= ph->warmup) {
		if (ph->done == ph->warmup) {
			start_clock(ph, now);
		}
		return;
	}
	ph->measured++;
	ph->bytes += b->o.size;
	ph->t_end = now;
	bench_hist_add(ph->lat, now - s->t0);
}

/* Reaps every used entry of q, resubmitting in the freed slots while the phase wants more. */
static void reap(struct bench *b, struct phase *ph, struct bq *q)
{
	uint64_t now;
	void *token;
	uint32_t len;
	int rc;

	while ((rc = virtq_drv_get(&q->vq, &token, &len)) == 1) {
		struct slot *s = token;

		now = bench_now_ns();
		q->inflight--;
		check_completion(b, ph, s, len);
		account(b, ph, s, now);
		if (want_more(ph, now) && (rc = submit(b, ph, s)) < 0) {
			die("queue %u: adding a request: %s", q->index, strerror(-rc));
		}
	}
	if (rc < 0) {
		die("queue %u: the back-end broke the ring: %s", q->index, q->vq.err);
	}
	kick(q);
}

static unsigned inflight(const struct bench *b)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->o.queues; i++) {
		n += b->q[i].inflight;
	}
	return n;
}

/* Blocks until a call eventfd fires; the vhost-user socket is watched for the back-end's end. */
static void wait_calls(struct bench *b, struct pollfd *pfd, uint64_t *idle_since)
{
	unsigned nq = b->o.queues;
	int n;

	n = poll(pfd, nq + 1, 1000);
	if (n < 0 && errno != EINTR) {
		die("poll: %s", strerror(errno));
	}
	if (pfd[nq].revents) {
		die("the back-end closed the vhost-user connection (%u requests in flight)",
		    inflight(b));
	}
	if (n > 0) {
		*idle_since = bench_now_ns();
		return;
	}
	if (bench_now_ns() - *idle_since > STALL_TIMEOUT_NS) {
		die("no completion for %llu s with %u requests in flight",
		    STALL_TIMEOUT_NS / 1000000000ull, inflight(b));
	}
}

static void run_phase(struct bench *b, struct phase *ph)
{
	struct pollfd pfd[MAX_QUEUES + 1];
	uint64_t idle_since = bench_now_ns(), v;
	unsigned nq = b->o.queues;
	int rc;

	if (ph->warmup == 0) {
		start_clock(ph, idle_since);
	}
	for (unsigned i = 0; i < nq; i++) {
		struct bq *q = &b->q[i];

		pfd[i] = (struct pollfd){.fd = q->call, .events = POLLIN};
		for (unsigned k = 0; k < b->o.depth && want_more(ph, 0); k++) {
			if ((rc = submit(b, ph, &q->slots[k])) < 0) {
				die("queue %u: adding a request: %s", i, strerror(-rc));
			}
		}
		kick(q);
	}
	pfd[nq] = (struct pollfd){.fd = vu_front_fd(b->f), .events = POLLIN};
	while (inflight(b) > 0) {
		wait_calls(b, pfd, &idle_since);
		for (unsigned i = 0; i < nq; i++) {
			/* Cleared before reaping: a call raised meanwhile wakes the next poll. */
			if (pfd[i].revents) {
				eventfd_read(b->q[i].call, &v);
			}
			reap(b, ph, &b->q[i]);
		}
	}
}

/* ---- workloads ---- */

static void report(const struct bench *b, const struct phase *ph, const char *mode)
{
	struct bench_result r = {
	    .tool = "vblk",
	    .mode = mode,
	    .size = b->o.size,
	    .depth = (unsigned)b->o.depth,
	    .queues = (unsigned)b->o.queues,
	    .requests = ph->measured,
	    .bytes = ph->bytes,
	    .seconds = (double)(ph->t_end - ph->t_start) / 1e9,
	    .has_latency = true,
	    .lat = ph->lat,
	};

	if (ph->short_len && !b->o.quiet) {
		fprintf(stderr,
		        "vblk-bench: %" PRIu64 " completions reported a used len other "
		        "than the writable size\n",
		        ph->short_len);
	}
	bench_print(stdout, &r, b->o.json);
}

static void run_bench(struct bench *b)
{
	const struct rw_mode *m = rw_lookup(b->o.rw);
	struct phase ph = {
	    .type = m->type,
	    .random = m->random,
	    .total = b->o.requests ? b->o.requests + b->o.warmup : 0,
	    .warmup = b->o.warmup,
	    .seconds = b->o.seconds,
	    .lat = &b->lat,
	};

	bench_hist_reset(&b->lat);
	run_phase(b, &ph);
	if (ph.measured == 0) {
		die("no request completed after the warm-up");
	}
	report(b, &ph, m->name);
}

/* n distinct blocks spread over the disk, in a shuffled order. */
static uint64_t *verify_blocks(struct bench *b, uint64_t n)
{
	uint64_t *list = calloc(n, sizeof(*list)), stride = b->nblocks / n;

	if (!list) {
		die("out of memory");
	}
	for (uint64_t i = 0; i < n; i++) {
		list[i] = i * stride + rng_next(&b->rng) % stride;
	}
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_next(&b->rng) % (i + 1), t = list[i];

		list[i] = list[j];
		list[j] = t;
	}
	return list;
}

static void run_verify(struct bench *b)
{
	uint64_t n = b->o.requests ? b->o.requests : VB_MIN(b->nblocks, VERIFY_MAX_BLOCKS);
	struct phase w = {.type = VIRTIO_BLK_T_OUT, .total = n, .check = true, .lat = &b->lat};
	struct phase r;
	uint64_t *list;

	if (n > b->nblocks) {
		die("--verify --requests %" PRIu64 ": the device holds %" PRIu64 " blocks", n,
		    b->nblocks);
	}
	list = verify_blocks(b, n);
	w.list = list;
	bench_hist_reset(&b->lat);
	run_phase(b, &w);
	report(b, &w, "verify-write");
	/* Read back in another order than written, so a device answering from a FIFO fails. */
	for (uint64_t i = 0; i + 1 < n; i += 2) {
		uint64_t t = list[i];

		list[i] = list[i + 1];
		list[i + 1] = t;
	}
	r = (struct phase){
	    .type = VIRTIO_BLK_T_IN, .total = n, .check = true, .lat = &b->lat, .list = list};
	bench_hist_reset(&b->lat);
	run_phase(b, &r);
	report(b, &r, "verify-read");
	if (!b->o.quiet) {
		fprintf(stderr,
		        "vblk-bench: verify: %" PRIu64 " blocks of %" PRIu64
		        " bytes written and read back intact\n",
		        n, b->o.size);
	}
	free(list);
}

int main(int argc, char **argv)
{
	static struct bench b;

	parse_args(&b.o, argc, argv);
	log_init(1, 0, "vblk-bench");
	b.rng = b.o.seed | 1;
	setup(&b);
	if (b.o.verify) {
		run_verify(&b);
	} else {
		run_bench(&b);
	}
	teardown(&b);
	return 0;
}
