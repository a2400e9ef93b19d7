#include "bridge/qtime.h"

#include <inttypes.h>
#include <string.h>

#include "bridge/jw.h"

void qtime_init(struct qtime *t)
{
	memset(t, 0, sizeof(*t));
	hist_init(&t->latency);
	hist_init(&t->error);
	jitter_init(&t->jitter);
}

void qtime_arrival(struct qtime *t, int64_t now, int64_t stamp)
{
	if (!stamp) {
		return;
	}
	t->stamped++;
	hist_add(&t->latency, now - stamp);
	jitter_add(&t->jitter, now - stamp);
}

enum qtime_verdict qtime_decide(struct qtime *t, int64_t now, int64_t d, bool synced,
                                bool drop_late)
{
	if (!d) {
		return QT_NOW;
	}
	t->timed++;
	if (!synced) {
		t->unsync++;
		return QT_NOW;
	}
	if (now < d) {
		return QT_HOLD;
	}
	if (now == d) {
		return QT_NOW;
	}
	t->late++;
	if (drop_late) {
		t->dropped++;
		return QT_DROP;
	}
	return QT_LATE;
}

void qtime_released(struct qtime *t, int64_t now, int64_t d, bool from_hold)
{
	hist_add(&t->error, now - d);
	if (from_hold) {
		t->held++;
	}
}

void qtime_json(const struct qtime *t, struct jw *w, const char *name)
{
	jw_obj_begin(w, name);
	jw_u64(w, "stamped", t->stamped);
	jw_u64(w, "timed", t->timed);
	jw_u64(w, "held", t->held);
	jw_u64(w, "late", t->late);
	jw_u64(w, "dropped", t->dropped);
	jw_u64(w, "unsync", t->unsync);
	jw_u64(w, "unsync_held", t->unsync_held);
	hist_json(&t->latency, w, "latency");
	jitter_json(&t->jitter, w, "jitter");
	hist_json(&t->error, w, "delivery_error");
	jw_obj_end(w);
}

void qtime_trace(FILE *f, const char *side, const char *name, unsigned q, uint64_t id,
                 int64_t stamp, int64_t d, int64_t release, const char *verdict)
{
	if (f) {
		fprintf(f, "%s,%s,%u,%" PRIu64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%s\n", side,
		        name, q, id, stamp, d, release, verdict);
	}
}
