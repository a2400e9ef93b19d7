#include "bridge/hist.h"

#include <string.h>

#define HIST_LAST   (HIST_NBUCKETS - 1)
#define JITTER_DMAX ((int64_t)1 << 58) /* 16 * 2^58 < INT64_MAX: J cannot overflow */

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

int hist_bucket(int64_t ns)
{
	int e;

	if (ns < 0) {
		return -1;
	}
	if (ns < ((int64_t)1 << HIST_MIN_SHIFT)) {
		return 0;
	}
	if (ns >= ((int64_t)1 << HIST_MAX_SHIFT)) {
		return HIST_LAST;
	}
	e = 63 - __builtin_clzll((unsigned long long)ns);
	/* The two bits under the leading one pick the sub-bucket. */
	return 1 + (e - HIST_MIN_SHIFT) * HIST_SUB +
	       (int)((ns >> (e - HIST_SUB_SHIFT)) & (HIST_SUB - 1));
}

int64_t hist_bucket_le(int i)
{
	int e, k;

	if (i <= 0) {
		return ((int64_t)1 << HIST_MIN_SHIFT) - 1;
	}
	if (i >= HIST_LAST) {
		return INT64_MAX;
	}
	e = HIST_MIN_SHIFT + (i - 1) / HIST_SUB;
	k = (i - 1) % HIST_SUB;
	return ((int64_t)1 << e) + ((int64_t)(k + 1) << (e - HIST_SUB_SHIFT)) - 1;
}

/* 128-bit two's complement add: the high word gets the sign extension and the carry. */
static void sum_add(int64_t *hi, uint64_t *lo, int64_t add_hi, uint64_t add_lo)
{
	uint64_t l = *lo + add_lo;

	*hi = (int64_t)((uint64_t)*hi + (uint64_t)add_hi + (l < add_lo));
	*lo = l;
}

void hist_add(struct hist *h, int64_t ns)
{
	if (h->count == 0 || ns < h->min) {
		h->min = ns;
	}
	if (h->count == 0 || ns > h->max) {
		h->max = ns;
	}
	h->count++;
	sum_add(&h->sum_hi, &h->sum_lo, ns < 0 ? -1 : 0, (uint64_t)ns);
	if (ns < 0) {
		h->below++;
	} else {
		h->bucket[hist_bucket(ns)]++;
	}
}

/* hi:lo / d for hi < d (so the quotient fits 64 bits): shift and subtract. */
static uint64_t udiv128(uint64_t hi, uint64_t lo, uint64_t d)
{
	uint64_t q = 0;

	for (int i = 0; i < 64; i++) {
		uint64_t top = hi >> 63;

		hi = hi << 1 | lo >> 63;
		lo <<= 1;
		q <<= 1;
		/* top set: the 65-bit remainder exceeds d; the subtraction wraps right. */
		if (top || hi >= d) {
			hi -= d;
			q |= 1;
		}
	}
	return q;
}

int64_t hist_mean(const struct hist *h)
{
	uint64_t hi = (uint64_t)h->sum_hi, lo = h->sum_lo, q;
	bool neg = h->sum_hi < 0;

	if (h->count == 0) {
		return 0;
	}
	if (neg) {
		hi = ~hi + (lo == 0);
		lo = -lo;
	}
	/* |sum| <= count * 2^63, so |mean| <= 2^63 and hi < count. */
	q = udiv128(hi, lo, h->count);
	if (neg) {
		return q >= (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)q;
	}
	return q > INT64_MAX ? INT64_MAX : (int64_t)q;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen;
	double r;

	if (h->count == 0) {
		return 0;
	}
	if (!(q > 0)) {
		return h->min;
	}
	/*
	 * The ceil(q n)-th smallest value, 1-based (ceil by hand: no libm in the
	 * core). A few ulps off first: 0.28 * 25 is 7.000000000000001 in doubles.
	 */
	r = q * (double)h->count;
	r -= r * 0x1p-50;
	if (r >= (double)h->count) {
		rank = h->count;
	} else {
		rank = (uint64_t)r;
		rank += (double)rank < r || rank == 0;
	}
	if (rank == h->count) {
		return h->max;
	}
	if (rank <= h->below) {
		return h->min;
	}
	seen = h->below;
	for (int i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			return clamp(hist_bucket_le(i), h->min, h->max);
		}
	}
	return h->max; /* not reached while count is the sum of below and the buckets */
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0) {
		return;
	}
	if (dst->count == 0 || src->min < dst->min) {
		dst->min = src->min;
	}
	if (dst->count == 0 || src->max > dst->max) {
		dst->max = src->max;
	}
	dst->count += src->count;
	dst->below += src->below;
	sum_add(&dst->sum_hi, &dst->sum_lo, src->sum_hi, src->sum_lo);
	for (int i = 0; i < HIST_NBUCKETS; i++) {
		dst->bucket[i] += src->bucket[i];
	}
}

void hist_json(const struct hist *h, struct jw *w, const char *name)
{
	static const struct {
		const char *key;
		double q;
	} qs[] = {{"p50_ns", 0.5}, {"p90_ns", 0.9}, {"p99_ns", 0.99}, {"p999_ns", 0.999}};
	bool empty = h->count == 0;

	jw_obj_begin(w, name);
	jw_u64(w, "count", h->count);
	jw_u64(w, "below_zero", h->below);
	jw_i64(w, "min_ns", empty ? 0 : h->min);
	jw_i64(w, "max_ns", empty ? 0 : h->max);
	jw_i64(w, "mean_ns", hist_mean(h));
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		jw_i64(w, qs[i].key, hist_quantile(h, qs[i].q));
	}
	jw_arr_begin(w, "buckets");
	for (int i = 0; i < HIST_NBUCKETS; i++) {
		if (h->bucket[i] == 0) {
			continue;
		}
		jw_obj_begin(w, NULL);
		jw_i64(w, "le_ns", hist_bucket_le(i));
		jw_u64(w, "count", h->bucket[i]);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

void jitter_init(struct jitter *j)
{
	memset(j, 0, sizeof(*j));
	hist_init(&j->d);
}

void jitter_add(struct jitter *j, int64_t transit_ns)
{
	uint64_t d;
	int64_t dc;

	if (!j->have_last) {
		j->have_last = true;
		j->last = transit_ns;
		return;
	}
	/* |D| in unsigned: the difference of two int64 can need 64 bits. */
	d = transit_ns >= j->last ? (uint64_t)transit_ns - (uint64_t)j->last
	                          : (uint64_t)j->last - (uint64_t)transit_ns;
	j->last = transit_ns;
	hist_add(&j->d, d > INT64_MAX ? INT64_MAX : (int64_t)d);
	/* RFC 3550 A.8: jitter += d - ((jitter + 8) >> 4). J stays <= 16 JITTER_DMAX. */
	dc = d > (uint64_t)JITTER_DMAX ? JITTER_DMAX : (int64_t)d;
	j->j_q4 += dc - ((j->j_q4 + 8) >> 4);
}

int64_t jitter_value(const struct jitter *j)
{
	return j->j_q4 >> 4;
}

void jitter_json(const struct jitter *j, struct jw *w, const char *name)
{
	jw_obj_begin(w, name);
	jw_i64(w, "rfc3550_ns", jitter_value(j));
	hist_json(&j->d, w, "delta");
	jw_obj_end(w);
}
