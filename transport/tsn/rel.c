/*
 * Reliable delivery engines of docs/protocol.md 11.5.
 *
 * Sender invariants: outstanding = nxt - una <= cap, so slot s & (cap - 1)
 * names exactly one live sequence number. Every outstanding segment is in
 * one state: in flight (in the time list, ordered by last transmission, so
 * its head carries the retransmission deadline), sacked (the receiver holds
 * it and never reneges, 11.5: no timer), or marked for retransmission. Only
 * una..una+64 can be sacked: the bitmap reaches cum + 64 and una = cum.
 *
 * Receiver invariants: [head, cum) held in order, not yet popped; above cum
 * up to head + cap, nooo segments held out of order; nothing else held.
 */
#include "transport/tsn/rel.h"

#include <errno.h>
#include <stdlib.h>

#include "bridge/util.h"

enum rel_seg_state {
	REL_S_FLIGHT,
	REL_S_SACKED,
	REL_S_FAST, /* marked: fast retransmit */
	REL_S_RTO,  /* marked: timeout */
};

struct rel_tx_seg {
	uint64_t sent_at; /* last transmission */
	uint32_t prev, next;
	uint16_t sends;
	uint8_t state;
};

static bool rel_cap_ok(uint32_t cap)
{
	return cap >= 1 && cap <= REL_CAP_MAX && (cap & (cap - 1)) == 0;
}

/* Serial arithmetic (RFC 1982): a before b. */
static bool rel_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static uint64_t rel_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- sender: the time list (slot indices; index cap is its head) ---- */

static void rel_list_append(struct rel_tx *tx, uint32_t i)
{
	struct rel_tx_seg *h = &tx->seg[tx->cap];

	tx->seg[i].prev = h->prev;
	tx->seg[i].next = tx->cap;
	tx->seg[h->prev].next = i;
	h->prev = i;
}

static void rel_list_unlink(struct rel_tx *tx, uint32_t i)
{
	tx->seg[tx->seg[i].prev].next = tx->seg[i].next;
	tx->seg[tx->seg[i].next].prev = tx->seg[i].prev;
}

static uint32_t rel_seq_of(const struct rel_tx *tx, uint32_t slot)
{
	return tx->una + ((slot - tx->una) & (tx->cap - 1));
}

static struct rel_tx_seg *rel_tx_seg(struct rel_tx *tx, uint32_t seq)
{
	return &tx->seg[rel_slot(seq, tx->cap)];
}

int rel_tx_init(struct rel_tx *tx, const struct rel_tx_cfg *cfg)
{
	*tx = (struct rel_tx){0};
	tx->rto_min = cfg->rto_min ? cfg->rto_min : REL_RTO_MIN_DEFAULT;
	tx->rto_initial = cfg->rto_initial ? cfg->rto_initial : REL_RTO_INITIAL_DEFAULT;
	tx->rto_max = cfg->rto_max ? cfg->rto_max : REL_RTO_MAX_DEFAULT;
	if (!rel_cap_ok(cfg->cap) || tx->rto_min > tx->rto_initial ||
	    tx->rto_initial > tx->rto_max) {
		return -EINVAL;
	}
	tx->seg = calloc((size_t)cfg->cap + 1, sizeof(*tx->seg));
	if (!tx->seg) {
		return -ENOMEM;
	}
	tx->cap = cfg->cap;
	tx->seg[tx->cap].prev = tx->seg[tx->cap].next = tx->cap;
	tx->una = tx->nxt = tx->mark_lo = cfg->isn;
	tx->edge = cfg->isn + (cfg->window < cfg->cap ? cfg->window : cfg->cap);
	tx->rto = tx->rto_initial;
	return 0;
}

void rel_tx_fini(struct rel_tx *tx)
{
	free(tx->seg);
	tx->seg = NULL;
}

uint32_t rel_tx_outstanding(const struct rel_tx *tx)
{
	return tx->nxt - tx->una;
}

/* Fewer than cap outstanding, and the next sequence number within credit. */
bool rel_tx_can_send(const struct rel_tx *tx)
{
	return rel_tx_outstanding(tx) < tx->cap && rel_before(tx->nxt, tx->edge);
}

bool rel_tx_window_closed(const struct rel_tx *tx)
{
	return rel_tx_outstanding(tx) < tx->cap && !rel_before(tx->nxt, tx->edge);
}

int rel_tx_push(struct rel_tx *tx, uint64_t now, uint32_t *seq)
{
	struct rel_tx_seg *s;

	if (!rel_tx_can_send(tx)) {
		return -EAGAIN;
	}
	s = rel_tx_seg(tx, tx->nxt);
	*s = (struct rel_tx_seg){.sent_at = now, .sends = 1, .state = REL_S_FLIGHT};
	rel_list_append(tx, rel_slot(tx->nxt, tx->cap));
	*seq = tx->nxt++;
	tx->stats.sent++;
	return 0;
}

/* RFC 6298 2.2-2.4, with the floor as the clock granularity term G. */
static void rel_tx_rtt_sample(struct rel_tx *tx, uint64_t r)
{
	uint64_t var;

	if (!tx->rtt_valid) {
		tx->srtt = r;
		tx->rttvar = r / 2;
		tx->rtt_valid = true;
	} else {
		uint64_t d = tx->srtt > r ? tx->srtt - r : r - tx->srtt;

		tx->rttvar = (3 * tx->rttvar + d) / 4;
		tx->srtt = (7 * tx->srtt + r) / 8;
	}
	var = 4 * tx->rttvar > tx->rto_min ? 4 * tx->rttvar : tx->rto_min;
	tx->rto = tx->srtt + var;
	if (tx->rto > tx->rto_max) {
		tx->rto = tx->rto_max;
	}
	tx->stats.rtt_samples++;
}

/*
 * -EPROTO unless cum and every sacked sequence number were sent: cum <= nxt
 * and cum + 1 + (highest bit) < nxt. cum is at or after una here.
 */
static int rel_tx_check_ack(const struct rel_tx *tx, const struct rel_ack *ack)
{
	uint64_t cum_off = ack->cum - tx->una;
	uint64_t sent = tx->nxt - tx->una;

	if (cum_off > sent) {
		return -EPROTO;
	}
	if (ack->sack && cum_off + 1 + (63 - __builtin_clzll(ack->sack)) >= sent) {
		return -EPROTO;
	}
	return 0;
}

/* Takes seq out of the time list or the marks, before it is freed or sacked. */
static void rel_tx_leave(struct rel_tx *tx, uint32_t seq)
{
	struct rel_tx_seg *s = rel_tx_seg(tx, seq);

	if (s->state == REL_S_FLIGHT) {
		rel_list_unlink(tx, rel_slot(seq, tx->cap));
	} else if (s->state == REL_S_FAST || s->state == REL_S_RTO) {
		tx->nmarked--;
	}
}

/*
 * The RTT sample of one ACK. Karn: only segments sent once. And only those
 * the previous ACK could have sacked (within 64 of its cum) but did not: then
 * this ACK is the first to report them, and was made after they arrived.
 * Segments beyond that reach may have arrived long ago and been hidden
 * behind a hole; when cum jumps over the hole (its copy arrived) timing them
 * measures the recovery, the RTO grows with its own back-off and runs away to
 * the maximum. Of the candidates the one sent last gives the sample.
 */
static void rel_tx_consider(const struct rel_tx_seg *s, uint32_t seq, uint32_t old_una,
                            uint64_t *sent_at)
{
	if (s->state != REL_S_SACKED && s->sends == 1 && seq - old_una <= REL_SACK_BITS &&
	    (*sent_at == UINT64_MAX || s->sent_at > *sent_at)) {
		*sent_at = s->sent_at;
	}
}

static void rel_tx_mark(struct rel_tx *tx, uint32_t seq, enum rel_seg_state how)
{
	struct rel_tx_seg *s = rel_tx_seg(tx, seq);

	rel_list_unlink(tx, rel_slot(seq, tx->cap));
	s->state = how;
	if (tx->nmarked++ == 0 || rel_before(seq, tx->mark_lo)) {
		tx->mark_lo = seq;
	}
}

/*
 * Fast retransmit: a segment in flight with REL_DUPTHRESH or more sacked
 * above it is lost. Sent once, it goes at once (the sacked ones left after
 * it). Sent again already, it goes again when that copy has had a round
 * trip (SRTT + 4 RTTVAR, no floor) to be acknowledged: once per round trip,
 * ACK or no ACK (rel_tx_timer() wakes the caller for it), so a lost copy of
 * the hole at una does not wait for the RTO when nothing else is in flight.
 *
 * Lists in lost[] what is lost at `now` (only sacked segments, within reach
 * of the bitmap, count); returns when the next copy in flight becomes lost.
 */
static uint64_t rel_tx_fast_scan(const struct rel_tx *tx, uint64_t now, uint32_t *lost,
                                 uint32_t *nlost)
{
	uint64_t rtt = tx->rtt_valid ? tx->srtt + 4 * tx->rttvar : tx->rto_initial;
	uint64_t next = UINT64_MAX;
	uint32_t n = rel_tx_outstanding(tx);
	uint32_t above = 0;

	*nlost = 0;
	if (n > REL_SACK_BITS + 1) {
		n = REL_SACK_BITS + 1;
	}
	for (uint32_t i = n; i-- > 0;) {
		const struct rel_tx_seg *s = &tx->seg[rel_slot(tx->una + i, tx->cap)];
		uint64_t at;

		if (s->state == REL_S_SACKED) {
			above++;
		}
		if (s->state != REL_S_FLIGHT || above < REL_DUPTHRESH) {
			continue;
		}
		at = s->sends == 1 ? now : rel_add_sat(s->sent_at, rtt);
		if (at <= now) {
			lost[(*nlost)++] = tx->una + i;
		} else if (at < next) {
			next = at;
		}
	}
	return next;
}

static void rel_tx_fast_marks(struct rel_tx *tx, uint64_t now)
{
	uint32_t lost[REL_SACK_BITS + 1], n;

	rel_tx_fast_scan(tx, now, lost, &n);
	for (uint32_t i = 0; i < n; i++) {
		rel_tx_mark(tx, lost[i], REL_S_FAST);
	}
}

int rel_tx_on_ack(struct rel_tx *tx, uint64_t now, const struct rel_ack *ack, uint32_t *freed_first)
{
	uint32_t window = ack->window < tx->cap ? ack->window : tx->cap;
	uint32_t old_una = tx->una;
	uint64_t timed = UINT64_MAX;
	uint32_t freed = ack->cum - tx->una;
	int err;

	*freed_first = tx->una;
	if (rel_before(ack->cum, tx->una)) {
		tx->stats.stale_acks++;
		return 0;
	}
	err = rel_tx_check_ack(tx, ack);
	if (err) {
		return err;
	}
	for (uint32_t seq = tx->una; seq != ack->cum; seq++) {
		struct rel_tx_seg *s = rel_tx_seg(tx, seq);

		rel_tx_consider(s, seq, old_una, &timed);
		rel_tx_leave(tx, seq);
	}
	tx->una = ack->cum;
	for (uint64_t bits = ack->sack; bits; bits &= bits - 1) {
		uint32_t seq = ack->cum + 1 + __builtin_ctzll(bits);
		struct rel_tx_seg *s = rel_tx_seg(tx, seq);

		if (s->state != REL_S_SACKED) {
			rel_tx_consider(s, seq, old_una, &timed);
			rel_tx_leave(tx, seq);
			s->state = REL_S_SACKED;
		}
	}
	if (timed <= now) {
		rel_tx_rtt_sample(tx, now - timed);
	}
	/* Acks may arrive reordered: the edge only moves forward (11.5). */
	if (rel_before(tx->edge, ack->cum + window)) {
		tx->edge = ack->cum + window;
	}
	rel_tx_fast_marks(tx, now);
	tx->stats.acks++;
	tx->stats.acked += freed;
	return (int)freed;
}

/*
 * Timeout: every segment in flight whose last transmission is an RTO old is
 * lost, not only the oldest. At 20% loss a timeout typically finds several
 * holes (a lost tail, holes beyond the 64-bit sack, lost retransmissions);
 * resending one per expiry would cost one doubled RTO per hole. Segments
 * sent less than an RTO ago keep their time: still in flight, not go-back-N.
 */
static void rel_tx_expire(struct rel_tx *tx, uint64_t now)
{
	uint32_t i = tx->seg[tx->cap].next;

	if (i == tx->cap || now < rel_add_sat(tx->seg[i].sent_at, tx->rto)) {
		return;
	}
	while (i != tx->cap && now >= rel_add_sat(tx->seg[i].sent_at, tx->rto)) {
		uint32_t next = tx->seg[i].next;

		rel_tx_mark(tx, rel_seq_of(tx, i), REL_S_RTO);
		i = next;
	}
	tx->rto = tx->rto * 2 < tx->rto_max ? tx->rto * 2 : tx->rto_max;
	tx->stats.timeouts++;
}

int rel_tx_next_due(struct rel_tx *tx, uint64_t now, uint32_t *seq)
{
	uint32_t s;

	if (tx->nmarked == 0) {
		rel_tx_fast_marks(tx, now);
	}
	if (tx->nmarked == 0) {
		rel_tx_expire(tx, now);
	}
	if (tx->nmarked == 0) {
		return 0;
	}
	s = rel_before(tx->mark_lo, tx->una) ? tx->una : tx->mark_lo;
	for (; s != tx->nxt; s++) {
		struct rel_tx_seg *seg = rel_tx_seg(tx, s);

		if (seg->state != REL_S_FAST && seg->state != REL_S_RTO) {
			continue;
		}
		if (seg->state == REL_S_FAST) {
			tx->stats.retx_fast++;
		} else {
			tx->stats.retx_timeout++;
		}
		tx->nmarked--;
		tx->mark_lo = s + 1;
		seg->state = REL_S_FLIGHT;
		seg->sent_at = now;
		if (seg->sends < UINT16_MAX) {
			seg->sends++;
		}
		rel_list_append(tx, rel_slot(s, tx->cap));
		*seq = s;
		return 1;
	}
	return 0; /* not reached: nmarked counts marks in [una, nxt) */
}

uint64_t rel_tx_timer(const struct rel_tx *tx)
{
	uint32_t i = tx->seg[tx->cap].next;
	uint32_t lost[REL_SACK_BITS + 1], n;
	uint64_t at;

	if (tx->nmarked) {
		return 0;
	}
	if (i == tx->cap) {
		return UINT64_MAX;
	}
	at = rel_add_sat(tx->seg[i].sent_at, tx->rto);
	/*
	 * Segments sent once with REL_DUPTHRESH sacked above are marked by the
	 * ACK that sacked the last of them; only copies sent again can be next.
	 */
	return VB_MIN(at, rel_tx_fast_scan(tx, 0, lost, &n));
}

/* ---- receiver ---- */

static bool rel_rx_held(const struct rel_rx *rx, uint32_t seq)
{
	uint32_t i = rel_slot(seq, rx->cap);

	return (rx->held[i / 64] >> (i % 64)) & 1;
}

static void rel_rx_set(struct rel_rx *rx, uint32_t seq, bool on)
{
	uint32_t i = rel_slot(seq, rx->cap);

	if (on) {
		rx->held[i / 64] |= 1ull << (i % 64);
	} else {
		rx->held[i / 64] &= ~(1ull << (i % 64));
	}
}

static void rel_rx_want(struct rel_rx *rx, enum rel_ack_need n)
{
	if (n > rx->need) {
		rx->need = n;
	}
}

int rel_rx_init(struct rel_rx *rx, uint32_t isn, uint32_t cap)
{
	*rx = (struct rel_rx){0};
	if (!rel_cap_ok(cap)) {
		return -EINVAL;
	}
	rx->held = calloc((cap + 63) / 64, sizeof(*rx->held));
	if (!rx->held) {
		return -ENOMEM;
	}
	rx->cap = cap;
	rx->head = rx->cum = isn;
	rx->last_window = cap; /* what CTL announced */
	return 0;
}

void rel_rx_fini(struct rel_rx *rx)
{
	free(rx->held);
	rx->held = NULL;
}

uint32_t rel_rx_window(const struct rel_rx *rx)
{
	return rx->head + rx->cap - rx->cum;
}

uint32_t rel_rx_buffered(const struct rel_rx *rx)
{
	return rx->cum - rx->head + rx->nooo;
}

enum rel_ack_need rel_rx_ack_need(const struct rel_rx *rx)
{
	return rx->need;
}

/*
 * Slots are free from cum up to head + cap, so that is the window; held
 * segments above cum are inside it. Acks go per batch; at once when a hole
 * first has REL_DUPTHRESH segments above it, so fast retransmit need not
 * wait for the end of a long batch.
 */
enum rel_verdict rel_rx_on_seg(struct rel_rx *rx, uint32_t seq)
{
	if (rel_before(seq, rx->cum) || (seq - rx->head < rx->cap && rel_rx_held(rx, seq))) {
		rx->stats.duplicates++;
		rel_rx_want(rx, REL_ACK_BATCH);
		return REL_DUP;
	}
	if (seq - rx->head >= rx->cap) {
		rx->stats.out_of_window++;
		return REL_OUT_OF_WINDOW;
	}
	rel_rx_set(rx, seq, true);
	rx->stats.received++;
	if (seq != rx->cum) {
		rel_rx_want(rx, ++rx->nooo == REL_DUPTHRESH ? REL_ACK_NOW : REL_ACK_BATCH);
		return REL_NEW;
	}
	rx->cum++;
	while (rx->nooo && rel_rx_held(rx, rx->cum)) {
		rx->cum++;
		rx->nooo--;
	}
	rel_rx_want(rx, REL_ACK_BATCH);
	return REL_NEW;
}

uint32_t rel_rx_ready(const struct rel_rx *rx, uint32_t *first)
{
	if (first) {
		*first = rx->head;
	}
	return rx->cum - rx->head;
}

/* A window update is due when the peer saw none, or half the buffer freed. */
bool rel_rx_pop(struct rel_rx *rx, uint32_t *seq)
{
	uint32_t w;

	if (rx->head == rx->cum) {
		return false;
	}
	*seq = rx->head;
	rel_rx_set(rx, rx->head++, false);
	rx->stats.delivered++;
	w = rel_rx_window(rx);
	if (rx->last_window == 0 ||
	    (w > rx->last_window && w - rx->last_window >= (rx->cap + 1) / 2)) {
		rel_rx_want(rx, REL_ACK_BATCH);
	}
	return true;
}

void rel_rx_ack(struct rel_rx *rx, struct rel_ack *ack)
{
	uint32_t window = rel_rx_window(rx);

	ack->cum = rx->cum;
	ack->window = window;
	ack->sack = 0;
	/* Bits only inside the window: beyond it a slot belongs to seq - cap. */
	for (uint32_t i = 0; rx->nooo && i < REL_SACK_BITS && i + 1 < window; i++) {
		if (rel_rx_held(rx, rx->cum + 1 + i)) {
			ack->sack |= 1ull << i;
		}
	}
	rx->need = REL_ACK_NONE;
	rx->last_window = window;
	rx->stats.acks++;
}

static const char *const rel_verdict_names[] = {
    [REL_NEW] = "NEW",
    [REL_DUP] = "DUP",
    [REL_OUT_OF_WINDOW] = "OUT_OF_WINDOW",
};

static const char *const rel_ack_need_names[] = {
    [REL_ACK_NONE] = "NONE",
    [REL_ACK_BATCH] = "BATCH",
    [REL_ACK_NOW] = "NOW",
};

const char *rel_verdict_name(enum rel_verdict v)
{
	if ((unsigned)v >= ARRAY_SIZE(rel_verdict_names)) {
		return "UNKNOWN";
	}
	return rel_verdict_names[v];
}

const char *rel_ack_need_name(enum rel_ack_need n)
{
	if ((unsigned)n >= ARRAY_SIZE(rel_ack_need_names)) {
		return "UNKNOWN";
	}
	return rel_ack_need_names[n];
}
