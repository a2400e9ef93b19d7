/*
 * Bridge wire protocol v1 codec. docs/protocol.md is the byte-level
 * description; every layout and check here has a row there.
 *
 * The decoder trusts nothing: the length field must equal the frame, fixed
 * bodies must have their exact size, every count is compared with the bytes
 * that are really there, reserved fields must be zero. The encoder runs the
 * decoder over what it wrote, so we never send what we would refuse.
 */
#include "bridge/wire.h"

#include <errno.h>
#include <string.h>

#include "bridge/util.h"

/* Which channels a message type may use (ARCHITECTURE.md section 4). */
enum wire_chan_rule {
	CHAN_LINK = 1, /* chan 0 only */
	CHAN_DEV = 2,  /* chan != 0 only */
	CHAN_ANY = 3,
};

/* Body sizes of v1 (docs/protocol.md). */
#define HELLO_BODY     16u
#define ATTACH_BODY    24u
#define ATTACH_OK_BODY 32u
#define QUEUE_BODY     8u
#define STATUS_BODY    4u
#define REQ_BODY       (WIRE_REQ_HDR_LEN - WIRE_HDR_LEN)
#define CPL_BODY       (WIRE_CPL_HDR_LEN - WIRE_HDR_LEN)
#define CFG_GET_BODY   8u
#define CFG_DATA_BODY  4u
#define PING_BODY      16u
#define ERROR_BODY     8u

#define WIRE_ATTACH_OK_FLAGS WIRE_ATTACH_F_RESUMED /* every flag bit v1 defines */

#define NO_TAIL SIZE_MAX

typedef int (*wire_dec_fn)(const uint8_t *b, size_t n, struct wire_msg *m, const char **why);
typedef void (*wire_enc_fn)(uint8_t *b, const struct wire_msg *m);
/* Bytes after the fixed body part, or NO_TAIL if the struct cannot be encoded. */
typedef size_t (*wire_tail_fn)(const struct wire_msg *m);

struct wire_desc {
	const char *name;
	uint32_t body; /* fixed body, or its fixed leading part if var */
	uint8_t var;   /* trailing bytes follow the fixed part */
	uint8_t chan;  /* enum wire_chan_rule */
	const char *bad_size;
	wire_dec_fn dec;
	wire_enc_fn enc;
	wire_tail_fn tail;
};

static int fail(const char **why, const char *s, int err)
{
	if (why) {
		*why = s;
	}
	return err;
}

#define BAD(s)     fail(why, (s), -EPROTO)
#define TOO_BIG(s) fail(why, (s), -EMSGSIZE)

static int is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int name_char_ok(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

int wire_name_valid(const char *s, size_t len)
{
	if (!s || len < 1 || len > WIRE_NAME_MAX) {
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		if (!name_char_ok((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* Names end up in logs, socket paths and status JSON: charset checked here, once. */
static int get_name(const uint8_t *p, size_t avail, uint16_t name_len, char *out,
                    const char *const whys[3], const char **why)
{
	if (name_len != avail) {
		return BAD(whys[0]);
	}
	if (name_len > WIRE_NAME_MAX) {
		return TOO_BIG(whys[1]);
	}
	if (!wire_name_valid((const char *)p, name_len)) {
		return BAD(whys[2]);
	}
	memcpy(out, p, name_len);
	out[name_len] = '\0';
	return 0;
}

static size_t name_tail(const char *name)
{
	size_t n = strnlen(name, WIRE_NAME_MAX + 1);

	return n > WIRE_NAME_MAX ? NO_TAIL : n;
}

static void put_hdr(uint8_t *b, uint32_t len, uint8_t type, uint32_t chan)
{
	put_le32(b, len);
	b[4] = WIRE_VERSION;
	b[5] = type;
	put_le16(b + 6, 0);
	put_le32(b + 8, chan);
}

/* HELLO ------------------------------------------------------------------ */

static const char *const hello_name_whys[3] = {
    "HELLO: name_len does not match the message length",
    "HELLO: node name longer than 63 bytes",
    "HELLO: node name empty or not [A-Za-z0-9._-]",
};

static int dec_hello(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_hello *h = &m->u.hello;

	h->ver_min = b[0];
	h->ver_max = b[1];
	h->caps = get_le32(b + 4); /* unknown capability bits are ignored, not refused */
	h->epoch = get_le64(b + 8);
	if (h->ver_min == 0 || h->ver_min > h->ver_max) {
		return BAD("HELLO: version range empty or starting at 0");
	}
	return get_name(b + HELLO_BODY, n - HELLO_BODY, get_le16(b + 2), h->name, hello_name_whys,
	                why);
}

static void enc_hello(uint8_t *b, const struct wire_msg *m)
{
	const struct wire_hello *h = &m->u.hello;
	size_t nl = strlen(h->name);

	b[0] = h->ver_min;
	b[1] = h->ver_max;
	put_le16(b + 2, (uint16_t)nl);
	put_le32(b + 4, h->caps);
	put_le64(b + 8, h->epoch);
	memcpy(b + HELLO_BODY, h->name, nl);
}

static size_t tail_hello(const struct wire_msg *m)
{
	return name_tail(m->u.hello.name);
}

/* ATTACH ----------------------------------------------------------------- */

static const char *const attach_name_whys[3] = {
    "ATTACH: name_len does not match the message length",
    "ATTACH: export name longer than 63 bytes",
    "ATTACH: export name empty or not [A-Za-z0-9._-]",
};

static int dec_attach(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_attach *a = &m->u.attach;

	a->session = get_le64(b + 8);
	a->received = get_le64(b + 16);
	if (get_le16(b + 2) != 0 || get_le32(b + 4) != 0) {
		return BAD("ATTACH: reserved field not 0");
	}
	/* A new session has had no completions; a count without a session is invented. */
	if (a->session == 0 && a->received != 0) {
		return BAD("ATTACH: received nonzero for a new session");
	}
	return get_name(b + ATTACH_BODY, n - ATTACH_BODY, get_le16(b), a->name, attach_name_whys,
	                why);
}

static void enc_attach(uint8_t *b, const struct wire_msg *m)
{
	const struct wire_attach *a = &m->u.attach;
	size_t nl = strlen(a->name);

	put_le16(b, (uint16_t)nl);
	put_le16(b + 2, 0);
	put_le32(b + 4, 0);
	put_le64(b + 8, a->session);
	put_le64(b + 16, a->received);
	memcpy(b + ATTACH_BODY, a->name, nl);
}

static size_t tail_attach(const struct wire_msg *m)
{
	return name_tail(m->u.attach.name);
}

/* ATTACH_OK -------------------------------------------------------------- */

static int dec_attach_ok(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_attach_ok *a = &m->u.attach_ok;

	a->device_id = get_le32(b);
	a->num_queues = get_le16(b + 4);
	a->max_queue_size = get_le16(b + 6);
	a->features = get_le64(b + 8);
	a->flags = get_le32(b + 16);
	a->config_len = get_le16(b + 20);
	a->session = get_le64(b + 24);
	a->config = b + ATTACH_OK_BODY;
	if (a->num_queues == 0) {
		return BAD("ATTACH_OK: num_queues is 0");
	}
	/* virtio 1.2 section 2.7: queue sizes are powers of 2; 0 is no queue at all. */
	if (!is_pow2(a->max_queue_size)) {
		return BAD("ATTACH_OK: max_queue_size not a power of 2");
	}
	if (a->flags & ~(uint32_t)WIRE_ATTACH_OK_FLAGS) {
		return BAD("ATTACH_OK: unknown flag bits");
	}
	if (get_le16(b + 22) != 0) {
		return BAD("ATTACH_OK: reserved field not 0");
	}
	/* 0 is what an importer sends for "no session": it can never name one. */
	if (a->session == 0) {
		return BAD("ATTACH_OK: session is 0");
	}
	if (a->config_len > WIRE_CONFIG_MAX) {
		return TOO_BIG("ATTACH_OK: config_len over 256");
	}
	if (a->config_len != n - ATTACH_OK_BODY) {
		return BAD("ATTACH_OK: config_len does not match the message length");
	}
	return 0;
}

static void enc_attach_ok(uint8_t *b, const struct wire_msg *m)
{
	const struct wire_attach_ok *a = &m->u.attach_ok;

	put_le32(b, a->device_id);
	put_le16(b + 4, a->num_queues);
	put_le16(b + 6, a->max_queue_size);
	put_le64(b + 8, a->features);
	put_le32(b + 16, a->flags);
	put_le16(b + 20, a->config_len);
	put_le16(b + 22, 0);
	put_le64(b + 24, a->session);
	if (a->config_len) {
		memcpy(b + ATTACH_OK_BODY, a->config, a->config_len);
	}
}

static size_t tail_attach_ok(const struct wire_msg *m)
{
	const struct wire_attach_ok *a = &m->u.attach_ok;

	if (a->config_len > WIRE_CONFIG_MAX || (a->config_len && !a->config)) {
		return NO_TAIL;
	}
	return a->config_len;
}

/* Empty bodies: DETACH, RESET --------------------------------------------- */

static int dec_empty(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	return 0;
}

static void enc_empty(uint8_t *b, const struct wire_msg *m)
{
}

/* FEATURES, ACK: one u64 ---------------------------------------------------- */

static int dec_features(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.features.features = get_le64(b);
	return 0;
}

static void enc_features(uint8_t *b, const struct wire_msg *m)
{
	put_le64(b, m->u.features.features);
}

static int dec_ack(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.ack.ack = get_le64(b);
	return 0;
}

static void enc_ack(uint8_t *b, const struct wire_msg *m)
{
	put_le64(b, m->u.ack.ack);
}

/* QUEUE_START, QUEUE_STOP ---------------------------------------------------- */

static int dec_queue(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_queue *q = &m->u.queue;

	q->index = get_le16(b);
	q->size = get_le16(b + 2);
	q->flags = get_le32(b + 4);
	if (q->flags != 0) {
		return BAD("QUEUE_START/STOP: flags not 0");
	}
	if (m->type == WIRE_QUEUE_STOP) {
		return q->size ? BAD("QUEUE_STOP: size not 0") : 0;
	}
	/* virtio 1.2 section 2.7: a power of 2, at most 32768 (a u16 power of 2 is). */
	if (!is_pow2(q->size)) {
		return BAD("QUEUE_START: size not a power of 2");
	}
	return 0;
}

static void enc_queue(uint8_t *b, const struct wire_msg *m)
{
	put_le16(b, m->u.queue.index);
	put_le16(b + 2, m->u.queue.size);
	put_le32(b + 4, m->u.queue.flags);
}

/* STATUS --------------------------------------------------------------------- */

static int dec_status(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.status.status = b[0];
	if (b[1] || b[2] || b[3]) {
		return BAD("STATUS: reserved bytes not 0");
	}
	return 0;
}

static void enc_status(uint8_t *b, const struct wire_msg *m)
{
	b[0] = m->u.status.status;
	b[1] = b[2] = b[3] = 0;
}

/* REQUEST -------------------------------------------------------------------- */

static int dec_request(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_request *r = &m->u.request;

	r->queue = get_le16(b);
	r->flags = get_le16(b + 2);
	r->wr_len = get_le32(b + 4);
	r->id = get_le64(b + 8);
	r->ack = get_le64(b + 16);
	r->t_capture = get_le64(b + 24);
	r->t_deadline = get_le64(b + 32);
	r->rd_len = (uint32_t)(n - REQ_BODY);
	r->data = b + REQ_BODY;
	if (r->flags & ~WIRE_REQ_FLAGS) {
		return BAD("REQUEST: unknown flags");
	}
	if ((r->flags & WIRE_REQ_FLAGS) && !r->t_deadline) {
		return BAD("REQUEST: deadline flags without a deadline");
	}
	if (r->id == 0) {
		return BAD("REQUEST: id is 0");
	}
	/* ack counts completions (no relation to id); that it never decreases is a session check.
	 */
	/* virtio 1.2 section 2.7.13: a chain has at least one byte and fewer than 2^32. */
	if ((uint64_t)r->rd_len + r->wr_len == 0) {
		return BAD("REQUEST: no readable and no writable bytes");
	}
	if ((uint64_t)r->rd_len + r->wr_len > UINT32_MAX) {
		return BAD("REQUEST: readable plus writable length 2^32 or more");
	}
	return 0;
}

static void enc_request_body(uint8_t *b, const struct wire_request *r)
{
	put_le16(b, r->queue);
	put_le16(b + 2, r->flags);
	put_le32(b + 4, r->wr_len);
	put_le64(b + 8, r->id);
	put_le64(b + 16, r->ack);
	put_le64(b + 24, r->t_capture);
	put_le64(b + 32, r->t_deadline);
}

static void enc_request(uint8_t *b, const struct wire_msg *m)
{
	const struct wire_request *r = &m->u.request;

	enc_request_body(b, r);
	if (r->rd_len) {
		memcpy(b + REQ_BODY, r->data, r->rd_len);
	}
}

static size_t tail_request(const struct wire_msg *m)
{
	const struct wire_request *r = &m->u.request;

	return r->rd_len && !r->data ? NO_TAIL : r->rd_len;
}

/* COMPLETION ----------------------------------------------------------------- */

static int dec_completion(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_completion *c = &m->u.completion;

	c->queue = get_le16(b);
	c->status = get_le16(b + 2);
	c->id = get_le64(b + 8);
	c->t_capture = get_le64(b + 16);
	c->t_done = get_le64(b + 24);
	c->written = (uint32_t)(n - CPL_BODY);
	c->data = b + CPL_BODY;
	if (get_le32(b + 4) != 0) {
		return BAD("COMPLETION: reserved field not 0");
	}
	if (c->status > WIRE_CPL_LATE) {
		return BAD("COMPLETION: unknown status");
	}
	if (c->id == 0) {
		return BAD("COMPLETION: id is 0");
	}
	/* A request that did not run wrote nothing; data here would be invented. */
	if (c->status != WIRE_CPL_OK && c->written) {
		return BAD("COMPLETION: FAILED or LATE status with written data");
	}
	return 0;
}

static void enc_completion_body(uint8_t *b, const struct wire_completion *c)
{
	put_le16(b, c->queue);
	put_le16(b + 2, c->status);
	put_le32(b + 4, 0);
	put_le64(b + 8, c->id);
	put_le64(b + 16, c->t_capture);
	put_le64(b + 24, c->t_done);
}

static void enc_completion(uint8_t *b, const struct wire_msg *m)
{
	const struct wire_completion *c = &m->u.completion;

	enc_completion_body(b, c);
	if (c->written) {
		memcpy(b + CPL_BODY, c->data, c->written);
	}
}

static size_t tail_completion(const struct wire_msg *m)
{
	const struct wire_completion *c = &m->u.completion;

	return c->written && !c->data ? NO_TAIL : c->written;
}

/* CONFIG_GET, CONFIG, CONFIG_SET, CONFIG_CHANGED ----------------------------- */

/* Config space carried is at most 256 bytes: offset + len must stay inside it. */
static int check_config_range(uint32_t offset, uint32_t len, const char **why)
{
	if (len == 0) {
		return BAD("CONFIG*: length 0");
	}
	if (len > WIRE_CONFIG_MAX) {
		return TOO_BIG("CONFIG*: length over 256");
	}
	if (offset > WIRE_CONFIG_MAX - len) {
		return BAD("CONFIG*: offset + length beyond 256");
	}
	return 0;
}

static int dec_config_get(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.config.offset = get_le32(b);
	m->u.config.len = get_le32(b + 4);
	m->u.config.data = NULL;
	return check_config_range(m->u.config.offset, m->u.config.len, why);
}

static void enc_config_get(uint8_t *b, const struct wire_msg *m)
{
	put_le32(b, m->u.config.offset);
	put_le32(b + 4, m->u.config.len);
}

static int dec_config_data(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.config.offset = get_le32(b);
	if (n - CFG_DATA_BODY > WIRE_CONFIG_MAX) {
		return TOO_BIG("CONFIG*: length over 256");
	}
	m->u.config.len = (uint32_t)(n - CFG_DATA_BODY);
	m->u.config.data = b + CFG_DATA_BODY;
	return check_config_range(m->u.config.offset, m->u.config.len, why);
}

static void enc_config_data(uint8_t *b, const struct wire_msg *m)
{
	put_le32(b, m->u.config.offset);
	memcpy(b + CFG_DATA_BODY, m->u.config.data, m->u.config.len);
}

static size_t tail_config_data(const struct wire_msg *m)
{
	const struct wire_config *c = &m->u.config;

	if (c->len > WIRE_CONFIG_MAX || !c->data) {
		return NO_TAIL;
	}
	return c->len;
}

/* PING, PONG ---------------------------------------------------------------- */

static int dec_ping(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	m->u.ping.t_send = get_le64(b);
	m->u.ping.t_echo = get_le64(b + 8);
	return 0;
}

static void enc_ping(uint8_t *b, const struct wire_msg *m)
{
	put_le64(b, m->u.ping.t_send);
	put_le64(b + 8, m->u.ping.t_echo);
}

/* ERROR --------------------------------------------------------------------- */

/* The reason is logged verbatim: printable ASCII only, no escape sequences. */
static int dec_error(const uint8_t *b, size_t n, struct wire_msg *m, const char **why)
{
	struct wire_error *e = &m->u.error;
	uint16_t rl = get_le16(b + 4);

	e->code = get_le32(b);
	if (e->code == 0) {
		return BAD("ERROR: code 0");
	}
	if (get_le16(b + 6) != 0) {
		return BAD("ERROR: reserved field not 0");
	}
	if (rl > WIRE_REASON_MAX) {
		return TOO_BIG("ERROR: reason_len over 255");
	}
	if (rl != n - ERROR_BODY) {
		return BAD("ERROR: reason_len does not match the message length");
	}
	for (size_t i = 0; i < rl; i++) {
		if (b[ERROR_BODY + i] < 0x20 || b[ERROR_BODY + i] > 0x7e) {
			return BAD("ERROR: reason has a byte outside printable ASCII");
		}
	}
	memcpy(e->reason, b + ERROR_BODY, rl);
	e->reason[rl] = '\0';
	return 0;
}

static void enc_error(uint8_t *b, const struct wire_msg *m)
{
	size_t rl = strlen(m->u.error.reason);

	put_le32(b, m->u.error.code);
	put_le16(b + 4, (uint16_t)rl);
	put_le16(b + 6, 0);
	memcpy(b + ERROR_BODY, m->u.error.reason, rl);
}

static size_t tail_error(const struct wire_msg *m)
{
	size_t n = strnlen(m->u.error.reason, WIRE_REASON_MAX + 1);

	return n > WIRE_REASON_MAX ? NO_TAIL : n;
}

/* The table --------------------------------------------------------------------- */

#define FIXED(nm, sz, ch, d, e)                                                                    \
	{                                                                                          \
		.name = nm, .body = sz, .chan = ch, .dec = d, .enc = e,                            \
		.bad_size = nm ": body size is not " #sz " bytes",                                 \
	}
#define VAR(nm, sz, ch, d, e, t)                                                                   \
	{                                                                                          \
		.name = nm, .body = sz, .var = 1, .chan = ch, .dec = d, .enc = e, .tail = t,       \
		.bad_size = nm ": body shorter than " #sz " bytes",                                \
	}

static const struct wire_desc wire_descs[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = VAR("HELLO", 16, CHAN_LINK, dec_hello, enc_hello, tail_hello),
    [WIRE_ATTACH] = VAR("ATTACH", 24, CHAN_DEV, dec_attach, enc_attach, tail_attach),
    [WIRE_ATTACH_OK] = VAR("ATTACH_OK", 32, CHAN_DEV, dec_attach_ok, enc_attach_ok, tail_attach_ok),
    [WIRE_DETACH] = FIXED("DETACH", 0, CHAN_DEV, dec_empty, enc_empty),
    [WIRE_FEATURES] = FIXED("FEATURES", 8, CHAN_DEV, dec_features, enc_features),
    [WIRE_QUEUE_START] = FIXED("QUEUE_START", 8, CHAN_DEV, dec_queue, enc_queue),
    [WIRE_QUEUE_STOP] = FIXED("QUEUE_STOP", 8, CHAN_DEV, dec_queue, enc_queue),
    [WIRE_RESET] = FIXED("RESET", 0, CHAN_DEV, dec_empty, enc_empty),
    [WIRE_STATUS] = FIXED("STATUS", 4, CHAN_DEV, dec_status, enc_status),
    [WIRE_REQUEST] = VAR("REQUEST", 40, CHAN_DEV, dec_request, enc_request, tail_request),
    [WIRE_COMPLETION] =
        VAR("COMPLETION", 32, CHAN_DEV, dec_completion, enc_completion, tail_completion),
    [WIRE_ACK] = FIXED("ACK", 8, CHAN_DEV, dec_ack, enc_ack),
    [WIRE_CONFIG_GET] = FIXED("CONFIG_GET", 8, CHAN_DEV, dec_config_get, enc_config_get),
    [WIRE_CONFIG] = VAR("CONFIG", 4, CHAN_DEV, dec_config_data, enc_config_data, tail_config_data),
    [WIRE_CONFIG_SET] =
        VAR("CONFIG_SET", 4, CHAN_DEV, dec_config_data, enc_config_data, tail_config_data),
    [WIRE_CONFIG_CHANGED] =
        VAR("CONFIG_CHANGED", 4, CHAN_DEV, dec_config_data, enc_config_data, tail_config_data),
    [WIRE_PING] = FIXED("PING", 16, CHAN_LINK, dec_ping, enc_ping),
    [WIRE_PONG] = FIXED("PONG", 16, CHAN_LINK, dec_ping, enc_ping),
    [WIRE_ERROR] = VAR("ERROR", 8, CHAN_ANY, dec_error, enc_error, tail_error),
};

/* The literal sizes in the table must agree with the named layouts. */
_Static_assert(REQ_BODY == 40 && CPL_BODY == 32, "REQUEST/COMPLETION body sizes");
_Static_assert(HELLO_BODY == 16 && ATTACH_BODY == 24 && ATTACH_OK_BODY == 32 && ERROR_BODY == 8,
               "body sizes");

static const struct wire_desc *wire_desc(unsigned type)
{
	if (type >= WIRE_TYPE_MAX || !wire_descs[type].name) {
		return NULL;
	}
	return &wire_descs[type];
}

static int check_chan(const struct wire_desc *d, uint32_t chan, const char **why)
{
	if (chan == 0 && !(d->chan & CHAN_LINK)) {
		return BAD("device message on channel 0");
	}
	if (chan != 0 && !(d->chan & CHAN_DEV)) {
		return BAD("HELLO, PING or PONG on a device channel");
	}
	return 0;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *out, const char **why)
{
	const struct wire_desc *d;
	size_t body;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!buf || len < WIRE_HDR_LEN) {
		return BAD("shorter than the 12-byte header");
	}
	if (get_le32(buf) != len) {
		return BAD("length field does not match the frame length");
	}
	if (buf[4] != WIRE_VERSION) {
		return BAD("header version is not 1");
	}
	if (get_le16(buf + 6) != 0) {
		return BAD("header flags not 0");
	}
	d = wire_desc(buf[5]);
	if (!d) {
		return BAD("unknown message type");
	}
	out->len = (uint32_t)len;
	out->type = buf[5];
	out->chan = get_le32(buf + 8);
	rc = check_chan(d, out->chan, why);
	if (rc < 0) {
		return rc;
	}
	body = len - WIRE_HDR_LEN;
	if (d->var ? body < d->body : body != d->body) {
		return BAD(d->bad_size);
	}
	return d->dec(buf + WIRE_HDR_LEN, body, out, why);
}

size_t wire_encode(uint8_t *buf, size_t cap, const struct wire_msg *m)
{
	const struct wire_desc *d;
	struct wire_msg check;
	size_t tail = 0, total;

	if (!buf || !m || !(d = wire_desc(m->type))) {
		return 0;
	}
	if (d->tail) {
		tail = d->tail(m);
		if (tail == NO_TAIL) {
			return 0;
		}
	}
	if (tail > UINT32_MAX - WIRE_HDR_LEN - d->body) {
		return 0;
	}
	total = WIRE_HDR_LEN + d->body + tail;
	if (total > cap) {
		return 0;
	}
	put_hdr(buf, (uint32_t)total, m->type, m->chan);
	d->enc(buf + WIRE_HDR_LEN, m);
	/* One set of rules for both directions: refuse to send what a peer must refuse. */
	if (wire_decode(buf, total, &check, NULL) < 0) {
		return 0;
	}
	return total;
}

void wire_encode_request_hdr(uint8_t *buf, uint32_t chan, const struct wire_request *r)
{
	put_hdr(buf, WIRE_REQ_HDR_LEN + r->rd_len, WIRE_REQUEST, chan);
	enc_request_body(buf + WIRE_HDR_LEN, r);
}

void wire_encode_completion_hdr(uint8_t *buf, uint32_t chan, const struct wire_completion *c)
{
	put_hdr(buf, WIRE_CPL_HDR_LEN + c->written, WIRE_COMPLETION, chan);
	enc_completion_body(buf + WIRE_HDR_LEN, c);
}

const char *wire_type_name(unsigned type)
{
	const struct wire_desc *d = wire_desc(type);

	return d ? d->name : "UNKNOWN";
}

static const char *const wire_error_names[] = {
    [WIRE_E_PROTO] = "PROTO", [WIRE_E_VERSION] = "VERSION", [WIRE_E_NOENT] = "NOENT",
    [WIRE_E_BUSY] = "BUSY",   [WIRE_E_DENIED] = "DENIED",   [WIRE_E_DEVICE] = "DEVICE",
    [WIRE_E_LIMIT] = "LIMIT", [WIRE_E_STALE] = "STALE",
};

const char *wire_error_name(unsigned code)
{
	if (code >= ARRAY_SIZE(wire_error_names) || !wire_error_names[code]) {
		return "UNKNOWN";
	}
	return wire_error_names[code];
}
