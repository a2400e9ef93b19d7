/*
 * Segmentation and reassembly for tsn:// (frag.h). The receiver checks the
 * message's length field as soon as its 4 bytes are in: a peer cannot make
 * us grow the buffer past what the message announces, nor past max_msg.
 */
#include "transport/tsn/frag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/util.h"
#include "transport/transport.h"

#define FRAG_RX_INIT (64u * 1024)

void frag_tx_next(struct frag_tx *f, const uint8_t hdr[12], size_t seg_max, size_t *n,
                  uint8_t *flags, uint32_t *chan)
{
	*flags = 0;
	if (f->left == 0) {
		f->left = get_le32(hdr);
		f->chan = get_le32(hdr + 8);
		*flags |= FRAG_FIRST;
	}
	*n = VB_MIN((size_t)f->left, seg_max);
	f->left -= (uint32_t)*n;
	if (f->left == 0) {
		*flags |= FRAG_LAST;
	}
	*chan = f->chan;
}

void frag_rx_init(struct frag_rx *r, size_t max_msg)
{
	memset(r, 0, sizeof(*r));
	r->max_msg = max_msg;
}

void frag_rx_fini(struct frag_rx *r)
{
	free(r->msg);
	frag_rx_init(r, r->max_msg);
}

static int frag_rx_room(struct frag_rx *r, size_t need)
{
	size_t cap;
	uint8_t *m;

	if (need <= r->cap) {
		return 0;
	}
	cap = VB_MAX(VB_MIN(VB_MAX(r->cap * 2, (size_t)FRAG_RX_INIT), r->max_msg), need);
	m = realloc(r->msg, cap);
	if (!m) {
		return -ENOMEM;
	}
	r->msg = m;
	r->cap = cap;
	return 0;
}

int frag_rx_push(struct frag_rx *r, uint8_t flags, const uint8_t *data, size_t n,
                 const uint8_t **msg, size_t *len, const char **why)
{
	if (!!(flags & FRAG_FIRST) == r->in_msg) {
		*why = r->in_msg ? "a message starts inside another"
		                 : "a segment continues no message";
		return -EPROTO;
	}
	if (flags & FRAG_FIRST) {
		r->in_msg = true;
		r->len = 0;
	}
	if (n > r->max_msg - r->len) {
		*why = "message over max-msg";
		return -EMSGSIZE;
	}
	if (frag_rx_room(r, r->len + n) < 0) {
		*why = "out of memory for a message";
		return -ENOMEM;
	}
	memcpy(r->msg + r->len, data, n);
	r->len += n;
	if (r->len >= 4) {
		uint32_t want = get_le32(r->msg);

		if (want < TRANSPORT_MIN_MSG || want > r->max_msg) {
			*why = "message length field out of range";
			return -EPROTO;
		}
		if (r->len > want) {
			*why = "message longer than its length field";
			return -EPROTO;
		}
	}
	if (!(flags & FRAG_LAST)) {
		return 0;
	}
	r->in_msg = false;
	if (r->len < 4 || get_le32(r->msg) != r->len) {
		*why = "message ends before its length field says";
		return -EPROTO;
	}
	*msg = r->msg;
	*len = r->len;
	return 1;
}
