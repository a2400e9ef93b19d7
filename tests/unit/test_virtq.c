/*
 * Unit tests for bridge/virtq.c. The guest is in memory: region A and B are
 * adjacent in guest physical space but apart in ours, then a hole, then C.
 * A test-side mini driver writes rings and descriptors byte by byte with its
 * own translation, so nothing here leans on the code under test to set up.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "bridge/gmem.h"
#include "bridge/util.h"
#include "bridge/virtq.h"

#define NUM       8
#define RSIZE     0x10000ull
#define A_GPA     0x00000ull
#define B_GPA     0x10000ull /* A/B boundary */
#define HOLE_GPA  0x20000ull
#define C_GPA     0x30000ull
#define UOFF      0x7f0000000000ull /* frontend virtual = gpa + UOFF */
#define DESC_GPA  0x0000ull
#define AVAIL_GPA 0x1000ull
#define USED_GPA  0x2000ull
#define TBL_GPA   0x3000ull
#define BUF_GPA   0x4000ull

#define N VRING_DESC_F_NEXT
#define W VRING_DESC_F_WRITE
#define I VRING_DESC_F_INDIRECT

struct guest {
	struct gmem mem;
	uint8_t *r[3];
	struct virtq vq;
	uint16_t num;
};

static const uint64_t region_gpa[3] = {A_GPA, B_GPA, C_GPA};

static int setup(void **state)
{
	struct guest *g = calloc(1, sizeof(*g));
	const char *why;

	assert_non_null(g);
	gmem_init(&g->mem);
	for (int i = 0; i < 3; i++) {
		g->r[i] = aligned_alloc(4096, RSIZE);
		assert_non_null(g->r[i]);
		memset(g->r[i], 0, RSIZE);
		assert_int_equal(gmem_add_host(&g->mem, region_gpa[i], RSIZE, region_gpa[i] + UOFF,
		                               g->r[i], &why),
		                 0);
	}
	g->num = NUM;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct guest *g = *state;

	virtq_fini(&g->vq);
	gmem_clear(&g->mem);
	for (int i = 0; i < 3; i++) {
		free(g->r[i]);
	}
	free(g);
	return 0;
}

/* The test's own translation, one byte at a time. */
static uint8_t *host_of(struct guest *g, uint64_t gpa)
{
	for (int i = 0; i < 3; i++) {
		if (gpa >= region_gpa[i] && gpa < region_gpa[i] + RSIZE) {
			return g->r[i] + (gpa - region_gpa[i]);
		}
	}
	fail_msg("test bug: gpa 0x%llx not mapped", (unsigned long long)gpa);
	return NULL;
}

static void g_write(struct guest *g, uint64_t gpa, const void *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		*host_of(g, gpa + i) = ((const uint8_t *)p)[i];
	}
}

static void g_read(struct guest *g, uint64_t gpa, void *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		((uint8_t *)p)[i] = *host_of(g, gpa + i);
	}
}

static void put16(struct guest *g, uint64_t gpa, uint16_t v)
{
	uint8_t b[2];

	put_le16(b, v);
	g_write(g, gpa, b, 2);
}

static uint16_t get16(struct guest *g, uint64_t gpa)
{
	uint8_t b[2];

	g_read(g, gpa, b, 2);
	return get_le16(b);
}

static uint32_t get32(struct guest *g, uint64_t gpa)
{
	uint8_t b[4];

	g_read(g, gpa, b, 4);
	return get_le32(b);
}

struct tdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static void set_desc(struct guest *g, uint64_t table, unsigned i, const struct tdesc *d)
{
	uint8_t raw[16];

	put_le64(raw, d->addr);
	put_le32(raw + 8, d->len);
	put_le16(raw + 12, d->flags);
	put_le16(raw + 14, d->next);
	g_write(g, table + 16ull * i, raw, sizeof(raw));
}

/* Mini driver: expose head at the next avail slot. */
static void avail_add(struct guest *g, uint16_t head)
{
	uint16_t idx = get16(g, AVAIL_GPA + 2);

	put16(g, AVAIL_GPA + 4 + 2ull * (idx % g->num), head);
	put16(g, AVAIL_GPA + 2, (uint16_t)(idx + 1));
}

static void dev_start(struct guest *g, uint16_t base, bool event_idx)
{
	int rc = virtq_init(&g->vq, &g->mem, g->num, DESC_GPA + UOFF, AVAIL_GPA + UOFF,
	                    USED_GPA + UOFF, base, event_idx);

	if (rc != 0) {
		fail_msg("virtq_init: %d %s", rc, g->vq.err);
	}
}

/* ---- descriptor chain table ---- */

struct dcase {
	const char *name;
	struct tdesc d[NUM];
	unsigned nd;
	struct tdesc t[NUM + 1];
	unsigned nt;
	uint16_t head;
	int rc;
	int nrd, nwr;
	uint32_t rd_len, wr_len;
	uint16_t ndesc;
	const char *err;
	uint64_t tbl; /* where t[] goes, TBL_GPA if 0 */
};

#define B(off) (BUF_GPA + (off))

/* Expected outcome: a chain (segments, bytes, descriptors) or a broken queue with a reason. */
#define OK(r, w, rl, wl, n)                                                                        \
	.rc = 1, .nrd = (r), .nwr = (w), .rd_len = (rl), .wr_len = (wl), .ndesc = (n)
#define BAD(why) .rc = -EPROTO, .err = (why)

/* Eight chained descriptors of 16 bytes: nrd readable, the rest writable. */
#define EIGHT(nrd)                                                                                 \
	{                                                                                          \
		{B(0x00), 16, (0 < nrd ? 0 : W) | N, 1}, {B(0x10), 16, (1 < nrd ? 0 : W) | N, 2},  \
		    {B(0x20), 16, (2 < nrd ? 0 : W) | N, 3},                                       \
		    {B(0x30), 16, (3 < nrd ? 0 : W) | N, 4},                                       \
		    {B(0x40), 16, (4 < nrd ? 0 : W) | N, 5},                                       \
		    {B(0x50), 16, (5 < nrd ? 0 : W) | N, 6},                                       \
		    {B(0x60), 16, (6 < nrd ? 0 : W) | N, 7}, {B(0x70), 16, (7 < nrd ? 0 : W), 0},  \
	}

static const struct dcase dcases[] = {
    {"simple chain", .d = {{B(0), 100, N, 1}, {B(0x1000), 200, W, 0}}, .nd = 2,
     OK(1, 1, 100, 200, 2)},
    {"buffer across A/B", .d = {{B_GPA - 0x80, 0x100, 0, 0}}, .nd = 1, OK(2, 0, 0x100, 0, 1)},
    {"buffer over the hole", .d = {{HOLE_GPA - 0x80, 0x100, W, 0}}, .nd = 1,
     BAD("not in guest memory")},
    {"buffer inside the hole", .d = {{HOLE_GPA + 0x800, 16, 0, 0}}, .nd = 1,
     BAD("not in guest memory")},
    {"head num-1", .d = {[NUM - 1] = {B(0), 1, 0, 0}}, .nd = NUM, .head = NUM - 1,
     OK(1, 0, 1, 0, 1)},
    {"head >= num", .d = {{B(0), 1, 0, 0}}, .nd = 1, .head = NUM, BAD("head 8 beyond")},
    {"next cycle", .d = {{B(0), 1, N, 1}, {B(0), 1, N, 0}}, .nd = 2, BAD("loop")},
    {"self loop", .d = {{B(0), 1, N, 0}}, .nd = 1, BAD("loop")},
    {"next >= num", .d = {{B(0), 1, N, NUM}}, .nd = 1, BAD("next 8")},
    {"chain of num descriptors", .d = EIGHT(4), .nd = NUM, OK(4, 4, 64, 64, NUM)},
    {"indirect of num entries", .d = {{TBL_GPA, 16 * NUM, I, 0}}, .nd = 1, .t = EIGHT(7), .nt = NUM,
     OK(7, 1, 112, 16, NUM)},
    {"num+1 descriptors (direct + indirect)", .d = {{B(0x100), 4, N, 1}, {TBL_GPA, 16 * NUM, I, 0}},
     .nd = 2, .t = EIGHT(7), .nt = NUM, BAD("more than 8 descriptors")},
    {"direct then indirect", .d = {{B(0), 4, N, 1}, {TBL_GPA, 32, I, 0}}, .nd = 2,
     .t = {{B(0x100), 4, N, 1}, {B(0x200), 8, W, 0}}, .nt = 2, OK(2, 1, 8, 8, 3)},
    {"indirect: WRITE on the pointer ignored", .d = {{TBL_GPA, 16, I | W, 0}}, .nd = 1,
     .t = {{B(0), 4, 0, 0}}, .nt = 1, OK(1, 0, 4, 0, 1)},
    {"indirect len 0", .d = {{TBL_GPA, 0, I, 0}}, .nd = 1, .t = {{B(0), 4, 0, 0}}, .nt = 1,
     BAD("multiple of 16")},
    {"indirect len 15", .d = {{TBL_GPA, 15, I, 0}}, .nd = 1, .t = {{B(0), 4, 0, 0}}, .nt = 1,
     BAD("multiple of 16")},
    {"indirect len 17", .d = {{TBL_GPA, 17, I, 0}}, .nd = 1, .t = {{B(0), 4, 0, 0}}, .nt = 1,
     BAD("multiple of 16")},
    {"indirect len > num*16", .d = {{TBL_GPA, 16 * (NUM + 1), I, 0}}, .nd = 1,
     .t = {{B(0), 4, 0, 0}}, .nt = 1, BAD("exceeds queue size")},
    {"INDIRECT inside indirect", .d = {{TBL_GPA, 32, I, 0}}, .nd = 1,
     .t = {{TBL_GPA + 0x100, 16, I, 0}}, .nt = 1, BAD("INDIRECT inside")},
    {"INDIRECT with NEXT", .d = {{TBL_GPA, 16, I | N, 1}, {B(0), 4, 0, 0}}, .nd = 2,
     .t = {{B(0), 4, 0, 0}}, .nt = 1, BAD("with NEXT")},
    {"indirect loop", .d = {{TBL_GPA, 32, I, 0}}, .nd = 1, .t = {{B(0), 1, N, 1}, {B(0), 1, N, 0}},
     .nt = 2, BAD("loop in indirect")},
    {"indirect next beyond table", .d = {{TBL_GPA, 32, I, 0}}, .nd = 1,
     .t = {{B(0), 1, N, 2}, {B(0), 1, 0, 0}}, .nt = 2, BAD("beyond table")},
    {"indirect table in the hole", .d = {{HOLE_GPA + 0x100, 32, I, 0}}, .nd = 1,
     BAD("not in guest memory")},
    {"indirect table over the hole", .d = {{HOLE_GPA - 0x10, 32, I, 0}}, .nd = 1,
     .t = {{B(0), 4, N, 1}}, .nt = 1, .tbl = HOLE_GPA - 0x10, BAD("not in guest memory")},
    {"len 0", .d = {{B(0), 0, 0, 0}}, .nd = 1, BAD("zero-length")},
    {"len 0 second", .d = {{B(0), 4, N, 1}, {B(0), 0, W, 0}}, .nd = 2, BAD("zero-length")},
    {"len 0 in indirect", .d = {{TBL_GPA, 16, I, 0}}, .nd = 1, .t = {{B(0), 0, 0, 0}}, .nt = 1,
     BAD("zero-length")},
    /* Over every region end here; one of 2^32-1 that is mapped: test_total_length. */
    {"len 0xFFFFFFFF", .d = {{B(0), 0xFFFFFFFF, 0, 0}}, .nd = 1, BAD("not in guest memory")},
    {"writable then readable", .d = {{B(0), 4, W | N, 1}, {B(0x10), 4, 0, 0}}, .nd = 2,
     BAD("readable descriptor after a writable")},
    {"writable then readable in indirect", .d = {{TBL_GPA, 32, I, 0}}, .nd = 1,
     .t = {{B(0), 4, W | N, 1}, {B(0x10), 4, 0, 0}}, .nt = 2,
     BAD("readable descriptor after a writable")},
    {"writable direct then readable indirect", .d = {{B(0), 4, W | N, 1}, {TBL_GPA, 16, I, 0}},
     .nd = 2, .t = {{B(0x10), 4, 0, 0}}, .nt = 1, BAD("readable descriptor after a writable")},
};

static void check_chain(const char *name, const struct virtq_chain *c, const struct dcase *e)
{
	if (c->nrd != e->nrd || c->nwr != e->nwr || c->rd_len != e->rd_len ||
	    c->wr_len != e->wr_len || c->ndesc != e->ndesc || c->head != e->head) {
		fail_msg("%s: head %u nrd %d nwr %d rd %u wr %u ndesc %u", name, c->head, c->nrd,
		         c->nwr, c->rd_len, c->wr_len, c->ndesc);
	}
	if (iov_length(c->iov, c->nrd) != c->rd_len ||
	    iov_length(c->iov + c->nrd, c->nwr) != c->wr_len) {
		fail_msg("%s: iovec lengths do not add up", name);
	}
}

static void run_dcase(struct guest *g, const struct dcase *e)
{
	struct virtq_chain c;
	int rc;

	memset(g->r[0], 0, RSIZE);
	virtq_fini(&g->vq);
	for (unsigned i = 0; i < e->nd; i++) {
		set_desc(g, DESC_GPA, i, &e->d[i]);
	}
	for (unsigned i = 0; i < e->nt; i++) {
		set_desc(g, e->tbl ? e->tbl : TBL_GPA, i, &e->t[i]);
	}
	avail_add(g, e->head);
	dev_start(g, 0, false);
	rc = virtq_pop(&g->vq, &c);
	if (rc != e->rc) {
		fail_msg("%s: pop %d want %d (%s)", e->name, rc, e->rc, g->vq.err);
	}
	if (rc < 0) {
		if (!g->vq.broken || strstr(g->vq.err, e->err) == NULL) {
			fail_msg("%s: err \"%s\", want \"%s\"", e->name, g->vq.err, e->err);
		}
		/* Broken stays broken: no reprocessing. */
		assert_int_equal(virtq_pop(&g->vq, &c), -EPROTO);
		return;
	}
	check_chain(e->name, &c, e);
	assert_int_equal(virtq_pop(&g->vq, &c), 0);
	/* Walking the same head again sees the same chain. */
	assert_int_equal(virtq_walk(&g->vq, e->head, &c), 0);
	check_chain(e->name, &c, e);
}

static void test_chain_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(dcases); i++) {
		run_dcase(*state, &dcases[i]);
	}
}

/* The two halves of a buffer across A/B land in two iovecs at the right places. */
static void test_chain_split_iov(void **state)
{
	struct guest *g = *state;
	struct tdesc d = {B_GPA - 0x80, 0x100, W, 0};
	struct virtq_chain c;
	uint8_t data[0x100];

	set_desc(g, DESC_GPA, 0, &d);
	avail_add(g, 0);
	dev_start(g, 0, false);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(c.nwr, 2);
	assert_ptr_equal(c.iov[0].iov_base, g->r[0] + RSIZE - 0x80);
	assert_int_equal(c.iov[0].iov_len, 0x80);
	assert_ptr_equal(c.iov[1].iov_base, g->r[1]);
	assert_int_equal(c.iov[1].iov_len, 0x80);
	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)i;
	}
	assert_int_equal(iov_from_buf(c.iov, c.nwr, 0, data, sizeof(data)), sizeof(data));
	memset(data, 0, sizeof(data));
	g_read(g, B_GPA - 0x80, data, sizeof(data));
	for (size_t i = 0; i < sizeof(data); i++) {
		assert_int_equal(data[i], (uint8_t)i);
	}
}

/*
 * The same indirect table at an address inside A, and across A/B (aligned
 * and with one descriptor straddling the boundary) gives the same chain.
 */
static void test_indirect_spanning(void **state)
{
	static const struct tdesc t[4] = {
	    {B(0x000), 0x10, N, 1},
	    {B_GPA - 0x40, 0x80, N, 2}, /* a buffer across A/B too */
	    {C_GPA + 0x100, 0x20, W | N, 3},
	    {B(0x300), 0x30, W, 0},
	};
	static const uint64_t where[] = {TBL_GPA, B_GPA - 0x20, B_GPA - 0x28, B_GPA - 0x38};
	struct guest *g = *state;
	struct iovec ref[8];
	struct virtq_chain c;
	int nref = 0;

	for (size_t w = 0; w < ARRAY_SIZE(where); w++) {
		struct tdesc d = {where[w], sizeof(t), I, 0};

		virtq_fini(&g->vq);
		memset(g->r[0], 0, 0x3000);
		/* No stale table bytes from the previous position. */
		memset(g->r[0] + RSIZE - 0x40, 0, 0x40);
		memset(g->r[1], 0, 0x40);
		for (unsigned i = 0; i < 4; i++) {
			set_desc(g, where[w], i, &t[i]);
		}
		set_desc(g, DESC_GPA, 0, &d);
		avail_add(g, 0);
		dev_start(g, 0, false);
		if (virtq_pop(&g->vq, &c) != 1) {
			fail_msg("table at 0x%llx: %s", (unsigned long long)where[w], g->vq.err);
		}
		assert_int_equal(c.nrd, 3);
		assert_int_equal(c.nwr, 2);
		assert_int_equal(c.rd_len, 0x90);
		assert_int_equal(c.wr_len, 0x50);
		assert_int_equal(c.ndesc, 4);
		if (w == 0) {
			nref = c.nrd + c.nwr;
			memcpy(ref, c.iov, sizeof(ref[0]) * (size_t)nref);
			continue;
		}
		assert_memory_equal(ref, c.iov, sizeof(ref[0]) * (size_t)nref);
	}
}

/* Lengths near 2^32 need a big region: reserve address space only, never touched. */
static void test_total_length(void **state)
{
	static const struct {
		const char *name;
		uint32_t len[2];
		unsigned n;
		int rc;
	} rows[] = {
	    {"2^32-1 in one descriptor", {0xFFFFFFFF}, 1, 1},
	    {"2^31 + 2^31", {0x80000000, 0x80000000}, 2, -EPROTO},
	    {"2^32-1 + 1", {0xFFFFFFFF, 1}, 2, -EPROTO},
	    {"2^32-2 + 1", {0xFFFFFFFE, 1}, 2, 1},
	};
	const uint64_t big = 0x100000000ull, big_size = 0x200000000ull;
	struct guest *g = *state;
	const char *why;
	void *res =
	    mmap(NULL, big_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_true(res != MAP_FAILED);
	assert_int_equal(gmem_add_host(&g->mem, big, big_size, big + UOFF, res, &why), 0);
	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		struct virtq_chain c;
		uint64_t at = big;
		int rc;

		virtq_fini(&g->vq);
		memset(g->r[0], 0, 0x3000);
		for (unsigned i = 0; i < rows[r].n; i++) {
			struct tdesc d = {at, rows[r].len[i], i + 1 < rows[r].n ? N : 0, i + 1};

			set_desc(g, DESC_GPA, i, &d);
			at += rows[r].len[i];
		}
		avail_add(g, 0);
		dev_start(g, 0, false);
		rc = virtq_pop(&g->vq, &c);
		if (rc != rows[r].rc) {
			fail_msg("%s: %d (%s)", rows[r].name, rc, g->vq.err);
		}
		if (rc < 0 && strstr(g->vq.err, "2^32") == NULL) {
			fail_msg("%s: err %s", rows[r].name, g->vq.err);
		}
	}
	virtq_fini(&g->vq);
	assert_int_equal(gmem_remove(&g->mem, big, big_size, big + UOFF), 0);
	munmap(res, big_size);
}

/* ---- avail index, in-flight and used index ---- */

static void add_simple_chains(struct guest *g, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct tdesc d = {B(0x100 * (i % g->num)), 16, W, 0};

		set_desc(g, DESC_GPA, i % g->num, &d);
		avail_add(g, (uint16_t)(i % g->num));
	}
}

static void test_avail_jump(void **state)
{
	static const struct {
		uint16_t jump;
		int rc;
	} rows[] = {{1, 1}, {NUM, 1}, {NUM + 1, -EPROTO}, {0x8000, -EPROTO}, {0xFFFF, -EPROTO}};
	struct guest *g = *state;

	add_simple_chains(g, NUM);
	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		struct virtq_chain c;
		int rc;

		virtq_fini(&g->vq);
		put16(g, AVAIL_GPA + 2, rows[r].jump);
		dev_start(g, 0, false);
		rc = virtq_pop(&g->vq, &c);
		if (rc != rows[r].rc) {
			fail_msg("jump %u: %d (%s)", rows[r].jump, rc, g->vq.err);
		}
		assert_int_equal(g->vq.last_avail, rc == 1 ? 1 : 0);
	}
}

static void test_inflight_bound(void **state)
{
	struct guest *g = *state;
	struct virtq_chain c;

	add_simple_chains(g, NUM);
	dev_start(g, 0, false);
	for (int i = 0; i < NUM; i++) {
		assert_int_equal(virtq_pop(&g->vq, &c), 1);
	}
	assert_int_equal(g->vq.inflight, NUM);
	assert_int_equal(virtq_pop(&g->vq, &c), 0);
	/* The guest offers a ninth chain while all eight heads are still ours. */
	avail_add(g, 0);
	assert_int_equal(virtq_pop(&g->vq, &c), -EPROTO);
	assert_non_null(strstr(g->vq.err, "in flight"));
}

static void test_push_wrap(void **state)
{
	struct guest *g = *state;
	struct virtq_chain c;
	const uint16_t start = 65534;

	put16(g, AVAIL_GPA + 2, start);
	put16(g, USED_GPA + 2, start);
	add_simple_chains(g, 4); /* avail idx 65534, 65535, 0, 1 */
	assert_int_equal(get16(g, AVAIL_GPA + 2), 2);
	dev_start(g, start, false);
	assert_int_equal(g->vq.used_idx, start);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&g->vq, &c), 1);
		assert_int_equal(c.head, i);
		assert_int_equal(virtq_push(&g->vq, c.head, 100 + i), 0);
		assert_int_equal(get16(g, USED_GPA + 2), (uint16_t)(start + i + 1));
	}
	assert_int_equal(virtq_pop(&g->vq, &c), 0);
	assert_int_equal(g->vq.last_avail, 2);
	for (unsigned i = 0; i < 4; i++) {
		uint16_t slot = (uint16_t)(start + i) % NUM;

		assert_int_equal(get32(g, USED_GPA + 4 + 8ull * slot), i);
		assert_int_equal(get32(g, USED_GPA + 8 + 8ull * slot), 100 + i);
	}
	/* Nothing in flight: a push is our bug, refused, the ring untouched. */
	assert_int_equal(virtq_push(&g->vq, 0, 1), -EINVAL);
	assert_int_equal(get16(g, USED_GPA + 2), 2);
	assert_false(g->vq.broken);
}

static void test_init_checks(void **state)
{
	static const struct {
		const char *name;
		uint16_t num;
		uint64_t desc, avail, used;
		int rc;
	} rows[] = {
	    {"ok", 8, DESC_GPA, AVAIL_GPA, USED_GPA, 0},
	    {"num 0", 0, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {"num 3", 3, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {"num 65535", 65535, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {"desc misaligned", 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, -EINVAL},
	    {"avail misaligned", 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, -EINVAL},
	    {"used misaligned", 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, -EINVAL},
	    {"desc in the hole", 8, HOLE_GPA, AVAIL_GPA, USED_GPA, -EFAULT},
	    {"desc across A/B", 8, B_GPA - 0x40, AVAIL_GPA, USED_GPA, -EFAULT},
	    {"used across the hole", 8, DESC_GPA, AVAIL_GPA, HOLE_GPA - 0x20, -EFAULT},
	    {"avail at the very end of C", 8, DESC_GPA, C_GPA + RSIZE - 22, USED_GPA, 0},
	    {"avail one byte short", 8, DESC_GPA, C_GPA + RSIZE - 20, USED_GPA, -EFAULT},
	};
	struct guest *g = *state;

	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		int rc;

		virtq_fini(&g->vq);
		rc = virtq_init(&g->vq, &g->mem, rows[r].num, rows[r].desc + UOFF,
		                rows[r].avail + UOFF, rows[r].used + UOFF, 0, true);
		if (rc != rows[r].rc) {
			fail_msg("%s: %d (%s)", rows[r].name, rc, g->vq.err);
		}
		if (rc < 0 && (g->vq.err[0] == '\0' || !g->vq.broken)) {
			fail_msg("%s: no reason or not broken", rows[r].name);
		}
	}
}

/* Remapping onto addresses that no longer exist leaves no pointer behind. */
static void test_remap(void **state)
{
	struct guest *g = *state;
	struct virtq_chain c;

	add_simple_chains(g, 1);
	dev_start(g, 0, false);
	assert_int_equal(virtq_remap(&g->vq, DESC_GPA + UOFF, AVAIL_GPA + UOFF, USED_GPA + UOFF),
	                 0);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(virtq_remap(&g->vq, HOLE_GPA + UOFF, AVAIL_GPA + UOFF, USED_GPA + UOFF),
	                 -EFAULT);
	assert_true(g->vq.broken);
	assert_null(g->vq.desc);
	assert_int_equal(virtq_pop(&g->vq, &c), -EPROTO);
	assert_int_equal(virtq_push(&g->vq, 0, 1), -EPROTO);
	assert_false(virtq_has_avail(&g->vq));
}

/* ---- notification decisions ---- */

static void test_need_event(void **state)
{
	static const struct {
		uint16_t event, new_idx, old_idx;
		bool expect;
	} rows[] = {
	    {0, 1, 0, true},     {1, 1, 0, false},        {0, 0, 0, false},
	    {5, 10, 5, true},    {9, 10, 5, true},        {10, 10, 5, false},
	    {4, 10, 5, false},   {65535, 0, 65535, true}, {65535, 1, 65534, true},
	    {0, 1, 65535, true}, {1, 1, 65535, false},    {65534, 2, 65535, false},
	};

	(void)state;
	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		if (virtq_need_event(rows[r].event, rows[r].new_idx, rows[r].old_idx) !=
		    rows[r].expect) {
			fail_msg("event %u new %u old %u", rows[r].event, rows[r].new_idx,
			         rows[r].old_idx);
		}
	}
}

static void pop_push(struct guest *g, unsigned n)
{
	struct virtq_chain c;

	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(virtq_pop(&g->vq, &c), 1);
		assert_int_equal(virtq_push(&g->vq, c.head, 0), 0);
	}
}

/* Device role, EVENT_IDX: used_event decides (2.7.7.2). */
static void test_notify_event_idx(void **state)
{
	static const struct {
		uint16_t start, used_event;
		unsigned npush;
		bool expect;
	} rows[] = {
	    {10, 10, 1, true},    {10, 11, 1, false},  {10, 11, 2, true},       {10, 9, 3, false},
	    {10, 12, 3, true},    {10, 10, 0, false},  {65535, 65535, 1, true}, {65535, 0, 2, true},
	    {65535, 1, 2, false}, {65534, 1, 4, true},
	};
	struct guest *g = *state;

	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		uint16_t s = rows[r].start;
		bool got;

		virtq_fini(&g->vq);
		memset(g->r[0], 0, 0x3000);
		put16(g, AVAIL_GPA + 2, s);
		put16(g, USED_GPA + 2, s);
		add_simple_chains(g, rows[r].npush);
		dev_start(g, s, true);
		/* Never signalled yet: the first decision says yes, whatever used_event says. */
		put16(g, AVAIL_GPA + 4 + 2 * NUM, s);
		assert_true(virtq_should_notify(&g->vq));
		put16(g, AVAIL_GPA + 4 + 2 * NUM, rows[r].used_event);
		/* The lower bit of flags is ignored with EVENT_IDX (2.7.7.2). */
		put16(g, AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
		pop_push(g, rows[r].npush);
		got = virtq_should_notify(&g->vq);
		if (got != rows[r].expect) {
			fail_msg("start %u used_event %u pushes %u: %d", s, rows[r].used_event,
			         rows[r].npush, got);
		}
		/* Nothing pushed since: no second notification. */
		assert_false(virtq_should_notify(&g->vq));
	}
}

static void test_notify_flags(void **state)
{
	struct guest *g = *state;

	add_simple_chains(g, 4);
	dev_start(g, 0, false);
	pop_push(g, 1);
	assert_true(virtq_should_notify(&g->vq));
	assert_false(virtq_should_notify(&g->vq)); /* nothing new */
	put16(g, AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
	pop_push(g, 1);
	assert_false(virtq_should_notify(&g->vq));
	put16(g, AVAIL_GPA, 0);
	assert_true(virtq_should_notify(&g->vq)); /* still unsignalled */
	/* used_event is ignored without EVENT_IDX. */
	put16(g, AVAIL_GPA + 4 + 2 * NUM, 100);
	pop_push(g, 1);
	assert_true(virtq_should_notify(&g->vq));
}

static void test_kick_enable(void **state)
{
	struct guest *g = *state;
	const uint64_t avail_event = USED_GPA + 4 + 8 * NUM;
	struct virtq_chain c;

	/* Flags: NO_NOTIFY in used->flags. */
	dev_start(g, 0, false);
	assert_false(virtq_kick_enable(&g->vq, false));
	assert_int_equal(get16(g, USED_GPA), VRING_USED_F_NO_NOTIFY);
	assert_false(virtq_kick_enable(&g->vq, true));
	assert_int_equal(get16(g, USED_GPA), 0);
	add_simple_chains(g, 2);
	assert_true(virtq_kick_enable(&g->vq, true));
	assert_true(virtq_has_avail(&g->vq));
	virtq_fini(&g->vq);

	/* EVENT_IDX: flags stay 0, avail_event follows last_avail while kicks are on. */
	put16(g, USED_GPA + 2, 0);
	dev_start(g, 0, true);
	assert_true(virtq_kick_enable(&g->vq, true));
	assert_int_equal(get16(g, avail_event), 0);
	pop_push(g, 2);
	assert_int_equal(virtq_pop(&g->vq, &c), 0); /* empty: re-armed at 2 */
	assert_int_equal(get16(g, avail_event), 2);
	assert_int_equal(get16(g, USED_GPA), 0);
	assert_false(virtq_kick_enable(&g->vq, false));
	add_simple_chains(g, 1);
	pop_push(g, 1);
	assert_int_equal(virtq_pop(&g->vq, &c), 0);
	assert_int_equal(get16(g, avail_event), 1); /* kicks off: parked behind us */
	assert_false(virtq_kick_enable(&g->vq, true));
	assert_int_equal(get16(g, avail_event), 3);
	assert_false(virtq_has_avail(&g->vq));
}

/* ---- a guest rewriting descriptors while they are walked (case 31) ---- */

/*
 * A second thread plays a guest that never stops rewriting the descriptor
 * table and two indirect tables (one inside A, one straddling A/B) with
 * hostile values, one byte at a time so that the device role also copies
 * torn descriptors, while this thread pops and re-walks chains. Whatever it
 * sees, every chain handed out must hold the invariants below, or the queue
 * must be broken with a reason; ASan checks that nothing outside guest memory
 * is read (each segment's first and last byte are touched).
 *
 * The unsynchronised access to the descriptor bytes is the point of the test:
 * it is meant for the normal and the ASan/UBSan builds. ThreadSanitizer would
 * (rightly) report that race; do not run this test under TSan.
 */
#define RACE_NUM    16
#define RACE_ROUNDS 10000
#define RACE_SYNC   16             /* rounds between waits for a fresh rewrite */
#define TBL2_GPA    (B_GPA - 0x28) /* an indirect table across A/B */

struct racer {
	struct guest *g;
	uint64_t seed;
	unsigned long passes; /* __atomic: whole rewrites done */
	int stop;             /* __atomic */
};

static uint64_t race_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/* The test's translation without cmocka (this runs off the main thread). */
static volatile uint8_t *race_byte(struct guest *g, uint64_t gpa)
{
	for (int i = 0; i < 3; i++) {
		if (gpa >= region_gpa[i] && gpa < region_gpa[i] + RSIZE) {
			return g->r[i] + (gpa - region_gpa[i]);
		}
	}
	return NULL;
}

static uint64_t race_addr(uint64_t r, bool indirect)
{
	static const uint64_t buf_at[] = {
	    B(0),
	    B(0x800),
	    B_GPA - 0x40, /* across A/B */
	    B_GPA + 0x100,
	    C_GPA,
	    C_GPA + RSIZE - 0x10,  /* up to the end of C */
	    HOLE_GPA - 0x10,       /* into the hole */
	    HOLE_GPA + 0x100,      /* in the hole */
	    C_GPA + RSIZE,         /* beyond all memory */
	    0xFFFFFFFFFFFFFFF0ull, /* wraps */
	    DESC_GPA,              /* the ring itself */
	};
	static const uint64_t tbl_at[] = {TBL_GPA, TBL2_GPA, TBL_GPA + 8, HOLE_GPA - 0x20};

	if (indirect && r % 4 != 0) {
		return tbl_at[(r >> 8) % ARRAY_SIZE(tbl_at)];
	}
	return buf_at[(r >> 8) % ARRAY_SIZE(buf_at)] + (r >> 40) % 0x40;
}

static uint32_t race_len(uint64_t r, bool indirect)
{
	static const uint32_t odd[] = {0,  0xFFFFFFFF, 0x80000000,         RSIZE,
	                               15, 17,         16 * (RACE_NUM + 1)};

	if (r % 8 == 0) {
		return odd[(r >> 8) % ARRAY_SIZE(odd)];
	}
	if (indirect) {
		return 16 * (1 + (uint32_t)(r >> 16) % RACE_NUM);
	}
	return 1 + (uint32_t)(r >> 16) % 0x100;
}

/*
 * One hostile descriptor, written byte by byte so a reader can catch it half
 * done. Chains mostly run forward and turn writable towards the end of the
 * table, so that sound chains of several descriptors, readable then writable,
 * come up among the broken ones.
 */
static void race_put(struct guest *g, uint64_t table, unsigned i, unsigned entries, uint64_t *s)
{
	uint64_t r = race_rand(s), r2 = race_rand(s);
	uint16_t flags = (uint16_t)(r2 & N), next;
	uint8_t raw[16];
	bool ind = r2 % 6 == 0;

	if ((r2 >> 8) % entries < i) {
		flags |= W;
	}
	if (ind) {
		flags |= I;
	}
	if (r2 % 64 == 1) {
		flags |= (uint16_t)(r2 >> 16) & 0xFFF8; /* undefined bits */
	}
	if (r2 % 4 != 0) {
		next = (uint16_t)(i + 1 + (r2 >> 32) % 2); /* forward, sometimes past the end */
	} else if (r2 % 64 != 4) {
		next = (uint16_t)((r2 >> 32) % entries); /* anywhere: loops */
	} else {
		next = 0xFFFF;
	}
	put_le64(raw, race_addr(r, ind));
	put_le32(raw + 8, race_len(r >> 4, ind));
	put_le16(raw + 12, flags);
	put_le16(raw + 14, next);
	for (unsigned b = 0; b < sizeof(raw); b++) {
		volatile uint8_t *p = race_byte(g, table + 16ull * i + b);

		if (p) {
			*p = raw[b];
		}
	}
}

static void *race_writer(void *arg)
{
	struct racer *rc = arg;
	uint64_t s = rc->seed;

	while (!__atomic_load_n(&rc->stop, __ATOMIC_RELAXED)) {
		for (unsigned i = 0; i < RACE_NUM; i++) {
			race_put(rc->g, DESC_GPA, i, RACE_NUM, &s);
			race_put(rc->g, TBL_GPA, i, RACE_NUM, &s);
			race_put(rc->g, TBL2_GPA, i, RACE_NUM, &s);
		}
		__atomic_fetch_add(&rc->passes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static bool in_guest(const struct guest *g, const struct iovec *v)
{
	for (int i = 0; i < 3; i++) {
		const uint8_t *p = v->iov_base, *r = g->r[i];

		if (p >= r && p < r + RSIZE && v->iov_len <= (size_t)(r + RSIZE - p)) {
			return true;
		}
	}
	return false;
}

/* NULL if the chain is sound, else what is wrong with it (in why). */
static const char *race_check(const struct guest *g, const struct virtq_chain *c, uint16_t head,
                              char *why, size_t whylen)
{
	uint64_t rd = 0, wr = 0;
	int nseg = c->nrd + c->nwr;

	if (c->head != head || c->ndesc < 1 || c->ndesc > g->num) {
		snprintf(why, whylen, "head %u (want %u), %u descriptors", c->head, head, c->ndesc);
		return why;
	}
	if (c->nrd < 0 || c->nwr < 0 || nseg < 1 || nseg > g->vq.scratch_max) {
		snprintf(why, whylen, "%d readable and %d writable segments", c->nrd, c->nwr);
		return why;
	}
	for (int i = 0; i < nseg; i++) {
		const struct iovec *v = &c->iov[i];
		const volatile uint8_t *p = v->iov_base;

		if (v->iov_len == 0 || !in_guest(g, v)) {
			snprintf(why, whylen, "segment %d (%p+%zu) not inside guest memory", i,
			         v->iov_base, v->iov_len);
			return why;
		}
		(void)p[0];
		(void)p[v->iov_len - 1];
		/* Readable segments are iov[0..nrd), writable ones follow. */
		*(i < c->nrd ? &rd : &wr) += v->iov_len;
	}
	if (rd != c->rd_len || wr != c->wr_len || rd + wr > UINT32_MAX) {
		snprintf(why, whylen, "lengths %u+%u, segments add up to %llu+%llu", c->rd_len,
		         c->wr_len, (unsigned long long)rd, (unsigned long long)wr);
		return why;
	}
	return NULL;
}

struct race_count {
	unsigned ok, multi, mixed, broken;
};

/* One chain offered, popped, walked again (as for a completion), pushed. NULL or why not sound. */
static const char *race_round(struct guest *g, uint16_t head, struct race_count *n, char *why,
                              size_t whylen)
{
	struct virtq_chain c;
	const char *bad;
	int rc;

	avail_add(g, head);
	rc = virtq_pop(&g->vq, &c);
	if (rc == 1) {
		if ((bad = race_check(g, &c, head, why, whylen)) != NULL) {
			return bad;
		}
		n->ok++;
		n->multi += c.ndesc > 1;
		n->mixed += c.nrd > 0 && c.nwr > 0;
		rc = virtq_walk(&g->vq, head, &c);
		if (rc == 0) {
			if ((bad = race_check(g, &c, head, why, whylen)) != NULL) {
				return bad;
			}
			if (virtq_push(&g->vq, head, 0) != 0) {
				snprintf(why, whylen, "push of a popped head failed");
				return why;
			}
			return NULL;
		}
	}
	/* A chain was offered: the only other answer is a broken queue, with a reason. */
	if (rc != -EPROTO || !g->vq.broken || g->vq.err[0] == '\0') {
		snprintf(why, whylen, "pop/walk returned %d, broken %d, err \"%s\"", rc,
		         g->vq.broken, g->vq.err);
		return why;
	}
	n->broken++;
	return NULL;
}

/* A fresh queue after a broken one (the endpoint would drop the VMM instead). */
static const char *race_restart(struct guest *g, bool event_idx, char *why, size_t whylen)
{
	int rc;

	virtq_fini(&g->vq);
	put16(g, AVAIL_GPA + 2, 0);
	put16(g, USED_GPA + 2, 0);
	rc = virtq_init(&g->vq, &g->mem, g->num, DESC_GPA + UOFF, AVAIL_GPA + UOFF, USED_GPA + UOFF,
	                0, event_idx);
	if (rc != 0) {
		snprintf(why, whylen, "virtq_init: %d %s", rc, g->vq.err);
		return why;
	}
	return NULL;
}

static void race_wait_pass(struct racer *w)
{
	unsigned long seen = __atomic_load_n(&w->passes, __ATOMIC_RELAXED);

	while (__atomic_load_n(&w->passes, __ATOMIC_RELAXED) == seen) {
		sched_yield();
	}
}

static void test_concurrent_rewrite(void **state)
{
	struct guest *g = *state;
	struct racer w = {.g = g, .seed = (uint64_t)time(NULL) * 2654435761u | 1};
	uint64_t s = w.seed ^ 0x9E3779B97F4A7C15ull;
	struct race_count n = {0};
	const char *bad = NULL;
	char why[200];
	pthread_t th;
	unsigned long passes;

	g->num = RACE_NUM;
	bad = race_restart(g, false, why, sizeof(why));
	assert_int_equal(pthread_create(&th, NULL, race_writer, &w), 0);
	for (unsigned round = 0; round < RACE_ROUNDS && !bad; round++) {
		/*
		 * The writer runs freely, but on a loaded host it may not get
		 * the CPU for a while: every few rounds wait for one more whole
		 * rewrite, so the tables keep changing under us in any case.
		 */
		if (round % RACE_SYNC == 0) {
			race_wait_pass(&w);
		}
		if (g->vq.broken) {
			bad = race_restart(g, round % 2, why, sizeof(why));
		}
		if (!bad) {
			bad = race_round(g, (uint16_t)(race_rand(&s) % RACE_NUM), &n, why,
			                 sizeof(why));
		}
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	passes = __atomic_load_n(&w.passes, __ATOMIC_RELAXED);
	if (bad) {
		fail_msg("seed %llu: %s", (unsigned long long)w.seed, bad);
	}
	/* The guest kept changing the tables, and both outcomes were seen many times. */
	if (passes < RACE_ROUNDS / RACE_SYNC || n.ok < RACE_ROUNDS / 100 ||
	    n.broken < RACE_ROUNDS / 100 || n.multi == 0 || n.mixed == 0) {
		fail_msg("seed %llu: %lu rewrites, %u chains (%u multi, %u mixed), %u broken",
		         (unsigned long long)w.seed, passes, n.ok, n.multi, n.mixed, n.broken);
	}
	print_message("%lu rewrites, %u chains (%u multi, %u mixed), %u broken\n", passes, n.ok,
	              n.multi, n.mixed, n.broken);
}

/* ---- driver role ---- */

#define INDIR_MAX 4

struct pair {
	struct guest *g;
	struct virtq_drv drv;
	uint8_t *drv_mem;
};

static void pair_start(struct pair *p, struct guest *g, bool event_idx, bool indirect)
{
	size_t need = virtq_drv_mem_bytes(NUM, indirect, INDIR_MAX);

	assert_true(need <= RSIZE);
	memset(g->r[0], 0, RSIZE);
	p->g = g;
	p->drv_mem = g->r[0];
	assert_int_equal(
	    virtq_drv_init(&p->drv, NUM, p->drv_mem, A_GPA, event_idx, indirect, INDIR_MAX), 0);
	assert_int_equal(p->drv.desc_addr % 4096, 0);
	assert_int_equal(p->drv.avail_addr % 4096, 0);
	assert_int_equal(p->drv.used_addr % 4096, 0);
	virtq_fini(&g->vq);
	assert_int_equal(virtq_init(&g->vq, &g->mem, NUM, p->drv.desc_addr + UOFF,
	                            p->drv.avail_addr + UOFF, p->drv.used_addr + UOFF, 0,
	                            event_idx),
	                 0);
}

/* Request k: nrd readable buffers in B (request 0's first across A/B), one writable in C. */
static unsigned make_bufs(unsigned k, unsigned nrd, struct virtq_buf *b)
{
	for (unsigned i = 0; i < nrd; i++) {
		b[i].addr = B_GPA + 0x1000 * k + 0x100 * i - (i == 0 ? 0x10 : 0);
		b[i].len = 0x20 + i;
	}
	b[nrd].addr = C_GPA + 0x1000 * k;
	b[nrd].len = 0x40;
	return nrd + 1;
}

struct req {
	unsigned k, nrd, nbuf;
	uint8_t seed;
	struct virtq_buf b[4];
};

/* Device side: check the readable bytes, reply with their sum, push len 1 + seed % 32. */
static void serve(struct guest *g, const struct virtq_chain *c)
{
	uint8_t in[0x100], sum = 0, out[32];
	size_t n = iov_to_buf(c->iov, c->nrd, 0, in, sizeof(in));
	uint32_t len;

	assert_int_equal(n, c->rd_len);
	for (size_t i = 0; i < n; i++) {
		sum = (uint8_t)(sum + in[i]);
	}
	len = 1 + in[0] % 32;
	memset(out, sum, sizeof(out));
	assert_int_equal(iov_from_buf(c->iov + c->nrd, c->nwr, 0, out, len), len);
	assert_int_equal(virtq_push(&g->vq, c->head, len), 0);
}

static void check_reply(struct guest *g, const struct req *r, uint32_t len)
{
	uint8_t sum = 0, got[32];

	for (unsigned i = 0; i < r->nrd; i++) {
		for (uint32_t j = 0; j < r->b[i].len; j++) {
			sum = (uint8_t)(sum + *host_of(g, r->b[i].addr + j));
		}
	}
	assert_int_equal(len, 1 + r->seed % 32);
	g_read(g, r->b[r->nrd].addr, got, len);
	for (uint32_t j = 0; j < len; j++) {
		assert_int_equal(got[j], sum);
	}
}

static unsigned fill_requests(struct pair *p, struct req *reqs, unsigned round)
{
	unsigned n = 0;

	for (unsigned k = 0; k < NUM; k++) {
		struct req *r = &reqs[k];

		r->k = k;
		r->nrd = (round + k) % 3; /* 0, 1 or 2 readable buffers */
		r->nbuf = make_bufs(k, r->nrd, r->b);
		r->seed = (uint8_t)(round * 7 + k);
		for (unsigned i = 0; i < r->nrd; i++) {
			uint8_t v = (uint8_t)(r->seed + i);

			for (uint32_t j = 0; j < r->b[i].len; j++) {
				*host_of(p->g, r->b[i].addr + j) = (uint8_t)(v + j);
			}
		}
		if (r->nrd == 0) {
			r->seed = 0; /* no readable bytes: in[0] is never filled */
		}
		if (virtq_drv_add(&p->drv, r->b, r->nrd, 1, r) == -ENOSPC) {
			break;
		}
		n++;
	}
	return n;
}

/* Pops all n, then completes them in reverse order; chains without readable bytes get len 1. */
static void serve_all(struct guest *g, unsigned n, uint16_t *heads)
{
	struct virtq_chain c;

	for (unsigned i = 0; i < n; i++) {
		int rc = virtq_pop(&g->vq, &c);

		if (rc != 1) {
			fail_msg("pop %u: %d (%s)", i, rc, g->vq.err);
		}
		heads[i] = c.head;
	}
	assert_int_equal(virtq_pop(&g->vq, &c), 0);
	/* Complete out of order: last popped first. */
	for (unsigned i = n; i-- > 0;) {
		assert_int_equal(virtq_walk(&g->vq, heads[i], &c), 0);
		if (c.nrd == 0) {
			uint8_t out[32];

			memset(out, 0, sizeof(out));
			iov_from_buf(c.iov, c.nwr, 0, out, 1);
			assert_int_equal(virtq_push(&g->vq, c.head, 1), 0);
			continue;
		}
		serve(g, &c);
	}
}

static void round_trip(void **state, bool event_idx, bool indirect)
{
	struct guest *g = *state;
	struct pair p;
	struct req reqs[NUM];
	uint16_t heads[NUM];
	unsigned total = 0;

	pair_start(&p, g, event_idx, indirect);
	for (unsigned round = 0; total < 70000; round++) {
		unsigned n = fill_requests(&p, reqs, round), got = 0;
		void *tok;
		uint32_t len;
		int rc;

		assert_true(n > 0);
		if (indirect) {
			assert_int_equal(n, NUM); /* one descriptor per chain */
		}
		/* The device re-armed when it ran empty: every round kicks. */
		assert_true(virtq_drv_kick_prepare(&p.drv));
		assert_false(virtq_drv_kick_prepare(&p.drv)); /* nothing new */
		serve_all(g, n, heads);
		assert_true(virtq_should_notify(&g->vq));
		while ((rc = virtq_drv_get(&p.drv, &tok, &len)) == 1) {
			check_reply(g, tok, len);
			got++;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(got, n);
		assert_int_equal(p.drv.num_free, NUM);
		total += n;
	}
	/* Indices went round 65535. */
	assert_true(total > 65536);
	assert_int_equal(p.drv.avail_idx, (uint16_t)total);
	assert_int_equal(g->vq.used_idx, (uint16_t)total);
	virtq_drv_fini(&p.drv);
}

static void test_round_trip_plain(void **state)
{
	round_trip(state, false, false);
}

static void test_round_trip_indirect(void **state)
{
	round_trip(state, false, true);
}

static void test_round_trip_event_idx(void **state)
{
	round_trip(state, true, false);
}

static void test_round_trip_both(void **state)
{
	round_trip(state, true, true);
}

/* Indirect tables are used only for chains of more than one buffer. */
static void test_drv_indirect_layout(void **state)
{
	struct guest *g = *state;
	struct pair p;
	struct virtq_buf b[4] = {{B(0), 4}, {B(0x10), 4}, {C_GPA, 8}, {C_GPA + 8, 8}};
	struct virtq_chain c;
	int t1, t2, t3;

	pair_start(&p, g, false, true);
	assert_int_equal(virtq_drv_add(&p.drv, b, 1, 0, &t1), 0);
	assert_int_equal(p.drv.desc[0].flags, 0);
	assert_int_equal(virtq_drv_add(&p.drv, b, 2, 1, &t2), 0);
	assert_int_equal(p.drv.desc[1].flags, VRING_DESC_F_INDIRECT);
	assert_int_equal(p.drv.desc[1].len, 3 * 16);
	assert_int_equal(p.drv.desc[1].addr, p.drv.indir_addr + 1 * INDIR_MAX * 16);
	assert_int_equal(p.drv.indir[INDIR_MAX + 2].flags, VRING_DESC_F_WRITE);
	/* More than indir_max buffers: a direct chain. */
	{
		struct virtq_buf five[5] = {{B(0), 1}, {B(1), 1}, {B(2), 1}, {B(3), 1}, {C_GPA, 1}};

		assert_int_equal(virtq_drv_add(&p.drv, five, 4, 1, &t3), 0);
		assert_int_equal(p.drv.desc[2].flags, VRING_DESC_F_NEXT);
		assert_int_equal(p.drv.num_free, NUM - 7);
		assert_int_equal(p.drv.desc[6].flags, VRING_DESC_F_WRITE);
	}
	virtq_drv_kick_prepare(&p.drv);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(c.ndesc, 1);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(c.ndesc, 3);
	assert_int_equal(c.nrd, 2);
	assert_int_equal(c.wr_len, 8);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(c.ndesc, 5);
	assert_int_equal(c.nwr, 1);
	virtq_drv_fini(&p.drv);
}

/* A table sized beyond num still never carries more than num descriptors. */
static void test_drv_indir_max_over_num(void **state)
{
	struct guest *g = *state;
	struct virtq_buf b[NUM + 1];
	struct virtq_drv drv;
	struct virtq_chain c;
	int tok;

	for (unsigned i = 0; i <= NUM; i++) {
		b[i].addr = B(0x10 * i);
		b[i].len = 0x10;
	}
	memset(g->r[0], 0, RSIZE);
	assert_true(virtq_drv_mem_bytes(NUM, true, 2 * NUM) <= RSIZE);
	assert_int_equal(virtq_drv_init(&drv, NUM, g->r[0], A_GPA, false, true, 2 * NUM), 0);
	assert_int_equal(virtq_drv_add(&drv, b, NUM + 1, 0, &tok), -EINVAL);
	assert_int_equal(virtq_drv_add(&drv, b, NUM - 1, 1, &tok), 0);
	assert_int_equal(drv.desc[0].len, 16 * NUM);
	virtq_drv_kick_prepare(&drv);
	virtq_fini(&g->vq);
	assert_int_equal(virtq_init(&g->vq, &g->mem, NUM, drv.desc_addr + UOFF,
	                            drv.avail_addr + UOFF, drv.used_addr + UOFF, 0, false),
	                 0);
	assert_int_equal(virtq_pop(&g->vq, &c), 1);
	assert_int_equal(c.ndesc, NUM);
	virtq_drv_fini(&drv);
}

static void test_drv_add_errors(void **state)
{
	struct guest *g = *state;
	struct pair p;
	struct virtq_buf b[NUM + 1];
	int tok;

	for (unsigned i = 0; i <= NUM; i++) {
		b[i].addr = B(0x10 * i);
		b[i].len = 0x10;
	}
	pair_start(&p, g, false, false);
	assert_int_equal(virtq_drv_add(&p.drv, b, 0, 0, &tok), -EINVAL);
	assert_int_equal(virtq_drv_add(&p.drv, b, 1, 0, NULL), -EINVAL);
	assert_int_equal(virtq_drv_add(&p.drv, b, NUM, 1, &tok), -EINVAL);
	assert_int_equal(virtq_drv_add(&p.drv, b, 0xFFFFFFFFu, 2, &tok), -EINVAL);
	b[1].len = 0;
	assert_int_equal(virtq_drv_add(&p.drv, b, 2, 0, &tok), -EINVAL);
	b[1].len = 0xFFFFFFF0u;
	assert_int_equal(virtq_drv_add(&p.drv, b, 2, 0, &tok), -EINVAL);
	b[1].len = 0x10;
	/* Three chains of two, then only two descriptors are left. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(virtq_drv_add(&p.drv, b, 1, 1, &tok), 0);
	}
	assert_int_equal(virtq_drv_add(&p.drv, b, 2, 1, &tok), -ENOSPC);
	assert_int_equal(virtq_drv_add(&p.drv, b, 1, 1, &tok), 0);
	assert_int_equal(virtq_drv_add(&p.drv, b, 1, 0, &tok), -ENOSPC);
	assert_int_equal(p.drv.num_free, 0);
	virtq_drv_fini(&p.drv);
	/* Indirect: one descriptor per chain, so num chains fit. */
	pair_start(&p, g, false, true);
	for (int i = 0; i < NUM; i++) {
		assert_int_equal(virtq_drv_add(&p.drv, b, 2, 2, &tok), 0);
	}
	assert_int_equal(virtq_drv_add(&p.drv, b, 2, 2, &tok), -ENOSPC);
	virtq_drv_fini(&p.drv);
	assert_int_equal(virtq_drv_init(&p.drv, 6, p.drv_mem, 0, false, false, 0), -EINVAL);
	assert_int_equal(virtq_drv_init(&p.drv, NUM, p.drv_mem, 8, false, true, 4), -EINVAL);
	assert_int_equal(virtq_drv_init(&p.drv, NUM, p.drv_mem, 8, false, false, 0), -EINVAL);
}

/* What a hostile device can write back: each row on a fresh pair. */
static void test_drv_reap_hostile(void **state)
{
	static const struct {
		const char *name;
		uint32_t id, len;
		uint16_t used_idx;
		int rc; /* 1: the token of chain id comes back */
		const char *err;
	} rows[] = {
	    {"good", 0, 5, 1, 1, NULL},
	    {"len returned as is", 1, 0xFFFFFFFF, 1, 1, NULL},
	    {"two-descriptor chain", 2, 0, 1, 1, NULL},
	    {"id == num", NUM, 0, 1, -EPROTO, "beyond queue size"},
	    {"id 0xFFFFFFFF", 0xFFFFFFFF, 0, 1, -EPROTO, "beyond queue size"},
	    {"id of a chain's second descriptor", 3, 0, 1, -EPROTO, "not outstanding"},
	    {"id of a free descriptor", 5, 0, 1, -EPROTO, "not outstanding"},
	    {"used idx jumps num+1", 0, 0, NUM + 1, -EPROTO, "ahead"},
	    {"used idx goes back", 0, 0, 0xFFFF, -EPROTO, "ahead"},
	    {"used idx jumps num", 0, 0, NUM, 1, NULL},
	};
	struct guest *g = *state;

	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		struct virtq_buf b[2] = {{B(0), 4}, {C_GPA, 4}};
		struct vring_used_elem *e;
		struct pair p;
		int t[3], rc;
		void *tok = NULL;
		uint32_t len = 0;

		pair_start(&p, g, false, false);
		assert_int_equal(virtq_drv_add(&p.drv, b, 1, 0, &t[0]), 0); /* head 0 */
		assert_int_equal(virtq_drv_add(&p.drv, b, 0, 1, &t[1]), 0); /* head 1 */
		assert_int_equal(virtq_drv_add(&p.drv, b, 1, 1, &t[2]), 0); /* heads 2 -> 3 */
		virtq_drv_kick_prepare(&p.drv);
		e = (struct vring_used_elem *)(p.drv.used + 2);
		e[0].id = rows[r].id;
		e[0].len = rows[r].len;
		p.drv.used[1] = rows[r].used_idx;
		rc = virtq_drv_get(&p.drv, &tok, &len);
		if (rc != rows[r].rc) {
			fail_msg("%s: %d (%s)", rows[r].name, rc, p.drv.err);
		}
		if (rc == 1) {
			assert_ptr_equal(tok, &t[rows[r].id]);
			assert_int_equal(len, rows[r].len);
			assert_int_equal(p.drv.num_free, NUM - 4 + (rows[r].id == 2 ? 2 : 1));
		} else if (!p.drv.broken || strstr(p.drv.err, rows[r].err) == NULL) {
			fail_msg("%s: err \"%s\"", rows[r].name, p.drv.err);
		}
		if (rc < 0) {
			/* Broken stays broken for every entry point. */
			assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), -EPROTO);
			assert_int_equal(virtq_drv_add(&p.drv, b, 1, 0, &t[0]), -EPROTO);
			assert_false(virtq_drv_kick_prepare(&p.drv));
		}
		virtq_drv_fini(&p.drv);
	}
}

/* The same id twice: the second time it is no longer outstanding. */
static void test_drv_reap_duplicate(void **state)
{
	struct guest *g = *state;
	struct virtq_buf b = {C_GPA, 4};
	struct vring_used_elem *e;
	struct pair p;
	int t0, t1;
	void *tok;
	uint32_t len;

	pair_start(&p, g, false, true);
	assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &t0), 0);
	assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &t1), 0);
	e = (struct vring_used_elem *)(p.drv.used + 2);
	e[0].id = 0;
	e[1].id = 0;
	p.drv.used[1] = 2;
	assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), 1);
	assert_ptr_equal(tok, &t0);
	assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), -EPROTO);
	assert_non_null(strstr(p.drv.err, "not outstanding"));
	virtq_drv_fini(&p.drv);
}

static void test_drv_kick_decisions(void **state)
{
	static const struct {
		uint16_t avail_event;
		unsigned nadd;
		bool expect;
	} rows[] = {
	    {0, 1, true},  {1, 1, false},      {1, 2, true},
	    {5, 3, false}, {0xFFFF, 1, false}, {2, 3, true},
	};
	struct guest *g = *state;
	struct virtq_buf b = {C_GPA, 4};
	int tok;

	for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
		struct pair p;
		uint16_t *avail_event;

		pair_start(&p, g, true, false);
		avail_event = p.drv.used + 2 + 4 * NUM;
		*avail_event = rows[r].avail_event;
		p.drv.used[0] = VRING_USED_F_NO_NOTIFY; /* ignored with EVENT_IDX */
		for (unsigned i = 0; i < rows[r].nadd; i++) {
			assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &tok), 0);
		}
		if (virtq_drv_kick_prepare(&p.drv) != rows[r].expect) {
			fail_msg("avail_event %u adds %u", rows[r].avail_event, rows[r].nadd);
		}
		assert_int_equal(p.drv.avail[1], rows[r].nadd);
		virtq_drv_fini(&p.drv);
	}
}

static void test_drv_kick_flags(void **state)
{
	struct guest *g = *state;
	struct virtq_buf b = {C_GPA, 4};
	struct pair p;
	int tok;

	pair_start(&p, g, false, false);
	assert_false(virtq_drv_kick_prepare(&p.drv)); /* nothing added */
	assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &tok), 0);
	assert_true(virtq_drv_kick_prepare(&p.drv));
	/* The device asks for no kicks. */
	assert_false(virtq_kick_enable(&g->vq, false));
	assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &tok), 0);
	assert_false(virtq_drv_kick_prepare(&p.drv));
	assert_true(virtq_kick_enable(&g->vq, true)); /* and finds the buffers itself */
	assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &tok), 0);
	assert_true(virtq_drv_kick_prepare(&p.drv));
	virtq_drv_fini(&p.drv);
}

/* Interrupt suppression seen from both sides, with and without EVENT_IDX. */
static void test_drv_cb_enable(void **state)
{
	struct guest *g = *state;
	struct virtq_buf b = {C_GPA, 4};
	struct virtq_chain c;
	void *tok;
	uint32_t len;
	int t;

	for (int ev = 0; ev < 2; ev++) {
		struct pair p;

		pair_start(&p, g, ev, false);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(virtq_drv_add(&p.drv, &b, 0, 1, &t), 0);
		}
		virtq_drv_kick_prepare(&p.drv);
		/* Interrupts on: first completion notifies. */
		pop_push(g, 1);
		assert_true(virtq_should_notify(&g->vq));
		assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), 1);
		assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), 0);
		if (ev) {
			assert_int_equal(p.drv.avail[2 + NUM], 1); /* used_event re-armed */
		}
		/* Off: the device stays quiet. */
		assert_false(virtq_drv_cb_enable(&p.drv, false));
		if (!ev) {
			assert_int_equal(p.drv.avail[0], VRING_AVAIL_F_NO_INTERRUPT);
		}
		pop_push(g, 1);
		assert_false(virtq_should_notify(&g->vq));
		/* On again: pending work reported, and the next completion notifies. */
		assert_true(virtq_drv_cb_enable(&p.drv, true));
		assert_int_equal(p.drv.avail[0], 0);
		assert_int_equal(virtq_drv_get(&p.drv, &tok, &len), 1);
		assert_false(virtq_drv_cb_enable(&p.drv, true));
		pop_push(g, 1);
		assert_true(virtq_should_notify(&g->vq));
		assert_int_equal(virtq_pop(&g->vq, &c), 1);
		virtq_drv_fini(&p.drv);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_chain_table),
	    T(test_chain_split_iov),
	    T(test_indirect_spanning),
	    T(test_total_length),
	    T(test_avail_jump),
	    T(test_inflight_bound),
	    T(test_push_wrap),
	    T(test_init_checks),
	    T(test_remap),
	    T(test_need_event),
	    T(test_notify_event_idx),
	    T(test_notify_flags),
	    T(test_kick_enable),
	    T(test_concurrent_rewrite),
	    T(test_round_trip_plain),
	    T(test_round_trip_indirect),
	    T(test_round_trip_event_idx),
	    T(test_round_trip_both),
	    T(test_drv_indirect_layout),
	    T(test_drv_add_errors),
	    T(test_drv_indir_max_over_num),
	    T(test_drv_reap_hostile),
	    T(test_drv_reap_duplicate),
	    T(test_drv_kick_decisions),
	    T(test_drv_kick_flags),
	    T(test_drv_cb_enable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
