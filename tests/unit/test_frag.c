/*
 * tsn:// segmentation and reassembly (transport/tsn/frag.c): messages cut
 * by frag_tx_next() and joined by frag_rx_push() come back whole and once;
 * segments out of place and length fields that lie end the link.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "transport/tsn/frag.h"

#define MAX_MSG (256u * 1024)

/* A wire-shaped message: length, version 1, type, flags 0, channel, then a pattern. */
static uint8_t *make_msg(uint32_t len, uint32_t chan, uint8_t seed)
{
	uint8_t *m = malloc(len);

	assert_non_null(m);
	for (uint32_t i = 0; i < len; i++) {
		m[i] = (uint8_t)(i * 7 + seed);
	}
	put_le32(m, len);
	m[4] = 1;
	m[5] = 10;
	m[6] = m[7] = 0;
	put_le32(m + 8, chan);
	return m;
}

/* Cuts msgs into segments of seg_max, joins them again: every message once, intact. */
static void roundtrip(const uint32_t *lens, size_t nmsgs, size_t seg_max)
{
	struct frag_tx tx = {0};
	struct frag_rx rx;
	size_t total = 0, off = 0, got = 0, segs = 0;
	uint8_t *stream, *p;

	for (size_t i = 0; i < nmsgs; i++) {
		total += lens[i];
	}
	stream = p = malloc(total);
	assert_non_null(stream);
	for (size_t i = 0; i < nmsgs; i++) {
		uint8_t *m = make_msg(lens[i], (uint32_t)i + 1, (uint8_t)i);

		memcpy(p, m, lens[i]);
		p += lens[i];
		free(m);
	}
	frag_rx_init(&rx, MAX_MSG);
	while (off < total) {
		const uint8_t *msg;
		const char *why = NULL;
		uint8_t flags;
		uint32_t chan;
		size_t n, len;
		int rc;

		frag_tx_next(&tx, stream + off, seg_max, &n, &flags, &chan);
		assert_true(n >= 1 && n <= seg_max);
		assert_int_equal(chan, got + 1);
		rc = frag_rx_push(&rx, flags, stream + off, n, &msg, &len, &why);
		assert_true(rc >= 0);
		off += n;
		segs++;
		if (rc == 1) {
			assert_true(flags & FRAG_LAST);
			assert_int_equal(len, lens[got]);
			assert_int_equal(get_le32(msg + 8), got + 1);
			assert_memory_equal(msg, stream + off - len, len);
			got++;
		} else {
			assert_false(flags & FRAG_LAST);
		}
	}
	assert_int_equal(got, nmsgs);
	assert_int_equal(tx.left, 0);
	assert_false(rx.in_msg);
	assert_true(segs >= nmsgs);
	frag_rx_fini(&rx);
	free(stream);
}

static void test_roundtrip(void **state)
{
	static const uint32_t lens[] = {12, 13, 1459, 1460, 1461, 2920, 4095, 65536, 12, MAX_MSG};
	static const size_t seg[] = {1, 4, 12, 1460, 2028};

	for (size_t i = 0; i < ARRAY_SIZE(seg); i++) {
		if (seg[i] < 12) {
			roundtrip(lens, 5, seg[i]); /* small segments: the short messages only */
		} else {
			roundtrip(lens, ARRAY_SIZE(lens), seg[i]);
		}
	}
}

/* Segment counts and flags: a message of n bytes in ceil(n / seg) segments, FIRST..LAST. */
static void test_cut_flags(void **state)
{
	uint8_t *m = make_msg(3000, 7, 0);
	struct frag_tx tx = {0};
	uint8_t flags[4];
	size_t n[4];
	uint32_t chan;

	for (int i = 0; i < 3; i++) {
		frag_tx_next(&tx, m, 1460, &n[i], &flags[i], &chan);
		assert_int_equal(chan, 7);
	}
	assert_int_equal(n[0], 1460);
	assert_int_equal(n[1], 1460);
	assert_int_equal(n[2], 80);
	assert_int_equal(flags[0], FRAG_FIRST);
	assert_int_equal(flags[1], 0);
	assert_int_equal(flags[2], FRAG_LAST);
	put_le32(m, 12);
	frag_tx_next(&tx, m, 1460, &n[3], &flags[3], &chan);
	assert_int_equal(n[3], 12);
	assert_int_equal(flags[3], FRAG_FIRST | FRAG_LAST);
	free(m);
}

/* Segments that break the rules: each ends the link with a reason. */
static void test_hostile(void **state)
{
	static const struct {
		const char *name;
		uint32_t len_field; /* what the first 4 bytes say */
		struct {
			uint8_t flags;
			size_t n;
		} seg[4];
		int rc; /* of the last push */
		const char *why;
	} cases[] = {
	    {"continues no message", 20, {{0, 20}}, -EPROTO, "continues no message"},
	    {"last without first", 20, {{FRAG_LAST, 20}}, -EPROTO, "continues no message"},
	    {"first inside a message",
	     40,
	     {{FRAG_FIRST, 20}, {FRAG_FIRST, 20}},
	     -EPROTO,
	     "starts inside another"},
	    {"ends short of its length",
	     40,
	     {{FRAG_FIRST, 20}, {FRAG_LAST, 10}},
	     -EPROTO,
	     "ends before"},
	    {"longer than its length",
	     20,
	     {{FRAG_FIRST, 16}, {FRAG_LAST, 16}},
	     -EPROTO,
	     "longer than its length"},
	    {"length below the header", 8, {{FRAG_FIRST | FRAG_LAST, 8}}, -EPROTO, "out of range"},
	    {"length over max-msg", MAX_MSG + 1, {{FRAG_FIRST, 100}}, -EPROTO, "out of range"},
	    {"length 2^32-1", 0xFFFFFFFFu, {{FRAG_FIRST, 1000}}, -EPROTO, "out of range"},
	    {"three bytes then last", 12, {{FRAG_FIRST | FRAG_LAST, 3}}, -EPROTO, "ends before"},
	};
	uint8_t buf[1024]; /* the longest segment of the table */

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct frag_rx rx;
		const uint8_t *msg = NULL;
		const char *why = NULL;
		size_t len = 0;
		int rc = 0;

		print_message("hostile: %s\n", cases[i].name);
		memset(buf, 0xab, sizeof(buf));
		put_le32(buf, cases[i].len_field);
		frag_rx_init(&rx, MAX_MSG);
		for (size_t k = 0; k < 4 && cases[i].seg[k].n; k++) {
			rc = frag_rx_push(&rx, cases[i].seg[k].flags, buf, cases[i].seg[k].n, &msg,
			                  &len, &why);
			if (rc < 0) {
				break;
			}
		}
		assert_int_equal(rc, cases[i].rc);
		assert_non_null(why);
		if (!strstr(why, cases[i].why)) {
			fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].name, why, cases[i].why);
		}
		frag_rx_fini(&rx);
	}
}

/* The buffer grows with what the length field allows, never past max_msg. */
static void test_bounded(void **state)
{
	struct frag_rx rx;
	uint8_t *m = make_msg(MAX_MSG, 1, 3);
	const uint8_t *msg;
	const char *why;
	size_t len, off = 0;
	int rc = 0;

	frag_rx_init(&rx, MAX_MSG);
	while (off < MAX_MSG) {
		size_t n = VB_MIN((size_t)2028, MAX_MSG - off);

		rc = frag_rx_push(
		    &rx, (off == 0 ? FRAG_FIRST : 0) | (off + n == MAX_MSG ? FRAG_LAST : 0),
		    m + off, n, &msg, &len, &why);
		assert_true(rc >= 0);
		assert_true(rx.cap <= MAX_MSG);
		off += n;
	}
	assert_int_equal(rc, 1);
	assert_int_equal(len, MAX_MSG);
	/* One byte more than max-msg in a message that claims max-msg: refused before copying. */
	put_le32(m, MAX_MSG);
	off = 0;
	while (off <= MAX_MSG) {
		rc = frag_rx_push(&rx, off == 0 ? FRAG_FIRST : 0, m, 2028, &msg, &len, &why);
		if (rc < 0) {
			break;
		}
		off += 2028;
	}
	assert_true(rc == -EPROTO || rc == -EMSGSIZE);
	assert_true(rx.cap <= MAX_MSG);
	frag_rx_fini(&rx);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_cut_flags),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
