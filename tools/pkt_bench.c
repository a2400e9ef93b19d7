/*
 * pkt-bench: the raw AF_PACKET baseline that tsn:// links are held against,
 * run between the same namespaces in the same run (tests/e2e/bench_tsn.sh).
 *
 *   pkt-bench server --interface IF [--idle T]
 *   pkt-bench pingpong --interface IF --peer MAC [--request 64] [--reply BYTES]
 *                      [--count N] [--seconds T] [--warmup N]
 *   pkt-bench stream --interface IF --peer MAC [--size BYTES] [--batch 32] [--seconds T]
 *
 * Frames carry EtherType 0x88B5 (IEEE 802 local experimental 1), not
 * tsn://'s 0x22F0: a vbridged on the same interface never sees them and
 * pkt-bench never sees its frames. Sizes are Ethernet payload bytes (after
 * the 14-byte header), at most the interface MTU per frame. The sockets are
 * made as transport/tsn/tsn_port.c makes its own, so the baseline takes the
 * same kernel path: SOCK_RAW bound to (interface, EtherType), 4 MiB buffers
 * (forced when allowed), PACKET_IGNORE_OUTGOING, recvmmsg/sendmmsg batches,
 * no PACKET_QDISC_BYPASS.
 *
 * Every frame's payload starts with a 32-byte header {le32 magic, u8 type,
 * 3 reserved, le32 session, le32 seq, le64 a, le64 b}, zero filler after it:
 *   PING    a = reply bytes wanted; answered with b PONG frames of at most
 *           MTU bytes each adding up to a (the last at least 46), PONG a =
 *           fragment index, b = fragments (at most 64)
 *   DATA    counted by the server for its current session (a new session
 *           starts the count again)
 *   END     a = DATA frames sent; answered with REPORT a = frames, b = bytes
 *           the server received of that session before the END
 * pingpong: one PING, wait for all of its PONGs; a round trip without them
 * after 1 s is lost, three lost in a row end the run. stream: DATA frames in
 * sendmmsg batches for T seconds, then END every 100 ms until a REPORT; the
 * rate counts only what arrived, from the first send to the REPORT, as
 * tcp-bench's stream does, and what did not arrive is reported as lost.
 * The server serves one client at a time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tools/bench.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define PB_ETHERTYPE    0x88B5u
#define PB_MAGIC        0x42504256u /* "VBPB" */
#define PB_ETH_HLEN     14u
#define PB_HDR          32u
#define PB_MIN_PAYLOAD  46u /* the Ethernet minimum */
#define PB_MAX_PAYLOAD  9216u
#define PB_FRAME_MAX    (PB_ETH_HLEN + PB_MAX_PAYLOAD)
#define PB_BATCH        32u /* as tsn_port.c's TSN_BATCH */
#define PB_BATCH_MAX    64u
#define PB_MAX_FRAGS    64u
#define PB_SOCK_BUF     (4 * 1024 * 1024)
#define PB_RCV_SLICE_MS 100           /* a blocking receive wakes this often */
#define PB_RTT_TIMEOUT  1000000000ull /* a round trip is lost after 1 s */
#define PB_LOST_IN_ROW  3u            /* ... and the run ends after three */
#define PB_END_TRIES    50u           /* END every 100 ms for 5 s */
#define PB_IDLE_S       300.0         /* the server's default --idle */
#define PB_SECONDS      5.0

enum pb_type {
	PB_PING = 1,
	PB_PONG,
	PB_DATA,
	PB_END,
	PB_REPORT,
	PB_NTYPES,
};

struct pb_hdr {
	uint8_t type;
	uint32_t session, seq;
	uint64_t a, b;
};

struct opts {
	const char *ifname, *peer;
	uint64_t request, reply, size, batch, count, warmup;
	double seconds, idle;
	bool json;
};

struct pb_sock {
	int fd;
	unsigned mtu;
	uint8_t mac[ETH_ALEN];
	struct sockaddr_ll to; /* the interface, for sendmmsg */
};

/* Up to PB_BATCH_MAX frames to send or just received. */
struct pb_batch {
	unsigned n;
	struct mmsghdr msg[PB_BATCH_MAX];
	struct iovec iov[PB_BATCH_MAX];
	struct sockaddr_ll from[PB_BATCH_MAX];
	uint8_t buf[PB_BATCH_MAX][PB_FRAME_MAX];
};

static struct pb_batch pb_rx, pb_tx;
static volatile sig_atomic_t pb_stop;

/* ---- frames ---- */

/* Ethernet and pkt-bench headers at frame; returns the bytes written. */
static size_t pb_encode(uint8_t *frame, const uint8_t dst[ETH_ALEN], const uint8_t src[ETH_ALEN],
                        const struct pb_hdr *h)
{
	uint8_t *p = frame + PB_ETH_HLEN;

	memcpy(frame, dst, ETH_ALEN);
	memcpy(frame + ETH_ALEN, src, ETH_ALEN);
	frame[12] = (uint8_t)(PB_ETHERTYPE >> 8);
	frame[13] = (uint8_t)PB_ETHERTYPE;
	bench_put_le32(p, PB_MAGIC);
	p[4] = h->type;
	p[5] = p[6] = p[7] = 0;
	bench_put_le32(p + 8, h->session);
	bench_put_le32(p + 12, h->seq);
	bench_put_le64(p + 16, h->a);
	bench_put_le64(p + 24, h->b);
	return PB_ETH_HLEN + PB_HDR;
}

/* A received frame: 0 with *h and its source MAC, or -EINVAL when it is not ours. */
static int pb_decode(const uint8_t *buf, size_t len, struct pb_hdr *h, uint8_t src[ETH_ALEN])
{
	const uint8_t *p = buf + PB_ETH_HLEN;

	if (len < PB_ETH_HLEN + PB_HDR || buf[12] != (uint8_t)(PB_ETHERTYPE >> 8) ||
	    buf[13] != (uint8_t)PB_ETHERTYPE || bench_get_le32(p) != PB_MAGIC) {
		return -EINVAL;
	}
	h->type = p[4];
	if (h->type == 0 || h->type >= PB_NTYPES) {
		return -EINVAL;
	}
	h->session = bench_get_le32(p + 8);
	h->seq = bench_get_le32(p + 12);
	h->a = bench_get_le64(p + 16);
	h->b = bench_get_le64(p + 24);
	memcpy(src, buf + ETH_ALEN, ETH_ALEN);
	return 0;
}

/* "02:00:00:00:00:0a", unicast: 0 or -EINVAL. */
static int pb_parse_mac(const char *s, uint8_t mac[ETH_ALEN])
{
	unsigned v[ETH_ALEN];
	int end = 0;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
	           &end) != ETH_ALEN ||
	    end != 17 || s[end] != '\0') {
		return -EINVAL;
	}
	for (int i = 0; i < ETH_ALEN; i++) {
		mac[i] = (uint8_t)v[i];
	}
	return (mac[0] & 1) ? -EINVAL : 0;
}

/* ---- sockets ---- */

static void pb_lookup(const char *ifname, struct pb_sock *s)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		bench_die("AF_PACKET socket: %s%s", strerror(errno),
		          errno == EPERM ? " (needs CAP_NET_RAW)" : "");
	}
	if (strlen(ifname) >= sizeof(ifr.ifr_name)) {
		bench_die("%s: interface name too long", ifname);
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		bench_die("%s: no such interface (%s)", ifname, strerror(errno));
	}
	s->to = (struct sockaddr_ll){.sll_family = AF_PACKET,
	                             .sll_protocol = htons(PB_ETHERTYPE),
	                             .sll_ifindex = ifr.ifr_ifindex,
	                             .sll_halen = ETH_ALEN};
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 ||
	    ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
		bench_die("%s: not an Ethernet interface", ifname);
	}
	memcpy(s->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0 || ifr.ifr_mtu < (int)PB_MIN_PAYLOAD) {
		bench_die("%s: MTU unknown or below %u", ifname, PB_MIN_PAYLOAD);
	}
	s->mtu = ifr.ifr_mtu > (int)PB_MAX_PAYLOAD ? PB_MAX_PAYLOAD : (unsigned)ifr.ifr_mtu;
	close(fd);
}

static void pb_sock_buf(int fd, int opt, int force)
{
	int v = PB_SOCK_BUF;

	/* FORCE ignores rmem_max/wmem_max but needs CAP_NET_ADMIN, as in tsn_port.c. */
	if (setsockopt(fd, SOL_SOCKET, force, &v, sizeof(v)) < 0) {
		(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
	}
}

/* One socket both ways; blocking receives wake every PB_RCV_SLICE_MS. */
static void pb_open(const char *ifname, struct pb_sock *s)
{
	const struct timeval slice = {.tv_usec = PB_RCV_SLICE_MS * 1000};
	int one = 1;

	pb_lookup(ifname, s);
	s->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(PB_ETHERTYPE));
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&s->to, sizeof(s->to)) < 0) {
		bench_die("%s: AF_PACKET socket: %s", ifname, strerror(errno));
	}
	(void)setsockopt(s->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	pb_sock_buf(s->fd, SO_RCVBUF, SO_RCVBUFFORCE);
	pb_sock_buf(s->fd, SO_SNDBUF, SO_SNDBUFFORCE);
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof(slice)) < 0) {
		bench_die("SO_RCVTIMEO: %s", strerror(errno));
	}
}

/*
 * Waits up to PB_RCV_SLICE_MS for frames, then takes what is there: the
 * number of frames in pb_rx (0: none yet). Frames for other stations and
 * truncated ones are left out by the callers' pb_rx_frame().
 */
static unsigned pb_recv(struct pb_sock *s)
{
	int n;

	for (unsigned i = 0; i < PB_BATCH; i++) {
		pb_rx.iov[i] = (struct iovec){pb_rx.buf[i], PB_FRAME_MAX};
		pb_rx.msg[i].msg_hdr = (struct msghdr){.msg_name = &pb_rx.from[i],
		                                       .msg_namelen = sizeof(pb_rx.from[i]),
		                                       .msg_iov = &pb_rx.iov[i],
		                                       .msg_iovlen = 1};
	}
	n = recvmmsg(s->fd, pb_rx.msg, PB_BATCH, MSG_WAITFORONE, NULL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			return 0;
		}
		bench_die("recvmmsg: %s", strerror(errno));
	}
	pb_rx.n = (unsigned)n;
	return pb_rx.n;
}

/* Frame i of pb_rx decoded: 0, or -EINVAL for a frame that is not for us. */
static int pb_rx_frame(unsigned i, struct pb_hdr *h, uint8_t src[ETH_ALEN], size_t *len)
{
	const struct mmsghdr *m = &pb_rx.msg[i];

	if ((m->msg_hdr.msg_flags & MSG_TRUNC) || pb_rx.from[i].sll_pkttype != PACKET_HOST) {
		return -EINVAL;
	}
	*len = m->msg_len;
	return pb_decode(pb_rx.buf[i], m->msg_len, h, src);
}

/* Sends the frames queued in pb_tx: how many the kernel took (the rest are lost). */
static unsigned pb_flush(struct pb_sock *s)
{
	unsigned done = 0;

	while (done < pb_tx.n) {
		int n = sendmmsg(s->fd, pb_tx.msg + done, pb_tx.n - done, 0);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno != ENOBUFS && errno != EAGAIN) {
			bench_die("sendmmsg: %s", strerror(errno));
		}
		if (n <= 0) {
			break; /* a full queue: counted as lost by whoever waits for them */
		}
		done += (unsigned)n;
	}
	pb_tx.n = 0;
	return done;
}

/* Room for the next frame of pb_tx (the batch goes out first when full). */
static uint8_t *pb_tx_buf(struct pb_sock *s)
{
	if (pb_tx.n == PB_BATCH_MAX) {
		pb_flush(s);
	}
	return pb_tx.buf[pb_tx.n];
}

/* Queues the len bytes written at pb_tx_buf()'s frame. */
static void pb_tx_commit(size_t len)
{
	unsigned i = pb_tx.n++;

	pb_tx.iov[i] = (struct iovec){pb_tx.buf[i], len};
	pb_tx.msg[i].msg_hdr = (struct msghdr){.msg_iov = &pb_tx.iov[i], .msg_iovlen = 1};
}

/* One frame of len payload bytes (header, zero filler) to dst, queued. */
static void pb_queue(struct pb_sock *s, const uint8_t dst[ETH_ALEN], const struct pb_hdr *h,
                     size_t len)
{
	uint8_t *f = pb_tx_buf(s);
	size_t hl = pb_encode(f, dst, s->mac, h);

	memset(f + hl, 0, PB_ETH_HLEN + len - hl);
	pb_tx_commit(PB_ETH_HLEN + len);
}

/* ---- server ---- */

struct pb_server {
	struct pb_sock s;
	uint32_t session; /* of the stream being counted */
	uint64_t frames, bytes;
	uint64_t pings, streams, refused;
};

static void serve_ping(struct pb_server *sv, const uint8_t src[ETH_ALEN], const struct pb_hdr *h)
{
	unsigned mtu = sv->s.mtu;
	uint64_t frags = (h->a + mtu - 1) / mtu, left = h->a;
	struct pb_hdr r = {.type = PB_PONG, .session = h->session, .seq = h->seq, .b = frags};

	if (h->a < PB_MIN_PAYLOAD || frags > PB_MAX_FRAGS) {
		sv->refused++;
		return;
	}
	for (r.a = 0; r.a < frags; r.a++) {
		size_t n = left > mtu ? mtu : left;

		pb_queue(&sv->s, src, &r, n < PB_MIN_PAYLOAD ? PB_MIN_PAYLOAD : n);
		left -= n;
	}
	sv->pings++;
}

static void serve_frame(struct pb_server *sv, unsigned i)
{
	uint8_t src[ETH_ALEN];
	struct pb_hdr h;
	size_t len;

	if (pb_rx_frame(i, &h, src, &len) < 0) {
		return;
	}
	switch (h.type) {
	case PB_PING:
		serve_ping(sv, src, &h);
		break;
	case PB_DATA:
		if (h.session != sv->session || sv->frames == 0) {
			sv->session = h.session;
			sv->frames = sv->bytes = 0;
			sv->streams++;
		}
		sv->frames++;
		sv->bytes += len - PB_ETH_HLEN;
		break;
	case PB_END: {
		bool mine = h.session == sv->session;
		struct pb_hdr r = {.type = PB_REPORT,
		                   .session = h.session,
		                   .seq = h.seq,
		                   .a = mine ? sv->frames : 0,
		                   .b = mine ? sv->bytes : 0};

		pb_queue(&sv->s, src, &r, PB_MIN_PAYLOAD);
		break;
	}
	default:
		break;
	}
}

static void on_signal(int sig)
{
	pb_stop = 1;
}

static int cmd_server(const struct opts *o)
{
	static struct pb_server sv;
	const struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: wake recvmmsg */
	uint64_t idle_ns = (uint64_t)(o->idle * 1e9), last;

	pb_open(o->ifname, &sv.s);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fprintf(stderr, "pkt-bench: serving on %s (EtherType 0x%04X, MTU %u)\n", o->ifname,
	        PB_ETHERTYPE, sv.s.mtu);
	last = bench_now_ns();
	while (!pb_stop) {
		unsigned n = pb_recv(&sv.s);

		if (n == 0) {
			if (bench_now_ns() - last >= idle_ns) {
				fprintf(stderr, "pkt-bench: idle for %.0f s, exiting\n", o->idle);
				break;
			}
			continue;
		}
		last = bench_now_ns();
		for (unsigned i = 0; i < n; i++) {
			serve_frame(&sv, i);
		}
		pb_flush(&sv.s);
	}
	fprintf(stderr,
	        "pkt-bench: server done: %" PRIu64 " pings, %" PRIu64 " streams, %" PRIu64
	        " refused\n",
	        sv.pings, sv.streams, sv.refused);
	return 0;
}

/* ---- clients ---- */

struct pb_client {
	struct pb_sock s;
	uint8_t peer[ETH_ALEN];
	uint32_t session, seq;
};

static void client_open(struct pb_client *c, const struct opts *o)
{
	if (!o->peer || pb_parse_mac(o->peer, c->peer) < 0) {
		bench_die("--peer %s: want the server's unicast MAC, e.g. 02:00:00:00:00:0a",
		          o->peer ? o->peer : "(none)");
	}
	pb_open(o->ifname, &c->s);
	if (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session)) {
		bench_die("getrandom: %s", strerror(errno));
	}
}

/*
 * Marks the PONGs of the current round trip in *got, the number of fragments
 * taken from the first (*frags, 0 before): true once all arrived.
 */
static bool client_take_pongs(struct pb_client *c, unsigned n, uint64_t *frags, uint64_t *got)
{
	uint8_t src[ETH_ALEN];
	struct pb_hdr h;
	size_t len;

	for (unsigned i = 0; i < n; i++) {
		if (pb_rx_frame(i, &h, src, &len) < 0 || h.type != PB_PONG ||
		    h.session != c->session || h.seq != c->seq || memcmp(src, c->peer, ETH_ALEN)) {
			continue;
		}
		if (*frags == 0 && h.b >= 1 && h.b <= PB_MAX_FRAGS) {
			*frags = h.b;
		}
		if (h.b == *frags && h.a < *frags) {
			*got |= 1ull << h.a;
		}
	}
	return *frags && *got == (*frags == 64 ? UINT64_MAX : (1ull << *frags) - 1);
}

/* One PING and all of its PONGs: the round trip in ns, or 0 when lost (1 s). */
static uint64_t client_round_trip(struct pb_client *c, uint64_t request, uint64_t reply)
{
	struct pb_hdr h = {.type = PB_PING, .session = c->session, .seq = ++c->seq, .a = reply};
	uint64_t frags = 0, got = 0, t0;

	pb_queue(&c->s, c->peer, &h, request);
	t0 = bench_now_ns();
	if (pb_flush(&c->s) != 1) {
		return 0;
	}
	while (bench_now_ns() - t0 < PB_RTT_TIMEOUT) {
		unsigned n = pb_recv(&c->s);

		if (n && client_take_pongs(c, n, &frags, &got)) {
			return bench_now_ns() - t0;
		}
	}
	return 0;
}

/* Is the server there (and are the sizes right)? Dies after PB_LOST_IN_ROW tries. */
static void client_probe(struct pb_client *c, const struct opts *o, uint64_t request,
                         uint64_t reply)
{
	for (unsigned i = 0; i < PB_LOST_IN_ROW; i++) {
		if (client_round_trip(c, request, reply)) {
			return;
		}
	}
	bench_die("no answer from %s on %s in %u s: is `pkt-bench server --interface IF` "
	          "running there?",
	          o->peer, o->ifname, PB_LOST_IN_ROW);
}

static void check_sizes(const struct pb_client *c, uint64_t request, uint64_t reply)
{
	if (request > c->s.mtu) {
		bench_die("--request %" PRIu64 ": more than one frame (MTU %u)", request, c->s.mtu);
	}
	if ((reply + c->s.mtu - 1) / c->s.mtu > PB_MAX_FRAGS) {
		bench_die("--reply %" PRIu64 ": more than %u frames of MTU %u", reply, PB_MAX_FRAGS,
		          c->s.mtu);
	}
}

static int cmd_pingpong(const struct opts *o)
{
	static struct pb_client c;
	static struct bench_hist lat;
	uint64_t reply = o->reply ? o->reply : o->request, start, t, deadline, n = 0, lost = 0;
	unsigned in_row = 0;

	client_open(&c, o);
	check_sizes(&c, o->request, reply);
	client_probe(&c, o, o->request, reply);
	for (uint64_t i = 0; i < o->warmup; i++) {
		client_round_trip(&c, o->request, reply);
	}
	bench_hist_reset(&lat);
	start = t = bench_now_ns();
	deadline = o->seconds > 0 ? start + (uint64_t)(o->seconds * 1e9) : UINT64_MAX;
	while (n < o->count && t < deadline) {
		uint64_t rtt = client_round_trip(&c, o->request, reply);

		t = bench_now_ns();
		if (rtt == 0) {
			lost++;
			if (++in_row == PB_LOST_IN_ROW) {
				bench_die("%u round trips in a row lost: the server is gone",
				          PB_LOST_IN_ROW);
			}
			continue;
		}
		in_row = 0;
		bench_hist_add(&lat, rtt);
		n++;
	}
	bench_print(stdout,
	            &(struct bench_result){.tool = "pkt",
	                                   .mode = "pingpong",
	                                   .size = reply,
	                                   .depth = 1,
	                                   .queues = 1,
	                                   .requests = n,
	                                   .bytes = n * (o->request + reply),
	                                   .seconds = (double)(t - start) / 1e9,
	                                   .has_latency = true,
	                                   .lat = &lat,
	                                   .has_lost = true,
	                                   .lost = lost},
	            o->json);
	return 0;
}

/* DATA frames in batches until the deadline: how many the kernel took. */
static uint64_t stream_send(struct pb_client *c, size_t size, unsigned batch, uint64_t deadline)
{
	struct pb_hdr h = {.type = PB_DATA, .session = c->session};
	uint64_t sent = 0;

	for (unsigned i = 0; i < batch; i++) {
		pb_queue(&c->s, c->peer, &h, size);
	}
	do {
		for (unsigned i = 0; i < batch; i++) {
			bench_put_le32(pb_tx.buf[i] + PB_ETH_HLEN + 12, c->seq++);
		}
		pb_tx.n = batch;
		sent += pb_flush(&c->s);
	} while (bench_now_ns() < deadline);
	return sent;
}

/* END until the REPORT: 0 with what the server counted, or -ETIMEDOUT. */
static int stream_end(struct pb_client *c, uint64_t sent, uint64_t *frames, uint64_t *bytes)
{
	struct pb_hdr h = {.type = PB_END, .session = c->session, .seq = c->seq, .a = sent}, r;
	uint8_t src[ETH_ALEN];
	size_t len;

	for (unsigned t = 0; t < PB_END_TRIES; t++) {
		unsigned n;

		pb_queue(&c->s, c->peer, &h, PB_MIN_PAYLOAD);
		pb_flush(&c->s);
		n = pb_recv(&c->s);
		for (unsigned i = 0; i < n; i++) {
			if (pb_rx_frame(i, &r, src, &len) == 0 && r.type == PB_REPORT &&
			    r.session == c->session && !memcmp(src, c->peer, ETH_ALEN)) {
				*frames = r.a;
				*bytes = r.b;
				return 0;
			}
		}
	}
	return -ETIMEDOUT;
}

static int cmd_stream(const struct opts *o)
{
	static struct pb_client c;
	size_t size;
	uint64_t start, end, sent, frames, bytes;

	client_open(&c, o);
	size = o->size ? o->size : c.s.mtu;
	if (size > c.s.mtu) {
		bench_die("--size %zu: more than the MTU (%u)", size, c.s.mtu);
	}
	client_probe(&c, o, PB_MIN_PAYLOAD, PB_MIN_PAYLOAD);
	start = bench_now_ns();
	sent = stream_send(&c, size, (unsigned)o->batch,
	                   start + (uint64_t)((o->seconds > 0 ? o->seconds : PB_SECONDS) * 1e9));
	if (stream_end(&c, sent, &frames, &bytes) < 0) {
		bench_die("no REPORT from %s after %u ENDs", o->peer, PB_END_TRIES);
	}
	end = bench_now_ns();
	if (frames > sent) {
		bench_die("server counted %" PRIu64 " frames, %" PRIu64
		          " were sent: another client?",
		          frames, sent);
	}
	bench_print(stdout,
	            &(struct bench_result){.tool = "pkt",
	                                   .mode = "stream",
	                                   .size = size,
	                                   .depth = (unsigned)o->batch,
	                                   .queues = 1,
	                                   .requests = frames,
	                                   .bytes = bytes,
	                                   .seconds = (double)(end - start) / 1e9,
	                                   .has_lost = true,
	                                   .lost = sent - frames},
	            o->json);
	return 0;
}

/* ---- command line ---- */

struct cmd {
	const char *name;
	int (*run)(const struct opts *o);
	bool client;
};

static const struct cmd cmds[] = {
    {"server", cmd_server, false},
    {"pingpong", cmd_pingpong, true},
    {"stream", cmd_stream, true},
};

#define OPT(field) offsetof(struct opts, field)

static const struct bench_opt opt_table[] = {
    {"interface", BO_STR, OPT(ifname), 0, 0, "IF         the interface (both ends)"},
    {"peer", BO_STR, OPT(peer), 0, 0, "MAC        client: the server's MAC"},
    {"request", BO_NUM, OPT(request), PB_MIN_PAYLOAD, PB_MAX_PAYLOAD,
     "BYTES      pingpong: the request frame's payload (default 64)"},
    {"reply", BO_NUM, OPT(reply), PB_MIN_PAYLOAD, PB_MAX_FRAGS *PB_MAX_PAYLOAD,
     "BYTES      pingpong: payload answered, in frames of at most the MTU\n"
     "                             (default: as --request, one frame)"},
    {"count", BO_NUM, OPT(count), 1, UINT32_MAX,
     "N          pingpong: round trips (default 10000)"},
    {"warmup", BO_NUM, OPT(warmup), 0, UINT32_MAX,
     "N          pingpong: round trips before measuring (default 100)"},
    {"size", BO_NUM, OPT(size), PB_MIN_PAYLOAD, PB_MAX_PAYLOAD,
     "BYTES      stream: payload per frame (default: the MTU)"},
    {"batch", BO_NUM, OPT(batch), 1, PB_BATCH_MAX,
     "N          stream: frames per sendmmsg (default 32)"},
    {"seconds", BO_SECONDS, OPT(seconds), 0, 0,
     "T          stream: how long to send (default 5);\n"
     "                             pingpong: stop after T s even before --count"},
    {"idle", BO_SECONDS, OPT(idle), 0, 0,
     "T          server: exit after T s without a frame (default 300)"},
    {"json", BO_FLAG, OPT(json), 0, 0, "           print one JSON object instead of a line"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static const char synopsis[] =
    "usage: pkt-bench server --interface IF [--idle T]\n"
    "       pkt-bench pingpong --interface IF --peer MAC [options]\n"
    "       pkt-bench stream --interface IF --peer MAC [options]\n"
    "Raw Ethernet frames with EtherType 0x88B5 (IEEE 802 local experimental 1,\n"
    "never tsn://'s 0x22F0); needs CAP_NET_RAW. Sizes are Ethernet payload bytes.\n";

int main(int argc, char **argv)
{
	struct opts o = {
	    .request = 64, .batch = PB_BATCH, .count = 10000, .warmup = 100, .idle = PB_IDLE_S};
	const struct cmd *cmd = &cmds[bench_pick_cmd(argc, argv, "pkt-bench", synopsis, cmds,
	                                             sizeof(cmds) / sizeof(cmds[0]),
	                                             sizeof(cmds[0]), opt_table, N_OPTS)];

	bench_getopt(argc, argv, synopsis, opt_table, N_OPTS, &o);
	if (optind != argc || !o.ifname || (cmd->client && !o.peer)) {
		fprintf(stderr, "%s(--help lists the options)\n", synopsis);
		return 2;
	}
	return cmd->run(&o);
}
