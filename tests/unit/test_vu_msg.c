/* vu_msg: header parsing, per-request size/fd rules, decoders and encoders. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "bridge/vu_msg.h"

#define OK  0
#define BAD (-EPROTO)

/* ---- header ---- */

struct hdr_case {
	const char *what;
	uint32_t flags;
	uint32_t size;
	bool is_reply;
	int expect;
};

static const struct hdr_case hdr_cases[] = {
    {"request v1", 0x1, 8, false, OK},
    {"request v1 NEED_REPLY", 0x9, 8, false, OK},
    {"reply v1", 0x5, 8, true, OK},
    {"version 0", 0x0, 8, false, BAD},
    {"version 2", 0x2, 8, false, BAD},
    {"version 3", 0x3, 8, false, BAD},
    {"reply version 0", 0x4, 8, true, BAD},
    {"REPLY on a request", 0x5, 8, false, BAD},
    {"reply without REPLY", 0x1, 8, true, BAD},
    {"NEED_REPLY on a reply", 0xd, 8, true, BAD},
    {"size 0", 0x1, 0, false, OK},
    {"size 4096", 0x1, 4096, false, OK},
    {"size 4097", 0x1, 4097, false, BAD},
    {"size 0xFFFFFFFF", 0x1, 0xffffffffu, false, BAD},
    {"reply size 0xFFFFFFFF", 0x5, 0xffffffffu, true, BAD},
};

static void test_hdr_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(hdr_cases); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		uint8_t hdr[VU_HDR_SIZE];
		uint32_t req = 0, flags = 0, size = 0;
		const char *why = NULL;
		int ret;

		vu_hdr_put(hdr, VHOST_USER_SET_FEATURES, c->flags, c->size);
		ret = vu_hdr_parse(hdr, c->is_reply, &req, &flags, &size, &why);
		print_message("hdr %-24s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
		if (ret == 0) {
			assert_int_equal(req, VHOST_USER_SET_FEATURES);
			assert_int_equal(flags, c->flags);
			assert_int_equal(size, c->size);
		} else {
			assert_non_null(why);
		}
	}
}

static void test_hdr_bytes(void **state)
{
	uint8_t hdr[VU_HDR_SIZE];
	static const uint8_t want[VU_HDR_SIZE] = {0x0d, 0, 0, 0, 0x05, 0, 0, 0, 0x28, 0, 0, 0};

	vu_hdr_put(hdr, VHOST_USER_SET_VRING_CALL, VU_VERSION | VU_FLAG_REPLY, 40);
	assert_memory_equal(hdr, want, sizeof(want));
}

/* ---- per-request rules ---- */

struct req_case {
	const char *what;
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint64_t w[5]; /* payload as little-endian u64 words */
	unsigned nfds;
	int expect;
};

#define V1 VU_VERSION
/* A valid single region: padding, gpa, size, uaddr, mmap offset. */
#define REGION 0, 0x100000, 0x10000, 0x7f0000000000ull, 0
/* Config access: offset 0, size 4, flags 0, 4 data bytes. */
#define CFG4 (4ull << 32), (0x44332211ull << 32)

static const struct req_case req_cases[] = {
    {"GET_FEATURES", VHOST_USER_GET_FEATURES, V1, 0, {0}, 0, OK},
    {"GET_FEATURES size 8", VHOST_USER_GET_FEATURES, V1, 8, {0}, 0, BAD},
    {"GET_FEATURES with fd", VHOST_USER_GET_FEATURES, V1, 0, {0}, 1, BAD},
    {"SET_FEATURES", VHOST_USER_SET_FEATURES, V1, 8, {1ull << 30}, 0, OK},
    {"SET_FEATURES size 0", VHOST_USER_SET_FEATURES, V1, 0, {0}, 0, BAD},
    {"SET_FEATURES size 7", VHOST_USER_SET_FEATURES, V1, 7, {0}, 0, BAD},
    {"SET_FEATURES size 16", VHOST_USER_SET_FEATURES, V1, 16, {0}, 0, BAD},
    {"SET_FEATURES 2 fds", VHOST_USER_SET_FEATURES, V1, 8, {0}, 2, BAD},
    {"SET_OWNER", VHOST_USER_SET_OWNER, V1, 0, {0}, 0, OK},
    {"SET_OWNER size 8", VHOST_USER_SET_OWNER, V1, 8, {0}, 0, BAD},
    {"RESET_OWNER", VHOST_USER_RESET_OWNER, V1, 0, {0}, 0, OK},
    {"SET_VRING_NUM", VHOST_USER_SET_VRING_NUM, V1, 8, {0}, 0, OK},
    {"SET_VRING_NUM size 4", VHOST_USER_SET_VRING_NUM, V1, 4, {0}, 0, BAD},
    {"SET_VRING_NUM size 12", VHOST_USER_SET_VRING_NUM, V1, 12, {0}, 0, BAD},
    {"SET_VRING_NUM with fd", VHOST_USER_SET_VRING_NUM, V1, 8, {0}, 1, BAD},
    {"SET_VRING_ADDR", VHOST_USER_SET_VRING_ADDR, V1, 40, {0}, 0, OK},
    {"SET_VRING_ADDR size 32", VHOST_USER_SET_VRING_ADDR, V1, 32, {0}, 0, BAD},
    {"SET_VRING_ADDR size 48", VHOST_USER_SET_VRING_ADDR, V1, 48, {0}, 0, BAD},
    {"SET_VRING_BASE", VHOST_USER_SET_VRING_BASE, V1, 8, {0}, 0, OK},
    {"GET_VRING_BASE", VHOST_USER_GET_VRING_BASE, V1, 8, {0}, 0, OK},
    {"GET_VRING_BASE size 0", VHOST_USER_GET_VRING_BASE, V1, 0, {0}, 0, BAD},
    {"SET_VRING_KICK fd", VHOST_USER_SET_VRING_KICK, V1, 8, {0}, 1, OK},
    {"SET_VRING_KICK idx 255 fd", VHOST_USER_SET_VRING_KICK, V1, 8, {0xff}, 1, OK},
    {"SET_VRING_KICK nofd", VHOST_USER_SET_VRING_KICK, V1, 8, {0x100}, 0, OK},
    {"SET_VRING_KICK missing fd", VHOST_USER_SET_VRING_KICK, V1, 8, {0}, 0, BAD},
    {"SET_VRING_KICK nofd + fd", VHOST_USER_SET_VRING_KICK, V1, 8, {0x100}, 1, BAD},
    {"SET_VRING_KICK 2 fds", VHOST_USER_SET_VRING_KICK, V1, 8, {0}, 2, BAD},
    {"SET_VRING_KICK idx 0x10000", VHOST_USER_SET_VRING_KICK, V1, 8, {0x10000}, 1, BAD},
    {"SET_VRING_KICK idx 0xFFFFFFFF", VHOST_USER_SET_VRING_KICK, V1, 8, {0xffffffff}, 1, BAD},
    {"SET_VRING_KICK bit 9", VHOST_USER_SET_VRING_KICK, V1, 8, {0x200}, 1, BAD},
    {"SET_VRING_KICK bit 32", VHOST_USER_SET_VRING_KICK, V1, 8, {1ull << 32}, 1, BAD},
    {"SET_VRING_KICK bit 63", VHOST_USER_SET_VRING_KICK, V1, 8, {1ull << 63}, 1, BAD},
    {"SET_VRING_KICK size 4", VHOST_USER_SET_VRING_KICK, V1, 4, {0}, 1, BAD},
    {"SET_VRING_CALL idx 5 nofd", VHOST_USER_SET_VRING_CALL, V1, 8, {0x105}, 0, OK},
    {"SET_VRING_CALL idx 0x10000", VHOST_USER_SET_VRING_CALL, V1, 8, {0x10000}, 1, BAD},
    {"SET_VRING_CALL 0xFFFFFFFF", VHOST_USER_SET_VRING_CALL, V1, 8, {0xffffffff}, 0, BAD},
    {"SET_VRING_ERR fd", VHOST_USER_SET_VRING_ERR, V1, 8, {1}, 1, OK},
    {"SET_VRING_ERR idx 0x10000", VHOST_USER_SET_VRING_ERR, V1, 8, {0x10100}, 0, BAD},
    {"GET_PROTOCOL_FEATURES", VHOST_USER_GET_PROTOCOL_FEATURES, V1, 0, {0}, 0, OK},
    {"GET_PROTOCOL_FEATURES 8", VHOST_USER_GET_PROTOCOL_FEATURES, V1, 8, {0}, 0, BAD},
    {"SET_PROTOCOL_FEATURES", VHOST_USER_SET_PROTOCOL_FEATURES, V1, 8, {0}, 0, OK},
    {"SET_PROTOCOL_FEATURES 0", VHOST_USER_SET_PROTOCOL_FEATURES, V1, 0, {0}, 0, BAD},
    {"GET_QUEUE_NUM", VHOST_USER_GET_QUEUE_NUM, V1, 0, {0}, 0, OK},
    {"SET_VRING_ENABLE", VHOST_USER_SET_VRING_ENABLE, V1, 8, {1ull << 32}, 0, OK},
    {"SET_VRING_ENABLE size 0", VHOST_USER_SET_VRING_ENABLE, V1, 0, {0}, 0, BAD},
    {"SET_BACKEND_REQ_FD", VHOST_USER_SET_BACKEND_REQ_FD, V1, 0, {0}, 1, OK},
    {"SET_BACKEND_REQ_FD no fd", VHOST_USER_SET_BACKEND_REQ_FD, V1, 0, {0}, 0, BAD},
    {"SET_BACKEND_REQ_FD 2 fds", VHOST_USER_SET_BACKEND_REQ_FD, V1, 0, {0}, 2, BAD},
    {"SET_BACKEND_REQ_FD size 8", VHOST_USER_SET_BACKEND_REQ_FD, V1, 8, {0}, 1, BAD},
    {"SET_VRING_ENDIAN", VHOST_USER_SET_VRING_ENDIAN, V1, 8, {0}, 0, OK},
    {"GET_CONFIG", VHOST_USER_GET_CONFIG, V1, 16, {CFG4}, 0, OK},
    {"GET_CONFIG with fd", VHOST_USER_GET_CONFIG, V1, 16, {CFG4}, 1, BAD},
    {"SET_CONFIG", VHOST_USER_SET_CONFIG, V1, 16, {CFG4}, 0, OK},
    {"SET_CONFIG size mismatch", VHOST_USER_SET_CONFIG, V1, 17, {CFG4}, 0, BAD},
    {"GET_MAX_MEM_SLOTS", VHOST_USER_GET_MAX_MEM_SLOTS, V1, 0, {0}, 0, OK},
    {"ADD_MEM_REG", VHOST_USER_ADD_MEM_REG, V1, 40, {REGION}, 1, OK},
    {"ADD_MEM_REG no fd", VHOST_USER_ADD_MEM_REG, V1, 40, {REGION}, 0, BAD},
    {"ADD_MEM_REG 2 fds", VHOST_USER_ADD_MEM_REG, V1, 40, {REGION}, 2, BAD},
    {"ADD_MEM_REG size 32", VHOST_USER_ADD_MEM_REG, V1, 32, {REGION}, 1, BAD},
    {"ADD_MEM_REG region size 0", VHOST_USER_ADD_MEM_REG, V1, 40, {0, 0x1000, 0, 0, 0}, 1, BAD},
    {"REM_MEM_REG", VHOST_USER_REM_MEM_REG, V1, 40, {REGION}, 0, OK},
    {"REM_MEM_REG with fd (QEMU 7.2)", VHOST_USER_REM_MEM_REG, V1, 40, {REGION}, 1, OK},
    {"REM_MEM_REG 2 fds", VHOST_USER_REM_MEM_REG, V1, 40, {REGION}, 2, BAD},
    {"REM_MEM_REG size 8", VHOST_USER_REM_MEM_REG, V1, 8, {REGION}, 0, BAD},
    {"SET_STATUS", VHOST_USER_SET_STATUS, V1, 8, {0xf}, 0, OK},
    {"SET_STATUS size 1", VHOST_USER_SET_STATUS, V1, 1, {0xf}, 0, BAD},
    {"GET_STATUS", VHOST_USER_GET_STATUS, V1, 0, {0}, 0, OK},
    {"RESET_DEVICE", VHOST_USER_RESET_DEVICE, V1, 0, {0}, 0, OK},
    {"GET_INFLIGHT_FD", VHOST_USER_GET_INFLIGHT_FD, V1, 24, {0}, 0, OK},
    {"GET_INFLIGHT_FD size 20", VHOST_USER_GET_INFLIGHT_FD, V1, 20, {0}, 0, BAD},
    {"SET_INFLIGHT_FD", VHOST_USER_SET_INFLIGHT_FD, V1, 24, {0}, 1, OK},
    {"SET_INFLIGHT_FD no fd", VHOST_USER_SET_INFLIGHT_FD, V1, 24, {0}, 0, BAD},
    /* Known but unsupported. */
    {"NONE", VHOST_USER_NONE, V1, 0, {0}, 0, BAD},
    {"SET_LOG_BASE", VHOST_USER_SET_LOG_BASE, V1, 16, {0}, 1, BAD},
    {"SET_LOG_FD", VHOST_USER_SET_LOG_FD, V1, 0, {0}, 1, BAD},
    {"SEND_RARP", VHOST_USER_SEND_RARP, V1, 8, {0}, 0, BAD},
    {"NET_SET_MTU", VHOST_USER_NET_SET_MTU, V1, 8, {1500}, 0, BAD},
    {"IOTLB_MSG", VHOST_USER_IOTLB_MSG, V1, 32, {0}, 0, BAD},
    {"POSTCOPY_ADVISE", VHOST_USER_POSTCOPY_ADVISE, V1, 0, {0}, 0, BAD},
    {"GPU_SET_SOCKET", VHOST_USER_GPU_SET_SOCKET, V1, 0, {0}, 1, BAD},
    {"VRING_KICK", VHOST_USER_VRING_KICK, V1, 8, {0}, 0, BAD},
    /* Unknown codes and bad framing. */
    {"code 41", 41, V1, 0, {0}, 0, BAD},
    {"code 0xFFFFFFFF", 0xffffffffu, V1, 0, {0}, 0, BAD},
    {"REPLY flag on request", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY, 0, {0}, 0, BAD},
    {"version 2", VHOST_USER_GET_FEATURES, 2, 0, {0}, 0, BAD},
    {"NEED_REPLY", VHOST_USER_SET_OWNER, V1 | VU_FLAG_NEED_REPLY, 0, {0}, 0, OK},
    {"size over max", VHOST_USER_SET_OWNER, V1, VU_MAX_PAYLOAD + 1, {0}, 0, BAD},
    {"9 fds", VHOST_USER_SET_OWNER, V1, 0, {0}, 9, BAD},
};

static void build(struct vu_msg *m, uint32_t request, uint32_t flags, uint32_t size,
                  const uint64_t *w, size_t nw, unsigned nfds)
{
	memset(m, 0, sizeof(*m));
	m->request = request;
	m->flags = flags;
	m->size = size;
	for (size_t i = 0; i < nw; i++) {
		put_le64(m->payload + 8 * i, w[i]);
	}
	m->nfds = nfds;
	for (unsigned i = 0; i < nfds && i < VU_MAX_FDS; i++) {
		m->fds[i] = 100 + (int)i; /* never used: the codec only counts */
	}
}

static void test_check_request(void **state)
{
	static struct vu_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(req_cases); i++) {
		const struct req_case *c = &req_cases[i];
		const char *why = NULL;
		int ret;

		build(&m, c->request, c->flags, c->size, c->w, ARRAY_SIZE(c->w), c->nfds);
		ret = vu_msg_check_request(&m, &why);
		print_message("req %-34s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
		if (ret) {
			assert_non_null(why);
		}
	}
}

/* ---- memory table ---- */

struct mt_case {
	const char *what;
	uint32_t nregions; /* value written into the payload */
	uint32_t size;     /* payload size; 0 means 8 + 32 * nregions */
	unsigned nfds;
	uint64_t bad_gpa, bad_size, bad_uaddr, bad_off; /* non-zero: region 0 gets these */
	int expect;
};

static const struct mt_case mt_cases[] = {
    {"1 region", 1, 0, 1, 0, 0, 0, 0, OK},
    {"8 regions", 8, 0, 8, 0, 0, 0, 0, OK},
    {"0 regions", 0, 8, 0, 0, 0, 0, 0, BAD},
    {"0 regions with fd", 0, 8, 1, 0, 0, 0, 0, BAD},
    {"9 regions", 9, 8 + 32 * 9, 8, 0, 0, 0, 0, BAD},
    {"0xFFFFFFFF regions", 0xffffffffu, 8 + 32 * 8, 8, 0, 0, 0, 0, BAD},
    {"2 regions 1 fd", 2, 0, 1, 0, 0, 0, 0, BAD},
    {"2 regions 3 fds", 2, 0, 3, 0, 0, 0, 0, BAD},
    {"2 regions, size of 1", 2, 8 + 32, 2, 0, 0, 0, 0, BAD},
    {"2 regions, size + 1", 2, 8 + 64 + 1, 2, 0, 0, 0, 0, BAD},
    {"2 regions, size of 3", 2, 8 + 96, 2, 0, 0, 0, 0, BAD},
    {"short header", 1, 4, 1, 0, 0, 0, 0, BAD},
    {"zero-sized region", 1, 0, 1, 0x1000, 0, 0x1000, 0, BAD},
    {"gpa+size wraps", 1, 0, 1, ~0ull - 0xfff, 0x2000, 0x1000, 0, BAD},
    {"uaddr+size wraps", 1, 0, 1, 0x1000, 0x2000, ~0ull, 0, BAD},
    {"offset+size wraps", 1, 0, 1, 0x1000, 0x2000, 0x1000, ~0ull, BAD},
    {"region ends at 2^64", 1, 0, 1, ~0ull - 0xfff, 0x1000, 0x1000, 0, OK},
};

static void fill_table(struct vu_mem_table *t, uint32_t n)
{
	memset(t, 0, sizeof(*t));
	t->nregions = n;
	for (uint32_t i = 0; i < n && i < VU_MEM_TABLE_REGIONS; i++) {
		t->r[i].gpa = 0x100000000ull * i;
		t->r[i].size = 0x40000000ull + i;
		t->r[i].uaddr = 0x7f0000000000ull + 0x100000000ull * i;
		t->r[i].mmap_offset = 0x1000ull * i;
	}
}

static void test_mem_table(void **state)
{
	static struct vu_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(mt_cases); i++) {
		const struct mt_case *c = &mt_cases[i];
		struct vu_mem_table t, out;
		const char *why = NULL;
		int ret;

		fill_table(&t, VB_MIN(c->nregions, VU_MEM_TABLE_REGIONS));
		if (c->bad_gpa || c->bad_size || c->bad_uaddr || c->bad_off) {
			t.r[0] = (struct vu_mem_region){c->bad_gpa, c->bad_size, c->bad_uaddr,
			                                c->bad_off};
		}
		build(&m, VHOST_USER_SET_MEM_TABLE, V1, 0, NULL, 0, c->nfds);
		vu_put_mem_table(&m, &t);
		put_le32(m.payload, c->nregions);
		if (c->size) {
			m.size = c->size;
		}
		ret = vu_msg_check_request(&m, &why);
		print_message("mem table %-22s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
		assert_int_equal(vu_get_mem_table(&m, &out, &why), c->expect);
		if (ret == 0) {
			assert_int_equal(out.nregions, c->nregions);
			assert_memory_equal(out.r, t.r, c->nregions * sizeof(t.r[0]));
		}
	}
}

/* ---- config ---- */

struct cfg_case {
	const char *what;
	uint32_t offset, size, flags;
	uint32_t msg_size; /* 0: 12 + size */
	int expect;
};

static const struct cfg_case cfg_cases[] = {
    {"size 0", 0, 0, 0, 0, OK},
    {"size 60", 0, 60, 0, 0, OK},
    {"size 256", 0, 256, 0, 0, OK},
    {"migration flag", 0, 8, 1, 0, OK},
    {"size 257", 0, 257, 0, 0, BAD},
    {"size 0xFFFFFFFF", 0, 0xffffffffu, 0, 12, BAD},
    {"size mismatch +1", 0, 8, 0, 21, BAD},
    {"size mismatch -1", 0, 8, 0, 19, BAD},
    {"header only, size 8", 0, 8, 0, 12, BAD},
    {"short header", 0, 0, 0, 8, BAD},
    {"offset 252 size 4", 252, 4, 0, 0, OK},
    {"offset 250 size 8", 250, 8, 0, 0, BAD},
    {"offset 0xFFFFFFFF", 0xffffffffu, 4, 0, 0, BAD},
    {"flags 2", 0, 4, 2, 0, BAD},
};

static void test_config(void **state)
{
	static struct vu_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(cfg_cases); i++) {
		const struct cfg_case *c = &cfg_cases[i];
		struct vu_config out;
		const char *why = NULL;
		uint32_t data = VB_MIN(c->size, VU_MAX_PAYLOAD - 12);
		int ret;

		build(&m, VHOST_USER_SET_CONFIG, V1, c->msg_size ? c->msg_size : 12 + data, NULL, 0,
		      0);
		put_le32(m.payload, c->offset);
		put_le32(m.payload + 4, c->size);
		put_le32(m.payload + 8, c->flags);
		for (uint32_t j = 0; j < data; j++) {
			m.payload[12 + j] = (uint8_t)(j ^ 0x5a);
		}
		ret = vu_msg_check_request(&m, &why);
		print_message("config %-22s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
		m.request = VHOST_USER_GET_CONFIG;
		assert_int_equal(vu_msg_check_request(&m, &why), c->expect);
		assert_int_equal(vu_get_config(&m, &out, &why), c->expect);
		if (ret == 0) {
			assert_int_equal(out.offset, c->offset);
			assert_int_equal(out.size, c->size);
			assert_int_equal(out.flags, c->flags);
			assert_memory_equal(out.data, m.payload + 12, c->size);
		}
	}
}

/* ---- replies and backend-channel requests ---- */

struct reply_case {
	const char *what;
	uint32_t request, flags, size;
	unsigned nfds;
	int expect;
};

static const struct reply_case reply_cases[] = {
    {"good", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY, 8, 0, OK},
    {"no REPLY flag", VHOST_USER_GET_FEATURES, V1, 8, 0, BAD},
    {"NEED_REPLY on reply", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY | VU_FLAG_NEED_REPLY, 8, 0,
     BAD},
    {"version 0", VHOST_USER_GET_FEATURES, VU_FLAG_REPLY, 8, 0, BAD},
    {"wrong code", VHOST_USER_GET_PROTOCOL_FEATURES, V1 | VU_FLAG_REPLY, 8, 0, BAD},
    {"size 0", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY, 0, 0, BAD},
    {"size 16", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY, 16, 0, BAD},
    {"extra fd", VHOST_USER_GET_FEATURES, V1 | VU_FLAG_REPLY, 8, 1, BAD},
};

static void test_check_reply(void **state)
{
	static struct vu_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		const char *why = NULL;
		int ret;

		build(&m, c->request, c->flags, c->size, NULL, 0, c->nfds);
		ret = vu_msg_check_reply(&m, VHOST_USER_GET_FEATURES, 8, &why);
		print_message("reply %-22s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
	}
}

static const struct req_case backend_cases[] = {
    {"CONFIG_CHANGE", VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, V1, 0, {0}, 0, OK},
    {"CONFIG_CHANGE u64 (rust-vmm)", VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, V1, 8, {0}, 0, OK},
    {"CONFIG_CHANGE NEED_REPLY",
     VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
     V1 | VU_FLAG_NEED_REPLY,
     0,
     {0},
     0,
     OK},
    {"CONFIG_CHANGE size 4", VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, V1, 4, {0}, 0, BAD},
    {"CONFIG_CHANGE with fd", VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, V1, 0, {0}, 1, BAD},
    {"CONFIG_CHANGE REPLY flag",
     VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
     V1 | VU_FLAG_REPLY,
     0,
     {0},
     0,
     BAD},
    {"IOTLB_MSG", VHOST_USER_BACKEND_IOTLB_MSG, V1, 32, {0}, 0, BAD},
    {"HOST_NOTIFIER", VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, V1, 24, {0}, 1, BAD},
    {"code 0", 0, V1, 0, {0}, 0, BAD},
    {"code 6", 6, V1, 0, {0}, 0, BAD},
};

static void test_check_backend_request(void **state)
{
	static struct vu_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(backend_cases); i++) {
		const struct req_case *c = &backend_cases[i];
		const char *why = NULL;
		int ret;

		build(&m, c->request, c->flags, c->size, c->w, ARRAY_SIZE(c->w), c->nfds);
		ret = vu_msg_check_backend_request(&m, &why);
		print_message("backend %-30s -> %d %s\n", c->what, ret, ret ? why : "");
		assert_int_equal(ret, c->expect);
	}
}

/* ---- decoders on wrong sizes ---- */

static void test_decoder_sizes(void **state)
{
	static struct vu_msg m;
	uint64_t v;
	struct vu_vring_state s;
	struct vu_vring_addr a;
	struct vu_vring_file f;
	struct vu_mem_region r;
	struct vu_inflight in;
	const uint32_t sizes[] = {0, 4, 7, 9, 16, 24, 32, 39, 41, 4096};

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		build(&m, VHOST_USER_ADD_MEM_REG, V1, sizes[i], NULL, 0, 0);
		assert_int_equal(vu_get_u64(&m, &v, NULL), BAD);
		assert_int_equal(vu_get_vring_state(&m, &s, NULL), BAD);
		assert_int_equal(vu_get_vring_file(&m, &f, NULL), BAD);
		assert_int_equal(vu_get_vring_addr(&m, &a, NULL), BAD);
		assert_int_equal(vu_get_mem_region(&m, &r, NULL), BAD);
		if (sizes[i] != 24) {
			assert_int_equal(vu_get_inflight(&m, &in, NULL), BAD);
		}
	}
}

/* ---- round trips ---- */

static void test_roundtrip_scalars(void **state)
{
	static struct vu_msg m;
	const uint64_t vals[] = {0, 1, 0x8000000000000000ull, 0x0123456789abcdefull, ~0ull};
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		vu_msg_init(&m, VHOST_USER_SET_FEATURES, 0);
		vu_put_u64(&m, vals[i]);
		assert_int_equal(m.size, 8);
		assert_int_equal(m.flags, VU_VERSION);
		assert_int_equal(m.nfds, 0);
		assert_int_equal(vu_msg_check_request(&m, NULL), 0);
		assert_int_equal(vu_get_u64(&m, &v, NULL), 0);
		assert_true(v == vals[i]);
	}
	/* Little-endian on the wire. */
	vu_put_u64(&m, 0x0102030405060708ull);
	assert_int_equal(m.payload[0], 0x08);
	assert_int_equal(m.payload[7], 0x01);
}

static void test_roundtrip_vring(void **state)
{
	static struct vu_msg m;
	struct vu_vring_state s = {.index = 0xfffffffe, .num = 0x12345678}, s2;
	struct vu_vring_addr a = {3, 1, 0x1000, 0x2000, 0x3000, 0xffffffffffffff00ull}, a2;
	struct vu_vring_file f;
	static const uint8_t state_bytes[8] = {0xfe, 0xff, 0xff, 0xff, 0x78, 0x56, 0x34, 0x12};

	vu_msg_init(&m, VHOST_USER_SET_VRING_NUM, VU_FLAG_NEED_REPLY);
	vu_put_vring_state(&m, &s);
	assert_int_equal(m.flags, VU_VERSION | VU_FLAG_NEED_REPLY);
	assert_memory_equal(m.payload, state_bytes, 8);
	assert_int_equal(vu_msg_check_request(&m, NULL), 0);
	assert_int_equal(vu_get_vring_state(&m, &s2, NULL), 0);
	assert_int_equal(s2.index, s.index);
	assert_int_equal(s2.num, s.num);

	vu_msg_init(&m, VHOST_USER_SET_VRING_ADDR, 0);
	vu_put_vring_addr(&m, &a);
	assert_int_equal(m.size, 40);
	assert_int_equal(vu_msg_check_request(&m, NULL), 0);
	assert_int_equal(vu_get_vring_addr(&m, &a2, NULL), 0);
	assert_memory_equal(&a, &a2, sizeof(a));

	for (uint32_t idx = 0; idx <= 0xff; idx += 0x33) {
		for (int nofd = 0; nofd <= 1; nofd++) {
			vu_msg_init(&m, VHOST_USER_SET_VRING_CALL, 0);
			vu_put_u64(&m, idx | (nofd ? VU_VRING_NOFD : 0));
			m.nfds = nofd ? 0 : 1;
			m.fds[0] = 100;
			assert_int_equal(vu_msg_check_request(&m, NULL), 0);
			assert_int_equal(vu_get_vring_file(&m, &f, NULL), 0);
			assert_int_equal(f.index, idx);
			assert_int_equal(f.nofd, nofd);
		}
	}
}

static void test_roundtrip_mem(void **state)
{
	static struct vu_msg m;
	struct vu_mem_table t, t2;
	struct vu_mem_region r = {0x100000, 0x200000, 0x7f1234560000ull, 0x4000}, r2;

	for (uint32_t n = 1; n <= VU_MEM_TABLE_REGIONS; n++) {
		fill_table(&t, n);
		vu_msg_init(&m, VHOST_USER_SET_MEM_TABLE, 0);
		vu_put_mem_table(&m, &t);
		m.nfds = n;
		assert_int_equal(m.size, 8 + 32 * n);
		assert_int_equal(vu_msg_check_request(&m, NULL), 0);
		assert_int_equal(vu_get_mem_table(&m, &t2, NULL), 0);
		assert_int_equal(t2.nregions, n);
		assert_memory_equal(t.r, t2.r, n * sizeof(t.r[0]));
	}
	/* The encoder never writes more regions than the table holds. */
	fill_table(&t, VU_MEM_TABLE_REGIONS);
	t.nregions = 100;
	vu_put_mem_table(&m, &t);
	assert_int_equal(m.size, 8 + 32 * VU_MEM_TABLE_REGIONS);

	vu_msg_init(&m, VHOST_USER_ADD_MEM_REG, 0);
	vu_put_mem_region(&m, &r);
	m.nfds = 1;
	assert_int_equal(m.size, 40);
	assert_int_equal(get_le64(m.payload), 0);
	assert_int_equal(vu_msg_check_request(&m, NULL), 0);
	assert_int_equal(vu_get_mem_region(&m, &r2, NULL), 0);
	assert_memory_equal(&r, &r2, sizeof(r));

	/* REM_MEM_REG ignores the mmap offset, ADD_MEM_REG does not. */
	r.mmap_offset = ~0ull;
	vu_put_mem_region(&m, &r);
	assert_int_equal(vu_get_mem_region(&m, &r2, NULL), BAD);
	m.request = VHOST_USER_REM_MEM_REG;
	assert_int_equal(vu_get_mem_region(&m, &r2, NULL), 0);
	assert_true(r2.mmap_offset == ~0ull);
}

static void test_roundtrip_config_inflight(void **state)
{
	static struct vu_msg m;
	static struct vu_config c, c2;
	struct vu_inflight in = {0x123456, 0x1000, 4, 256}, in2;

	for (uint32_t size = 0; size <= VU_MAX_CONFIG; size += 32) {
		c.offset = VU_MAX_CONFIG - size;
		c.size = size;
		c.flags = size & 1;
		for (uint32_t i = 0; i < size; i++) {
			c.data[i] = (uint8_t)(i * 7 + size);
		}
		vu_msg_init(&m, VHOST_USER_SET_CONFIG, 0);
		vu_put_config(&m, &c);
		assert_int_equal(m.size, 12 + size);
		assert_int_equal(vu_msg_check_request(&m, NULL), 0);
		assert_int_equal(vu_get_config(&m, &c2, NULL), 0);
		assert_int_equal(c2.offset, c.offset);
		assert_int_equal(c2.size, c.size);
		assert_int_equal(c2.flags, c.flags);
		assert_memory_equal(c2.data, c.data, size);
	}

	vu_msg_init(&m, VHOST_USER_SET_INFLIGHT_FD, 0);
	vu_put_inflight(&m, &in);
	m.nfds = 1;
	assert_int_equal(m.size, VU_INFLIGHT_SIZE);
	assert_int_equal(vu_msg_check_request(&m, NULL), 0);
	assert_int_equal(vu_get_inflight(&m, &in2, NULL), 0);
	assert_true(in2.mmap_size == in.mmap_size && in2.mmap_offset == in.mmap_offset);
	assert_int_equal(in2.num_queues, 4);
	assert_int_equal(in2.queue_size, 256);
}

static void test_names(void **state)
{
	for (uint32_t r = 0; r < VHOST_USER_MAX; r++) {
		assert_string_not_equal(vu_request_name(r), "UNKNOWN");
	}
	assert_string_equal(vu_request_name(VHOST_USER_SET_VRING_KICK), "SET_VRING_KICK");
	assert_string_equal(vu_request_name(VHOST_USER_GET_STATUS), "GET_STATUS");
	assert_string_equal(vu_request_name(VHOST_USER_MAX), "UNKNOWN");
	assert_string_equal(vu_request_name(0xffffffffu), "UNKNOWN");
	for (uint32_t r = 1; r < VHOST_USER_BACKEND_MAX; r++) {
		assert_string_not_equal(vu_backend_request_name(r), "UNKNOWN");
	}
	assert_string_equal(vu_backend_request_name(2), "CONFIG_CHANGE_MSG");
	assert_string_equal(vu_backend_request_name(99), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hdr_parse),
	    cmocka_unit_test(test_hdr_bytes),
	    cmocka_unit_test(test_check_request),
	    cmocka_unit_test(test_mem_table),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_check_reply),
	    cmocka_unit_test(test_check_backend_request),
	    cmocka_unit_test(test_decoder_sizes),
	    cmocka_unit_test(test_roundtrip_scalars),
	    cmocka_unit_test(test_roundtrip_vring),
	    cmocka_unit_test(test_roundtrip_mem),
	    cmocka_unit_test(test_roundtrip_config_inflight),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
