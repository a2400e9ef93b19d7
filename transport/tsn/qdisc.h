/*
 * The egress qdisc tree of one interface and what it means for launch time
 * (tsn-and-time.md "Launch time (SO_TXTIME)"): frames of a socket priority
 * are held until their SO_TXTIME launch time only if every tx queue that
 * priority can land on has an ETF qdisc. ETF without skip_sock_check also
 * drops every frame of a socket without SO_TXTIME, so a sender has to know.
 *
 * Three parts:
 *   qdisc_parse()   pure: an RTM_GETQDISC dump (netlink bytes) -> struct qdisc_tree
 *   qdisc_decide()  pure: tree + socket priority -> launch time or immediate, and why
 *   qdisc_query()   I/O: asks the kernel over NETLINK_ROUTE and feeds qdisc_parse()
 *
 * Parsing functions return 0, 1 or -QDISC_E_* (enum qdisc_err);
 * qdisc_err_name(-rc) names the reason.
 */
#ifndef VB_TSN_QDISC_H
#define VB_TSN_QDISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QDISC_NAME_LEN  16u  /* TCA_KIND with its NUL (the kernel's IFNAMSIZ) */
#define QDISC_MAX_CHILD 64u  /* qdiscs below the root the model keeps */
#define QDISC_NPRIO     16u  /* mqprio/taprio map priority & 15 (TC_BITMASK) */
#define QDISC_NTC       16u  /* traffic classes (TC_QOPT_MAX_QUEUE) */
#define QDISC_WHY_LEN   128u /* qdisc_decision.why, with its NUL */

/* qdisc_query() bounds. */
#define QDISC_QUERY_MS    1000u              /* the whole dump, all tries */
#define QDISC_QUERY_BYTES (4u * 1024 * 1024) /* the whole dump, all interfaces */
#define QDISC_QUERY_TRIES 3u                 /* dumps interrupted by a change (NLM_F_DUMP_INTR) */

/* Why a dump was refused. Names: qdisc_err_name(). */
enum qdisc_err {
	QDISC_OK = 0,
	QDISC_E_NLMSG,     /* netlink header short, or nlmsg_len below it or past the buffer */
	QDISC_E_TCMSG,     /* RTM_NEWQDISC shorter than struct tcmsg */
	QDISC_E_ATTR,      /* attribute header short, or rta_len below it or past its container */
	QDISC_E_KIND,      /* TCA_KIND missing, unterminated, empty, over 15 or odd characters */
	QDISC_E_OPTIONS,   /* TCA_OPTIONS of mqprio, taprio or etf missing, short or out of range */
	QDISC_E_TWO_ROOTS, /* a second root qdisc on the interface */
	QDISC_E_NLERR,     /* NLMSG_ERROR, or NLMSG_DONE with an error (qdisc_tree.nl_errno) */
	QDISC_E_TRAILING,  /* bytes after NLMSG_DONE, or a call after it */
	QDISC_E_COUNT
};

enum qdisc_kind {
	QDISC_K_OTHER = 0, /* any qdisc that never holds a frame for its launch time */
	QDISC_K_NOQUEUE,
	QDISC_K_MQ,
	QDISC_K_MQPRIO,
	QDISC_K_TAPRIO,
	QDISC_K_ETF,
	QDISC_K_COUNT
};

/* ETF's TCA_ETF_PARMS (struct tc_etf_qopt). */
struct qdisc_etf {
	int32_t clockid;  /* the kernel accepts only CLOCK_TAI */
	int32_t delta_ns; /* dequeued this long before the launch time; >= 0 */
	uint32_t flags;   /* TC_ETF_DEADLINE_MODE_ON, TC_ETF_OFFLOAD_ON, TC_ETF_SKIP_SOCK_CHECK */
};

/* One qdisc of the interface (handles and parents as the kernel's TC_H_*). */
struct qdisc_node {
	uint32_t handle, parent;
	enum qdisc_kind kind;
	char name[QDISC_NAME_LEN]; /* TCA_KIND, e.g. "pfifo_fast" */
	struct qdisc_etf etf;      /* QDISC_K_ETF only */
};

/* mqprio and taprio (struct tc_mqprio_qopt): priority -> traffic class -> tx queues. */
struct qdisc_map {
	uint8_t num_tc;               /* 1..QDISC_NTC */
	uint8_t prio_tc[QDISC_NPRIO]; /* each < num_tc */
	uint16_t count[QDISC_NTC];    /* tx queues of a class: offset .. offset + count - 1 */
	uint16_t offset[QDISC_NTC];
};

/*
 * The egress tree of one interface. The kernel dumps the qdiscs of every
 * interface; those of others are skipped. Children are kept as dumped; the
 * tx queue a child serves is resolved against the root by qdisc_tree_txq().
 */
struct qdisc_tree {
	int ifindex;
	uint32_t seq;    /* messages with another nlmsg_seq are skipped; 0 takes all */
	bool done;       /* NLMSG_DONE seen */
	bool intr;       /* NLM_F_DUMP_INTR: the tree changed during the dump */
	int err;         /* the QDISC_E_* that stopped the parse; 0 while none */
	int nl_errno;    /* QDISC_E_NLERR: the kernel's error, positive */
	unsigned n_msgs; /* RTM_NEWQDISC messages of this interface */
	bool has_root;
	struct qdisc_node root;
	struct qdisc_map map;   /* root mqprio or taprio */
	int32_t taprio_clockid; /* root taprio; -1 if not dumped (full offload) */
	uint32_t taprio_flags;  /* root taprio: TCA_TAPRIO_ATTR_FLAG_* */
	unsigned n_child;
	struct qdisc_node child[QDISC_MAX_CHILD];
	unsigned n_lost; /* children past QDISC_MAX_CHILD, not kept */
};

/* Empties *t for a dump of ifindex whose request had sequence number seq. */
void qdisc_tree_init(struct qdisc_tree *t, int ifindex, uint32_t seq);

/*
 * Adds one received datagram of the dump (whole netlink messages) to *t.
 * Returns 1 once NLMSG_DONE was seen (the tree is complete), 0 if more is
 * to come, or -QDISC_E_*; after an error *t is incomplete and stays so.
 * Every length is compared with what is left; unknown message types and
 * attributes are skipped; ingress and clsact qdiscs are left out.
 */
int qdisc_parse(const uint8_t *buf, size_t len, struct qdisc_tree *t);

/* The child of the root on tx queue q (0-based), or NULL. */
const struct qdisc_node *qdisc_tree_txq(const struct qdisc_tree *t, unsigned q);

enum qdisc_tx {
	QDISC_TX_IMMEDIATE = 0, /* send as now: no SO_TXTIME */
	QDISC_TX_LAUNCH,        /* SO_TXTIME with clockid and txtime_flags, SCM_TXTIME per frame */
};

struct qdisc_decision {
	enum qdisc_tx mode;
	int prio;                /* the socket priority decided for */
	int32_t clockid;         /* launch: the clock of SCM_TXTIME values (CLOCK_TAI); else -1 */
	uint32_t txtime_flags;   /* launch: SOF_TXTIME_DEADLINE_MODE if ETF runs in deadline mode */
	uint32_t delta_ns;       /* launch: largest ETF delta of the queues; launch times nearer
	                            than now + delta_ns miss their slot */
	char why[QDISC_WHY_LEN]; /* launch: "etf" or "taprio txtime-assist, etf";
	                            immediate: the reason, e.g. "root qdisc noqueue" */
};

/*
 * Launch time for socket priority prio when every tx queue prio can land on
 * (mqprio/taprio: its traffic class's queues; mq: all queues; a root ETF)
 * has an ETF child on CLOCK_TAI, agreeing on deadline mode, and a root
 * taprio runs in txtime-assist mode on CLOCK_TAI; immediate otherwise.
 */
void qdisc_decide(const struct qdisc_tree *t, int prio, struct qdisc_decision *d);
/* Immediate, with why (e.g. the query failed). */
void qdisc_decide_immediate(struct qdisc_decision *d, int prio, const char *why);

/*
 * For status: "launch time (etf, CLOCK_TAI)" or "immediate (root qdisc
 * noqueue)". Returns what snprintf() returns.
 */
int qdisc_decision_str(const struct qdisc_decision *d, char *buf, size_t len);

const char *qdisc_err_name(unsigned err);
const char *qdisc_kind_name(enum qdisc_kind k);
/* "CLOCK_TAI", "CLOCK_MONOTONIC" ...; "unknown" for others. */
const char *qdisc_clock_name(int32_t clockid);

/*
 * Dumps the qdiscs of ifindex over NETLINK_ROUTE (RTM_GETQDISC, NLM_F_DUMP)
 * into *t: at most QDISC_QUERY_MS and QDISC_QUERY_BYTES, tried again up to
 * QDISC_QUERY_TRIES times if a change interrupted the dump. Needs no
 * privileges. 0, or -errno with the reason in err (-EPROTO: a refused dump).
 */
int qdisc_query(int ifindex, struct qdisc_tree *t, char *err, size_t errlen);

#endif
