/*
 * tsn:// frame codec: IEEE 1722-2016 TSCF (clause 9.4) and NTSCF (9.5)
 * headers, ACF messages (9.6), and our user-type messages SEG, ACK, CTL.
 * docs/protocol.md section 11 is the byte-level description; every layout
 * and check here has a row there. Bit layouts of the standard headers agree
 * with Wireshark's packet-ieee1722.c (tests/e2e/test_avtp_tshark.sh).
 *
 * The decoder trusts nothing: every length is compared with what is left,
 * reserved bits must be 0, and a frame is accepted only if every one of our
 * messages in it is valid in itself and in its frame. The builder writes a
 * header or message and runs the decoder's checks over the bytes it wrote,
 * so we never send what we would refuse.
 */
#include "transport/tsn/avtp.h"

#include <errno.h>
#include <string.h>

#include "bridge/util.h"

static size_t quad_up(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i]) {
			return 0;
		}
	}
	return 1;
}

#define ERR(e) (-(int)(e))

/* AVTP common header, byte 1 (1722-2016 clause 4.4.3). */
#define HDR_SV       0x80u
#define HDR_VERSION  0x70u
#define HDR_MR       0x08u /* TSCF media clock restart; NTSCF reserved bit */
#define TSCF_RSV1    0x06u
#define TSCF_TV      0x01u
#define TSCF_RSV2    0xFEu /* byte 3 */
#define TSCF_TU      0x01u
#define NTSCF_LEN_HI 0x07u

#define VLAN_DEI     0x1000u
#define VLAN_VID     0x0FFFu
#define SEG_FLAGS    (AVTP_SEG_FIRST | AVTP_SEG_LAST)
#define ACF_LEN_MASK 0x01FFu
#define MIN_SEG_LEN  (AVTP_SEG_HDR_LEN + 4u) /* one data byte and its padding */

/* Section 11.2: the two AVTP formats we use */

typedef int (*hdr_dec_fn)(const uint8_t *p, struct avtp_frame *f);
typedef void (*hdr_enc_fn)(uint8_t *p, const struct avtp_hdr *h);
typedef void (*len_put_fn)(uint8_t *p, uint16_t data_len);

struct avtp_format {
	uint8_t subtype;
	uint8_t hdr_len;
	uint16_t data_max;
	hdr_dec_fn dec;
	hdr_enc_fn enc;
	len_put_fn put_len;
};

static int tscf_dec(const uint8_t *p, struct avtp_frame *f)
{
	struct avtp_hdr *h = &f->h;

	if (p[1] & (HDR_MR | TSCF_RSV1) || p[3] & TSCF_RSV2) {
		return ERR(AVTP_E_RESERVED);
	}
	h->tv = p[1] & TSCF_TV;
	h->seq = p[2];
	h->tu = p[3] & TSCF_TU;
	h->stream_id = get_be64(p + 4);
	h->avtp_timestamp = get_be32(p + 12);
	f->data_len = get_be16(p + 20);
	if (get_be32(p + 16) != 0 || get_be16(p + 22) != 0) {
		return ERR(AVTP_E_RESERVED);
	}
	/* Section 11.2: the timestamp is 0 unless it is valid. */
	if (!h->tv && h->avtp_timestamp != 0) {
		return ERR(AVTP_E_RESERVED);
	}
	return 0;
}

static void tscf_enc(uint8_t *p, const struct avtp_hdr *h)
{
	p[0] = AVTP_SUBTYPE_TSCF;
	p[1] = HDR_SV | (h->tv ? TSCF_TV : 0);
	p[2] = h->seq;
	p[3] = h->tu ? TSCF_TU : 0;
	put_be64(p + 4, h->stream_id);
	put_be32(p + 12, h->avtp_timestamp);
	put_be32(p + 16, 0);
	put_be16(p + 20, 0);
	put_be16(p + 22, 0);
}

static void tscf_put_len(uint8_t *p, uint16_t data_len)
{
	put_be16(p + 20, data_len);
}

static int ntscf_dec(const uint8_t *p, struct avtp_frame *f)
{
	if (p[1] & HDR_MR) {
		return ERR(AVTP_E_RESERVED);
	}
	f->data_len = (uint16_t)((p[1] & NTSCF_LEN_HI) << 8 | p[2]);
	f->h.seq = p[3];
	f->h.stream_id = get_be64(p + 4);
	return 0;
}

static void ntscf_enc(uint8_t *p, const struct avtp_hdr *h)
{
	p[0] = AVTP_SUBTYPE_NTSCF;
	p[1] = HDR_SV;
	p[2] = 0;
	p[3] = h->seq;
	put_be64(p + 4, h->stream_id);
}

static void ntscf_put_len(uint8_t *p, uint16_t data_len)
{
	p[1] = (uint8_t)((p[1] & ~NTSCF_LEN_HI) | (data_len >> 8 & NTSCF_LEN_HI));
	p[2] = (uint8_t)data_len;
}

static const struct avtp_format avtp_formats[] = {
    {AVTP_SUBTYPE_TSCF, AVTP_TSCF_HDR_LEN, AVTP_TSCF_DATA_MAX, tscf_dec, tscf_enc, tscf_put_len},
    {AVTP_SUBTYPE_NTSCF, AVTP_NTSCF_HDR_LEN, AVTP_NTSCF_DATA_MAX, ntscf_dec, ntscf_enc,
     ntscf_put_len},
};

static const struct avtp_format *format_of(unsigned subtype)
{
	for (size_t i = 0; i < ARRAY_SIZE(avtp_formats); i++) {
		if (avtp_formats[i].subtype == subtype) {
			return &avtp_formats[i];
		}
	}
	return NULL;
}

/* Section 11.4: our ACF messages */

/* Every ACF message: type and length in quadlets; len is exactly the message. */
static int acf_hdr_check(const uint8_t *buf, size_t len, unsigned type)
{
	unsigned qlen;

	if (!buf || len < AVTP_ACF_HDR_LEN) {
		return ERR(AVTP_E_ACF_OVERRUN);
	}
	if (buf[0] >> 1 != type) {
		return ERR(AVTP_E_MSG_TYPE);
	}
	qlen = get_be16(buf) & ACF_LEN_MASK;
	if (qlen == 0) {
		return ERR(AVTP_E_ACF_ZERO);
	}
	if ((size_t)qlen * 4 > len) {
		return ERR(AVTP_E_ACF_OVERRUN);
	}
	return (size_t)qlen * 4 < len ? ERR(AVTP_E_MSG_SIZE) : 0;
}

int avtp_seg_decode(const uint8_t *buf, size_t len, struct avtp_seg *out)
{
	int rc = acf_hdr_check(buf, len, AVTP_ACF_SEG);

	if (rc < 0) {
		return rc;
	}
	if (len < MIN_SEG_LEN) {
		return ERR(AVTP_E_MSG_SIZE);
	}
	out->flags = buf[2];
	out->cls = buf[3];
	out->token = get_be32(buf + 4);
	out->seq = get_be32(buf + 8);
	out->data_len = get_be16(buf + 12);
	out->data = buf + AVTP_SEG_HDR_LEN;
	if (out->flags & ~SEG_FLAGS) {
		return ERR(AVTP_E_FLAGS);
	}
	if (out->cls >= AVTP_NCLASS) {
		return ERR(AVTP_E_CLASS);
	}
	/* Tokens are nonzero (section 11.6): 0 can never name a link. */
	if (out->token == 0) {
		return ERR(AVTP_E_TOKEN);
	}
	if (get_be16(buf + 14) != 0) {
		return ERR(AVTP_E_RESERVED);
	}
	if (out->data_len == 0 || out->data_len > AVTP_SEG_DATA_MAX ||
	    AVTP_SEG_HDR_LEN + quad_up(out->data_len) != len) {
		return ERR(AVTP_E_DATA_LEN);
	}
	if (!all_zero(out->data + out->data_len, len - AVTP_SEG_HDR_LEN - out->data_len)) {
		return ERR(AVTP_E_PADDING);
	}
	return 0;
}

int avtp_ack_decode(const uint8_t *buf, size_t len, struct avtp_ack *out)
{
	int rc = acf_hdr_check(buf, len, AVTP_ACF_ACK);

	if (rc < 0) {
		return rc;
	}
	if (len != AVTP_ACK_LEN) {
		return ERR(AVTP_E_MSG_SIZE);
	}
	out->cls = buf[3];
	out->token = get_be32(buf + 4);
	out->cum = get_be32(buf + 8);
	out->window = get_be32(buf + 12);
	out->sack = get_be64(buf + 16);
	if (buf[2] != 0) {
		return ERR(AVTP_E_FLAGS);
	}
	if (out->cls >= AVTP_NCLASS) {
		return ERR(AVTP_E_CLASS);
	}
	return out->token == 0 ? ERR(AVTP_E_TOKEN) : 0;
}

static int printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7E) {
			return 0;
		}
	}
	return 1;
}

/* Fields whose meaning depends on op (section 11.4, CTL). */
static int ctl_fields_check(const struct avtp_ctl *c)
{
	bool setup = c->op == AVTP_CTL_OPEN || c->op == AVTP_CTL_ACCEPT;

	/* OPEN goes to a link that has no token yet; everything else names one. */
	if ((c->op == AVTP_CTL_OPEN) != (c->token == 0) || c->my_token == 0) {
		return ERR(AVTP_E_TOKEN);
	}
	if (c->time != 0 && c->op != AVTP_CTL_PING && c->op != AVTP_CTL_PONG) {
		return ERR(AVTP_E_CTL_FIELD);
	}
	if (c->max_seg > AVTP_SEG_DATA_MAX || (setup && (c->max_seg == 0 || c->window == 0))) {
		return ERR(AVTP_E_CTL_FIELD);
	}
	if (c->reason_len > AVTP_CTL_REASON_MAX ||
	    (c->reason_len != 0 && c->op != AVTP_CTL_CLOSE)) {
		return ERR(AVTP_E_REASON);
	}
	return 0;
}

int avtp_ctl_decode(const uint8_t *buf, size_t len, struct avtp_ctl *out)
{
	int rc = acf_hdr_check(buf, len, AVTP_ACF_CTL);

	if (rc < 0) {
		return rc;
	}
	if (len < AVTP_CTL_HDR_LEN) {
		return ERR(AVTP_E_MSG_SIZE);
	}
	out->op = buf[2];
	out->token = get_be32(buf + 4);
	out->my_token = get_be32(buf + 8);
	out->max_seg = get_be16(buf + 12);
	out->window = get_be16(buf + 14);
	out->isn = get_be32(buf + 16);
	out->time = get_be64(buf + 20);
	out->reason_len = get_be32(buf + 28);
	out->reason = (const char *)buf + AVTP_CTL_HDR_LEN;
	if (out->op == 0 || out->op >= AVTP_CTL_OP_MAX) {
		return ERR(AVTP_E_CTL_OP);
	}
	if (buf[3] != 0) {
		return ERR(AVTP_E_RESERVED);
	}
	rc = ctl_fields_check(out);
	if (rc < 0) {
		return rc;
	}
	if (AVTP_CTL_HDR_LEN + quad_up(out->reason_len) != len) {
		return ERR(AVTP_E_MSG_SIZE);
	}
	if (!printable(buf + AVTP_CTL_HDR_LEN, out->reason_len)) {
		return ERR(AVTP_E_REASON);
	}
	if (!all_zero(buf + AVTP_CTL_HDR_LEN + out->reason_len,
	              len - AVTP_CTL_HDR_LEN - out->reason_len)) {
		return ERR(AVTP_E_PADDING);
	}
	return 0;
}

/* A message checked in its frame: valid in itself, and consistent with the stream. */
typedef int (*msg_check_fn)(const uint8_t *buf, size_t len, unsigned stream_cls);

static int seg_check(const uint8_t *buf, size_t len, unsigned stream_cls)
{
	struct avtp_seg s;
	int rc = avtp_seg_decode(buf, len, &s);

	if (rc < 0) {
		return rc;
	}
	/* Section 11.3: a frame carries segments of its stream's class only. */
	return s.cls != stream_cls ? ERR(AVTP_E_CLASS_MISMATCH) : 0;
}

static int ack_check(const uint8_t *buf, size_t len, unsigned stream_cls)
{
	struct avtp_ack a;

	return avtp_ack_decode(buf, len, &a);
}

static int ctl_check(const uint8_t *buf, size_t len, unsigned stream_cls)
{
	struct avtp_ctl c;

	return avtp_ctl_decode(buf, len, &c);
}

struct avtp_msg_desc {
	uint8_t type;
	uint8_t subtype; /* the one AVTP format that may carry it */
	const char *name;
	msg_check_fn check;
};

static const struct avtp_msg_desc avtp_msgs[] = {
    {AVTP_ACF_SEG, AVTP_SUBTYPE_TSCF, "SEG", seg_check},
    {AVTP_ACF_ACK, AVTP_SUBTYPE_NTSCF, "ACK", ack_check},
    {AVTP_ACF_CTL, AVTP_SUBTYPE_NTSCF, "CTL", ctl_check},
};

static const struct avtp_msg_desc *msg_desc(unsigned type)
{
	for (size_t i = 0; i < ARRAY_SIZE(avtp_msgs); i++) {
		if (avtp_msgs[i].type == type) {
			return &avtp_msgs[i];
		}
	}
	return NULL;
}

/* Frame decoding */

/* Section 11.1. Sets *off to the AVTP header. */
static int eth_decode(const uint8_t *buf, size_t len, struct avtp_hdr *h, size_t *off)
{
	uint16_t type, tci = 0;
	size_t n = AVTP_ETH_HDR_LEN;

	if (len < AVTP_ETH_HDR_LEN) {
		return ERR(AVTP_E_RUNT);
	}
	memcpy(h->dst, buf, AVTP_MAC_LEN);
	memcpy(h->src, buf + AVTP_MAC_LEN, AVTP_MAC_LEN);
	type = get_be16(buf + 12);
	if (type == AVTP_VLAN_TPID) {
		n += AVTP_VLAN_TAG_LEN;
		if (len < n) {
			return ERR(AVTP_E_RUNT);
		}
		h->vlan = true;
		tci = get_be16(buf + 14);
		type = get_be16(buf + 16);
	}
	if (type != AVTP_ETHERTYPE) {
		return ERR(AVTP_E_ETHERTYPE);
	}
	h->pcp = (uint8_t)(tci >> 13);
	h->vid = tci & VLAN_VID;
	if (tci & VLAN_DEI || h->vid == VLAN_VID) {
		return ERR(AVTP_E_VLAN);
	}
	/* IEEE 802.3 clause 3.2.3: a source address is never a group address. */
	if (h->src[0] & 1) {
		return ERR(AVTP_E_SRC_MAC);
	}
	*off = n;
	return 0;
}

/* Section 11.3: the stream_id names the sender and one class. */
static int stream_check(const struct avtp_hdr *h)
{
	uint8_t mac[AVTP_MAC_LEN];

	avtp_stream_mac(h->stream_id, mac);
	if (memcmp(mac, h->src, AVTP_MAC_LEN) != 0) {
		return ERR(AVTP_E_STREAM_MAC);
	}
	if (avtp_stream_class(h->stream_id) >= AVTP_NCLASS) {
		return ERR(AVTP_E_CLASS);
	}
	if (h->subtype == AVTP_SUBTYPE_NTSCF && avtp_stream_chan(h->stream_id) != 0) {
		return ERR(AVTP_E_STREAM_CHAN);
	}
	return 0;
}

/* Section 11.2, AVTP header. Returns the format, or NULL with *rc set. */
static const struct avtp_format *pdu_decode(const uint8_t *p, size_t left, struct avtp_frame *f,
                                            int *rc)
{
	const struct avtp_format *fmt;

	*rc = ERR(AVTP_E_RUNT);
	if (left < 2) {
		return NULL;
	}
	fmt = format_of(p[0]);
	f->h.subtype = p[0];
	f->h.sv = p[1] >> 7;
	f->h.version = (p[1] & HDR_VERSION) >> 4;
	if (!fmt) {
		*rc = ERR(AVTP_E_SUBTYPE);
	} else if (f->h.version != 0) {
		*rc = ERR(AVTP_E_VERSION);
	} else if (f->h.sv != 1) {
		*rc = ERR(AVTP_E_SV);
	} else if (left >= fmt->hdr_len) {
		*rc = fmt->dec(p, f);
	}
	if (*rc == 0 && f->data_len > left - fmt->hdr_len) {
		*rc = ERR(AVTP_E_LENGTH);
	}
	return *rc == 0 ? fmt : NULL;
}

/* Section 11.2, ACF messages: they fill exactly data_len bytes. */
static int acf_walk(struct avtp_frame *f)
{
	const uint8_t *p = f->data;
	size_t left = f->data_len;
	unsigned cls = avtp_stream_class(f->h.stream_id);

	while (left > 0) {
		const struct avtp_msg_desc *d;
		unsigned type, qlen;
		size_t n;
		int rc;

		if (left < AVTP_ACF_HDR_LEN) {
			return ERR(AVTP_E_ACF_OVERRUN);
		}
		type = p[0] >> 1;
		qlen = get_be16(p) & ACF_LEN_MASK;
		n = (size_t)qlen * 4;
		if (qlen == 0) {
			return ERR(AVTP_E_ACF_ZERO);
		}
		if (n > left) {
			return ERR(AVTP_E_ACF_OVERRUN);
		}
		d = msg_desc(type);
		if (!d) {
			f->n_skipped++;
		} else if (d->subtype != f->h.subtype) {
			return ERR(AVTP_E_MSG_SUBTYPE);
		} else if (f->n_acf >= AVTP_MAX_ACF) {
			return ERR(AVTP_E_TOO_MANY);
		} else if ((rc = d->check(p, n, cls)) < 0) {
			return rc;
		} else {
			f->acf[f->n_acf++] =
			    (struct avtp_acf){.type = (uint8_t)type, .len = (uint16_t)n, .msg = p};
		}
		p += n;
		left -= n;
	}
	return 0;
}

int avtp_decode(const uint8_t *buf, size_t len, struct avtp_frame *out)
{
	const struct avtp_format *fmt;
	size_t off = 0;
	int rc;

	memset(&out->h, 0, sizeof(out->h));
	out->data_len = 0;
	out->data = NULL;
	out->n_acf = 0;
	out->n_skipped = 0;
	if (!buf) {
		return ERR(AVTP_E_RUNT);
	}
	rc = eth_decode(buf, len, &out->h, &off);
	if (rc < 0) {
		return rc;
	}
	fmt = pdu_decode(buf + off, len - off, out, &rc);
	if (!fmt) {
		return rc;
	}
	rc = stream_check(&out->h);
	if (rc < 0) {
		return rc;
	}
	out->data = buf + off + fmt->hdr_len;
	return acf_walk(out);
}

/* Builder */

/* Fields the frame cannot represent; everything else the decoder checks. */
static int hdr_representable(const struct avtp_hdr *h)
{
	if (h->vlan ? h->pcp > AVTP_PCP_MAX || h->vid > VLAN_VID : h->pcp != 0 || h->vid != 0) {
		return 0;
	}
	return h->subtype != AVTP_SUBTYPE_NTSCF || (!h->tv && !h->tu && h->avtp_timestamp == 0);
}

static size_t eth_encode(uint8_t *buf, const struct avtp_hdr *h)
{
	size_t n = 12;

	memcpy(buf, h->dst, AVTP_MAC_LEN);
	memcpy(buf + AVTP_MAC_LEN, h->src, AVTP_MAC_LEN);
	if (h->vlan) {
		put_be16(buf + n, AVTP_VLAN_TPID);
		put_be16(buf + n + 2, (uint16_t)(h->pcp << 13 | h->vid));
		n += AVTP_VLAN_TAG_LEN;
	}
	put_be16(buf + n, AVTP_ETHERTYPE);
	return n + 2;
}

int avtp_build_begin(struct avtp_builder *b, uint8_t *buf, size_t cap, size_t mtu,
                     const struct avtp_hdr *h)
{
	const struct avtp_format *fmt;
	struct avtp_frame f;
	size_t pdu, end;
	int rc;

	if (!b || !buf || !h) {
		return ERR(AVTP_E_INVAL);
	}
	fmt = format_of(h->subtype);
	if (!fmt) {
		return ERR(AVTP_E_SUBTYPE);
	}
	if (!hdr_representable(h)) {
		return ERR(AVTP_E_INVAL);
	}
	if (cap < AVTP_ETH_MIN_LEN) {
		return ERR(AVTP_E_NOSPACE);
	}
	pdu = eth_encode(buf, h);
	end = mtu < cap - pdu ? pdu + mtu : cap;
	end = VB_MIN(end, pdu + fmt->hdr_len + fmt->data_max);
	if (end < pdu + fmt->hdr_len) {
		return ERR(AVTP_E_NOSPACE);
	}
	fmt->enc(buf + pdu, h);
	/* The header alone (no messages) is a frame: the decoder has the last word. */
	rc = avtp_decode(buf, pdu + fmt->hdr_len, &f);
	if (rc < 0) {
		return rc;
	}
	*b = (struct avtp_builder){.buf = buf,
	                           .end = end,
	                           .pdu = pdu,
	                           .len = pdu + fmt->hdr_len,
	                           .subtype = h->subtype,
	                           .cls = (uint8_t)avtp_stream_class(h->stream_id)};
	return 0;
}

/* Whether one more message of type and n bytes may be appended. */
static int build_room(const struct avtp_builder *b, unsigned type, size_t n)
{
	if (msg_desc(type)->subtype != b->subtype) {
		return ERR(AVTP_E_MSG_SUBTYPE);
	}
	if (b->n_acf >= AVTP_MAX_ACF) {
		return ERR(AVTP_E_TOO_MANY);
	}
	return n > b->end - b->len ? ERR(AVTP_E_NOSPACE) : 0;
}

/* The message written at b->len: checked as the decoder will, then kept. */
static int build_commit(struct avtp_builder *b, unsigned type, size_t n)
{
	int rc = msg_desc(type)->check(b->buf + b->len, n, b->cls);

	if (rc < 0) {
		return rc;
	}
	b->len += n;
	b->n_acf++;
	return 0;
}

static void acf_hdr_put(uint8_t *p, unsigned type, size_t n)
{
	put_be16(p, (uint16_t)(type << 9 | (n / 4 & ACF_LEN_MASK)));
}

int avtp_build_segv(struct avtp_builder *b, const struct avtp_seg *s, const struct iovec *iov,
                    unsigned iovcnt)
{
	size_t total = 0, n;
	uint8_t *p;
	int rc;

	if (!b || !s || (!iov && iovcnt)) {
		return ERR(AVTP_E_INVAL);
	}
	for (unsigned i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > AVTP_SEG_DATA_MAX - total) {
			return ERR(AVTP_E_DATA_LEN);
		}
		if (iov[i].iov_len && !iov[i].iov_base) {
			return ERR(AVTP_E_INVAL);
		}
		total += iov[i].iov_len;
	}
	if (total == 0) {
		return ERR(AVTP_E_DATA_LEN);
	}
	n = AVTP_SEG_HDR_LEN + quad_up(total);
	rc = build_room(b, AVTP_ACF_SEG, n);
	if (rc < 0) {
		return rc;
	}
	p = b->buf + b->len;
	acf_hdr_put(p, AVTP_ACF_SEG, n);
	p[2] = s->flags;
	p[3] = s->cls;
	put_be32(p + 4, s->token);
	put_be32(p + 8, s->seq);
	put_be16(p + 12, (uint16_t)total);
	put_be16(p + 14, 0);
	p += AVTP_SEG_HDR_LEN;
	for (unsigned i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len) {
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
			p += iov[i].iov_len;
		}
	}
	memset(p, 0, n - AVTP_SEG_HDR_LEN - total);
	return build_commit(b, AVTP_ACF_SEG, n);
}

int avtp_build_seg(struct avtp_builder *b, const struct avtp_seg *s)
{
	struct iovec iov;

	if (!s) {
		return ERR(AVTP_E_INVAL);
	}
	iov.iov_base = (void *)s->data;
	iov.iov_len = s->data_len;
	return avtp_build_segv(b, s, &iov, 1);
}

size_t avtp_build_seg_room(const struct avtp_builder *b)
{
	size_t left;

	if (!b || b->subtype != AVTP_SUBTYPE_TSCF || b->n_acf >= AVTP_MAX_ACF) {
		return 0;
	}
	left = b->end - b->len;
	if (left < MIN_SEG_LEN) {
		return 0;
	}
	return VB_MIN((left - AVTP_SEG_HDR_LEN) & ~(size_t)3, AVTP_SEG_DATA_MAX);
}

int avtp_build_ack(struct avtp_builder *b, const struct avtp_ack *a)
{
	uint8_t *p;
	int rc;

	if (!b || !a) {
		return ERR(AVTP_E_INVAL);
	}
	rc = build_room(b, AVTP_ACF_ACK, AVTP_ACK_LEN);
	if (rc < 0) {
		return rc;
	}
	p = b->buf + b->len;
	acf_hdr_put(p, AVTP_ACF_ACK, AVTP_ACK_LEN);
	p[2] = 0;
	p[3] = a->cls;
	put_be32(p + 4, a->token);
	put_be32(p + 8, a->cum);
	put_be32(p + 12, a->window);
	put_be64(p + 16, a->sack);
	return build_commit(b, AVTP_ACF_ACK, AVTP_ACK_LEN);
}

int avtp_build_ctl(struct avtp_builder *b, const struct avtp_ctl *c)
{
	size_t n;
	uint8_t *p;
	int rc;

	if (!b || !c || (c->reason_len && !c->reason)) {
		return ERR(AVTP_E_INVAL);
	}
	if (c->reason_len > AVTP_CTL_REASON_MAX) {
		return ERR(AVTP_E_REASON);
	}
	n = AVTP_CTL_HDR_LEN + quad_up(c->reason_len);
	rc = build_room(b, AVTP_ACF_CTL, n);
	if (rc < 0) {
		return rc;
	}
	p = b->buf + b->len;
	acf_hdr_put(p, AVTP_ACF_CTL, n);
	p[2] = c->op;
	p[3] = 0;
	put_be32(p + 4, c->token);
	put_be32(p + 8, c->my_token);
	put_be16(p + 12, c->max_seg);
	put_be16(p + 14, c->window);
	put_be32(p + 16, c->isn);
	put_be64(p + 20, c->time);
	put_be32(p + 28, c->reason_len);
	if (c->reason_len) {
		memcpy(p + AVTP_CTL_HDR_LEN, c->reason, c->reason_len);
	}
	memset(p + AVTP_CTL_HDR_LEN + c->reason_len, 0, n - AVTP_CTL_HDR_LEN - c->reason_len);
	return build_commit(b, AVTP_ACF_CTL, n);
}

size_t avtp_build_finish(struct avtp_builder *b)
{
	const struct avtp_format *fmt = format_of(b->subtype);
	size_t data = b->len - b->pdu - fmt->hdr_len;

	/* begin() bounded the frame by the format's data_max. */
	fmt->put_len(b->buf + b->pdu, (uint16_t)data);
	/* Short frames are padded by the NIC, but not over veth: pad them ourselves. */
	if (b->len < AVTP_ETH_MIN_LEN) {
		memset(b->buf + b->len, 0, AVTP_ETH_MIN_LEN - b->len);
		return AVTP_ETH_MIN_LEN;
	}
	return b->len;
}

/* Helpers */

uint64_t avtp_stream_id(const uint8_t mac[AVTP_MAC_LEN], unsigned cls, uint32_t chan)
{
	uint64_t id = 0;

	for (unsigned i = 0; i < AVTP_MAC_LEN; i++) {
		id = id << 8 | mac[i];
	}
	return id << 16 | (uint64_t)(cls & 0xF) << 12 | (chan & 0x0FFFu);
}

void avtp_stream_mac(uint64_t stream_id, uint8_t mac[AVTP_MAC_LEN])
{
	for (unsigned i = 0; i < AVTP_MAC_LEN; i++) {
		mac[i] = (uint8_t)(stream_id >> (56 - 8 * i));
	}
}

unsigned avtp_stream_class(uint64_t stream_id)
{
	return (unsigned)(stream_id >> 12) & 0xF;
}

unsigned avtp_stream_chan(uint64_t stream_id)
{
	return (unsigned)stream_id & 0x0FFF;
}

int avtp_mac_parse(const char *s, uint8_t mac[AVTP_MAC_LEN])
{
	uint8_t out[AVTP_MAC_LEN];

	if (!s) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < AVTP_MAC_LEN; i++, s += 3) {
		int hi = vb_hex_val(s[0]), lo = hi < 0 ? -1 : vb_hex_val(s[1]);

		if (lo < 0 || s[2] != (i + 1 < AVTP_MAC_LEN ? ':' : '\0')) {
			return -EINVAL;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, out, AVTP_MAC_LEN);
	return 0;
}

char *avtp_mac_format(const uint8_t mac[AVTP_MAC_LEN], char out[AVTP_MAC_STRLEN])
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < AVTP_MAC_LEN; i++) {
		out[3 * i] = digits[mac[i] >> 4];
		out[3 * i + 1] = digits[mac[i] & 0xF];
		out[3 * i + 2] = i + 1 < AVTP_MAC_LEN ? ':' : '\0';
	}
	return out;
}

static const char *const avtp_err_names[AVTP_E_COUNT] = {
    [AVTP_OK] = "ok",
    [AVTP_E_RUNT] = "runt",
    [AVTP_E_ETHERTYPE] = "ethertype",
    [AVTP_E_VLAN] = "vlan",
    [AVTP_E_SRC_MAC] = "src_mac",
    [AVTP_E_SUBTYPE] = "subtype",
    [AVTP_E_SV] = "sv",
    [AVTP_E_VERSION] = "version",
    [AVTP_E_RESERVED] = "reserved",
    [AVTP_E_LENGTH] = "length",
    [AVTP_E_STREAM_MAC] = "stream_mac",
    [AVTP_E_STREAM_CHAN] = "stream_chan",
    [AVTP_E_CLASS] = "class",
    [AVTP_E_ACF_ZERO] = "acf_zero",
    [AVTP_E_ACF_OVERRUN] = "acf_overrun",
    [AVTP_E_TOO_MANY] = "too_many",
    [AVTP_E_MSG_SUBTYPE] = "msg_subtype",
    [AVTP_E_MSG_TYPE] = "msg_type",
    [AVTP_E_MSG_SIZE] = "msg_size",
    [AVTP_E_DATA_LEN] = "data_len",
    [AVTP_E_PADDING] = "padding",
    [AVTP_E_FLAGS] = "flags",
    [AVTP_E_CLASS_MISMATCH] = "class_mismatch",
    [AVTP_E_CTL_OP] = "ctl_op",
    [AVTP_E_TOKEN] = "token",
    [AVTP_E_CTL_FIELD] = "ctl_field",
    [AVTP_E_REASON] = "reason",
    [AVTP_E_NOSPACE] = "nospace",
    [AVTP_E_INVAL] = "inval",
};

const char *avtp_err_name(unsigned err)
{
	return err < AVTP_E_COUNT && avtp_err_names[err] ? avtp_err_names[err] : "unknown";
}

static const char *const avtp_class_names[AVTP_NCLASS] = {
    [AVTP_CLASS_CONTROL] = "control",
    [AVTP_CLASS_AUDIO] = "audio",
    [AVTP_CLASS_VIDEO] = "video",
    [AVTP_CLASS_BULK] = "bulk",
};

const char *avtp_class_name(unsigned cls)
{
	return cls < AVTP_NCLASS ? avtp_class_names[cls] : "unknown";
}

static const char *const avtp_ctl_op_names[AVTP_CTL_OP_MAX] = {
    [AVTP_CTL_OPEN] = "OPEN", [AVTP_CTL_ACCEPT] = "ACCEPT", [AVTP_CTL_CLOSE] = "CLOSE",
    [AVTP_CTL_PING] = "PING", [AVTP_CTL_PONG] = "PONG",
};

const char *avtp_ctl_op_name(unsigned op)
{
	return op < AVTP_CTL_OP_MAX && avtp_ctl_op_names[op] ? avtp_ctl_op_names[op] : "unknown";
}

const char *avtp_acf_name(unsigned type)
{
	const struct avtp_msg_desc *d = msg_desc(type);

	return d ? d->name : "unknown";
}
