/*
 * PTP management codec for ptp4l's UNIX socket: IEEE 1588-2008 section 13.3
 * (common header), 15.4 (management message), 15.5.2 (management TLV),
 * 15.5.4 (MANAGEMENT_ERROR_STATUS), with the data sets of 15.5.3 and
 * linuxptp's TIME_STATUS_NP. docs/protocol.md section 12 has every byte.
 *
 * What ptp4l 3.1.1 does, checked against the real daemon (the vectors of
 * tests/unit/test_ptpmgmt.c were captured from it):
 * - it sends exactly messageLength bytes, one TLV, no padding after it; the
 *   data of a TLV is padded to an even length (none of our three needs it);
 * - an error status TLV is 8 bytes: it carries no displayData at all;
 * - a reply keeps the request's sequenceId, takes its targetPortIdentity
 *   from the request's sourcePortIdentity, and answers GET with RESPONSE,
 *   COMMAND with ACKNOWLEDGE;
 * - a request whose transportSpecific or domainNumber differs from its own,
 *   or that it finds malformed (e.g. a data size that does not fit the id),
 *   is dropped without a reply.
 * A GET may carry no data (pmc -z, and our encoder) or a zeroed data set of
 * the full size (plain pmc): both decode.
 */
#include "transport/tsn/ptpmgmt.h"

#include <stdio.h>
#include <string.h>

#include "bridge/util.h"

/* Common header (IEEE 1588-2008 table 18). */
#define OFF_TSMT    0  /* transportSpecific (high nibble) | messageType (low) */
#define OFF_VERSION 1  /* reserved / minorVersionPTP (high) | versionPTP (low) */
#define OFF_LENGTH  2  /* messageLength */
#define OFF_DOMAIN  4  /* domainNumber */
#define OFF_SOURCE  20 /* sourcePortIdentity: clockIdentity, portNumber */
#define OFF_SEQ     30 /* sequenceId */
#define OFF_CONTROL 32 /* controlField */
#define OFF_LOG_INT 33 /* logMessageInterval */

/* Management block (table 37), right after the header. */
#define OFF_TARGET     34
#define OFF_START_HOPS 44
#define OFF_HOPS       45
#define OFF_ACTION     46 /* reserved (high nibble) | actionField (low) */
#define OFF_TLV        48

#define MSG_TYPE_MANAGEMENT 0xD
#define PTP_VERSION         2
#define CONTROL_MANAGEMENT  4
#define LOG_INT_NONE        0x7F
#define PORT_ID_LEN         10
#define MGMT_ID_LEN         2 /* managementId, first in a management TLV's value */
#define ERR_FIXED_LEN       8 /* managementErrorId, managementId, reserved[4] */

static void get_port_id(const uint8_t *p, struct ptpm_port_id *id)
{
	memcpy(id->clock, p, sizeof(id->clock));
	id->port = get_be16(p + 8);
}

/* TIME_STATUS_NP (linuxptp tlv.h struct time_status_np). */
static void decode_time_status(const uint8_t *p, struct ptpm_msg *out)
{
	struct ptpm_time_status *ts = &out->u.ts;

	ts->master_offset = (int64_t)get_be64(p);
	ts->ingress_time = (int64_t)get_be64(p + 8);
	ts->cumulative_scaled_rate_offset = (int32_t)get_be32(p + 16);
	ts->scaled_last_gm_phase_change = (int32_t)get_be32(p + 20);
	ts->gm_time_base_indicator = get_be16(p + 24);
	ts->last_gm_phase_change_ns_msb = get_be16(p + 26);
	ts->last_gm_phase_change_ns_lsb = get_be64(p + 28);
	ts->last_gm_phase_change_frac_ns = get_be16(p + 36);
	ts->gm_present = (int32_t)get_be32(p + 38);
	memcpy(ts->gm_identity, p + 42, sizeof(ts->gm_identity));
}

/* portDS (IEEE 1588-2008 15.5.3.7.1); versionNumber kept as the whole byte. */
static void decode_port_ds(const uint8_t *p, struct ptpm_msg *out)
{
	struct ptpm_port_ds *pds = &out->u.pds;

	get_port_id(p, &pds->port);
	pds->port_state = p[10];
	pds->log_min_delay_req_interval = (int8_t)p[11];
	pds->peer_mean_path_delay = (int64_t)get_be64(p + 12);
	pds->log_announce_interval = (int8_t)p[20];
	pds->announce_receipt_timeout = p[21];
	pds->log_sync_interval = (int8_t)p[22];
	pds->delay_mechanism = p[23];
	pds->log_min_pdelay_req_interval = (int8_t)p[24];
	pds->version_number = p[25];
}

/* timePropertiesDS (15.5.3.6.1). */
static void decode_time_props(const uint8_t *p, struct ptpm_msg *out)
{
	struct ptpm_time_props *tp = &out->u.tp;

	tp->current_utc_offset = (int16_t)get_be16(p);
	tp->flags = p[2];
	tp->time_source = p[3];
}

struct ptpm_dataset {
	uint16_t id;
	uint16_t size; /* before linuxptp's pad byte to an even length */
	void (*decode)(const uint8_t *data, struct ptpm_msg *out);
};

static const struct ptpm_dataset ptpm_datasets[] = {
    {PTPM_ID_TIME_PROPERTIES_DATA_SET, 4, decode_time_props},
    {PTPM_ID_PORT_DATA_SET, 26, decode_port_ds},
    {PTPM_ID_TIME_STATUS_NP, 50, decode_time_status},
};

static const struct ptpm_dataset *find_dataset(uint16_t id)
{
	for (size_t i = 0; i < ARRAY_SIZE(ptpm_datasets); i++) {
		if (ptpm_datasets[i].id == id) {
			return &ptpm_datasets[i];
		}
	}
	return NULL;
}

/*
 * The management TLV's value: managementId, then the data set. A GET may
 * leave the data out; otherwise the data is exactly the data set, plus the
 * zero byte linuxptp appends to an odd-sized one (clock.c pads every TLV to
 * an even length).
 */
static int decode_mgmt_tlv(const uint8_t *v, size_t vlen, struct ptpm_msg *out)
{
	const struct ptpm_dataset *ds;
	size_t dlen;

	if (vlen < MGMT_ID_LEN) {
		return -PTPM_E_TLV;
	}
	out->mgmt_id = get_be16(v);
	ds = find_dataset(out->mgmt_id);
	if (!ds) {
		return -PTPM_E_UNKNOWN_ID;
	}
	dlen = vlen - MGMT_ID_LEN;
	if (dlen == 0 && out->action == PTPM_GET) {
		return 0;
	}
	if (dlen != (size_t)ds->size + (ds->size & 1u)) {
		return -PTPM_E_TLV_LEN;
	}
	ds->decode(v + MGMT_ID_LEN, out);
	return 0;
}

/*
 * MANAGEMENT_ERROR_STATUS (15.5.4): displayData is a PTPText, optional in
 * practice (ptp4l sends none); when present it fills the TLV, but for the
 * pad byte that makes the length even.
 */
static int decode_error_tlv(const uint8_t *v, size_t vlen, struct ptpm_msg *out)
{
	size_t n;

	if (vlen < ERR_FIXED_LEN) {
		return -PTPM_E_TLV;
	}
	out->is_error = true;
	out->err.error_id = get_be16(v);
	out->err.mgmt_id = get_be16(v + 2);
	out->mgmt_id = out->err.mgmt_id;
	if (vlen == ERR_FIXED_LEN) {
		return 0;
	}
	n = v[ERR_FIXED_LEN];
	if (ERR_FIXED_LEN + 1 + n > vlen || vlen - (ERR_FIXED_LEN + 1 + n) > 1) {
		return -PTPM_E_TLV;
	}
	/* Peer text goes to logs: printable ASCII only. n <= 255 < sizeof(text). */
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v[ERR_FIXED_LEN + 1 + i];

		out->err.text[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out->err.text[n] = '\0';
	return 0;
}

/* The 34-byte header and the datagram's length; fills out->hdr. */
static int decode_header(const uint8_t *buf, size_t len, struct ptpm_msg *out)
{
	size_t mlen;

	if (len < PTPM_HDR_LEN) {
		return -PTPM_E_SHORT;
	}
	if ((buf[OFF_TSMT] & 0x0f) != MSG_TYPE_MANAGEMENT) {
		return -PTPM_E_TYPE;
	}
	if ((buf[OFF_VERSION] & 0x0f) != PTP_VERSION) {
		return -PTPM_E_VERSION;
	}
	mlen = get_be16(buf + OFF_LENGTH);
	if (len < mlen) {
		return -PTPM_E_SHORT;
	}
	/* ptp4l sends exactly messageLength bytes, and never more than 1500. */
	if (len > mlen || len > PTPM_MSG_MAX) {
		return -PTPM_E_LENGTH;
	}
	if (buf[OFF_CONTROL] != CONTROL_MANAGEMENT) {
		return -PTPM_E_CONTROL;
	}
	out->hdr.transport_specific = buf[OFF_TSMT] >> 4;
	out->hdr.domain = buf[OFF_DOMAIN];
	out->hdr.sequence = get_be16(buf + OFF_SEQ);
	get_port_id(buf + OFF_SOURCE, &out->hdr.source);
	return 0;
}

int ptpm_decode(const uint8_t *buf, size_t len, struct ptpm_msg *out)
{
	const uint8_t *tlv;
	size_t left, tlen;
	uint16_t type;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = decode_header(buf, len, out);
	if (rc < 0) {
		return rc;
	}
	if (len < OFF_TLV) {
		return -PTPM_E_SHORT;
	}
	get_port_id(buf + OFF_TARGET, &out->target);
	out->action = buf[OFF_ACTION] & 0x0f;
	if (out->action > PTPM_ACKNOWLEDGE) {
		return -PTPM_E_ACTION;
	}
	/* Exactly one TLV, filling the rest of the message (15.5.2). */
	tlv = buf + OFF_TLV;
	left = len - OFF_TLV;
	if (left < PTPM_TLV_HDR_LEN) {
		return -PTPM_E_TLV;
	}
	type = get_be16(tlv);
	tlen = get_be16(tlv + 2);
	if (tlen % 2 || tlen != left - PTPM_TLV_HDR_LEN) {
		return -PTPM_E_TLV;
	}
	switch (type) {
	case PTPM_TLV_MANAGEMENT:
		return decode_mgmt_tlv(tlv + PTPM_TLV_HDR_LEN, tlen, out);
	case PTPM_TLV_MANAGEMENT_ERROR_STATUS:
		return decode_error_tlv(tlv + PTPM_TLV_HDR_LEN, tlen, out);
	default:
		return -PTPM_E_TLV_TYPE;
	}
}

/* What `pmc -z` sends, but for the sourcePortIdentity (pmc: zeros, its pid). */
int ptpm_encode_get(uint8_t *buf, size_t cap, const struct ptpm_hdr *h, uint16_t mgmt_id)
{
	uint8_t *tlv = buf + OFF_TLV;

	if (cap < PTPM_GET_LEN) {
		return -PTPM_E_BUFFER;
	}
	memset(buf, 0, PTPM_GET_LEN);
	/* transportSpecific is 4 bits on the wire: a wider value cannot be sent. */
	buf[OFF_TSMT] = (uint8_t)((h->transport_specific & 0x0f) << 4 | MSG_TYPE_MANAGEMENT);
	buf[OFF_VERSION] = PTP_VERSION;
	put_be16(buf + OFF_LENGTH, PTPM_GET_LEN);
	buf[OFF_DOMAIN] = h->domain;
	memcpy(buf + OFF_SOURCE, h->source.clock, sizeof(h->source.clock));
	put_be16(buf + OFF_SOURCE + 8, h->source.port);
	put_be16(buf + OFF_SEQ, h->sequence);
	buf[OFF_CONTROL] = CONTROL_MANAGEMENT;
	buf[OFF_LOG_INT] = LOG_INT_NONE;
	/* Every clock and port; hops 0: only the ptp4l behind the socket answers. */
	memset(buf + OFF_TARGET, 0xff, PORT_ID_LEN);
	buf[OFF_START_HOPS] = 0;
	buf[OFF_HOPS] = 0;
	buf[OFF_ACTION] = PTPM_GET;
	put_be16(tlv, PTPM_TLV_MANAGEMENT);
	put_be16(tlv + 2, MGMT_ID_LEN);
	put_be16(tlv + 4, mgmt_id);
	return (int)PTPM_GET_LEN;
}

static const char *const ptpm_err_names[PTPM_E_COUNT] = {
    [PTPM_E_OK] = "ok",           [PTPM_E_SHORT] = "short",
    [PTPM_E_LENGTH] = "length",   [PTPM_E_TYPE] = "type",
    [PTPM_E_VERSION] = "version", [PTPM_E_CONTROL] = "control",
    [PTPM_E_TLV] = "tlv",         [PTPM_E_TLV_TYPE] = "tlv_type",
    [PTPM_E_TLV_LEN] = "tlv_len", [PTPM_E_UNKNOWN_ID] = "unknown_id",
    [PTPM_E_ACTION] = "action",   [PTPM_E_BUFFER] = "buffer",
};

const char *ptpm_err_name(int err)
{
	return err >= 0 && err < PTPM_E_COUNT && ptpm_err_names[err] ? ptpm_err_names[err]
	                                                             : "unknown";
}

static const char *const ptpm_port_state_names[] = {
    [PTPM_PS_INITIALIZING] = "INITIALIZING",
    [PTPM_PS_FAULTY] = "FAULTY",
    [PTPM_PS_DISABLED] = "DISABLED",
    [PTPM_PS_LISTENING] = "LISTENING",
    [PTPM_PS_PRE_MASTER] = "PRE_MASTER",
    [PTPM_PS_MASTER] = "MASTER",
    [PTPM_PS_PASSIVE] = "PASSIVE",
    [PTPM_PS_UNCALIBRATED] = "UNCALIBRATED",
    [PTPM_PS_SLAVE] = "SLAVE",
};

const char *ptpm_port_state_name(uint8_t state)
{
	return state < ARRAY_SIZE(ptpm_port_state_names) && ptpm_port_state_names[state]
	           ? ptpm_port_state_names[state]
	           : "UNKNOWN";
}

void ptpm_clock_id_str(const uint8_t id[8], char *buf, size_t len)
{
	if (len == 0) {
		return;
	}
	snprintf(buf, len, "%02x%02x%02x.%02x%02x.%02x%02x%02x", id[0], id[1], id[2], id[3], id[4],
	         id[5], id[6], id[7]);
}
