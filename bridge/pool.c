#include "bridge/pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

static bool pool_bit(const struct pool *p, size_t i)
{
	return (p->bits[i / 64] >> (i % 64)) & 1;
}

static void pool_mark(struct pool *p, size_t first, size_t n, bool on)
{
	for (size_t i = first; i < first + n; i++) {
		if (on) {
			p->bits[i / 64] |= 1ull << (i % 64);
		} else {
			p->bits[i / 64] &= ~(1ull << (i % 64));
		}
	}
}

int pool_init(struct pool *p, size_t size)
{
	p->nchunks = size / POOL_CHUNK;
	p->cursor = 0;
	p->used = 0;
	p->bits = calloc((p->nchunks + 63) / 64 + 1, sizeof(uint64_t));
	return p->bits ? 0 : -ENOMEM;
}

void pool_fini(struct pool *p)
{
	free(p->bits);
	p->bits = NULL;
	p->nchunks = 0;
}

/* First fit from start to end; returns the first chunk or SIZE_MAX. */
static size_t pool_scan(const struct pool *p, size_t start, size_t end, size_t n)
{
	size_t run = 0;

	for (size_t i = start; i < end; i++) {
		if (pool_bit(p, i)) {
			run = 0;
			continue;
		}
		if (++run == n) {
			return i + 1 - n;
		}
	}
	return SIZE_MAX;
}

int64_t pool_alloc(struct pool *p, size_t len)
{
	size_t n = (len + POOL_CHUNK - 1) / POOL_CHUNK;
	size_t at;

	if (len == 0 || n > p->nchunks - p->used) {
		return -1;
	}
	at = pool_scan(p, p->cursor, p->nchunks, n);
	if (at == SIZE_MAX) {
		at = pool_scan(p, 0, p->nchunks, n);
	}
	if (at == SIZE_MAX) {
		return -1;
	}
	pool_mark(p, at, n, true);
	p->used += n;
	p->cursor = at + n < p->nchunks ? at + n : 0;
	return (int64_t)(at * POOL_CHUNK);
}

void pool_free(struct pool *p, int64_t off, size_t len)
{
	size_t n = (len + POOL_CHUNK - 1) / POOL_CHUNK;

	if (off < 0 || len == 0) {
		return;
	}
	pool_mark(p, (size_t)off / POOL_CHUNK, n, false);
	p->used -= n;
}

size_t pool_used_bytes(const struct pool *p)
{
	return p->used * POOL_CHUNK;
}
