/*
 * Bridge wire protocol, version 1: pure encode/decode, no I/O.
 * docs/protocol.md is the byte-by-byte description; keep the two in step.
 *
 * Every message: 12-byte header (u32 len = total length including the
 * header, u8 version, u8 type, u16 flags (0), u32 chan), then a body whose
 * layout depends on type. All integers little-endian. chan 0 is the link
 * itself (HELLO, PING, PONG, link-level ERROR); other channels are device
 * sessions, numbered by the importer in ATTACH.
 */
#ifndef VB_WIRE_H
#define VB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION     1
#define WIRE_HDR_LEN     12u
#define WIRE_MAX_MSG     (4u << 20) /* default upper bound of one message */
#define WIRE_NAME_MAX    63u        /* node and export names */
#define WIRE_REASON_MAX  255u
#define WIRE_CONFIG_MAX  256u /* virtio config space bytes carried */
#define WIRE_REQ_HDR_LEN (WIRE_HDR_LEN + 40u)
#define WIRE_CPL_HDR_LEN (WIRE_HDR_LEN + 32u)

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_ATTACH = 2,
	WIRE_ATTACH_OK = 3,
	WIRE_DETACH = 4,
	WIRE_FEATURES = 5,
	WIRE_QUEUE_START = 6,
	WIRE_QUEUE_STOP = 7,
	WIRE_RESET = 8,
	WIRE_STATUS = 9,
	WIRE_REQUEST = 10,
	WIRE_COMPLETION = 11,
	WIRE_ACK = 12,
	WIRE_CONFIG_GET = 13,
	WIRE_CONFIG = 14,
	WIRE_CONFIG_SET = 15,
	WIRE_CONFIG_CHANGED = 16,
	WIRE_PING = 17,
	WIRE_PONG = 18,
	WIRE_ERROR = 19,
	WIRE_TYPE_MAX
};

/* Codes carried in WIRE_ERROR. */
enum wire_error_code {
	WIRE_E_PROTO = 1,   /* malformed or unexpected message */
	WIRE_E_VERSION = 2, /* no common protocol version */
	WIRE_E_NOENT = 3,   /* no export by that name */
	WIRE_E_BUSY = 4,    /* export already attached */
	WIRE_E_DENIED = 5,  /* not allowed */
	WIRE_E_DEVICE = 6,  /* device backend failed */
	WIRE_E_LIMIT = 7,   /* over a configured limit */
	WIRE_E_STALE = 8,   /* the session to resume is gone: outstanding requests must fail */
};

/* Capability bits in HELLO (none defined in v1; unknown bits are ignored). */

struct wire_hello {
	uint8_t ver_min, ver_max;
	uint32_t caps;
	uint64_t epoch; /* random per boot */
	char name[WIRE_NAME_MAX + 1];
};

struct wire_attach {
	uint64_t session;  /* 0: a new device session; else the ATTACH_OK session to resume */
	uint64_t received; /* COMPLETIONs received in that session; 0 with session 0 */
	char name[WIRE_NAME_MAX + 1];
};

/* ATTACH_OK flags; other bits are refused. */
#define WIRE_ATTACH_F_RESUMED (1u << 0) /* the named session goes on; cached completions follow */

struct wire_attach_ok {
	uint32_t device_id; /* virtio device id, 0 if unknown */
	uint16_t num_queues;
	uint16_t max_queue_size;
	uint64_t features; /* end-to-end device features */
	uint32_t flags;    /* WIRE_ATTACH_F_* */
	uint64_t session;  /* nonzero, unique per device session, chosen by the exporter */
	uint16_t config_len;
	const uint8_t *config; /* points into the decoded buffer */
};

struct wire_features {
	uint64_t features;
};

struct wire_queue {
	uint16_t index;
	uint16_t size;  /* QUEUE_START only; 0 in QUEUE_STOP */
	uint32_t flags; /* 0 in v1 */
};

struct wire_status {
	uint8_t status;
};

struct wire_request {
	uint16_t queue;
	uint16_t flags;      /* WIRE_REQ_* */
	uint32_t wr_len;     /* writable bytes the driver offers */
	uint64_t id;         /* monotonic per device session, never 0 */
	uint64_t ack;        /* COMPLETIONs of this device session received so far */
	uint64_t t_capture;  /* capture time, ns in the common time base; 0 = none */
	uint64_t t_deadline; /* presentation deadline, ns; 0 = none */
	uint32_t rd_len;     /* readable bytes that follow (from the message length) */
	const uint8_t *data;
};

enum wire_cpl_status {
	WIRE_CPL_OK = 0,     /* executed by the device */
	WIRE_CPL_FAILED = 1, /* not executed: device gone or request refused */
	WIRE_CPL_LATE = 2,   /* not executed: it arrived after its deadline (WIRE_REQ_DROP_LATE) */
};

/* REQUEST flags (protocol.md 4.9). */
#define WIRE_REQ_DROP_LATE   0x0001u /* arriving after t_deadline: complete LATE, do not run */
#define WIRE_REQ_HOLD_UNSYNC 0x0002u /* hold it while the exporter's clock is unsynchronized */
#define WIRE_REQ_FLAGS       (WIRE_REQ_DROP_LATE | WIRE_REQ_HOLD_UNSYNC)

struct wire_completion {
	uint16_t queue;
	uint16_t status; /* enum wire_cpl_status */
	uint64_t id;
	uint64_t t_capture; /* echoed from the request */
	uint64_t t_done;    /* completion time, ns */
	uint32_t written;   /* bytes that follow (from the message length) */
	const uint8_t *data;
};

struct wire_ack {
	uint64_t ack; /* as in wire_request */
};

/* CONFIG_GET: len = bytes wanted, data NULL. CONFIG, CONFIG_SET, CONFIG_CHANGED: data of len. */
struct wire_config {
	uint32_t offset;
	uint32_t len;
	const uint8_t *data;
};

struct wire_ping {
	uint64_t t_send;
	uint64_t t_echo; /* PONG: the PING's t_send */
};

struct wire_error {
	uint32_t code; /* enum wire_error_code */
	char reason[WIRE_REASON_MAX + 1];
};

struct wire_msg {
	uint32_t len;
	uint8_t type;
	uint32_t chan;
	union {
		struct wire_hello hello;
		struct wire_attach attach;
		struct wire_attach_ok attach_ok;
		struct wire_features features;
		struct wire_queue queue;
		struct wire_status status;
		struct wire_request request;
		struct wire_completion completion;
		struct wire_ack ack;
		struct wire_config config;
		struct wire_ping ping;
		struct wire_error error;
	} u;
};

/*
 * Decodes one whole message (buf holds exactly len bytes). Pointers in *out
 * point into buf. Returns 0, or -EPROTO / -EMSGSIZE (a name, config or reason
 * count over its protocol limit) with *why (if why is not NULL) set to a
 * static string that says what was wrong.
 */
int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *out, const char **why);

/*
 * Encodes a message without a bulk payload (everything but REQUEST and
 * COMPLETION data; ATTACH_OK and CONFIG* copy their bytes in). REQUEST and
 * COMPLETION are accepted too, their data copied in (tests, tools). Returns
 * the length written, or 0 if cap is too small or the message is one that
 * wire_decode would refuse.
 */
size_t wire_encode(uint8_t *buf, size_t cap, const struct wire_msg *m);

/*
 * REQUEST / COMPLETION headers: writes WIRE_REQ_HDR_LEN / WIRE_CPL_HDR_LEN
 * bytes whose length field counts the payload (r->rd_len / c->written) that
 * the caller sends right after. The data pointers are ignored.
 */
void wire_encode_request_hdr(uint8_t *buf, uint32_t chan, const struct wire_request *r);
void wire_encode_completion_hdr(uint8_t *buf, uint32_t chan, const struct wire_completion *c);

const char *wire_type_name(unsigned type);
const char *wire_error_name(unsigned code);
/* Names: 1..63 of [A-Za-z0-9._-]. */
int wire_name_valid(const char *s, size_t len);

#endif
