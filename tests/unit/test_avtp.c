/*
 * tsn:// frame codec (transport/tsn/avtp.c): golden frames written by hand
 * from docs/protocol.md section 11 (tagged and untagged, TSCF and NTSCF, every
 * message kind, foreign ACF messages, Ethernet padding), round trips through
 * the builder, a table of hostile frames made by mutating the golden bytes,
 * a single-bit-flip sweep, the builder's limits, and the helpers.
 *
 * VB_AVTP_PCAP=FILE also writes the golden frames to FILE (classic pcap,
 * linktype Ethernet) and what each one is to FILE.expect, for
 * tests/e2e/test_avtp_tshark.sh.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "tests/avtp_msg.h"
#include "transport/tsn/avtp.h"

#define MAXBUF 10000

#define MAC_A                                                                                      \
	{                                                                                          \
		0x02, 0, 0, 0, 0, 0x0a                                                             \
	}
#define MAC_B                                                                                      \
	{                                                                                          \
		0x02, 0, 0, 0, 0, 0x0b                                                             \
	}

static const uint8_t hello[] = "hello";
static const uint8_t eight[] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t nine[] = {9};
static const uint8_t beef[] = {0xde, 0xad, 0xbe, 0xef};
static const char silent[] = "peer silent";
static const char digits100[] = "0123456789012345678901234567890123456789"
                                "0123456789012345678901234567890123456789"
                                "01234567890123456789";

#define SEG(...)                                                                                   \
	{                                                                                          \
		.type = AVTP_ACF_SEG, .u.seg = { __VA_ARGS__ }                                     \
	}
#define ACK(...)                                                                                   \
	{                                                                                          \
		.type = AVTP_ACF_ACK, .u.ack = { __VA_ARGS__ }                                     \
	}
#define CTL(...)                                                                                   \
	{                                                                                          \
		.type = AVTP_ACF_CTL, .u.ctl = { __VA_ARGS__ }                                     \
	}

enum golden_id {
	G_SEG,
	G_SEG2_TAGGED,
	G_ACK_PING,
	G_CLOSE_TAGGED,
	G_NTSCF_LONG,
	G_OPEN_PADDED,
	G_FOREIGN,
	G_COUNT
};

struct golden {
	const char *name;
	struct avtp_hdr h;
	uint16_t data_len;
	unsigned n_skipped;
	unsigned n;
	struct any_msg m[8];
	const char *acf_types; /* every ACF message in the frame, for tshark */
	const char *hex;
};

/* docs/protocol.md section 11, byte by byte; spaces separate the fields. */
static const struct golden goldens[G_COUNT] = {
    [G_SEG] = {"TSCF, one SEG FIRST|LAST, audio",
               {.dst = MAC_B,
                .src = MAC_A,
                .subtype = AVTP_SUBTYPE_TSCF,
                .sv = 1,
                .tv = true,
                .seq = 7,
                .stream_id = 0x02000000000a1003ull,
                .avtp_timestamp = 0x12345678},
               24,
               0,
               1,
               {SEG(.flags = AVTP_SEG_FIRST | AVTP_SEG_LAST, .cls = AVTP_CLASS_AUDIO,
                    .token = 0x11223344, .seq = 0xfffffffe, .data_len = 5, .data = hello)},
               "0x78",
               /* Ethernet: destination, source, EtherType */
               "02000000000b 02000000000a 22f0 "
               /* TSCF: subtype, sv|tv, seq, tu, stream_id, timestamp, rsv, length, rsv */
               "05 81 07 00 02000000000a1003 12345678 00000000 0018 0000 "
               /* SEG: type 0x78 len 6, flags, class, token, seq, data_len, rsv, data, pad */
               "f006 03 01 11223344 fffffffe 0005 0000 68656c6c6f 000000"},
    [G_SEG2_TAGGED] = {"TSCF tagged, two SEGs, bulk, chan 0xabc",
                       {.dst = MAC_A,
                        .src = MAC_B,
                        .vlan = true,
                        .pcp = 2,
                        .vid = 100,
                        .subtype = AVTP_SUBTYPE_TSCF,
                        .sv = 1,
                        .tu = true,
                        .seq = 0xff,
                        .stream_id = 0x02000000000b3abcull},
                       44,
                       0,
                       2,
                       {SEG(.flags = AVTP_SEG_FIRST, .cls = AVTP_CLASS_BULK, .token = 0xcafef00d,
                            .seq = 0x100, .data_len = 8, .data = eight),
                        SEG(.flags = AVTP_SEG_LAST, .cls = AVTP_CLASS_BULK, .token = 0xcafef00d,
                            .seq = 0x101, .data_len = 1, .data = nine)},
                       "0x78,0x78",
                       /* 802.1Q tag: TPID, PCP 2 DEI 0 VID 100 */
                       "02000000000a 02000000000b 8100 4064 22f0 "
                       "05 80 ff 01 02000000000b3abc 00000000 00000000 002c 0000 "
                       "f006 01 03 cafef00d 00000100 0008 0000 0102030405060708 "
                       "f005 02 03 cafef00d 00000101 0001 0000 09 000000"},
    [G_ACK_PING] = {"NTSCF, ACK and PING",
                    {.dst = MAC_B,
                     .src = MAC_A,
                     .subtype = AVTP_SUBTYPE_NTSCF,
                     .sv = 1,
                     .seq = 0x10,
                     .stream_id = 0x02000000000a0000ull},
                    56,
                    0,
                    2,
                    {ACK(.cls = AVTP_CLASS_CONTROL, .token = 0x01020304, .cum = 0x1000,
                         .window = 0x40, .sack = 0x8000000000000005ull),
                     CTL(.op = AVTP_CTL_PING, .token = 0x01020304, .my_token = 0x0a0b0c0d,
                         .max_seg = 2028, .window = 64, .isn = 0x55aa55aa,
                         .time = 0x0011223344556677ull)},
                    "0x79,0x7a",
                    "02000000000b 02000000000a 22f0 "
                    /* NTSCF: subtype, sv|length bits 10-8, length bits 7-0, seq, stream_id */
                    "82 80 38 10 02000000000a0000 "
                    /* ACK: type 0x79 len 6, flags, class, token, cum, window, sack */
                    "f206 00 00 01020304 00001000 00000040 8000000000000005 "
                    /* CTL: type 0x7a len 8, op, rsv, token, my_token, max_seg, window, isn,
                       time, reason_len */
                    "f408 04 00 01020304 0a0b0c0d 07ec 0040 55aa55aa 0011223344556677 00000000"},
    [G_CLOSE_TAGGED] = {"NTSCF tagged, CLOSE with a reason",
                        {.dst = MAC_A,
                         .src = MAC_B,
                         .vlan = true,
                         .pcp = 3,
                         .vid = 5,
                         .subtype = AVTP_SUBTYPE_NTSCF,
                         .sv = 1,
                         .stream_id = 0x02000000000b0000ull},
                        44,
                        0,
                        1,
                        {CTL(.op = AVTP_CTL_CLOSE, .token = 0x0a0b0c0d, .my_token = 0x01020304,
                             .max_seg = 2028, .window = 64, .isn = 0x12345678, .reason_len = 11,
                             .reason = silent)},
                        "0x7a",
                        "02000000000a 02000000000b 8100 6005 22f0 "
                        "82 80 2c 00 02000000000b0000 "
                        /* CTL len 11 quadlets, then "peer silent" and one byte of padding */
                        "f40b 03 00 0a0b0c0d 01020304 07ec 0040 12345678 0000000000000000 "
                        "0000000b 7065657220 73696c656e74 00"},
    [G_NTSCF_LONG] =
        {"NTSCF, 260 bytes: four ACKs, PONG, CLOSE",
         {.dst = MAC_B,
          .src = MAC_A,
          .subtype = AVTP_SUBTYPE_NTSCF,
          .sv = 1,
          .seq = 0x42,
          .stream_id = 0x02000000000a0000ull},
         260,
         0,
         6,
         {ACK(.cls = 0, .token = 0x01020304, .cum = 1, .window = 0x10),
          ACK(.cls = 1, .token = 0x01020304, .cum = 0x7fffffff, .window = 0x20, .sack = 1),
          ACK(.cls = 2, .token = 0x01020304, .cum = 0x80000000, .window = 0, .sack = UINT64_MAX),
          ACK(.cls = 3, .token = 0x01020304, .cum = 0xffffffff, .window = 0x100,
              .sack = 0xdeadbeef),
          CTL(.op = AVTP_CTL_PONG, .token = 0x01020304, .my_token = 0x0a0b0c0d,
              .time = 0x0011223344556677ull),
          CTL(.op = AVTP_CTL_CLOSE, .token = 0x01020304, .my_token = 0x0a0b0c0d, .max_seg = 2028,
              .window = 64, .isn = 0x55aa55aa, .reason_len = 100, .reason = digits100)},
         "0x79,0x79,0x79,0x79,0x7a,0x7a",
         "02000000000b 02000000000a 22f0 "
         /* ntscf_data_length 0x104: bit 8 in byte 1 */
         "82 81 04 42 02000000000a0000 "
         "f206 00 00 01020304 00000001 00000010 0000000000000000 "
         "f206 00 01 01020304 7fffffff 00000020 0000000000000001 "
         "f206 00 02 01020304 80000000 00000000 ffffffffffffffff "
         "f206 00 03 01020304 ffffffff 00000100 00000000deadbeef "
         "f408 05 00 01020304 0a0b0c0d 0000 0000 00000000 0011223344556677 00000000 "
         /* 33 quadlets: 32 + 100 reason bytes */
         "f421 03 00 01020304 0a0b0c0d 07ec 0040 55aa55aa 0000000000000000 00000064 "
         "30313233343536373839 30313233343536373839 30313233343536373839 "
         "30313233343536373839 30313233343536373839 30313233343536373839 "
         "30313233343536373839 30313233343536373839 30313233343536373839 "
         "30313233343536373839"},
    [G_OPEN_PADDED] = {"NTSCF, OPEN, padded to 60 bytes",
                       {.dst = MAC_B,
                        .src = MAC_A,
                        .subtype = AVTP_SUBTYPE_NTSCF,
                        .sv = 1,
                        .stream_id = 0x02000000000a0000ull},
                       32,
                       0,
                       1,
                       {CTL(.op = AVTP_CTL_OPEN, .my_token = 0x01020304, .max_seg = 2028,
                            .window = 256, .isn = 0xfffffff0)},
                       "0x7a",
                       "02000000000b 02000000000a 22f0 "
                       "82 80 20 00 02000000000a0000 "
                       "f408 01 00 00000000 01020304 07ec 0100 fffffff0 0000000000000000 00000000 "
                       /* Ethernet padding to 60 bytes */
                       "0000"},
    [G_FOREIGN] = {"TSCF, a SEG between two foreign ACF messages",
                   {.dst = MAC_A,
                    .src = MAC_B,
                    .subtype = AVTP_SUBTYPE_TSCF,
                    .sv = 1,
                    .tv = true,
                    .tu = true,
                    .seq = 0x80,
                    .stream_id = 0x02000000000b2001ull,
                    .avtp_timestamp = 0xffffffff},
                   32,
                   2,
                   1,
                   {SEG(.flags = 0, .cls = AVTP_CLASS_VIDEO, .token = 0x0a0b0c0d, .seq = 5,
                        .data_len = 4, .data = beef)},
                   "0x7f,0x78,0x7b",
                   "02000000000a 02000000000b 22f0 "
                   "05 81 80 01 02000000000b2001 ffffffff 00000000 0020 0000 "
                   /* user type 0x7f, 1 quadlet */
                   "fe01 0000 "
                   "f005 00 02 0a0b0c0d 00000005 0004 0000 deadbeef "
                   /* user type 0x7b, 2 quadlets */
                   "f602 aabbccddeeff"},
};

/* Hex digits in pairs; spaces between fields are skipped. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (*hex) {
		if (*hex == ' ') {
			hex++;
			continue;
		}
		assert_true(n < cap);
		assert_true(isxdigit((unsigned char)hex[0]) && isxdigit((unsigned char)hex[1]));
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

/* Decodes from an exact-size heap copy so that ASan sees any read past the frame. */
static int decode_exact(const uint8_t *bytes, size_t n, struct avtp_frame *f, uint8_t **keep)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, bytes, n);
	rc = avtp_decode(copy, n, f);
	if (keep) {
		*keep = copy;
	} else {
		free(copy);
	}
	return rc;
}

static void assert_err(int rc, enum avtp_err want, const char *what)
{
	if (rc != -(int)want) {
		fail_msg("%s: got %d (%s), want -%u (%s)", what, rc, avtp_err_name((unsigned)-rc),
		         want, avtp_err_name(want));
	}
}

/*
 * Whatever avtp_decode() accepted: every listed message decodes, and building
 * the frame again from the decoded fields gives a frame that decodes to the
 * same fields (foreign messages are not carried over).
 */
static void assert_reencodes(const uint8_t *frame, size_t len, const struct avtp_frame *f)
{
	static uint8_t out[MAXBUF];
	struct avtp_frame g;
	struct avtp_builder b;
	struct any_msg m[AVTP_MAX_ACF], m2;
	size_t n;

	assert_true(f->n_acf <= AVTP_MAX_ACF);
	assert_true(f->data >= frame && f->data + f->data_len <= frame + len);
	assert_int_equal(avtp_build_begin(&b, out, sizeof(out), 9000, &f->h), 0);
	for (unsigned i = 0; i < f->n_acf; i++) {
		assert_true(f->acf[i].msg >= f->data);
		assert_true(f->acf[i].msg + f->acf[i].len <= f->data + f->data_len);
		assert_int_equal(any_msg_decode(&f->acf[i], &m[i]), 0);
		assert_int_equal(any_msg_build(&b, &m[i]), 0);
	}
	n = avtp_build_finish(&b);
	assert_int_equal(decode_exact(out, n, &g, NULL), 0);
	/* g's pointers are freed with the copy: compare against out, which holds the same bytes. */
	assert_int_equal(avtp_decode(out, n, &g), 0);
	assert_true(hdr_equal(&f->h, &g.h));
	assert_int_equal(g.n_acf, f->n_acf);
	assert_int_equal(g.n_skipped, 0);
	for (unsigned i = 0; i < g.n_acf; i++) {
		assert_int_equal(any_msg_decode(&g.acf[i], &m2), 0);
		assert_true(any_msg_equal(&m[i], &m2));
	}
}

/* Golden frames */

static void test_golden_decode(void **state)
{
	uint8_t bytes[MAXBUF], *copy;
	struct avtp_frame f;
	struct any_msg m;

	for (unsigned i = 0; i < G_COUNT; i++) {
		const struct golden *g = &goldens[i];
		size_t n = unhex(g->hex, bytes, sizeof(bytes));
		size_t pdu = g->h.vlan ? 18 : 14;
		size_t hl = g->h.subtype == AVTP_SUBTYPE_TSCF ? 24 : 12;
		int rc = decode_exact(bytes, n, &f, &copy);

		if (rc != 0) {
			fail_msg("%s: golden frame refused: %s", g->name, avtp_err_name(-rc));
		}
		if (!hdr_equal(&f.h, &g->h)) {
			fail_msg("%s: header fields differ", g->name);
		}
		assert_int_equal(f.data_len, g->data_len);
		assert_ptr_equal(f.data, copy + pdu + hl);
		assert_int_equal(f.n_skipped, g->n_skipped);
		assert_int_equal(f.n_acf, g->n);
		for (unsigned k = 0; k < g->n; k++) {
			assert_int_equal(f.acf[k].type, g->m[k].type);
			assert_int_equal(any_msg_decode(&f.acf[k], &m), 0);
			if (!any_msg_equal(&m, &g->m[k])) {
				fail_msg("%s: message %u differs", g->name, k);
			}
		}
		assert_reencodes(copy, n, &f);
		free(copy);
	}
}

static void test_golden_encode(void **state)
{
	uint8_t want[MAXBUF], got[MAXBUF];
	struct avtp_builder b;

	for (unsigned i = 0; i < G_COUNT; i++) {
		const struct golden *g = &goldens[i];
		size_t n = unhex(g->hex, want, sizeof(want)), len;

		if (g->n_skipped) {
			continue; /* the builder writes only our messages */
		}
		memset(got, 0xa5, sizeof(got));
		assert_int_equal(avtp_build_begin(&b, got, sizeof(got), 1500, &g->h), 0);
		for (unsigned k = 0; k < g->n; k++) {
			assert_int_equal(any_msg_build(&b, &g->m[k]), 0);
		}
		len = avtp_build_finish(&b);
		if (len != n || memcmp(got, want, n) != 0) {
			fail_msg("%s: encoding differs from the golden bytes (%zu vs %zu)", g->name,
			         len, n);
		}
	}
}

/* The sv and version fields of a header given to the builder are the builder's. */
static void test_encode_ignores_sv_version(void **state)
{
	uint8_t want[MAXBUF], got[MAXBUF];
	struct avtp_hdr h = goldens[G_SEG].h;
	struct avtp_builder b;
	size_t n = unhex(goldens[G_SEG].hex, want, sizeof(want));

	h.sv = 0;
	h.version = 3;
	assert_int_equal(avtp_build_begin(&b, got, sizeof(got), 1500, &h), 0);
	assert_int_equal(any_msg_build(&b, &goldens[G_SEG].m[0]), 0);
	assert_int_equal(avtp_build_finish(&b), n);
	assert_memory_equal(got, want, n);
}

/* Hostile frames: mutations of golden bytes */

enum mut_op { M_END, M_SET8, M_SET16, M_SET32, M_CUT };

struct mut {
	enum mut_op op;
	size_t off;
	uint32_t val;
};

struct hostile {
	const char *what;
	enum golden_id base;
	struct mut m[2];
	enum avtp_err want; /* AVTP_OK: still accepted */
};

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
#define CUT(n)                                                                                     \
	{                                                                                          \
		M_CUT, 0, (n)                                                                      \
	}

static size_t apply_mut(uint8_t *b, size_t n, const struct mut *m)
{
	switch (m->op) {
	case M_SET8:
		b[m->off] = (uint8_t)m->val;
		return n;
	case M_SET16:
		b[m->off] = (uint8_t)(m->val >> 8);
		b[m->off + 1] = (uint8_t)m->val;
		return n;
	case M_SET32:
		for (int i = 0; i < 4; i++) {
			b[m->off + i] = (uint8_t)(m->val >> (24 - 8 * i));
		}
		return n;
	case M_CUT:
		return m->val;
	default:
		return n;
	}
}

/*
 * Offsets. G_SEG: AVTP at 14, SEG at 38 (flags 40, class 41, token 42, data_len 50,
 * rsv 52, data 54, pad 59). G_SEG2_TAGGED: tag at 12, AVTP at 18. G_ACK_PING: AVTP at
 * 14, ACK at 26 (flags 28, class 29, token 30), CTL at 50 (op 52, rsv 53, token 54,
 * my_token 58). G_CLOSE_TAGGED: AVTP at 18, CTL at 30 (op 32, max_seg 42, time 50,
 * reason_len 58, reason 62, pad 73). G_OPEN_PADDED: CTL at 26 (token 30, my_token 34,
 * max_seg 38, window 40, time 46).
 */
static const struct hostile hostiles[] = {
    /* Ethernet */
    {"empty frame", G_SEG, {CUT(0)}, AVTP_E_RUNT},
    {"13 bytes", G_SEG, {CUT(13)}, AVTP_E_RUNT},
    {"tagged, 17 bytes", G_SEG2_TAGGED, {CUT(17)}, AVTP_E_RUNT},
    {"Ethernet header only", G_SEG, {CUT(14)}, AVTP_E_RUNT},
    {"one byte of AVTP", G_ACK_PING, {CUT(15)}, AVTP_E_RUNT},
    {"TSCF header cut at 23", G_SEG, {CUT(37)}, AVTP_E_RUNT},
    {"NTSCF header cut at 11", G_CLOSE_TAGGED, {CUT(29)}, AVTP_E_RUNT},
    {"EtherType IPv4", G_SEG, {S16(12, 0x0800)}, AVTP_E_ETHERTYPE},
    {"EtherType 0x22F1", G_ACK_PING, {S16(12, 0x22f1)}, AVTP_E_ETHERTYPE},
    {"IPv4 inside the tag", G_SEG2_TAGGED, {S16(16, 0x0800)}, AVTP_E_ETHERTYPE},
    {"two tags", G_SEG2_TAGGED, {S16(16, 0x8100)}, AVTP_E_ETHERTYPE},
    {"802.1ad S-tag", G_SEG2_TAGGED, {S16(12, 0x88a8)}, AVTP_E_ETHERTYPE},
    {"DEI set", G_SEG2_TAGGED, {S16(14, 0x5064)}, AVTP_E_VLAN},
    {"VID 4095", G_CLOSE_TAGGED, {S16(14, 0x6fff)}, AVTP_E_VLAN},
    {"VID 0, PCP 7", G_CLOSE_TAGGED, {S16(14, 0xe000)}, AVTP_OK},
    {"source MAC multicast", G_SEG, {S8(6, 0x03)}, AVTP_E_SRC_MAC},
    {"source MAC broadcast", G_ACK_PING, {S32(6, 0xffffffff), S16(10, 0xffff)}, AVTP_E_SRC_MAC},
    {"destination multicast (the link's business)", G_SEG, {S8(0, 0x01)}, AVTP_OK},
    /* AVTP common header */
    {"subtype AAF", G_SEG, {S8(14, 0x02)}, AVTP_E_SUBTYPE},
    {"subtype 0x85", G_SEG, {S8(14, 0x85)}, AVTP_E_SUBTYPE},
    {"subtype 0x02 on NTSCF", G_ACK_PING, {S8(14, 0x02)}, AVTP_E_SUBTYPE},
    {"version 1", G_SEG, {S8(15, 0x91)}, AVTP_E_VERSION},
    {"version 7, NTSCF", G_ACK_PING, {S8(15, 0xf0)}, AVTP_E_VERSION},
    {"sv 0", G_SEG, {S8(15, 0x01)}, AVTP_E_SV},
    {"sv 0, NTSCF", G_ACK_PING, {S8(15, 0x00)}, AVTP_E_SV},
    {"sv 0, tagged", G_SEG2_TAGGED, {S8(19, 0x00)}, AVTP_E_SV},
    /* TSCF / NTSCF reserved bits */
    {"TSCF mr", G_SEG, {S8(15, 0x89)}, AVTP_E_RESERVED},
    {"TSCF reserved bit 1", G_SEG, {S8(15, 0x83)}, AVTP_E_RESERVED},
    {"TSCF reserved bit 2", G_SEG, {S8(15, 0x85)}, AVTP_E_RESERVED},
    {"TSCF byte 3 bit 1", G_SEG, {S8(17, 0x02)}, AVTP_E_RESERVED},
    {"TSCF byte 3 bit 7", G_SEG2_TAGGED, {S8(21, 0x81)}, AVTP_E_RESERVED},
    {"TSCF reserved quadlet", G_SEG, {S8(33, 0x01)}, AVTP_E_RESERVED},
    {"TSCF reserved after the length", G_SEG, {S8(36, 0x80)}, AVTP_E_RESERVED},
    {"timestamp with tv 0", G_SEG, {S8(15, 0x80)}, AVTP_E_RESERVED},
    {"tv 0 and timestamp 0", G_SEG, {S8(15, 0x80), S32(26, 0)}, AVTP_OK},
    {"NTSCF reserved bit", G_ACK_PING, {S8(15, 0x88)}, AVTP_E_RESERVED},
    /* data lengths */
    {"stream_data_length one beyond", G_SEG, {S16(34, 25)}, AVTP_E_LENGTH},
    {"stream_data_length 0xffff", G_SEG, {S16(34, 0xffff)}, AVTP_E_LENGTH},
    {"stream_data_length 0 (no messages)", G_SEG, {S16(34, 0)}, AVTP_OK},
    {"ntscf_data_length + 256", G_ACK_PING, {S8(15, 0x81)}, AVTP_E_LENGTH},
    {"ntscf_data_length 2047", G_NTSCF_LONG, {S16(15, 0x87ff)}, AVTP_E_LENGTH},
    {"frame cut inside the messages", G_ACK_PING, {CUT(80)}, AVTP_E_LENGTH},
    {"padding after the messages", G_OPEN_PADDED, {S8(59, 0xff)}, AVTP_OK},
    /* stream_id */
    {"stream_id MAC differs from source", G_SEG, {S8(23, 0x0b)}, AVTP_E_STREAM_MAC},
    {"stream_id MAC first byte", G_ACK_PING, {S8(18, 0x06)}, AVTP_E_STREAM_MAC},
    {"stream_id class 4", G_SEG, {S8(24, 0x40)}, AVTP_E_CLASS},
    {"stream_id class 15, NTSCF", G_ACK_PING, {S8(24, 0xf0)}, AVTP_E_CLASS},
    {"NTSCF stream_id chan 1", G_ACK_PING, {S8(25, 0x01)}, AVTP_E_STREAM_CHAN},
    {"NTSCF stream_id class 3", G_ACK_PING, {S8(24, 0x30)}, AVTP_OK},
    /* ACF walk */
    {"ACF length 0", G_SEG, {S16(38, 0xf000)}, AVTP_E_ACF_ZERO},
    {"ACF length 0, foreign type", G_FOREIGN, {S16(38, 0xfe00)}, AVTP_E_ACF_ZERO},
    {"ACF length overruns by a quadlet", G_SEG, {S16(38, 0xf007)}, AVTP_E_ACF_OVERRUN},
    {"ACF length 511", G_ACK_PING, {S16(26, 0xf3ff)}, AVTP_E_ACF_OVERRUN},
    {"data length not a quadlet multiple", G_SEG, {S16(34, 22)}, AVTP_E_ACF_OVERRUN},
    {"one byte after the last message", G_OPEN_PADDED, {S8(16, 0x21)}, AVTP_E_ACF_OVERRUN},
    {"two zero bytes after the last message", G_OPEN_PADDED, {S8(16, 0x22)}, AVTP_E_ACF_ZERO},
    {"foreign message overruns", G_FOREIGN, {S16(62, 0xf603)}, AVTP_E_ACF_OVERRUN},
    /* SEG */
    {"SEG data_len 0", G_SEG, {S16(50, 0)}, AVTP_E_DATA_LEN},
    {"SEG data_len 2029", G_SEG, {S16(50, 2029)}, AVTP_E_DATA_LEN},
    {"SEG data_len 0xffff", G_SEG, {S16(50, 0xffff)}, AVTP_E_DATA_LEN},
    {"SEG data_len 9, message holds 8", G_SEG, {S16(50, 9)}, AVTP_E_DATA_LEN},
    {"SEG data_len 4, message holds 8", G_SEG, {S16(50, 4)}, AVTP_E_DATA_LEN},
    {"SEG data_len 8, message holds 8", G_SEG, {S16(50, 8)}, AVTP_OK},
    {"SEG length 4 quadlets", G_SEG, {S16(38, 0xf004)}, AVTP_E_MSG_SIZE},
    {"SEG length 1 quadlet", G_SEG, {S16(38, 0xf001)}, AVTP_E_MSG_SIZE},
    {"SEG padding byte", G_SEG, {S8(61, 0x01)}, AVTP_E_PADDING},
    {"SEG first padding byte", G_SEG, {S8(59, 0x80)}, AVTP_E_PADDING},
    {"SEG reserved", G_SEG, {S8(53, 0x01)}, AVTP_E_RESERVED},
    {"SEG reserved high", G_SEG2_TAGGED, {S8(56, 0x80)}, AVTP_E_RESERVED},
    {"SEG flags bit 2", G_SEG, {S8(40, 0x07)}, AVTP_E_FLAGS},
    {"SEG flags 0x80", G_SEG, {S8(40, 0x80)}, AVTP_E_FLAGS},
    {"SEG no flags", G_SEG, {S8(40, 0)}, AVTP_OK},
    {"SEG class 4", G_SEG, {S8(41, 4)}, AVTP_E_CLASS},
    {"SEG class 255", G_SEG, {S8(41, 255)}, AVTP_E_CLASS},
    {"SEG class differs from stream", G_SEG, {S8(41, 2)}, AVTP_E_CLASS_MISMATCH},
    {"second SEG's class differs", G_SEG2_TAGGED, {S8(69, 2)}, AVTP_E_CLASS_MISMATCH},
    {"SEG token 0", G_SEG, {S32(42, 0)}, AVTP_E_TOKEN},
    {"SEG in NTSCF", G_ACK_PING, {S8(26, 0xf0)}, AVTP_E_MSG_SUBTYPE},
    {"ACK in TSCF", G_SEG, {S8(38, 0xf2)}, AVTP_E_MSG_SUBTYPE},
    {"CTL in TSCF", G_SEG, {S8(38, 0xf4)}, AVTP_E_MSG_SUBTYPE},
    {"foreign type 0x7b instead of the SEG", G_SEG, {S8(38, 0xf6)}, AVTP_OK},
    /* ACK */
    {"ACK flags", G_ACK_PING, {S8(28, 0x01)}, AVTP_E_FLAGS},
    {"ACK class 4", G_ACK_PING, {S8(29, 4)}, AVTP_E_CLASS},
    {"ACK class 3", G_ACK_PING, {S8(29, 3)}, AVTP_OK},
    {"ACK token 0", G_ACK_PING, {S32(30, 0)}, AVTP_E_TOKEN},
    {"ACK length 7", G_ACK_PING, {S16(26, 0xf207)}, AVTP_E_MSG_SIZE},
    {"ACK length 5", G_ACK_PING, {S16(26, 0xf205)}, AVTP_E_MSG_SIZE},
    /* CTL */
    {"CTL op 0", G_ACK_PING, {S8(52, 0)}, AVTP_E_CTL_OP},
    {"CTL op 6", G_ACK_PING, {S8(52, 6)}, AVTP_E_CTL_OP},
    {"CTL op 255", G_OPEN_PADDED, {S8(28, 255)}, AVTP_E_CTL_OP},
    {"CTL reserved", G_ACK_PING, {S8(53, 1)}, AVTP_E_RESERVED},
    {"CTL length 7", G_ACK_PING, {S16(50, 0xf407)}, AVTP_E_MSG_SIZE},
    {"CTL my_token 0", G_ACK_PING, {S32(58, 0)}, AVTP_E_TOKEN},
    {"PING token 0", G_ACK_PING, {S32(54, 0)}, AVTP_E_TOKEN},
    {"PONG with a time", G_ACK_PING, {S8(52, 5)}, AVTP_OK},
    {"ACCEPT with a time", G_ACK_PING, {S8(52, 2)}, AVTP_E_CTL_FIELD},
    {"OPEN with a token", G_OPEN_PADDED, {S32(30, 1)}, AVTP_E_TOKEN},
    {"OPEN my_token 0", G_OPEN_PADDED, {S32(34, 0)}, AVTP_E_TOKEN},
    {"ACCEPT token 0", G_OPEN_PADDED, {S8(28, 2)}, AVTP_E_TOKEN},
    {"OPEN max_seg 0", G_OPEN_PADDED, {S16(38, 0)}, AVTP_E_CTL_FIELD},
    {"OPEN max_seg 2029", G_OPEN_PADDED, {S16(38, 2029)}, AVTP_E_CTL_FIELD},
    {"OPEN max_seg 1", G_OPEN_PADDED, {S16(38, 1)}, AVTP_OK},
    {"OPEN window 0", G_OPEN_PADDED, {S16(40, 0)}, AVTP_E_CTL_FIELD},
    {"OPEN with a time", G_OPEN_PADDED, {S8(53, 1)}, AVTP_E_CTL_FIELD},
    {"CLOSE with a time", G_CLOSE_TAGGED, {S8(57, 1)}, AVTP_E_CTL_FIELD},
    {"CLOSE max_seg 2029", G_CLOSE_TAGGED, {S16(42, 2029)}, AVTP_E_CTL_FIELD},
    {"reason_len 201", G_CLOSE_TAGGED, {S32(58, 201)}, AVTP_E_REASON},
    {"reason_len 2^32-1", G_CLOSE_TAGGED, {S32(58, 0xffffffff)}, AVTP_E_REASON},
    {"reason on PING", G_CLOSE_TAGGED, {S8(32, AVTP_CTL_PING)}, AVTP_E_REASON},
    {"reason on OPEN", G_CLOSE_TAGGED, {S8(32, AVTP_CTL_OPEN), S32(34, 0)}, AVTP_E_REASON},
    {"reason with BEL", G_CLOSE_TAGGED, {S8(66, 0x07)}, AVTP_E_REASON},
    {"reason with DEL", G_CLOSE_TAGGED, {S8(62, 0x7f)}, AVTP_E_REASON},
    {"reason with 0xe9", G_CLOSE_TAGGED, {S8(70, 0xe9)}, AVTP_E_REASON},
    {"reason_len 12 takes in a NUL", G_CLOSE_TAGGED, {S32(58, 12)}, AVTP_E_REASON},
    {"reason_len 13, message holds 12", G_CLOSE_TAGGED, {S32(58, 13)}, AVTP_E_MSG_SIZE},
    {"reason_len 8, message holds 12", G_CLOSE_TAGGED, {S32(58, 8)}, AVTP_E_MSG_SIZE},
    {"reason padding", G_CLOSE_TAGGED, {S8(73, 0x20)}, AVTP_E_PADDING},
    {"reason of CLOSE 100 bytes, one changed", G_NTSCF_LONG, {S8(200, '~')}, AVTP_OK},
};

static void test_hostile(void **state)
{
	uint8_t bytes[MAXBUF], *copy;
	struct avtp_frame f;

	for (size_t i = 0; i < ARRAY_SIZE(hostiles); i++) {
		const struct hostile *t = &hostiles[i];
		size_t n = unhex(goldens[t->base].hex, bytes, sizeof(bytes));
		int rc;

		for (unsigned k = 0; k < ARRAY_SIZE(t->m) && t->m[k].op != M_END; k++) {
			if (t->m[k].op != M_CUT) {
				assert_true(t->m[k].off + 4 <= n || t->m[k].op != M_SET32);
				assert_true(t->m[k].off < n);
			}
			n = apply_mut(bytes, n, &t->m[k]);
		}
		rc = decode_exact(bytes, n, &f, &copy);
		assert_err(rc, t->want, t->what);
		if (rc == 0) {
			assert_reencodes(copy, n, &f);
		}
		free(copy);
	}
}

/* Every single-bit flip of every golden frame is refused, or decodes and re-encodes. */
static void test_bitflip_sweep(void **state)
{
	uint8_t bytes[MAXBUF], *copy;
	struct avtp_frame f;
	unsigned accepted = 0, refused = 0, by_err[AVTP_E_COUNT] = {0};

	for (unsigned i = 0; i < G_COUNT; i++) {
		size_t n = unhex(goldens[i].hex, bytes, sizeof(bytes));

		for (size_t bit = 0; bit < n * 8; bit++) {
			int rc;

			bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rc = decode_exact(bytes, n, &f, &copy);
			if (rc == 0) {
				accepted++;
				assert_reencodes(copy, n, &f);
			} else {
				assert_true(rc < 0 && -rc < AVTP_E_COUNT);
				assert_true(-rc != AVTP_E_NOSPACE && -rc != AVTP_E_INVAL &&
				            -rc != AVTP_E_MSG_TYPE);
				by_err[-rc]++;
				refused++;
			}
			free(copy);
			bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	/* Payload, sequence numbers, tokens and timestamps are free; the structure is not. */
	assert_true(accepted > 1000);
	assert_true(refused > 500);
	assert_true(by_err[AVTP_E_RESERVED] > 0 && by_err[AVTP_E_STREAM_MAC] > 0 &&
	            by_err[AVTP_E_ETHERTYPE] > 0 && by_err[AVTP_E_PADDING] > 0);
}

/* Round trips of random valid frames */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static uint32_t rnd_nonzero32(void)
{
	uint32_t v = (uint32_t)rnd();

	return v ? v : 1;
}

static void random_hdr(struct avtp_hdr *h, unsigned cls)
{
	static const uint8_t a[] = MAC_A, b[] = MAC_B;
	bool tscf = rnd_below(2);

	memset(h, 0, sizeof(*h));
	memcpy(h->dst, b, AVTP_MAC_LEN);
	memcpy(h->src, a, AVTP_MAC_LEN);
	h->src[5] = (uint8_t)rnd(); /* stays unicast: only byte 0 holds the group bit */
	h->vlan = rnd_below(2);
	if (h->vlan) {
		h->pcp = (uint8_t)rnd_below(8);
		h->vid = (uint16_t)rnd_below(AVTP_VID_MAX + 1);
	}
	h->subtype = tscf ? AVTP_SUBTYPE_TSCF : AVTP_SUBTYPE_NTSCF;
	h->sv = 1;
	h->seq = (uint8_t)rnd();
	h->stream_id = avtp_stream_id(h->src, cls, tscf ? (uint32_t)rnd() : 0);
	if (tscf) {
		h->tv = rnd_below(2);
		h->tu = rnd_below(2);
		h->avtp_timestamp = h->tv ? (uint32_t)rnd() : 0;
	}
}

static void random_ctl(struct avtp_ctl *c, char *reason)
{
	memset(c, 0, sizeof(*c));
	c->op = (uint8_t)(1 + rnd_below(5));
	c->token = c->op == AVTP_CTL_OPEN ? 0 : rnd_nonzero32();
	c->my_token = rnd_nonzero32();
	c->max_seg = (uint16_t)(1 + rnd_below(AVTP_SEG_DATA_MAX));
	c->window = (uint16_t)(1 + rnd_below(0xffff));
	c->isn = (uint32_t)rnd();
	if (c->op == AVTP_CTL_PING || c->op == AVTP_CTL_PONG) {
		c->time = rnd();
	}
	if (c->op == AVTP_CTL_CLOSE) {
		c->reason_len = rnd_below(AVTP_CTL_REASON_MAX + 1);
		for (unsigned i = 0; i < c->reason_len; i++) {
			reason[i] = (char)(0x20 + rnd_below(0x5f));
		}
		c->reason = reason;
	}
}

static void test_random_roundtrip(void **state)
{
	static uint8_t buf[MAXBUF], data[AVTP_SEG_DATA_MAX];
	static char reasons[AVTP_MAX_ACF + 1][AVTP_CTL_REASON_MAX];
	struct any_msg m[AVTP_MAX_ACF], scratch, got;
	struct avtp_frame f;
	struct avtp_builder b;
	struct avtp_hdr h;

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)rnd();
	}
	for (int iter = 0; iter < 3000; iter++) {
		unsigned cls = rnd_below(AVTP_NCLASS), n = 0;
		size_t mtu = 40 + rnd_below(9000), len, sum = 0;
		int rc = 0;

		random_hdr(&h, cls);
		assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), mtu, &h), 0);
		while (rc == 0) {
			struct any_msg *w = n < AVTP_MAX_ACF ? &m[n] : &scratch;

			memset(w, 0, sizeof(*w));
			if (h.subtype == AVTP_SUBTYPE_TSCF) {
				size_t room = avtp_build_seg_room(&b);

				w->type = AVTP_ACF_SEG;
				w->u.seg = (struct avtp_seg){.flags = (uint8_t)rnd_below(4),
				                             .cls = (uint8_t)cls,
				                             .token = rnd_nonzero32(),
				                             .seq = (uint32_t)rnd(),
				                             .data = data + rnd_below(64)};
				/* Sometimes one byte more than the room the helper reports. */
				w->u.seg.data_len =
				    (uint16_t)(room == 0 ? 1
				               : rnd_below(4) == 0 && room < AVTP_SEG_DATA_MAX
				                   ? room + 1
				                   : 1 + rnd_below((unsigned)VB_MIN(room, 1900)));
			} else if (rnd_below(2)) {
				w->type = AVTP_ACF_ACK;
				w->u.ack = (struct avtp_ack){.cls = (uint8_t)rnd_below(AVTP_NCLASS),
				                             .token = rnd_nonzero32(),
				                             .cum = (uint32_t)rnd(),
				                             .window = (uint32_t)rnd(),
				                             .sack = rnd()};
			} else {
				w->type = AVTP_ACF_CTL;
				random_ctl(&w->u.ctl, reasons[VB_MIN(n, AVTP_MAX_ACF)]);
			}
			rc = any_msg_build(&b, w);
			if (rc == 0) {
				assert_true(n < AVTP_MAX_ACF);
				sum = b.len - b.pdu - (h.subtype == AVTP_SUBTYPE_TSCF ? 24 : 12);
				n++;
			}
		}
		if (n == AVTP_MAX_ACF) {
			assert_err(rc, AVTP_E_TOO_MANY, "message 33");
		} else {
			assert_err(rc, AVTP_E_NOSPACE, "message past the MTU");
		}
		len = avtp_build_finish(&b);
		assert_true(len >= AVTP_ETH_MIN_LEN);
		assert_true(len == AVTP_ETH_MIN_LEN || len <= (h.vlan ? 18u : 14u) + mtu);
		assert_int_equal(avtp_decode(buf, len, &f), 0);
		assert_true(hdr_equal(&f.h, &h));
		assert_int_equal(f.data_len, sum);
		assert_int_equal(f.n_acf, n);
		for (unsigned k = 0; k < n; k++) {
			assert_int_equal(any_msg_decode(&f.acf[k], &got), 0);
			assert_true(any_msg_equal(&got, &m[k]));
		}
	}
}

/* Builder */

static void seg_hdr(struct avtp_hdr *h, size_t *pdu)
{
	*h = goldens[G_SEG].h;
	*pdu = 14 + 24;
}

static void test_builder_room(void **state)
{
	static uint8_t buf[MAXBUF], data[AVTP_SEG_DATA_MAX];
	struct avtp_seg s = goldens[G_SEG].m[0].u.seg;
	struct avtp_builder b;
	struct avtp_hdr h;
	size_t pdu, room;

	seg_hdr(&h, &pdu);
	/* MTU 1500: 1500 - 24 (TSCF) - 16 (SEG) = 1460 data bytes, a quadlet multiple. */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 1500, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), 1460);
	s.data = data;
	s.data_len = 1461;
	assert_err(avtp_build_seg(&b, &s), AVTP_E_NOSPACE, "1461 bytes in 1460");
	assert_int_equal(b.len, pdu);
	s.data_len = 1460;
	assert_int_equal(avtp_build_seg(&b, &s), 0);
	assert_int_equal(avtp_build_seg_room(&b), 0);
	s.data_len = 1;
	assert_err(avtp_build_seg(&b, &s), AVTP_E_NOSPACE, "full frame");
	assert_int_equal(avtp_build_finish(&b), 14 + 1500);

	/* MTU 1499: 1459 bytes left for data; 1456 fit (padding to a quadlet). */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 1499, &h), 0);
	room = avtp_build_seg_room(&b);
	assert_int_equal(room, 1456);
	s.data_len = 1457;
	assert_err(avtp_build_seg(&b, &s), AVTP_E_NOSPACE, "1457 bytes, padded to 1460");
	s.data_len = (uint16_t)room;
	assert_int_equal(avtp_build_seg(&b, &s), 0);

	/* Jumbo: capped by the largest SEG. */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 9000, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), AVTP_SEG_DATA_MAX);
	s.data_len = AVTP_SEG_DATA_MAX;
	assert_int_equal(avtp_build_seg(&b, &s), 0);
	s.data_len = AVTP_SEG_DATA_MAX + 1;
	assert_err(avtp_build_seg(&b, &s), AVTP_E_DATA_LEN, "2029 bytes");

	/* The buffer bounds the frame too: a 100-byte buffer leaves 100 - 38 - 16 = 46 -> 44. */
	assert_int_equal(avtp_build_begin(&b, buf, 100, 1500, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), 44);
	/* Tagged: the tag does not count against the MTU. */
	h.vlan = true;
	h.pcp = 3;
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 1500, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), 1460);
	/* No room for the smallest SEG (16 + 4) with an MTU of 24 + 19. */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 24 + 19, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), 0);
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 24 + 20, &h), 0);
	assert_int_equal(avtp_build_seg_room(&b), 4);
	/* An MTU shorter than the AVTP header, a buffer shorter than 60 bytes. */
	assert_err(avtp_build_begin(&b, buf, sizeof(buf), 23, &h), AVTP_E_NOSPACE, "mtu 23");
	assert_err(avtp_build_begin(&b, buf, 59, 1500, &h), AVTP_E_NOSPACE, "cap 59");
	/* An empty frame is a frame. */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 24, &h), 0);
	assert_int_equal(avtp_build_finish(&b), AVTP_ETH_MIN_LEN);
}

/* 32 of our messages fit a frame, the 33rd does not; foreign ones do not count. */
static void test_too_many(void **state)
{
	static uint8_t buf[MAXBUF];
	struct avtp_seg s = goldens[G_SEG].m[0].u.seg;
	struct avtp_builder b;
	struct avtp_frame f;
	struct avtp_hdr h;
	size_t pdu, len;

	seg_hdr(&h, &pdu);
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 9000, &h), 0);
	for (unsigned i = 0; i < AVTP_MAX_ACF; i++) {
		assert_int_equal(avtp_build_seg(&b, &s), 0);
	}
	assert_int_equal(avtp_build_seg_room(&b), 0);
	assert_err(avtp_build_seg(&b, &s), AVTP_E_TOO_MANY, "33rd SEG");
	len = avtp_build_finish(&b);
	assert_int_equal(len, pdu + 32 * 24);
	assert_int_equal(avtp_decode(buf, len, &f), 0);
	assert_int_equal(f.n_acf, 32);

	/* A 33rd SEG written by hand (a copy of the last one), the length fixed. */
	memcpy(buf + len, buf + len - 24, 24);
	buf[34] = (uint8_t)((33 * 24) >> 8);
	buf[35] = (uint8_t)(33 * 24);
	assert_err(avtp_decode(buf, len + 24, &f), AVTP_E_TOO_MANY, "33 SEGs");
	/* The same bytes as foreign type 0x7b: skipped, not counted against the limit. */
	buf[len] = 0xf6;
	assert_int_equal(avtp_decode(buf, len + 24, &f), 0);
	assert_int_equal(f.n_acf, 32);
	assert_int_equal(f.n_skipped, 1);
}

/* NTSCF: the 11-bit length bounds a frame to 2047 bytes of messages, whatever the MTU. */
static void test_ntscf_limit(void **state)
{
	static uint8_t buf[MAXBUF];
	struct avtp_ctl c = goldens[G_NTSCF_LONG].m[5].u.ctl;
	struct avtp_ack a = goldens[G_ACK_PING].m[0].u.ack;
	struct avtp_builder b;
	struct avtp_frame f;
	unsigned n = 0;
	size_t len;
	int rc;

	c.reason = digits100;
	c.reason_len = 100; /* 132 bytes */
	assert_int_equal(avtp_build_begin(&b, buf, sizeof(buf), 9000, &goldens[G_ACK_PING].h), 0);
	while ((rc = avtp_build_ctl(&b, &c)) == 0) {
		n++;
	}
	assert_err(rc, AVTP_E_NOSPACE, "CTL past 2047 bytes");
	assert_int_equal(n, 2047 / 132); /* 15: 1980 bytes */
	/* 67 bytes left: two ACKs fit, a third does not. */
	assert_int_equal(avtp_build_ack(&b, &a), 0);
	assert_int_equal(avtp_build_ack(&b, &a), 0);
	assert_err(avtp_build_ack(&b, &a), AVTP_E_NOSPACE, "ACK past 2047 bytes");
	len = avtp_build_finish(&b);
	assert_int_equal(len, 14 + 12 + 15 * 132 + 48);
	assert_int_equal(buf[15], 0x80 | (2028 >> 8));
	assert_int_equal(buf[16], 2028 & 0xff);
	assert_int_equal(avtp_decode(buf, len, &f), 0);
	assert_int_equal(f.data_len, 2028);
	assert_int_equal(f.n_acf, 17);
}

struct build_case {
	const char *what;
	enum golden_id base;
	void (*change)(struct avtp_hdr *h, struct any_msg *m);
	enum avtp_err want_begin;
	enum avtp_err want_msg;
};

static void ch_none(struct avtp_hdr *h, struct any_msg *m)
{
}
static void ch_pcp8(struct avtp_hdr *h, struct any_msg *m)
{
	h->pcp = 8;
}
static void ch_vid4095(struct avtp_hdr *h, struct any_msg *m)
{
	h->vid = 4095;
}
static void ch_vid4096(struct avtp_hdr *h, struct any_msg *m)
{
	h->vid = 4096;
}
static void ch_untagged_pcp(struct avtp_hdr *h, struct any_msg *m)
{
	h->vlan = false;
}
static void ch_subtype(struct avtp_hdr *h, struct any_msg *m)
{
	h->subtype = 0x02;
}
static void ch_src_group(struct avtp_hdr *h, struct any_msg *m)
{
	h->src[0] |= 1;
}
static void ch_stream_mac(struct avtp_hdr *h, struct any_msg *m)
{
	h->stream_id ^= 1ull << 16;
}
static void ch_stream_class(struct avtp_hdr *h, struct any_msg *m)
{
	h->stream_id |= 0xc000;
}
static void ch_stream_chan(struct avtp_hdr *h, struct any_msg *m)
{
	h->stream_id |= 1;
}
static void ch_ntscf_tv(struct avtp_hdr *h, struct any_msg *m)
{
	h->tv = true;
}
static void ch_ts_no_tv(struct avtp_hdr *h, struct any_msg *m)
{
	h->tv = false;
}
static void ch_seg_flags(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.seg.flags = 4;
}
static void ch_seg_class(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.seg.cls = 2;
}
static void ch_seg_class4(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.seg.cls = 4;
}
static void ch_seg_token(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.seg.token = 0;
}
static void ch_seg_empty(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.seg.data_len = 0;
}
static void ch_to_ack(struct avtp_hdr *h, struct any_msg *m)
{
	m->type = AVTP_ACF_ACK;
	m->u.ack = goldens[G_ACK_PING].m[0].u.ack;
}
static void ch_to_seg(struct avtp_hdr *h, struct any_msg *m)
{
	m->type = AVTP_ACF_SEG;
	m->u.seg = goldens[G_SEG].m[0].u.seg;
}
static void ch_ack_class(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ack.cls = 4;
}
static void ch_ack_token(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ack.token = 0;
}
static void ch_ctl_op0(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.op = 0;
}
static void ch_ctl_op6(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.op = 6;
}
static void ch_ctl_my_token(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.my_token = 0;
}
static void ch_ctl_open_token(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.token = 9;
}
static void ch_reason_201(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.reason_len = 201;
}
static void ch_reason_ctrl(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.reason = "peer\nsilent";
}
static void ch_reason_null(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.reason = NULL;
}
static void ch_reason_on_pong(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.op = AVTP_CTL_PONG;
}
static void ch_ctl_time(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.time = 1;
}
static void ch_open_window0(struct avtp_hdr *h, struct any_msg *m)
{
	m->u.ctl.window = 0;
}

/* The builder refuses what the decoder would, with the same reason. */
static const struct build_case build_cases[] = {
    {"golden", G_SEG, ch_none, AVTP_OK, AVTP_OK},
    {"PCP 8", G_SEG2_TAGGED, ch_pcp8, AVTP_E_INVAL, AVTP_OK},
    {"VID 4095", G_SEG2_TAGGED, ch_vid4095, AVTP_E_VLAN, AVTP_OK},
    {"VID 4096", G_SEG2_TAGGED, ch_vid4096, AVTP_E_INVAL, AVTP_OK},
    {"PCP/VID without a tag", G_SEG2_TAGGED, ch_untagged_pcp, AVTP_E_INVAL, AVTP_OK},
    {"subtype AAF", G_SEG, ch_subtype, AVTP_E_SUBTYPE, AVTP_OK},
    {"group source MAC", G_SEG, ch_src_group, AVTP_E_SRC_MAC, AVTP_OK},
    {"stream_id of another MAC", G_SEG, ch_stream_mac, AVTP_E_STREAM_MAC, AVTP_OK},
    {"stream_id class 13", G_SEG, ch_stream_class, AVTP_E_CLASS, AVTP_OK},
    {"NTSCF stream_id chan 1", G_ACK_PING, ch_stream_chan, AVTP_E_STREAM_CHAN, AVTP_OK},
    {"NTSCF with tv", G_ACK_PING, ch_ntscf_tv, AVTP_E_INVAL, AVTP_OK},
    {"timestamp without tv", G_SEG, ch_ts_no_tv, AVTP_E_RESERVED, AVTP_OK},
    {"SEG flags 4", G_SEG, ch_seg_flags, AVTP_OK, AVTP_E_FLAGS},
    {"SEG class 2 in an audio stream", G_SEG, ch_seg_class, AVTP_OK, AVTP_E_CLASS_MISMATCH},
    {"SEG class 4", G_SEG, ch_seg_class4, AVTP_OK, AVTP_E_CLASS},
    {"SEG token 0", G_SEG, ch_seg_token, AVTP_OK, AVTP_E_TOKEN},
    {"SEG without data", G_SEG, ch_seg_empty, AVTP_OK, AVTP_E_DATA_LEN},
    {"ACK in TSCF", G_SEG, ch_to_ack, AVTP_OK, AVTP_E_MSG_SUBTYPE},
    {"SEG in NTSCF", G_ACK_PING, ch_to_seg, AVTP_OK, AVTP_E_MSG_SUBTYPE},
    {"ACK class 4", G_ACK_PING, ch_ack_class, AVTP_OK, AVTP_E_CLASS},
    {"ACK token 0", G_ACK_PING, ch_ack_token, AVTP_OK, AVTP_E_TOKEN},
    {"CTL op 0", G_OPEN_PADDED, ch_ctl_op0, AVTP_OK, AVTP_E_CTL_OP},
    {"CTL op 6", G_OPEN_PADDED, ch_ctl_op6, AVTP_OK, AVTP_E_CTL_OP},
    {"CTL my_token 0", G_OPEN_PADDED, ch_ctl_my_token, AVTP_OK, AVTP_E_TOKEN},
    {"OPEN with a token", G_OPEN_PADDED, ch_ctl_open_token, AVTP_OK, AVTP_E_TOKEN},
    {"OPEN with a time", G_OPEN_PADDED, ch_ctl_time, AVTP_OK, AVTP_E_CTL_FIELD},
    {"OPEN window 0", G_OPEN_PADDED, ch_open_window0, AVTP_OK, AVTP_E_CTL_FIELD},
    {"reason 201 bytes", G_CLOSE_TAGGED, ch_reason_201, AVTP_OK, AVTP_E_REASON},
    {"reason with a newline", G_CLOSE_TAGGED, ch_reason_ctrl, AVTP_OK, AVTP_E_REASON},
    {"reason NULL", G_CLOSE_TAGGED, ch_reason_null, AVTP_OK, AVTP_E_INVAL},
    {"reason on PONG", G_CLOSE_TAGGED, ch_reason_on_pong, AVTP_OK, AVTP_E_REASON},
};

static void test_builder_refusals(void **state)
{
	static uint8_t buf[MAXBUF];

	for (size_t i = 0; i < ARRAY_SIZE(build_cases); i++) {
		const struct build_case *t = &build_cases[i];
		struct avtp_hdr h = goldens[t->base].h;
		struct any_msg m = goldens[t->base].m[0];
		struct avtp_builder b;
		struct avtp_frame f;
		size_t len;

		t->change(&h, &m);
		memset(&b, 0x5a, sizeof(b));
		assert_err(avtp_build_begin(&b, buf, sizeof(buf), 1500, &h), t->want_begin,
		           t->what);
		if (t->want_begin != AVTP_OK) {
			continue;
		}
		len = b.len;
		assert_err(any_msg_build(&b, &m), t->want_msg, t->what);
		if (t->want_msg != AVTP_OK) {
			/* Nothing kept: the frame still takes a valid message. */
			assert_int_equal(b.len, len);
			assert_int_equal(b.n_acf, 0);
			assert_int_equal(any_msg_build(&b, &goldens[t->base].m[0]), 0);
		}
		len = avtp_build_finish(&b);
		assert_int_equal(avtp_decode(buf, len, &f), 0);
		assert_int_equal(f.n_acf, 1);
	}
	assert_err(avtp_build_begin(NULL, buf, sizeof(buf), 1500, &goldens[G_SEG].h), AVTP_E_INVAL,
	           "NULL builder");
}

/* SEG data from an iovec equals the same data from one buffer. */
static void test_segv(void **state)
{
	static uint8_t one[MAXBUF], many[MAXBUF], data[1000];
	struct avtp_seg s = goldens[G_SEG].m[0].u.seg;
	struct iovec iov[4];
	struct avtp_builder b1, b2;
	struct avtp_hdr h;
	size_t pdu;

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 7 + 1);
	}
	seg_hdr(&h, &pdu);
	s.data = data;
	s.data_len = 999;
	iov[0] = (struct iovec){data, 1};
	iov[1] = (struct iovec){NULL, 0};
	iov[2] = (struct iovec){data + 1, 500};
	iov[3] = (struct iovec){data + 501, 498};
	assert_int_equal(avtp_build_begin(&b1, one, sizeof(one), 1500, &h), 0);
	assert_int_equal(avtp_build_begin(&b2, many, sizeof(many), 1500, &h), 0);
	assert_int_equal(avtp_build_seg(&b1, &s), 0);
	s.data = NULL; /* ignored by segv */
	s.data_len = 0;
	assert_int_equal(avtp_build_segv(&b2, &s, iov, 4), 0);
	assert_int_equal(avtp_build_finish(&b1), avtp_build_finish(&b2));
	assert_memory_equal(one, many, b1.len);
	/* Empty, oversized and NULL-based vectors are refused. */
	assert_err(avtp_build_segv(&b2, &s, iov, 0), AVTP_E_DATA_LEN, "empty iovec");
	assert_err(avtp_build_segv(&b2, &s, iov + 1, 1), AVTP_E_DATA_LEN, "zero-length iovec");
	iov[0] = (struct iovec){data, 1000};
	iov[1] = (struct iovec){data, 1000};
	iov[2] = (struct iovec){data, 29};
	assert_err(avtp_build_segv(&b2, &s, iov, 3), AVTP_E_DATA_LEN, "2029 bytes in 3 pieces");
	iov[3] = (struct iovec){data, SIZE_MAX};
	assert_err(avtp_build_segv(&b2, &s, iov + 3, 1), AVTP_E_DATA_LEN, "SIZE_MAX bytes");
	iov[0] = (struct iovec){NULL, 4};
	assert_err(avtp_build_segv(&b2, &s, iov, 1), AVTP_E_INVAL, "NULL base");
}

/* Message decoders used alone */

static void test_msg_decoders(void **state)
{
	uint8_t bytes[MAXBUF], big[64];
	const uint8_t *seg, *ack, *ctl;
	struct avtp_seg s;
	struct avtp_ack a;
	struct avtp_ctl c;

	unhex(goldens[G_ACK_PING].hex, bytes, sizeof(bytes));
	ack = bytes + 26;
	ctl = bytes + 50;
	assert_int_equal(avtp_ack_decode(ack, 24, &a), 0);
	assert_int_equal(avtp_ctl_decode(ctl, 32, &c), 0);
	assert_err(avtp_seg_decode(ack, 24, &s), AVTP_E_MSG_TYPE, "ACK as SEG");
	assert_err(avtp_ctl_decode(ack, 24, &c), AVTP_E_MSG_TYPE, "ACK as CTL");
	assert_err(avtp_ack_decode(ctl, 32, &a), AVTP_E_MSG_TYPE, "CTL as ACK");
	assert_err(avtp_ack_decode(ack, 23, &a), AVTP_E_ACF_OVERRUN, "ACK cut");
	assert_err(avtp_ack_decode(ack, 28, &a), AVTP_E_MSG_SIZE, "ACK with a spare quadlet");
	assert_err(avtp_ack_decode(ack, 1, &a), AVTP_E_ACF_OVERRUN, "1 byte");
	assert_err(avtp_ack_decode(NULL, 24, &a), AVTP_E_ACF_OVERRUN, "NULL");
	assert_err(avtp_ctl_decode(ctl, 0, &c), AVTP_E_ACF_OVERRUN, "0 bytes");
	memset(big, 0, sizeof(big));
	big[0] = 0xf4; /* CTL, length 0 */
	assert_err(avtp_ctl_decode(big, sizeof(big), &c), AVTP_E_ACF_ZERO, "CTL length 0");

	unhex(goldens[G_SEG].hex, bytes, sizeof(bytes));
	seg = bytes + 38;
	assert_int_equal(avtp_seg_decode(seg, 24, &s), 0);
	assert_ptr_equal(s.data, seg + 16);
	assert_memory_equal(s.data, "hello", 5);
}

/* Helpers */

static void test_stream_id(void **state)
{
	const uint8_t a[] = MAC_A;
	uint8_t mac[AVTP_MAC_LEN];

	/* Section 11.3: MAC << 16 | class << 12 | chan & 0xFFF. */
	assert_true(avtp_stream_id(a, AVTP_CLASS_AUDIO, 3) == 0x02000000000a1003ull);
	assert_true(avtp_stream_id(a, AVTP_CLASS_BULK, 0x1abc) == 0x02000000000a3abcull);
	assert_true(avtp_stream_id(a, AVTP_CLASS_CONTROL, 0) == 0x02000000000a0000ull);
	assert_int_equal(avtp_stream_class(0x02000000000b3abcull), 3);
	assert_int_equal(avtp_stream_chan(0x02000000000b3abcull), 0xabc);
	assert_int_equal(avtp_stream_class(0xffffffffffffffffull), 15);
	avtp_stream_mac(0x0123456789abcdefull, mac);
	assert_memory_equal(mac, ((uint8_t[]){0x01, 0x23, 0x45, 0x67, 0x89, 0xab}), 6);
}

static void test_mac(void **state)
{
	static const char *const bad[] = {
	    "",
	    "02:00:00:00:00",
	    "02:00:00:00:00:0",
	    "02:00:00:00:00:0a:",
	    "02:00:00:00:00:0a0",
	    "02-00-00-00-00-0a",
	    "2:00:00:00:00:0a",
	    "02:00:00:00:00:0g",
	    "02:00:00:00:00: a",
	    " 02:00:00:00:00:0a",
	    "0200.0000.000a",
	};
	uint8_t mac[AVTP_MAC_LEN], keep[AVTP_MAC_LEN] = {9, 9, 9, 9, 9, 9};
	char s[AVTP_MAC_STRLEN];

	assert_int_equal(avtp_mac_parse("02:00:00:00:00:0a", mac), 0);
	assert_memory_equal(mac, ((uint8_t[])MAC_A), 6);
	assert_int_equal(avtp_mac_parse("FF:fe:A0:0b:C1:d2", mac), 0);
	assert_memory_equal(mac, ((uint8_t[]){0xff, 0xfe, 0xa0, 0x0b, 0xc1, 0xd2}), 6);
	assert_string_equal(avtp_mac_format(mac, s), "ff:fe:a0:0b:c1:d2");
	assert_string_equal(avtp_mac_format((uint8_t[])MAC_A, s), "02:00:00:00:00:0a");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memcpy(mac, keep, sizeof(mac));
		if (avtp_mac_parse(bad[i], mac) != -EINVAL) {
			fail_msg("\"%s\" accepted", bad[i]);
		}
		assert_memory_equal(mac, keep, sizeof(mac)); /* untouched on failure */
	}
	assert_int_equal(avtp_mac_parse(NULL, mac), -EINVAL);
}

static void test_names(void **state)
{
	for (unsigned i = 1; i < AVTP_E_COUNT; i++) {
		assert_string_not_equal(avtp_err_name(i), "unknown");
		for (unsigned k = 1; k < i; k++) {
			assert_string_not_equal(avtp_err_name(i), avtp_err_name(k));
		}
	}
	assert_string_equal(avtp_err_name(AVTP_E_COUNT), "unknown");
	assert_string_equal(avtp_err_name(AVTP_E_RUNT), "runt");
	assert_string_equal(avtp_class_name(AVTP_CLASS_VIDEO), "video");
	assert_string_equal(avtp_class_name(4), "unknown");
	assert_string_equal(avtp_ctl_op_name(AVTP_CTL_ACCEPT), "ACCEPT");
	assert_string_equal(avtp_ctl_op_name(0), "unknown");
	assert_string_equal(avtp_ctl_op_name(6), "unknown");
	assert_string_equal(avtp_acf_name(AVTP_ACF_SEG), "SEG");
	assert_string_equal(avtp_acf_name(0x7b), "unknown");
}

/* Golden frames for Wireshark */

/* Classic libpcap format (little-endian magic), linktype 1 (Ethernet). */
static void pcap_put(FILE *fp, const uint8_t *b, size_t n)
{
	assert_int_equal(fwrite(b, 1, n, fp), n);
}

static void test_pcap(void **state)
{
	const char *path = getenv("VB_AVTP_PCAP");
	uint8_t hdr[24], rec[16], frame[MAXBUF];
	char expect[4096];
	FILE *fp, *ex;

	if (!path || !*path) {
		skip();
	}
	fp = fopen(path, "wb");
	assert_non_null(fp);
	snprintf(expect, sizeof(expect), "%s.expect", path);
	ex = fopen(expect, "w");
	assert_non_null(ex);
	put_le32(hdr, 0xa1b2c3d4);
	put_le16(hdr + 4, 2);
	put_le16(hdr + 6, 4);
	put_le32(hdr + 8, 0);      /* thiszone */
	put_le32(hdr + 12, 0);     /* sigfigs */
	put_le32(hdr + 16, 65535); /* snaplen */
	put_le32(hdr + 20, 1);     /* LINKTYPE_ETHERNET */
	pcap_put(fp, hdr, sizeof(hdr));
	for (unsigned i = 0; i < G_COUNT; i++) {
		size_t n = unhex(goldens[i].hex, frame, sizeof(frame));

		put_le32(rec, 1700000000u + i); /* ts_sec */
		put_le32(rec + 4, 0);           /* ts_usec */
		put_le32(rec + 8, (uint32_t)n); /* incl_len */
		put_le32(rec + 12, (uint32_t)n);
		pcap_put(fp, rec, sizeof(rec));
		pcap_put(fp, frame, n);
		fprintf(ex, "%u 0x%02x 0x%016llx %s\n", i + 1, goldens[i].h.subtype,
		        (unsigned long long)goldens[i].h.stream_id, goldens[i].acf_types);
	}
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(fclose(ex), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden_decode),
	    cmocka_unit_test(test_golden_encode),
	    cmocka_unit_test(test_encode_ignores_sv_version),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_bitflip_sweep),
	    cmocka_unit_test(test_random_roundtrip),
	    cmocka_unit_test(test_builder_room),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_ntscf_limit),
	    cmocka_unit_test(test_builder_refusals),
	    cmocka_unit_test(test_segv),
	    cmocka_unit_test(test_msg_decoders),
	    cmocka_unit_test(test_stream_id),
	    cmocka_unit_test(test_mac),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_pcap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
