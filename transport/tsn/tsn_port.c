/*
 * AF_PACKET I/O for tsn:// links, one port per interface.
 *
 * Receive: one SOCK_RAW socket bound to (ifindex, 0x22F0), read with
 * recvmmsg into TSN_BATCH fixed buffers, at most TSN_RX_ROUNDS batches per
 * wakeup so other fds get their turn (level-triggered: the rest waits).
 * PACKET_IGNORE_OUTGOING keeps our own transmissions out (on veth and
 * bridges the kernel would loop them back to us).
 *
 * Transmit: one socket per class with its SO_PRIORITY (the qdisc and, on a
 * VLAN, the PCP follow the priority; see tsn-and-time.md), each bound to the
 * interface with protocol 0 so it receives nothing. Frames are built in
 * place in per-class batch buffers and go out with one sendmmsg per class.
 * PACKET_QDISC_BYPASS is never set: it would skip the TSN qdiscs (ETF,
 * taprio).
 *
 * Launch time: at open the egress qdisc tree is read over netlink
 * (qdisc.c); a class whose priority lands only on ETF queues (directly or
 * under taprio in txtime-assist mode) gets SO_TXTIME on CLOCK_TAI, and each
 * of its frames an SCM_TXTIME launch time (as soon as ETF can take it, and
 * never earlier than the last: ETF drops those); refusals come back on the
 * error queue and are counted. Every other class sends at once.
 */
#include "transport/tsn/tsn_port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge/log.h"
#include "bridge/util.h"
#include "transport/tsn/qdisc.h"
#include "transport/tsn/txtime.h"

#define TSN_RX_ROUNDS       8                 /* recvmmsg batches per wakeup */
#define TSN_SOCK_BUF        (4 * 1024 * 1024) /* per socket, both ways */
#define TSN_TXTIME_SLACK_NS 200000ull         /* from our sendmmsg to ETF's enqueue */
#define TSN_MTU_NS          1000000000ull     /* how long a read MTU is trusted */

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

/* Socket priority per class: control, audio (class A), video (class B), bulk. */
static const int tsn_class_prio[TSN_CLASSES] = {6, 3, 2, 0};

struct tsn_txq {
	int fd;
	unsigned n;  /* frames queued */
	bool launch; /* SO_TXTIME: every frame carries a launch time */
	char mode[QDISC_WHY_LEN + 32];
	struct txtime_stats txerr;
	union txtime_cmsg ctl[TSN_BATCH];
	struct mmsghdr msg[TSN_BATCH];
	struct iovec iov[TSN_BATCH];
	uint8_t buf[TSN_BATCH][TSN_FRAME_MAX];
};

struct tsn_port {
	struct tsn_port *next; /* all open ports */
	unsigned refs;
	unsigned busy; /* inside tsn_rx_cb: the last put only marks the port dead */
	bool dead;
	struct event_base *evb;
	char name[IFNAMSIZ];
	int ifindex;
	uint8_t mac[ETH_ALEN];
	int rx_fd;
	struct event *rx_ev;
	const struct tsn_port_handler *h;
	void *harg;
	struct sockaddr_ll to;     /* the interface, for sendmmsg */
	struct txtime_sched sched; /* one for all classes: they may share an ETF queue */
	unsigned mtu;              /* cached: read again at most once per TSN_MTU_NS */
	uint64_t mtu_ns;
	struct tsn_port_stats st;
	unsigned tx_class; /* class of the frame tsn_port_tx_buf() handed out */
	struct tsn_txq txq[TSN_CLASSES];
	uint8_t rx_buf[TSN_BATCH][TSN_FRAME_MAX];
};

static struct tsn_port *tsn_ports;

static int tsn_sock_buf(int fd, int opt, int force)
{
	int v = TSN_SOCK_BUF;

	/* FORCE ignores rmem_max/wmem_max but needs CAP_NET_ADMIN; fall back quietly. */
	if (setsockopt(fd, SOL_SOCKET, force, &v, sizeof(v)) == 0) {
		return 0;
	}
	return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

static int tsn_sock_open(struct tsn_port *p, uint16_t proto, char *err, size_t errlen)
{
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(proto),
	    .sll_ifindex = p->ifindex,
	};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(proto));

	if (fd < 0) {
		snprintf(err, errlen, "%s: AF_PACKET socket: %s%s", p->name, strerror(errno),
		         errno == EPERM ? " (tsn:// needs CAP_NET_RAW)" : "");
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		snprintf(err, errlen, "%s: bind: %s", p->name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Interface index, MAC; the interface must be Ethernet. */
static int tsn_port_lookup(struct tsn_port *p, char *err, size_t errlen)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = -1;

	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", p->name, strerror(errno));
		return -1;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->name);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		snprintf(err, errlen, "%s: no such interface (%s)", p->name, strerror(errno));
		goto out;
	}
	p->ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		snprintf(err, errlen, "%s: hardware address: %s", p->name, strerror(errno));
		goto out;
	}
	if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
		snprintf(err, errlen, "%s: not an Ethernet interface", p->name);
		goto out;
	}
	memcpy(p->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	rc = 0;
out:
	close(fd);
	return rc;
}

/* One ioctl a second, not one per frame (a benchmark found it at a quarter of the CPU). */
unsigned tsn_port_mtu(struct tsn_port *p)
{
	uint64_t now = vb_now_ns();
	struct ifreq ifr = {0};

	if (p->mtu && now - p->mtu_ns < TSN_MTU_NS) {
		return p->mtu;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->name);
	if (ioctl(p->txq[0].fd, SIOCGIFMTU, &ifr) < 0 || ifr.ifr_mtu < 64) {
		p->mtu = 1500;
	} else {
		p->mtu = VB_MIN((unsigned)ifr.ifr_mtu, TSN_FRAME_MAX - 22u);
	}
	p->mtu_ns = now;
	return p->mtu;
}

static void tsn_port_close(struct tsn_port *p);

static void tsn_rx_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tsn_port *p = arg;
	struct mmsghdr msg[TSN_BATCH];
	struct iovec iov[TSN_BATCH];
	struct sockaddr_ll from[TSN_BATCH];

	p->busy++;

	for (int round = 0; round < TSN_RX_ROUNDS; round++) {
		int n;

		for (int i = 0; i < TSN_BATCH; i++) {
			iov[i] = (struct iovec){p->rx_buf[i], TSN_FRAME_MAX};
			msg[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
			                                 .msg_namelen = sizeof(from[i]),
			                                 .msg_iov = &iov[i],
			                                 .msg_iovlen = 1};
		}
		n = recvmmsg(p->rx_fd, msg, TSN_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				log_warn("tsn %s: recvmmsg", p->name);
			}
			break;
		}
		p->st.rx_batches++;
		for (int i = 0; i < n && p->h && !p->dead; i++) {
			/* Truncated (MSG_TRUNC) or looped-back frames are not ours to parse. */
			if ((msg[i].msg_hdr.msg_flags & MSG_TRUNC) ||
			    from[i].sll_pkttype == PACKET_OUTGOING) {
				continue;
			}
			p->st.rx_frames++;
			p->st.rx_bytes += msg[i].msg_len;
			p->h->frame(p, p->rx_buf[i], msg[i].msg_len, p->harg);
		}
		if (n < TSN_BATCH) {
			break;
		}
	}
	if (p->h && p->h->batch_end && !p->dead) {
		p->h->batch_end(p, p->harg);
	}
	if (--p->busy == 0 && p->dead) {
		tsn_port_close(p); /* the handler let go of the port meanwhile */
	}
}

static void tsn_port_close(struct tsn_port *p)
{
	if (p->rx_ev) {
		event_free(p->rx_ev);
	}
	if (p->rx_fd >= 0) {
		close(p->rx_fd);
	}
	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		if (p->txq[c].fd >= 0) {
			close(p->txq[c].fd);
		}
	}
	free(p);
}

/* Per class: launch time if the qdisc tree has ETF for its priority, else immediate. */
static void tsn_port_launch_setup(struct tsn_port *p)
{
	struct qdisc_tree *t = calloc(1, sizeof(*t));
	char err[160] = "out of memory";
	uint64_t lead = 0;
	bool known = t && qdisc_query(p->ifindex, t, err, sizeof(err)) == 0;

	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		struct tsn_txq *q = &p->txq[c];
		struct qdisc_decision d;
		int rc;

		if (known) {
			qdisc_decide(t, tsn_class_prio[c], &d);
		} else {
			qdisc_decide_immediate(&d, tsn_class_prio[c], err);
		}
		if (d.mode == QDISC_TX_LAUNCH) {
			rc = txtime_enable(q->fd, d.clockid, d.txtime_flags);
			if (rc < 0) {
				/* ETF would drop every frame of a socket without SO_TXTIME. */
				log_warnx("tsn %s: SO_TXTIME for priority %d: %s; sending at once",
				          p->name, tsn_class_prio[c], strerror(-rc));
				qdisc_decide_immediate(&d, tsn_class_prio[c], "SO_TXTIME refused");
			} else {
				q->launch = true;
				lead = VB_MAX(lead, (uint64_t)d.delta_ns);
			}
		}
		qdisc_decision_str(&d, q->mode, sizeof(q->mode));
		log_info("tsn %s: class %u (priority %d): %s", p->name, c, tsn_class_prio[c],
		         q->mode);
	}
	p->sched.lead_ns = lead + TSN_TXTIME_SLACK_NS;
	free(t);
}

static int tsn_port_open(struct tsn_port *p, char *err, size_t errlen)
{
	int one = 1;

	if (tsn_port_lookup(p, err, errlen) < 0) {
		return -1;
	}
	p->rx_fd = tsn_sock_open(p, TSN_ETHERTYPE, err, errlen);
	if (p->rx_fd < 0) {
		return -1;
	}
	/* Older kernels lack it; then the pkttype check in tsn_rx_cb does the job. */
	(void)setsockopt(p->rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	tsn_sock_buf(p->rx_fd, SO_RCVBUF, SO_RCVBUFFORCE);
	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		struct tsn_txq *q = &p->txq[c];

		q->fd = tsn_sock_open(p, 0, err, errlen);
		if (q->fd < 0) {
			return -1;
		}
		if (setsockopt(q->fd, SOL_SOCKET, SO_PRIORITY, &tsn_class_prio[c],
		               sizeof(tsn_class_prio[c])) < 0) {
			snprintf(err, errlen, "%s: SO_PRIORITY %d: %s", p->name, tsn_class_prio[c],
			         strerror(errno));
			return -1;
		}
		tsn_sock_buf(q->fd, SO_SNDBUF, SO_SNDBUFFORCE);
	}
	tsn_port_launch_setup(p);
	p->to = (struct sockaddr_ll){.sll_family = AF_PACKET,
	                             .sll_protocol = htons(TSN_ETHERTYPE),
	                             .sll_ifindex = p->ifindex,
	                             .sll_halen = ETH_ALEN};
	p->rx_ev = event_new(p->evb, p->rx_fd, EV_READ | EV_PERSIST, tsn_rx_cb, p);
	if (!p->rx_ev || event_add(p->rx_ev, NULL) < 0) {
		snprintf(err, errlen, "%s: out of memory", p->name);
		return -1;
	}
	return 0;
}

struct tsn_port *tsn_port_get(struct event_base *evb, const char *ifname, char *err, size_t errlen)
{
	struct tsn_port *p;

	if (!ifname[0] || strlen(ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "bad interface name \"%s\"", ifname);
		return NULL;
	}
	for (p = tsn_ports; p; p = p->next) {
		if (p->evb == evb && !strcmp(p->name, ifname)) {
			p->refs++;
			return p;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->evb = evb;
	p->refs = 1;
	p->rx_fd = -1;
	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		p->txq[c].fd = -1;
	}
	snprintf(p->name, sizeof(p->name), "%s", ifname);
	if (tsn_port_open(p, err, errlen) < 0) {
		tsn_port_close(p);
		return NULL;
	}
	p->next = tsn_ports;
	tsn_ports = p;
	log_info("tsn %s: port open, MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u", p->name, p->mac[0],
	         p->mac[1], p->mac[2], p->mac[3], p->mac[4], p->mac[5], tsn_port_mtu(p));
	return p;
}

void tsn_port_put(struct tsn_port *p)
{
	struct tsn_port **pp;

	if (!p || --p->refs > 0) {
		return;
	}
	tsn_port_flush(p);
	for (pp = &tsn_ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->busy) {
		p->dead = true; /* tsn_rx_cb closes it on the way out */
		p->h = NULL;
		return;
	}
	tsn_port_close(p);
}

void tsn_port_set_handler(struct tsn_port *p, const struct tsn_port_handler *h, void *arg)
{
	p->h = h;
	p->harg = arg;
}

const char *tsn_port_name(const struct tsn_port *p)
{
	return p->name;
}

const uint8_t *tsn_port_mac(const struct tsn_port *p)
{
	return p->mac;
}

const char *tsn_port_tx_mode(const struct tsn_port *p, unsigned c)
{
	return p->txq[c < TSN_CLASSES ? c : 0].mode;
}

void tsn_port_txtime_stats(const struct tsn_port *p, uint64_t *invalid, uint64_t *missed)
{
	*invalid = *missed = 0;
	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		*invalid += p->txq[c].txerr.invalid;
		*missed += p->txq[c].txerr.missed;
	}
}

int tsn_port_priority(const struct tsn_port *p, unsigned c)
{
	return tsn_class_prio[c < TSN_CLASSES ? c : 0];
}

void tsn_port_get_stats(const struct tsn_port *p, struct tsn_port_stats *st)
{
	*st = p->st;
}

/* Launch times for a batch of a launch-time class (now: CLOCK_TAI). */
static void tsn_txq_stamp(struct tsn_port *p, struct tsn_txq *q)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_TAI, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (unsigned i = 0; i < q->n; i++) {
		q->msg[i].msg_hdr.msg_control = q->ctl[i].buf;
		q->msg[i].msg_hdr.msg_controllen = txtime_cmsg_put(q->ctl[i].buf, sizeof(q->ctl[i]),
		                                                   txtime_next(&p->sched, now, 0));
	}
}

static void tsn_txq_flush(struct tsn_port *p, struct tsn_txq *q)
{
	unsigned done = 0;

	if (q->launch) {
		tsn_txq_stamp(p, q);
	}

	while (done < q->n) {
		int n = sendmmsg(q->fd, q->msg + done, q->n - done, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (q->launch && errno != EAGAIN) {
				/* ETF refused this frame (its launch time): skip it, send the rest.
				 */
				p->st.tx_dropped++;
				done++;
				continue;
			}
			/* Full queue, interface down: lost frames, the reliable layer resends. */
			p->st.tx_dropped += q->n - done;
			break;
		}
		for (int i = 0; i < n; i++) {
			p->st.tx_bytes += q->msg[done + (unsigned)i].msg_len;
		}
		p->st.tx_frames += (unsigned)n;
		done += (unsigned)n;
		if (n == 0) {
			p->st.tx_dropped += q->n - done;
			break;
		}
	}
	p->st.tx_batches++;
	q->n = 0;
	if (q->launch) {
		txtime_drain(q->fd, &q->txerr);
	}
}

void tsn_port_flush(struct tsn_port *p)
{
	for (unsigned c = 0; c < TSN_CLASSES; c++) {
		if (p->txq[c].n) {
			tsn_txq_flush(p, &p->txq[c]);
		}
	}
}

uint8_t *tsn_port_tx_buf(struct tsn_port *p, unsigned c)
{
	struct tsn_txq *q = &p->txq[c < TSN_CLASSES ? c : 0];

	if (q->n == TSN_BATCH) {
		tsn_txq_flush(p, q);
	}
	return q->buf[q->n];
}

void tsn_port_tx_commit(struct tsn_port *p, unsigned c, size_t len)
{
	struct tsn_txq *q = &p->txq[c < TSN_CLASSES ? c : 0];
	unsigned i = q->n;

	q->iov[i] = (struct iovec){q->buf[i], len};
	q->msg[i].msg_hdr = (struct msghdr){.msg_name = &p->to,
	                                    .msg_namelen = sizeof(p->to),
	                                    .msg_iov = &q->iov[i],
	                                    .msg_iovlen = 1};
	q->n++;
	if (q->n == TSN_BATCH) {
		tsn_txq_flush(p, q);
	}
}
