/* Buffer pool: runs of chunks, exhaustion, fragmentation, reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bridge/pool.h"

static void test_alloc_sizes(void **state)
{
	static const struct {
		size_t len;
		int64_t want; /* offset, in a fresh 16-chunk pool after the previous rows */
	} rows[] = {
	    {1, 0},
	    {POOL_CHUNK, 1 * POOL_CHUNK},
	    {POOL_CHUNK + 1, 2 * POOL_CHUNK},
	    {3 * POOL_CHUNK, 4 * POOL_CHUNK},
	    {0, -1}, /* nothing to allocate */
	    {9 * POOL_CHUNK, 7 * POOL_CHUNK},
	    {1, -1}, /* full */
	};
	struct pool p;

	assert_int_equal(pool_init(&p, 16 * POOL_CHUNK + 100), 0);
	assert_int_equal(p.nchunks, 16);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(pool_alloc(&p, rows[i].len), rows[i].want);
	}
	assert_int_equal(pool_used_bytes(&p), 16 * POOL_CHUNK);
	pool_fini(&p);
}

static void test_fragmentation(void **state)
{
	struct pool p;
	int64_t off[8];

	assert_int_equal(pool_init(&p, 8 * POOL_CHUNK), 0);
	for (int i = 0; i < 8; i++) {
		off[i] = pool_alloc(&p, POOL_CHUNK);
		assert_int_equal(off[i], i * POOL_CHUNK);
	}
	/* Free every other chunk: 4 chunks free, but no run of 2. */
	for (int i = 0; i < 8; i += 2) {
		pool_free(&p, off[i], POOL_CHUNK);
	}
	assert_int_equal(pool_used_bytes(&p), 4 * POOL_CHUNK);
	assert_int_equal(pool_alloc(&p, 2 * POOL_CHUNK), -1);
	pool_free(&p, off[1], POOL_CHUNK);
	/* chunks 0..2 are free now: a run of 3 fits, wherever the cursor is */
	assert_int_equal(pool_alloc(&p, 3 * POOL_CHUNK), 0);
	assert_int_equal(pool_used_bytes(&p), 6 * POOL_CHUNK);
	pool_fini(&p);
}

static void test_reuse_many(void **state)
{
	struct pool p;

	assert_int_equal(pool_init(&p, 64 * POOL_CHUNK), 0);
	for (int i = 0; i < 100000; i++) {
		size_t len = (size_t)(i % 7 + 1) * 1000;
		int64_t a = pool_alloc(&p, len);
		int64_t b = pool_alloc(&p, 3 * len);

		assert_true(a >= 0 && b >= 0);
		assert_true(a + (int64_t)len <= b || b + 3 * (int64_t)len <= a);
		pool_free(&p, a, len);
		pool_free(&p, b, 3 * len);
	}
	assert_int_equal(pool_used_bytes(&p), 0);
	pool_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_sizes),
	    cmocka_unit_test(test_fragmentation),
	    cmocka_unit_test(test_reuse_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
