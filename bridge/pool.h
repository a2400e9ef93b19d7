/*
 * Buffer pool: contiguous runs of fixed-size chunks inside one memory area
 * (the exporter's memfd shared with the device backend). Sized at start, no
 * allocation afterwards.
 */
#ifndef VB_POOL_H
#define VB_POOL_H

#include <stddef.h>
#include <stdint.h>

#define POOL_CHUNK 4096u

struct pool {
	size_t nchunks;
	size_t cursor;  /* next-fit start */
	size_t used;    /* chunks in use */
	uint64_t *bits; /* 1 = in use */
};

/* 0 or -ENOMEM. size is rounded down to whole chunks. */
int pool_init(struct pool *p, size_t size);
void pool_fini(struct pool *p);
/* Offset of a run of len bytes (len > 0), or -1 if no run is free. */
int64_t pool_alloc(struct pool *p, size_t len);
void pool_free(struct pool *p, int64_t off, size_t len);
size_t pool_used_bytes(const struct pool *p);

#endif
