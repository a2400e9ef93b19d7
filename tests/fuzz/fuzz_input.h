/*
 * Reading a fuzzer input as a stream of little-endian fields. Past the end
 * every read returns 0 and fin() turns true, so a harness loop just stops.
 */
#ifndef VB_FUZZ_INPUT_H
#define VB_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/log.h"

struct fin {
	const uint8_t *p;
	size_t left;
	bool end;
};

static inline void fin_init(struct fin *in, const uint8_t *data, size_t size)
{
	in->p = data;
	in->left = size;
	in->end = false;
}

static inline bool fin_done(const struct fin *in)
{
	return in->end || in->left == 0;
}

/* Copies n bytes out (zeros past the end). */
static inline void fin_bytes(struct fin *in, void *out, size_t n)
{
	size_t k = n < in->left ? n : in->left;

	memcpy(out, in->p, k);
	memset((uint8_t *)out + k, 0, n - k);
	in->p += k;
	in->left -= k;
	if (k < n) {
		in->end = true;
	}
}

static inline uint8_t fin_u8(struct fin *in)
{
	uint8_t v;

	fin_bytes(in, &v, 1);
	return v;
}

static inline uint16_t fin_u16(struct fin *in)
{
	uint8_t b[2];

	fin_bytes(in, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t fin_u32(struct fin *in)
{
	uint8_t b[4];

	fin_bytes(in, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t fin_u64(struct fin *in)
{
	uint64_t lo = fin_u32(in);

	return lo | (uint64_t)fin_u32(in) << 32;
}

/* The stderr we started with: log lines of the code under test may go elsewhere. */
static FILE *fuzz_stderr;

static inline FILE *fuzz_err(void)
{
	return fuzz_stderr ? fuzz_stderr : stderr;
}

/*
 * The modules log every refused peer (bridge/log.h, always on stderr in
 * tests): millions of lines slow a run down and bury libFuzzer's output.
 * Their stderr goes to /dev/null unless VB_FUZZ_LOG=1 (2: debug lines too);
 * libFuzzer and the sanitizers keep writing to fd 2.
 */
static inline int fuzz_log_level(void)
{
	const char *v = getenv("VB_FUZZ_LOG");

	return v ? atoi(v) : 0;
}

static inline void fuzz_quiet_logs(void)
{
	FILE *null;

	log_init(1, fuzz_log_level() > 1, "fuzz");
	if (fuzz_stderr || fuzz_log_level() > 0) {
		return;
	}
	null = fopen("/dev/null", "we");
	if (null) {
		fuzz_stderr = stderr;
		stderr = null;
	}
}

/* A broken promise of the code under test: libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(fuzz_err(), "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
			        #cond);                                                            \
			fflush(fuzz_err());                                                        \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
