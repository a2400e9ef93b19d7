/*
 * libFuzzer target for the split ring in the device role (bridge/virtq.c):
 * the fuzzer is the guest.
 *
 * Guest memory (gmem_add_host, each region its own heap block so that ASan
 * sees a step past any region end):
 *   A [0x0000, 0x4000)  B [0x4000, 0x8000)  hole  C [0xc000, 0x10000)
 * A and B touch in guest physical space but not in ours: a buffer or an
 * indirect table across 0x4000 must be split; one into the hole must fail.
 *
 * Input: a set-up header (queue size, EVENT_IDX, ring placement, base), then
 * a stream of operations: the guest writing descriptors, indirect tables,
 * avail entries and raw bytes, and the device popping, walking, pushing and
 * toggling notifications, up to a fixed budget.
 *
 * Checked besides memory safety: every chain handed out is within guest
 * memory region by region, its lengths add up, it has 1..num descriptors and
 * fewer than 2^32 bytes; walking it again at once gives the same chain; a
 * broken queue stays broken and consumes nothing; the in-flight count is
 * ours.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bridge/gmem.h"
#include "bridge/log.h"
#include "bridge/virtq.h"
#include "tests/fuzz/fuzz_input.h"

#define RSIZE        0x4000u
#define NREGIONS     3
#define UOFF         0x7f0000000000ull /* frontend virtual = gpa + UOFF */
#define BUDGET       2048              /* operations per input */
#define MAX_NUM_LOG2 8                 /* queues up to 256: rings fit region A */

static const uint64_t region_gpa[NREGIONS] = {0x0000, 0x4000, 0xc000};

/* Places a table or buffer may start: inside A, across A/B, before the hole, in C. */
static const uint64_t anchors[8] = {0x2400, 0x3ff0, 0x4000, 0x7fe0, 0x8000, 0xc000, 0x3000, 0x5000};

/* Ring layouts: desc, avail, used (guest physical), for queues up to 256. */
static const uint64_t layouts[4][3] = {
    {0x0000, 0x1000, 0x1800}, /* A, as QEMU lays them out */
    {0xc000, 0xd000, 0xd800}, /* C */
    {0x4000, 0x0000, 0xe000}, /* one part per region */
    {0x7000, 0x7f00, 0x7800}, /* B, avail close to the end */
};

struct harness {
	struct gmem mem;
	uint8_t *host[NREGIONS];
	struct virtq vq;
	uint64_t ring[3];
	uint16_t num;
	bool event_idx;
	uint16_t avail_idx; /* the guest's shadow */
	uint16_t inflight[VIRTQ_MAX_SIZE];
	unsigned ninflight;
};

static struct harness H;

/* Guest-side access by guest physical address, for our own writes; NULL in the hole. */
static uint8_t *gpa_host(uint64_t gpa, size_t len)
{
	for (int i = 0; i < NREGIONS; i++) {
		if (gpa >= region_gpa[i] && gpa - region_gpa[i] < RSIZE &&
		    len <= RSIZE - (gpa - region_gpa[i])) {
			return H.host[i] + (gpa - region_gpa[i]);
		}
	}
	return NULL;
}

static void guest_write(uint64_t gpa, const void *p, size_t len)
{
	uint8_t *h = gpa_host(gpa, len);

	if (h) {
		memcpy(h, p, len);
	}
}

static void put16(uint64_t gpa, uint16_t v)
{
	guest_write(gpa, &v, sizeof(v));
}

static bool in_one_region(const struct iovec *v)
{
	const uint8_t *b = v->iov_base;

	for (int i = 0; i < NREGIONS; i++) {
		if (b >= H.host[i] && b < H.host[i] + RSIZE &&
		    v->iov_len <= (size_t)(H.host[i] + RSIZE - b)) {
			return true;
		}
	}
	return false;
}

static bool chain_same(const struct virtq_chain *a, const struct virtq_chain *b)
{
	if (a->head != b->head || a->ndesc != b->ndesc || a->nrd != b->nrd || a->nwr != b->nwr ||
	    a->rd_len != b->rd_len || a->wr_len != b->wr_len) {
		return false;
	}
	return true;
}

/* What a chain from virtq_pop/virtq_walk promises (virtq.h). */
static void chain_check(const struct virtq_chain *c)
{
	uint8_t sink[256];

	FUZZ_CHECK(c->head < H.num);
	FUZZ_CHECK(c->ndesc >= 1 && c->ndesc <= H.num);
	FUZZ_CHECK(c->nrd >= 0 && c->nwr >= 0 && c->nrd + c->nwr <= H.vq.scratch_max);
	FUZZ_CHECK(c->nrd + c->nwr >= 1);
	FUZZ_CHECK(iov_length(c->iov, c->nrd) == c->rd_len);
	FUZZ_CHECK(iov_length(c->iov + c->nrd, c->nwr) == c->wr_len);
	FUZZ_CHECK((uint64_t)c->rd_len + c->wr_len < (1ull << 32));
	for (int i = 0; i < c->nrd + c->nwr; i++) {
		FUZZ_CHECK(c->iov[i].iov_len > 0);
		FUZZ_CHECK(in_one_region(&c->iov[i]));
	}
	/* Touch every byte as a device would; ASan checks what the region check may miss. */
	for (int i = 0; i < c->nrd; i++) {
		for (size_t off = 0; off < c->iov[i].iov_len; off += sizeof(sink)) {
			size_t n = c->iov[i].iov_len - off;

			memcpy(sink, (uint8_t *)c->iov[i].iov_base + off,
			       n < sizeof(sink) ? n : sizeof(sink));
		}
	}
	for (int i = c->nrd; i < c->nrd + c->nwr; i++) {
		memmove(c->iov[i].iov_base, c->iov[i].iov_base, c->iov[i].iov_len);
	}
}

/* A broken queue refuses everything and hands out nothing (adversarial case 22). */
static void broken_check(void)
{
	struct virtq_chain c;
	uint16_t last = H.vq.last_avail;

	FUZZ_CHECK(H.vq.err[0] != '\0');
	FUZZ_CHECK(virtq_pop(&H.vq, &c) == -EPROTO);
	FUZZ_CHECK(virtq_walk(&H.vq, 0, &c) == -EPROTO);
	FUZZ_CHECK(virtq_push(&H.vq, 0, 0) == -EPROTO);
	FUZZ_CHECK(!virtq_should_notify(&H.vq));
	FUZZ_CHECK(!virtq_has_avail(&H.vq));
	FUZZ_CHECK(!virtq_kick_enable(&H.vq, true));
	FUZZ_CHECK(H.vq.last_avail == last);
}

static void op_pop(struct fin *in)
{
	struct virtq_chain c, again;
	uint16_t last = H.vq.last_avail;
	int rc = virtq_pop(&H.vq, &c);

	if (rc < 0) {
		FUZZ_CHECK(rc == -EPROTO && H.vq.broken && H.vq.last_avail == last);
		return;
	}
	if (rc == 0) {
		FUZZ_CHECK(H.vq.last_avail == last);
		return;
	}
	FUZZ_CHECK(rc == 1 && H.vq.last_avail == (uint16_t)(last + 1));
	FUZZ_CHECK(H.ninflight < H.num);
	chain_check(&c);
	/* Nothing changed guest memory since: the same head walks to the same chain. */
	FUZZ_CHECK(virtq_walk(&H.vq, c.head, &again) == 0 && chain_same(&c, &again));
	H.inflight[H.ninflight++] = c.head;
	FUZZ_CHECK(H.vq.inflight == H.ninflight);
}

static void op_push(struct fin *in)
{
	uint8_t sel = fin_u8(in);
	uint32_t len = fin_u32(in);
	unsigned k;

	if (H.ninflight == 0 || sel == 0xff) {
		/* Nothing in flight, or a head that cannot be: refused, queue untouched. */
		uint16_t head =
		    H.ninflight ? (uint16_t)(H.num + (sel & 7)) : (uint16_t)(sel % H.num);

		FUZZ_CHECK(virtq_push(&H.vq, head, len) == -EINVAL);
		return;
	}
	k = sel % H.ninflight;
	FUZZ_CHECK(virtq_push(&H.vq, H.inflight[k], len) == 0);
	H.inflight[k] = H.inflight[--H.ninflight];
	FUZZ_CHECK(H.vq.inflight == H.ninflight);
}

static void op_walk(struct fin *in)
{
	struct virtq_chain c;
	uint16_t head = fin_u16(in);
	int rc = virtq_walk(&H.vq, head, &c);

	if (rc == 0) {
		FUZZ_CHECK(head < H.num);
		chain_check(&c);
	} else {
		FUZZ_CHECK(rc == -EPROTO && H.vq.broken);
	}
}

/* A descriptor in compact form: table anchor or the ring, entry, buffer anchor + offset. */
static void op_desc(struct fin *in, bool indirect_table)
{
	uint8_t where = fin_u8(in), idx = fin_u8(in), at = fin_u8(in);
	uint16_t off = fin_u16(in), len = fin_u16(in);
	uint8_t flags = fin_u8(in), next = fin_u8(in);
	uint64_t table = indirect_table ? anchors[where & 7] : H.ring[0];
	struct vring_desc d = {
	    .addr = anchors[at & 7] + (off & 0x3fff) - (at & 8 ? 0x2000 : 0),
	    .len = at & 0x10 ? 0xffffffffu - len : len,
	    .flags = (uint16_t)(flags & 7),
	    .next = next,
	};

	if (!indirect_table) {
		idx = (uint8_t)(idx % H.num);
	}
	guest_write(table + 16ull * idx, &d, sizeof(d));
}

/* The guest makes head available; the index moves only by what it says. */
static void op_avail(struct fin *in)
{
	uint8_t head = fin_u8(in), step = fin_u8(in);
	uint64_t avail = H.ring[1];

	put16(avail + 4 + 2ull * (H.avail_idx % H.num), head);
	/* Mostly one entry; sometimes a jump, also past num (adversarial case 22). */
	H.avail_idx = (uint16_t)(H.avail_idx + (step < 0xf0 ? 1 : step - 0xf0 + H.num - 7));
	put16(avail + 2, H.avail_idx);
}

/* Raw bytes anywhere in guest memory: rings, tables, event fields. */
static void op_raw(struct fin *in)
{
	uint8_t buf[32];
	uint8_t at = fin_u8(in);
	uint16_t off = fin_u16(in);
	size_t n = 1 + fin_u8(in) % sizeof(buf);
	uint64_t gpa = (at & 8 ? H.ring[at % 3] : anchors[at & 7]) + (off & 0xfff);
	const uint8_t *idx;

	fin_bytes(in, buf, n);
	guest_write(gpa, buf, n);
	/* The guest's shadow follows whatever landed on avail->idx. */
	idx = gpa_host(H.ring[1] + 2, 2);
	if (idx) {
		memcpy(&H.avail_idx, idx, 2);
	}
}

static void op_notify(struct fin *in)
{
	uint8_t what = fin_u8(in);

	switch (what % 3) {
	case 0:
		(void)virtq_kick_enable(&H.vq, what & 0x80);
		break;
	case 1:
		(void)virtq_should_notify(&H.vq);
		break;
	default:
		(void)virtq_has_avail(&H.vq);
		break;
	}
}

/* A stop and restart at last_avail, as GET_VRING_BASE then SET_VRING_* would do. */
static void op_restart(struct fin *in)
{
	uint16_t base = H.vq.last_avail;
	int rc;

	if (fin_u8(in) & 1) {
		FUZZ_CHECK(
		    virtq_remap(&H.vq, H.ring[0] + UOFF, H.ring[1] + UOFF, H.ring[2] + UOFF) == 0);
		return;
	}
	virtq_fini(&H.vq);
	rc = virtq_init(&H.vq, &H.mem, H.num, H.ring[0] + UOFF, H.ring[1] + UOFF, H.ring[2] + UOFF,
	                base, H.event_idx);
	FUZZ_CHECK(rc == 0);
	H.ninflight = 0;
}

typedef void (*op_fn)(struct fin *in);

static void op_desc_ring(struct fin *in)
{
	op_desc(in, false);
}

static void op_desc_table(struct fin *in)
{
	op_desc(in, true);
}

static const op_fn ops[] = {
    op_pop,        op_pop,   op_push,  op_walk, op_desc_ring, op_desc_ring,
    op_desc_table, op_avail, op_avail, op_raw,  op_notify,    op_restart,
};

/* Set-up from the header: queue size, EVENT_IDX, where the rings are, base. */
static int queue_setup(struct fin *in)
{
	uint8_t cfg = fin_u8(in), lay = fin_u8(in);
	uint16_t base = fin_u16(in);
	int rc;

	H.num = (uint16_t)(1u << (cfg % (MAX_NUM_LOG2 + 1)));
	H.event_idx = cfg & 0x10;
	if (lay & 0x80) {
		/* Anywhere at all, mostly refused (adversarial case 17). */
		for (int i = 0; i < 3; i++) {
			H.ring[i] = fin_u64(in);
		}
	} else {
		memcpy(H.ring, layouts[lay & 3], sizeof(H.ring));
	}
	H.avail_idx = base;
	put16(H.ring[1] + 2, base);
	memset(&H.vq, 0, sizeof(H.vq));
	rc = virtq_init(&H.vq, &H.mem, H.num, H.ring[0] + UOFF, H.ring[1] + UOFF, H.ring[2] + UOFF,
	                base, H.event_idx);
	if (rc < 0) {
		FUZZ_CHECK(H.vq.err[0] != '\0');
	}
	return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *why;

	fuzz_quiet_logs();
	gmem_init(&H.mem);
	for (int i = 0; i < NREGIONS; i++) {
		H.host[i] = aligned_alloc(64, RSIZE);
		if (!H.host[i] || gmem_add_host(&H.mem, region_gpa[i], RSIZE, region_gpa[i] + UOFF,
		                                H.host[i], &why) < 0) {
			abort();
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in;

	fin_init(&in, data, size);
	for (int i = 0; i < NREGIONS; i++) {
		memset(H.host[i], 0, RSIZE);
	}
	H.ninflight = 0;
	if (queue_setup(&in) == 0) {
		for (int n = 0; n < BUDGET && !fin_done(&in); n++) {
			ops[fin_u8(&in) % (sizeof(ops) / sizeof(ops[0]))](&in);
			if (H.vq.broken) {
				broken_check();
				break;
			}
		}
	}
	virtq_fini(&H.vq);
	return 0;
}
