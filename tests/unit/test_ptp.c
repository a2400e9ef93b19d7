/*
 * The gPTP status client (transport/tsn/ptp.c): the sync decision and the
 * time-base conversion as pure functions, then the client on a real event
 * loop against a scripted ptp4l on a UNIX datagram socket: it reaches
 * synchronized, notices when the answers stop, the socket goes away, the
 * offset grows or Syncs stop coming, and recovers when ptp4l is back.
 * Datagrams from the wrong round or malformed ones change nothing.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "bridge/util.h"
#include "transport/tsn/ptp.h"
#include "transport/tsn/ptpmgmt.h"

static const uint8_t OWN[8] = {0x02, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0x0b};
static const uint8_t GM[8] = {0x02, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0x0a};

static struct ptp_obs slave_obs(void)
{
	struct ptp_obs o = {.answered = true, .port_state = PTPM_PS_SLAVE, .log_sync_interval = -3};

	o.ts.gm_present = 1;
	o.ts.master_offset = 1234;
	o.ts.ingress_time = 1700000000000000000ll;
	memcpy(o.ts.gm_identity, GM, 8);
	memcpy(o.own_clock, OWN, 8);
	o.ingress_age_ns = 100000000; /* 0.1 s */
	return o;
}

static void expect_decision(const struct ptp_obs *o, enum ptp_sync want, bool want_gm,
                            const char *why_has)
{
	char why[160] = "";
	bool gm = true;
	enum ptp_sync got = ptp_decide(o, 100000, &gm, why, sizeof(why));

	if (got != want || gm != want_gm || !strstr(why, why_has)) {
		fail_msg("decided %s (gm %d, \"%s\"), want %s (gm %d, \"%s\")", ptp_sync_name(got),
		         gm, why, ptp_sync_name(want), want_gm, why_has);
	}
}

/* Port state AND offset AND fresh Syncs: each alone proves nothing. */
static void test_decide(void **state)
{
	struct ptp_obs o = slave_obs();

	expect_decision(&o, PTP_SYNC, false, "slave of grandmaster 020000.fffe.00000a");
	o.ts.master_offset = 100000;
	expect_decision(&o, PTP_SYNC, false, "master offset 100000 ns");
	o.ts.master_offset = 100001;
	expect_decision(&o, PTP_UNSYNC, false, "master offset 100001 ns, over 100000 ns");
	o.ts.master_offset = -100001;
	expect_decision(&o, PTP_UNSYNC, false, "master offset -100001 ns");
	o.ts.master_offset = INT64_MIN;
	expect_decision(&o, PTP_UNSYNC, false, "over 100000 ns");

	/* The automotive profile: SLAVE at once, before any Sync. */
	o = slave_obs();
	o.ingress_age_ns = UINT64_MAX;
	expect_decision(&o, PTP_UNSYNC, false, "no Sync taken in yet");
	/* Syncs every 125 ms: stale after 1 s (the floor); every 2 s: after 8 s. */
	o.ingress_age_ns = 1000000000;
	expect_decision(&o, PTP_SYNC, false, "slave of");
	o.ingress_age_ns = 1000000001;
	expect_decision(&o, PTP_UNSYNC, false, "no Sync taken in for 1.0 s");
	o.log_sync_interval = 1;
	o.ingress_age_ns = 7000000000ull;
	expect_decision(&o, PTP_SYNC, false, "slave of");
	o.ingress_age_ns = 8000000001ull;
	expect_decision(&o, PTP_UNSYNC, false, "no Sync taken in for 8.0 s");
	o.log_sync_interval = 127; /* nonsense from a peer: clamped to 2^4 s */
	o.ingress_age_ns = 64000000000ull;
	expect_decision(&o, PTP_SYNC, false, "slave of");

	o = slave_obs();
	o.ts.gm_present = 0;
	expect_decision(&o, PTP_UNSYNC, false, "no grandmaster present");
	static const uint8_t states[] = {PTPM_PS_INITIALIZING,
	                                 PTPM_PS_FAULTY,
	                                 PTPM_PS_DISABLED,
	                                 PTPM_PS_LISTENING,
	                                 PTPM_PS_PASSIVE,
	                                 PTPM_PS_UNCALIBRATED,
	                                 PTPM_PS_PRE_MASTER,
	                                 0,
	                                 200};
	for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
		o.port_state = states[i];
		expect_decision(&o, PTP_UNSYNC, false, "port state");
	}
	/* MASTER with someone else's identity: not the grandmaster, not a slave. */
	o.port_state = PTPM_PS_MASTER;
	expect_decision(&o, PTP_UNSYNC, false, "port state MASTER");
	/* The grandmaster: its own clock is the time base, no Syncs come in. */
	memcpy(o.ts.gm_identity, OWN, 8);
	o.ts.gm_present = 0;
	o.ts.ingress_time = 0;
	o.ingress_age_ns = UINT64_MAX;
	expect_decision(&o, PTP_SYNC, true, "this node is the grandmaster (020000.fffe.00000b)");

	o.answered = false;
	expect_decision(&o, PTP_NO_PTP4L, false, "did not answer");
}

/* A timestamp from the slave means the grandmaster's instant. */
static void test_convert(void **state)
{
	struct ptp_timebase tb = {.tai_offset_ns = 37000000000ll, .rate = 1.0};
	int64_t rt = 1700000000123456789ll;

	assert_int_equal(ptp_convert(&tb, rt), rt + 37000000000ll);
	/* A slave 2.5 ms ahead of the grandmaster at its last Sync. */
	tb.slave = true;
	tb.ingress_local = rt - 50000000; /* 50 ms ago */
	tb.master_offset = 2500000;
	assert_int_equal(ptp_convert(&tb, rt), rt - 2500000 + 37000000000ll);
	assert_int_equal(ptp_convert(&tb, tb.ingress_local),
	                 tb.ingress_local - 2500000 + 37000000000ll);
	/* ... whose clock runs 100 ppm slow: the grandmaster gained 5 us in those 50 ms. */
	tb.rate = 1.0001;
	assert_int_equal(ptp_convert(&tb, rt), rt - 2500000 + 5000 + 37000000000ll);
	/* Behind the grandmaster, and no TAI offset known. */
	tb.rate = 1.0;
	tb.master_offset = -7;
	tb.tai_offset_ns = 0;
	assert_int_equal(ptp_convert(&tb, rt), rt + 7);
}

static void test_names(void **state)
{
	assert_string_equal(ptp_sync_name(PTP_SYNC), "synchronized");
	assert_string_equal(ptp_sync_name(PTP_UNSYNC), "unsynchronized");
	assert_string_equal(ptp_sync_name(PTP_NO_PTP4L), "no-ptp4l");
	assert_string_equal(ptp_sync_name((enum ptp_sync)7), "?");
}

/* ---- a scripted ptp4l ---- */

struct fake {
	int fd;
	char path[108];
	bool answer; /* answer GETs at all */
	uint8_t ts;  /* transportSpecific it answers to (ptp4l drops others) */
	uint8_t port_state;
	int64_t offset;
	bool advance; /* a new ingress_time with each answer */
	int64_t ingress;
	bool junk; /* send a malformed and a wrong-sequence datagram first */
	unsigned gets;
};

/* A RESPONSE to the GET in req: its header and management block, our TLV data. */
static size_t fake_response(uint8_t *out, const uint8_t *req, uint16_t id, const uint8_t *data,
                            size_t len)
{
	size_t n = PTPM_HDR_LEN + PTPM_MGMT_LEN + 6 + len;

	memcpy(out, req, PTPM_HDR_LEN + PTPM_MGMT_LEN);
	put_be16(out + 2, (uint16_t)n);
	out[PTPM_HDR_LEN + 12] = (uint8_t)((out[PTPM_HDR_LEN + 12] & 0xf0) | PTPM_RESPONSE);
	put_be16(out + 48, PTPM_TLV_MANAGEMENT);
	put_be16(out + 50, (uint16_t)(2 + len));
	put_be16(out + 52, id);
	memcpy(out + 54, data, len);
	return n;
}

static void fake_serve(struct fake *f)
{
	uint8_t req[256], out[256], d[64];
	struct sockaddr_un from;
	socklen_t fl = sizeof(from);
	ssize_t n;

	while ((n = recvfrom(f->fd, req, sizeof(req), MSG_DONTWAIT, (struct sockaddr *)&from,
	                     &fl)) > 0) {
		struct ptpm_msg m;
		size_t len = 0;

		assert_int_equal(ptpm_decode(req, (size_t)n, &m), 0);
		assert_int_equal(m.action, PTPM_GET);
		f->gets++;
		if (!f->answer || m.hdr.transport_specific != f->ts) {
			fl = sizeof(from);
			continue;
		}
		memset(d, 0, sizeof(d));
		switch (m.mgmt_id) {
		case PTPM_ID_TIME_STATUS_NP:
			if (f->advance) {
				f->ingress += 125000000;
			}
			put_be64(d, (uint64_t)f->offset);
			put_be64(d + 8, (uint64_t)f->ingress);
			put_be32(d + 38, 1); /* gmPresent */
			memcpy(d + 42, GM, 8);
			len = 50;
			break;
		case PTPM_ID_PORT_DATA_SET:
			memcpy(d, OWN, 8);
			put_be16(d + 8, 1);
			d[10] = f->port_state;
			d[22] = (uint8_t)-3; /* logSyncInterval */
			d[25] = 2;
			len = 26;
			break;
		case PTPM_ID_TIME_PROPERTIES_DATA_SET:
			put_be16(d, 37);
			d[2] = PTPM_TP_UTC_OFF_VALID | PTPM_TP_PTP_TIMESCALE;
			d[3] = 0xa0;
			len = 4;
			break;
		default:
			fail_msg("GET of id 0x%04x", m.mgmt_id);
		}
		if (f->junk) {
			static const uint8_t bad[3] = {1, 2, 3};

			sendto(f->fd, bad, sizeof(bad), 0, (struct sockaddr *)&from, fl);
			req[31] ^= 0x40; /* another round's sequenceId */
			n = (ssize_t)fake_response(out, req, m.mgmt_id, d, len);
			req[31] ^= 0x40;
			sendto(f->fd, out, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
		n = (ssize_t)fake_response(out, req, m.mgmt_id, d, len);
		assert_int_equal(sendto(f->fd, out, (size_t)n, 0, (struct sockaddr *)&from, fl), n);
		fl = sizeof(from);
	}
}

static void fake_open(struct fake *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	strcpy(sa.sun_path, f->path);
	unlink(f->path);
	f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void fake_close(struct fake *f, bool unlink_it)
{
	close(f->fd);
	f->fd = -1;
	if (unlink_it) {
		unlink(f->path);
	}
}

struct run {
	struct event_base *evb;
	struct ptp_client *c;
	struct fake *f;
	unsigned changes;
	enum ptp_sync last;
};

static void on_change(void *arg, enum ptp_sync st)
{
	struct run *r = arg;

	r->changes++;
	r->last = st;
}

/* Runs the loop (serving the fake) until the client is in want (with a reason
 * holding why_has, if given), at most ms. */
static bool run_until_why(struct run *r, enum ptp_sync want, const char *why_has, int ms)
{
	struct ptp_status st;

	for (int t = 0; t < ms; t += 5) {
		struct timeval tv = {0, 5000};

		event_base_loopexit(r->evb, &tv);
		event_base_dispatch(r->evb);
		if (r->f->fd >= 0) {
			fake_serve(r->f);
		}
		ptp_get_status(r->c, &st);
		if (st.state == want && (!why_has || strstr(st.reason, why_has))) {
			return true;
		}
	}
	return false;
}

static bool run_until(struct run *r, enum ptp_sync want, int ms)
{
	return run_until_why(r, want, NULL, ms);
}

static void expect_state(struct run *r, enum ptp_sync want, int ms, const char *why_has)
{
	struct ptp_status st;

	if (!run_until_why(r, want, why_has, ms)) {
		ptp_get_status(r->c, &st);
		fail_msg("state %s (%s) after %d ms, want %s (\"%s\")", ptp_sync_name(st.state),
		         st.reason, ms, ptp_sync_name(want), why_has);
	}
	assert_int_equal(r->last, want);
}

static void test_client_live(void **state)
{
	struct fake f = {.fd = -1,
	                 .answer = true,
	                 .ts = 1,
	                 .port_state = PTPM_PS_SLAVE,
	                 .offset = 20000,
	                 .advance = true,
	                 .ingress = 1700000000000000000ll};
	struct ptp_config cfg = {
	    .domain = 0, .transport_specific = -1, .poll_ns = 50000000, .max_offset_ns = 100000};
	struct run r = {.f = &f};
	struct ptp_status st;
	char err[200];
	int64_t t0, t1;

	snprintf(f.path, sizeof(f.path), "/tmp/vb-test-ptp.%d.sock", getpid());
	fake_open(&f);
	cfg.path = f.path;
	r.evb = event_base_new();
	assert_non_null(r.evb);
	r.c = ptp_client_new(r.evb, &cfg, on_change, &r, err, sizeof(err));
	assert_non_null(r.c);
	assert_int_equal(ptp_state(r.c), PTP_NO_PTP4L);

	/* transportSpecific found (gPTP's 1 first), Syncs advancing: synchronized. */
	expect_state(&r, PTP_SYNC, 2000, "slave of grandmaster 020000.fffe.00000a");
	ptp_get_status(r.c, &st);
	assert_int_equal(st.transport_specific, 1);
	assert_string_equal(st.gm_identity, "020000.fffe.00000a");
	assert_string_equal(st.port_state, "SLAVE");
	assert_int_equal(st.master_offset_ns, 20000);
	assert_int_equal(st.is_gm, false);
	assert_true(st.answers >= 3);

	/* The offset leaves the threshold, then comes back. */
	f.offset = -150000;
	expect_state(&r, PTP_UNSYNC, 1000, "master offset -150000 ns, over 100000 ns");
	f.offset = 30;
	expect_state(&r, PTP_SYNC, 1000, "slave of");

	/* Syncs stop (a dead grandmaster while the port stays SLAVE). */
	f.advance = false;
	expect_state(&r, PTP_UNSYNC, 3000, "no Sync taken in for");
	f.advance = true;
	expect_state(&r, PTP_SYNC, 1000, "slave of");

	/* Junk and answers of other rounds are ignored: still synchronized, errors counted. */
	f.junk = true;
	assert_false(run_until(&r, PTP_UNSYNC, 300));
	assert_int_equal(ptp_state(r.c), PTP_SYNC);
	ptp_get_status(r.c, &st);
	assert_true(st.errors > 0);
	f.junk = false;

	/* ptp4l hangs: no answers; two unanswered rounds make it no-ptp4l. */
	f.answer = false;
	t0 = (int64_t)vb_now_ns();
	expect_state(&r, PTP_NO_PTP4L, 1000, "no answer from ptp4l at");
	t1 = (int64_t)vb_now_ns();
	assert_true(t1 - t0 < 400000000); /* bounded: a few poll intervals, not a hang */

	/* ptp4l gone: its socket refuses, or is not there at all. */
	fake_close(&f, false);
	expect_state(&r, PTP_NO_PTP4L, 500, "Connection refused");
	unlink(f.path);
	expect_state(&r, PTP_NO_PTP4L, 500, "No such file");

	/* ptp4l back, now configured with transportSpecific 0: found again. */
	f.answer = true;
	f.ts = 0;
	fake_open(&f);
	expect_state(&r, PTP_SYNC, 2000, "slave of");
	ptp_get_status(r.c, &st);
	assert_int_equal(st.transport_specific, 0);

	/* LISTENING after a restart: unsynchronized, not synchronized on port state alone. */
	f.port_state = PTPM_PS_LISTENING;
	expect_state(&r, PTP_UNSYNC, 1000, "port state LISTENING");
	assert_true(r.changes >= 9);

	ptp_client_free(r.c);
	fake_close(&f, true);
	event_base_free(r.evb);
}

/* No --ptp4l: no socket, no timer, no-ptp4l for good; stamps are TAI of the local clock. */
static void test_client_none(void **state)
{
	struct ptp_config cfg = {.transport_specific = -1};
	struct event_base *evb = event_base_new();
	struct ptp_client *c;
	struct ptp_status st;
	struct timespec ts;
	char err[100];
	int64_t now, rt;

	c = ptp_client_new(evb, &cfg, NULL, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(ptp_state(c), PTP_NO_PTP4L);
	ptp_get_status(c, &st);
	assert_non_null(strstr(st.reason, "no ptp4l configured"));
	clock_gettime(CLOCK_REALTIME, &ts);
	rt = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
	now = ptp_now(c);
	assert_true(now - rt - (int64_t)st.tai_offset_s * 1000000000ll < 1000000000ll);
	assert_true(now - rt - (int64_t)st.tai_offset_s * 1000000000ll >= 0);
	ptp_client_free(c);

	/* --ptp4l local: synchronized for good, the same clock. */
	cfg.trust_local = true;
	c = ptp_client_new(evb, &cfg, NULL, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(ptp_state(c), PTP_SYNC);
	ptp_get_status(c, &st);
	assert_non_null(strstr(st.reason, "--ptp4l local"));
	ptp_client_free(c);

	cfg.path = "/tmp/"
	           "0123456789012345678901234567890123456789012345678901234567890123456789"
	           "0123456789012345678901234567890123456789";
	assert_null(ptp_client_new(evb, &cfg, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
	event_base_free(evb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decide),      cmocka_unit_test(test_convert),
	    cmocka_unit_test(test_names),       cmocka_unit_test(test_client_live),
	    cmocka_unit_test(test_client_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
