/*
 * tsn:// framing: IEEE 1722 (AVTP) TSCF / NTSCF frames carrying our ACF
 * messages SEG, ACK and CTL. Pure codec: no sockets, no allocation.
 * docs/protocol.md section 11 is the byte-by-byte contract; keep the two in
 * step. Every field of this module's frames is big-endian.
 *
 * Functions that can fail return 0 or -AVTP_E_* (enum avtp_err);
 * avtp_err_name(-rc) names the reason, for logs and per-reason drop counters.
 */
#ifndef VB_AVTP_H
#define VB_AVTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Section 11.1: Ethernet. */
#define AVTP_ETHERTYPE    0x22F0u
#define AVTP_VLAN_TPID    0x8100u
#define AVTP_MAC_LEN      6u
#define AVTP_ETH_HDR_LEN  14u /* untagged; the AVTP header follows */
#define AVTP_VLAN_TAG_LEN 4u
#define AVTP_ETH_MIN_LEN  60u /* without FCS: shorter frames are padded */
#define AVTP_VID_MAX      4094u
#define AVTP_PCP_MAX      7u

/* Section 11.2: AVTP headers and ACF. */
#define AVTP_SUBTYPE_TSCF   0x05u
#define AVTP_SUBTYPE_NTSCF  0x82u
#define AVTP_TSCF_HDR_LEN   24u
#define AVTP_NTSCF_HDR_LEN  12u
#define AVTP_TSCF_DATA_MAX  65535u /* stream_data_length, 16 bits */
#define AVTP_NTSCF_DATA_MAX 2047u  /* ntscf_data_length, 11 bits */
#define AVTP_ACF_HDR_LEN    2u
#define AVTP_ACF_MAX_LEN    2044u /* 511 quadlets */

/* Section 11.4: our ACF message types (IEEE 1722 user types). */
#define AVTP_ACF_SEG 0x78u
#define AVTP_ACF_ACK 0x79u
#define AVTP_ACF_CTL 0x7Au

#define AVTP_SEG_HDR_LEN    16u
#define AVTP_SEG_DATA_MAX   2028u /* AVTP_ACF_MAX_LEN - AVTP_SEG_HDR_LEN */
#define AVTP_SEG_FIRST      0x01u
#define AVTP_SEG_LAST       0x02u
#define AVTP_ACK_LEN        24u
#define AVTP_CTL_HDR_LEN    32u
#define AVTP_CTL_REASON_MAX 200u

/* Our messages (SEG, ACK, CTL) one frame may carry; a frame with more is refused. */
#define AVTP_MAX_ACF 32u

/* Section 11.3: traffic classes, one reliable stream each. */
enum avtp_class {
	AVTP_CLASS_CONTROL = 0,
	AVTP_CLASS_AUDIO = 1,
	AVTP_CLASS_VIDEO = 2,
	AVTP_CLASS_BULK = 3,
	AVTP_NCLASS
};

enum avtp_ctl_op {
	AVTP_CTL_OPEN = 1,
	AVTP_CTL_ACCEPT = 2,
	AVTP_CTL_CLOSE = 3,
	AVTP_CTL_PING = 4,
	AVTP_CTL_PONG = 5,
	AVTP_CTL_OP_MAX
};

/* Why a frame or message was refused (or could not be built). Names: avtp_err_name(). */
enum avtp_err {
	AVTP_OK = 0,
	AVTP_E_RUNT,           /* shorter than the Ethernet, VLAN or AVTP header */
	AVTP_E_ETHERTYPE,      /* not 0x22F0 (after an optional 802.1Q tag) */
	AVTP_E_VLAN,           /* 802.1Q tag with DEI set or VID 4095 */
	AVTP_E_SRC_MAC,        /* source MAC is a group (multicast/broadcast) address */
	AVTP_E_SUBTYPE,        /* neither TSCF nor NTSCF */
	AVTP_E_SV,             /* stream_id not valid (sv 0) */
	AVTP_E_VERSION,        /* AVTP version not 0 */
	AVTP_E_RESERVED,       /* a reserved bit or field (or mr, or a timestamp with tv 0) not 0 */
	AVTP_E_LENGTH,         /* stream/ntscf data length beyond the frame */
	AVTP_E_STREAM_MAC,     /* the stream_id's MAC is not the source MAC */
	AVTP_E_STREAM_CHAN,    /* NTSCF stream_id with a channel other than 0 */
	AVTP_E_CLASS,          /* class (in stream_id, SEG or ACK) over 3 */
	AVTP_E_ACF_ZERO,       /* acf_msg_length 0 */
	AVTP_E_ACF_OVERRUN,    /* ACF message (or its header) longer than what is left */
	AVTP_E_TOO_MANY,       /* more than AVTP_MAX_ACF of our messages */
	AVTP_E_MSG_SUBTYPE,    /* SEG outside TSCF, ACK or CTL outside NTSCF */
	AVTP_E_MSG_TYPE,       /* message decoder given another ACF type */
	AVTP_E_MSG_SIZE,       /* acf_msg_length wrong for the message (ACK, CTL, short SEG) */
	AVTP_E_DATA_LEN,       /* SEG data_len 0, over 2028, or not matching acf_msg_length */
	AVTP_E_PADDING,        /* padding byte not 0 */
	AVTP_E_FLAGS,          /* SEG flags other than FIRST/LAST, ACK flags not 0 */
	AVTP_E_CLASS_MISMATCH, /* SEG class is not the stream_id's class */
	AVTP_E_CTL_OP,         /* CTL op not 1..5 */
	AVTP_E_TOKEN,          /* token 0 (but in OPEN), OPEN token not 0, my_token 0 */
	AVTP_E_CTL_FIELD,      /* CTL field wrong for its op (time, max_seg, window) */
	AVTP_E_REASON,         /* reason over 200, outside CLOSE, or not printable */
	AVTP_E_NOSPACE,        /* builder: does not fit the buffer or the MTU */
	AVTP_E_INVAL,          /* builder: a header field out of range */
	AVTP_E_COUNT
};

/* Ethernet and AVTP header fields of a frame. */
struct avtp_hdr {
	uint8_t dst[AVTP_MAC_LEN];
	uint8_t src[AVTP_MAC_LEN];
	bool vlan;               /* an 802.1Q tag in the frame */
	uint8_t pcp;             /* tagged: 0..7 */
	uint16_t vid;            /* tagged: 0..4094 */
	uint8_t subtype;         /* AVTP_SUBTYPE_TSCF or AVTP_SUBTYPE_NTSCF */
	uint8_t sv;              /* decoded: always 1; the builder writes 1 */
	uint8_t version;         /* decoded: always 0; the builder writes 0 */
	bool tv;                 /* TSCF: avtp_timestamp valid */
	bool tu;                 /* TSCF: timing uncertain */
	uint8_t seq;             /* sequence_num */
	uint64_t stream_id;      /* avtp_stream_id() */
	uint32_t avtp_timestamp; /* TSCF with tv; else 0 */
};

/* One of our ACF messages in a received frame, header included. */
struct avtp_acf {
	uint8_t type;       /* AVTP_ACF_SEG, _ACK or _CTL */
	uint16_t len;       /* bytes: acf_msg_length * 4 */
	const uint8_t *msg; /* into the frame: the ACF header */
};

struct avtp_frame {
	struct avtp_hdr h;
	uint16_t data_len;   /* stream_data_length / ntscf_data_length */
	const uint8_t *data; /* into the frame: the first ACF message */
	unsigned n_acf;      /* our messages, in frame order */
	unsigned n_skipped;  /* ACF messages of other types, skipped */
	struct avtp_acf acf[AVTP_MAX_ACF];
};

struct avtp_seg {
	uint8_t flags; /* AVTP_SEG_FIRST | AVTP_SEG_LAST */
	uint8_t cls;   /* enum avtp_class */
	uint32_t token;
	uint32_t seq;
	uint16_t data_len; /* 1..AVTP_SEG_DATA_MAX */
	const uint8_t *data;
};

struct avtp_ack {
	uint8_t cls;
	uint32_t token;
	uint32_t cum;
	uint32_t window;
	uint64_t sack; /* bit i: cum + 1 + i arrived */
};

struct avtp_ctl {
	uint8_t op; /* enum avtp_ctl_op */
	uint32_t token;
	uint32_t my_token;
	uint16_t max_seg;
	uint16_t window;
	uint32_t isn;
	uint64_t time;
	uint32_t reason_len; /* CLOSE only: 0..AVTP_CTL_REASON_MAX */
	const char *reason;  /* printable ASCII, not NUL-terminated */
};

/*
 * Decodes one received Ethernet frame (destination MAC first, as read from an
 * AF_PACKET SOCK_RAW socket; bytes after the AVTP data, such as padding to 60,
 * are ignored). Every one of our messages is checked as avtp_*_decode() and
 * against the frame (subtype, class): after 0, each listed message decodes.
 * Pointers in *out point into buf. Returns 0 or -AVTP_E_*; after a refusal
 * *out holds what was read up to it (for logs only).
 */
int avtp_decode(const uint8_t *buf, size_t len, struct avtp_frame *out);

/*
 * Decode one ACF message, header included (buf/len as in struct avtp_acf):
 * the checks of section 11.4 that need no frame context. Pointers in *out
 * point into buf. Returns 0 or -AVTP_E_*.
 */
int avtp_seg_decode(const uint8_t *buf, size_t len, struct avtp_seg *out);
int avtp_ack_decode(const uint8_t *buf, size_t len, struct avtp_ack *out);
int avtp_ctl_decode(const uint8_t *buf, size_t len, struct avtp_ctl *out);

/*
 * Frame builder: begin, append messages while they fit, finish.
 *
 * The frame may not exceed cap (the buffer) nor the Ethernet header (and tag)
 * plus mtu (the interface MTU: AVTP header and ACF messages), nor the
 * subtype's data length field. Appending checks the message as the decoder
 * would and refuses (-AVTP_E_*, builder unchanged) what is invalid, what does
 * not fit (-AVTP_E_NOSPACE) and a message beyond AVTP_MAX_ACF
 * (-AVTP_E_TOO_MANY). Whatever is built, avtp_decode() accepts.
 */
struct avtp_builder {
	uint8_t *buf;
	size_t end; /* the frame may not grow past this */
	size_t pdu; /* offset of the AVTP header */
	size_t len; /* bytes written */
	uint8_t subtype;
	uint8_t cls; /* the stream_id's class */
	unsigned n_acf;
};

/*
 * Writes the Ethernet header (tagged if h->vlan) and the AVTP header of
 * h->subtype; sv, version and the data length are the builder's (NTSCF has
 * no tv, tu, timestamp: they must be 0, as pcp and vid without a tag). A
 * header avtp_decode() would refuse is refused with the same code, a field
 * the frame cannot hold with -AVTP_E_INVAL, a cap below AVTP_ETH_MIN_LEN or
 * an mtu below the AVTP header with -AVTP_E_NOSPACE.
 */
int avtp_build_begin(struct avtp_builder *b, uint8_t *buf, size_t cap, size_t mtu,
                     const struct avtp_hdr *h);
/* TSCF: s->data_len bytes at s->data. */
int avtp_build_seg(struct avtp_builder *b, const struct avtp_seg *s);
/* TSCF: the data is the concatenation of iov (s->data and s->data_len are ignored). */
int avtp_build_segv(struct avtp_builder *b, const struct avtp_seg *s, const struct iovec *iov,
                    unsigned iovcnt);
/* Data bytes of one more SEG that still fit (0: none; at most AVTP_SEG_DATA_MAX). */
size_t avtp_build_seg_room(const struct avtp_builder *b);
/* NTSCF. */
int avtp_build_ack(struct avtp_builder *b, const struct avtp_ack *a);
int avtp_build_ctl(struct avtp_builder *b, const struct avtp_ctl *c);
/* Fills in the data length, zero-pads to AVTP_ETH_MIN_LEN; returns the frame length. */
size_t avtp_build_finish(struct avtp_builder *b);

/* Section 11.3: source MAC << 16 | class << 12 | (chan & 0x0FFF). */
uint64_t avtp_stream_id(const uint8_t mac[AVTP_MAC_LEN], unsigned cls, uint32_t chan);
void avtp_stream_mac(uint64_t stream_id, uint8_t mac[AVTP_MAC_LEN]);
unsigned avtp_stream_class(uint64_t stream_id); /* 0..15: check it */
unsigned avtp_stream_chan(uint64_t stream_id);

/* "02:00:00:00:00:0a" (either case in, lower case out). Parse: 0 or -EINVAL. */
#define AVTP_MAC_STRLEN 18u /* with the NUL */
int avtp_mac_parse(const char *s, uint8_t mac[AVTP_MAC_LEN]);
char *avtp_mac_format(const uint8_t mac[AVTP_MAC_LEN], char out[AVTP_MAC_STRLEN]);

const char *avtp_err_name(unsigned err);
const char *avtp_class_name(unsigned cls);
const char *avtp_ctl_op_name(unsigned op);
const char *avtp_acf_name(unsigned type);

#endif
