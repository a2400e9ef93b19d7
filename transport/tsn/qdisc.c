/*
 * The egress qdisc tree of an interface from an RTM_GETQDISC dump, and the
 * launch-time decision per socket priority.
 *
 * What the kernel dumps (6.1, net/sched/sch_api.c tc_fill_qdisc): per qdisc
 * one RTM_NEWQDISC message, struct tcmsg then attributes, TCA_KIND first and
 * TCA_OPTIONS as the qdisc's dump() makes it:
 *   mqprio  struct tc_mqprio_qopt padded to 4, then optional attributes
 *           (TCA_MQPRIO_MODE ...), all inside TCA_OPTIONS: not a nest;
 *   taprio  a nest: TCA_TAPRIO_ATTR_PRIOMAP (struct tc_mqprio_qopt),
 *           _SCHED_CLOCKID (s32, absent in full offload), _FLAGS (u32) ...;
 *   etf     a nest: TCA_ETF_PARMS (struct tc_etf_qopt).
 * mq, mqprio and taprio are root-only and have one class per tx queue:
 * queue i (0-based) is class major:i+1, the parent of the child qdisc there.
 * Netlink is in host byte order, hence the memcpy loads below.
 *
 * Which queue a frame takes (net/core/dev.c netdev_pick_tx, skb_tx_hash):
 * with mqprio or taprio, the traffic class of skb->priority & 15 and then a
 * flow hash over that class's queues; with mq, a flow hash (or XPS) over all
 * queues, whatever the priority. Launch time therefore needs ETF on every
 * queue of the range. ETF (sch_etf.c) accepts only CLOCK_TAI, drops frames
 * of sockets whose clock or deadline mode differ from its own (unless
 * skip_sock_check) and frames whose launch time has passed. taprio in
 * txtime-assist mode computes launch times but relies on ETF children to
 * hold frames until then (tc-taprio(8)); without txtime-assist it gates by
 * traffic class and ignores SO_TXTIME.
 */
#include "transport/tsn/qdisc.h"

#include <errno.h>
#include <linux/net_tstamp.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bridge/util.h"

#ifndef CLOCK_TAI
#define CLOCK_TAI 11
#endif

#define QDISC_RECV_BUF (64u * 1024) /* one dump datagram; the kernel sends at most 32 KiB */

struct qdisc_attr {
	uint16_t type; /* without NLA_F_NESTED / NLA_F_NET_BYTEORDER */
	const uint8_t *data;
	size_t len;
};

/* What TCA_OPTIONS of a root qdisc carry into the tree. */
struct qdisc_opts {
	struct qdisc_map map;
	int32_t taprio_clockid;
	uint32_t taprio_flags;
	struct qdisc_etf etf;
};

static uint16_t ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The attribute at *off of buf[0, len), moving *off past it: 1, 0 at the end, or -QDISC_E_ATTR. */
static int attr_next(const uint8_t *buf, size_t len, size_t *off, struct qdisc_attr *a)
{
	size_t left = len - *off;
	uint16_t alen;

	if (left == 0) {
		return 0;
	}
	if (left < NLA_HDRLEN) {
		return -QDISC_E_ATTR;
	}
	alen = ld16(buf + *off);
	if (alen < NLA_HDRLEN || alen > left) {
		return -QDISC_E_ATTR;
	}
	a->type = ld16(buf + *off + 2) & NLA_TYPE_MASK;
	a->data = buf + *off + NLA_HDRLEN;
	a->len = alen - NLA_HDRLEN;
	/* The last attribute's padding may be missing. */
	*off += VB_MIN((size_t)NLA_ALIGN(alen), left);
	return 1;
}

/* Checks that buf holds whole attributes only. */
static int attr_walk_all(const uint8_t *buf, size_t len)
{
	struct qdisc_attr a;
	size_t off = 0;
	int rc;

	while ((rc = attr_next(buf, len, &off, &a)) > 0) {
	}
	return rc;
}

/* struct tc_mqprio_qopt, as mqprio's TCA_OPTIONS and taprio's PRIOMAP carry it. */
static int map_parse(const uint8_t *b, size_t len, struct qdisc_map *m)
{
	if (len < sizeof(struct tc_mqprio_qopt)) {
		return -QDISC_E_OPTIONS;
	}
	m->num_tc = b[offsetof(struct tc_mqprio_qopt, num_tc)];
	if (m->num_tc == 0 || m->num_tc > QDISC_NTC) {
		return -QDISC_E_OPTIONS;
	}
	for (unsigned p = 0; p < QDISC_NPRIO; p++) {
		m->prio_tc[p] = b[offsetof(struct tc_mqprio_qopt, prio_tc_map) + p];
		if (m->prio_tc[p] >= m->num_tc) {
			return -QDISC_E_OPTIONS;
		}
	}
	for (unsigned c = 0; c < QDISC_NTC; c++) {
		m->count[c] = ld16(b + offsetof(struct tc_mqprio_qopt, count) + 2 * c);
		m->offset[c] = ld16(b + offsetof(struct tc_mqprio_qopt, offset) + 2 * c);
	}
	return 0;
}

static int opts_mqprio(const uint8_t *b, size_t len, struct qdisc_opts *o)
{
	size_t head = NLA_ALIGN(sizeof(struct tc_mqprio_qopt));
	int rc = map_parse(b, len, &o->map);

	if (rc < 0) {
		return rc;
	}
	/* TCA_MQPRIO_MODE, _SHAPER, rates: not ours, but their lengths must hold. */
	return len > head ? attr_walk_all(b + head, len - head) : 0;
}

static int opts_taprio(const uint8_t *b, size_t len, struct qdisc_opts *o)
{
	struct qdisc_attr a;
	size_t off = 0;
	bool have_map = false;
	int rc;

	while ((rc = attr_next(b, len, &off, &a)) > 0) {
		if (a.type == TCA_TAPRIO_ATTR_PRIOMAP) {
			rc = map_parse(a.data, a.len, &o->map);
			have_map = true;
		} else if (a.type == TCA_TAPRIO_ATTR_SCHED_CLOCKID) {
			rc = a.len == 4 ? 0 : -QDISC_E_OPTIONS;
			o->taprio_clockid = rc == 0 ? (int32_t)ld32(a.data) : -1;
		} else if (a.type == TCA_TAPRIO_ATTR_FLAGS) {
			rc = a.len == 4 ? 0 : -QDISC_E_OPTIONS;
			o->taprio_flags = rc == 0 ? ld32(a.data) : 0;
		}
		if (rc < 0) {
			return rc;
		}
	}
	return rc < 0 ? rc : have_map ? 0 : -QDISC_E_OPTIONS;
}

static int opts_etf(const uint8_t *b, size_t len, struct qdisc_opts *o)
{
	struct qdisc_attr a;
	size_t off = 0;
	bool have_parms = false;
	int rc;

	while ((rc = attr_next(b, len, &off, &a)) > 0) {
		if (a.type != TCA_ETF_PARMS) {
			continue;
		}
		if (a.len < sizeof(struct tc_etf_qopt)) {
			return -QDISC_E_OPTIONS;
		}
		o->etf.delta_ns = (int32_t)ld32(a.data + offsetof(struct tc_etf_qopt, delta));
		o->etf.clockid = (int32_t)ld32(a.data + offsetof(struct tc_etf_qopt, clockid));
		o->etf.flags = ld32(a.data + offsetof(struct tc_etf_qopt, flags));
		if (o->etf.delta_ns < 0) {
			return -QDISC_E_OPTIONS;
		}
		have_parms = true;
	}
	return rc < 0 ? rc : have_parms ? 0 : -QDISC_E_OPTIONS;
}

/* Per kind: its TCA_KIND and the parser of its TCA_OPTIONS (required when there is one). */
static const struct qdisc_kind_ops {
	const char *name;
	int (*options)(const uint8_t *b, size_t len, struct qdisc_opts *o);
} qdisc_kinds[QDISC_K_COUNT] = {
    [QDISC_K_OTHER] = {"other", NULL},
    [QDISC_K_NOQUEUE] = {"noqueue", NULL},
    [QDISC_K_MQ] = {"mq", NULL},
    [QDISC_K_MQPRIO] = {"mqprio", opts_mqprio},
    [QDISC_K_TAPRIO] = {"taprio", opts_taprio},
    [QDISC_K_ETF] = {"etf", opts_etf},
};

/* TCA_KIND: NUL-terminated, 1..15 characters of [A-Za-z0-9_.-]. */
static int kind_parse(const struct qdisc_attr *a, struct qdisc_node *n)
{
	size_t i;

	for (i = 0; i < a->len && a->data[i]; i++) {
		uint8_t ch = a->data[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';

		if (!ok || i + 1 >= QDISC_NAME_LEN) {
			return -QDISC_E_KIND;
		}
	}
	if (i == 0 || i == a->len) {
		return -QDISC_E_KIND;
	}
	memcpy(n->name, a->data, i);
	n->name[i] = '\0';
	n->kind = QDISC_K_OTHER;
	for (unsigned k = QDISC_K_OTHER + 1; k < QDISC_K_COUNT; k++) {
		if (!strcmp(n->name, qdisc_kinds[k].name)) {
			n->kind = (enum qdisc_kind)k;
		}
	}
	return 0;
}

/* Places a parsed qdisc in the tree: the root with its options, or a child. */
static int tree_add(struct qdisc_tree *t, const struct qdisc_node *n, const struct qdisc_opts *o)
{
	if (n->parent == TC_H_ROOT) {
		if (t->has_root) {
			return -QDISC_E_TWO_ROOTS;
		}
		t->has_root = true;
		t->root = *n;
		t->map = o->map;
		t->taprio_clockid = o->taprio_clockid;
		t->taprio_flags = o->taprio_flags;
	} else if (t->n_child < QDISC_MAX_CHILD) {
		t->child[t->n_child++] = *n;
	} else {
		t->n_lost++;
	}
	t->n_msgs++;
	return 0;
}

/* One RTM_NEWQDISC message after its nlmsghdr: struct tcmsg, then attributes. */
static int qdisc_msg(struct qdisc_tree *t, const uint8_t *p, size_t len)
{
	struct qdisc_attr a, kind = {0}, opts = {0};
	struct qdisc_opts o = {.taprio_clockid = -1};
	struct qdisc_node n = {0};
	size_t off = NLMSG_ALIGN(sizeof(struct tcmsg));
	bool have_kind = false, have_opts = false;
	int rc;

	if (len < sizeof(struct tcmsg)) {
		return -QDISC_E_TCMSG;
	}
	if ((int)ld32(p + offsetof(struct tcmsg, tcm_ifindex)) != t->ifindex) {
		return 0;
	}
	n.handle = ld32(p + offsetof(struct tcmsg, tcm_handle));
	n.parent = ld32(p + offsetof(struct tcmsg, tcm_parent));
	off = VB_MIN(off, len);
	while ((rc = attr_next(p, len, &off, &a)) > 0) {
		if (a.type == TCA_KIND) {
			kind = a;
			have_kind = true;
		} else if (a.type == TCA_OPTIONS) {
			opts = a;
			have_opts = true;
		}
	}
	if (rc < 0) {
		return rc;
	}
	if (!have_kind || (rc = kind_parse(&kind, &n)) < 0) {
		return -QDISC_E_KIND;
	}
	/* Ingress and clsact (parent ffff:fff1) see received frames only. */
	if (n.parent == TC_H_INGRESS) {
		return 0;
	}
	if (qdisc_kinds[n.kind].options) {
		if (!have_opts) {
			return -QDISC_E_OPTIONS;
		}
		rc = qdisc_kinds[n.kind].options(opts.data, opts.len, &o);
		if (rc < 0) {
			return rc;
		}
		n.etf = o.etf;
	}
	return tree_add(t, &n, &o);
}

/* NLMSG_ERROR and NLMSG_DONE start with an int: an error is negative. */
static int qdisc_nl_status(struct qdisc_tree *t, const uint8_t *p, size_t len, bool done)
{
	int32_t v;

	if (len < sizeof(int32_t)) {
		/* Kernels before 4.x sent NLMSG_DONE without its int. */
		if (done) {
			t->done = true;
			return 0;
		}
		return -QDISC_E_NLMSG;
	}
	v = (int32_t)ld32(p);
	if (v < 0) {
		t->nl_errno = v == INT32_MIN ? EPROTO : -v;
		return -QDISC_E_NLERR;
	}
	/* An ACK (error 0) is not asked for, but harmless. */
	t->done = t->done || done;
	return 0;
}

void qdisc_tree_init(struct qdisc_tree *t, int ifindex, uint32_t seq)
{
	memset(t, 0, sizeof(*t));
	t->ifindex = ifindex;
	t->seq = seq;
	t->taprio_clockid = -1;
}

int qdisc_parse(const uint8_t *buf, size_t len, struct qdisc_tree *t)
{
	size_t off = 0;
	int rc = 0;

	if (t->err) {
		return -t->err;
	}
	if (t->done) {
		t->err = QDISC_E_TRAILING;
		return -t->err;
	}
	while (off < len && rc == 0) {
		size_t left = len - off;
		const uint8_t *h = buf + off;
		uint32_t mlen;
		uint16_t type, flags;

		if (left < NLMSG_HDRLEN) {
			rc = -QDISC_E_NLMSG;
			break;
		}
		mlen = ld32(h + offsetof(struct nlmsghdr, nlmsg_len));
		if (mlen < NLMSG_HDRLEN || mlen > left) {
			rc = -QDISC_E_NLMSG;
			break;
		}
		type = ld16(h + offsetof(struct nlmsghdr, nlmsg_type));
		flags = ld16(h + offsetof(struct nlmsghdr, nlmsg_flags));
		off += VB_MIN((size_t)NLMSG_ALIGN((size_t)mlen), left);
		if (t->seq && ld32(h + offsetof(struct nlmsghdr, nlmsg_seq)) != t->seq) {
			continue;
		}
		t->intr = t->intr || (flags & NLM_F_DUMP_INTR);
		if (type == NLMSG_DONE || type == NLMSG_ERROR) {
			rc = qdisc_nl_status(t, h + NLMSG_HDRLEN, mlen - NLMSG_HDRLEN,
			                     type == NLMSG_DONE);
		} else if (type == RTM_NEWQDISC) {
			rc = qdisc_msg(t, h + NLMSG_HDRLEN, mlen - NLMSG_HDRLEN);
		}
		if (rc == 0 && t->done) {
			rc = off == len ? 1 : -QDISC_E_TRAILING;
		}
	}
	if (rc < 0) {
		t->err = -rc;
	}
	return rc;
}

const struct qdisc_node *qdisc_tree_txq(const struct qdisc_tree *t, unsigned q)
{
	if (!t->has_root || q >= 0xFFFFu) {
		return NULL;
	}
	for (unsigned i = 0; i < t->n_child; i++) {
		const struct qdisc_node *n = &t->child[i];

		if (TC_H_MAJ(n->parent) == TC_H_MAJ(t->root.handle) &&
		    TC_H_MIN(n->parent) == q + 1) {
			return n;
		}
	}
	return NULL;
}

/* ---- decision ---- */

static void why(struct qdisc_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why(struct qdisc_decision *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

static void immediate(struct qdisc_decision *d)
{
	d->mode = QDISC_TX_IMMEDIATE;
	d->clockid = -1;
	d->txtime_flags = 0;
	d->delta_ns = 0;
}

/*
 * Launch time on one more ETF queue: it must run on CLOCK_TAI and agree with
 * the queues before it (first) on deadline mode. false with d->why set.
 */
static bool etf_join(struct qdisc_decision *d, const struct qdisc_etf *e, bool first,
                     const char *where)
{
	uint32_t deadline = e->flags & TC_ETF_DEADLINE_MODE_ON ? SOF_TXTIME_DEADLINE_MODE : 0u;

	if (e->clockid != CLOCK_TAI) {
		why(d, "etf %s runs on %s (%d), not CLOCK_TAI", where, qdisc_clock_name(e->clockid),
		    e->clockid);
		return false;
	}
	if (!first && deadline != d->txtime_flags) {
		why(d, "etf %s differs in deadline mode from the queues before it", where);
		return false;
	}
	d->mode = QDISC_TX_LAUNCH;
	d->clockid = e->clockid;
	d->txtime_flags = deadline;
	d->delta_ns = VB_MAX(d->delta_ns, (uint32_t)e->delta_ns);
	return true;
}

/* Every queue of [first, first + count) has ETF: launch time, else immediate with why. */
static void decide_queues(const struct qdisc_tree *t, const char *root, unsigned first,
                          unsigned count, struct qdisc_decision *d)
{
	char where[48];

	if (count == 0) {
		immediate(d);
		why(d, "%s maps priority %d to a traffic class without tx queues", root, d->prio);
		return;
	}
	/* At most QDISC_MAX_CHILD + 1 rounds: a queue without a child ends the loop. */
	for (unsigned q = first; q < first + count; q++) {
		const struct qdisc_node *n = qdisc_tree_txq(t, q);

		snprintf(where, sizeof(where), "on tx queue %u of priority %d", q, d->prio);
		if (!n) {
			immediate(d);
			why(d, "%s has no child qdisc %s%s", root, where,
			    t->n_lost ? " (over 64 qdiscs, not all kept)" : "");
			return;
		}
		if (n->kind != QDISC_K_ETF) {
			immediate(d);
			why(d, "%s child %s %s", root, n->name, where);
			return;
		}
		if (!etf_join(d, &n->etf, q == first, where)) {
			immediate(d);
			return;
		}
	}
	why(d, "etf");
}

/* mq: a flow hash or XPS picks among all its queues, whatever the priority. */
static void decide_mq(const struct qdisc_tree *t, struct qdisc_decision *d)
{
	unsigned nq = 0;

	for (unsigned i = 0; i < t->n_child; i++) {
		nq += TC_H_MAJ(t->child[i].parent) == TC_H_MAJ(t->root.handle);
	}
	if (nq == 0 || t->n_lost) {
		why(d, nq ? "mq with over 64 child qdiscs" : "mq without child qdiscs");
		return;
	}
	decide_queues(t, "mq", 0, nq, d);
	if (d->mode == QDISC_TX_IMMEDIATE) {
		size_t n = strlen(d->why);

		snprintf(d->why + n, sizeof(d->why) - n, "; mq spreads a priority over all queues");
	}
}

/* mqprio and taprio: priority & 15 -> traffic class -> its tx queues. */
static void decide_mapped(const struct qdisc_tree *t, const char *root, struct qdisc_decision *d)
{
	const struct qdisc_map *m = &t->map;
	unsigned tc = m->prio_tc[(unsigned)d->prio & (QDISC_NPRIO - 1)];

	decide_queues(t, root, m->offset[tc], m->count[tc], d);
}

static void decide_taprio(const struct qdisc_tree *t, struct qdisc_decision *d)
{
	if (!(t->taprio_flags & TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST)) {
		why(d, "taprio without txtime-assist, flags 0x%x", t->taprio_flags);
		return;
	}
	if (t->taprio_clockid != CLOCK_TAI) {
		why(d, "taprio txtime-assist on %s (%d), not CLOCK_TAI",
		    qdisc_clock_name(t->taprio_clockid), t->taprio_clockid);
		return;
	}
	decide_mapped(t, "taprio txtime-assist", d);
	if (d->mode == QDISC_TX_LAUNCH) {
		why(d, "taprio txtime-assist, etf");
	}
}

void qdisc_decide(const struct qdisc_tree *t, int prio, struct qdisc_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->prio = prio;
	immediate(d);
	if (!t->has_root) {
		why(d, "no egress qdisc: is the interface down?");
		return;
	}
	switch (t->root.kind) {
	case QDISC_K_ETF:
		if (etf_join(d, &t->root.etf, true, "at the root")) {
			why(d, "etf");
		} else {
			immediate(d);
		}
		break;
	case QDISC_K_MQ:
		decide_mq(t, d);
		break;
	case QDISC_K_MQPRIO:
		decide_mapped(t, "mqprio", d);
		break;
	case QDISC_K_TAPRIO:
		decide_taprio(t, d);
		break;
	default:
		why(d, "root qdisc %s", t->root.name);
		break;
	}
}

void qdisc_decide_immediate(struct qdisc_decision *d, int prio, const char *reason)
{
	memset(d, 0, sizeof(*d));
	d->prio = prio;
	immediate(d);
	why(d, "%s", reason);
}

int qdisc_decision_str(const struct qdisc_decision *d, char *buf, size_t len)
{
	if (d->mode == QDISC_TX_LAUNCH) {
		return snprintf(buf, len, "launch time (%s, %s)", d->why,
		                qdisc_clock_name(d->clockid));
	}
	return snprintf(buf, len, "immediate (%s)", d->why);
}

static const char *const qdisc_err_names[QDISC_E_COUNT] = {
    [QDISC_OK] = "ok",
    [QDISC_E_NLMSG] = "nlmsg",
    [QDISC_E_TCMSG] = "tcmsg",
    [QDISC_E_ATTR] = "attr",
    [QDISC_E_KIND] = "kind",
    [QDISC_E_OPTIONS] = "options",
    [QDISC_E_TWO_ROOTS] = "two_roots",
    [QDISC_E_NLERR] = "nlerr",
    [QDISC_E_TRAILING] = "trailing",
};

const char *qdisc_err_name(unsigned err)
{
	return err < QDISC_E_COUNT && qdisc_err_names[err] ? qdisc_err_names[err] : "unknown";
}

const char *qdisc_kind_name(enum qdisc_kind k)
{
	return (unsigned)k < QDISC_K_COUNT ? qdisc_kinds[k].name : "unknown";
}

/* <linux/time.h> clock ids. */
static const char *const qdisc_clock_names[] = {
    [0] = "CLOCK_REALTIME",          [1] = "CLOCK_MONOTONIC",     [2] = "CLOCK_PROCESS_CPUTIME_ID",
    [3] = "CLOCK_THREAD_CPUTIME_ID", [4] = "CLOCK_MONOTONIC_RAW", [5] = "CLOCK_REALTIME_COARSE",
    [6] = "CLOCK_MONOTONIC_COARSE",  [7] = "CLOCK_BOOTTIME",      [8] = "CLOCK_REALTIME_ALARM",
    [9] = "CLOCK_BOOTTIME_ALARM",    [11] = "CLOCK_TAI",
};

const char *qdisc_clock_name(int32_t clockid)
{
	if (clockid < 0 || (size_t)clockid >= ARRAY_SIZE(qdisc_clock_names) ||
	    !qdisc_clock_names[clockid]) {
		return "unknown";
	}
	return qdisc_clock_names[clockid];
}

/* ---- I/O: the dump over NETLINK_ROUTE ---- */

static int query_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int query_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int query_send(int fd, int ifindex, uint32_t seq)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req = {
	    .nh = {.nlmsg_len = sizeof(req),
	           .nlmsg_type = RTM_GETQDISC,
	           .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
	           .nlmsg_seq = seq},
	    .tc = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		return -errno;
	}
	return 0;
}

static int64_t ms_left(uint64_t deadline)
{
	uint64_t now = vb_now_ns();

	return now >= deadline ? 0 : (int64_t)((deadline - now + 999999) / 1000000);
}

/* Reads datagrams into the parser until NLMSG_DONE, the deadline or the byte cap. */
static int query_collect(int fd, uint8_t *buf, struct qdisc_tree *t, uint64_t deadline,
                         size_t *total, char *err, size_t errlen)
{
	for (;;) {
		struct sockaddr_nl from;
		socklen_t fromlen = sizeof(from);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = ms_left(deadline);
		ssize_t n;
		int rc;

		if (left == 0 || poll(&pfd, 1, (int)left) == 0) {
			return query_fail(-ETIMEDOUT, err, errlen, "qdisc dump: no end after %u ms",
			                  QDISC_QUERY_MS);
		}
		n = recvfrom(fd, buf, QDISC_RECV_BUF, MSG_TRUNC | MSG_DONTWAIT,
		             (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				continue;
			}
			return query_fail(-errno, err, errlen, "qdisc dump: recv: %s",
			                  strerror(errno));
		}
		if (from.nl_pid != 0) {
			continue; /* not from the kernel */
		}
		if ((size_t)n > QDISC_RECV_BUF) {
			return query_fail(-EMSGSIZE, err, errlen, "qdisc dump: a %zd byte datagram",
			                  n);
		}
		*total += (size_t)n;
		if (*total > QDISC_QUERY_BYTES) {
			return query_fail(-EFBIG, err, errlen, "qdisc dump: over %u bytes",
			                  QDISC_QUERY_BYTES);
		}
		rc = qdisc_parse(buf, (size_t)n, t);
		if (rc == -QDISC_E_NLERR) {
			return query_fail(-t->nl_errno, err, errlen, "qdisc dump: %s",
			                  strerror(t->nl_errno));
		}
		if (rc < 0) {
			return query_fail(-EPROTO, err, errlen, "qdisc dump refused: %s",
			                  qdisc_err_name((unsigned)-rc));
		}
		if (rc == 1) {
			return 0;
		}
	}
}

int qdisc_query(int ifindex, struct qdisc_tree *t, char *err, size_t errlen)
{
	uint64_t deadline = vb_now_ns() + QDISC_QUERY_MS * 1000000ull;
	size_t total = 0;
	uint8_t *buf;
	int fd, rc = -EAGAIN;

	qdisc_tree_init(t, ifindex, 0);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (fd < 0) {
		return query_fail(-errno, err, errlen, "qdisc dump: netlink socket: %s",
		                  strerror(errno));
	}
	buf = malloc(QDISC_RECV_BUF);
	if (!buf) {
		rc = query_fail(-ENOMEM, err, errlen, "qdisc dump: out of memory");
		goto out_fd;
	}
	for (uint32_t seq = 1; seq <= QDISC_QUERY_TRIES; seq++) {
		qdisc_tree_init(t, ifindex, seq);
		rc = query_send(fd, ifindex, seq);
		if (rc < 0) {
			query_fail(rc, err, errlen, "qdisc dump: send: %s", strerror(-rc));
			break;
		}
		rc = query_collect(fd, buf, t, deadline, &total, err, errlen);
		if (rc < 0 || !t->intr) {
			break;
		}
		rc = query_fail(-EAGAIN, err, errlen, "qdisc dump: interrupted %u times",
		                QDISC_QUERY_TRIES);
	}
	free(buf);
out_fd:
	close(fd);
	return rc;
}
