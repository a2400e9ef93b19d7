#include "bridge/jw.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

void jw_free(struct jw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static void jw_put(struct jw *w, const char *s, size_t n)
{
	if (w->failed) {
		return;
	}
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 1024;
		char *nb;

		while (w->len + n + 1 > cap) {
			cap *= 2;
		}
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->failed = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

void jw_raw(struct jw *w, const char *s, size_t n)
{
	jw_put(w, s, n);
}

static void jw_printf(struct jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jw_printf(struct jw *w, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0) {
		jw_put(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
	}
}

static void jw_escaped(struct jw *w, const char *s)
{
	jw_put(w, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			jw_put(w, "\\", 1);
			jw_put(w, s, 1);
		} else if (c < 0x20) {
			jw_printf(w, "\\u%04x", c);
		} else {
			jw_put(w, s, 1);
		}
	}
	jw_put(w, "\"", 1);
}

static void jw_key(struct jw *w, const char *key)
{
	if (w->comma[w->depth]) {
		jw_put(w, ",", 1);
	}
	w->comma[w->depth] = true;
	if (key) {
		jw_escaped(w, key);
		jw_put(w, ":", 1);
	}
}

static void jw_open(struct jw *w, const char *key, const char *brace)
{
	jw_key(w, key);
	jw_put(w, brace, 1);
	if (w->depth + 1 >= JW_MAX_DEPTH) {
		w->failed = true;
		return;
	}
	w->comma[++w->depth] = false;
}

static void jw_close(struct jw *w, const char *brace)
{
	if (w->depth > 0) {
		w->depth--;
	}
	jw_put(w, brace, 1);
}

void jw_obj_begin(struct jw *w, const char *key)
{
	jw_open(w, key, "{");
}

void jw_obj_end(struct jw *w)
{
	jw_close(w, "}");
}

void jw_arr_begin(struct jw *w, const char *key)
{
	jw_open(w, key, "[");
}

void jw_arr_end(struct jw *w)
{
	jw_close(w, "]");
}

void jw_str(struct jw *w, const char *key, const char *val)
{
	jw_key(w, key);
	if (val) {
		jw_escaped(w, val);
	} else {
		jw_put(w, "null", 4);
	}
}

void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	jw_printf(w, "%" PRIu64, v);
}

void jw_i64(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_printf(w, "%" PRId64, v);
}

void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_hex(struct jw *w, const char *key, uint64_t v)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "0x%" PRIx64, v);
	jw_str(w, key, tmp);
}
