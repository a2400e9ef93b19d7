/*
 * PTP management codec (transport/tsn/ptpmgmt.c): messages captured from a
 * real ptp4l and pmc (linuxptp 3.1.1), every field of each checked; the GET
 * encoder against pmc's own bytes; error status TLVs, real and hand-built;
 * a table of hostile messages made by mutating the captured ones; every
 * truncation; a single-bit-flip sweep; the names.
 *
 * The captures: two ptp4l in network namespaces on a veth pair, each with
 * /usr/share/doc/linuxptp/configs/gPTP.cfg plus time_stamping software,
 * free_running 1, neighborPropDelayThresh 100000000 and its own
 * uds_address; the master (pm-a, 3ad471.fffe.003c94) with priority1 100,
 * the slave (pm-b, 5aa124.fffe.9a3c52) with priority1 250 and slaveOnly 1,
 * put in SLAVE by `SET SYNCHRONIZATION_UNCERTAIN_NP 0` (with free_running
 * its servo never locks otherwise). The TIME_PROPERTIES_DATA_SET of the
 * slave follows `SET GRANDMASTER_SETTINGS_NP` on the master (UTC offset
 * valid, PTP timescale, time traceable, timeSource GPS 0x20). Requests were
 * sent by `pmc -u -z -b 0 -t 1` (recorded with strace) or by a script
 * sending our GET bytes; the replies are ptp4l's datagrams as received.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge/util.h"
#include "transport/tsn/ptpmgmt.h"

#define MAXBUF 2048

static const uint8_t clock_master[8] = {0x3a, 0xd4, 0x71, 0xff, 0xfe, 0x00, 0x3c, 0x94};
static const uint8_t clock_slave[8] = {0x5a, 0xa1, 0x24, 0xff, 0xfe, 0x9a, 0x3c, 0x52};
static const uint8_t clock_zero[8];
static const uint8_t clock_ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

enum vec_id {
	V_GET_TS,
	V_GET_PDS,
	V_GET_TP,
	V_GET_TS_FULL,
	V_TS_SLAVE,
	V_TS_MASTER,
	V_PDS_SLAVE,
	V_PDS_MASTER,
	V_TP_SLAVE,
	V_TP_MASTER,
	V_ERR_NO_SUCH_ID,
	V_ERR_NOT_SUPPORTED,
	V_ACK_NOT_SUPPORTED,
	V_DELAY_MECHANISM,
	V_COUNT
};

struct vec {
	const char *name;
	int want; /* what ptpm_decode() returns */
	const char *hex;
};

/*
 * Captured from ptp4l 3.1.1 / pmc 3.1.1 (see the top of this file). Each
 * string is one datagram; spaces separate the fields:
 *   header: tsmt, version, messageLength, domain, reserved, flags,
 *           correction, reserved, source clockIdentity, portNumber,
 *           sequenceId, control, logMessageInterval
 *   management: target clockIdentity, portNumber, startingBoundaryHops,
 *           boundaryHops, action, reserved
 *   TLV: type, length, managementId (error status: managementErrorId,
 *        managementId, reserved), then the data set field by field
 */
static const struct vec vecs[V_COUNT] = {
    /* `pmc -u -z` (pid 0x1ac5) GET TIME_STATUS_NP to the slave. */
    [V_GET_TS] =
        {"pmc -z GET TIME_STATUS_NP", 0,
         "1d 02 0036 00 00 0000 0000000000000000 00000000 0000000000000000 1ac5 0000 04 7f "
         "ffffffffffffffff ffff 00 00 00 00 "
         "0001 0002 c000"},
    /* `pmc -u -z` (pid 0x20c0), its second and third GET. */
    [V_GET_PDS] =
        {"pmc -z GET PORT_DATA_SET", 0,
         "1d 02 0036 00 00 0000 0000000000000000 00000000 0000000000000000 20c0 0001 04 7f "
         "ffffffffffffffff ffff 00 00 00 00 "
         "0001 0002 2004"},
    [V_GET_TP] =
        {"pmc -z GET TIME_PROPERTIES_DATA_SET", 0,
         "1d 02 0036 00 00 0000 0000000000000000 00000000 0000000000000000 20c0 0002 04 7f "
         "ffffffffffffffff ffff 00 00 00 00 "
         "0001 0002 2003"},
    /* Plain `pmc -u` (pid 0x1b4e): a GET carries a zeroed data set. */
    [V_GET_TS_FULL] = {"pmc GET TIME_STATUS_NP with zeroed data", 0,
                       "1d 02 0068 00 00 0000 0000000000000000 00000000 0000000000000000 1b4e 0000 "
                       "04 7f "
                       "ffffffffffffffff ffff 00 00 00 00 "
                       "0001 0034 c000 "
                       "0000000000000000 0000000000000000 00000000 00000000 0000 0000 "
                       "0000000000000000 0000 00000000 0000000000000000"},
    /*
     * The slave's answer to V_GET_TS's request; pmc printed: master_offset
     * 1779, ingress_time 1796241215664809257, cumulativeScaledRateOffset
     * -0.000000085, scaledLastGmPhaseChange 0, gmTimeBaseIndicator 0,
     * lastGmPhaseChange 0x0000'0000000000000000.0000, gmPresent true,
     * gmIdentity 3ad471.fffe.003c94.
     */
    [V_TS_SLAVE] =
        {"TIME_STATUS_NP, slave", 0,
         "1d 02 0068 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0000 0000 04 7f "
         "0000000000000000 1ac5 00 00 02 00 "
         "0001 0034 c000 "
         "00000000000006f3 18ed87de669de529 fffd25f5 00000000 0000 "
         "0000 0000000000000000 0000 00000001 3ad471fffe003c94"},
    /* The grandmaster's own: gmPresent false (it is the grandmaster), no offset. */
    [V_TS_MASTER] =
        {"TIME_STATUS_NP, grandmaster", 0,
         "1d 02 0068 00 00 0000 0000000000000000 00000000 3ad471fffe003c94 0000 0000 04 7f "
         "0000000000000000 1c62 00 00 02 00 "
         "0001 0034 c000 "
         "0000000000000000 0000000000000000 00000000 00000000 0000 "
         "0000 0000000000000000 0000 00000000 3ad471fffe003c94"},
    /* pmc: SLAVE, peerMeanPathDelay 306, logSyncInterval -3, delayMechanism 2 (P2P). */
    [V_PDS_SLAVE] =
        {"PORT_DATA_SET, slave", 0,
         "1d 02 0050 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0001 0001 04 7f "
         "0000000000000000 1cc5 00 00 02 00 "
         "0001 001c 2004 "
         "5aa124fffe9a3c52 0001 09 00 0000000001320000 00 03 fd 02 00 02"},
    /* pmc: MASTER, peerMeanPathDelay 1612. */
    [V_PDS_MASTER] =
        {"PORT_DATA_SET, master", 0,
         "1d 02 0050 00 00 0000 0000000000000000 00000000 3ad471fffe003c94 0001 0001 04 "
         "7f "
         "0000000000000000 1c62 00 00 02 00 "
         "0001 001c 2004 "
         "3ad471fffe003c94 0001 06 00 00000000064c0000 00 03 fd 02 00 02"},
    /* pmc: currentUtcOffset 37, currentUtcOffsetValid 1, ptpTimescale 1, timeTraceable 1. */
    [V_TP_SLAVE] =
        {"TIME_PROPERTIES_DATA_SET, slave", 0,
         "1d 02 003a 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0000 0000 04 7f "
         "0000000000000000 1f4f 00 00 02 00 "
         "0001 0006 2003 "
         "0025 1c 20"},
    /* Before SET GRANDMASTER_SETTINGS_NP: no flag, timeSource INTERNAL_OSCILLATOR. */
    [V_TP_MASTER] =
        {"TIME_PROPERTIES_DATA_SET, master, defaults", 0,
         "1d 02 003a 00 00 0000 0000000000000000 00000000 3ad471fffe003c94 0000 0002 04 7f "
         "0000000000000000 1c62 00 00 02 00 "
         "0001 0006 2003 "
         "0025 00 a0"},
    /* GET of managementId 0x1234 (our script, port 0x20fa): NO_SUCH_ID, no displayData. */
    [V_ERR_NO_SUCH_ID] = {"error status NO_SUCH_ID", 0,
                          "1d 02 003c 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0001 "
                          "0000 04 7f "
                          "0000000000000000 20fa 00 00 02 00 "
                          "0002 0008 0002 1234 00000000"},
    /* SET PORT_DATA_SET (26 zero bytes): NOT_SUPPORTED. */
    [V_ERR_NOT_SUPPORTED] =
        {"error status NOT_SUPPORTED", 0,
         "1d 02 003c 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0001 "
         "0001 04 7f "
         "0000000000000000 20fa 00 00 02 00 "
         "0002 0008 0006 2004 00000000"},
    /* COMMAND PORT_DATA_SET: ACKNOWLEDGE with NOT_SUPPORTED. */
    [V_ACK_NOT_SUPPORTED] =
        {"ACKNOWLEDGE, error status NOT_SUPPORTED", 0,
         "1d 02 003c 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0001 "
         "0003 04 7f "
         "0000000000000000 20fa 00 00 04 00 "
         "0002 0008 0006 2004 00000000"},
    /* GET DELAY_MECHANISM (0x6000): a valid answer with an id we do not decode. */
    [V_DELAY_MECHANISM] = {"DELAY_MECHANISM, an id we do not decode", -PTPM_E_UNKNOWN_ID,
                           "1d 02 0038 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0001 "
                           "0002 04 7f "
                           "0000000000000000 20fa 00 00 02 00 "
                           "0001 0004 6000 "
                           "0200"},
};

/* Hex digits in pairs; spaces between fields are skipped. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (*hex) {
		if (*hex == ' ') {
			hex++;
			continue;
		}
		assert_true(n < cap);
		assert_true(isxdigit((unsigned char)hex[0]) && isxdigit((unsigned char)hex[1]));
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

static size_t vec_bytes(enum vec_id id, uint8_t *out)
{
	return unhex(vecs[id].hex, out, MAXBUF);
}

/* Decodes from an exact-size heap copy so that ASan and valgrind see any read past the end. */
static int decode_exact(const uint8_t *bytes, size_t n, struct ptpm_msg *m)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, bytes, n);
	rc = ptpm_decode(copy, n, m);
	free(copy);
	return rc;
}

static void assert_rc(int rc, int want, const char *what)
{
	if (rc != want) {
		fail_msg("%s: got %d (%s), want %d (%s)", what, rc, ptpm_err_name(-rc), want,
		         ptpm_err_name(-want));
	}
}

static void decode_vec(enum vec_id id, struct ptpm_msg *m)
{
	uint8_t b[MAXBUF];
	size_t n = vec_bytes(id, b);

	assert_rc(decode_exact(b, n, m), vecs[id].want, vecs[id].name);
}

static void assert_port_id(const struct ptpm_port_id *p, const uint8_t clock[8], uint16_t port)
{
	assert_memory_equal(p->clock, clock, 8);
	assert_int_equal(p->port, port);
}

/* A reply of ptp4l to one of our requests: transportSpecific 1, domain 0. */
static void assert_reply(const struct ptpm_msg *m, const uint8_t clock[8], uint16_t port,
                         uint16_t seq, uint16_t requester, uint8_t action)
{
	assert_int_equal(m->hdr.transport_specific, 1);
	assert_int_equal(m->hdr.domain, 0);
	assert_int_equal(m->hdr.sequence, seq);
	assert_port_id(&m->hdr.source, clock, port);
	assert_port_id(&m->target, clock_zero, requester);
	assert_int_equal(m->action, action);
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i]) {
			return false;
		}
	}
	return true;
}

/* GET */

static const struct {
	enum vec_id vec;
	uint16_t id;
	uint16_t port;
	uint16_t seq;
} pmc_gets[] = {
    {V_GET_TS, PTPM_ID_TIME_STATUS_NP, 0x1ac5, 0},
    {V_GET_PDS, PTPM_ID_PORT_DATA_SET, 0x20c0, 1},
    {V_GET_TP, PTPM_ID_TIME_PROPERTIES_DATA_SET, 0x20c0, 2},
};

/* Given pmc's source port identity, we send exactly what `pmc -z` sent. */
static void test_encode_get_pmc(void **state)
{
	uint8_t want[MAXBUF], out[PTPM_GET_LEN];

	for (size_t i = 0; i < ARRAY_SIZE(pmc_gets); i++) {
		struct ptpm_hdr h = {.transport_specific = 1,
		                     .domain = 0,
		                     .sequence = pmc_gets[i].seq,
		                     .source = {.port = pmc_gets[i].port}};
		size_t n = vec_bytes(pmc_gets[i].vec, want);

		assert_int_equal(n, PTPM_GET_LEN);
		assert_int_equal(ptpm_encode_get(out, sizeof(out), &h, pmc_gets[i].id),
		                 (int)PTPM_GET_LEN);
		assert_memory_equal(out, want, n);
	}
}

static void test_encode_get_fields(void **state)
{
	static const char want_hex[] =
	    /* transportSpecific 0, domain 7, source 0011223344556677-fffe, sequence 0xbeef */
	    "0d 02 0036 07 00 0000 0000000000000000 00000000 0011223344556677 fffe beef 04 7f "
	    "ffffffffffffffff ffff 00 00 00 00 "
	    "0001 0002 2004";
	struct ptpm_hdr h = {.transport_specific = 0,
	                     .domain = 7,
	                     .sequence = 0xbeef,
	                     .source = {{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}, 0xfffe}};
	uint8_t want[MAXBUF], out[MAXBUF];
	struct ptpm_msg m;
	size_t n = unhex(want_hex, want, sizeof(want));

	memset(out, 0xa5, sizeof(out));
	assert_int_equal(ptpm_encode_get(out, sizeof(out), &h, PTPM_ID_PORT_DATA_SET), 54);
	assert_memory_equal(out, want, n);
	assert_int_equal(out[PTPM_GET_LEN], 0xa5);

	/* It decodes to what was asked. */
	assert_int_equal(decode_exact(out, PTPM_GET_LEN, &m), 0);
	assert_int_equal(m.hdr.transport_specific, 0);
	assert_int_equal(m.hdr.domain, 7);
	assert_int_equal(m.hdr.sequence, 0xbeef);
	assert_memory_equal(&m.hdr.source.clock, h.source.clock, 8);
	assert_int_equal(m.hdr.source.port, 0xfffe);
	assert_port_id(&m.target, clock_ones, 0xffff);
	assert_int_equal(m.action, PTPM_GET);
	assert_false(m.is_error);
	assert_int_equal(m.mgmt_id, PTPM_ID_PORT_DATA_SET);
	assert_true(all_zero(&m.u, sizeof(m.u)));

	/* transportSpecific has 4 bits on the wire. */
	h.transport_specific = 0x1f;
	assert_int_equal(ptpm_encode_get(out, sizeof(out), &h, PTPM_ID_TIME_STATUS_NP), 54);
	assert_int_equal(out[0], 0xfd);
}

static void test_encode_get_buffer(void **state)
{
	struct ptpm_hdr h = {.transport_specific = 1};
	uint8_t out[PTPM_GET_LEN + 1];
	uint8_t *exact = malloc(PTPM_GET_LEN);

	memset(out, 0x5a, sizeof(out));
	assert_int_equal(ptpm_encode_get(out, PTPM_GET_LEN - 1, &h, PTPM_ID_TIME_STATUS_NP),
	                 -PTPM_E_BUFFER);
	for (size_t i = 0; i < sizeof(out); i++) {
		assert_int_equal(out[i], 0x5a);
	}
	assert_int_equal(ptpm_encode_get(out, 0, &h, PTPM_ID_TIME_STATUS_NP), -PTPM_E_BUFFER);
	/* Exactly the room needed: ASan and valgrind see a write past it. */
	assert_non_null(exact);
	assert_int_equal(ptpm_encode_get(exact, PTPM_GET_LEN, &h, PTPM_ID_TIME_STATUS_NP),
	                 (int)PTPM_GET_LEN);
	free(exact);
}

/* pmc's requests decode: empty data (-z) and a zeroed data set (plain pmc). */
static void test_decode_pmc_gets(void **state)
{
	struct ptpm_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(pmc_gets); i++) {
		decode_vec(pmc_gets[i].vec, &m);
		assert_int_equal(m.hdr.transport_specific, 1);
		assert_int_equal(m.hdr.sequence, pmc_gets[i].seq);
		assert_port_id(&m.hdr.source, clock_zero, pmc_gets[i].port);
		assert_port_id(&m.target, clock_ones, 0xffff);
		assert_int_equal(m.action, PTPM_GET);
		assert_int_equal(m.mgmt_id, pmc_gets[i].id);
		assert_true(all_zero(&m.u, sizeof(m.u)));
	}
	decode_vec(V_GET_TS_FULL, &m);
	assert_int_equal(m.action, PTPM_GET);
	assert_int_equal(m.mgmt_id, PTPM_ID_TIME_STATUS_NP);
	assert_port_id(&m.hdr.source, clock_zero, 0x1b4e);
	assert_true(all_zero(&m.u, sizeof(m.u)));
}

/* RESPONSE */

static void test_time_status(void **state)
{
	struct ptpm_msg m;
	const struct ptpm_time_status *ts = &m.u.ts;

	decode_vec(V_TS_SLAVE, &m);
	assert_reply(&m, clock_slave, 0, 0, 0x1ac5, PTPM_RESPONSE);
	assert_false(m.is_error);
	assert_int_equal(m.mgmt_id, PTPM_ID_TIME_STATUS_NP);
	assert_true(ts->master_offset == 1779);
	assert_true(ts->ingress_time == 1796241215664809257ll);
	/* pmc prints it / 2^41: -0.000000085 */
	assert_int_equal(ts->cumulative_scaled_rate_offset, -186891);
	assert_int_equal(ts->scaled_last_gm_phase_change, 0);
	assert_int_equal(ts->gm_time_base_indicator, 0);
	assert_int_equal(ts->last_gm_phase_change_ns_msb, 0);
	assert_true(ts->last_gm_phase_change_ns_lsb == 0);
	assert_int_equal(ts->last_gm_phase_change_frac_ns, 0);
	assert_int_equal(ts->gm_present, 1);
	assert_memory_equal(ts->gm_identity, clock_master, 8);

	decode_vec(V_TS_MASTER, &m);
	assert_reply(&m, clock_master, 0, 0, 0x1c62, PTPM_RESPONSE);
	assert_int_equal(m.mgmt_id, PTPM_ID_TIME_STATUS_NP);
	assert_true(ts->master_offset == 0 && ts->ingress_time == 0);
	assert_int_equal(ts->cumulative_scaled_rate_offset, 0);
	assert_int_equal(ts->gm_present, 0);
	assert_memory_equal(ts->gm_identity, clock_master, 8);
}

/* Every field of TIME_STATUS_NP in its place, with signs and the full widths. */
static void test_time_status_fields(void **state)
{
	static const char hex[] =
	    "1d 02 0068 00 00 0000 0000000000000000 00000000 5aa124fffe9a3c52 0000 0009 04 7f "
	    "0000000000000000 1ac5 00 00 02 00 "
	    "0001 0034 c000 "
	    /* master_offset -2, ingress_time, cumulativeScaledRateOffset, scaledLastGmPhaseChange
	     */
	    "fffffffffffffffe 7fffffffffffffff 80000000 12345678 "
	    /* gmTimeBaseIndicator, lastGmPhaseChange (msb, lsb, frac), gmPresent, gmIdentity */
	    "abcd 0102 0304050607080910 1112 ffffffff 0102030405060708";
	static const uint8_t gm[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t b[MAXBUF];
	struct ptpm_msg m;
	const struct ptpm_time_status *ts = &m.u.ts;
	size_t n = unhex(hex, b, sizeof(b));

	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_int_equal(m.hdr.sequence, 9);
	assert_true(ts->master_offset == -2);
	assert_true(ts->ingress_time == INT64_MAX);
	assert_int_equal(ts->cumulative_scaled_rate_offset, INT32_MIN);
	assert_int_equal(ts->scaled_last_gm_phase_change, 0x12345678);
	assert_int_equal(ts->gm_time_base_indicator, 0xabcd);
	assert_int_equal(ts->last_gm_phase_change_ns_msb, 0x0102);
	assert_true(ts->last_gm_phase_change_ns_lsb == 0x0304050607080910ull);
	assert_int_equal(ts->last_gm_phase_change_frac_ns, 0x1112);
	assert_int_equal(ts->gm_present, -1);
	assert_memory_equal(ts->gm_identity, gm, 8);
}

static void test_port_ds(void **state)
{
	struct ptpm_msg m;
	const struct ptpm_port_ds *p = &m.u.pds;

	decode_vec(V_PDS_SLAVE, &m);
	assert_reply(&m, clock_slave, 1, 1, 0x1cc5, PTPM_RESPONSE);
	assert_false(m.is_error);
	assert_int_equal(m.mgmt_id, PTPM_ID_PORT_DATA_SET);
	assert_port_id(&p->port, clock_slave, 1);
	assert_int_equal(p->port_state, PTPM_PS_SLAVE);
	assert_string_equal(ptpm_port_state_name(p->port_state), "SLAVE");
	assert_int_equal(p->log_min_delay_req_interval, 0);
	assert_true(p->peer_mean_path_delay == (int64_t)306 << 16);
	assert_int_equal(p->log_announce_interval, 0);
	assert_int_equal(p->announce_receipt_timeout, 3);
	assert_int_equal(p->log_sync_interval, -3);
	assert_int_equal(p->delay_mechanism, 2);
	assert_int_equal(p->log_min_pdelay_req_interval, 0);
	assert_int_equal(p->version_number, 2);

	decode_vec(V_PDS_MASTER, &m);
	assert_reply(&m, clock_master, 1, 1, 0x1c62, PTPM_RESPONSE);
	assert_int_equal(m.mgmt_id, PTPM_ID_PORT_DATA_SET);
	assert_port_id(&p->port, clock_master, 1);
	assert_int_equal(p->port_state, PTPM_PS_MASTER);
	assert_string_equal(ptpm_port_state_name(p->port_state), "MASTER");
	assert_int_equal(p->log_min_delay_req_interval, 0);
	assert_true(p->peer_mean_path_delay == (int64_t)1612 << 16);
	assert_int_equal(p->log_announce_interval, 0);
	assert_int_equal(p->announce_receipt_timeout, 3);
	assert_int_equal(p->log_sync_interval, -3);
	assert_int_equal(p->delay_mechanism, 2);
	assert_int_equal(p->log_min_pdelay_req_interval, 0);
	assert_int_equal(p->version_number, 2);
}

static void test_time_props(void **state)
{
	struct ptpm_msg m;
	const struct ptpm_time_props *tp = &m.u.tp;

	decode_vec(V_TP_SLAVE, &m);
	assert_reply(&m, clock_slave, 0, 0, 0x1f4f, PTPM_RESPONSE);
	assert_false(m.is_error);
	assert_int_equal(m.mgmt_id, PTPM_ID_TIME_PROPERTIES_DATA_SET);
	assert_int_equal(tp->current_utc_offset, 37);
	assert_int_equal(tp->flags,
	                 PTPM_TP_UTC_OFF_VALID | PTPM_TP_PTP_TIMESCALE | PTPM_TP_TIME_TRACEABLE);
	assert_int_equal(tp->time_source, 0x20);

	decode_vec(V_TP_MASTER, &m);
	assert_reply(&m, clock_master, 0, 2, 0x1c62, PTPM_RESPONSE);
	assert_int_equal(m.mgmt_id, PTPM_ID_TIME_PROPERTIES_DATA_SET);
	assert_int_equal(tp->current_utc_offset, 37);
	assert_int_equal(tp->flags, 0);
	assert_int_equal(tp->time_source, 0xa0);
}

/* Error status */

static void test_error_status_real(void **state)
{
	struct ptpm_msg m;

	decode_vec(V_ERR_NO_SUCH_ID, &m);
	assert_reply(&m, clock_slave, 1, 0, 0x20fa, PTPM_RESPONSE);
	assert_true(m.is_error);
	assert_int_equal(m.err.error_id, 0x0002);
	assert_int_equal(m.err.mgmt_id, 0x1234);
	assert_int_equal(m.mgmt_id, 0x1234);
	assert_string_equal(m.err.text, "");
	assert_true(all_zero(&m.u, sizeof(m.u)));

	decode_vec(V_ERR_NOT_SUPPORTED, &m);
	assert_reply(&m, clock_slave, 1, 1, 0x20fa, PTPM_RESPONSE);
	assert_true(m.is_error);
	assert_int_equal(m.err.error_id, 0x0006);
	assert_int_equal(m.mgmt_id, PTPM_ID_PORT_DATA_SET);
	assert_string_equal(m.err.text, "");

	decode_vec(V_ACK_NOT_SUPPORTED, &m);
	assert_reply(&m, clock_slave, 1, 3, 0x20fa, PTPM_ACKNOWLEDGE);
	assert_true(m.is_error);
	assert_int_equal(m.err.error_id, 0x0006);
	assert_int_equal(m.mgmt_id, PTPM_ID_PORT_DATA_SET);

	/* An id we do not decode still names itself, for the log line. */
	decode_vec(V_DELAY_MECHANISM, &m);
	assert_false(m.is_error);
	assert_int_equal(m.mgmt_id, 0x6000);
	assert_int_equal(m.hdr.sequence, 2);
}

/* The captured NO_SUCH_ID reply with displayData text (n bytes) and the pad byte it needs. */
static size_t error_with_text(const uint8_t *text, size_t n, uint8_t *b)
{
	size_t len = vec_bytes(V_ERR_NO_SUCH_ID, b);
	size_t vlen = 8 + 1 + n + ((1 + n) & 1);

	assert_int_equal(len, 60);
	b[60] = (uint8_t)n;
	memcpy(b + 61, text, n);
	memset(b + 61 + n, 0, 52 + vlen - (61 + n)); /* the TLV's value starts at 52 */
	len = 48 + 4 + vlen;
	b[2] = (uint8_t)(len >> 8);
	b[3] = (uint8_t)len;
	b[50] = (uint8_t)(vlen >> 8);
	b[51] = (uint8_t)vlen;
	return len;
}

static void test_error_status_text(void **state)
{
	static const uint8_t odd[] = "bad\x01\x7f\xff\n ok!"; /* 11 bytes: no pad */
	uint8_t text[255], b[MAXBUF];
	struct ptpm_msg m;
	size_t n;

	/* The longest displayData, every printable character. */
	for (size_t i = 0; i < sizeof(text); i++) {
		text[i] = (uint8_t)(0x20 + i % 95);
	}
	n = error_with_text(text, sizeof(text), b);
	assert_int_equal(n, 48 + 4 + 264);
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_true(m.is_error);
	assert_int_equal(m.err.error_id, 2);
	assert_int_equal(m.err.mgmt_id, 0x1234);
	assert_int_equal(strlen(m.err.text), 255);
	assert_memory_equal(m.err.text, text, 255);

	/* Control characters, DEL and 8-bit bytes become '?'. */
	n = error_with_text(odd, sizeof(odd) - 1, b);
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_string_equal(m.err.text, "bad???? ok!");

	/* An even text length takes the pad byte; 0 is a valid length. */
	n = error_with_text((const uint8_t *)"NO", 2, b);
	assert_int_equal(n, 64);
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_string_equal(m.err.text, "NO");
	n = error_with_text((const uint8_t *)"", 0, b);
	assert_int_equal(n, 62);
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_string_equal(m.err.text, "");
	/* An embedded NUL ends nothing: it is not printable. */
	n = error_with_text((const uint8_t *)"a\0b", 3, b);
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_string_equal(m.err.text, "a?b");

	/* displayData length 3 takes the pad byte as text; 4 runs past the TLV. */
	n = error_with_text((const uint8_t *)"NO", 2, b);
	b[60] = 3;
	assert_int_equal(decode_exact(b, n, &m), 0);
	assert_string_equal(m.err.text, "NO?");
	b[60] = 4;
	assert_rc(decode_exact(b, n, &m), -PTPM_E_TLV, "displayData past the TLV");
	b[60] = 255;
	assert_rc(decode_exact(b, n, &m), -PTPM_E_TLV, "displayData 255 in 4 bytes");
	/* Two bytes of the TLV after displayData: more than a pad. */
	b[60] = 0;
	assert_rc(decode_exact(b, n, &m), -PTPM_E_TLV, "bytes after displayData");
}

/* Hostile messages: mutations of the captured ones */

struct mut {
	const char *what;
	enum vec_id base;
	unsigned off;    /* where hex is written */
	const char *hex; /* NULL: nothing written */
	int resize;      /* zero bytes appended (> 0) or bytes cut (< 0) */
	bool fix_len;    /* messageLength follows the new size */
	int want;
};

static const struct mut muts[] = {
    {"messageType 0 (Sync)", V_TP_SLAVE, 0, "10", 0, false, -PTPM_E_TYPE},
    {"messageType 0xC (Signaling)", V_TP_SLAVE, 0, "1c", 0, false, -PTPM_E_TYPE},
    {"transportSpecific 15", V_TP_SLAVE, 0, "fd", 0, false, 0},
    {"versionPTP 1", V_TP_SLAVE, 1, "01", 0, false, -PTPM_E_VERSION},
    {"versionPTP 3", V_TP_SLAVE, 1, "03", 0, false, -PTPM_E_VERSION},
    {"versionPTP 0x12 (minorVersionPTP 1 of 1588-2019)", V_TP_SLAVE, 1, "12", 0, false, 0},
    {"controlField 0", V_TP_SLAVE, 32, "00", 0, false, -PTPM_E_CONTROL},
    {"controlField 5", V_TP_SLAVE, 32, "05", 0, false, -PTPM_E_CONTROL},
    {"messageLength one past the datagram", V_TP_SLAVE, 2, "003b", 0, false, -PTPM_E_SHORT},
    {"messageLength 0xffff", V_TP_SLAVE, 2, "ffff", 0, false, -PTPM_E_SHORT},
    {"messageLength one short of the datagram", V_TP_SLAVE, 2, "0039", 0, false, -PTPM_E_LENGTH},
    {"messageLength 0", V_TP_SLAVE, 2, "0000", 0, false, -PTPM_E_LENGTH},
    {"a zero byte after messageLength", V_TP_SLAVE, 0, NULL, 1, false, -PTPM_E_LENGTH},
    {"1501 bytes", V_TP_SLAVE, 0, NULL, 1501 - 58, true, -PTPM_E_LENGTH},
    {"header only", V_TP_SLAVE, 0, NULL, 34 - 58, true, -PTPM_E_SHORT},
    {"47 bytes: management block cut", V_TP_SLAVE, 0, NULL, 47 - 58, true, -PTPM_E_SHORT},
    {"no TLV", V_TP_SLAVE, 0, NULL, 48 - 58, true, -PTPM_E_TLV},
    {"half a TLV header", V_TP_SLAVE, 0, NULL, 50 - 58, true, -PTPM_E_TLV},
    {"TLV length past the end", V_TP_SLAVE, 50, "0008", 0, false, -PTPM_E_TLV},
    {"TLV length 0xffff", V_TP_SLAVE, 50, "ffff", 0, false, -PTPM_E_TLV},
    {"TLV length short of the end", V_TP_SLAVE, 50, "0004", 0, false, -PTPM_E_TLV},
    {"odd TLV length", V_TP_SLAVE, 50, "0005", -1, true, -PTPM_E_TLV},
    {"TLV length 0: no managementId", V_TP_SLAVE, 50, "0000", -6, true, -PTPM_E_TLV},
    {"a second TLV after the first", V_TP_SLAVE, 58, "00030000", 4, true, -PTPM_E_TLV},
    {"TIME_PROPERTIES_DATA_SET with 6 bytes", V_TP_SLAVE, 50, "0008", 2, true, -PTPM_E_TLV_LEN},
    {"TIME_PROPERTIES_DATA_SET with 2 bytes", V_TP_SLAVE, 50, "0004", -2, true, -PTPM_E_TLV_LEN},
    {"TIME_STATUS_NP with 48 bytes", V_TS_SLAVE, 50, "0032", -2, true, -PTPM_E_TLV_LEN},
    {"TIME_STATUS_NP with 52 bytes", V_TS_SLAVE, 50, "0036", 2, true, -PTPM_E_TLV_LEN},
    {"PORT_DATA_SET's 26 bytes under TIME_PROPERTIES_DATA_SET", V_PDS_SLAVE, 52, "2003", 0, false,
     -PTPM_E_TLV_LEN},
    {"PORT_DATA_SET's 26 bytes under TIME_STATUS_NP", V_PDS_SLAVE, 52, "c000", 0, false,
     -PTPM_E_TLV_LEN},
    {"RESPONSE without data", V_TP_SLAVE, 50, "0002", -4, true, -PTPM_E_TLV_LEN},
    {"SET without data", V_GET_TP, 46, "01", 0, false, -PTPM_E_TLV_LEN},
    {"GET with 4 bytes of TIME_STATUS_NP (ptp4l drops it too)", V_GET_TS, 50, "0006", 4, true,
     -PTPM_E_TLV_LEN},
    {"unknown managementId 0x2005", V_TP_SLAVE, 52, "2005", 0, false, -PTPM_E_UNKNOWN_ID},
    {"unknown managementId 0xc001 in a GET", V_GET_TS, 52, "c001", 0, false, -PTPM_E_UNKNOWN_ID},
    {"TLV type 0", V_TP_SLAVE, 48, "0000", 0, false, -PTPM_E_TLV_TYPE},
    {"TLV type 0x0003 (ORGANIZATION_EXTENSION)", V_TP_SLAVE, 48, "0003", 0, false,
     -PTPM_E_TLV_TYPE},
    {"TLV type 0x8001", V_TP_SLAVE, 48, "8001", 0, false, -PTPM_E_TLV_TYPE},
    {"action 5", V_TP_SLAVE, 46, "05", 0, false, -PTPM_E_ACTION},
    {"action 15", V_TP_SLAVE, 46, "0f", 0, false, -PTPM_E_ACTION},
    {"reserved nibble above the action", V_TP_SLAVE, 46, "f2", 0, false, 0},
    {"COMMAND with the data set", V_TP_SLAVE, 46, "03", 0, false, 0},
    {"boundary hops", V_TP_SLAVE, 44, "0501", 0, false, 0},
    {"error status TLV of 6 bytes", V_ERR_NO_SUCH_ID, 50, "0006", -2, true, -PTPM_E_TLV},
    {"error status TLV of 0 bytes", V_ERR_NO_SUCH_ID, 50, "0000", -8, true, -PTPM_E_TLV},
    {"displayData length 5 in a 2-byte PTPText", V_ERR_NO_SUCH_ID, 50, "000a 0002 1234 00000000 05",
     2, true, -PTPM_E_TLV},
    {"displayData empty, then 3 bytes", V_ERR_NO_SUCH_ID, 50, "000c", 4, true, -PTPM_E_TLV},
    {"displayData empty, pad byte", V_ERR_NO_SUCH_ID, 50, "000a", 2, true, 0},
    {"error status, managementErrorId 0xfffe", V_ERR_NO_SUCH_ID, 52, "fffe", 0, false, 0},
};

static size_t apply_mut(const struct mut *t, uint8_t *b)
{
	size_t n = vec_bytes(t->base, b);

	if (t->resize > 0) {
		memset(b + n, 0, (size_t)t->resize);
	}
	n = (size_t)((int)n + t->resize);
	assert_true(n <= MAXBUF);
	if (t->fix_len) {
		assert_true(n >= 4);
		b[2] = (uint8_t)(n >> 8);
		b[3] = (uint8_t)n;
	}
	if (t->hex) {
		uint8_t v[16];
		size_t k = unhex(t->hex, v, sizeof(v));

		assert_true(t->off + k <= n);
		memcpy(b + t->off, v, k);
	}
	return n;
}

static void test_hostile(void **state)
{
	uint8_t b[MAXBUF];
	struct ptpm_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(muts); i++) {
		size_t n = apply_mut(&muts[i], b);
		int rc = decode_exact(b, n, &m);

		assert_rc(rc, muts[i].want, muts[i].what);
		if (rc == -PTPM_E_UNKNOWN_ID) {
			assert_int_equal(m.mgmt_id, b[52] << 8 | b[53]);
		}
	}
}

/* Every prefix of every vector is short, and so is a datagram cut anywhere. */
static void test_truncations(void **state)
{
	uint8_t b[MAXBUF];
	struct ptpm_msg m;

	for (unsigned i = 0; i < V_COUNT; i++) {
		size_t n = vec_bytes(i, b);

		assert_rc(decode_exact(b, n, &m), vecs[i].want, vecs[i].name);
		for (size_t k = 0; k < n; k++) {
			int rc = decode_exact(b, k, &m);

			if (rc != -PTPM_E_SHORT) {
				fail_msg("%s cut to %zu bytes: got %d (%s)", vecs[i].name, k, rc,
				         ptpm_err_name(-rc));
			}
		}
	}
}

/*
 * Every single-bit flip of every vector decodes or is refused with a named
 * reason; a flip inside a data set or the identities always decodes.
 */
static void test_bitflip_sweep(void **state)
{
	uint8_t b[MAXBUF];
	struct ptpm_msg m;
	unsigned accepted = 0, by_err[PTPM_E_COUNT] = {0};

	for (unsigned i = 0; i < V_COUNT; i++) {
		size_t n = vec_bytes(i, b);
		bool has_data = b[48] == 0x00 && b[49] == 0x01 && n > PTPM_GET_LEN;

		for (size_t bit = 0; bit < n * 8; bit++) {
			size_t at = bit / 8;
			int rc;

			b[at] ^= (uint8_t)(1u << (bit % 8));
			rc = decode_exact(b, n, &m);
			if (rc == 0) {
				accepted++;
			} else {
				if (rc >= 0 || -rc >= PTPM_E_COUNT || -rc == PTPM_E_BUFFER) {
					fail_msg("%s, bit %zu: rc %d", vecs[i].name, bit, rc);
				}
				assert_string_not_equal(ptpm_err_name(-rc), "unknown");
				by_err[-rc]++;
			}
			/* Source and target identities, sequenceId; a data set's fields. */
			if ((at >= 20 && at < 32) || (at >= 34 && at < 44) ||
			    (has_data && at >= PTPM_GET_LEN && vecs[i].want == 0)) {
				assert_rc(rc, vecs[i].want, vecs[i].name);
			}
			b[at] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	assert_true(accepted > 2000);
	assert_true(by_err[PTPM_E_SHORT] > 0 && by_err[PTPM_E_LENGTH] > 0 &&
	            by_err[PTPM_E_TYPE] > 0 && by_err[PTPM_E_VERSION] > 0 &&
	            by_err[PTPM_E_CONTROL] > 0 && by_err[PTPM_E_TLV] > 0 &&
	            by_err[PTPM_E_TLV_TYPE] > 0 && by_err[PTPM_E_TLV_LEN] > 0 &&
	            by_err[PTPM_E_UNKNOWN_ID] > 0 && by_err[PTPM_E_ACTION] > 0);
}

/* Names */

static void test_names(void **state)
{
	static const char *const states[] = {"UNKNOWN",      "INITIALIZING", "FAULTY", "DISABLED",
	                                     "LISTENING",    "PRE_MASTER",   "MASTER", "PASSIVE",
	                                     "UNCALIBRATED", "SLAVE",        "UNKNOWN"};
	char s[32];

	for (int i = 0; i < PTPM_E_COUNT; i++) {
		assert_string_not_equal(ptpm_err_name(i), "unknown");
		for (int k = 0; k < i; k++) {
			assert_string_not_equal(ptpm_err_name(i), ptpm_err_name(k));
		}
	}
	assert_string_equal(ptpm_err_name(PTPM_E_OK), "ok");
	assert_string_equal(ptpm_err_name(PTPM_E_TLV_LEN), "tlv_len");
	assert_string_equal(ptpm_err_name(PTPM_E_UNKNOWN_ID), "unknown_id");
	assert_string_equal(ptpm_err_name(PTPM_E_COUNT), "unknown");
	assert_string_equal(ptpm_err_name(-1), "unknown");
	assert_string_equal(ptpm_err_name(-PTPM_E_SHORT), "unknown");

	for (unsigned i = 0; i < ARRAY_SIZE(states); i++) {
		assert_string_equal(ptpm_port_state_name((uint8_t)i), states[i]);
	}
	assert_string_equal(ptpm_port_state_name(255), "UNKNOWN");

	ptpm_clock_id_str(clock_master, s, sizeof(s));
	assert_string_equal(s, "3ad471.fffe.003c94");
	ptpm_clock_id_str(clock_ones, s, 19);
	assert_string_equal(s, "ffffff.ffff.ffffff");
	ptpm_clock_id_str(clock_slave, s, 7);
	assert_string_equal(s, "5aa124");
	s[0] = 'x';
	ptpm_clock_id_str(clock_slave, s, 0);
	assert_int_equal(s[0], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_get_pmc),    cmocka_unit_test(test_encode_get_fields),
	    cmocka_unit_test(test_encode_get_buffer), cmocka_unit_test(test_decode_pmc_gets),
	    cmocka_unit_test(test_time_status),       cmocka_unit_test(test_time_status_fields),
	    cmocka_unit_test(test_port_ds),           cmocka_unit_test(test_time_props),
	    cmocka_unit_test(test_error_status_real), cmocka_unit_test(test_error_status_text),
	    cmocka_unit_test(test_hostile),           cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_bitflip_sweep),     cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
