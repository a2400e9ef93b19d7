/*
 * Per-queue timing: what a receiving node does with a buffer's timestamps
 * (docs/operations.md "Time"). A buffer with a deadline is released at the
 * deadline, never before: held if it arrives early, late if after. One-way
 * latency (arrival minus the sender's stamp), its jitter and the delivery
 * error (release minus deadline) go into fixed histograms, for
 * `vbridgectl stats`.
 */
#ifndef VB_QTIME_H
#define VB_QTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bridge/hist.h"

struct jw;

struct qtime {
	struct hist latency; /* one-way: arrival - t_capture (requests) or t_done (completions) */
	struct jitter jitter;
	struct hist error;    /* release - deadline, every buffer with a deadline */
	uint64_t stamped;     /* buffers that arrived with a time stamp */
	uint64_t timed;       /* ... with a deadline */
	uint64_t held;        /* ... released by the timer (they arrived early) */
	uint64_t late;        /* ... arrived after the deadline */
	uint64_t dropped;     /* ... late and dropped (late=drop): completed without data */
	uint64_t unsync;      /* deadline ignored: this node's clock was not synchronized */
	uint64_t unsync_held; /* held while unsynchronized (on-unsync=hold) */
};

/*
 * The furthest ahead a deadline may lie: the largest latency budget (10 s)
 * plus a second for clocks. A peer that asks for more would hold a queue
 * for nothing; its session ends.
 */
#define QTIME_AHEAD_MAX_NS 11000000000ll

void qtime_init(struct qtime *t);

/* A buffer arrived at `now` carrying the sender's stamp (0: none). */
void qtime_arrival(struct qtime *t, int64_t now, int64_t stamp);

enum qtime_verdict {
	QT_NOW,  /* no deadline (or ignored): release now */
	QT_HOLD, /* early: release at the deadline */
	QT_LATE, /* late: release now, counted */
	QT_DROP, /* late, and its policy drops it: complete without data */
};

/* What to do with a buffer with deadline d (0: none) arriving at now. */
enum qtime_verdict qtime_decide(struct qtime *t, int64_t now, int64_t d, bool synced,
                                bool drop_late);

/* It was released at now (held or late, for the error histogram). */
void qtime_released(struct qtime *t, int64_t now, int64_t d, bool from_hold);

/* {"latency":{hist},"jitter":{...},"delivery_error":{hist},"stamped":..,...} as member name. */
void qtime_json(const struct qtime *t, struct jw *w, const char *name);

/*
 * The time trace (--time-trace FILE): one CSV line per buffer with a
 * deadline, written when it is released or dropped:
 *   side,name,queue,id,t_stamp,t_deadline,t_release,verdict
 * side "export" (requests) or "import" (completions); times in ns of the
 * common time base; verdict held|late|dropped|now|unsync.
 */
void qtime_trace(FILE *f, const char *side, const char *name, unsigned q, uint64_t id,
                 int64_t stamp, int64_t d, int64_t release, const char *verdict);

#endif
