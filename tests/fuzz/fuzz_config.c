/*
 * libFuzzer target for the configuration parser (bridge/config.c).
 *
 * 1. The whole input as an INI file: config_defaults(), config_parse_ini(),
 *    then config_finish() when it parsed.
 * 2. The input split at its first newline: the first part as an --export
 *    spec, the rest as an --import spec (C strings: a NUL ends them early,
 *    as it would on a command line).
 *
 * Besides memory errors, what the parsers promise is checked on success:
 * names valid, strings terminated inside their arrays, sizes in range. A
 * broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/config.h"
#include "bridge/wire.h"
#include "tests/fuzz/fuzz_input.h"

#define CHECK FUZZ_CHECK

static int terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static void check_export(const struct vb_export *e)
{
	CHECK(terminated(e->name, sizeof(e->name)) && wire_name_valid(e->name, strlen(e->name)));
	CHECK(terminated(e->path, sizeof(e->path)) && e->path[0]);
	CHECK(e->kind == VB_EXPORT_VHOST_USER);
	CHECK(e->config_size <= WIRE_CONFIG_MAX);
	CHECK(e->device_id <= 255);
	CHECK(e->nallow <= VB_MAX_ALLOW);
	for (unsigned i = 0; i < e->nallow; i++) {
		CHECK(terminated(e->allow[i], sizeof(e->allow[i])) &&
		      wire_name_valid(e->allow[i], strlen(e->allow[i])));
	}
}

static void check_import(const struct vb_import *im)
{
	CHECK(terminated(im->name, sizeof(im->name)) &&
	      wire_name_valid(im->name, strlen(im->name)));
	CHECK(terminated(im->source, sizeof(im->source)));
	CHECK(!strncmp(im->source, "tcp://", 6) || !strncmp(im->source, "tls://", 6));
	CHECK(terminated(im->socket, sizeof(im->socket)));
}

static void check_config(const struct vb_config *c, int finished)
{
	CHECK(c->nlisten <= VB_MAX_LISTEN && c->nexports <= VB_MAX_EXPORTS &&
	      c->nimports <= VB_MAX_IMPORTS && c->ntls_pins <= VB_MAX_PINS);
	for (unsigned i = 0; i < c->nexports; i++) {
		check_export(&c->exports[i]);
		CHECK(!finished || c->exports[i].pool_size);
	}
	for (unsigned i = 0; i < c->nimports; i++) {
		check_import(&c->imports[i]);
		CHECK(!finished || c->imports[i].socket[0]);
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		CHECK(terminated(c->listen[i], sizeof(c->listen[i])));
	}
	CHECK(terminated(c->node, sizeof(c->node)));
	CHECK(!finished || wire_name_valid(c->node, strlen(c->node)));
	CHECK(terminated(c->runtime_dir, sizeof(c->runtime_dir)) && c->runtime_dir[0] == '/');
	CHECK(terminated(c->control, sizeof(c->control)));
	CHECK(c->max_queue_size >= 1 && c->max_queue_size <= 32768 &&
	      !(c->max_queue_size & (c->max_queue_size - 1)));
}

static void fuzz_ini(const uint8_t *data, size_t size)
{
	static struct vb_config c; /* 40 KB: not on the stack */
	char err[512];
	/* Exactly the input, no terminator: the parser must not read past len. */
	char *text = malloc(size ? size : 1);

	if (!text) {
		return;
	}
	memcpy(text, data, size);
	config_defaults(&c);
	err[0] = '\0';
	if (config_parse_ini(&c, text, size, "fuzz.conf", err, sizeof(err)) < 0) {
		CHECK(err[0] && terminated(err, sizeof(err)));
		free(text);
		return;
	}
	check_config(&c, 0);
	if (config_finish(&c, err, sizeof(err)) == 0) {
		check_config(&c, 1);
	}
	free(text);
}

/* An exact-size, NUL-terminated heap copy of data[0..n) so that ASan sees overreads. */
static char *cstr(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, data, n);
		s[n] = '\0';
	}
	return s;
}

static void fuzz_specs(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n1 = nl ? (size_t)(nl - data) : size;
	char *exp = cstr(data, n1);
	char *imp = nl ? cstr(nl + 1, size - n1 - 1) : NULL;
	struct vb_export e;
	struct vb_import im;
	char err[256];

	if (exp && config_parse_export(exp, &e, err, sizeof(err)) == 0) {
		check_export(&e);
	}
	if (imp && config_parse_import(imp, &im, err, sizeof(err)) == 0) {
		check_import(&im);
	}
	free(exp);
	free(imp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_logs();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* config.c refuses files over 1 MiB before parsing; larger inputs say nothing new. */
	if (size > (1u << 16)) {
		return 0;
	}
	fuzz_ini(data, size);
	fuzz_specs(data, size);
	return 0;
}
