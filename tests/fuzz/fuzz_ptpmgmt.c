/*
 * libFuzzer target for the PTP management codec (transport/tsn/ptpmgmt.c).
 *
 * The input is one datagram from ptp4l's UNIX socket. A refusal must name a
 * decoder reason, and a managementId we do not decode is still reported.
 * Whatever ptpm_decode() accepts: it was exactly messageLength bytes (one
 * byte less is short, one more too long); the fields are in range; the data
 * set written back from the decoded fields gives the input's bytes again
 * (docs/protocol.md section 12: every byte of the three data sets is a
 * field); an error status's text is printable and as long as displayData
 * said; and a GET encoded from the decoded header decodes to that header.
 * A broken promise aborts so that libFuzzer keeps the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "transport/tsn/ptpmgmt.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static void put_port_id(uint8_t *p, const struct ptpm_port_id *id)
{
	memcpy(p, id->clock, 8);
	put16(p + 8, id->port);
}

/* The data set of m written the way ptp4l does; returns its size. */
static size_t write_dataset(const struct ptpm_msg *m, uint8_t *p)
{
	const struct ptpm_time_status *ts = &m->u.ts;
	const struct ptpm_port_ds *pds = &m->u.pds;
	const struct ptpm_time_props *tp = &m->u.tp;

	switch (m->mgmt_id) {
	case PTPM_ID_TIME_STATUS_NP:
		put64(p, (uint64_t)ts->master_offset);
		put64(p + 8, (uint64_t)ts->ingress_time);
		put32(p + 16, (uint32_t)ts->cumulative_scaled_rate_offset);
		put32(p + 20, (uint32_t)ts->scaled_last_gm_phase_change);
		put16(p + 24, ts->gm_time_base_indicator);
		put16(p + 26, ts->last_gm_phase_change_ns_msb);
		put64(p + 28, ts->last_gm_phase_change_ns_lsb);
		put16(p + 36, ts->last_gm_phase_change_frac_ns);
		put32(p + 38, (uint32_t)ts->gm_present);
		memcpy(p + 42, ts->gm_identity, 8);
		return 50;
	case PTPM_ID_PORT_DATA_SET:
		put_port_id(p, &pds->port);
		p[10] = pds->port_state;
		p[11] = (uint8_t)pds->log_min_delay_req_interval;
		put64(p + 12, (uint64_t)pds->peer_mean_path_delay);
		p[20] = (uint8_t)pds->log_announce_interval;
		p[21] = pds->announce_receipt_timeout;
		p[22] = (uint8_t)pds->log_sync_interval;
		p[23] = pds->delay_mechanism;
		p[24] = (uint8_t)pds->log_min_pdelay_req_interval;
		p[25] = pds->version_number;
		return 26;
	case PTPM_ID_TIME_PROPERTIES_DATA_SET:
		put16(p, (uint16_t)tp->current_utc_offset);
		p[2] = tp->flags;
		p[3] = tp->time_source;
		return 4;
	}
	FUZZ_CHECK(!"decoded a managementId it does not know");
	return 0;
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

static void check_error(const uint8_t *data, size_t size, const struct ptpm_msg *m)
{
	size_t vlen = (size_t)(data[50] << 8 | data[51]);
	size_t n = strnlen(m->err.text, sizeof(m->err.text));

	FUZZ_CHECK(n < sizeof(m->err.text));
	FUZZ_CHECK(m->mgmt_id == m->err.mgmt_id);
	FUZZ_CHECK(m->err.error_id == (data[52] << 8 | data[53]));
	FUZZ_CHECK(m->err.mgmt_id == (data[54] << 8 | data[55]));
	FUZZ_CHECK(vlen >= 8);
	FUZZ_CHECK(n == (vlen > 8 ? data[60] : 0));
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(m->err.text[i] >= 0x20 && m->err.text[i] < 0x7f);
		FUZZ_CHECK(m->err.text[i] == (char)data[61 + i] || m->err.text[i] == '?');
	}
	FUZZ_CHECK(all_zero(&m->u, sizeof(m->u)));
}

static bool known_id(uint16_t id)
{
	return id == PTPM_ID_TIME_STATUS_NP || id == PTPM_ID_PORT_DATA_SET ||
	       id == PTPM_ID_TIME_PROPERTIES_DATA_SET;
}

/*
 * A GET made from the decoded header decodes to that header (an error
 * status may answer any id: a GET of one we do not decode says so).
 */
static void check_get(const struct ptpm_msg *m)
{
	uint8_t *out = malloc(PTPM_GET_LEN);
	struct ptpm_msg g;

	if (!out) {
		return;
	}
	FUZZ_CHECK(ptpm_encode_get(out, PTPM_GET_LEN - 1, &m->hdr, m->mgmt_id) == -PTPM_E_BUFFER);
	FUZZ_CHECK(ptpm_encode_get(out, PTPM_GET_LEN, &m->hdr, m->mgmt_id) == (int)PTPM_GET_LEN);
	FUZZ_CHECK(ptpm_decode(out, PTPM_GET_LEN, &g) ==
	           (known_id(m->mgmt_id) ? 0 : -PTPM_E_UNKNOWN_ID));
	FUZZ_CHECK(memcmp(&g.hdr.source, &m->hdr.source, sizeof(g.hdr.source)) == 0);
	FUZZ_CHECK(g.hdr.transport_specific == m->hdr.transport_specific);
	FUZZ_CHECK(g.hdr.domain == m->hdr.domain && g.hdr.sequence == m->hdr.sequence);
	FUZZ_CHECK(g.action == PTPM_GET && !g.is_error && g.mgmt_id == m->mgmt_id);
	FUZZ_CHECK(g.target.port == 0xffff && all_zero(&g.u, sizeof(g.u)));
	FUZZ_CHECK(ptpm_decode(out, PTPM_GET_LEN - 1, &g) == -PTPM_E_SHORT);
	free(out);
}

/* One byte more or less than messageLength is refused for that reason alone. */
static void check_length(const uint8_t *data, size_t size)
{
	uint8_t *more = malloc(size + 1);
	struct ptpm_msg m;

	FUZZ_CHECK(ptpm_decode(data, size - 1, &m) == -PTPM_E_SHORT);
	if (!more) {
		return;
	}
	memcpy(more, data, size);
	more[size] = 0;
	FUZZ_CHECK(ptpm_decode(more, size + 1, &m) == -PTPM_E_LENGTH);
	free(more);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ds[64];
	struct ptpm_msg m;
	int rc = ptpm_decode(data, size, &m);

	if (rc == -PTPM_E_UNKNOWN_ID) {
		FUZZ_CHECK(size >= 54 && !m.is_error);
		FUZZ_CHECK(m.mgmt_id == (data[52] << 8 | data[53]));
		FUZZ_CHECK(!known_id(m.mgmt_id));
		return 0;
	}
	if (rc < 0) {
		FUZZ_CHECK(-rc > PTPM_E_OK && -rc < PTPM_E_COUNT && -rc != PTPM_E_BUFFER);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= PTPM_GET_LEN && size <= PTPM_MSG_MAX);
	FUZZ_CHECK(size == (size_t)(data[2] << 8 | data[3]));
	FUZZ_CHECK(m.hdr.transport_specific <= 15 && m.action <= PTPM_ACKNOWLEDGE);
	FUZZ_CHECK(m.hdr.sequence == (data[30] << 8 | data[31]));
	FUZZ_CHECK(m.is_error || known_id(m.mgmt_id));
	if (m.is_error) {
		check_error(data, size, &m);
	} else if (size == PTPM_GET_LEN) {
		/* An empty management TLV: only a GET may leave the data out. */
		FUZZ_CHECK(m.action == PTPM_GET && all_zero(&m.u, sizeof(m.u)));
	} else {
		size_t n = write_dataset(&m, ds);

		FUZZ_CHECK(size == PTPM_GET_LEN + n + (n & 1));
		FUZZ_CHECK(memcmp(ds, data + PTPM_GET_LEN, n) == 0);
	}
	check_length(data, size);
	check_get(&m);
	return 0;
}
