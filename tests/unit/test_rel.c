/*
 * Reliable delivery engines (docs/protocol.md 11.5): scripted cases for each
 * rule, then a sender and a receiver joined by a simulated lossy, reordering,
 * duplicating channel in virtual time (REL_SIM_SEED=0x... replays a seed).
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

#include "transport/tsn/rel.h"

#define US 1000ull
#define MS 1000000ull

static void tx_make(struct rel_tx *tx, uint32_t isn, uint32_t cap, uint32_t window)
{
	struct rel_tx_cfg cfg = {.isn = isn, .cap = cap, .window = window};

	assert_int_equal(rel_tx_init(tx, &cfg), 0);
}

static int tx_ack(struct rel_tx *tx, uint64_t now, uint32_t cum, uint32_t window, uint64_t sack,
                  uint32_t *freed_first)
{
	struct rel_ack a = {.cum = cum, .window = window, .sack = sack};
	uint32_t dummy;

	return rel_tx_on_ack(tx, now, &a, freed_first ? freed_first : &dummy);
}

static uint32_t tx_push(struct rel_tx *tx, uint64_t now)
{
	uint32_t seq;

	assert_int_equal(rel_tx_push(tx, now, &seq), 0);
	return seq;
}

static void test_init_invalid(void **state)
{
	static const struct {
		uint32_t cap;
		uint64_t min, initial, max;
		int want;
	} rows[] = {
	    {0, 0, 0, 0, -EINVAL},
	    {3, 0, 0, 0, -EINVAL},
	    {REL_CAP_MAX * 2, 0, 0, 0, -EINVAL},
	    {1, 0, 0, 0, 0},
	    {REL_CAP_MAX, 0, 0, 0, 0},
	    {8, 5 * MS, 0, 0, 0},
	    {8, 30 * MS, 0, 0, -EINVAL},       /* floor above the initial RTO */
	    {8, 0, 2 * 1000 * MS, 0, -EINVAL}, /* initial above the maximum */
	};
	struct rel_tx tx;
	struct rel_rx rx;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rel_tx_cfg cfg = {.cap = rows[i].cap,
		                         .window = 8,
		                         .rto_min = rows[i].min,
		                         .rto_initial = rows[i].initial,
		                         .rto_max = rows[i].max};

		assert_int_equal(rel_tx_init(&tx, &cfg), rows[i].want);
		rel_tx_fini(&tx);
		if (rows[i].min == 0 && rows[i].initial == 0) {
			assert_int_equal(rel_rx_init(&rx, 0, rows[i].cap), rows[i].want);
			rel_rx_fini(&rx);
		}
	}
	tx_make(&tx, 0, 8, 8);
	assert_int_equal(tx.rto, REL_RTO_INITIAL_DEFAULT);
	assert_int_equal(tx.rto_min, REL_RTO_MIN_DEFAULT);
	assert_int_equal(tx.rto_max, REL_RTO_MAX_DEFAULT);
	rel_tx_fini(&tx);
	rel_tx_fini(&tx); /* twice is harmless */
}

static void test_names(void **state)
{
	assert_string_equal(rel_verdict_name(REL_NEW), "NEW");
	assert_string_equal(rel_verdict_name(REL_DUP), "DUP");
	assert_string_equal(rel_verdict_name(REL_OUT_OF_WINDOW), "OUT_OF_WINDOW");
	assert_string_equal(rel_verdict_name((enum rel_verdict)7), "UNKNOWN");
	assert_string_equal(rel_ack_need_name(REL_ACK_NONE), "NONE");
	assert_string_equal(rel_ack_need_name(REL_ACK_BATCH), "BATCH");
	assert_string_equal(rel_ack_need_name(REL_ACK_NOW), "NOW");
	assert_string_equal(rel_ack_need_name((enum rel_ack_need) - 1), "UNKNOWN");
}

/* Four rounds of four segments, every ACK on time; RFC 6298 arithmetic. */
static void test_in_order(void **state)
{
	struct rel_tx tx;
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq, first, expect = 1000;
	uint64_t now = 0;

	tx_make(&tx, 1000, 8, 8);
	assert_int_equal(rel_rx_init(&rx, 1000, 8), 0);
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NONE);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 4; i++) {
			assert_true(rel_tx_can_send(&tx));
			seq = tx_push(&tx, now);
			assert_int_equal(seq, 1000 + round * 4 + i);
			assert_int_equal(rel_rx_on_seg(&rx, seq), REL_NEW);
		}
		assert_int_equal(rel_tx_timer(&tx), now + tx.rto);
		assert_int_equal(rel_rx_ready(&rx, &first), 4);
		assert_int_equal(first, expect);
		while (rel_rx_pop(&rx, &seq)) {
			assert_int_equal(seq, expect++);
		}
		assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_BATCH);
		rel_rx_ack(&rx, &a);
		assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NONE);
		assert_int_equal(a.cum, expect);
		assert_int_equal(a.window, 8);
		assert_int_equal(a.sack, 0);
		now += (round == 1 ? 200 : 100) * US;
		assert_int_equal(rel_tx_on_ack(&tx, now, &a, &first), 4);
		assert_int_equal(first, expect - 4);
		assert_int_equal(rel_tx_next_due(&tx, now, &seq), 0);
		if (round == 0) { /* first sample R = 100 us */
			assert_int_equal(tx.srtt, 100 * US);
			assert_int_equal(tx.rttvar, 50 * US);
			assert_int_equal(tx.rto, 100 * US + REL_RTO_MIN_DEFAULT);
		} else if (round == 1) { /* R = 200 us */
			assert_int_equal(tx.rttvar, (3 * 50 * US + 100 * US) / 4);
			assert_int_equal(tx.srtt, (7 * 100 * US + 200 * US) / 8);
			assert_int_equal(tx.rto, tx.srtt + REL_RTO_MIN_DEFAULT);
		}
	}
	assert_int_equal(rel_tx_timer(&tx), UINT64_MAX);
	assert_int_equal(rel_tx_outstanding(&tx), 0);
	assert_int_equal(tx.stats.sent, 16);
	assert_int_equal(tx.stats.acked, 16);
	assert_int_equal(tx.stats.acks, 4);
	assert_int_equal(tx.stats.rtt_samples, 4);
	assert_int_equal(tx.stats.retx_fast + tx.stats.retx_timeout + tx.stats.timeouts, 0);
	assert_int_equal(rx.stats.received, 16);
	assert_int_equal(rx.stats.delivered, 16);
	assert_int_equal(rx.stats.duplicates + rx.stats.out_of_window, 0);
	rel_tx_fini(&tx);
	rel_rx_fini(&rx);
}

/*
 * 502 is lost among 500..507: two segments above it are not enough, the
 * third makes the receiver ack at once and the sender resend 502 long before
 * its timer; a lost copy is resent again only after a round trip.
 */
static void test_fast_retransmit(void **state)
{
	struct rel_tx tx;
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq, first;

	tx_make(&tx, 500, 16, 16);
	assert_int_equal(rel_rx_init(&rx, 500, 16), 0);
	for (int i = 0; i < 8; i++) {
		tx_push(&tx, i * US);
	}
	for (uint32_t s = 500; s < 505; s++) {
		if (s != 502) {
			assert_int_equal(rel_rx_on_seg(&rx, s), REL_NEW);
		}
	}
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_BATCH);
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.cum, 502);
	assert_int_equal(a.sack, 0x3); /* 503, 504 */
	assert_int_equal(rel_tx_on_ack(&tx, 100 * US, &a, &first), 2);
	assert_int_equal(first, 500);
	assert_int_equal(rel_tx_next_due(&tx, 100 * US, &seq), 0);
	assert_int_equal(rel_tx_timer(&tx), 2 * US + tx.rto); /* 502 is the oldest in flight */

	assert_int_equal(rel_rx_on_seg(&rx, 505), REL_NEW);
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NOW); /* third above the hole */
	assert_int_equal(rel_rx_on_seg(&rx, 506), REL_NEW);
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NOW);
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.sack, 0xF);
	assert_int_equal(rel_tx_on_ack(&tx, 110 * US, &a, &first), 0);
	assert_int_equal(rel_tx_timer(&tx), 0);
	assert_int_equal(rel_tx_next_due(&tx, 110 * US, &seq), 1);
	assert_int_equal(seq, 502);
	assert_int_equal(rel_tx_next_due(&tx, 110 * US, &seq), 0);
	assert_int_equal(tx.stats.retx_fast, 1);

	/* The copy is lost too. ACKs within a round trip of it mark nothing... */
	assert_int_equal(rel_rx_on_seg(&rx, 507), REL_NEW);
	rel_rx_ack(&rx, &a);
	assert_int_equal(tx_ack(&tx, 120 * US, a.cum, a.window, a.sack, NULL), 0);
	assert_int_equal(tx.stats.rtt_samples, 3); /* 500, then 505 and 507 newly sacked */
	uint64_t rtt = tx.srtt + 4 * tx.rttvar;
	assert_true(rtt > 200 * US && rtt < 1 * MS);
	assert_int_equal(tx_ack(&tx, 110 * US + rtt - 1, a.cum, a.window, a.sack, NULL), 0);
	assert_int_equal(rel_tx_next_due(&tx, 110 * US + rtt - 1, &seq), 0);
	/* ...one after it does... */
	assert_int_equal(tx_ack(&tx, 110 * US + rtt, a.cum, a.window, a.sack, NULL), 0);
	assert_int_equal(rel_tx_next_due(&tx, 110 * US + rtt, &seq), 1);
	assert_int_equal(seq, 502);
	assert_int_equal(tx.stats.retx_fast, 2);
	/* ...and so does the timer when no ACK comes: far before the RTO. */
	uint64_t t2 = 110 * US + rtt;
	assert_int_equal(rel_tx_timer(&tx), t2 + rtt);
	assert_true(t2 + rtt < 2 * US + tx.rto);
	assert_int_equal(rel_tx_next_due(&tx, t2 + rtt - 1, &seq), 0);
	assert_int_equal(rel_tx_next_due(&tx, t2 + rtt, &seq), 1);
	assert_int_equal(seq, 502);
	assert_int_equal(rel_tx_next_due(&tx, t2 + rtt, &seq), 0);
	assert_int_equal(tx.stats.retx_fast, 3);
	assert_int_equal(tx.stats.rtt_samples, 3);

	assert_int_equal(rel_rx_on_seg(&rx, 502), REL_NEW);
	assert_int_equal(rel_rx_ready(&rx, NULL), 8); /* none popped yet */
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.cum, 508);
	assert_int_equal(rel_tx_on_ack(&tx, 1 * MS, &a, &first), 6);
	assert_int_equal(first, 502);
	assert_int_equal(rel_tx_outstanding(&tx), 0);
	assert_int_equal(tx.stats.retx_timeout + tx.stats.timeouts, 0);
	assert_int_equal(tx.stats.rtt_samples, 3); /* none from 502, sent four times */
	rel_tx_fini(&tx);
	rel_rx_fini(&rx);
}

/* A lost segment and its lost copies: RTO 20, 40, 80 ms, no sample (Karn). */
static void test_timeout_karn(void **state)
{
	struct rel_tx tx;
	uint32_t seq, first;

	tx_make(&tx, 7, 8, 8);
	assert_int_equal(tx_push(&tx, 0), 7);
	assert_int_equal(rel_tx_timer(&tx), 20 * MS);
	assert_int_equal(rel_tx_next_due(&tx, 20 * MS - 1, &seq), 0);
	assert_int_equal(rel_tx_next_due(&tx, 20 * MS, &seq), 1);
	assert_int_equal(seq, 7);
	assert_int_equal(tx.rto, 40 * MS);
	assert_int_equal(rel_tx_timer(&tx), 60 * MS);
	assert_int_equal(rel_tx_next_due(&tx, 60 * MS, &seq), 1);
	assert_int_equal(tx.rto, 80 * MS);
	assert_int_equal(rel_tx_timer(&tx), 140 * MS);
	assert_int_equal(tx.stats.retx_timeout, 2);
	assert_int_equal(tx.stats.timeouts, 2);

	/* Acked 1 ms after the last copy: ambiguous, so no sample, RTO kept. */
	assert_int_equal(tx_ack(&tx, 61 * MS, 8, 8, 0, &first), 1);
	assert_int_equal(first, 7);
	assert_false(tx.rtt_valid);
	assert_int_equal(tx.stats.rtt_samples, 0);
	assert_int_equal(tx.rto, 80 * MS);
	assert_int_equal(rel_tx_timer(&tx), UINT64_MAX);

	/* A segment sent once gives a sample, which ends the back-off. */
	assert_int_equal(tx_push(&tx, 100 * MS), 8);
	assert_int_equal(tx_ack(&tx, 100 * MS + 500 * US, 9, 8, 0, NULL), 1);
	assert_true(tx.rtt_valid);
	assert_int_equal(tx.srtt, 500 * US);
	assert_int_equal(tx.rto, 500 * US + REL_RTO_MIN_DEFAULT);

	/* Back-off stops at the maximum. */
	uint64_t now = 200 * MS;
	tx_push(&tx, now);
	for (int i = 0; i < 12; i++) {
		now = rel_tx_timer(&tx);
		assert_int_equal(rel_tx_next_due(&tx, now, &seq), 1);
		assert_true(tx.rto <= REL_RTO_MAX_DEFAULT);
	}
	assert_int_equal(tx.rto, REL_RTO_MAX_DEFAULT);
	assert_int_equal(rel_tx_timer(&tx), now + REL_RTO_MAX_DEFAULT);
	rel_tx_fini(&tx);
}

/*
 * RTT samples: from segments sent once that the previous ACK could have
 * sacked (within 64 of its cum) and did not. Those beyond may have waited
 * behind the hole: cum jumping over it times the recovery, not the path.
 */
static void test_rtt_sample_reach(void **state)
{
	struct rel_tx tx;
	uint32_t seq;

	tx_make(&tx, 0, 256, 256);
	for (int i = 0; i < 100; i++) {
		tx_push(&tx, 0);
	}
	/* 0 lost; 1..64 sacked: a sample of 100 us, and 0 resent at once. */
	assert_int_equal(tx_ack(&tx, 100 * US, 0, 256, ~0ull, NULL), 0);
	assert_int_equal(tx.stats.rtt_samples, 1);
	assert_int_equal(tx.srtt, 100 * US);
	assert_int_equal(rel_tx_next_due(&tx, 100 * US, &seq), 1);
	assert_int_equal(seq, 0);
	/* The copy arrives late; 65..99 had long arrived: no sample. */
	assert_int_equal(tx_ack(&tx, 1 * MS, 100, 256, 0, NULL), 100);
	assert_int_equal(tx.stats.rtt_samples, 1);
	assert_int_equal(tx.srtt, 100 * US);
	/* In reach and not reported before: 100..109 give a sample, the last sent. */
	for (int i = 0; i < 10; i++) {
		tx_push(&tx, 2 * MS + i * US);
	}
	assert_int_equal(tx_ack(&tx, 2 * MS + 150 * US, 110, 256, 0, NULL), 10);
	assert_int_equal(tx.stats.rtt_samples, 2);
	assert_int_equal(tx.srtt, (7 * 100 * US + 141 * US) / 8);
	rel_tx_fini(&tx);
}

/* A timeout resends what has waited an RTO, in order, and doubles once. */
static void test_timeout_expired_only(void **state)
{
	struct rel_tx tx;
	uint32_t seq;

	tx_make(&tx, 0, 8, 8);
	tx_push(&tx, 0); /* 0 */
	tx_push(&tx, 0); /* 1 */
	tx_push(&tx, 0); /* 2 */
	/* 1 sacked, a sample of 1 ms: RTO 1 + max(2, 4 * 0.5) = 3 ms */
	assert_int_equal(tx_ack(&tx, 1 * MS, 0, 8, 0x1, NULL), 0);
	assert_int_equal(tx.rto, 3 * MS);
	tx_push(&tx, 2 * MS); /* 3 */
	assert_int_equal(rel_tx_timer(&tx), 3 * MS);
	assert_int_equal(rel_tx_next_due(&tx, 3 * MS, &seq), 1);
	assert_int_equal(seq, 0);
	assert_int_equal(rel_tx_next_due(&tx, 3 * MS, &seq), 1);
	assert_int_equal(seq, 2);
	assert_int_equal(rel_tx_next_due(&tx, 3 * MS, &seq), 0);
	assert_int_equal(tx.stats.timeouts, 1);
	assert_int_equal(tx.stats.retx_timeout, 2);
	/* 3 keeps its own deadline, with the RTO doubled once */
	assert_int_equal(tx.rto, 6 * MS);
	assert_int_equal(rel_tx_timer(&tx), 8 * MS);
	assert_int_equal(rel_tx_next_due(&tx, 8 * MS, &seq), 1);
	assert_int_equal(seq, 3);
	assert_int_equal(rel_tx_next_due(&tx, 8 * MS, &seq), 0); /* 0 and 2 are due at 15 ms */
	assert_int_equal(tx.rto, 12 * MS);
	assert_int_equal(rel_tx_timer(&tx), 15 * MS);
	rel_tx_fini(&tx);
}

static void test_reordering(void **state)
{
	static const struct {
		uint32_t seq;
		uint32_t ready; /* in order after it */
		uint32_t cum;
		uint64_t sack;
	} rows[] = {
	    {101, 0, 100, 0x1}, {100, 2, 102, 0x0}, {104, 2, 102, 0x2},
	    {103, 2, 102, 0x3}, {102, 5, 105, 0x0}, {107, 5, 105, 0x2},
	};
	struct rel_tx tx;
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq;

	tx_make(&tx, 100, 8, 8);
	assert_int_equal(rel_rx_init(&rx, 100, 8), 0);
	for (int i = 0; i < 8; i++) {
		tx_push(&tx, 0);
	}
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(rel_rx_on_seg(&rx, rows[i].seq), REL_NEW);
		assert_int_equal(rel_rx_ready(&rx, NULL), rows[i].ready);
		rel_rx_ack(&rx, &a);
		assert_int_equal(a.cum, rows[i].cum);
		assert_int_equal(a.sack, rows[i].sack);
		assert_int_equal(a.window, 8 - rows[i].ready);
		assert_true(tx_ack(&tx, 10 * US, a.cum, a.window, a.sack, NULL) >= 0);
	}
	assert_int_equal(tx.una, 105);
	assert_int_equal(rel_tx_next_due(&tx, 10 * US, &seq), 0); /* only 1 above 105 */
	for (uint32_t want = 100; want < 105; want++) {
		assert_true(rel_rx_pop(&rx, &seq));
		assert_int_equal(seq, want);
	}
	assert_false(rel_rx_pop(&rx, &seq));
	assert_int_equal(rel_rx_buffered(&rx), 1);
	rel_tx_fini(&tx);
	rel_rx_fini(&rx);
}

static void test_duplication(void **state)
{
	static const struct {
		uint32_t seq;
		enum rel_verdict v;
	} rows[] = {
	    {0, REL_NEW}, {0, REL_DUP}, {2, REL_NEW}, {2, REL_DUP},
	    {1, REL_NEW}, {1, REL_DUP}, {2, REL_DUP}, {0xFFFFFFFF, REL_DUP},
	};
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq;

	assert_int_equal(rel_rx_init(&rx, 0, 4), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(rel_rx_on_seg(&rx, rows[i].seq), rows[i].v);
	}
	assert_int_equal(rx.stats.duplicates, 5);
	assert_int_equal(rx.stats.received, 3);
	for (uint32_t want = 0; want < 3; want++) {
		assert_true(rel_rx_pop(&rx, &seq));
		assert_int_equal(seq, want);
	}
	rel_rx_ack(&rx, &a);
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NONE);
	/* A duplicate of a delivered segment: its ACK was lost, send another. */
	assert_int_equal(rel_rx_on_seg(&rx, 1), REL_DUP);
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_BATCH);
	assert_false(rel_rx_pop(&rx, &seq));
	assert_int_equal(rx.stats.delivered, 3);
	rel_rx_fini(&rx);
}

/* Both sides across 2^32: sacks, fast retransmit, window edge, pops. */
static void test_wrap(void **state)
{
	const uint32_t isn = 0xFFFFFFF0u;
	struct rel_tx tx;
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq, first;

	tx_make(&tx, isn, 32, 32);
	assert_int_equal(rel_rx_init(&rx, isn, 32), 0);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(tx_push(&tx, 0), isn + i);
	}
	assert_false(rel_tx_can_send(&tx));
	assert_int_equal(tx.nxt, 0x10);
	for (uint32_t s = isn; s != 0x10; s++) {
		if (s != 0xFFFFFFFEu && s != 0x1) {
			assert_int_equal(rel_rx_on_seg(&rx, s), REL_NEW);
		}
	}
	assert_int_equal(rel_rx_on_seg(&rx, 0x10), REL_OUT_OF_WINDOW); /* head + cap */
	assert_int_equal(rel_rx_on_seg(&rx, 0x7FFFFFF0), REL_OUT_OF_WINDOW);
	assert_int_equal(rel_rx_on_seg(&rx, isn - 1), REL_DUP);
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.cum, 0xFFFFFFFEu);
	assert_int_equal(a.window, 32 - 14);
	/* 0xFFFFFFFF, 0 held; 1 missing; 2.. up to the window edge held */
	assert_int_equal(a.sack, 0x1FFFF & ~0x4ull);
	assert_int_equal(rel_tx_on_ack(&tx, 50 * US, &a, &first), 14);
	assert_int_equal(first, isn);
	assert_int_equal(rel_tx_next_due(&tx, 50 * US, &seq), 1);
	assert_int_equal(seq, 0xFFFFFFFEu);
	assert_int_equal(rel_tx_next_due(&tx, 50 * US, &seq), 1);
	assert_int_equal(seq, 0x1);
	assert_int_equal(rel_tx_next_due(&tx, 50 * US, &seq), 0);
	for (uint32_t want = isn; want != 0xFFFFFFFEu; want++) {
		assert_true(rel_rx_pop(&rx, &seq));
		assert_int_equal(seq, want);
	}
	assert_int_equal(rel_rx_on_seg(&rx, 0xFFFFFFFEu), REL_NEW);
	assert_int_equal(rel_rx_on_seg(&rx, 0x1), REL_NEW);
	assert_int_equal(rel_rx_ready(&rx, &first), 18);
	assert_int_equal(first, 0xFFFFFFFEu);
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.cum, 0x10);
	assert_int_equal(rel_tx_on_ack(&tx, 100 * US, &a, &first), 18);
	assert_int_equal(first, 0xFFFFFFFEu);
	assert_int_equal(rel_tx_outstanding(&tx), 0);
	assert_int_equal(tx.edge, 0x10 + 14); /* 18 popped of 32 still held */
	for (uint32_t want = 0xFFFFFFFEu; want != 0x10; want++) {
		assert_true(rel_rx_pop(&rx, &seq));
		assert_int_equal(seq, want);
	}
	assert_int_equal(rel_rx_window(&rx), 32);
	rel_tx_fini(&tx);
	rel_rx_fini(&rx);
}

/* An ACK for a sequence number never sent is refused and changes nothing. */
static void test_ack_beyond_sent(void **state)
{
	static const struct {
		uint32_t cum;
		uint64_t sack;
		int want;
	} rows[] = {
	    {0xFFFFFFFFu, 0, -EPROTO},          /* nxt + 1 (nxt = 0xFFFFFFFE) */
	    {0x00000010u, 0, -EPROTO},          /* far beyond, across the wrap */
	    {0xFFFFFFFCu, 0x2, -EPROTO},        /* sacks nxt */
	    {0xFFFFFFFCu, 1ull << 63, -EPROTO}, /* sacks cum + 64 */
	    {0xFFFFFFFEu, 0x1, -EPROTO},        /* all acked, and one more */
	    {0xFFFFFFFCu, 0x1, 0},              /* sacks nxt - 1 */
	    {0xFFFFFFFEu, 0, 2},                /* all */
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rel_tx tx;

		tx_make(&tx, 0xFFFFFFFAu, 8, 8);
		for (int k = 0; k < 4; k++) {
			tx_push(&tx, 0);
		}
		assert_int_equal(tx_ack(&tx, 1 * MS, 0xFFFFFFFCu, 8, 0, NULL), 2);
		assert_int_equal(tx_ack(&tx, 2 * MS, rows[i].cum, 8, rows[i].sack, NULL),
		                 rows[i].want);
		if (rows[i].want < 0) {
			assert_int_equal(tx.una, 0xFFFFFFFCu);
			assert_int_equal(tx.stats.acks, 1);
			assert_int_equal(rel_tx_outstanding(&tx), 2);
		}
		rel_tx_fini(&tx);
	}
}

/* Reordered ACKs: a lower cum is ignored; a smaller window never pulls the edge back. */
static void test_stale_ack(void **state)
{
	struct rel_tx tx;
	uint32_t first;

	tx_make(&tx, 40, 16, 8);
	for (int i = 0; i < 8; i++) {
		tx_push(&tx, 0);
	}
	assert_int_equal(tx_ack(&tx, 1 * MS, 45, 8, 0x1, &first), 5);
	assert_int_equal(tx.edge, 53);
	assert_int_equal(tx_ack(&tx, 1 * MS, 43, 8, 0x7, &first), 0);
	assert_int_equal(tx.stats.stale_acks, 1);
	assert_int_equal(tx.una, 45);
	assert_int_equal(tx_ack(&tx, 1 * MS, 45, 2, 0, &first), 0);
	assert_int_equal(tx.edge, 53);
	assert_int_equal(tx.stats.stale_acks, 1);
	assert_int_equal(tx.stats.acks, 2);
	assert_int_equal(tx.stats.acked, 5);
	/* 46 stays sacked although a later ACK does not repeat it */
	for (int i = 0; i < 3; i++) {
		tx_push(&tx, 1 * MS); /* 48.. */
	}
	assert_int_equal(tx_ack(&tx, 1 * MS, 45, 8, 0x6, &first), 0);
	assert_int_equal(tx.nmarked, 1); /* 45: 46, 47, 48 above it */
	rel_tx_fini(&tx);
}

static void test_zero_window(void **state)
{
	struct rel_tx tx;
	struct rel_rx rx;
	struct rel_ack a;
	uint32_t seq;

	tx_make(&tx, 0, 16, 4);
	assert_int_equal(rel_rx_init(&rx, 0, 4), 0);
	for (int i = 0; i < 4; i++) {
		seq = tx_push(&tx, 0);
		assert_int_equal(rel_rx_on_seg(&rx, seq), REL_NEW);
	}
	assert_false(rel_tx_can_send(&tx));
	assert_true(rel_tx_window_closed(&tx));
	assert_int_equal(rel_tx_push(&tx, 0, &seq), -EAGAIN);
	/* The receiver's application does not read: window 0. */
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.cum, 4);
	assert_int_equal(a.window, 0);
	assert_int_equal(rel_rx_on_seg(&rx, 4), REL_OUT_OF_WINDOW);
	assert_int_equal(rx.stats.out_of_window, 1);
	assert_int_equal(rel_tx_on_ack(&tx, 10 * US, &a, &seq), 4);
	assert_false(rel_tx_can_send(&tx));
	assert_true(rel_tx_window_closed(&tx));
	assert_int_equal(rel_tx_timer(&tx), UINT64_MAX); /* the link PINGs */
	/* One pop reopens it and asks for a window update. */
	assert_true(rel_rx_pop(&rx, &seq));
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_BATCH);
	rel_rx_ack(&rx, &a);
	assert_int_equal(a.window, 1);
	/* Another pop: the peer knows the window is open, no ACK needed yet. */
	assert_true(rel_rx_pop(&rx, &seq));
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_NONE);
	assert_true(rel_rx_pop(&rx, &seq));
	assert_int_equal(rel_rx_ack_need(&rx), REL_ACK_BATCH); /* half the buffer freed */
	assert_int_equal(rel_tx_on_ack(&tx, 20 * US, &a, &seq), 0);
	assert_true(rel_tx_can_send(&tx));
	assert_false(rel_tx_window_closed(&tx));
	seq = tx_push(&tx, 20 * US);
	assert_int_equal(seq, 4);
	assert_false(rel_tx_can_send(&tx));
	assert_int_equal(rel_rx_on_seg(&rx, seq), REL_NEW);
	rel_tx_fini(&tx);
	rel_rx_fini(&rx);
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Never more than cap outstanding, never more than cap held at the receiver. */
static void test_capacity(void **state)
{
	struct rel_tx tx;
	struct rel_rx rx;
	uint64_t rng = 1;
	uint32_t seq;

	tx_make(&tx, 0, 8, 1000000);
	for (int i = 0; i < 8; i++) {
		tx_push(&tx, 0);
	}
	assert_false(rel_tx_can_send(&tx));
	assert_false(rel_tx_window_closed(&tx)); /* capacity, not credit */
	assert_int_equal(rel_tx_push(&tx, 0, &seq), -EAGAIN);
	assert_int_equal(rel_tx_outstanding(&tx), 8);
	assert_int_equal(tx_ack(&tx, 1 * MS, 3, 1000000, 0, NULL), 3);
	for (int i = 0; i < 3; i++) {
		tx_push(&tx, 1 * MS);
	}
	assert_int_equal(rel_tx_push(&tx, 0, &seq), -EAGAIN);
	rel_tx_fini(&tx);

	/* Random arrivals around the window, random pops. */
	assert_int_equal(rel_rx_init(&rx, 0xFFFFFF00u, 8), 0);
	for (int i = 0; i < 20000; i++) {
		uint64_t r = rng_next(&rng);
		uint32_t s = rx.cum - 10 + (uint32_t)(r % 30);
		uint32_t head = rx.head;
		enum rel_verdict v = rel_rx_on_seg(&rx, s);

		if (s - head >= 8 && (int32_t)(s - rx.cum) >= 0) {
			assert_int_equal(v, REL_OUT_OF_WINDOW);
		} else if (v == REL_NEW) {
			assert_true(s - head < 8);
		}
		assert_true(rel_rx_buffered(&rx) <= 8);
		assert_true(rel_rx_window(&rx) <= 8);
		if ((r >> 32) % 3 == 0) {
			while (rel_rx_pop(&rx, &seq)) {
				assert_int_equal(seq, head++);
			}
		}
	}
	assert_true(rx.stats.out_of_window > 0);
	assert_true(rx.stats.delivered > 1000);
	rel_rx_fini(&rx);
}

/* ---- simulation ---- */

#define SIM_CAP      256u
#define SIM_N        100000u
#define SIM_FRAME_NS 1000ull  /* one data frame on the wire */
#define SIM_QUEUE_NS 64000ull /* NIC queue: 64 frames */
#define SIM_LAT_NS   20000ull /* one-way latency */
#define SIM_BATCH_NS 10000ull /* receiver reads a batch this long after a frame */
#define SIM_HEAP     (1u << 14)
#define SIM_T_LIMIT  (60ull * 1000 * MS) /* virtual */

enum ev_kind { EV_DATA, EV_ACK, EV_PING };

struct ev {
	uint64_t t, order;
	enum ev_kind kind;
	uint32_t seq, val;
	struct rel_ack ack;
};

struct sim {
	uint64_t seed, rng, now, order;
	double loss;
	struct ev heap[SIM_HEAP];
	uint32_t nheap;
	struct rel_tx tx;
	struct rel_rx rx;
	uint32_t tx_val[SIM_CAP], rx_val[SIM_CAP];
	uint8_t tx_used[SIM_CAP], rx_used[SIM_CAP];
	uint32_t n_tx_used, n_rx_used;
	uint32_t pushed, delivered;
	uint64_t wire_free, tx_wake, rx_flush, stall_until, ping_at;
	uint64_t frames, acks_sent, pings;
};

#define SIM_CHECK(sim, cond)                                                                       \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fail_msg("%s: seed 0x%llx loss %.0f%% t=%llu ns pushed %u delivered %u",   \
			         #cond, (unsigned long long)(sim)->seed, (sim)->loss * 100,        \
			         (unsigned long long)(sim)->now, (sim)->pushed, (sim)->delivered); \
		}                                                                                  \
	} while (0)

static double sim_rand(struct sim *sim)
{
	return (double)(rng_next(&sim->rng) >> 11) / (double)(1ull << 53);
}

static bool ev_less(const struct ev *a, const struct ev *b)
{
	return a->t < b->t || (a->t == b->t && a->order < b->order);
}

static void heap_push(struct sim *sim, struct ev e)
{
	uint32_t i = sim->nheap++;

	SIM_CHECK(sim, sim->nheap <= SIM_HEAP);
	e.order = sim->order++;
	while (i > 0 && ev_less(&e, &sim->heap[(i - 1) / 2])) {
		sim->heap[i] = sim->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	sim->heap[i] = e;
}

static struct ev heap_pop(struct sim *sim)
{
	struct ev top = sim->heap[0], last = sim->heap[--sim->nheap];
	uint32_t i = 0;

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= sim->nheap) {
			break;
		}
		if (c + 1 < sim->nheap && ev_less(&sim->heap[c + 1], &sim->heap[c])) {
			c++;
		}
		if (!ev_less(&sim->heap[c], &last)) {
			break;
		}
		sim->heap[i] = sim->heap[c];
		i = c;
	}
	sim->heap[i] = last;
	return top;
}

/*
 * The channel: frames are lost, duplicated (1%) and mostly keep their order
 * (jitter below a frame time), but 2% are held back up to 50 us.
 */
static void sim_send(struct sim *sim, struct ev e, uint64_t depart)
{
	int copies = sim_rand(sim) < 0.01 ? 2 : 1;

	for (int i = 0; i < copies; i++) {
		uint64_t delay = SIM_LAT_NS + (uint64_t)(sim_rand(sim) * 500);

		if (sim_rand(sim) < 0.02) {
			delay += (uint64_t)(sim_rand(sim) * 50000);
		}
		if (sim_rand(sim) < sim->loss) {
			continue;
		}
		e.t = depart + delay;
		heap_push(sim, e);
	}
}

static void sim_xmit(struct sim *sim, uint32_t seq)
{
	uint32_t slot = rel_slot(seq, SIM_CAP);

	SIM_CHECK(sim, sim->tx_used[slot]);
	sim->wire_free = (sim->wire_free > sim->now ? sim->wire_free : sim->now) + SIM_FRAME_NS;
	sim->frames++;
	sim_send(sim, (struct ev){.kind = EV_DATA, .seq = seq, .val = sim->tx_val[slot]},
	         sim->wire_free);
}

static void sim_tx_run(struct sim *sim)
{
	struct rel_tx *tx = &sim->tx;
	uint32_t seq;
	uint64_t wake;

	while (sim->wire_free < sim->now + SIM_QUEUE_NS) {
		if (rel_tx_next_due(tx, sim->now, &seq)) {
			sim_xmit(sim, seq);
		} else if (sim->pushed < SIM_N && rel_tx_can_send(tx)) {
			SIM_CHECK(sim, rel_tx_push(tx, sim->now, &seq) == 0);
			SIM_CHECK(sim, !sim->tx_used[rel_slot(seq, SIM_CAP)]);
			sim->tx_used[rel_slot(seq, SIM_CAP)] = 1;
			sim->tx_val[rel_slot(seq, SIM_CAP)] = sim->pushed++;
			sim->n_tx_used++;
			sim_xmit(sim, seq);
		} else {
			break;
		}
	}
	if (sim->wire_free >= sim->now + SIM_QUEUE_NS) {
		wake = sim->wire_free - SIM_QUEUE_NS + 1;
	} else {
		wake = rel_tx_timer(tx);
	}
	/* 11.5: a sender with a closed window and data waiting asks with PING */
	if (sim->pushed < SIM_N && rel_tx_window_closed(tx)) {
		if (sim->now >= sim->ping_at) {
			sim->pings++;
			sim_send(sim, (struct ev){.kind = EV_PING}, sim->now);
			sim->ping_at = sim->now + tx->rto;
		}
		wake = wake < sim->ping_at ? wake : sim->ping_at;
	}
	sim->tx_wake = wake > sim->now ? wake : sim->now + 1;
}

static void sim_on_ack(struct sim *sim, const struct rel_ack *a)
{
	uint32_t first;
	int n = rel_tx_on_ack(&sim->tx, sim->now, a, &first);

	SIM_CHECK(sim, n >= 0);
	for (int i = 0; i < n; i++) {
		uint32_t slot = rel_slot(first + i, SIM_CAP);

		SIM_CHECK(sim, sim->tx_used[slot]);
		sim->tx_used[slot] = 0;
		sim->n_tx_used--;
	}
	sim_tx_run(sim);
}

static void sim_rx_send_ack(struct sim *sim)
{
	struct ev e = {.kind = EV_ACK};

	rel_rx_ack(&sim->rx, &e.ack);
	sim->acks_sent++;
	sim_send(sim, e, sim->now);
}

static void sim_on_data(struct sim *sim, const struct ev *e)
{
	uint32_t slot = rel_slot(e->seq, SIM_CAP);
	enum rel_verdict v = rel_rx_on_seg(&sim->rx, e->seq);

	SIM_CHECK(sim, v != REL_OUT_OF_WINDOW); /* the sender kept to the window */
	if (v == REL_NEW) {
		SIM_CHECK(sim, !sim->rx_used[slot]);
		sim->rx_used[slot] = 1;
		sim->rx_val[slot] = e->val;
		sim->n_rx_used++;
	}
	if (rel_rx_ack_need(&sim->rx) == REL_ACK_NOW) {
		sim_rx_send_ack(sim);
	} else if (sim->rx_flush > sim->now + SIM_BATCH_NS) {
		sim->rx_flush = sim->now + SIM_BATCH_NS;
	}
}

/* End of a batch: the application takes what is in order (unless stalled), then one ACK. */
static void sim_rx_flush(struct sim *sim)
{
	uint32_t seq;

	sim->rx_flush = UINT64_MAX;
	if (sim->now >= sim->stall_until && sim_rand(sim) < 0.002) {
		sim->stall_until = sim->now + (uint64_t)(sim_rand(sim) * 1000000);
	}
	if (sim->now < sim->stall_until) {
		sim->rx_flush = sim->stall_until;
	}
	while (sim->now >= sim->stall_until && rel_rx_pop(&sim->rx, &seq)) {
		uint32_t slot = rel_slot(seq, SIM_CAP);

		SIM_CHECK(sim, sim->rx_used[slot]);
		SIM_CHECK(sim, sim->rx_val[slot] == sim->delivered); /* once, in order */
		sim->rx_used[slot] = 0;
		sim->n_rx_used--;
		sim->delivered++;
	}
	if (rel_rx_ack_need(&sim->rx) != REL_ACK_NONE) {
		sim_rx_send_ack(sim);
	}
}

static void sim_step(struct sim *sim)
{
	uint64_t t_ev = sim->nheap ? sim->heap[0].t : UINT64_MAX;
	uint64_t t = t_ev;

	t = sim->tx_wake < t ? sim->tx_wake : t;
	t = sim->rx_flush < t ? sim->rx_flush : t;
	SIM_CHECK(sim, t != UINT64_MAX && t >= sim->now);
	sim->now = t;
	if (t == t_ev) {
		struct ev e = heap_pop(sim);

		if (e.kind == EV_DATA) {
			sim_on_data(sim, &e);
		} else if (e.kind == EV_ACK) {
			sim_on_ack(sim, &e.ack);
		} else {
			sim_rx_send_ack(sim); /* PONG and an ACK */
		}
	} else if (t == sim->tx_wake) {
		sim->tx_wake = UINT64_MAX;
		sim_tx_run(sim);
	} else {
		sim_rx_flush(sim);
	}
	SIM_CHECK(sim, rel_tx_outstanding(&sim->tx) <= SIM_CAP);
	SIM_CHECK(sim, sim->n_tx_used == rel_tx_outstanding(&sim->tx));
	SIM_CHECK(sim, rel_rx_buffered(&sim->rx) <= SIM_CAP);
	SIM_CHECK(sim, sim->n_rx_used == rel_rx_buffered(&sim->rx));
}

static uint64_t sim_seed(void)
{
	const char *s = getenv("REL_SIM_SEED");

	return s ? strtoull(s, NULL, 0) : 0x7e1ab1e5eedull;
}

static void sim_run(double loss)
{
	struct sim *sim = calloc(1, sizeof(*sim));
	uint64_t retx;
	uint32_t isn;

	assert_non_null(sim);
	sim->seed = sim_seed() ^ (uint64_t)(loss * 1000);
	sim->rng = sim->seed;
	sim->loss = loss;
	print_message("rel sim: loss %.0f%% seed 0x%llx\n", loss * 100,
	              (unsigned long long)sim->seed);
	/* Start 2^16 or less below the wrap: every run crosses it. */
	isn = 0xFFFF0000u + (uint32_t)(rng_next(&sim->rng) & 0xFFFF);
	assert_int_equal(
	    rel_tx_init(&sim->tx,
	                &(struct rel_tx_cfg){.isn = isn, .cap = SIM_CAP, .window = SIM_CAP}),
	    0);
	assert_int_equal(rel_rx_init(&sim->rx, isn, SIM_CAP), 0);
	sim->tx_wake = 0;
	sim->rx_flush = UINT64_MAX;
	while (sim->delivered < SIM_N || rel_tx_outstanding(&sim->tx) > 0) {
		sim_step(sim);
		SIM_CHECK(sim, sim->now < SIM_T_LIMIT);
	}
	SIM_CHECK(sim, sim->pushed == SIM_N && sim->delivered == SIM_N);
	SIM_CHECK(sim, sim->rx.stats.delivered == SIM_N && sim->tx.stats.acked == SIM_N);
	SIM_CHECK(sim, sim->rx.stats.out_of_window == 0 && sim->tx.stats.rtt_samples > 0);
	retx = sim->tx.stats.retx_fast + sim->tx.stats.retx_timeout;
	SIM_CHECK(sim, sim->frames == SIM_N + retx);
	print_message("rel sim: loss %2.0f%%: %u segments in %.1f ms virtual, retransmitted %.3f "
	              "(fast %llu, timeout %llu in %llu timeouts), acks %llu (stale %llu), "
	              "rx dups %llu, pings %llu, srtt %.1f us, rto %.2f ms\n",
	              loss * 100, SIM_N, sim->now / 1e6, (double)retx / SIM_N,
	              (unsigned long long)sim->tx.stats.retx_fast,
	              (unsigned long long)sim->tx.stats.retx_timeout,
	              (unsigned long long)sim->tx.stats.timeouts,
	              (unsigned long long)sim->acks_sent,
	              (unsigned long long)sim->tx.stats.stale_acks,
	              (unsigned long long)sim->rx.stats.duplicates, (unsigned long long)sim->pings,
	              sim->tx.srtt / 1e3, sim->tx.rto / 1e6);
	rel_tx_fini(&sim->tx);
	rel_rx_fini(&sim->rx);
	free(sim);
}

static void test_sim_loss_1(void **state)
{
	sim_run(0.01);
}

static void test_sim_loss_5(void **state)
{
	sim_run(0.05);
}

static void test_sim_loss_20(void **state)
{
	sim_run(0.20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_invalid),     cmocka_unit_test(test_names),
	    cmocka_unit_test(test_in_order),         cmocka_unit_test(test_fast_retransmit),
	    cmocka_unit_test(test_timeout_karn),     cmocka_unit_test(test_timeout_expired_only),
	    cmocka_unit_test(test_rtt_sample_reach), cmocka_unit_test(test_reordering),
	    cmocka_unit_test(test_duplication),      cmocka_unit_test(test_wrap),
	    cmocka_unit_test(test_ack_beyond_sent),  cmocka_unit_test(test_stale_ack),
	    cmocka_unit_test(test_zero_window),      cmocka_unit_test(test_capacity),
	    cmocka_unit_test(test_sim_loss_1),       cmocka_unit_test(test_sim_loss_5),
	    cmocka_unit_test(test_sim_loss_20),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
