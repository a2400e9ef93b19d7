/*
 * Bridge messages cut into tsn:// segments and put together again
 * (docs/protocol.md 11.4: SEG FIRST/LAST). Pure: no I/O; the reassembly
 * buffer is the only allocation, grown to at most max_msg.
 *
 * Sender: frag_tx_next() says how many bytes of the queued message stream
 * the next segment takes and with which flags; messages are never mixed in
 * one segment. Receiver: frag_rx_push() takes segments in sequence order
 * and hands out each message once its last segment is in, after checking
 * the message's own length field (section 2) against what arrived.
 */
#ifndef VB_TSN_FRAG_H
#define VB_TSN_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAG_FIRST 0x01u /* = AVTP_SEG_FIRST */
#define FRAG_LAST  0x02u /* = AVTP_SEG_LAST */

struct frag_tx {
	uint32_t left; /* bytes of the message being cut; 0 at a message boundary */
	uint32_t chan; /* its channel (wire header bytes 8-11) */
};

/*
 * The next segment of at most seg_max bytes. At a boundary hdr must hold the
 * next message's first 12 bytes (its length and channel; messages are
 * queued whole, so they are there). Sets *n, *flags, *chan and advances.
 */
void frag_tx_next(struct frag_tx *f, const uint8_t hdr[12], size_t seg_max, size_t *n,
                  uint8_t *flags, uint32_t *chan);

struct frag_rx {
	uint8_t *msg;
	size_t len, cap;
	size_t max_msg;
	bool in_msg;
};

void frag_rx_init(struct frag_rx *r, size_t max_msg);
void frag_rx_fini(struct frag_rx *r);
/*
 * One segment, in sequence order. Returns 1 when it completed a message
 * (*msg and *len valid until the next call), 0 when more is needed, or
 * -EPROTO (segment out of place, length field contradicted), -EMSGSIZE
 * (over max_msg) or -ENOMEM, with *why set; after an error the receiver
 * must be dropped (the link ends).
 */
int frag_rx_push(struct frag_rx *r, uint8_t flags, const uint8_t *data, size_t n,
                 const uint8_t **msg, size_t *len, const char **why);

#endif
