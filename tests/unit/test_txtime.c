/*
 * SO_TXTIME helpers (transport/tsn/txtime.c) without ETF: the SCM_TXTIME
 * cmsg read back with the libc CMSG macros and sent through a real socket,
 * the error-queue parser on hand-built control buffers (AF_PACKET, IPv4 and
 * IPv6 forms, other origins, overrunning lengths), the counters, launch
 * times per queue, SO_TXTIME on a UDP socket, and txtime_drain() on a real
 * error queue (an ICMP port unreachable on loopback: not a launch-time
 * error, counted as other). No ETF here: no real SO_EE_ORIGIN_TXTIME error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "transport/tsn/txtime.h"

#ifndef SO_TXTIME
#define SO_TXTIME 61
#endif
#ifndef SCM_TXTIME
#define SCM_TXTIME SO_TXTIME
#endif
#ifndef SOL_PACKET
#define SOL_PACKET 263
#endif

static void test_cmsg_layout(void **state)
{
	union txtime_cmsg c;
	struct msghdr m = {.msg_control = c.buf};
	struct cmsghdr *h;
	uint64_t t = 0x0123456789abcdefull, got;

	memset(&c, 0xAA, sizeof(c));
	assert_int_equal(TXTIME_CMSG_SPACE, CMSG_SPACE(8));
	assert_int_equal(sizeof(c), TXTIME_CMSG_SPACE);
	m.msg_controllen = txtime_cmsg_put(c.buf, sizeof(c), t);
	assert_int_equal(m.msg_controllen, CMSG_SPACE(8));
	h = CMSG_FIRSTHDR(&m);
	assert_non_null(h);
	assert_int_equal(h->cmsg_level, SOL_SOCKET);
	assert_int_equal(h->cmsg_type, SCM_TXTIME);
	assert_int_equal(h->cmsg_len, CMSG_LEN(8));
	memcpy(&got, CMSG_DATA(h), sizeof(got));
	assert_true(got == t);
	assert_null(CMSG_NXTHDR(&m, h));
	/* The padding after the u64 (if any) is zeroed, not left over. */
	for (size_t i = CMSG_LEN(8); i < sizeof(c); i++) {
		assert_int_equal(c.buf[i], 0);
	}
	/* One byte short: nothing written. */
	memset(&c, 0xAA, sizeof(c));
	assert_int_equal(txtime_cmsg_put(c.buf, sizeof(c) - 1, t), 0);
	assert_int_equal(c.buf[0], 0xAA);
}

/* The kernel takes the cmsg: a UDP datagram with SO_TXTIME on CLOCK_MONOTONIC and a launch time. */
static void test_cmsg_sent(void **state)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t tolen = sizeof(to);
	int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	union txtime_cmsg c;
	struct iovec iov = {"launch", 6};
	struct msghdr m = {.msg_name = &to,
	                   .msg_namelen = sizeof(to),
	                   .msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = c.buf};
	struct timespec now;
	char buf[16];

	assert_true(rx >= 0 && tx >= 0);
	assert_int_equal(bind(rx, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(getsockname(rx, (struct sockaddr *)&to, &tolen), 0);
	assert_int_equal(txtime_enable(tx, CLOCK_MONOTONIC, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &now);
	m.msg_controllen =
	    txtime_cmsg_put(c.buf, sizeof(c), (uint64_t)now.tv_sec * 1000000000ull + now.tv_nsec);
	/* A malformed cmsg would be refused with EINVAL; loopback's noqueue ignores the time. */
	assert_int_equal(sendmsg(tx, &m, 0), 6);
	assert_int_equal(recv(rx, buf, sizeof(buf), 0), 6);
	assert_memory_equal(buf, "launch", 6);
	close(rx);
	close(tx);
}

static void test_enable(void **state)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sock_txtime st;
	socklen_t len = sizeof(st);
	int rc;

	assert_true(fd >= 0);
	assert_int_equal(txtime_enable(fd, CLOCK_MONOTONIC, SOF_TXTIME_DEADLINE_MODE), 0);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TXTIME, &st, &len), 0);
	assert_int_equal(st.clockid, CLOCK_MONOTONIC);
	assert_int_equal(st.flags, SOF_TXTIME_DEADLINE_MODE | SOF_TXTIME_REPORT_ERRORS);
	/* Flags other than deadline mode are not passed on. */
	assert_int_equal(txtime_enable(fd, CLOCK_MONOTONIC, 0x80), 0);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TXTIME, &st, &len), 0);
	assert_int_equal(st.flags, SOF_TXTIME_REPORT_ERRORS);
	/* CLOCK_TAI needs CAP_NET_ADMIN: either granted or -EPERM, nothing else. */
	rc = txtime_enable(fd, CLOCK_TAI, 0);
	assert_true(rc == 0 || rc == -EPERM);
	assert_int_equal(txtime_enable(-1, CLOCK_MONOTONIC, 0), -EBADF);
	close(fd);
}

/* ---- error-queue control buffers, built with the libc macros ---- */

struct ctl {
	union {
		struct cmsghdr align;
		uint8_t b[512];
	} u;
	size_t len;
};

static void cmsg_add(struct ctl *c, int level, int type, const void *data, size_t len)
{
	struct cmsghdr *h = (struct cmsghdr *)(c->u.b + c->len);

	assert_true(c->len + CMSG_SPACE(len) <= sizeof(c->u.b));
	memset(h, 0, CMSG_SPACE(len));
	h->cmsg_level = level;
	h->cmsg_type = type;
	h->cmsg_len = CMSG_LEN(len);
	memcpy(CMSG_DATA(h), data, len);
	c->len += CMSG_SPACE(len);
}

static struct sock_extended_err ee_of(uint8_t origin, uint8_t code, uint32_t err, uint64_t t)
{
	return (struct sock_extended_err){.ee_errno = err,
	                                  .ee_origin = origin,
	                                  .ee_code = code,
	                                  .ee_info = (uint32_t)t,
	                                  .ee_data = (uint32_t)(t >> 32)};
}

#define T1 0x00000017deadbeefull

static void ctl_packet_missed(struct ctl *c)
{
	struct sock_extended_err e =
	    ee_of(SO_EE_ORIGIN_TXTIME, SO_EE_CODE_TXTIME_MISSED, ECANCELED, T1);

	cmsg_add(c, SOL_PACKET, PACKET_TX_TIMESTAMP, &e, sizeof(e));
}

static void ctl_ip_invalid(struct ctl *c)
{
	struct sock_extended_err e =
	    ee_of(SO_EE_ORIGIN_TXTIME, SO_EE_CODE_TXTIME_INVALID_PARAM, EINVAL, T1);

	cmsg_add(c, SOL_IP, IP_RECVERR, &e, sizeof(e));
}

/* As recvmsg gives it for IPv6: a timestamp first, then the error with the offender's address. */
static void ctl_ipv6_after_timestamp(struct ctl *c)
{
	struct {
		struct sock_extended_err e;
		struct sockaddr_in6 offender;
	} d = {.e = ee_of(SO_EE_ORIGIN_TXTIME, SO_EE_CODE_TXTIME_MISSED, ECANCELED, T1),
	       .offender = {.sin6_family = AF_INET6}};
	struct timespec ts[3] = {{1, 2}};

	cmsg_add(c, SOL_SOCKET, SO_TIMESTAMPING_OLD, ts, sizeof(ts));
	cmsg_add(c, SOL_IPV6, IPV6_RECVERR, &d, sizeof(d));
}

static void ctl_icmp(struct ctl *c)
{
	struct sock_extended_err e = ee_of(SO_EE_ORIGIN_ICMP, 3, ECONNREFUSED, 0);

	cmsg_add(c, SOL_IP, IP_RECVERR, &e, sizeof(e));
}

/* SO_EE_ORIGIN_TXTIME under a cmsg that does not carry errors: not read. */
static void ctl_wrong_cmsg(struct ctl *c)
{
	struct sock_extended_err e =
	    ee_of(SO_EE_ORIGIN_TXTIME, SO_EE_CODE_TXTIME_MISSED, ECANCELED, T1);

	cmsg_add(c, SOL_PACKET, PACKET_AUXDATA, &e, sizeof(e));
}

static void ctl_empty(struct ctl *c)
{
}

static void ctl_short_ee(struct ctl *c)
{
	struct sock_extended_err e =
	    ee_of(SO_EE_ORIGIN_TXTIME, SO_EE_CODE_TXTIME_MISSED, ECANCELED, T1);

	cmsg_add(c, SOL_PACKET, PACKET_TX_TIMESTAMP, &e, sizeof(e) - 1);
}

static void ctl_len_past(struct ctl *c)
{
	ctl_packet_missed(c);
	((struct cmsghdr *)c->u.b)->cmsg_len = c->len + 1;
}

static void ctl_len_small(struct ctl *c)
{
	ctl_packet_missed(c);
	((struct cmsghdr *)c->u.b)->cmsg_len = sizeof(struct cmsghdr) - 1;
}

/* The kernel cut the control data (MSG_CTRUNC): the last cmsg_len runs past what we got. */
static void ctl_cut(struct ctl *c)
{
	ctl_icmp(c);
	ctl_packet_missed(c);
	c->len -= 8;
}

/* Less than a cmsghdr left at the end: ignored, as CMSG_NXTHDR does. */
static void ctl_tail(struct ctl *c)
{
	ctl_icmp(c);
	c->len += 8;
}

static const struct {
	const char *name;
	void (*make)(struct ctl *c);
	int rc;
	uint8_t code;
	uint32_t err;
} ctls[] = {
    {"AF_PACKET missed", ctl_packet_missed, 1, SO_EE_CODE_TXTIME_MISSED, ECANCELED},
    {"IPv4 invalid", ctl_ip_invalid, 1, SO_EE_CODE_TXTIME_INVALID_PARAM, EINVAL},
    {"IPv6 after a timestamp", ctl_ipv6_after_timestamp, 1, SO_EE_CODE_TXTIME_MISSED, ECANCELED},
    {"ICMP origin", ctl_icmp, 0, 0, 0},
    {"not an error cmsg", ctl_wrong_cmsg, 0, 0, 0},
    {"empty", ctl_empty, 0, 0, 0},
    {"short extended error", ctl_short_ee, -1, 0, 0},
    {"cmsg_len past the buffer", ctl_len_past, -1, 0, 0},
    {"cmsg_len below the header", ctl_len_small, -1, 0, 0},
    {"control data cut", ctl_cut, -1, 0, 0},
    {"bytes after the last cmsg", ctl_tail, 0, 0, 0},
};

static void test_err_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctls); i++) {
		struct ctl c = {.len = 0};
		struct txtime_err e;
		int rc;

		ctls[i].make(&c);
		rc = txtime_err_parse(c.u.b, c.len, &e);
		if (rc != ctls[i].rc) {
			fail_msg("%s: got %d, want %d", ctls[i].name, rc, ctls[i].rc);
		}
		if (rc == 1) {
			assert_int_equal(e.code, ctls[i].code);
			assert_int_equal(e.ee_errno, ctls[i].err);
			assert_true(e.txtime == T1);
		}
	}
}

static void test_count(void **state)
{
	struct txtime_stats st = {0};
	struct txtime_err missed = {ECANCELED, SO_EE_CODE_TXTIME_MISSED, 5};
	struct txtime_err invalid = {EINVAL, SO_EE_CODE_TXTIME_INVALID_PARAM, 7};
	struct txtime_err odd = {EIO, 9, 11};

	txtime_count(&st, 1, &missed);
	txtime_count(&st, 1, &invalid);
	txtime_count(&st, 1, &invalid);
	txtime_count(&st, 1, &odd);
	txtime_count(&st, 0, &odd);
	txtime_count(&st, -1, &odd);
	assert_int_equal(st.missed, 1);
	assert_int_equal(st.invalid, 2);
	assert_int_equal(st.other, 3);
	assert_int_equal(st.last_txtime, 7);
	assert_int_equal(st.last_errno, EINVAL);
}

/* A real error queue: UDP to a closed loopback port with IP_RECVERR gets an ICMP error. */
static void test_drain_icmp(void **state)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t tolen = sizeof(to);
	int closed = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct txtime_stats st = {0};
	struct pollfd p = {.fd = fd, .events = 0};
	int one = 1;

	assert_true(fd >= 0 && closed >= 0);
	/* A port that was just free: bind, read it back, close. */
	assert_int_equal(bind(closed, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(getsockname(closed, (struct sockaddr *)&to, &tolen), 0);
	close(closed);
	assert_int_equal(txtime_drain(fd, &st), 0); /* nothing queued */
	assert_int_equal(setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one)), 0);
	assert_int_equal(txtime_enable(fd, CLOCK_MONOTONIC, 0), 0);
	assert_int_equal(sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
	/* A queued error shows as POLLERR. */
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_true(p.revents & POLLERR);
	assert_int_equal(txtime_drain(fd, &st), 0);
	assert_int_equal(st.other, 1);
	assert_int_equal(st.missed + st.invalid, 0);
	/* Drained: no POLLERR left. */
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(txtime_drain(-1, &st), -EBADF);
	close(fd);
}

static void test_next(void **state)
{
	static const struct {
		uint64_t lead, last, now, want, expect;
	} cases[] = {
	    {300000, 0, 1000000, 0, 1300000},       /* as soon as possible: now + lead */
	    {300000, 0, 1000000, 5000000, 5000000}, /* a later wish is kept */
	    {300000, 0, 1000000, 1100000, 1300000}, /* a wish inside the lead moves out */
	    {300000, 2000000, 1000000, 0, 2000000}, /* never before the last one */
	    {300000, 1300000, 1000000, 0, 1300000}, /* equal to the last is fine for ETF */
	    {10, 0, UINT64_MAX - 5, 0, UINT64_MAX}, /* no wrap */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct txtime_sched s = {.lead_ns = cases[i].lead, .last = cases[i].last};
		uint64_t t = txtime_next(&s, cases[i].now, cases[i].want);

		assert_true(t == cases[i].expect);
		assert_true(s.last == t);
	}
}

/* A burst: launch times never go back, even when the clock read is stale. */
static void test_next_monotonic(void **state)
{
	struct txtime_sched s = {.lead_ns = 500000};
	uint64_t prev = 0, now = 1000000000;

	for (unsigned i = 0; i < 1000; i++) {
		uint64_t t;

		now += (i % 7 == 0) ? 0 : 1000 * (i % 5);
		t = txtime_next(&s, i % 3 ? now : now - 400000, i % 11 ? 0 : now + 2000000);
		assert_true(t >= prev);
		assert_true(t >= (i % 3 ? now : now - 400000) + 500000);
		prev = t;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmsg_layout), cmocka_unit_test(test_cmsg_sent),
	    cmocka_unit_test(test_enable),      cmocka_unit_test(test_err_parse),
	    cmocka_unit_test(test_count),       cmocka_unit_test(test_drain_icmp),
	    cmocka_unit_test(test_next),        cmocka_unit_test(test_next_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
