/*
 * Fixed-size log-linear histograms of signed nanosecond values (one-way
 * latency, jitter, delivery-time error), and RFC 3550 jitter.
 *
 * No allocation, O(1) add, fixed size: made to sit in a virtqueue's state on
 * the data path. Not thread-safe; one writer, readers on the same thread.
 *
 * Buckets (binary, 1024-based):
 *   bucket 0                      [0, 1023]
 *   for each e in 10..HIST_MAX_SHIFT-1, HIST_SUB linear sub-buckets of width
 *   2^e / HIST_SUB:               [2^e + k 2^e/4, 2^e + (k+1) 2^e/4 - 1], k = 0..3
 *   bucket HIST_NBUCKETS-1        [2^HIST_MAX_SHIFT, INT64_MAX] (2^36 ns = 68.7 s)
 * Negative values are counted in `below` (and in min, max, the mean), in no
 * bucket.
 *
 * Error bound: a quantile is reported as the inclusive upper bound of the
 * bucket holding the true value (the sample of rank ceil(q count)), clamped to
 * [min, max]; it is never below the true value, and above it by less than 25%
 * of it (a bucket's width is at most a quarter of its lower bound) for values
 * in [1024, 2^36) ns, by less than 1024 ns in bucket 0. Quantiles that fall
 * among the negatives, or in the last bucket, are not bounded by a bucket:
 * they are min, respectively max. The top rank (q = 1) is max, exactly.
 */
#ifndef VB_HIST_H
#define VB_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/jw.h"

#define HIST_SUB       4  /* sub-buckets per power of two */
#define HIST_SUB_SHIFT 2  /* log2(HIST_SUB) */
#define HIST_MIN_SHIFT 10 /* bucket 0 is [0, 2^10) */
#define HIST_MAX_SHIFT 36 /* the last bucket is [2^36, INT64_MAX] */
#define HIST_NBUCKETS  (2 + (HIST_MAX_SHIFT - HIST_MIN_SHIFT) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t below;   /* values < 0 */
	int64_t min, max; /* exact, over all values (valid when count > 0) */
	/* The exact sum of all values, a 128-bit two's complement integer
	 * sum_hi:sum_lo: it cannot overflow (2^64 values of at most 2^63). */
	int64_t sum_hi;
	uint64_t sum_lo;
	/* 64-bit: a 32-bit counter would wrap after 2^32 samples in one bucket,
	 * about 12 hours at 100k packets/s. */
	uint64_t bucket[HIST_NBUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, int64_t ns);
/* The value at quantile q (0 < q <= 1): the upper bound of the bucket holding
 * it, clamped to [min, max]; min when it falls among the negatives (but max
 * for the top rank); 0 when empty. q <= 0 (or NaN) gives min, q > 1 max. */
int64_t hist_quantile(const struct hist *h, double q);
/* Exact mean, truncated toward zero; 0 when empty. */
int64_t hist_mean(const struct hist *h);
/* Adds src's values to dst, as if each had been hist_add()ed to it. */
void hist_merge(struct hist *dst, const struct hist *src);
/*
 * Writes the histogram as the object member `name` (a bare object when name is
 * NULL):
 *   {"count":N,"below_zero":N,"min_ns":..,"max_ns":..,"mean_ns":..,"p50_ns":..,
 *    "p90_ns":..,"p99_ns":..,"p999_ns":..,"buckets":[{"le_ns":UPPER,"count":C},..]}
 * with only the non-empty buckets, ascending; le_ns is the bucket's inclusive
 * upper bound (Prometheus's "le"), 9223372036854775807 for the last one.
 * min/max/mean/quantiles are 0 when empty.
 */
void hist_json(const struct hist *h, struct jw *w, const char *name);

/* The bucket of value ns, -1 for a negative value. */
int hist_bucket(int64_t ns);
/* The inclusive upper bound of bucket i (0 <= i < HIST_NBUCKETS). */
int64_t hist_bucket_le(int i);

/*
 * Jitter of a stream of transit times as RFC 3550 6.4.1 defines it:
 * J += (|D| - J) / 16, D the difference of consecutive transit times, kept
 * in integers scaled by 16 as in the RFC's sample code (A.8). The first
 * transit only sets `last`. |D| is clamped to 2^58 ns for the estimator so J
 * cannot overflow.
 */
struct jitter {
	bool have_last;
	int64_t last;  /* last transit (latency) */
	int64_t j_q4;  /* J scaled by 16 */
	struct hist d; /* |transit_i - transit_{i-1}| */
};

void jitter_init(struct jitter *j);
void jitter_add(struct jitter *j, int64_t transit_ns);
/* J in ns (j_q4 >> 4, as the RFC reports it). */
int64_t jitter_value(const struct jitter *j);
/* {"rfc3550_ns":J,"delta":{hist of |D|}} as member `name`, bare when NULL. */
void jitter_json(const struct jitter *j, struct jw *w, const char *name);

#endif
