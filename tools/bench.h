/*
 * Shared by the benchmark tools (vblk-bench, tcp-bench, pkt-bench): a latency
 * histogram that needs no allocation per sample, the one output format they
 * print (a human line, or with --json one JSON object) so tests/e2e/bench.sh
 * and bench_tsn.sh compare like with like, their option tables, and the
 * little-endian fields of the baselines' own wire formats. Header-only:
 * tcp-bench and pkt-bench link nothing of vbcore.
 */
#ifndef VB_TOOLS_BENCH_H
#define VB_TOOLS_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Log-linear buckets (the HdrHistogram idea): values below 2^BH_SUB_BITS are
 * exact, above that each power of two is cut into 2^BH_SUB_BITS buckets, so
 * a reported percentile is within 1/128 of the true value whatever the
 * number of samples, in a fixed 30 KiB.
 */
#define BH_SUB_BITS 6u
#define BH_SUB      (1u << BH_SUB_BITS)
#define BH_BUCKETS  ((64u - BH_SUB_BITS + 1u) * BH_SUB)

struct bench_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min, max;
	uint64_t b[BH_BUCKETS];
};

/* "PROG: message" on stderr, exit 1: for the tools' start-up and broken peers. */
static inline void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static inline void bench_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline void bench_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static inline uint32_t bench_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void bench_put_le64(uint8_t *p, uint64_t v)
{
	bench_put_le32(p, (uint32_t)v);
	bench_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t bench_get_le64(const uint8_t *p)
{
	return (uint64_t)bench_get_le32(p) | (uint64_t)bench_get_le32(p + 4) << 32;
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static inline unsigned bench_hist_bucket(uint64_t v)
{
	unsigned msb, shift;

	if (v < BH_SUB) {
		return (unsigned)v;
	}
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - BH_SUB_BITS;
	return (shift + 1u) * BH_SUB + (unsigned)((v >> shift) - BH_SUB);
}

/* The middle of bucket i: the value a percentile falling into it reports. */
static inline uint64_t bench_hist_value(unsigned i)
{
	unsigned shift;
	uint64_t low;

	if (i < 2u * BH_SUB) {
		return i;
	}
	shift = i / BH_SUB - 1u;
	low = (uint64_t)(i % BH_SUB + BH_SUB) << shift;
	return low + ((1ull << shift) - 1u) / 2u;
}

static inline void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->b[bench_hist_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min) {
		h->min = v;
	}
	if (v > h->max) {
		h->max = v;
	}
}

/* Percentile p (0..1] by nearest rank, clamped to the exact min and max seen. */
static inline uint64_t bench_hist_pct(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0, v;

	if (h->count == 0) {
		return 0;
	}
	rank = (uint64_t)(p * (double)h->count + 0.999999);
	if (rank == 0) {
		rank = 1;
	}
	for (unsigned i = 0; i < BH_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = bench_hist_value(i);
			return v < h->min ? h->min : v > h->max ? h->max : v;
		}
	}
	return h->max;
}

struct bench_result {
	const char *tool; /* "vblk", "tcp" or "pkt" */
	const char *mode; /* randread, pingpong, stream, ... */
	uint64_t size;    /* bytes per request (stream: per write) */
	unsigned depth;   /* requests in flight (per queue for vblk) */
	unsigned queues;
	uint64_t requests;
	uint64_t bytes; /* payload moved in the measured interval */
	double seconds;
	bool has_latency;
	const struct bench_hist *lat;
	bool has_lost;
	uint64_t lost; /* pkt-bench: frames or round trips that never arrived */
};

static inline double bench_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static inline void bench_print_human(FILE *out, const struct bench_result *r)
{
	double s = r->seconds > 0 ? r->seconds : 1e-9;

	fprintf(out,
	        "%s %s size %" PRIu64 " QD%u x%uq: %" PRIu64
	        " req in %.2f s, %.1f MiB/s, %.0f IOPS",
	        r->tool, r->mode, r->size, r->depth, r->queues, r->requests, r->seconds,
	        (double)r->bytes / s / 1048576.0, (double)r->requests / s);
	if (r->has_latency) {
		fprintf(out, ", lat p50 %.1f us p99 %.1f us (min %.1f, mean %.1f, max %.1f)",
		        bench_us(bench_hist_pct(r->lat, 0.50)),
		        bench_us(bench_hist_pct(r->lat, 0.99)),
		        bench_us(r->lat->count ? r->lat->min : 0),
		        bench_us(r->lat->count ? r->lat->sum / r->lat->count : 0),
		        bench_us(r->lat->max));
	}
	if (r->has_lost) {
		fprintf(out, ", lost %" PRIu64, r->lost);
	}
	fputc('\n', out);
}

static inline void bench_print_json(FILE *out, const struct bench_result *r)
{
	double s = r->seconds > 0 ? r->seconds : 1e-9;

	fprintf(out,
	        "{\"tool\":\"%s\",\"mode\":\"%s\",\"size\":%" PRIu64 ",\"depth\":%u,\"queues\":%u,"
	        "\"requests\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"mib_s\":%.3f,"
	        "\"iops\":%.1f",
	        r->tool, r->mode, r->size, r->depth, r->queues, r->requests, r->bytes, r->seconds,
	        (double)r->bytes / s / 1048576.0, (double)r->requests / s);
	if (r->has_latency) {
		fprintf(out, ",\"p50_us\":%.3f,\"p99_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f",
		        bench_us(bench_hist_pct(r->lat, 0.50)),
		        bench_us(bench_hist_pct(r->lat, 0.99)),
		        bench_us(r->lat->count ? r->lat->min : 0), bench_us(r->lat->max));
	} else {
		fprintf(out, ",\"p50_us\":null,\"p99_us\":null");
	}
	if (r->has_lost) {
		fprintf(out, ",\"lost\":%" PRIu64, r->lost);
	}
	fprintf(out, "}\n");
}

static inline void bench_print(FILE *out, const struct bench_result *r, bool json)
{
	if (json) {
		bench_print_json(out, r);
	} else {
		bench_print_human(out, r);
	}
	fflush(out);
}

/* ---- options: one table entry per long option ---- */

enum bench_opt_kind {
	BO_FLAG,    /* bool */
	BO_STR,     /* const char * */
	BO_NUM,     /* uint64_t, k/M/G suffixes (binary), within lo..hi */
	BO_SECONDS, /* double, > 0 */
};

struct bench_opt {
	const char *name;
	enum bench_opt_kind kind;
	size_t off; /* of the field in the tool's option struct */
	uint64_t lo, hi;
	const char *help; /* "ARG  text", or "text" for a flag */
};

#define BENCH_MAX_OPTS 32

/* "65536", "64k", "1M", "0x10": -EINVAL on junk, -ERANGE on overflow. */
static inline int bench_parse_num(const char *s, uint64_t *out)
{
	static const char suffix[] = "kmg";
	unsigned long long v;
	const char *k;
	unsigned shift = 0;
	char *end;

	if (!*s || *s == '-') {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s) {
		return -EINVAL;
	}
	if (*end && (k = strchr(suffix, *end | 0x20)) != NULL) {
		shift = 10u * (unsigned)(k - suffix + 1);
		end++;
	}
	if (*end) {
		return -EINVAL;
	}
	if (v > (UINT64_MAX >> shift)) {
		return -ERANGE;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

static inline void bench_usage(FILE *out, const char *synopsis, const struct bench_opt *t, size_t n)
{
	fprintf(out, "%s", synopsis);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "  --%-14s %s\n", t[i].name, t[i].help);
	}
	fprintf(out, "  --%-14s %s\n", "help", "         this text");
}

/* 0, or -1 with the reason printed. */
static inline int bench_opt_set(const struct bench_opt *d, const char *arg, void *o)
{
	char *p = (char *)o + d->off, *end;
	uint64_t v;
	double x;

	switch (d->kind) {
	case BO_FLAG:
		*(bool *)p = true;
		return 0;
	case BO_STR:
		*(const char **)p = arg;
		return 0;
	case BO_NUM:
		if (bench_parse_num(arg, &v) < 0 || v < d->lo || v > d->hi) {
			fprintf(stderr, "--%s %s: want %" PRIu64 "..%" PRIu64 "\n", d->name, arg,
			        d->lo, d->hi);
			return -1;
		}
		*(uint64_t *)p = v;
		return 0;
	case BO_SECONDS:
		x = strtod(arg, &end);
		if (*end || !(x > 0 && x < 1e6)) {
			fprintf(stderr, "--%s %s: want a positive number of seconds\n", d->name,
			        arg);
			return -1;
		}
		*(double *)p = x;
		return 0;
	}
	return -1;
}

/*
 * getopt_long over the table from argv[optind]; --help prints the usage and
 * exits 0, a bad option or value exits 2. Leaves optind at the first operand.
 */
/*
 * The subcommand argv[1] names: its index among the n entries of cmds, each
 * size bytes with the name (const char *) first. "--help" prints the usage
 * and exits 0; a missing or unknown one exits 2. Leaves optind at 2.
 */
static inline size_t bench_pick_cmd(int argc, char **argv, const char *prog, const char *synopsis,
                                    const void *cmds, size_t n, size_t size,
                                    const struct bench_opt *t, size_t nopts)
{
	if (argc < 2) {
		fprintf(stderr, "%s", synopsis);
		exit(2);
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], *(const char *const *)((const char *)cmds + i * size)) == 0) {
			optind = 2;
			return i;
		}
	}
	if (strcmp(argv[1], "--help") == 0) {
		bench_usage(stdout, synopsis, t, nopts);
		exit(0);
	}
	fprintf(stderr, "%s: %s: not a command\n%s", prog, argv[1], synopsis);
	exit(2);
}

static inline void bench_getopt(int argc, char **argv, const char *synopsis,
                                const struct bench_opt *t, size_t n, void *o)
{
	struct option lo[BENCH_MAX_OPTS + 2] = {{0}};
	int c;

	if (n > BENCH_MAX_OPTS) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		lo[i] = (struct option){t[i].name,
		                        t[i].kind == BO_FLAG ? no_argument : required_argument,
		                        NULL, (int)i};
	}
	lo[n] = (struct option){"help", no_argument, NULL, 'h' + 1000};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'h' + 1000) {
			bench_usage(stdout, synopsis, t, n);
			exit(0);
		}
		if (c < 0 || (size_t)c >= n || bench_opt_set(&t[c], optarg, o) < 0) {
			fprintf(stderr, "%s(--help lists the options)\n", synopsis);
			exit(2);
		}
	}
}

#endif
