/*
 * Reliable delivery for one traffic class of a tsn:// link (docs/protocol.md
 * 11.5): rel_tx is the data sender's retransmission engine, rel_rx the data
 * receiver's reassembly window. A link holds one of each per class.
 *
 * Pure state machines: no I/O, no clock reads, no logging, no allocation
 * after init. `now` is ns of any monotonic clock and must not go backwards.
 * Sequence numbers are 32-bit serial numbers (RFC 1982) and wrap.
 *
 * Payload storage is the caller's, on both sides: `cap` slots of max_seg
 * bytes; the segment with sequence number s lives in slot rel_slot(s, cap).
 * The engines say which sequence numbers are live; they never see payloads.
 *
 * Sender, per class, after each event (ACK in, data queued, timer fired):
 *   1. an ACK:       rel_tx_on_ack(); -EPROTO ends the link; the freed
 *                    sequence numbers' slots are the caller's again;
 *   2. retransmit:   while (rel_tx_next_due()) send that slot again;
 *   3. new data:     while (data waiting && rel_tx_can_send()) rel_tx_push(),
 *                    store the payload in its slot, send it;
 *   4. re-arm the one timer at rel_tx_timer() (UINT64_MAX: none);
 *   5. rel_tx_window_closed() with data waiting: PING the peer (11.5).
 * Receiver, per class:
 *   - a SEG arrived: rel_rx_on_seg(); on REL_NEW store the payload in its
 *                    slot, otherwise drop it;
 *   - deliver:       rel_rx_ready() shows the in-order run (to find a LAST
 *                    flag, say); rel_rx_pop() frees the oldest: consume its
 *                    slot before the next rel_rx_on_seg(), which may reuse
 *                    it. A caller that leaves a message in the slots until
 *                    its LAST segment arrives needs cap x max_seg >= the
 *                    largest message, or it never arrives;
 *   - acknowledge:   rel_rx_ack_need(): REL_ACK_NOW send at once,
 *                    REL_ACK_BATCH at the end of this batch of frames;
 *                    rel_rx_ack() fills the ACK.
 */
#ifndef VB_TSN_REL_H
#define VB_TSN_REL_H

#include <stdbool.h>
#include <stdint.h>

#define REL_CAP_MAX             32768u /* fits the 16-bit window of CTL (11.4) */
#define REL_SACK_BITS           64u
#define REL_DUPTHRESH           3u            /* segments above a hole that make it lost */
#define REL_RTO_MIN_DEFAULT     2000000ull    /* 2 ms */
#define REL_RTO_INITIAL_DEFAULT 20000000ull   /* 20 ms */
#define REL_RTO_MAX_DEFAULT     1000000000ull /* 1 s */

static inline uint32_t rel_slot(uint32_t seq, uint32_t cap)
{
	return seq & (cap - 1);
}

/* The fields of an ACK (11.4). */
struct rel_ack {
	uint32_t cum;    /* next sequence number expected; all below arrived */
	uint32_t window; /* the sender may send sequence numbers below cum + window */
	uint64_t sack;   /* bit i: cum + 1 + i arrived */
};

/* ---- sender ---- */

struct rel_tx_cfg {
	uint32_t isn;         /* our first sequence number (random, 11.6) */
	uint32_t cap;         /* segments outstanding at most: a power of two <= REL_CAP_MAX */
	uint32_t window;      /* the peer's initial credit: its CTL window */
	uint64_t rto_min;     /* ns; 0: REL_RTO_MIN_DEFAULT */
	uint64_t rto_initial; /* ns, before the first RTT sample; 0: default */
	uint64_t rto_max;     /* ns; 0: default */
};

struct rel_tx_stats {
	uint64_t sent;         /* new segments */
	uint64_t retx_fast;    /* retransmissions for fast retransmit */
	uint64_t retx_timeout; /* retransmissions after a timeout */
	uint64_t timeouts;     /* RTO expiries (each doubled the RTO) */
	uint64_t acked;        /* segments freed by cum */
	uint64_t acks;         /* ACKs taken */
	uint64_t stale_acks;   /* ACKs with cum below an earlier one: ignored */
	uint64_t rtt_samples;  /* see rel.c: sent once, first reported by this ACK */
};

struct rel_tx_seg;

/* Read-only for callers: use the functions. */
struct rel_tx {
	uint32_t cap;
	uint32_t una;  /* oldest unacknowledged; the peer's cum */
	uint32_t nxt;  /* next new sequence number */
	uint32_t edge; /* may send below: the highest cum + window seen */
	uint32_t nmarked;
	uint32_t mark_lo; /* no segment below is marked for retransmission */
	bool rtt_valid;
	uint64_t srtt, rttvar, rto; /* ns */
	uint64_t rto_min, rto_initial, rto_max;
	struct rel_tx_seg *seg; /* cap + 1: per slot, then the time list's head */
	struct rel_tx_stats stats;
};

/* 0, -EINVAL (cap not a power of two, RTO bounds out of order), -ENOMEM. */
int rel_tx_init(struct rel_tx *tx, const struct rel_tx_cfg *cfg);
void rel_tx_fini(struct rel_tx *tx);

/* Fewer than cap outstanding and the next sequence number within credit. */
bool rel_tx_can_send(const struct rel_tx *tx);
/* Credit, not capacity, is what stops new data: PING the peer. */
bool rel_tx_window_closed(const struct rel_tx *tx);
uint32_t rel_tx_outstanding(const struct rel_tx *tx);
/*
 * Assigns *seq to a new segment sent at `now`: 0, or -EAGAIN when
 * !rel_tx_can_send(). The caller stores the payload in slot rel_slot(*seq)
 * and transmits it; the slot is the engine's until the segment is freed.
 */
int rel_tx_push(struct rel_tx *tx, uint64_t now, uint32_t *seq);
/*
 * An ACK from the peer. Returns the number n >= 0 of segments it freed,
 * *freed_first .. *freed_first + n - 1 (their slots are the caller's again),
 * or -EPROTO when it acknowledges a sequence number never sent (the link
 * must end; the engine is unchanged). A cum below an earlier one is a
 * reordered ACK: ignored and counted (returns 0).
 */
int rel_tx_on_ack(struct rel_tx *tx, uint64_t now, const struct rel_ack *ack,
                  uint32_t *freed_first);
/*
 * The next segment to retransmit now: 1 with *seq (the caller sends slot
 * rel_slot(*seq) again at once; it counts as sent at `now`), or 0. Call it
 * until it returns 0. In sequence order, fast retransmit first: a segment
 * with REL_DUPTHRESH sacked above it, and a resent copy of one that had a
 * round trip (SRTT + 4 RTTVAR) to be acknowledged and was not. Then, if the
 * oldest transmission is an RTO old: every segment unacknowledged for an RTO
 * since its last transmission; the RTO doubles (up to rto_max) until the
 * next RTT sample.
 */
int rel_tx_next_due(struct rel_tx *tx, uint64_t now, uint32_t *seq);
/*
 * When rel_tx_next_due() will have work: 0 if it has now, UINT64_MAX if
 * nothing is in flight, else the earlier of the RTO deadline and the next
 * fast retransmit of a copy. Every call above may change it: re-arm after
 * each batch of calls.
 */
uint64_t rel_tx_timer(const struct rel_tx *tx);

/* ---- receiver ---- */

enum rel_verdict {
	REL_NEW,           /* store it in its slot (it may be out of order) */
	REL_DUP,           /* below cum or already held: drop; an ACK is due */
	REL_OUT_OF_WINDOW, /* at or beyond cum + window: drop */
};

enum rel_ack_need {
	REL_ACK_NONE,  /* nothing the peer has not heard */
	REL_ACK_BATCH, /* send one at the end of this batch of frames */
	REL_ACK_NOW,   /* a hole has REL_DUPTHRESH segments above it: send at once */
};

struct rel_rx_stats {
	uint64_t received;      /* REL_NEW */
	uint64_t duplicates;    /* REL_DUP */
	uint64_t out_of_window; /* REL_OUT_OF_WINDOW */
	uint64_t delivered;     /* popped */
	uint64_t acks;          /* ACKs built */
};

/* Read-only for callers: use the functions. */
struct rel_rx {
	uint32_t cap;
	uint32_t head; /* oldest not yet popped */
	uint32_t cum;  /* next expected: [head, cum) held in order */
	uint32_t nooo; /* held above cum */
	uint32_t last_window;
	enum rel_ack_need need;
	uint64_t *held; /* bitmap per slot */
	struct rel_rx_stats stats;
};

/* 0, -EINVAL (cap not a power of two <= REL_CAP_MAX), -ENOMEM. */
int rel_rx_init(struct rel_rx *rx, uint32_t isn, uint32_t cap);
void rel_rx_fini(struct rel_rx *rx);

enum rel_verdict rel_rx_on_seg(struct rel_rx *rx, uint32_t seq);
/* Segments ready in order, the first at *first (may be NULL); not popped. */
uint32_t rel_rx_ready(const struct rel_rx *rx, uint32_t *first);
/*
 * The next in-order segment: true with *seq, whose slot the caller consumes
 * now (its next rel_rx_on_seg() may hand the slot to seq + cap); false when
 * none is ready.
 */
bool rel_rx_pop(struct rel_rx *rx, uint32_t *seq);
/* Credit: cap minus the segments held in order and not yet popped. */
uint32_t rel_rx_window(const struct rel_rx *rx);
/* Slots in use: in order and not popped, plus held above cum. <= cap. */
uint32_t rel_rx_buffered(const struct rel_rx *rx);
enum rel_ack_need rel_rx_ack_need(const struct rel_rx *rx);
/* Fills the ACK to send now and clears the need. */
void rel_rx_ack(struct rel_rx *rx, struct rel_ack *ack);

const char *rel_verdict_name(enum rel_verdict v);
const char *rel_ack_need_name(enum rel_ack_need n);

#endif
