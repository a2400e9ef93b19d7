/*
 * One network interface used by tsn:// links (internal to transport/tsn/):
 * an AF_PACKET socket for EtherType 0x22F0 bound to the interface, frames
 * read and written in batches (recvmmsg/sendmmsg). Ports are shared by name:
 * every link and the listener on one interface use one port, and the frame
 * handler demultiplexes. A port knows nothing about AVTP.
 */
#ifndef VB_TSN_PORT_H
#define VB_TSN_PORT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct tsn_port;

#define TSN_ETHERTYPE 0x22F0
#define TSN_BATCH     32          /* frames per recvmmsg/sendmmsg */
#define TSN_FRAME_MAX (9216 + 22) /* jumbo payload, Ethernet and 802.1Q headers */
#define TSN_CLASSES   4           /* transmit priorities a port keeps sockets for */

struct tsn_port_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_dropped; /* the kernel refused them (full queue, link down) */
	uint64_t rx_batches, tx_batches;
};

/* Called per received frame (destination MAC first), then once after each batch. */
struct tsn_port_handler {
	void (*frame)(struct tsn_port *p, const uint8_t *buf, size_t len, void *arg);
	void (*batch_end)(struct tsn_port *p, void *arg);
};

/*
 * The port for ifname, opened on first use (needs CAP_NET_RAW); takes a
 * reference. NULL with a reason in err.
 */
struct tsn_port *tsn_port_get(struct event_base *evb, const char *ifname, char *err, size_t errlen);
/* Drops a reference; the last one closes the socket. NULL is a no-op. */
void tsn_port_put(struct tsn_port *p);

/* One handler per port (the tsn transport's demultiplexer); NULL stops reading. */
void tsn_port_set_handler(struct tsn_port *p, const struct tsn_port_handler *h, void *arg);

const char *tsn_port_name(const struct tsn_port *p);
const uint8_t *tsn_port_mac(const struct tsn_port *p);
/* The interface MTU now (it may change while we run; links read it per frame). */
unsigned tsn_port_mtu(struct tsn_port *p);
/* The SO_PRIORITY frames of class c are sent with. */
int tsn_port_priority(const struct tsn_port *p, unsigned c);
void tsn_port_get_stats(const struct tsn_port *p, struct tsn_port_stats *st);
/* How class c is sent: "launch time (etf, CLOCK_TAI)" or "immediate (REASON)". */
const char *tsn_port_tx_mode(const struct tsn_port *p, unsigned c);
/* Frames the qdisc refused (error queue): bad launch time, missed launch time. */
void tsn_port_txtime_stats(const struct tsn_port *p, uint64_t *invalid, uint64_t *missed);

/*
 * Transmit: tsn_port_tx_buf() gives room for one frame of class c, up to
 * TSN_FRAME_MAX bytes (destination MAC first); tsn_port_tx_commit() queues
 * the len bytes written there (the next tx_buf() of c gives the next room).
 * Queued frames go out with one sendmmsg per class when TSN_BATCH are
 * queued or at tsn_port_flush(). A frame the kernel refuses is dropped and
 * counted: the reliable layer above retransmits.
 */
uint8_t *tsn_port_tx_buf(struct tsn_port *p, unsigned c);
void tsn_port_tx_commit(struct tsn_port *p, unsigned c, size_t len);
void tsn_port_flush(struct tsn_port *p);

#endif
