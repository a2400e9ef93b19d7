/*
 * Wire protocol v1 codec: golden encodings of every message type (written
 * from docs/protocol.md by an independent implementation), round trips, and
 * tables of malformed and boundary inputs built by mutating the golden bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "bridge/wire.h"

#define MAXBUF 2048

static const uint8_t blk_req[16] = {0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t cpl_byte[1] = {0};
static const uint8_t cfg4[4] = {0x00, 0x20, 0x00, 0x00};
static const uint8_t cfg8[8] = {0x00, 0x00, 0x20, 0x00, 0, 0, 0, 0};
static const uint8_t cfg_wce[1] = {1};
static const uint8_t cfg8b[8] = {0x00, 0x00, 0x40, 0x00, 0, 0, 0, 0};

enum base_id {
	B_HELLO,
	B_ATTACH,
	B_ATTACH_RESUME,
	B_ATTACH_OK,
	B_ATTACH_OK_RESUMED,
	B_DETACH,
	B_FEATURES,
	B_QSTART,
	B_QSTOP,
	B_RESET,
	B_STATUS,
	B_REQUEST,
	B_COMPLETION,
	B_ACK,
	B_CFG_GET,
	B_CONFIG,
	B_CFG_SET,
	B_CFG_CHANGED,
	B_PING,
	B_PONG,
	B_ERROR,
	B_ERROR_CHAN,
	B_COUNT
};

struct base {
	struct wire_msg msg;
	const char *hex;
};

/* One valid message of every type and its exact encoding. */
static const struct base bases[B_COUNT] = {
    [B_HELLO] =
        {{.type = WIRE_HELLO,
          .u.hello = {.ver_min = 1, .ver_max = 1, .epoch = 0x0123456789abcdefull, .name = "ecu-a"}},
         "210000000101000000000000"
         "0101050000000000efcdab89674523016563752d61"},
    [B_ATTACH] = {{.type = WIRE_ATTACH, .chan = 1, .u.attach = {.name = "disk0"}},
                  "290000000102000001000000"
                  "0500000000000000"
                  "0000000000000000"
                  "0000000000000000"
                  "6469736b30"},
    [B_ATTACH_RESUME] =
        {{.type = WIRE_ATTACH,
          .chan = 2,
          .u.attach = {.session = 0xa1b2c3d4e5f60718ull, .received = 0x103, .name = "net0"}},
         "280000000102000002000000"
         "0400000000000000"
         "1807f6e5d4c3b2a1"
         "0301000000000000"
         "6e657430"},
    [B_ATTACH_OK] = {{.type = WIRE_ATTACH_OK,
                      .chan = 1,
                      .u.attach_ok = {.device_id = 2,
                                      .num_queues = 1,
                                      .max_queue_size = 256,
                                      .features = 0x1122334455667788ull,
                                      .session = 0x0f1e2d3c4b5a6978ull,
                                      .config_len = 4,
                                      .config = cfg4}},
                     "300000000103000001000000"
                     "020000000100000188776655443322110000000004000000"
                     "78695a4b3c2d1e0f"
                     "00200000"},
    [B_ATTACH_OK_RESUMED] = {{.type = WIRE_ATTACH_OK,
                              .chan = 2,
                              .u.attach_ok = {.device_id = 1,
                                              .num_queues = 3,
                                              .max_queue_size = 1024,
                                              .features = 0x0000000100010000ull,
                                              .flags = WIRE_ATTACH_F_RESUMED,
                                              .session = 0xa1b2c3d4e5f60718ull}},
                             "2c0000000103000002000000"
                             "010000000300000400000100010000000100000000000000"
                             "1807f6e5d4c3b2a1"},
    [B_DETACH] = {{.type = WIRE_DETACH, .chan = 1}, "0c0000000104000001000000"},
    [B_FEATURES] = {{.type = WIRE_FEATURES,
                     .chan = 1,
                     .u.features = {.features = 0x0000000100000040ull}},
                    "140000000105000001000000"
                    "4000000001000000"},
    [B_QSTART] = {{.type = WIRE_QUEUE_START, .chan = 1, .u.queue = {.index = 0, .size = 128}},
                  "140000000106000001000000"
                  "0000800000000000"},
    [B_QSTOP] = {{.type = WIRE_QUEUE_STOP, .chan = 1, .u.queue = {.index = 1}},
                 "140000000107000001000000"
                 "0100000000000000"},
    [B_RESET] = {{.type = WIRE_RESET, .chan = 2}, "0c0000000108000002000000"},
    [B_STATUS] = {{.type = WIRE_STATUS, .chan = 1, .u.status = {.status = 0x0f}},
                  "100000000109000001000000"
                  "0f000000"},
    [B_REQUEST] = {{.type = WIRE_REQUEST,
                    .chan = 1,
                    .u.request = {.queue = 0,
                                  .wr_len = 513,
                                  .id = 7,
                                  .ack = 5,
                                  .t_capture = 0x17979cfe362a0000ull,
                                  .t_deadline = 0x17979cfe36488480ull,
                                  .rd_len = sizeof(blk_req),
                                  .data = blk_req}},
                   "44000000010a000001000000"
                   "0000000001020000070000000000000005000000000000000000"
                   "2a36fe9c971780844836fe9c9717"
                   "00000000000000000800000000000000"},
    [B_COMPLETION] = {{.type = WIRE_COMPLETION,
                       .chan = 1,
                       .u.completion = {.queue = 0,
                                        .status = WIRE_CPL_OK,
                                        .id = 7,
                                        .t_capture = 0x17979cfe362a0000ull,
                                        .t_done = 0x17979cfe363c4f80ull,
                                        .written = 1,
                                        .data = cpl_byte}},
                      "2d000000010b000001000000"
                      "00000000000000000700000000000000"
                      "00002a36fe9c9717804f3c36fe9c9717"
                      "00"},
    [B_ACK] = {{.type = WIRE_ACK, .chan = 1, .u.ack = {.ack = 8}},
               "14000000010c000001000000"
               "0800000000000000"},
    [B_CFG_GET] = {{.type = WIRE_CONFIG_GET, .chan = 1, .u.config = {.offset = 0, .len = 60}},
                   "14000000010d000001000000"
                   "000000003c000000"},
    [B_CONFIG] = {{.type = WIRE_CONFIG, .chan = 1, .u.config = {.len = 8, .data = cfg8}},
                  "18000000010e000001000000"
                  "000000000000200000000000"},
    [B_CFG_SET] = {{.type = WIRE_CONFIG_SET,
                    .chan = 1,
                    .u.config = {.offset = 32, .len = 1, .data = cfg_wce}},
                   "11000000010f000001000000"
                   "2000000001"},
    [B_CFG_CHANGED] = {{.type = WIRE_CONFIG_CHANGED,
                        .chan = 1,
                        .u.config = {.len = 8, .data = cfg8b}},
                       "180000000110000001000000"
                       "000000000000400000000000"},
    [B_PING] = {{.type = WIRE_PING, .u.ping = {.t_send = 0x1111}},
                "1c0000000111000000000000"
                "11110000000000000000000000000000"},
    [B_PONG] = {{.type = WIRE_PONG, .u.ping = {.t_send = 0x2222, .t_echo = 0x1111}},
                "1c0000000112000000000000"
                "22220000000000001111000000000000"},
    [B_ERROR] = {{.type = WIRE_ERROR,
                  .u.error = {.code = WIRE_E_NOENT, .reason = "no export disk9"}},
                 "230000000113000000000000"
                 "030000000f0000006e6f206578706f7274206469736b39"},
    [B_ERROR_CHAN] = {{.type = WIRE_ERROR, .chan = 4, .u.error = {.code = WIRE_E_BUSY}},
                      "140000000113000004000000"
                      "0400000000000000"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	for (; hex[0] && hex[1]; hex += 2) {
		assert_true(n < cap);
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
	}
	assert_int_equal(*hex, '\0');
	return n;
}

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	return n == 0 || (a && b && memcmp(a, b, n) == 0);
}

static int hello_equal(const struct wire_hello *x, const struct wire_hello *y)
{
	return x->ver_min == y->ver_min && x->ver_max == y->ver_max && x->caps == y->caps &&
	       x->epoch == y->epoch && !strcmp(x->name, y->name);
}

static int attach_ok_equal(const struct wire_attach_ok *x, const struct wire_attach_ok *y)
{
	return x->device_id == y->device_id && x->num_queues == y->num_queues &&
	       x->max_queue_size == y->max_queue_size && x->features == y->features &&
	       x->flags == y->flags && x->session == y->session && x->config_len == y->config_len &&
	       same_bytes(x->config, y->config, x->config_len);
}

static int request_equal(const struct wire_request *x, const struct wire_request *y)
{
	return x->queue == y->queue && x->flags == y->flags && x->wr_len == y->wr_len &&
	       x->id == y->id && x->ack == y->ack && x->t_capture == y->t_capture &&
	       x->t_deadline == y->t_deadline && x->rd_len == y->rd_len &&
	       same_bytes(x->data, y->data, x->rd_len);
}

static int completion_equal(const struct wire_completion *x, const struct wire_completion *y)
{
	return x->queue == y->queue && x->status == y->status && x->id == y->id &&
	       x->t_capture == y->t_capture && x->t_done == y->t_done && x->written == y->written &&
	       same_bytes(x->data, y->data, x->written);
}

static int config_equal(const struct wire_config *x, const struct wire_config *y, int data)
{
	return x->offset == y->offset && x->len == y->len &&
	       (!data || same_bytes(x->data, y->data, x->len));
}

/* Field by field, so that a field the decoder forgets shows up. */
static int msg_equal(const struct wire_msg *a, const struct wire_msg *b)
{
	if (a->type != b->type || a->chan != b->chan) {
		return 0;
	}
	switch (a->type) {
	case WIRE_HELLO:
		return hello_equal(&a->u.hello, &b->u.hello);
	case WIRE_ATTACH:
		return a->u.attach.session == b->u.attach.session &&
		       a->u.attach.received == b->u.attach.received &&
		       !strcmp(a->u.attach.name, b->u.attach.name);
	case WIRE_ATTACH_OK:
		return attach_ok_equal(&a->u.attach_ok, &b->u.attach_ok);
	case WIRE_DETACH:
	case WIRE_RESET:
		return 1;
	case WIRE_FEATURES:
		return a->u.features.features == b->u.features.features;
	case WIRE_QUEUE_START:
	case WIRE_QUEUE_STOP:
		return a->u.queue.index == b->u.queue.index && a->u.queue.size == b->u.queue.size &&
		       a->u.queue.flags == b->u.queue.flags;
	case WIRE_STATUS:
		return a->u.status.status == b->u.status.status;
	case WIRE_REQUEST:
		return request_equal(&a->u.request, &b->u.request);
	case WIRE_COMPLETION:
		return completion_equal(&a->u.completion, &b->u.completion);
	case WIRE_ACK:
		return a->u.ack.ack == b->u.ack.ack;
	case WIRE_CONFIG_GET:
		return config_equal(&a->u.config, &b->u.config, 0);
	case WIRE_CONFIG:
	case WIRE_CONFIG_SET:
	case WIRE_CONFIG_CHANGED:
		return config_equal(&a->u.config, &b->u.config, 1);
	case WIRE_PING:
	case WIRE_PONG:
		return a->u.ping.t_send == b->u.ping.t_send && a->u.ping.t_echo == b->u.ping.t_echo;
	case WIRE_ERROR:
		return a->u.error.code == b->u.error.code &&
		       !strcmp(a->u.error.reason, b->u.error.reason);
	default:
		return 0;
	}
}

/* Decodes from an exact-size heap copy so that ASan sees any read past the frame. */
static int decode_exact(const uint8_t *bytes, size_t n, struct wire_msg *m, const char **why)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, bytes, n);
	rc = wire_decode(copy, n, m, why);
	free(copy);
	return rc;
}

static void test_golden_encode(void **state)
{
	uint8_t want[MAXBUF], got[MAXBUF];

	for (unsigned i = 0; i < B_COUNT; i++) {
		size_t n = unhex(bases[i].hex, want, sizeof(want));
		size_t len = wire_encode(got, sizeof(got), &bases[i].msg);

		if (len != n || memcmp(want, got, n) != 0) {
			fail_msg(
			    "%s (chan %u): encoding differs from the golden bytes (%zu vs %zu)",
			    wire_type_name(bases[i].msg.type), bases[i].msg.chan, len, n);
		}
	}
}

static void test_golden_decode(void **state)
{
	uint8_t bytes[MAXBUF], again[MAXBUF];
	struct wire_msg m;
	const char *why;

	for (unsigned i = 0; i < B_COUNT; i++) {
		size_t n = unhex(bases[i].hex, bytes, sizeof(bytes));

		why = NULL;
		if (wire_decode(bytes, n, &m, &why) != 0) {
			fail_msg("%s: golden bytes refused: %s", bases[i].hex, why);
		}
		assert_int_equal(m.len, n);
		if (!msg_equal(&m, &bases[i].msg)) {
			fail_msg("%s: decoded fields differ", wire_type_name(m.type));
		}
		/* Decoded pointers must point into the frame, not elsewhere. */
		if (m.type == WIRE_REQUEST) {
			assert_ptr_equal(m.u.request.data, bytes + WIRE_REQ_HDR_LEN);
		}
		if (m.type == WIRE_ATTACH_OK) {
			assert_ptr_equal(m.u.attach_ok.config, bytes + WIRE_HDR_LEN + 32);
		}
		assert_int_equal(wire_encode(again, sizeof(again), &m), n);
		assert_memory_equal(again, bytes, n);
	}
}

static void test_encode_cap(void **state)
{
	uint8_t buf[MAXBUF];

	for (unsigned i = 0; i < B_COUNT; i++) {
		size_t n = strlen(bases[i].hex) / 2;

		assert_int_equal(wire_encode(buf, n - 1, &bases[i].msg), 0);
		assert_int_equal(wire_encode(buf, n, &bases[i].msg), n);
	}
	assert_int_equal(wire_encode(NULL, sizeof(buf), &bases[B_PING].msg), 0);
	assert_int_equal(wire_encode(buf, sizeof(buf), NULL), 0);
}

/* The data-path header writers produce the same bytes as the general encoder. */
static void test_bulk_headers(void **state)
{
	uint8_t want[MAXBUF], got[MAXBUF];
	size_t n;

	n = unhex(bases[B_REQUEST].hex, want, sizeof(want));
	memset(got, 0xaa, sizeof(got));
	wire_encode_request_hdr(got, 1, &bases[B_REQUEST].msg.u.request);
	assert_int_equal(got[WIRE_REQ_HDR_LEN], 0xaa); /* writes the header only */
	memcpy(got + WIRE_REQ_HDR_LEN, blk_req, sizeof(blk_req));
	assert_memory_equal(got, want, n);

	n = unhex(bases[B_COMPLETION].hex, want, sizeof(want));
	memset(got, 0xaa, sizeof(got));
	wire_encode_completion_hdr(got, 1, &bases[B_COMPLETION].msg.u.completion);
	assert_int_equal(got[WIRE_CPL_HDR_LEN], 0xaa);
	memcpy(got + WIRE_CPL_HDR_LEN, cpl_byte, sizeof(cpl_byte));
	assert_memory_equal(got, want, n);
}

/* Mutations of golden bytes. */
enum mut_op {
	M_END,
	M_SET8,
	M_SET16,
	M_SET32,
	M_SET64,
	M_CUT_RAW, /* keep the first val bytes, length field untouched */
	M_CUT,     /* keep the first val bytes and fix the length field */
	M_APPEND,  /* append val bytes of value off, fix the length field */
};

struct mut {
	enum mut_op op;
	size_t off;
	uint64_t val;
};

struct decode_case {
	const char *what;
	enum base_id base;
	struct mut m[3];
	int expect;          /* 0 or the negative errno */
	const char *why_has; /* a substring of *why when refused */
};

static size_t apply_mut(uint8_t *b, size_t n, const struct mut *m)
{
	switch (m->op) {
	case M_SET8:
		b[m->off] = (uint8_t)m->val;
		return n;
	case M_SET16:
		put_le16(b + m->off, (uint16_t)m->val);
		return n;
	case M_SET32:
		put_le32(b + m->off, (uint32_t)m->val);
		return n;
	case M_SET64:
		put_le64(b + m->off, m->val);
		return n;
	case M_CUT_RAW:
		return m->val;
	case M_CUT:
		put_le32(b, (uint32_t)m->val);
		return m->val;
	case M_APPEND:
		assert_true(n + m->val <= MAXBUF);
		memset(b + n, (int)m->off, m->val);
		put_le32(b, (uint32_t)(n + m->val));
		return n + m->val;
	default:
		return n;
	}
}

#define S8(o, v)                                                                                   \
	{                                                                                          \
		M_SET8, (o), (v)                                                                   \
	}
#define S16(o, v)                                                                                  \
	{                                                                                          \
		M_SET16, (o), (v)                                                                  \
	}
#define S32(o, v)                                                                                  \
	{                                                                                          \
		M_SET32, (o), (v)                                                                  \
	}
#define S64(o, v)                                                                                  \
	{                                                                                          \
		M_SET64, (o), (v)                                                                  \
	}
#define CUTRAW(n)                                                                                  \
	{                                                                                          \
		M_CUT_RAW, 0, (n)                                                                  \
	}
#define CUT(n)                                                                                     \
	{                                                                                          \
		M_CUT, 0, (n)                                                                      \
	}
#define ADD(c, n)                                                                                  \
	{                                                                                          \
		M_APPEND, (c), (n)                                                                 \
	}
#define PROTO  -EPROTO
#define TOOBIG -EMSGSIZE

static const struct decode_case decode_cases[] = {
    /* header */
    {"empty frame", B_HELLO, {CUTRAW(0)}, PROTO, "header"},
    {"header cut at 11 bytes", B_HELLO, {CUTRAW(11)}, PROTO, "header"},
    {"header only, length says 33", B_HELLO, {CUTRAW(12)}, PROTO, "length field"},
    {"length field one more than frame", B_HELLO, {S32(0, 34)}, PROTO, "length field"},
    {"length field one less than frame", B_HELLO, {S32(0, 32)}, PROTO, "length field"},
    {"length field 2^32-1", B_HELLO, {S32(0, 0xffffffff)}, PROTO, "length field"},
    {"length field 0", B_PING, {S32(0, 0)}, PROTO, "length field"},
    {"length field 11 on a 12-byte frame", B_DETACH, {S32(0, 11)}, PROTO, "length field"},
    {"version 2", B_HELLO, {S8(4, 2)}, PROTO, "version"},
    {"version 0", B_PING, {S8(4, 0)}, PROTO, "version"},
    {"type 0", B_PING, {S8(5, 0)}, PROTO, "unknown message type"},
    {"type 20", B_PING, {S8(5, 20)}, PROTO, "unknown message type"},
    {"type 255", B_PING, {S8(5, 255)}, PROTO, "unknown message type"},
    {"header flags 1", B_PING, {S16(6, 1)}, PROTO, "header flags"},
    {"header flags 0x8000", B_REQUEST, {S16(6, 0x8000)}, PROTO, "header flags"},
    /* channel rules */
    {"HELLO on channel 1", B_HELLO, {S32(8, 1)}, PROTO, "device channel"},
    {"PING on channel 7", B_PING, {S32(8, 7)}, PROTO, "device channel"},
    {"PONG on channel 2^32-1", B_PONG, {S32(8, 0xffffffff)}, PROTO, "device channel"},
    {"ATTACH on channel 0", B_ATTACH, {S32(8, 0)}, PROTO, "channel 0"},
    {"REQUEST on channel 0", B_REQUEST, {S32(8, 0)}, PROTO, "channel 0"},
    {"COMPLETION on channel 0", B_COMPLETION, {S32(8, 0)}, PROTO, "channel 0"},
    {"DETACH on channel 0", B_DETACH, {S32(8, 0)}, PROTO, "channel 0"},
    {"ERROR on a device channel", B_ERROR, {S32(8, 9)}, 0, NULL},
    /* fixed body sizes */
    {"FEATURES body 7", B_FEATURES, {CUT(19)}, PROTO, "FEATURES: body size"},
    {"FEATURES body 9", B_FEATURES, {ADD(0, 1)}, PROTO, "FEATURES: body size"},
    {"DETACH body 1", B_DETACH, {ADD(0, 1)}, PROTO, "DETACH: body size"},
    {"RESET body 4", B_RESET, {ADD(0, 4)}, PROTO, "RESET: body size"},
    {"STATUS body 3", B_STATUS, {CUT(15)}, PROTO, "STATUS: body size"},
    {"QUEUE_START body 12", B_QSTART, {ADD(0, 4)}, PROTO, "QUEUE_START: body size"},
    {"QUEUE_STOP body 0", B_QSTOP, {CUT(12)}, PROTO, "QUEUE_STOP: body size"},
    {"PING body 15", B_PING, {CUT(27)}, PROTO, "PING: body size"},
    {"PONG body 24", B_PONG, {ADD(0, 8)}, PROTO, "PONG: body size"},
    {"ACK body 4", B_ACK, {CUT(16)}, PROTO, "ACK: body size"},
    {"CONFIG_GET body 9", B_CFG_GET, {ADD(0, 1)}, PROTO, "CONFIG_GET: body size"},
    /* variable bodies shorter than their fixed part */
    {"HELLO body 15", B_HELLO, {CUT(27)}, PROTO, "HELLO: body shorter"},
    {"ATTACH body 3", B_ATTACH, {CUT(15)}, PROTO, "ATTACH: body shorter"},
    {"ATTACH body 23", B_ATTACH, {CUT(35)}, PROTO, "ATTACH: body shorter than 24"},
    {"ATTACH_OK body 23", B_ATTACH_OK, {CUT(35)}, PROTO, "ATTACH_OK: body shorter"},
    {"ATTACH_OK body 31", B_ATTACH_OK, {CUT(43)}, PROTO, "ATTACH_OK: body shorter than 32"},
    {"REQUEST body 39", B_REQUEST, {CUT(51)}, PROTO, "REQUEST: body shorter"},
    {"COMPLETION body 31", B_COMPLETION, {CUT(43)}, PROTO, "COMPLETION: body shorter"},
    {"CONFIG body 3", B_CONFIG, {CUT(15)}, PROTO, "CONFIG: body shorter"},
    {"ERROR body 7", B_ERROR, {CUT(19)}, PROTO, "ERROR: body shorter"},
    /* HELLO */
    {"HELLO ver_min 0", B_HELLO, {S8(12, 0)}, PROTO, "version range"},
    {"HELLO ver_min > ver_max", B_HELLO, {S8(12, 2)}, PROTO, "version range"},
    {"HELLO versions 1..3", B_HELLO, {S8(13, 3)}, 0, NULL},
    {"HELLO unknown caps bits", B_HELLO, {S32(16, 0xffffffff)}, 0, NULL},
    {"HELLO name_len one more", B_HELLO, {S16(14, 6)}, PROTO, "name_len"},
    {"HELLO name_len 0 with bytes", B_HELLO, {S16(14, 0)}, PROTO, "name_len"},
    {"HELLO name 63 bytes", B_HELLO, {ADD('a', 58), S16(14, 63)}, 0, NULL},
    {"HELLO name 64 bytes", B_HELLO, {ADD('a', 59), S16(14, 64)}, TOOBIG, "longer than 63"},
    {"HELLO name 300 bytes", B_HELLO, {ADD('a', 295), S16(14, 300)}, TOOBIG, "longer"},
    {"HELLO name empty", B_HELLO, {CUT(28), S16(14, 0)}, PROTO, "empty"},
    {"HELLO name with /", B_HELLO, {S8(28, '/')}, PROTO, "[A-Za-z0-9._-]"},
    {"HELLO name with space", B_HELLO, {S8(30, ' ')}, PROTO, "[A-Za-z0-9._-]"},
    {"HELLO name with NUL", B_HELLO, {S8(32, 0)}, PROTO, "[A-Za-z0-9._-]"},
    {"HELLO name with 0xe9", B_HELLO, {S8(28, 0xe9)}, PROTO, "[A-Za-z0-9._-]"},
    /* ATTACH */
    {"ATTACH reserved u16 1", B_ATTACH, {S16(14, 1)}, PROTO, "ATTACH: reserved"},
    {"ATTACH reserved u32 1", B_ATTACH, {S32(16, 1)}, PROTO, "ATTACH: reserved"},
    {"ATTACH reserved u32 0x80000000", B_ATTACH_RESUME, {S32(16, 0x80000000)}, PROTO, "reserved"},
    {"ATTACH received without a session", B_ATTACH, {S64(28, 1)}, PROTO, "received nonzero"},
    {"ATTACH resume with received 0", B_ATTACH_RESUME, {S64(28, 0)}, 0, NULL},
    {"ATTACH resume with received 2^64-1", B_ATTACH_RESUME, {S64(28, UINT64_MAX)}, 0, NULL},
    {"ATTACH resume of session 2^64-1", B_ATTACH_RESUME, {S64(20, UINT64_MAX)}, 0, NULL},
    {"ATTACH session 0, received left", B_ATTACH_RESUME, {S64(20, 0)}, PROTO, "received nonzero"},
    /* the draft layout (u16 name_len, u16 reserved, name) is too short now */
    {"ATTACH draft", B_ATTACH, {S32(16, 0x6b736964), S8(20, '0'), CUT(21)}, PROTO, "body shorter"},
    {"ATTACH name_len one less", B_ATTACH, {S16(12, 4)}, PROTO, "ATTACH: name_len"},
    {"ATTACH name_len one more", B_ATTACH_RESUME, {S16(12, 5)}, PROTO, "ATTACH: name_len"},
    {"ATTACH name 64 bytes", B_ATTACH, {ADD('x', 59), S16(12, 64)}, TOOBIG, "longer than 63"},
    {"ATTACH name empty", B_ATTACH, {CUT(36), S16(12, 0)}, PROTO, "empty"},
    {"ATTACH name with :", B_ATTACH, {S8(36, ':')}, PROTO, "[A-Za-z0-9._-]"},
    {"ATTACH name ..", B_ATTACH, {CUT(38), S16(12, 2), S16(36, 0x2e2e)}, 0, NULL},
    /* ATTACH_OK */
    {"ATTACH_OK num_queues 0", B_ATTACH_OK, {S16(16, 0)}, PROTO, "num_queues"},
    {"ATTACH_OK max_queue_size 0", B_ATTACH_OK, {S16(18, 0)}, PROTO, "power of 2"},
    {"ATTACH_OK max_queue_size 3", B_ATTACH_OK, {S16(18, 3)}, PROTO, "power of 2"},
    {"ATTACH_OK max_queue_size 0xffff", B_ATTACH_OK, {S16(18, 0xffff)}, PROTO, "power of 2"},
    {"ATTACH_OK max_queue_size 32768", B_ATTACH_OK, {S16(18, 32768)}, 0, NULL},
    {"ATTACH_OK flags RESUMED", B_ATTACH_OK, {S32(28, 1)}, 0, NULL},
    {"ATTACH_OK flags 2", B_ATTACH_OK, {S32(28, 2)}, PROTO, "unknown flag bits"},
    {"ATTACH_OK flags RESUMED | 2", B_ATTACH_OK_RESUMED, {S32(28, 3)}, PROTO, "unknown flag"},
    {"ATTACH_OK flags 0x80000000", B_ATTACH_OK, {S32(28, 0x80000000)}, PROTO, "unknown flag"},
    {"ATTACH_OK flags RESUMED cleared", B_ATTACH_OK_RESUMED, {S32(28, 0)}, 0, NULL},
    {"ATTACH_OK reserved 1", B_ATTACH_OK, {S16(34, 1)}, PROTO, "ATTACH_OK: reserved"},
    {"ATTACH_OK reserved 0x8000", B_ATTACH_OK_RESUMED, {S16(34, 0x8000)}, PROTO, "reserved"},
    {"ATTACH_OK session 0", B_ATTACH_OK, {S64(36, 0)}, PROTO, "session is 0"},
    {"ATTACH_OK resumed session 0", B_ATTACH_OK_RESUMED, {S64(36, 0)}, PROTO, "session is 0"},
    {"ATTACH_OK session 1", B_ATTACH_OK, {S64(36, 1)}, 0, NULL},
    {"ATTACH_OK session 2^64-1", B_ATTACH_OK, {S64(36, UINT64_MAX)}, 0, NULL},
    /* the draft layout (config right after the 24-byte fixed part) is refused */
    {"ATTACH_OK draft layout, 4 config bytes", B_ATTACH_OK, {CUT(40)}, PROTO, "body shorter"},
    {"ATTACH_OK draft cfg 8", B_ATTACH_OK, {S16(32, 8), S64(36, 0x200000)}, PROTO, "config_len"},
    {"ATTACH_OK config cut by one", B_ATTACH_OK, {CUT(47)}, PROTO, "config_len does not"},
    {"ATTACH_OK no config, config_len 1", B_ATTACH_OK_RESUMED, {S16(32, 1)}, PROTO, "config_len"},
    {"ATTACH_OK config_len 256", B_ATTACH_OK, {ADD(0, 252), S16(32, 256)}, 0, NULL},
    {"ATTACH_OK config_len 257", B_ATTACH_OK, {ADD(0, 253), S16(32, 257)}, TOOBIG, "over 256"},
    {"ATTACH_OK config_len 0xffff", B_ATTACH_OK, {S16(32, 0xffff)}, TOOBIG, "over 256"},
    {"ATTACH_OK config_len one more", B_ATTACH_OK, {S16(32, 5)}, PROTO, "config_len does not"},
    {"ATTACH_OK config_len 0 with bytes", B_ATTACH_OK, {S16(32, 0)}, PROTO, "config_len does"},
    /* QUEUE_START / QUEUE_STOP */
    {"QUEUE_START size 0", B_QSTART, {S16(14, 0)}, PROTO, "power of 2"},
    {"QUEUE_START size 3", B_QSTART, {S16(14, 3)}, PROTO, "power of 2"},
    {"QUEUE_START size 0x8001", B_QSTART, {S16(14, 0x8001)}, PROTO, "power of 2"},
    {"QUEUE_START size 1", B_QSTART, {S16(14, 1)}, 0, NULL},
    {"QUEUE_START size 32768", B_QSTART, {S16(14, 32768)}, 0, NULL},
    {"QUEUE_START flags 1", B_QSTART, {S32(16, 1)}, PROTO, "flags not 0"},
    {"QUEUE_STOP size 4", B_QSTOP, {S16(14, 4)}, PROTO, "QUEUE_STOP: size"},
    {"QUEUE_STOP flags 0x80000000", B_QSTOP, {S32(16, 0x80000000)}, PROTO, "flags not 0"},
    /* STATUS */
    {"STATUS reserved byte", B_STATUS, {S8(15, 1)}, PROTO, "STATUS: reserved"},
    /* REQUEST */
    {"REQUEST id 0", B_REQUEST, {S64(20, 0)}, PROTO, "id is 0"},
    {"REQUEST id 2^64-1", B_REQUEST, {S64(20, UINT64_MAX)}, 0, NULL},
    {"REQUEST flags 4", B_REQUEST, {S16(14, 4)}, PROTO, "REQUEST: unknown flags"},
    {"REQUEST flags 0x8000", B_REQUEST, {S16(14, 0x8000)}, PROTO, "REQUEST: unknown flags"},
    {"REQUEST DROP_LATE with a deadline", B_REQUEST, {S16(14, 1)}, 0, NULL},
    {"REQUEST DROP_LATE|HOLD_UNSYNC", B_REQUEST, {S16(14, 3)}, 0, NULL},
    {"REQUEST DROP_LATE without a deadline",
     B_REQUEST,
     {S16(14, 1), S64(44, 0)},
     PROTO,
     "without a deadline"},
    {"REQUEST HOLD_UNSYNC without a deadline",
     B_REQUEST,
     {S16(14, 2), S64(44, 0)},
     PROTO,
     "without a deadline"},
    /* ack counts completions: any value decodes, its growth is the session's check */
    {"REQUEST ack beyond id", B_REQUEST, {S64(28, 8)}, 0, NULL},
    {"REQUEST ack equal to id", B_REQUEST, {S64(28, 7)}, 0, NULL},
    {"REQUEST ack 0", B_REQUEST, {S64(28, 0)}, 0, NULL},
    {"REQUEST id 1, ack 2^64-1", B_REQUEST, {S64(20, 1), S64(28, UINT64_MAX)}, 0, NULL},
    {"ACK 0", B_ACK, {S64(12, 0)}, 0, NULL},
    {"ACK 2^64-1", B_ACK, {S64(12, UINT64_MAX)}, 0, NULL},
    {"REQUEST nothing readable or writable", B_REQUEST, {CUT(52), S32(16, 0)}, PROTO, "no read"},
    {"REQUEST writable only", B_REQUEST, {CUT(52), S32(16, 1)}, 0, NULL},
    {"REQUEST readable only", B_REQUEST, {S32(16, 0)}, 0, NULL},
    {"REQUEST 16 + 0xffffffef = 2^32-1", B_REQUEST, {S32(16, 0xffffffef)}, 0, NULL},
    {"REQUEST 16 + 0xfffffff0 = 2^32", B_REQUEST, {S32(16, 0xfffffff0)}, PROTO, "2^32"},
    {"REQUEST 16 + 0xffffffff", B_REQUEST, {S32(16, 0xffffffff)}, PROTO, "2^32"},
    /* COMPLETION */
    {"COMPLETION id 0", B_COMPLETION, {S64(20, 0)}, PROTO, "id is 0"},
    {"COMPLETION status 3", B_COMPLETION, {S16(14, 3)}, PROTO, "unknown status"},
    {"COMPLETION LATE with data", B_COMPLETION, {S16(14, 2)}, PROTO, "LATE"},
    {"COMPLETION LATE without data", B_COMPLETION, {S16(14, 2), CUT(44)}, 0, NULL},
    {"COMPLETION reserved 1", B_COMPLETION, {S32(16, 1)}, PROTO, "reserved"},
    {"COMPLETION FAILED with data", B_COMPLETION, {S16(14, 1)}, PROTO, "FAILED"},
    {"COMPLETION FAILED without data", B_COMPLETION, {S16(14, 1), CUT(44)}, 0, NULL},
    {"COMPLETION OK without data", B_COMPLETION, {CUT(44)}, 0, NULL},
    /* CONFIG_GET */
    {"CONFIG_GET len 0", B_CFG_GET, {S32(16, 0)}, PROTO, "length 0"},
    {"CONFIG_GET len 257", B_CFG_GET, {S32(16, 257)}, TOOBIG, "over 256"},
    {"CONFIG_GET len 2^32-1", B_CFG_GET, {S32(16, 0xffffffff)}, TOOBIG, "over 256"},
    {"CONFIG_GET 200 + 60", B_CFG_GET, {S32(12, 200)}, PROTO, "beyond 256"},
    {"CONFIG_GET offset 2^32-1", B_CFG_GET, {S32(12, 0xffffffff)}, PROTO, "beyond 256"},
    {"CONFIG_GET 196 + 60 = 256", B_CFG_GET, {S32(12, 196)}, 0, NULL},
    /* CONFIG, CONFIG_SET, CONFIG_CHANGED */
    {"CONFIG no data", B_CONFIG, {CUT(16)}, PROTO, "length 0"},
    {"CONFIG 256 bytes", B_CONFIG, {ADD(0, 248)}, 0, NULL},
    {"CONFIG 257 bytes", B_CONFIG, {ADD(0, 249)}, TOOBIG, "over 256"},
    {"CONFIG 250 + 8", B_CONFIG, {S32(12, 250)}, PROTO, "beyond 256"},
    {"CONFIG_SET 256 + 1", B_CFG_SET, {S32(12, 256)}, PROTO, "beyond 256"},
    {"CONFIG_SET 255 + 1", B_CFG_SET, {S32(12, 255)}, 0, NULL},
    {"CONFIG_CHANGED offset 2^32-4", B_CFG_CHANGED, {S32(12, 0xfffffffc)}, PROTO, "beyond"},
    /* ERROR */
    {"ERROR code 0", B_ERROR, {S32(12, 0)}, PROTO, "code 0"},
    {"ERROR unknown code", B_ERROR, {S32(12, 1000)}, 0, NULL},
    {"ERROR STALE on a device channel", B_ERROR_CHAN, {S32(12, 8)}, 0, NULL},
    {"ERROR reserved 1", B_ERROR, {S16(18, 1)}, PROTO, "ERROR: reserved"},
    {"ERROR reason_len 256", B_ERROR, {S16(16, 256)}, TOOBIG, "over 255"},
    {"ERROR reason 255 bytes", B_ERROR, {ADD('r', 240), S16(16, 255)}, 0, NULL},
    {"ERROR reason 256 bytes", B_ERROR, {ADD('r', 241), S16(16, 256)}, TOOBIG, "over 255"},
    {"ERROR reason_len one less", B_ERROR, {S16(16, 14)}, PROTO, "reason_len does not"},
    {"ERROR reason with newline", B_ERROR, {S8(22, '\n')}, PROTO, "printable"},
    {"ERROR reason with ESC", B_ERROR, {S8(20, 0x1b)}, PROTO, "printable"},
    {"ERROR reason with DEL", B_ERROR, {S8(34, 0x7f)}, PROTO, "printable"},
    {"ERROR reason with 0xc3", B_ERROR, {S8(25, 0xc3)}, PROTO, "printable"},
    {"ERROR reason with NUL", B_ERROR, {S8(21, 0)}, PROTO, "printable"},
};

static void test_decode_table(void **state)
{
	uint8_t b[MAXBUF];
	struct wire_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];
		size_t n = unhex(bases[c->base].hex, b, sizeof(b));
		const char *why = NULL;
		int rc;

		for (int k = 0; k < 3 && c->m[k].op != M_END; k++) {
			n = apply_mut(b, n, &c->m[k]);
		}
		rc = decode_exact(b, n, &m, &why);
		if (rc != c->expect) {
			fail_msg("%s: rc %d, expected %d (why: %s)", c->what, rc, c->expect,
			         why ? why : "-");
		}
		if (rc == 0) {
			continue;
		}
		if (!why || !strstr(why, c->why_has)) {
			fail_msg("%s: why \"%s\" lacks \"%s\"", c->what, why ? why : "(null)",
			         c->why_has);
		}
	}
}

/* Every prefix of every message is refused (length field) or, with the field fixed, decoded
 * or refused with a reason, never read past. */
static void test_prefixes(void **state)
{
	uint8_t b[MAXBUF];
	struct wire_msg m;

	for (unsigned i = 0; i < B_COUNT; i++) {
		size_t n = unhex(bases[i].hex, b, sizeof(b));

		for (size_t k = 0; k < n; k++) {
			const char *why = NULL;

			assert_int_equal(decode_exact(b, k, &m, &why), -EPROTO);
			assert_non_null(why);
			if (k >= 4) {
				uint8_t c[MAXBUF];
				int rc;

				memcpy(c, b, k);
				put_le32(c, (uint32_t)k);
				why = NULL;
				rc = decode_exact(c, k, &m, &why);
				assert_true(rc == 0 || ((rc == -EPROTO || rc == -EMSGSIZE) && why));
			}
		}
	}
}

/* Single-byte corruption anywhere: whatever happens, no crash, no overread, a reason. */
static void test_byte_flips(void **state)
{
	uint8_t b[MAXBUF];
	struct wire_msg m;
	static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};

	for (unsigned i = 0; i < B_COUNT; i++) {
		size_t n = unhex(bases[i].hex, b, sizeof(b));

		for (size_t k = 0; k < n; k++) {
			for (size_t v = 0; v < ARRAY_SIZE(vals); v++) {
				uint8_t c[MAXBUF];
				const char *why = NULL;
				int rc;

				memcpy(c, b, n);
				c[k] = vals[v];
				rc = decode_exact(c, n, &m, &why);
				assert_true(rc == 0 || ((rc == -EPROTO || rc == -EMSGSIZE) && why));
			}
		}
	}
}

/* Encoder refusals: wire_encode never produces what wire_decode rejects. */
static void mod_type0(struct wire_msg *m)
{
	m->type = 0;
}
static void mod_type20(struct wire_msg *m)
{
	m->type = WIRE_TYPE_MAX;
}
static void mod_name64(struct wire_msg *m)
{
	memset(m->u.hello.name, 'a', sizeof(m->u.hello.name));
}
static void mod_name_slash(struct wire_msg *m)
{
	strcpy(m->u.hello.name, "ecu/a");
}
static void mod_name_empty(struct wire_msg *m)
{
	m->u.hello.name[0] = '\0';
}
static void mod_ver0(struct wire_msg *m)
{
	m->u.hello.ver_min = 0;
}
static void mod_chan1(struct wire_msg *m)
{
	m->chan = 1;
}
static void mod_chan0(struct wire_msg *m)
{
	m->chan = 0;
}
static void mod_attach_name_nl(struct wire_msg *m)
{
	strcpy(m->u.attach.name, "disk\n");
}
static void mod_attach_received(struct wire_msg *m)
{
	m->u.attach.received = 1;
}
static void mod_attach_ok_session0(struct wire_msg *m)
{
	m->u.attach_ok.session = 0;
}
static void mod_attach_ok_flag2(struct wire_msg *m)
{
	m->u.attach_ok.flags |= 2;
}
static void mod_cfg257(struct wire_msg *m)
{
	static const uint8_t big[300];

	m->u.attach_ok.config = big;
	m->u.attach_ok.config_len = 257;
}
static void mod_cfg_null(struct wire_msg *m)
{
	m->u.attach_ok.config = NULL;
}
static void mod_mqs100(struct wire_msg *m)
{
	m->u.attach_ok.max_queue_size = 100;
}
static void mod_nq0(struct wire_msg *m)
{
	m->u.attach_ok.num_queues = 0;
}
static void mod_stop_size(struct wire_msg *m)
{
	m->u.queue.size = 8;
}
static void mod_queue_flags(struct wire_msg *m)
{
	m->u.queue.flags = 1;
}
static void mod_req_id0(struct wire_msg *m)
{
	m->u.request.id = 0;
	m->u.request.ack = 0;
}
static void mod_req_nodata(struct wire_msg *m)
{
	m->u.request.data = NULL;
}
static void mod_req_flags(struct wire_msg *m)
{
	m->u.request.flags = 4;
}
static void mod_cpl_status(struct wire_msg *m)
{
	m->u.completion.status = 3;
}
static void mod_cpl_nodata(struct wire_msg *m)
{
	m->u.completion.data = NULL;
}
static void mod_cfg_len0(struct wire_msg *m)
{
	m->u.config.len = 0;
}
static void mod_cfg_data_null(struct wire_msg *m)
{
	m->u.config.data = NULL;
}
static void mod_cfg_get300(struct wire_msg *m)
{
	m->u.config.len = 300;
}
static void mod_reason_nl(struct wire_msg *m)
{
	strcpy(m->u.error.reason, "bad\nthing");
}
static void mod_reason_256(struct wire_msg *m)
{
	memset(m->u.error.reason, 'r', sizeof(m->u.error.reason));
}
static void mod_code0(struct wire_msg *m)
{
	m->u.error.code = 0;
}

struct encode_case {
	const char *what;
	enum base_id base;
	void (*mod)(struct wire_msg *m);
};

static const struct encode_case encode_cases[] = {
    {"type 0", B_PING, mod_type0},
    {"type WIRE_TYPE_MAX", B_PING, mod_type20},
    {"HELLO name without terminator", B_HELLO, mod_name64},
    {"HELLO name with /", B_HELLO, mod_name_slash},
    {"HELLO name empty", B_HELLO, mod_name_empty},
    {"HELLO ver_min 0", B_HELLO, mod_ver0},
    {"HELLO on channel 1", B_HELLO, mod_chan1},
    {"PONG on channel 1", B_PONG, mod_chan1},
    {"ATTACH on channel 0", B_ATTACH, mod_chan0},
    {"ATTACH name with newline", B_ATTACH, mod_attach_name_nl},
    {"ATTACH received without a session", B_ATTACH, mod_attach_received},
    {"ATTACH_OK session 0", B_ATTACH_OK, mod_attach_ok_session0},
    {"ATTACH_OK resumed, session 0", B_ATTACH_OK_RESUMED, mod_attach_ok_session0},
    {"ATTACH_OK flag bit 1", B_ATTACH_OK, mod_attach_ok_flag2},
    {"ATTACH_OK resumed, flag bit 1", B_ATTACH_OK_RESUMED, mod_attach_ok_flag2},
    {"ATTACH_OK config_len 257", B_ATTACH_OK, mod_cfg257},
    {"ATTACH_OK config NULL", B_ATTACH_OK, mod_cfg_null},
    {"ATTACH_OK max_queue_size 100", B_ATTACH_OK, mod_mqs100},
    {"ATTACH_OK num_queues 0", B_ATTACH_OK, mod_nq0},
    {"QUEUE_STOP size 8", B_QSTOP, mod_stop_size},
    {"QUEUE_START flags 1", B_QSTART, mod_queue_flags},
    {"REQUEST id 0", B_REQUEST, mod_req_id0},
    {"REQUEST data NULL", B_REQUEST, mod_req_nodata},
    {"REQUEST flags 4", B_REQUEST, mod_req_flags},
    {"REQUEST on channel 0", B_REQUEST, mod_chan0},
    {"COMPLETION status 3", B_COMPLETION, mod_cpl_status},
    {"COMPLETION data NULL", B_COMPLETION, mod_cpl_nodata},
    {"CONFIG len 0", B_CONFIG, mod_cfg_len0},
    {"CONFIG data NULL", B_CONFIG, mod_cfg_data_null},
    {"CONFIG_GET len 300", B_CFG_GET, mod_cfg_get300},
    {"ERROR reason with newline", B_ERROR, mod_reason_nl},
    {"ERROR reason without terminator", B_ERROR, mod_reason_256},
    {"ERROR code 0", B_ERROR, mod_code0},
};

static void test_encode_table(void **state)
{
	uint8_t buf[MAXBUF];

	for (size_t i = 0; i < ARRAY_SIZE(encode_cases); i++) {
		struct wire_msg m = bases[encode_cases[i].base].msg;

		assert_int_not_equal(wire_encode(buf, sizeof(buf), &m), 0);
		encode_cases[i].mod(&m);
		if (wire_encode(buf, sizeof(buf), &m) != 0) {
			fail_msg("%s: encoded", encode_cases[i].what);
		}
	}
}

static void test_names(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"a", 1},
	    {"disk0", 1},
	    {"ECU_a.b-c", 1},
	    {"..", 1},
	    {"123456789012345678901234567890123456789012345678901234567890123", 1},
	    {"1234567890123456789012345678901234567890123456789012345678901234", 0},
	    {"", 0},
	    {"a b", 0},
	    {"a/b", 0},
	    {"a:b", 0},
	    {"a\tb", 0},
	    {"caf\xc3\xa9", 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (wire_name_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok) {
			fail_msg("name \"%s\": expected %d", cases[i].s, cases[i].ok);
		}
	}
	assert_false(wire_name_valid(NULL, 3));
	assert_false(wire_name_valid("ab\0c", 4));
}

static void test_type_names(void **state)
{
	static const char *const names[] = {
	    "UNKNOWN",    "HELLO",          "ATTACH",     "ATTACH_OK",  "DETACH",
	    "FEATURES",   "QUEUE_START",    "QUEUE_STOP", "RESET",      "STATUS",
	    "REQUEST",    "COMPLETION",     "ACK",        "CONFIG_GET", "CONFIG",
	    "CONFIG_SET", "CONFIG_CHANGED", "PING",       "PONG",       "ERROR",
	};

	for (unsigned t = 0; t < ARRAY_SIZE(names); t++) {
		assert_string_equal(wire_type_name(t), names[t]);
	}
	assert_string_equal(wire_type_name(WIRE_TYPE_MAX), "UNKNOWN");
	assert_string_equal(wire_type_name(~0u), "UNKNOWN");
	assert_string_equal(wire_error_name(WIRE_E_PROTO), "PROTO");
	assert_string_equal(wire_error_name(WIRE_E_NOENT), "NOENT");
	assert_string_equal(wire_error_name(WIRE_E_LIMIT), "LIMIT");
	assert_int_equal(WIRE_E_STALE, 8); /* the number is on the wire */
	assert_string_equal(wire_error_name(WIRE_E_STALE), "STALE");
	assert_string_equal(wire_error_name(0), "UNKNOWN");
	assert_string_equal(wire_error_name(9), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden_encode), cmocka_unit_test(test_golden_decode),
	    cmocka_unit_test(test_encode_cap),    cmocka_unit_test(test_bulk_headers),
	    cmocka_unit_test(test_decode_table),  cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_byte_flips),    cmocka_unit_test(test_encode_table),
	    cmocka_unit_test(test_names),         cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
