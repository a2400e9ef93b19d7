/*
 * libFuzzer target for the qdisc dump parser and the launch-time decision
 * (transport/tsn/qdisc.c).
 *
 * Input: u8 ifindex (the interface the tree is for; seeds use 7), u16 LE
 * split, then netlink bytes in host order as a RTM_GETQDISC dump gives
 * them. The bytes go to qdisc_parse() as two datagrams, the first split
 * bytes and the rest (split past the end: one datagram).
 *
 * Promises checked: a status in range and remembered in the tree; an
 * error sticks; the model stays within its bounds (children, names, the
 * priority map); every decision is launch time or immediate with a reason,
 * and launch time only on CLOCK_TAI with ETF on every queue of the
 * priority, checked again here from the model. A broken promise aborts.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <linux/pkt_sched.h>

#include "tests/fuzz/fuzz_input.h"
#include "transport/tsn/qdisc.h"

#ifndef CLOCK_TAI
#define CLOCK_TAI 11
#endif

static void check_status(const struct qdisc_tree *t, int rc)
{
	FUZZ_CHECK(rc == 0 || rc == 1 || (rc < 0 && -rc < QDISC_E_COUNT));
	FUZZ_CHECK(rc >= 0 ? t->err == 0 : t->err == -rc);
	FUZZ_CHECK((rc == 1) == (t->done && t->err == 0));
	FUZZ_CHECK(rc != -QDISC_E_NLERR || t->nl_errno > 0);
}

static void check_node(const struct qdisc_node *n)
{
	size_t len = strnlen(n->name, QDISC_NAME_LEN);

	FUZZ_CHECK(len > 0 && len < QDISC_NAME_LEN);
	FUZZ_CHECK((unsigned)n->kind < QDISC_K_COUNT);
	FUZZ_CHECK(n->kind == QDISC_K_OTHER || !strcmp(n->name, qdisc_kind_name(n->kind)));
	FUZZ_CHECK(n->parent != TC_H_INGRESS);
	FUZZ_CHECK(n->kind != QDISC_K_ETF || n->etf.delta_ns >= 0);
}

static void check_model(const struct qdisc_tree *t)
{
	FUZZ_CHECK(t->n_child <= QDISC_MAX_CHILD);
	FUZZ_CHECK(t->n_msgs == t->n_child + t->n_lost + (t->has_root ? 1u : 0u));
	for (unsigned i = 0; i < t->n_child; i++) {
		check_node(&t->child[i]);
		FUZZ_CHECK(t->child[i].parent != TC_H_ROOT);
	}
	if (!t->has_root) {
		return;
	}
	check_node(&t->root);
	FUZZ_CHECK(t->root.parent == TC_H_ROOT);
	if (t->root.kind == QDISC_K_MQPRIO || t->root.kind == QDISC_K_TAPRIO) {
		FUZZ_CHECK(t->map.num_tc >= 1 && t->map.num_tc <= QDISC_NTC);
		for (unsigned p = 0; p < QDISC_NPRIO; p++) {
			FUZZ_CHECK(t->map.prio_tc[p] < t->map.num_tc);
		}
	}
}

/* Launch time for prio: every queue it can land on has ETF on CLOCK_TAI. */
static void check_launch(const struct qdisc_tree *t, int prio, const struct qdisc_decision *d)
{
	unsigned first = 0, count = 0;

	FUZZ_CHECK(d->clockid == CLOCK_TAI);
	FUZZ_CHECK((d->txtime_flags & ~1u) == 0); /* SOF_TXTIME_DEADLINE_MODE only */
	FUZZ_CHECK(t->has_root);
	switch (t->root.kind) {
	case QDISC_K_ETF:
		FUZZ_CHECK(t->root.etf.clockid == CLOCK_TAI);
		FUZZ_CHECK(d->delta_ns == (uint32_t)t->root.etf.delta_ns);
		return;
	case QDISC_K_TAPRIO:
		FUZZ_CHECK(t->taprio_flags & TCA_TAPRIO_ATTR_FLAG_TXTIME_ASSIST);
		FUZZ_CHECK(t->taprio_clockid == CLOCK_TAI);
		/* fall through */
	case QDISC_K_MQPRIO: {
		unsigned tc = t->map.prio_tc[(unsigned)prio & 15];

		first = t->map.offset[tc];
		count = t->map.count[tc];
		break;
	}
	case QDISC_K_MQ:
		FUZZ_CHECK(t->n_lost == 0);
		while (qdisc_tree_txq(t, count)) {
			count++;
		}
		break;
	default:
		FUZZ_CHECK(!"launch time under a root without ETF");
	}
	FUZZ_CHECK(count > 0);
	for (unsigned q = first; q < first + count; q++) {
		const struct qdisc_node *n = qdisc_tree_txq(t, q);

		FUZZ_CHECK(n && n->kind == QDISC_K_ETF && n->etf.clockid == CLOCK_TAI);
		FUZZ_CHECK((uint32_t)n->etf.delta_ns <= d->delta_ns);
	}
}

static void check_decisions(const struct qdisc_tree *t)
{
	static const int prios[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, -1};
	char s[QDISC_WHY_LEN + 64];

	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++) {
		struct qdisc_decision d;
		size_t wl;

		qdisc_decide(t, prios[i], &d);
		wl = strnlen(d.why, sizeof(d.why));
		FUZZ_CHECK(wl > 0 && wl < sizeof(d.why));
		FUZZ_CHECK(d.prio == prios[i]);
		if (d.mode == QDISC_TX_LAUNCH) {
			check_launch(t, prios[i], &d);
		} else {
			FUZZ_CHECK(d.mode == QDISC_TX_IMMEDIATE);
			FUZZ_CHECK(d.clockid == -1 && d.txtime_flags == 0 && d.delta_ns == 0);
		}
		FUZZ_CHECK(qdisc_decision_str(&d, s, sizeof(s)) < (int)sizeof(s));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qdisc_tree t;
	struct fin in;
	size_t split;
	int ifindex, rc;

	fin_init(&in, data, size);
	ifindex = fin_u8(&in);
	split = fin_u16(&in);
	if (in.end) {
		return 0;
	}
	split = split < in.left ? split : in.left;
	qdisc_tree_init(&t, ifindex, 0);
	rc = qdisc_parse(in.p, split, &t);
	check_status(&t, rc);
	if (split < in.left) {
		int rc2 = qdisc_parse(in.p + split, in.left - split, &t);

		check_status(&t, rc2);
		FUZZ_CHECK(rc >= 0 || rc2 == rc); /* an error sticks */
		FUZZ_CHECK(rc != 1 || rc2 == -QDISC_E_TRAILING);
	}
	check_model(&t);
	check_decisions(&t);
	return 0;
}
