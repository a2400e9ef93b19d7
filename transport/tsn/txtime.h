/*
 * Launch time on one socket (SO_TXTIME; tsn-and-time.md "Launch time"):
 * turn it on, put a launch time on each message (an SCM_TXTIME cmsg), pick
 * launch times an ETF queue accepts, and count the frames the qdisc
 * refused from the socket's error queue. Whether to use it at all is
 * qdisc_decide()'s answer (transport/tsn/qdisc.h).
 *
 * txtime_cmsg_put(), txtime_err_parse() and txtime_next() are pure;
 * txtime_enable() and txtime_drain() do the socket calls.
 */
#ifndef VB_TSN_TXTIME_H
#define VB_TSN_TXTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* msg_controllen of a message with one launch time. */
#define TXTIME_CMSG_SPACE CMSG_SPACE(sizeof(uint64_t))
/* Error-queue messages txtime_drain() reads per call at most. */
#define TXTIME_DRAIN_MAX 64u

/* Room for one SCM_TXTIME cmsg, aligned as struct cmsghdr must be. */
union txtime_cmsg {
	struct cmsghdr align;
	uint8_t buf[TXTIME_CMSG_SPACE];
};

/* Frames the qdisc refused, by reason (sock_extended_err ee_code). */
struct txtime_stats {
	uint64_t invalid;     /* SO_EE_CODE_TXTIME_INVALID_PARAM: clock or deadline mode not the
	                         qdisc's, or a launch time in the past or before the queue's last */
	uint64_t missed;      /* SO_EE_CODE_TXTIME_MISSED: dequeued after its launch time */
	uint64_t other;       /* error-queue messages of another origin or code, or unreadable */
	uint64_t last_txtime; /* launch time of the last refused frame, ns of the socket's clock */
	int last_errno;       /* its ee_errno (EINVAL, ECANCELED) */
};

/* One SO_EE_ORIGIN_TXTIME error (net/sched/sch_etf.c report_sock_error). */
struct txtime_err {
	uint32_t ee_errno;
	uint8_t code;    /* SO_EE_CODE_TXTIME_INVALID_PARAM or _MISSED */
	uint64_t txtime; /* ee_data:ee_info, the refused frame's launch time */
};

/*
 * SO_TXTIME on fd with clockid and flags (SOF_TXTIME_DEADLINE_MODE or 0),
 * always with SOF_TXTIME_REPORT_ERRORS. 0 or -errno; -EPERM: a clock other
 * than CLOCK_MONOTONIC needs CAP_NET_ADMIN.
 */
int txtime_enable(int fd, int clockid, uint32_t flags);

/*
 * Writes one SCM_TXTIME cmsg carrying txtime (ns of the socket's SO_TXTIME
 * clock) at buf, which must be aligned for struct cmsghdr (union
 * txtime_cmsg is). Returns the msg_controllen to set (TXTIME_CMSG_SPACE),
 * or 0 if len is too small.
 */
size_t txtime_cmsg_put(void *buf, size_t len, uint64_t txtime);

/*
 * The control data of one message read with MSG_ERRQUEUE (msg_control,
 * msg_controllen). 1 with *out if it holds an SO_EE_ORIGIN_TXTIME error
 * (AF_PACKET: SOL_PACKET/PACKET_TX_TIMESTAMP; also IP_RECVERR and
 * IPV6_RECVERR), 0 if it holds none, -1 if a cmsg_len overruns the buffer
 * or an extended error is short.
 */
int txtime_err_parse(const uint8_t *ctl, size_t len, struct txtime_err *out);

/* Counts what txtime_err_parse() returned (rc) for one message. */
void txtime_count(struct txtime_stats *st, int rc, const struct txtime_err *e);

/*
 * Reads fd's error queue without waiting, at most TXTIME_DRAIN_MAX
 * messages, and counts them into st. Returns the number of launch-time
 * errors among them, or -errno.
 */
int txtime_drain(int fd, struct txtime_stats *st);

/*
 * Launch times for the frames of one ETF queue. ETF drops a frame whose
 * launch time is in the past when it is enqueued or earlier than that of a
 * frame it already sent, and sends at launch time - delta: lead_ns is
 * ETF's delta plus the time from our sendmmsg to its enqueue.
 */
struct txtime_sched {
	uint64_t lead_ns;
	uint64_t last; /* the last launch time handed out */
};

/*
 * The launch time for a frame that should leave at want (0: as soon as
 * possible), now being the socket's clock: the latest of want, now +
 * lead_ns and the last one handed out.
 */
uint64_t txtime_next(struct txtime_sched *s, uint64_t now, uint64_t want);

#endif
