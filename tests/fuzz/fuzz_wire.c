/*
 * libFuzzer target for the bridge wire codec (bridge/wire.c).
 *
 * The input is one frame. Whatever wire_decode() accepts, wire_encode() must
 * be able to send again, and decoding that must give the same fields
 * (docs/protocol.md: one set of rules for both directions). A mismatch is a
 * codec bug: abort() so that libFuzzer keeps the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/wire.h"

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	return n == 0 || (a && b && memcmp(a, b, n) == 0);
}

static int eq_hello(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_hello *x = &a->u.hello, *y = &b->u.hello;

	return x->ver_min == y->ver_min && x->ver_max == y->ver_max && x->caps == y->caps &&
	       x->epoch == y->epoch && !strcmp(x->name, y->name);
}

static int eq_attach(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_attach *x = &a->u.attach, *y = &b->u.attach;

	return x->session == y->session && x->received == y->received && !strcmp(x->name, y->name);
}

static int eq_attach_ok(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_attach_ok *x = &a->u.attach_ok, *y = &b->u.attach_ok;

	return x->device_id == y->device_id && x->num_queues == y->num_queues &&
	       x->max_queue_size == y->max_queue_size && x->features == y->features &&
	       x->flags == y->flags && x->session == y->session && x->config_len == y->config_len &&
	       same_bytes(x->config, y->config, x->config_len);
}

static int eq_empty(const struct wire_msg *a, const struct wire_msg *b)
{
	return 1;
}

static int eq_features(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.features.features == b->u.features.features;
}

static int eq_queue(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.queue.index == b->u.queue.index && a->u.queue.size == b->u.queue.size &&
	       a->u.queue.flags == b->u.queue.flags;
}

static int eq_status(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.status.status == b->u.status.status;
}

static int eq_request(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_request *x = &a->u.request, *y = &b->u.request;

	return x->queue == y->queue && x->flags == y->flags && x->wr_len == y->wr_len &&
	       x->id == y->id && x->ack == y->ack && x->t_capture == y->t_capture &&
	       x->t_deadline == y->t_deadline && x->rd_len == y->rd_len &&
	       same_bytes(x->data, y->data, x->rd_len);
}

static int eq_completion(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_completion *x = &a->u.completion, *y = &b->u.completion;

	return x->queue == y->queue && x->status == y->status && x->id == y->id &&
	       x->t_capture == y->t_capture && x->t_done == y->t_done && x->written == y->written &&
	       same_bytes(x->data, y->data, x->written);
}

static int eq_ack(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.ack.ack == b->u.ack.ack;
}

static int eq_config_get(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.config.offset == b->u.config.offset && a->u.config.len == b->u.config.len;
}

static int eq_config_data(const struct wire_msg *a, const struct wire_msg *b)
{
	return eq_config_get(a, b) &&
	       same_bytes(a->u.config.data, b->u.config.data, a->u.config.len);
}

static int eq_ping(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.ping.t_send == b->u.ping.t_send && a->u.ping.t_echo == b->u.ping.t_echo;
}

static int eq_error(const struct wire_msg *a, const struct wire_msg *b)
{
	return a->u.error.code == b->u.error.code && !strcmp(a->u.error.reason, b->u.error.reason);
}

typedef int (*eq_fn)(const struct wire_msg *a, const struct wire_msg *b);

/* Every field of every type: a type without an entry is a harness bug and aborts. */
static const eq_fn eq_by_type[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = eq_hello,
    [WIRE_ATTACH] = eq_attach,
    [WIRE_ATTACH_OK] = eq_attach_ok,
    [WIRE_DETACH] = eq_empty,
    [WIRE_FEATURES] = eq_features,
    [WIRE_QUEUE_START] = eq_queue,
    [WIRE_QUEUE_STOP] = eq_queue,
    [WIRE_RESET] = eq_empty,
    [WIRE_STATUS] = eq_status,
    [WIRE_REQUEST] = eq_request,
    [WIRE_COMPLETION] = eq_completion,
    [WIRE_ACK] = eq_ack,
    [WIRE_CONFIG_GET] = eq_config_get,
    [WIRE_CONFIG] = eq_config_data,
    [WIRE_CONFIG_SET] = eq_config_data,
    [WIRE_CONFIG_CHANGED] = eq_config_data,
    [WIRE_PING] = eq_ping,
    [WIRE_PONG] = eq_ping,
    [WIRE_ERROR] = eq_error,
};

static void mismatch(const char *what, const struct wire_msg *m)
{
	fprintf(stderr, "fuzz_wire: %s (type %s, chan %u, len %u)\n", what, wire_type_name(m->type),
	        m->chan, m->len);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg m1, m2;
	const char *why = NULL;
	uint8_t *out;
	size_t n;

	if (wire_decode(data, size, &m1, &why) < 0) {
		if (!why) {
			mismatch("refused without a reason", &m1);
		}
		return 0;
	}
	if (m1.type >= WIRE_TYPE_MAX || !eq_by_type[m1.type] || m1.len != size) {
		mismatch("decoded an impossible type or length", &m1);
	}
	/* Exactly the frame's size: the encoder must neither need more nor write past it. */
	out = malloc(size);
	if (!out) {
		return 0;
	}
	n = wire_encode(out, size, &m1);
	if (n != size) {
		mismatch("accepted message does not encode to its own length", &m1);
	}
	if (wire_decode(out, n, &m2, &why) < 0) {
		mismatch("re-encoded message is refused", &m1);
	}
	if (m2.type != m1.type || m2.chan != m1.chan || m2.len != m1.len ||
	    !eq_by_type[m1.type](&m1, &m2)) {
		mismatch("re-encoded message decodes to other fields", &m1);
	}
	/* One byte short must be refused, not overrun. */
	if (size > 0 && wire_encode(out, size - 1, &m1) != 0) {
		mismatch("encoder wrote into a buffer too small", &m1);
	}
	free(out);
	return 0;
}
