/* A small JSON writer for status output (control socket). */
#ifndef VB_JW_H
#define VB_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 16

struct jw {
	char *buf;
	size_t len, cap;
	int depth;
	bool comma[JW_MAX_DEPTH];
	bool failed; /* allocation failure or nesting too deep */
};

void jw_init(struct jw *w);
void jw_free(struct jw *w);
/* key is NULL inside arrays and at top level. */
void jw_obj_begin(struct jw *w, const char *key);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w, const char *key);
void jw_arr_end(struct jw *w);
void jw_str(struct jw *w, const char *key, const char *val);
void jw_u64(struct jw *w, const char *key, uint64_t v);
void jw_i64(struct jw *w, const char *key, int64_t v);
void jw_bool(struct jw *w, const char *key, bool v);
/* Appends bytes verbatim (e.g. the newline that ends a document). */
void jw_raw(struct jw *w, const char *s, size_t n);
/* "0x..." string, for feature bits. */
void jw_hex(struct jw *w, const char *key, uint64_t v);

#endif
