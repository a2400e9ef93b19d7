/*
 * libFuzzer target for the split ring in the driver role (bridge/virtq.c):
 * we publish chains on rings we own, the fuzzer is the device backend that
 * shares them and writes whatever it likes into the used ring, the event
 * fields and even our descriptor table between our adds.
 *
 * An honest device (the device role of the same module, over the same
 * memory) can also pop and complete chains. As long as the fuzzer has not
 * scribbled on the rings and every buffer lies in the data region, each chain
 * we publish must pass the device role's checks (what one side sends, the
 * other accepts).
 *
 * Checked besides memory safety: a reaped token was outstanding and comes
 * back once; the free count moves by exactly what the chain took; adds are
 * refused only for the documented reasons; a broken queue stays broken.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/gmem.h"
#include "bridge/log.h"
#include "bridge/virtq.h"
#include "tests/fuzz/fuzz_input.h"

#define MAX_NUM_LOG2 7 /* queues up to 128 */
#define MAX_NUM      (1u << MAX_NUM_LOG2)
#define DATA_GPA     0x0ull
#define DATA_SIZE    0x11000u    /* the largest small buffer at the last anchor fits */
#define RING_GPA     0x100000ull /* where the device sees our rings */
#define UOFF         0x7f0000000000ull
#define BUDGET       2048
#define MAX_BUFS     (MAX_NUM + 2)

struct token {
	bool outstanding;
	uint16_t ndesc; /* descriptors the chain took off the free list */
};

struct harness {
	struct virtq_drv drv;
	struct virtq dev; /* the honest device */
	bool dev_ok;
	struct gmem mem;
	uint8_t *data;
	uint8_t *ring_mem;
	size_t ring_len;
	uint16_t num;
	bool lax; /* the fuzzer wrote into the rings, or a buffer is beyond the data region */
	uint16_t dev_used;
	struct token tok[MAX_NUM];
	unsigned noutstanding;
	unsigned taken; /* descriptors held by outstanding chains */
};

static struct harness H;

static void accounting_check(void)
{
	FUZZ_CHECK(H.drv.num_free <= H.num);
	FUZZ_CHECK(H.drv.num_free + H.taken == H.num);
}

static void broken_check(void)
{
	struct virtq_buf b = {DATA_GPA, 1};
	void *t;
	uint32_t len;

	FUZZ_CHECK(H.drv.err[0] != '\0');
	FUZZ_CHECK(virtq_drv_get(&H.drv, &t, &len) == -EPROTO);
	FUZZ_CHECK(virtq_drv_add(&H.drv, &b, 1, 0, &H.tok[0]) == -EPROTO);
	FUZZ_CHECK(!virtq_drv_kick_prepare(&H.drv));
	FUZZ_CHECK(!virtq_drv_cb_enable(&H.drv, true));
}

/* The reasons virtq.h gives for -EINVAL, computed independently. */
static bool bufs_invalid(const struct virtq_buf *b, unsigned nrd, unsigned nwr)
{
	uint64_t total = 0;

	if (nrd + nwr == 0 || nrd + nwr > H.num) {
		return true;
	}
	for (unsigned k = 0; k < nrd + nwr; k++) {
		if (b[k].len == 0) {
			return true;
		}
		total += b[k].len;
	}
	return total > UINT32_MAX;
}

static struct token *free_token(void)
{
	for (unsigned i = 0; i < H.num; i++) {
		if (!H.tok[i].outstanding) {
			return &H.tok[i];
		}
	}
	return NULL;
}

/* Buffers inside the data region (so the honest device can map them), lengths mostly small. */
static void op_add(struct fin *in)
{
	struct virtq_buf b[MAX_BUFS];
	uint8_t shape = fin_u8(in);
	unsigned nrd = shape & 7, nwr = (shape >> 3) & 7;
	struct token *t = free_token();
	uint16_t before = H.drv.num_free;
	int rc;

	if (shape & 0x40) {
		nrd = H.num + (shape & 1); /* at and past the limit */
	}
	for (unsigned k = 0; k < nrd + nwr && k < MAX_BUFS; k++) {
		uint16_t len = fin_u16(in);

		b[k].addr = DATA_GPA + (uint64_t)(fin_u8(in) * 0x100u);
		b[k].len = shape & 0x80 && k == 0 ? 0xfffffff0u + (len & 0xf) : len & 0xfff;
	}
	if (nrd + nwr > MAX_BUFS || !t) {
		return;
	}
	rc = virtq_drv_add(&H.drv, b, nrd, nwr, t);
	if (bufs_invalid(b, nrd, nwr)) {
		FUZZ_CHECK(rc == -EINVAL);
		return;
	}
	if (rc == -ENOSPC) {
		FUZZ_CHECK(H.drv.num_free < nrd + nwr);
		return;
	}
	FUZZ_CHECK(rc == 0);
	/* A 4 GiB buffer: valid for us, beyond guest memory for the device. */
	H.lax |= shape & 0x80;
	t->ndesc = (uint16_t)(before - H.drv.num_free);
	/* An indirect table takes one descriptor, a direct chain one per buffer. */
	FUZZ_CHECK(t->ndesc == nrd + nwr || (H.drv.indirect && t->ndesc == 1));
	t->outstanding = true;
	H.noutstanding++;
	H.taken += t->ndesc;
}

static void op_kick(struct fin *in)
{
	(void)virtq_drv_kick_prepare(&H.drv);
}

static void op_get(struct fin *in)
{
	void *tv = NULL;
	uint32_t len;
	int rc = virtq_drv_get(&H.drv, &tv, &len);
	struct token *t = tv;

	if (rc != 1) {
		FUZZ_CHECK(rc == 0 || (rc == -EPROTO && H.drv.broken));
		return;
	}
	FUZZ_CHECK(t >= H.tok && t < H.tok + H.num && t->outstanding);
	t->outstanding = false;
	H.noutstanding--;
	H.taken -= t->ndesc;
}

static void op_cb(struct fin *in)
{
	(void)virtq_drv_cb_enable(&H.drv, fin_u8(in) & 1);
}

/* The hostile device: one used entry, then the index moved by what it likes. */
static void op_used(struct fin *in)
{
	uint8_t how = fin_u8(in);
	uint32_t id = how & 0x80 ? fin_u32(in) : fin_u8(in);
	uint32_t len = fin_u32(in);
	struct vring_used_elem *e = (struct vring_used_elem *)(H.drv.used + 2);
	uint16_t slot = (uint16_t)(H.dev_used + (how & 3));

	e[slot & (H.num - 1)].id = id;
	e[slot & (H.num - 1)].len = len;
	H.dev_used = (uint16_t)(H.dev_used + (how & 0x40 ? fin_u16(in) : 1));
	__atomic_store_n(&H.drv.used[1], H.dev_used, __ATOMIC_RELEASE);
	H.lax = true;
}

/* Raw bytes into our shared ring memory: descriptors, avail, used, event fields, tables. */
static void op_scribble(struct fin *in)
{
	uint8_t buf[16];
	uint32_t off = fin_u32(in) % H.ring_len;
	size_t n = 1 + fin_u8(in) % sizeof(buf);

	if (n > H.ring_len - off) {
		n = H.ring_len - off;
	}
	fin_bytes(in, buf, n);
	memcpy(H.ring_mem + off, buf, n);
	H.lax = true;
}

/*
 * The honest device pops what we published and completes it. Until the
 * fuzzer scribbles, every chain must pass the device role's checks.
 */
static void op_device(struct fin *in)
{
	struct virtq_chain c;
	uint8_t n = fin_u8(in) % 4;
	int rc;

	if (!H.dev_ok || H.dev.broken) {
		return;
	}
	for (uint8_t i = 0; i <= n; i++) {
		rc = virtq_pop(&H.dev, &c);
		if (rc <= 0) {
			FUZZ_CHECK(rc == 0 || H.lax);
			return;
		}
		FUZZ_CHECK(virtq_push(&H.dev, c.head, c.wr_len) == 0);
		H.dev_used = H.dev.used_idx;
	}
	(void)virtq_should_notify(&H.dev);
}

typedef void (*op_fn)(struct fin *in);

static const op_fn ops[] = {
    op_add, op_add, op_kick, op_get, op_get, op_cb, op_used, op_scribble, op_device, op_device,
};

static int queue_setup(struct fin *in)
{
	uint8_t cfg = fin_u8(in), imax = fin_u8(in) & 0x3f;
	bool event_idx = cfg & 0x10, indirect = cfg & 0x20;
	const char *why;
	int rc;

	H.num = (uint16_t)(1u << (cfg % (MAX_NUM_LOG2 + 1)));
	H.ring_len = virtq_drv_mem_bytes(H.num, indirect, imax);
	H.ring_mem = aligned_alloc(4096, H.ring_len);
	if (!H.ring_mem) {
		return -ENOMEM;
	}
	memset(H.ring_mem, 0, H.ring_len);
	rc = virtq_drv_init(&H.drv, H.num, H.ring_mem, RING_GPA, event_idx, indirect, imax);
	FUZZ_CHECK(rc == 0);
	gmem_init(&H.mem);
	FUZZ_CHECK(gmem_add_host(&H.mem, DATA_GPA, DATA_SIZE, DATA_GPA + UOFF, H.data, &why) == 0);
	FUZZ_CHECK(gmem_add_host(&H.mem, RING_GPA, H.ring_len, RING_GPA + UOFF, H.ring_mem, &why) ==
	           0);
	memset(&H.dev, 0, sizeof(H.dev));
	rc = virtq_init(&H.dev, &H.mem, H.num, H.drv.desc_addr + UOFF, H.drv.avail_addr + UOFF,
	                H.drv.used_addr + UOFF, 0, event_idx);
	FUZZ_CHECK(rc == 0);
	H.dev_ok = true;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_logs();
	H.data = aligned_alloc(4096, DATA_SIZE);
	if (!H.data) {
		abort();
	}
	memset(H.data, 0, DATA_SIZE);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in;

	fin_init(&in, data, size);
	memset(H.tok, 0, sizeof(H.tok));
	H.noutstanding = H.taken = 0;
	H.lax = false;
	H.dev_used = 0;
	H.dev_ok = false;
	if (queue_setup(&in) < 0) {
		return 0;
	}
	for (int n = 0; n < BUDGET && !fin_done(&in); n++) {
		ops[fin_u8(&in) % (sizeof(ops) / sizeof(ops[0]))](&in);
		if (H.drv.broken) {
			broken_check();
			break;
		}
		accounting_check();
	}
	virtq_fini(&H.dev);
	virtq_drv_fini(&H.drv);
	gmem_clear(&H.mem);
	free(H.ring_mem);
	H.ring_mem = NULL;
	return 0;
}
