/*
 * Qdisc tree parser and launch-time decision (transport/tsn/qdisc.c).
 *
 * Every dump is built here by hand, message by message, in the layout of
 * the kernel's tc_fill_qdisc() (tcmsg, TCA_KIND, TCA_OPTIONS as the qdisc's
 * dump() makes it, then TCA_HW_OFFLOAD, TCA_STATS2 and TCA_STATS, which
 * the parser does not know): noqueue, mq, mqprio and taprio trees with ETF
 * and other children, a table of decisions per priority, a table of
 * refused dumps (truncated or overrunning lengths, bad kinds and options),
 * a truncation sweep, and the live path on loopback (noqueue: immediate).
 * ETF, taprio and mqprio are not in every kernel (not in the test
 * machines'): only the live fallback is checked against a kernel.
 */
#include <errno.h>
#include <linux/gen_stats.h>
#include <linux/net_tstamp.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "transport/tsn/qdisc.h"

#define IF_ME    7
#define IF_OTHER 4
#define SEQ      42

/* ---- building dumps ---- */

struct nlb {
	uint8_t b[32768];
	size_t len;
	size_t msg;     /* the open message's nlmsghdr */
	size_t nest[4]; /* open nests' nlattr */
	unsigned depth;
	size_t ends[128]; /* where each message ends (after padding) */
	unsigned nends;
	size_t opts_end; /* end of the last TCA_OPTIONS written */
};

static void put(struct nlb *n, const void *p, size_t len)
{
	assert_true(n->len + len <= sizeof(n->b));
	memcpy(n->b + n->len, p, len);
	n->len += len;
}

static void pad(struct nlb *n)
{
	while (n->len % 4) {
		n->b[n->len++] = 0;
	}
}

static void st16(struct nlb *n, size_t at, uint16_t v)
{
	memcpy(n->b + at, &v, sizeof(v));
}

static void st32(struct nlb *n, size_t at, uint32_t v)
{
	memcpy(n->b + at, &v, sizeof(v));
}

static void msg_begin(struct nlb *n, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr h = {.nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq};

	n->msg = n->len;
	put(n, &h, sizeof(h));
}

/* nlmsg_len covers what was written (unpadded); the next message starts aligned. */
static void msg_end(struct nlb *n)
{
	st32(n, n->msg + offsetof(struct nlmsghdr, nlmsg_len), (uint32_t)(n->len - n->msg));
	pad(n);
	assert_true(n->nends < ARRAY_SIZE(n->ends));
	n->ends[n->nends++] = n->len;
}

static void attr(struct nlb *n, uint16_t type, const void *p, size_t len)
{
	struct nlattr a = {.nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type};

	put(n, &a, sizeof(a));
	put(n, p, len);
	pad(n);
}

static void nest_begin(struct nlb *n, uint16_t type)
{
	struct nlattr a = {.nla_type = type};

	n->nest[n->depth++] = n->len;
	put(n, &a, sizeof(a));
}

static void nest_end(struct nlb *n)
{
	size_t at = n->nest[--n->depth];

	st16(n, at + offsetof(struct nlattr, nla_len), (uint16_t)(n->len - at));
}

static void q_begin(struct nlb *n, int ifindex, uint32_t handle, uint32_t parent, const char *kind)
{
	struct tcmsg tc = {.tcm_family = AF_UNSPEC,
	                   .tcm_ifindex = ifindex,
	                   .tcm_handle = handle,
	                   .tcm_parent = parent,
	                   .tcm_info = 2};

	msg_begin(n, RTM_NEWQDISC, NLM_F_MULTI, SEQ);
	put(n, &tc, sizeof(tc));
	if (kind) {
		attr(n, TCA_KIND, kind, strlen(kind) + 1);
	}
}

/* What the kernel puts after the options; unknown to the parser. */
static void q_end(struct nlb *n)
{
	struct gnet_stats_basic basic = {.bytes = 1234, .packets = 5};
	struct tc_stats st = {.bytes = 1234, .packets = 5};
	uint8_t off = 0;

	attr(n, TCA_HW_OFFLOAD, &off, 1);
	nest_begin(n, TCA_STATS2);
	attr(n, TCA_STATS_BASIC, &basic, sizeof(basic));
	nest_end(n);
	attr(n, TCA_STATS, &st, sizeof(st));
	msg_end(n);
}

static void q_plain(struct nlb *n, int ifindex, uint32_t handle, uint32_t parent, const char *kind)
{
	q_begin(n, ifindex, handle, parent, kind);
	q_end(n);
}

static void done(struct nlb *n, int32_t err)
{
	msg_begin(n, NLMSG_DONE, NLM_F_MULTI, SEQ);
	put(n, &err, sizeof(err));
	msg_end(n);
}

/* mqprio: struct tc_mqprio_qopt padded to 4, then its own attributes, all in TCA_OPTIONS. */
static void opt_mqprio(struct nlb *n, const struct tc_mqprio_qopt *o)
{
	uint16_t mode = TC_MQPRIO_MODE_CHANNEL;

	nest_begin(n, TCA_OPTIONS);
	put(n, o, sizeof(*o));
	pad(n);
	attr(n, TCA_MQPRIO_MODE, &mode, sizeof(mode));
	nest_end(n);
	n->opts_end = n->len;
}

/* taprio: a nest; clockid < 0 leaves SCHED_CLOCKID out (full offload), flags 0 leaves FLAGS out. */
static void opt_taprio(struct nlb *n, const struct tc_mqprio_qopt *o, int32_t clockid,
                       uint32_t flags)
{
	int64_t base = 1000000000;
	uint32_t interval = 300000;
	uint8_t cmd = TC_TAPRIO_CMD_SET_GATES;

	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_TAPRIO_ATTR_PRIOMAP, o, sizeof(*o));
	if (clockid >= 0) {
		attr(n, TCA_TAPRIO_ATTR_SCHED_CLOCKID, &clockid, sizeof(clockid));
	}
	if (flags) {
		attr(n, TCA_TAPRIO_ATTR_FLAGS, &flags, sizeof(flags));
	}
	attr(n, TCA_TAPRIO_ATTR_SCHED_BASE_TIME, &base, sizeof(base));
	nest_begin(n, TCA_TAPRIO_ATTR_SCHED_ENTRY_LIST);
	nest_begin(n, TCA_TAPRIO_SCHED_ENTRY);
	attr(n, TCA_TAPRIO_SCHED_ENTRY_CMD, &cmd, sizeof(cmd));
	attr(n, TCA_TAPRIO_SCHED_ENTRY_INTERVAL, &interval, sizeof(interval));
	nest_end(n);
	nest_end(n);
	nest_end(n);
	n->opts_end = n->len;
}

static void opt_etf(struct nlb *n, int32_t clockid, int32_t delta, uint32_t flags)
{
	struct tc_etf_qopt e = {.delta = delta, .clockid = clockid, .flags = flags};

	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_ETF_PARMS, &e, sizeof(e));
	nest_end(n);
	n->opts_end = n->len;
}

/* ---- scenarios: a root and its children on IF_ME, amid another interface's qdiscs ---- */

struct child {
	const char *kind; /* NULL: no qdisc on that queue */
	int32_t clockid;
	int32_t delta;
	uint32_t flags;
};

#define PF                                                                                         \
	{                                                                                          \
		"pfifo_fast", 0, 0, 0                                                              \
	}
#define PFIFO                                                                                      \
	{                                                                                          \
		"pfifo", 0, 0, 0                                                                   \
	}
#define ETF                                                                                        \
	{                                                                                          \
		"etf", CLOCK_TAI, 300000, TC_ETF_OFFLOAD_ON                                        \
	}
#define ETF_D                                                                                      \
	{                                                                                          \
		"etf", CLOCK_TAI, 300000, TC_ETF_DEADLINE_MODE_ON                                  \
	}
#define ETF_500                                                                                    \
	{                                                                                          \
		"etf", CLOCK_TAI, 500000, 0                                                        \
	}
#define ETF_MONO                                                                                   \
	{                                                                                          \
		"etf", CLOCK_MONOTONIC, 300000, 0                                                  \
	}
#define NONE                                                                                       \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

#define ROOT_H 0x01000000u /* 100: */

struct scenario {
	const char *root; /* NULL: no root on IF_ME */
	struct child root_etf;
	struct tc_mqprio_qopt map;
	int32_t taprio_clock; /* < 0: not dumped */
	uint32_t taprio_flags;
	unsigned nq;
	struct child q[8];
};

/*
 * The map of the mqprio/taprio scenarios: 4 queues, 3 classes; priority 3
 * -> class 0 (queue 0), priority 0 -> class 1 (queues 1-2), the others ->
 * class 2 (queue 3).
 */
#define MAP3                                                                                       \
	{                                                                                          \
		.num_tc = 3, .prio_tc_map = {1, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},      \
		.count = {1, 2, 1}, .offset = {0, 1, 3},                                           \
	}

static void child_msg(struct nlb *n, uint32_t handle, uint32_t parent, const struct child *c)
{
	q_begin(n, IF_ME, handle, parent, c->kind);
	if (!strcmp(c->kind, "etf")) {
		opt_etf(n, c->clockid, c->delta, c->flags);
	}
	q_end(n);
}

static void build(struct nlb *n, const struct scenario *s)
{
	memset(n, 0, sizeof(*n));
	q_plain(n, IF_OTHER, 0, TC_H_ROOT, "pfifo_fast");
	if (s->root) {
		uint32_t h =
		    strcmp(s->root, "noqueue") && strcmp(s->root, "pfifo_fast") ? ROOT_H : 0;

		q_begin(n, IF_ME, h, TC_H_ROOT, s->root);
		if (!strcmp(s->root, "mqprio")) {
			opt_mqprio(n, &s->map);
		} else if (!strcmp(s->root, "taprio")) {
			opt_taprio(n, &s->map, s->taprio_clock, s->taprio_flags);
		} else if (!strcmp(s->root, "etf")) {
			opt_etf(n, s->root_etf.clockid, s->root_etf.delta, s->root_etf.flags);
		}
		q_end(n);
	}
	/* Children in the kernel's hash order, not by queue. */
	for (unsigned i = s->nq; i-- > 0;) {
		if (s->q[i].kind) {
			child_msg(n, 0x80010000u + (i << 16), ROOT_H | (i + 1), &s->q[i]);
		}
	}
	q_plain(n, IF_ME, 0xFFFF0000u, TC_H_INGRESS, "clsact");
	q_plain(n, IF_OTHER, 0xFFFF0000u, TC_H_INGRESS, "ingress");
	done(n, 0);
}

static void parse_ok(const struct nlb *n, struct qdisc_tree *t)
{
	qdisc_tree_init(t, IF_ME, SEQ);
	assert_int_equal(qdisc_parse(n->b, n->len, t), 1);
	assert_true(t->done);
	assert_int_equal(t->err, 0);
}

/* ---- the model ---- */

static void test_noqueue(void **state)
{
	static const struct scenario s = {.root = "noqueue"};
	static struct nlb n;
	static struct qdisc_tree t;

	build(&n, &s);
	parse_ok(&n, &t);
	assert_true(t.has_root);
	assert_int_equal(t.root.kind, QDISC_K_NOQUEUE);
	assert_string_equal(t.root.name, "noqueue");
	assert_int_equal(t.root.parent, TC_H_ROOT);
	/* Only IF_ME's egress qdiscs: not IF_OTHER's, not clsact. */
	assert_int_equal(t.n_msgs, 1);
	assert_int_equal(t.n_child, 0);
	assert_null(qdisc_tree_txq(&t, 0));
}

static void test_mq_pfifo_fast(void **state)
{
	static const struct scenario s = {.root = "mq", .nq = 4, .q = {PF, PF, PF, PF}};
	static struct nlb n;
	static struct qdisc_tree t;

	build(&n, &s);
	parse_ok(&n, &t);
	assert_int_equal(t.root.kind, QDISC_K_MQ);
	assert_int_equal(t.root.handle, ROOT_H);
	assert_int_equal(t.n_msgs, 5);
	assert_int_equal(t.n_child, 4);
	for (unsigned q = 0; q < 4; q++) {
		const struct qdisc_node *c = qdisc_tree_txq(&t, q);

		assert_non_null(c);
		assert_int_equal(c->kind, QDISC_K_OTHER);
		assert_string_equal(c->name, "pfifo_fast");
		assert_int_equal(c->parent, ROOT_H | (q + 1));
	}
	assert_null(qdisc_tree_txq(&t, 4));
}

static void test_mqprio_etf(void **state)
{
	static const struct scenario s = {
	    .root = "mqprio", .map = MAP3, .nq = 4, .q = {ETF, PF, PF, PF}};
	static struct nlb n;
	static struct qdisc_tree t;
	const struct qdisc_node *c;

	build(&n, &s);
	parse_ok(&n, &t);
	assert_int_equal(t.root.kind, QDISC_K_MQPRIO);
	assert_int_equal(t.map.num_tc, 3);
	assert_int_equal(t.map.prio_tc[3], 0);
	assert_int_equal(t.map.prio_tc[0], 1);
	assert_int_equal(t.map.prio_tc[15], 2);
	assert_int_equal(t.map.count[1], 2);
	assert_int_equal(t.map.offset[1], 1);
	assert_int_equal(t.map.offset[2], 3);
	c = qdisc_tree_txq(&t, 0);
	assert_non_null(c);
	assert_int_equal(c->kind, QDISC_K_ETF);
	assert_int_equal(c->etf.clockid, CLOCK_TAI);
	assert_int_equal(c->etf.delta_ns, 300000);
	assert_int_equal(c->etf.flags, TC_ETF_OFFLOAD_ON);
	assert_string_equal(qdisc_tree_txq(&t, 2)->name, "pfifo_fast");
}

static void test_taprio_model(void **state)
{
	static const struct scenario s = {.root = "taprio",
	                                  .map = MAP3,
	                                  .taprio_clock = CLOCK_TAI,
	                                  .taprio_flags = TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST,
	                                  .nq = 4,
	                                  .q = {ETF_D, ETF, ETF, ETF}};
	static const struct scenario off = {.root = "taprio",
	                                    .map = MAP3,
	                                    .taprio_clock = -1,
	                                    .taprio_flags = 2,
	                                    .nq = 1,
	                                    .q = {PF}};
	static struct nlb n;
	static struct qdisc_tree t;

	build(&n, &s);
	parse_ok(&n, &t);
	assert_int_equal(t.root.kind, QDISC_K_TAPRIO);
	assert_int_equal(t.taprio_clockid, CLOCK_TAI);
	assert_int_equal(t.taprio_flags, TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST);
	assert_int_equal(t.map.num_tc, 3);
	assert_int_equal(t.map.count[1], 2);
	assert_int_equal(qdisc_tree_txq(&t, 0)->etf.flags, TC_ETF_DEADLINE_MODE_ON);
	/* Full offload: no clock dumped. */
	build(&n, &off);
	parse_ok(&n, &t);
	assert_int_equal(t.taprio_clockid, -1);
	assert_int_equal(t.taprio_flags, 2);
}

/* ---- decisions ---- */

struct want {
	const char *name;
	struct scenario s;
	int prio;
	const char *str;                 /* qdisc_decision_str() */
	uint32_t delta_ns, txtime_flags; /* launch time only */
};

#define MQPRIO(...)                                                                                \
	{                                                                                          \
		.root = "mqprio", .map = MAP3, .nq = 4, .q = { __VA_ARGS__ }                       \
	}
#define TAPRIO(f, c)                                                                               \
	.root = "taprio", .map = MAP3, .taprio_flags = (f), .taprio_clock = (c), .nq = 4
#define ASSIST TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST

/* Scenario last: it holds commas. */
#define IMM(nm, pr, st, ...)                                                                       \
	{                                                                                          \
		.name = nm, .prio = pr, .str = st, .s = __VA_ARGS__                                \
	}
#define LAUNCH(nm, pr, st, delta, fl, ...)                                                         \
	{                                                                                          \
		.name = nm, .prio = pr, .str = st, .delta_ns = delta, .txtime_flags = fl,          \
		.s = __VA_ARGS__                                                                   \
	}
#define ETF_STR    "launch time (etf, CLOCK_TAI)"
#define TAPRIO_STR "launch time (taprio txtime-assist, etf, CLOCK_TAI)"
#define MQ_SPREADS "; mq spreads a priority over all queues)"

static const struct want wants[] = {
    IMM("noqueue", 3, "immediate (root qdisc noqueue)", {.root = "noqueue"}),
    IMM("pfifo_fast", 3, "immediate (root qdisc pfifo_fast)", {.root = "pfifo_fast"}),
    IMM("no root", 3, "immediate (no egress qdisc: is the interface down?)", {.root = NULL}),
    IMM("mq pfifo_fast", 3, "immediate (mq child pfifo_fast on tx queue 0 of priority 3" MQ_SPREADS,
        {.root = "mq", .nq = 4, .q = {PF, PF, PF, PF}}),
    LAUNCH("mq all etf", 3, ETF_STR, 500000, 0,
           {.root = "mq", .nq = 4, .q = {ETF, ETF, ETF_500, ETF}}),
    IMM("mq one not etf", 0,
        "immediate (mq child pfifo_fast on tx queue 2 of priority 0" MQ_SPREADS,
        {.root = "mq", .nq = 4, .q = {ETF, ETF, PF, ETF}}),
    LAUNCH("mqprio etf prio 3", 3, ETF_STR, 300000, 0, MQPRIO(ETF, PF, PF, PF)),
    LAUNCH("mqprio etf prio 19 (& 15)", 19, ETF_STR, 300000, 0, MQPRIO(ETF, PF, PF, PF)),
    IMM("mqprio etf prio 0", 0, "immediate (mqprio child pfifo_fast on tx queue 1 of priority 0)",
        MQPRIO(ETF, PF, PF, PF)),
    IMM("mqprio etf prio 6", 6, "immediate (mqprio child pfifo_fast on tx queue 3 of priority 6)",
        MQPRIO(ETF, PF, PF, PF)),
    IMM("mqprio etf on one of two", 0,
        "immediate (mqprio child pfifo_fast on tx queue 2 of priority 0)", MQPRIO(PF, ETF, PF, PF)),
    LAUNCH("mqprio etf on both", 0, ETF_STR, 500000, 0, MQPRIO(PF, ETF, ETF_500, PF)),
    LAUNCH("mqprio deadline mode", 3, ETF_STR, 300000, SOF_TXTIME_DEADLINE_MODE,
           MQPRIO(ETF_D, PF, PF, PF)),
    IMM("mqprio deadline differs", 0,
        "immediate (etf on tx queue 2 of priority 0 differs in deadline mode from the queues "
        "before it)",
        MQPRIO(PF, ETF_D, ETF, PF)),
    IMM("mqprio etf monotonic", 3,
        "immediate (etf on tx queue 0 of priority 3 runs on CLOCK_MONOTONIC (1), not CLOCK_TAI)",
        MQPRIO(ETF_MONO, PF, PF, PF)),
    IMM("mqprio queue without child", 6,
        "immediate (mqprio has no child qdisc on tx queue 3 of priority 6)",
        MQPRIO(PF, PF, PF, NONE)),
    IMM("mqprio class without queues", 0,
        "immediate (mqprio maps priority 0 to a traffic class without tx queues)",
        {.root = "mqprio",
         .map = {.num_tc = 2, .prio_tc_map = {1, 1, 1, 0}, .count = {1, 0}, .offset = {0, 1}},
         .nq = 1,
         .q = {ETF}}),
    LAUNCH("taprio assist etf", 3, TAPRIO_STR, 300000, 0,
           {TAPRIO(ASSIST, CLOCK_TAI), .q = {ETF, ETF, ETF, ETF}}),
    LAUNCH("taprio assist etf prio 0", 0, TAPRIO_STR, 500000, 0,
           {TAPRIO(ASSIST, CLOCK_TAI), .q = {PF, ETF, ETF_500, PF}}),
    IMM("taprio without assist", 3, "immediate (taprio without txtime-assist, flags 0x0)",
        {TAPRIO(0, CLOCK_TAI), .q = {ETF, ETF, ETF, ETF}}),
    IMM("taprio full offload", 3, "immediate (taprio without txtime-assist, flags 0x2)",
        {TAPRIO(TCA_TAPRIO_ATTR_FLAG_FULL_OFFLOAD, -1), .q = {ETF, ETF, ETF, ETF}}),
    IMM("taprio assist pfifo", 3,
        "immediate (taprio txtime-assist child pfifo on tx queue 0 of priority 3)",
        {TAPRIO(ASSIST, CLOCK_TAI), .q = {PFIFO, PFIFO, PFIFO, PFIFO}}),
    IMM("taprio assist realtime", 3,
        "immediate (taprio txtime-assist on CLOCK_REALTIME (0), not CLOCK_TAI)",
        {TAPRIO(ASSIST, CLOCK_REALTIME), .q = {ETF, ETF, ETF, ETF}}),
    LAUNCH("root etf", 0, ETF_STR, 200000, SOF_TXTIME_DEADLINE_MODE,
           {.root = "etf", .root_etf = {"etf", CLOCK_TAI, 200000, TC_ETF_DEADLINE_MODE_ON}}),
    IMM("root etf monotonic", 0,
        "immediate (etf at the root runs on CLOCK_MONOTONIC (1), not CLOCK_TAI)",
        {.root = "etf", .root_etf = {"etf", CLOCK_MONOTONIC, 200000, 0}}),
};

static void test_decisions(void **state)
{
	static struct nlb n;
	static struct qdisc_tree t;

	for (size_t i = 0; i < ARRAY_SIZE(wants); i++) {
		const struct want *w = &wants[i];
		struct qdisc_decision d;
		char s[256];

		build(&n, &w->s);
		parse_ok(&n, &t);
		qdisc_decide(&t, w->prio, &d);
		qdisc_decision_str(&d, s, sizeof(s));
		if (strcmp(s, w->str)) {
			fail_msg("%s: got \"%s\", want \"%s\"", w->name, s, w->str);
		}
		assert_int_equal(d.prio, w->prio);
		if (!strncmp(w->str, "launch", 6)) {
			assert_int_equal(d.mode, QDISC_TX_LAUNCH);
			assert_int_equal(d.clockid, CLOCK_TAI);
			assert_int_equal(d.delta_ns, w->delta_ns);
			assert_int_equal(d.txtime_flags, w->txtime_flags);
		} else {
			assert_int_equal(d.mode, QDISC_TX_IMMEDIATE);
			assert_int_equal(d.clockid, -1);
			assert_int_equal(d.txtime_flags, 0);
		}
	}
}

/* More children than the model keeps: counted, and no launch time on a guess. */
static void test_many_children(void **state)
{
	static struct nlb n;
	static struct qdisc_tree t;
	static const struct child etf = ETF;
	struct qdisc_decision d;

	memset(&n, 0, sizeof(n));
	q_plain(&n, IF_ME, ROOT_H, TC_H_ROOT, "mq");
	for (unsigned q = 0; q < QDISC_MAX_CHILD + 6; q++) {
		child_msg(&n, 0, ROOT_H | (q + 1), &etf);
	}
	done(&n, 0);
	parse_ok(&n, &t);
	assert_int_equal(t.n_child, QDISC_MAX_CHILD);
	assert_int_equal(t.n_lost, 6);
	assert_int_equal(t.n_msgs, QDISC_MAX_CHILD + 7);
	qdisc_decide(&t, 3, &d);
	assert_int_equal(d.mode, QDISC_TX_IMMEDIATE);
	assert_string_equal(d.why, "mq with over 64 child qdiscs");
}

/* ---- refused dumps ---- */

static void good_etf_child(struct nlb *n)
{
	q_plain(n, IF_ME, ROOT_H, TC_H_ROOT, "mq");
	child_msg(n, 0, ROOT_H | 1, &(struct child)ETF);
}

static void bad_short_header(struct nlb *n)
{
	good_etf_child(n);
	put(n, "\x10\0\0\0\x03\0\x02\0\x2a\0", 10);
}

static void bad_nlmsg_len_small(struct nlb *n)
{
	good_etf_child(n);
	st32(n, 0, 8);
}

static void bad_nlmsg_overrun(struct nlb *n)
{
	good_etf_child(n);
	st32(n, n->ends[0], (uint32_t)(n->len - n->ends[0] + 4));
}

static void bad_tcmsg_short(struct nlb *n)
{
	msg_begin(n, RTM_NEWQDISC, NLM_F_MULTI, SEQ);
	put(n, "\0\0\0\0\x07\0\0\0\0\0\0\0", 12);
	msg_end(n);
}

static void bad_attr_len_small(struct nlb *n)
{
	struct nlattr a = {.nla_len = 3, .nla_type = TCA_KIND};

	q_begin(n, IF_ME, 0, TC_H_ROOT, NULL);
	put(n, &a, sizeof(a));
	msg_end(n);
}

static void bad_attr_overrun(struct nlb *n)
{
	struct nlattr a = {.nla_len = 200, .nla_type = TCA_KIND};

	q_begin(n, IF_ME, 0, TC_H_ROOT, NULL);
	put(n, &a, sizeof(a));
	put(n, "noqueue", 8);
	msg_end(n);
}

static void bad_attr_tail(struct nlb *n)
{
	q_begin(n, IF_ME, 0, TC_H_ROOT, "noqueue");
	put(n, "\x08\0", 2);
	msg_end(n);
}

/* A whole message whose nlmsg_len leaves its last attribute outside. */
static void bad_attr_past_msg(struct nlb *n)
{
	q_plain(n, IF_ME, 0, TC_H_ROOT, "noqueue");
	st32(n, 0, (uint32_t)n->len - 4);
}

static void bad_etf_inner_overrun(struct nlb *n)
{
	struct nlattr a = {.nla_len = NLA_HDRLEN + sizeof(struct tc_etf_qopt) + 8,
	                   .nla_type = TCA_ETF_PARMS};
	struct tc_etf_qopt e = {.clockid = CLOCK_TAI};

	q_begin(n, IF_ME, 0, TC_H_ROOT, "etf");
	nest_begin(n, TCA_OPTIONS);
	put(n, &a, sizeof(a));
	put(n, &e, sizeof(e));
	nest_end(n);
	q_end(n);
}

static void bad_mqprio_tail_overrun(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;
	struct nlattr a = {.nla_len = 12, .nla_type = TCA_MQPRIO_MODE};

	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "mqprio");
	nest_begin(n, TCA_OPTIONS);
	put(n, &o, sizeof(o));
	pad(n);
	put(n, &a, sizeof(a));
	put(n, "\1\0\0\0", 4);
	nest_end(n);
	q_end(n);
}

static void kind_raw(struct nlb *n, const void *kind, size_t len)
{
	q_begin(n, IF_ME, 0, TC_H_ROOT, NULL);
	attr(n, TCA_KIND, kind, len);
	q_end(n);
}

static void bad_kind_unterminated(struct nlb *n)
{
	kind_raw(n, "noqueue", 7);
}

static void bad_kind_empty(struct nlb *n)
{
	kind_raw(n, "", 1);
}

static void bad_kind_long(struct nlb *n)
{
	kind_raw(n, "sixteen_chars_xx", 17);
}

static void bad_kind_char(struct nlb *n)
{
	kind_raw(n, "pfifo fast", 11);
}

static void bad_kind_missing(struct nlb *n)
{
	q_begin(n, IF_ME, 0, TC_H_ROOT, NULL);
	q_end(n);
}

static void mqprio_raw(struct nlb *n, const struct tc_mqprio_qopt *o, size_t len)
{
	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "mqprio");
	attr(n, TCA_OPTIONS, o, len);
	q_end(n);
}

static void bad_mqprio_short(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;

	mqprio_raw(n, &o, sizeof(o) - 1);
}

static void bad_mqprio_num_tc_0(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;

	o.num_tc = 0;
	mqprio_raw(n, &o, sizeof(o));
}

static void bad_mqprio_num_tc_17(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;

	o.num_tc = 17;
	mqprio_raw(n, &o, sizeof(o));
}

static void bad_mqprio_map(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;

	o.prio_tc_map[9] = 3;
	mqprio_raw(n, &o, sizeof(o));
}

static void bad_mqprio_no_options(struct nlb *n)
{
	q_plain(n, IF_ME, ROOT_H, TC_H_ROOT, "mqprio");
}

static void bad_taprio_no_map(struct nlb *n)
{
	int32_t clk = CLOCK_TAI;

	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "taprio");
	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_TAPRIO_ATTR_SCHED_CLOCKID, &clk, sizeof(clk));
	nest_end(n);
	q_end(n);
}

static void bad_taprio_clock_size(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;
	int64_t clk = CLOCK_TAI;

	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "taprio");
	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_TAPRIO_ATTR_PRIOMAP, &o, sizeof(o));
	attr(n, TCA_TAPRIO_ATTR_SCHED_CLOCKID, &clk, sizeof(clk));
	nest_end(n);
	q_end(n);
}

static void bad_taprio_flags_size(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;
	uint16_t flags = 1;

	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "taprio");
	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_TAPRIO_ATTR_PRIOMAP, &o, sizeof(o));
	attr(n, TCA_TAPRIO_ATTR_FLAGS, &flags, sizeof(flags));
	nest_end(n);
	q_end(n);
}

static void bad_taprio_map_short(struct nlb *n)
{
	struct tc_mqprio_qopt o = MAP3;

	q_begin(n, IF_ME, ROOT_H, TC_H_ROOT, "taprio");
	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_TAPRIO_ATTR_PRIOMAP, &o, offsetof(struct tc_mqprio_qopt, offset));
	nest_end(n);
	q_end(n);
}

static void bad_etf_no_parms(struct nlb *n)
{
	q_begin(n, IF_ME, 0, ROOT_H | 1, "etf");
	nest_begin(n, TCA_OPTIONS);
	nest_end(n);
	q_end(n);
}

static void bad_etf_parms_short(struct nlb *n)
{
	struct tc_etf_qopt e = {.delta = 1, .clockid = CLOCK_TAI};

	q_begin(n, IF_ME, 0, ROOT_H | 1, "etf");
	nest_begin(n, TCA_OPTIONS);
	attr(n, TCA_ETF_PARMS, &e, sizeof(e) - 4);
	nest_end(n);
	q_end(n);
}

static void bad_etf_delta(struct nlb *n)
{
	q_begin(n, IF_ME, 0, ROOT_H | 1, "etf");
	opt_etf(n, CLOCK_TAI, -1, 0);
	q_end(n);
}

static void bad_two_roots(struct nlb *n)
{
	q_plain(n, IF_ME, 0, TC_H_ROOT, "noqueue");
	q_plain(n, IF_ME, ROOT_H, TC_H_ROOT, "mq");
}

static void bad_nlmsg_error(struct nlb *n)
{
	int32_t e[5] = {-EINVAL};

	msg_begin(n, NLMSG_ERROR, 0, SEQ);
	put(n, e, sizeof(e));
	msg_end(n);
}

static void bad_nlmsg_error_short(struct nlb *n)
{
	msg_begin(n, NLMSG_ERROR, 0, SEQ);
	put(n, "\xea\xff", 2);
	msg_end(n);
}

static void bad_done_error(struct nlb *n)
{
	good_etf_child(n);
	done(n, -EMSGSIZE);
}

static void bad_after_done(struct nlb *n)
{
	q_plain(n, IF_ME, 0, TC_H_ROOT, "noqueue");
	done(n, 0);
	q_plain(n, IF_ME, 0, ROOT_H | 1, "pfifo");
}

static const struct bad {
	const char *name;
	void (*make)(struct nlb *n);
	int err;
	int nl_errno;
} bads[] = {
    {.name = "short header", .make = bad_short_header, .err = QDISC_E_NLMSG},
    {.name = "nlmsg_len below the header", .make = bad_nlmsg_len_small, .err = QDISC_E_NLMSG},
    {.name = "nlmsg_len past the buffer", .make = bad_nlmsg_overrun, .err = QDISC_E_NLMSG},
    {.name = "tcmsg short", .make = bad_tcmsg_short, .err = QDISC_E_TCMSG},
    {.name = "rta_len below the header", .make = bad_attr_len_small, .err = QDISC_E_ATTR},
    {.name = "rta_len past the message", .make = bad_attr_overrun, .err = QDISC_E_ATTR},
    {.name = "half an attribute header", .make = bad_attr_tail, .err = QDISC_E_ATTR},
    {.name = "last attribute outside nlmsg_len", .make = bad_attr_past_msg, .err = QDISC_E_ATTR},
    {.name = "etf parms past the nest", .make = bad_etf_inner_overrun, .err = QDISC_E_ATTR},
    {.name = "mqprio attribute past options", .make = bad_mqprio_tail_overrun, .err = QDISC_E_ATTR},
    {.name = "kind unterminated", .make = bad_kind_unterminated, .err = QDISC_E_KIND},
    {.name = "kind empty", .make = bad_kind_empty, .err = QDISC_E_KIND},
    {.name = "kind 16 characters", .make = bad_kind_long, .err = QDISC_E_KIND},
    {.name = "kind with a space", .make = bad_kind_char, .err = QDISC_E_KIND},
    {.name = "kind missing", .make = bad_kind_missing, .err = QDISC_E_KIND},
    {.name = "mqprio qopt short", .make = bad_mqprio_short, .err = QDISC_E_OPTIONS},
    {.name = "mqprio num_tc 0", .make = bad_mqprio_num_tc_0, .err = QDISC_E_OPTIONS},
    {.name = "mqprio num_tc 17", .make = bad_mqprio_num_tc_17, .err = QDISC_E_OPTIONS},
    {.name = "mqprio map past num_tc", .make = bad_mqprio_map, .err = QDISC_E_OPTIONS},
    {.name = "mqprio without options", .make = bad_mqprio_no_options, .err = QDISC_E_OPTIONS},
    {.name = "taprio without priomap", .make = bad_taprio_no_map, .err = QDISC_E_OPTIONS},
    {.name = "taprio clockid of 8 bytes", .make = bad_taprio_clock_size, .err = QDISC_E_OPTIONS},
    {.name = "taprio flags of 2 bytes", .make = bad_taprio_flags_size, .err = QDISC_E_OPTIONS},
    {.name = "taprio priomap short", .make = bad_taprio_map_short, .err = QDISC_E_OPTIONS},
    {.name = "etf without parms", .make = bad_etf_no_parms, .err = QDISC_E_OPTIONS},
    {.name = "etf parms short", .make = bad_etf_parms_short, .err = QDISC_E_OPTIONS},
    {.name = "etf delta negative", .make = bad_etf_delta, .err = QDISC_E_OPTIONS},
    {.name = "two roots", .make = bad_two_roots, .err = QDISC_E_TWO_ROOTS},
    {.name = "NLMSG_ERROR", .make = bad_nlmsg_error, .err = QDISC_E_NLERR, .nl_errno = EINVAL},
    {.name = "NLMSG_ERROR short", .make = bad_nlmsg_error_short, .err = QDISC_E_NLMSG},
    {.name = "NLMSG_DONE with an error",
     .make = bad_done_error,
     .err = QDISC_E_NLERR,
     .nl_errno = EMSGSIZE},
    {.name = "a message after NLMSG_DONE", .make = bad_after_done, .err = QDISC_E_TRAILING},
};

static void test_refused(void **state)
{
	static struct nlb n, good;
	static struct qdisc_tree t;
	static const struct scenario s = {.root = "noqueue"};

	build(&good, &s);
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		const struct bad *b = &bads[i];
		int rc;

		memset(&n, 0, sizeof(n));
		b->make(&n);
		qdisc_tree_init(&t, IF_ME, SEQ);
		rc = qdisc_parse(n.b, n.len, &t);
		if (rc != -b->err) {
			fail_msg("%s: got %d (%s), want %s", b->name, rc,
			         rc < 0 ? qdisc_err_name((unsigned)-rc) : "-",
			         qdisc_err_name(b->err));
		}
		assert_int_equal(t.err, b->err);
		assert_int_equal(t.nl_errno, b->nl_errno);
		/* The error sticks: a good datagram after it does not revive the tree. */
		assert_int_equal(qdisc_parse(good.b, good.len, &t), -b->err);
	}
}

/* The same refusals when the message is another interface's: not ours to read past tcmsg. */
static void test_other_interface_skipped(void **state)
{
	static struct nlb n;
	static struct qdisc_tree t;

	memset(&n, 0, sizeof(n));
	bad_kind_char(&n);
	bad_mqprio_map(&n);
	done(&n, 0);
	qdisc_tree_init(&t, IF_OTHER, SEQ);
	assert_int_equal(qdisc_parse(n.b, n.len, &t), 1);
	assert_false(t.has_root);
	assert_int_equal(t.n_msgs, 0);
}

/* Every cut of a dump: at a message boundary "more to come", elsewhere refused. */
static void test_truncation_sweep(void **state)
{
	static const struct scenario s = {.root = "taprio",
	                                  .map = MAP3,
	                                  .taprio_clock = CLOCK_TAI,
	                                  .taprio_flags = TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST,
	                                  .nq = 4,
	                                  .q = {ETF, ETF_D, PF, ETF}};
	static struct nlb n;
	static struct qdisc_tree t;
	unsigned boundaries = 0;

	build(&n, &s);
	for (size_t cut = 0; cut < n.len; cut++) {
		bool boundary = cut == 0;
		int rc;

		for (unsigned i = 0; i < n.nends; i++) {
			boundary = boundary || n.ends[i] == cut;
		}
		qdisc_tree_init(&t, IF_ME, SEQ);
		rc = qdisc_parse(n.b, cut, &t);
		if (boundary) {
			boundaries++;
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -QDISC_E_NLMSG);
		}
	}
	assert_int_equal(boundaries, n.nends);
}

/*
 * The taprio root message alone with a shorter nlmsg_len: refused while the
 * cut is inside tcmsg, the kind or the options; whole attributes after
 * them (the stats) may go.
 */
static void test_message_cut_sweep(void **state)
{
	static struct nlb n;
	static struct qdisc_tree t;
	struct tc_mqprio_qopt o = MAP3;
	size_t opts_end, refused = 0;

	memset(&n, 0, sizeof(n));
	q_begin(&n, IF_ME, ROOT_H, TC_H_ROOT, "taprio");
	opt_taprio(&n, &o, CLOCK_TAI, TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST);
	q_end(&n);
	opts_end = n.opts_end;
	for (uint32_t l = NLMSG_HDRLEN; l < n.len; l++) {
		int rc;

		st32(&n, 0, l);
		qdisc_tree_init(&t, IF_ME, SEQ);
		rc = qdisc_parse(n.b, l, &t);
		assert_true(rc <= 0);
		if (l < opts_end) {
			assert_true(rc < 0);
			assert_false(t.has_root);
		}
		refused += rc < 0;
	}
	assert_true(refused >= opts_end - NLMSG_HDRLEN);
}

/* Messages of another request, other types, and the interrupted-dump flag. */
static void test_seq_types_intr(void **state)
{
	static struct nlb n;
	static struct qdisc_tree t;
	struct tcmsg tc = {.tcm_ifindex = IF_ME, .tcm_parent = TC_H_ROOT};

	memset(&n, 0, sizeof(n));
	msg_begin(&n, RTM_NEWQDISC, NLM_F_MULTI, SEQ - 1); /* a stale reply: not even read */
	put(&n, "junk", 4);
	msg_end(&n);
	msg_begin(&n, RTM_NEWTCLASS, NLM_F_MULTI, SEQ);
	put(&n, &tc, sizeof(tc));
	msg_end(&n);
	msg_begin(&n, NLMSG_NOOP, 0, SEQ);
	msg_end(&n);
	q_plain(&n, IF_ME, 0, TC_H_ROOT, "noqueue");
	st16(&n, n.ends[2] + offsetof(struct nlmsghdr, nlmsg_flags), NLM_F_MULTI | NLM_F_DUMP_INTR);
	qdisc_tree_init(&t, IF_ME, SEQ);
	assert_int_equal(qdisc_parse(n.b, n.len, &t), 0);
	assert_true(t.intr);
	assert_true(t.has_root);
	assert_int_equal(t.n_msgs, 1);
	/* The end in a datagram of its own, as the kernel may send it. */
	memset(&n, 0, sizeof(n));
	done(&n, 0);
	assert_int_equal(qdisc_parse(n.b, n.len, &t), 1);
	/* And nothing after it. */
	assert_int_equal(qdisc_parse(n.b, n.len, &t), -QDISC_E_TRAILING);
	/* seq 0 takes every message. */
	memset(&n, 0, sizeof(n));
	msg_begin(&n, RTM_NEWQDISC, NLM_F_MULTI, 7);
	put(&n, &tc, sizeof(tc));
	attr(&n, TCA_KIND, "mq", 3);
	msg_end(&n);
	qdisc_tree_init(&t, IF_ME, 0);
	assert_int_equal(qdisc_parse(n.b, n.len, &t), 0);
	assert_int_equal(t.root.kind, QDISC_K_MQ);
}

static void test_strings(void **state)
{
	struct qdisc_decision d;
	char s[16];

	assert_string_equal(qdisc_err_name(QDISC_OK), "ok");
	for (unsigned e = 0; e < QDISC_E_COUNT; e++) {
		assert_string_not_equal(qdisc_err_name(e), "unknown");
	}
	assert_string_equal(qdisc_err_name(QDISC_E_COUNT), "unknown");
	assert_string_equal(qdisc_kind_name(QDISC_K_ETF), "etf");
	assert_string_equal(qdisc_kind_name(QDISC_K_COUNT), "unknown");
	assert_string_equal(qdisc_clock_name(CLOCK_TAI), "CLOCK_TAI");
	assert_string_equal(qdisc_clock_name(CLOCK_MONOTONIC), "CLOCK_MONOTONIC");
	assert_string_equal(qdisc_clock_name(10), "unknown");
	assert_string_equal(qdisc_clock_name(12), "unknown");
	assert_string_equal(qdisc_clock_name(-1), "unknown");
	qdisc_decide_immediate(&d, 6, "qdisc dump: no end after 1000 ms");
	assert_int_equal(d.mode, QDISC_TX_IMMEDIATE);
	assert_int_equal(d.prio, 6);
	/* snprintf semantics: the whole length, a cut string. */
	assert_int_equal(qdisc_decision_str(&d, s, sizeof(s)),
	                 (int)strlen("immediate (qdisc dump: no end after 1000 ms)"));
	assert_string_equal(s, "immediate (qdis");
}

/* ---- the live path ---- */

static void test_live_loopback(void **state)
{
	static struct qdisc_tree t;
	struct qdisc_decision d;
	char err[128] = "", s[256];
	int lo = (int)if_nametoindex("lo");

	assert_true(lo > 0);
	assert_int_equal(qdisc_query(lo, &t, err, sizeof(err)), 0);
	assert_true(t.done);
	assert_true(t.has_root);
	/* Loopback has IFF_NO_QUEUE: noqueue unless someone changed it. */
	assert_string_equal(t.root.name, "noqueue");
	qdisc_decide(&t, 3, &d);
	qdisc_decision_str(&d, s, sizeof(s));
	assert_int_equal(d.mode, QDISC_TX_IMMEDIATE);
	assert_string_equal(s, "immediate (root qdisc noqueue)");
}

static void test_live_no_such_interface(void **state)
{
	static struct qdisc_tree t;
	struct qdisc_decision d;
	char err[128] = "";

	assert_int_equal(qdisc_query(0x7ffffff0, &t, err, sizeof(err)), 0);
	assert_false(t.has_root);
	assert_int_equal(t.n_msgs, 0);
	qdisc_decide(&t, 3, &d);
	assert_int_equal(d.mode, QDISC_TX_IMMEDIATE);
	assert_string_equal(d.why, "no egress qdisc: is the interface down?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_noqueue),          cmocka_unit_test(test_mq_pfifo_fast),
	    cmocka_unit_test(test_mqprio_etf),       cmocka_unit_test(test_taprio_model),
	    cmocka_unit_test(test_decisions),        cmocka_unit_test(test_many_children),
	    cmocka_unit_test(test_refused),          cmocka_unit_test(test_other_interface_skipped),
	    cmocka_unit_test(test_truncation_sweep), cmocka_unit_test(test_message_cut_sweep),
	    cmocka_unit_test(test_seq_types_intr),   cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_live_loopback),    cmocka_unit_test(test_live_no_such_interface),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
