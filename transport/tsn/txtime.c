/*
 * SO_TXTIME on a socket and its error queue.
 *
 * The kernel side (6.1): sock_setsockopt(SO_TXTIME) takes struct
 * sock_txtime {clockid, flags}; __sock_cmsg_send() reads SCM_TXTIME as a
 * u64 into skb->tstamp. ETF (net/sched/sch_etf.c) refuses a frame with
 * report_sock_error(): a clone of the frame on the socket's error queue
 * with a sock_extended_err {ee_errno EINVAL or ECANCELED, ee_origin
 * SO_EE_ORIGIN_TXTIME, ee_code SO_EE_CODE_TXTIME_INVALID_PARAM or _MISSED,
 * ee_data the launch time's high 32 bits, ee_info its low 32 bits}.
 * AF_PACKET hands it out with MSG_ERRQUEUE as SOL_PACKET /
 * PACKET_TX_TIMESTAMP (af_packet.c packet_recvmsg), UDP as IP_RECVERR or
 * IPV6_RECVERR. Queued errors make poll() report POLLERR on the socket.
 */
#include "transport/tsn/txtime.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>

#include "bridge/util.h"

#ifndef SO_TXTIME
#define SO_TXTIME 61
#endif
#ifndef SCM_TXTIME
#define SCM_TXTIME SO_TXTIME
#endif
#ifndef SOL_PACKET
#define SOL_PACKET 263
#endif

/* The cmsgs that carry a sock_extended_err, per socket family. */
static const struct {
	int level, type;
} txtime_err_cmsgs[] = {
    {SOL_PACKET, PACKET_TX_TIMESTAMP},
    {SOL_IP, IP_RECVERR},
    {SOL_IPV6, IPV6_RECVERR},
};

int txtime_enable(int fd, int clockid, uint32_t flags)
{
	struct sock_txtime st = {
	    .clockid = clockid,
	    .flags = (flags & SOF_TXTIME_DEADLINE_MODE) | SOF_TXTIME_REPORT_ERRORS,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_TXTIME, &st, sizeof(st)) < 0) {
		return -errno;
	}
	return 0;
}

size_t txtime_cmsg_put(void *buf, size_t len, uint64_t txtime)
{
	struct cmsghdr *c = buf;

	if (len < TXTIME_CMSG_SPACE) {
		return 0;
	}
	memset(buf, 0, TXTIME_CMSG_SPACE);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_TXTIME;
	c->cmsg_len = CMSG_LEN(sizeof(txtime));
	memcpy(CMSG_DATA(c), &txtime, sizeof(txtime));
	return TXTIME_CMSG_SPACE;
}

static bool is_err_cmsg(int level, int type)
{
	for (size_t i = 0; i < ARRAY_SIZE(txtime_err_cmsgs); i++) {
		if (txtime_err_cmsgs[i].level == level && txtime_err_cmsgs[i].type == type) {
			return true;
		}
	}
	return false;
}

/* A sock_extended_err of dlen bytes: 1 with *out for a launch-time error, 0 for another origin. */
static int ee_parse(const uint8_t *d, size_t dlen, struct txtime_err *out)
{
	struct sock_extended_err ee;

	if (dlen < sizeof(ee)) {
		return -1;
	}
	memcpy(&ee, d, sizeof(ee));
	if (ee.ee_origin != SO_EE_ORIGIN_TXTIME) {
		return 0;
	}
	out->ee_errno = ee.ee_errno;
	out->code = ee.ee_code;
	out->txtime = (uint64_t)ee.ee_data << 32 | ee.ee_info;
	return 1;
}

/*
 * Walks the cmsgs by hand rather than with CMSG_NXTHDR: every cmsg_len is
 * compared with what is left of the buffer we were given.
 */
int txtime_err_parse(const uint8_t *ctl, size_t len, struct txtime_err *out)
{
	const size_t hdr = CMSG_LEN(0); /* struct cmsghdr, aligned: where the data starts */
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	while (len - off >= sizeof(struct cmsghdr)) {
		struct cmsghdr c;
		size_t left = len - off;
		int rc;

		memcpy(&c, ctl + off, sizeof(c));
		if (c.cmsg_len < hdr || c.cmsg_len > left) {
			return -1;
		}
		if (is_err_cmsg(c.cmsg_level, c.cmsg_type)) {
			rc = ee_parse(ctl + off + hdr, c.cmsg_len - hdr, out);
			if (rc != 0) {
				return rc;
			}
		}
		off += VB_MIN((size_t)CMSG_ALIGN(c.cmsg_len), left);
	}
	return 0;
}

void txtime_count(struct txtime_stats *st, int rc, const struct txtime_err *e)
{
	if (rc != 1) {
		st->other++;
		return;
	}
	if (e->code == SO_EE_CODE_TXTIME_INVALID_PARAM) {
		st->invalid++;
	} else if (e->code == SO_EE_CODE_TXTIME_MISSED) {
		st->missed++;
	} else {
		st->other++;
		return;
	}
	st->last_txtime = e->txtime;
	st->last_errno = (int)e->ee_errno;
}

int txtime_drain(int fd, struct txtime_stats *st)
{
	int found = 0;

	for (unsigned i = 0; i < TXTIME_DRAIN_MAX; i++) {
		union {
			struct cmsghdr align;
			uint8_t b[256];
		} ctl;
		uint8_t data[64]; /* the refused frame comes back too: its head is enough */
		struct iovec iov = {data, sizeof(data)};
		struct msghdr m = {
		    .msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = ctl.b,
		    .msg_controllen = sizeof(ctl.b),
		};
		struct txtime_err e;
		int rc;

		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno == EAGAIN || errno == EWOULDBLOCK ? found : -errno;
		}
		rc = txtime_err_parse(ctl.b, m.msg_controllen, &e);
		txtime_count(st, rc, &e);
		found += rc == 1 && (e.code == SO_EE_CODE_TXTIME_INVALID_PARAM ||
		                     e.code == SO_EE_CODE_TXTIME_MISSED);
	}
	return found;
}

uint64_t txtime_next(struct txtime_sched *s, uint64_t now, uint64_t want)
{
	uint64_t t = now + s->lead_ns;

	if (t < now) {
		t = UINT64_MAX;
	}
	t = VB_MAX(t, want);
	t = VB_MAX(t, s->last);
	s->last = t;
	return t;
}
