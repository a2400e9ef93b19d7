/* Small shared helpers: size parsing, byte order, the JSON writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "bridge/jw.h"
#include "bridge/util.h"

static void test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t want;
	} rows[] = {
	    {"0", 0, 0},
	    {"65536", 0, 65536},
	    {"4k", 0, 4096},
	    {"4K", 0, 4096},
	    {"16M", 0, 16u << 20},
	    {"16MiB", 0, 16u << 20},
	    {"1G", 0, 1u << 30},
	    {"010M", 0, 10u << 20}, /* decimal, not octal */
	    {"", -EINVAL, 0},
	    {" 1", -EINVAL, 0},
	    {"-1", -EINVAL, 0},
	    {"+1", -EINVAL, 0},
	    {"0x10", -EINVAL, 0},
	    {"12Q", -EINVAL, 0},
	    {"1MM", -EINVAL, 0},
	    {"99999999999999999999", -EINVAL, 0},
	    {"17179869184G", -ERANGE, 0},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t v = 12345;
		int rc = vb_parse_size(rows[i].in, &v);

		if (rc != rows[i].rc) {
			fail_msg("'%s': rc %d, want %d", rows[i].in, rc, rows[i].rc);
		}
		if (rc == 0 && v != rows[i].want) {
			fail_msg("'%s': %llu, want %llu", rows[i].in, (unsigned long long)v,
			         (unsigned long long)rows[i].want);
		}
	}
	assert_int_equal(vb_parse_size(NULL, &(uint64_t){0}), -EINVAL);
}

static void test_byte_order(void **state)
{
	uint8_t b[8];

	put_le64(b, 0x0102030405060708ull);
	assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	assert_int_equal(get_le64(b), 0x0102030405060708ull);
	put_le32(b, 0xa1b2c3d4u);
	assert_memory_equal(b, "\xd4\xc3\xb2\xa1", 4);
	assert_int_equal(get_le32(b), 0xa1b2c3d4u);
	put_le16(b, 0xbeef);
	assert_int_equal(get_le16(b), 0xbeef);
	assert_int_equal(b[0], 0xef);
}

static void test_json_writer(void **state)
{
	struct jw w;

	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "name", "a\"b\\c\n\x01");
	jw_u64(&w, "n", 18446744073709551615ull);
	jw_i64(&w, "neg", -5);
	jw_bool(&w, "t", true);
	jw_hex(&w, "f", 0x1000000046ull);
	jw_str(&w, "null", NULL);
	jw_arr_begin(&w, "list");
	jw_u64(&w, NULL, 1);
	jw_obj_begin(&w, NULL);
	jw_obj_end(&w);
	jw_arr_begin(&w, NULL);
	jw_arr_end(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_raw(&w, "\n", 1);
	assert_false(w.failed);
	assert_string_equal(w.buf,
	                    "{\"name\":\"a\\\"b\\\\c\\u000a\\u0001\",\"n\":18446744073709551615,"
	                    "\"neg\":-5,\"t\":true,\"f\":\"0x1000000046\",\"null\":null,"
	                    "\"list\":[1,{},[]]}\n");
	jw_free(&w);

	/* Nesting deeper than the writer allows fails cleanly. */
	jw_init(&w);
	for (int i = 0; i < JW_MAX_DEPTH + 2; i++) {
		jw_arr_begin(&w, NULL);
	}
	assert_true(w.failed);
	jw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_byte_order),
	    cmocka_unit_test(test_json_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
