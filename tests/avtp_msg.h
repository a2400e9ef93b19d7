/*
 * The tsn:// messages (transport/tsn/avtp.h) as test_avtp and fuzz_avtp
 * handle them: one ACF message of whichever kind, decoded from a listed
 * message, built into a frame, and compared with another field by field, so
 * that a field the decoder or the builder forgets shows up. No cmocka here.
 */
#ifndef VB_TESTS_AVTP_MSG_H
#define VB_TESTS_AVTP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/tsn/avtp.h"

struct any_msg {
	uint8_t type; /* AVTP_ACF_SEG, _ACK or _CTL: which of u */
	union {
		struct avtp_seg seg;
		struct avtp_ack ack;
		struct avtp_ctl ctl;
	} u;
};

static inline int same_bytes(const void *a, const void *b, size_t n)
{
	return n == 0 || (a && b && memcmp(a, b, n) == 0);
}

static inline int hdr_equal(const struct avtp_hdr *x, const struct avtp_hdr *y)
{
	return !memcmp(x->dst, y->dst, AVTP_MAC_LEN) && !memcmp(x->src, y->src, AVTP_MAC_LEN) &&
	       x->vlan == y->vlan && x->pcp == y->pcp && x->vid == y->vid &&
	       x->subtype == y->subtype && x->sv == y->sv && x->version == y->version &&
	       x->tv == y->tv && x->tu == y->tu && x->seq == y->seq &&
	       x->stream_id == y->stream_id && x->avtp_timestamp == y->avtp_timestamp;
}

static inline int seg_equal(const struct avtp_seg *x, const struct avtp_seg *y)
{
	return x->flags == y->flags && x->cls == y->cls && x->token == y->token &&
	       x->seq == y->seq && x->data_len == y->data_len &&
	       same_bytes(x->data, y->data, x->data_len);
}

static inline int ack_equal(const struct avtp_ack *x, const struct avtp_ack *y)
{
	return x->cls == y->cls && x->token == y->token && x->cum == y->cum &&
	       x->window == y->window && x->sack == y->sack;
}

static inline int ctl_equal(const struct avtp_ctl *x, const struct avtp_ctl *y)
{
	return x->op == y->op && x->token == y->token && x->my_token == y->my_token &&
	       x->max_seg == y->max_seg && x->window == y->window && x->isn == y->isn &&
	       x->time == y->time && x->reason_len == y->reason_len &&
	       same_bytes(x->reason, y->reason, x->reason_len);
}

/* Decodes one listed message into *m; the decoder's status, -1 for a kind we do not carry. */
static inline int any_msg_decode(const struct avtp_acf *a, struct any_msg *m)
{
	m->type = a->type;
	switch (a->type) {
	case AVTP_ACF_SEG:
		return avtp_seg_decode(a->msg, a->len, &m->u.seg);
	case AVTP_ACF_ACK:
		return avtp_ack_decode(a->msg, a->len, &m->u.ack);
	case AVTP_ACF_CTL:
		return avtp_ctl_decode(a->msg, a->len, &m->u.ctl);
	default:
		return -1;
	}
}

/* Adds *m to the frame b builds; the builder's status, -1 for a kind we do not carry. */
static inline int any_msg_build(struct avtp_builder *b, const struct any_msg *m)
{
	switch (m->type) {
	case AVTP_ACF_SEG:
		return avtp_build_seg(b, &m->u.seg);
	case AVTP_ACF_ACK:
		return avtp_build_ack(b, &m->u.ack);
	case AVTP_ACF_CTL:
		return avtp_build_ctl(b, &m->u.ctl);
	default:
		return -1;
	}
}

static inline int any_msg_equal(const struct any_msg *x, const struct any_msg *y)
{
	if (x->type != y->type) {
		return 0;
	}
	switch (x->type) {
	case AVTP_ACF_SEG:
		return seg_equal(&x->u.seg, &y->u.seg);
	case AVTP_ACF_ACK:
		return ack_equal(&x->u.ack, &y->u.ack);
	case AVTP_ACF_CTL:
		return ctl_equal(&x->u.ctl, &y->u.ctl);
	default:
		return 0;
	}
}

#endif
