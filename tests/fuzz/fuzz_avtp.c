/*
 * libFuzzer target for the tsn:// frame codec (transport/tsn/avtp.c).
 *
 * The input is one received Ethernet frame. A refusal must name a decoder
 * reason. Whatever avtp_decode() accepts: the listed messages lie in order
 * inside the ACF data and each decodes; the builder, given the decoded
 * fields and exactly the room those messages take (MTU and buffer), builds a
 * frame that decodes to the same fields (foreign ACF messages are not
 * carried over); one byte less of MTU refuses the last message and nothing
 * else (docs/protocol.md section 11: one set of rules for both directions).
 * A broken promise aborts so that libFuzzer keeps the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/avtp_msg.h"
#include "tests/fuzz/fuzz_input.h"
#include "transport/tsn/avtp.h"

/* Decoder-side promises of an accepted frame; returns the bytes of our messages. */
static size_t check_listed(const uint8_t *data, size_t size, const struct avtp_frame *f,
                           struct any_msg *m)
{
	const uint8_t *next = f->data;
	size_t used = 0;

	FUZZ_CHECK(f->n_acf <= AVTP_MAX_ACF);
	FUZZ_CHECK(f->data >= data && f->data_len <= size - (size_t)(f->data - data));
	FUZZ_CHECK(f->h.sv == 1 && f->h.version == 0);
	for (unsigned i = 0; i < f->n_acf; i++) {
		const struct avtp_acf *a = &f->acf[i];

		FUZZ_CHECK(a->msg >= next && a->len >= 4 && a->len % 4 == 0);
		FUZZ_CHECK(a->msg + a->len <= f->data + f->data_len);
		FUZZ_CHECK(any_msg_decode(a, &m[i]) == 0);
		next = a->msg + a->len;
		used += a->len;
	}
	return used;
}

/* Builds f again into out (cap bytes) with mtu; returns the frame length, or 0 if refused. */
static size_t rebuild(const struct avtp_frame *f, const struct any_msg *m, uint8_t *out, size_t cap,
                      size_t mtu, int *last_rc)
{
	struct avtp_builder b;

	*last_rc = 0;
	FUZZ_CHECK(avtp_build_begin(&b, out, cap, mtu, &f->h) == 0);
	for (unsigned i = 0; i < f->n_acf; i++) {
		int rc = any_msg_build(&b, &m[i]);

		if (rc < 0) {
			/* Only the last message may be refused, and only for want of room. */
			FUZZ_CHECK(i + 1 == f->n_acf && rc == -AVTP_E_NOSPACE);
			*last_rc = rc;
			return 0;
		}
	}
	return avtp_build_finish(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct any_msg m[AVTP_MAX_ACF];
	struct avtp_frame f, g;
	struct any_msg m2;
	size_t used, hl, need, cap, n;
	uint8_t *out;
	int rc = avtp_decode(data, size, &f);

	if (rc < 0) {
		FUZZ_CHECK(-rc > AVTP_OK && -rc < AVTP_E_COUNT);
		FUZZ_CHECK(-rc != AVTP_E_NOSPACE && -rc != AVTP_E_INVAL && -rc != AVTP_E_MSG_TYPE);
		return 0;
	}
	used = check_listed(data, size, &f, m);
	hl = f.h.subtype == AVTP_SUBTYPE_TSCF ? AVTP_TSCF_HDR_LEN : AVTP_NTSCF_HDR_LEN;
	need = (f.h.vlan ? AVTP_ETH_HDR_LEN + AVTP_VLAN_TAG_LEN : AVTP_ETH_HDR_LEN) + hl + used;
	cap = need > AVTP_ETH_MIN_LEN ? need : AVTP_ETH_MIN_LEN;
	/* Exactly the size needed: ASan sees a builder that writes past it. */
	out = malloc(cap);
	if (!out) {
		return 0;
	}
	n = rebuild(&f, m, out, cap, hl + used, &rc);
	FUZZ_CHECK(rc == 0 && n == cap);
	FUZZ_CHECK(avtp_decode(out, n, &g) == 0);
	FUZZ_CHECK(hdr_equal(&f.h, &g.h));
	FUZZ_CHECK(g.n_acf == f.n_acf && g.n_skipped == 0 && g.data_len == used);
	for (unsigned i = 0; i < g.n_acf; i++) {
		FUZZ_CHECK(any_msg_decode(&g.acf[i], &m2) == 0);
		FUZZ_CHECK(any_msg_equal(&m[i], &m2));
	}
	/* One byte of MTU less: the last message no longer fits. */
	if (f.n_acf > 0) {
		FUZZ_CHECK(rebuild(&f, m, out, cap, hl + used - 1, &rc) == 0);
		FUZZ_CHECK(rc == -AVTP_E_NOSPACE);
	}
	free(out);
	return 0;
}
