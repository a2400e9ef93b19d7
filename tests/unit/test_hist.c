/* Latency histograms: bucket boundaries, quantiles against a sorted array, merge, JSON, jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bridge/hist.h"
#include "bridge/jw.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define P2(e)    ((int64_t)1 << (e))

static void test_bucket_boundaries(void **state)
{
	static const struct {
		int64_t ns;
		int bucket;
		int64_t le;
	} rows[] = {
	    {INT64_MIN, -1, 0},
	    {-1, -1, 0},
	    {0, 0, 1023},
	    {1, 0, 1023},
	    {999, 0, 1023},
	    {1000, 0, 1023},
	    {1023, 0, 1023},
	    {1024, 1, 1279},
	    {1279, 1, 1279},
	    {1280, 2, 1535},
	    {1535, 2, 1535},
	    {1536, 3, 1791},
	    {1792, 4, 2047},
	    {2047, 4, 2047},
	    {2048, 5, 2559},
	    {2049, 5, 2559},
	    {2560, 6, 3071},
	    {4095, 8, 4095},
	    {4096, 9, 5119},
	    {1000000, 40, 1048575}, /* 1 ms: 2^19 + 3 * 2^17 .. 2^20 - 1 */
	    {P2(36) - 1, HIST_NBUCKETS - 2, P2(36) - 1},
	    {P2(36), HIST_NBUCKETS - 1, INT64_MAX},
	    {P2(36) + 1, HIST_NBUCKETS - 1, INT64_MAX},
	    {INT64_MAX, HIST_NBUCKETS - 1, INT64_MAX},
	};

	assert_int_equal(HIST_NBUCKETS, 106);
	for (size_t i = 0; i < NELEM(rows); i++) {
		int b = hist_bucket(rows[i].ns);

		if (b != rows[i].bucket) {
			fail_msg("%" PRId64 ": bucket %d, want %d", rows[i].ns, b, rows[i].bucket);
		}
		if (b >= 0 && hist_bucket_le(b) != rows[i].le) {
			fail_msg("%" PRId64 ": le %" PRId64 ", want %" PRId64, rows[i].ns,
			         hist_bucket_le(b), rows[i].le);
		}
	}
	/* Each power of two and its neighbours. */
	for (int e = HIST_MIN_SHIFT; e < HIST_MAX_SHIFT; e++) {
		int first = 1 + (e - HIST_MIN_SHIFT) * HIST_SUB;

		assert_int_equal(hist_bucket(P2(e) - 1), first - 1);
		assert_int_equal(hist_bucket(P2(e)), first);
		assert_int_equal(hist_bucket(P2(e) + 1), first);
		assert_int_equal(hist_bucket_le(first - 1), P2(e) - 1);
		assert_int_equal(hist_bucket_le(first), P2(e) + P2(e - 2) - 1);
	}
	/* Contiguous, ascending, each bucket's width under a quarter of its lower bound. */
	for (int i = 0; i < HIST_NBUCKETS - 1; i++) {
		int64_t le = hist_bucket_le(i);

		assert_int_equal(hist_bucket(le), i);
		assert_int_equal(hist_bucket(le + 1), i + 1);
		if (i > 0) {
			int64_t lo = hist_bucket_le(i - 1) + 1;

			assert_true(4 * (le - lo) < lo);
		}
	}
}

static void test_empty(void **state)
{
	struct hist h, e;
	struct jw w;

	hist_init(&h);
	hist_init(&e);
	assert_int_equal(h.count, 0);
	assert_int_equal(hist_mean(&h), 0);
	assert_int_equal(hist_quantile(&h, 0.5), 0);
	assert_int_equal(hist_quantile(&h, 1.0), 0);
	hist_merge(&h, &e);
	assert_memory_equal(&h, &e, sizeof(h));

	jw_init(&w);
	hist_json(&h, &w, NULL);
	assert_false(w.failed);
	assert_string_equal(w.buf, "{\"count\":0,\"below_zero\":0,\"min_ns\":0,\"max_ns\":0,"
	                           "\"mean_ns\":0,\"p50_ns\":0,\"p90_ns\":0,\"p99_ns\":0,"
	                           "\"p999_ns\":0,\"buckets\":[]}");
	jw_free(&w);
}

static void test_huge(void **state)
{
	struct hist h;

	hist_init(&h);
	hist_add(&h, INT64_MAX);
	hist_add(&h, INT64_MAX);
	hist_add(&h, INT64_MAX);
	assert_int_equal(h.bucket[HIST_NBUCKETS - 1], 3);
	assert_int_equal(hist_mean(&h), INT64_MAX); /* the sum needs 65 bits */
	assert_int_equal(hist_quantile(&h, 0.5), INT64_MAX);
	hist_add(&h, P2(36));
	hist_add(&h, P2(36) - 1);
	assert_int_equal(h.bucket[HIST_NBUCKETS - 1], 4);
	assert_int_equal(h.bucket[HIST_NBUCKETS - 2], 1);
	assert_int_equal(h.min, P2(36) - 1);
	assert_int_equal(hist_quantile(&h, 0.2), P2(36) - 1);
	assert_int_equal(hist_quantile(&h, 0.4), INT64_MAX);  /* the last bucket gives max */
	assert_int_equal(hist_mean(&h), 5534023249600656178); /* (3 (2^63 - 1) + 2^37 - 1) / 5 */
}

static void test_negatives(void **state)
{
	static const struct {
		double q;
		int64_t want;
	} rows[] = {
	    {0.0, -1000}, {0.25, -1000}, {0.5, -1000}, {0.51, 1023}, {0.75, 1023},
	    {0.76, 2000}, {1.0, 2000},   {2.0, 2000},  {-1, -1000},
	};
	struct hist h;

	hist_init(&h);
	hist_add(&h, -5);
	hist_add(&h, 10);
	hist_add(&h, -1000);
	hist_add(&h, 2000);
	assert_int_equal(h.count, 4);
	assert_int_equal(h.below, 2);
	assert_int_equal(h.min, -1000);
	assert_int_equal(h.max, 2000);
	assert_int_equal(h.bucket[0], 1);
	assert_int_equal(h.bucket[hist_bucket(2000)], 1);
	assert_int_equal(hist_mean(&h), 251); /* 1005 / 4 */
	for (size_t i = 0; i < NELEM(rows); i++) {
		int64_t got = hist_quantile(&h, rows[i].q);

		if (got != rows[i].want) {
			fail_msg("q %g: %" PRId64 ", want %" PRId64, rows[i].q, got, rows[i].want);
		}
	}

	/* Negative means truncate toward zero; the extremes do not overflow. */
	hist_init(&h);
	hist_add(&h, -3);
	hist_add(&h, -4);
	assert_int_equal(hist_mean(&h), -3);
	assert_int_equal(hist_quantile(&h, 0.5), -4);
	assert_int_equal(hist_quantile(&h, 1.0), -3); /* the top rank is max, exactly */
	hist_init(&h);
	hist_add(&h, INT64_MIN);
	hist_add(&h, INT64_MIN);
	assert_int_equal(hist_mean(&h), INT64_MIN);
	hist_add(&h, INT64_MAX);
	hist_add(&h, INT64_MAX);
	assert_int_equal(hist_mean(&h), 0); /* -2 / 4 */
	hist_add(&h, INT64_MAX);
	assert_int_equal(hist_mean(&h), 1844674407370955161); /* (2^63 - 3) / 5 */
}

/* ---- random data against a sorted array ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in (0, 1]. */
static double rng_unit(void)
{
	return (double)((rng() >> 11) + 1) / (double)(1ull << 53);
}

/* ln(u) for u in (0, 1], without libm: u = m 2^k, ln m = 2 atanh((m-1)/(m+1)). */
static double ln_unit(double u)
{
	double s, s2, term, sum = 0;
	int k = 0;

	while (u < 0.5) {
		u *= 2;
		k--;
	}
	s = (u - 1) / (u + 1);
	s2 = s * s;
	term = s;
	for (int i = 1; i < 60; i += 2) {
		sum += term / i;
		term *= s2;
	}
	return 2 * sum + k * 0.69314718055994530942;
}

static int64_t gen_uniform(void)
{
	return (int64_t)(rng() % 10000000); /* [0, 10 ms) */
}

static int64_t gen_exponential(void)
{
	return (int64_t)(-100000.0 * ln_unit(rng_unit())); /* mean 100 us */
}

static int64_t gen_bimodal(void)
{
	if (rng() % 10 == 0) {
		return 4000000 + (int64_t)(rng() % 2000000); /* 10%: 4..6 ms */
	}
	return 45000 + (int64_t)(rng() % 10000); /* 90%: 45..55 us */
}

static int64_t gen_log_uniform(void)
{
	return (int64_t)(rng() >> (rng() % 64)); /* 0 .. 2^64: every bucket, the last too */
}

static int64_t gen_offset(void)
{
	/* A latency under a clock offset: about one in four negative. */
	return -3000 + (int64_t)(-10000.0 * ln_unit(rng_unit()));
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Checks every quantile against the sorted array; returns the largest relative error seen. */
static double check_quantiles(const struct hist *h, int64_t *v, size_t n, const char *what)
{
	static const int permille[] = {1,   10,  100, 140, 250, 280, 500,
	                               560, 750, 900, 990, 999, 1000};
	double worst = 0;

	qsort(v, n, sizeof(v[0]), cmp_i64);
	assert_int_equal(h->min, v[0]);
	assert_int_equal(h->max, v[n - 1]);
	for (size_t i = 0; i < NELEM(permille); i++) {
		size_t rank = (permille[i] * n + 999) / 1000; /* ceil(q n), exactly */
		int64_t want = v[rank - 1];
		int64_t got = hist_quantile(h, permille[i] / 1000.0);

		if (got < h->min || got > h->max) {
			fail_msg("%s q %d/1000: %" PRId64 " outside [min, max]", what, permille[i],
			         got);
		}
		if (rank == n || want < 0 || want >= P2(HIST_MAX_SHIFT)) {
			/* exact: the top rank is max; a negative is min; the last bucket max */
			int64_t exact = rank == n ? want : want < 0 ? h->min : h->max;

			if (got != exact) {
				fail_msg("%s q %d/1000: %" PRId64 ", want %" PRId64, what,
				         permille[i], got, exact);
			}
			continue;
		}
		if (got < want || (want < 1024 && got > 1023) ||
		    (want >= 1024 && 4 * (got - want) >= want)) {
			fail_msg("%s q %d/1000: %" PRId64 ", true %" PRId64, what, permille[i], got,
			         want);
		}
		if (want >= 1024 && (double)(got - want) / (double)want > worst) {
			worst = (double)(got - want) / (double)want;
		}
	}
	return worst;
}

static void test_quantile_oracle(void **state)
{
	static const struct {
		const char *name;
		int64_t (*gen)(void);
	} dists[] = {
	    {"uniform", gen_uniform},           {"exponential", gen_exponential},
	    {"bimodal", gen_bimodal},           {"log-uniform", gen_log_uniform},
	    {"offset (negatives)", gen_offset},
	};
	static const size_t sizes[] = {1, 2, 3, 7, 25, 50, 100, 1001, 100000};
	int64_t *v = malloc(100000 * sizeof(*v));

	assert_non_null(v);
	for (size_t d = 0; d < NELEM(dists); d++) {
		double worst = 0;

		for (size_t s = 0; s < NELEM(sizes); s++) {
			struct hist h;
			double e;

			hist_init(&h);
			for (size_t i = 0; i < sizes[s]; i++) {
				v[i] = dists[d].gen();
				hist_add(&h, v[i]);
			}
			assert_int_equal(h.count, sizes[s]);
			e = check_quantiles(&h, v, sizes[s], dists[d].name);
			worst = e > worst ? e : worst;
		}
		print_message("%-20s worst quantile error %.2f%%\n", dists[d].name, 100 * worst);
	}
	free(v);
}

/* One value per bucket, each its bucket's upper bound: the quantile is the exact order statistic.
 */
static void test_quantile_rank(void **state)
{
	for (size_t n = 1; n < HIST_NBUCKETS; n++) {
		struct hist h;

		hist_init(&h);
		for (size_t i = 0; i < n; i++) {
			hist_add(&h, hist_bucket_le((int)i));
		}
		for (int pm = 1; pm <= 1000; pm++) {
			size_t rank = (pm * n + 999) / 1000;
			int64_t got = hist_quantile(&h, pm / 1000.0);

			if (got != hist_bucket_le((int)rank - 1)) {
				fail_msg("n %zu q %d/1000: %" PRId64 ", want rank %zu", n, pm, got,
				         rank);
			}
		}
	}
}

static void test_merge(void **state)
{
	struct hist a, b, all, m;

	hist_init(&a);
	hist_init(&b);
	hist_init(&all);
	for (int i = 0; i < 20000; i++) {
		int64_t x = i % 3 ? gen_offset() : gen_log_uniform();

		hist_add(i % 5 ? &a : &b, x);
		hist_add(&all, x);
	}
	hist_add(&b, INT64_MIN);
	hist_add(&all, INT64_MIN);
	m = a;
	hist_merge(&m, &b);
	assert_memory_equal(&m, &all, sizeof(m));
	m = b;
	hist_merge(&m, &a);
	assert_memory_equal(&m, &all, sizeof(m));
	/* into an empty one, and an empty one into it */
	hist_init(&m);
	hist_merge(&m, &all);
	assert_memory_equal(&m, &all, sizeof(m));
	hist_init(&b);
	hist_merge(&m, &b);
	assert_memory_equal(&m, &all, sizeof(m));
}

/* ---- JSON ---- */

static void test_json_small(void **state)
{
	struct hist h;
	struct jw w;

	hist_init(&h);
	hist_add(&h, 10);
	hist_add(&h, 1500);
	hist_add(&h, -3);
	hist_add(&h, 1500);
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_u64(&w, "queue", 0);
	hist_json(&h, &w, "latency");
	jw_obj_end(&w);
	assert_false(w.failed);
	assert_string_equal(w.buf, "{\"queue\":0,\"latency\":{\"count\":4,\"below_zero\":1,"
	                           "\"min_ns\":-3,\"max_ns\":1500,\"mean_ns\":751,"
	                           "\"p50_ns\":1023,\"p90_ns\":1500,\"p99_ns\":1500,"
	                           "\"p999_ns\":1500,\"buckets\":[{\"le_ns\":1023,\"count\":1},"
	                           "{\"le_ns\":1535,\"count\":2}]}}");
	jw_free(&w);

	hist_init(&h);
	hist_add(&h, INT64_MAX);
	jw_init(&w);
	hist_json(&h, &w, NULL);
	assert_non_null(
	    strstr(w.buf, "\"buckets\":[{\"le_ns\":9223372036854775807,\"count\":1}]}"));
	jw_free(&w);
}

/* Reads `"key":<int64>` after p; returns the text after the number. */
static const char *json_i64(const char *p, const char *key, int64_t *v)
{
	char pat[32];
	int used = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(p, pat);
	assert_non_null(p);
	p += strlen(pat);
	assert_int_equal(sscanf(p, "%" SCNd64 "%n", v, &used), 1);
	return p + used;
}

/* A large histogram's JSON read back: the fields and every bucket, in order. */
static void test_json_parse_back(void **state)
{
	struct hist h;
	struct jw w;
	const char *p;
	int64_t v, le, c, prev_le = -1;
	uint64_t total = 0;
	int nonempty = 0, seen = 0;

	hist_init(&h);
	for (int i = 0; i < 50000; i++) {
		hist_add(&h, i % 2 ? gen_log_uniform() : gen_offset());
	}
	jw_init(&w);
	hist_json(&h, &w, NULL);
	assert_false(w.failed);
	p = w.buf;
	assert_int_equal(*p, '{');
	assert_int_equal(w.buf[w.len - 1], '}');
	p = json_i64(p, "count", &v);
	assert_int_equal(v, h.count);
	p = json_i64(p, "below_zero", &v);
	assert_int_equal(v, h.below);
	p = json_i64(p, "min_ns", &v);
	assert_int_equal(v, h.min);
	p = json_i64(p, "max_ns", &v);
	assert_int_equal(v, h.max);
	p = json_i64(p, "mean_ns", &v);
	assert_int_equal(v, hist_mean(&h));
	p = json_i64(p, "p50_ns", &v);
	assert_int_equal(v, hist_quantile(&h, 0.5));
	p = json_i64(p, "p90_ns", &v);
	assert_int_equal(v, hist_quantile(&h, 0.9));
	p = json_i64(p, "p99_ns", &v);
	assert_int_equal(v, hist_quantile(&h, 0.99));
	p = json_i64(p, "p999_ns", &v);
	assert_int_equal(v, hist_quantile(&h, 0.999));
	p = strstr(p, "\"buckets\":[");
	assert_non_null(p);
	for (int i = 0; i < HIST_NBUCKETS; i++) {
		nonempty += h.bucket[i] != 0;
	}
	while (strstr(p, "\"le_ns\":")) {
		p = json_i64(p, "le_ns", &le);
		p = json_i64(p, "count", &c);
		assert_true(le > prev_le);
		assert_true(c > 0);
		assert_int_equal(hist_bucket_le(hist_bucket(le)), le);
		assert_int_equal(h.bucket[hist_bucket(le)], c);
		prev_le = le;
		total += c;
		seen++;
	}
	assert_string_equal(p, "}]}");
	assert_int_equal(seen, nonempty);
	assert_int_equal(total + h.below, h.count);
	jw_free(&w);
}

/* ---- jitter ---- */

/* RFC 3550 A.8 by hand: J += |D| - ((J + 8) >> 4), J scaled by 16. */
static void test_jitter_rfc3550(void **state)
{
	static const struct {
		int64_t transit;
		int64_t j_q4;
	} rows[] = {
	    {100, 0},   /* first: no D */
	    {120, 20},  /* D 20: 0 + 20 - 0 */
	    {110, 29},  /* D 10: 20 + 10 - (28 >> 4 = 1) */
	    {150, 67},  /* D 40: 29 + 40 - (37 >> 4 = 2) */
	    {150, 63},  /* D 0:  67 + 0 - (75 >> 4 = 4) */
	    {90, 119},  /* D 60: 63 + 60 - (71 >> 4 = 4) */
	    {-10, 212}, /* D 100: 119 + 100 - (127 >> 4 = 7), a negative transit */
	};
	struct jitter j;
	struct jw w;

	jitter_init(&j);
	assert_int_equal(jitter_value(&j), 0);
	for (size_t i = 0; i < NELEM(rows); i++) {
		jitter_add(&j, rows[i].transit);
		if (j.j_q4 != rows[i].j_q4) {
			fail_msg("step %zu: J*16 %" PRId64 ", want %" PRId64, i, j.j_q4,
			         rows[i].j_q4);
		}
	}
	assert_int_equal(jitter_value(&j), 13); /* 212 >> 4; the real-valued J is 13.21 */
	assert_int_equal(j.d.count, 6);
	assert_int_equal(j.d.max, 100);

	jw_init(&w);
	jitter_json(&j, &w, NULL);
	assert_string_equal(w.buf, "{\"rfc3550_ns\":13,\"delta\":{\"count\":6,\"below_zero\":0,"
	                           "\"min_ns\":0,\"max_ns\":100,\"mean_ns\":38,\"p50_ns\":100,"
	                           "\"p90_ns\":100,\"p99_ns\":100,\"p999_ns\":100,"
	                           "\"buckets\":[{\"le_ns\":1023,\"count\":6}]}}");
	jw_free(&w);
}

/* The integer estimator follows the real-valued J = J + (|D| - J) / 16 within a few ns. */
static void test_jitter_float(void **state)
{
	struct jitter j;
	double jf = 0;
	int64_t last = 0;

	jitter_init(&j);
	for (int i = 0; i < 100000; i++) {
		int64_t t = 50000 + (int64_t)(-20000.0 * ln_unit(rng_unit()));
		double d = (double)(i ? (t > last ? t - last : last - t) : 0);

		jitter_add(&j, t);
		if (i) {
			jf += (d - jf) / 16;
		}
		last = t;
		if (jitter_value(&j) > jf + 1 || jitter_value(&j) < jf - 2) {
			fail_msg("step %d: J %" PRId64 ", real-valued %.2f", i, jitter_value(&j),
			         jf);
		}
	}
}

/* Hostile transits: the extremes alternate; nothing overflows, J stays at its clamp. */
static void test_jitter_extremes(void **state)
{
	struct jitter j;

	jitter_init(&j);
	for (int i = 0; i < 1000; i++) {
		jitter_add(&j, i % 2 ? INT64_MAX : INT64_MIN);
		assert_true(j.j_q4 >= 0 && j.j_q4 <= 16 * P2(58));
	}
	assert_true(jitter_value(&j) > P2(58) - P2(54));
	assert_int_equal(j.d.count, 999);
	assert_int_equal(j.d.bucket[HIST_NBUCKETS - 1], 999);
	assert_int_equal(j.d.max, INT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_boundaries),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_huge),
	    cmocka_unit_test(test_negatives),
	    cmocka_unit_test(test_quantile_oracle),
	    cmocka_unit_test(test_quantile_rank),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_json_small),
	    cmocka_unit_test(test_json_parse_back),
	    cmocka_unit_test(test_jitter_rfc3550),
	    cmocka_unit_test(test_jitter_float),
	    cmocka_unit_test(test_jitter_extremes),
	};

	print_message("sizeof(struct hist) = %zu\n", sizeof(struct hist));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
