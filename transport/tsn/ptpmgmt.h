/*
 * PTP management messages (IEEE 1588-2008 section 15, with linuxptp's
 * implementation-specific TLVs), as ptp4l answers them on its UNIX socket:
 * the protocol `pmc` speaks. Pure codec: no sockets, no allocation, no clock.
 * Every field on the wire is big-endian. docs/protocol.md section 12 lists
 * the bytes of every message and TLV used here.
 *
 * Functions that can fail return 0 or -PTPM_E_* (enum ptpm_err);
 * ptpm_err_name(-rc) names the reason, for logs.
 */
#ifndef VB_PTPMGMT_H
#define VB_PTPMGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTPM_HDR_LEN     34u /* common PTP header */
#define PTPM_MGMT_LEN    14u /* targetPortIdentity .. reserved */
#define PTPM_TLV_HDR_LEN 4u  /* tlvType, lengthField */
#define PTPM_GET_LEN     54u /* a GET with an empty management TLV */
#define PTPM_MSG_MAX     1500u

/* TLV types. */
#define PTPM_TLV_MANAGEMENT              0x0001u
#define PTPM_TLV_MANAGEMENT_ERROR_STATUS 0x0002u

/* managementId values this client uses. */
#define PTPM_ID_TIME_PROPERTIES_DATA_SET 0x2003u
#define PTPM_ID_PORT_DATA_SET            0x2004u
#define PTPM_ID_TIME_STATUS_NP           0xC000u

/* actionField. */
enum ptpm_action {
	PTPM_GET = 0,
	PTPM_SET = 1,
	PTPM_RESPONSE = 2,
	PTPM_COMMAND = 3,
	PTPM_ACKNOWLEDGE = 4,
};

/* portState (IEEE 1588-2008 table 8). */
enum ptpm_port_state {
	PTPM_PS_INITIALIZING = 1,
	PTPM_PS_FAULTY = 2,
	PTPM_PS_DISABLED = 3,
	PTPM_PS_LISTENING = 4,
	PTPM_PS_PRE_MASTER = 5,
	PTPM_PS_MASTER = 6,
	PTPM_PS_PASSIVE = 7,
	PTPM_PS_UNCALIBRATED = 8,
	PTPM_PS_SLAVE = 9,
};

/* TIME_PROPERTIES_DATA_SET flags (IEEE 1588-2008 13.3.2.6). */
#define PTPM_TP_LEAP_61        0x01u
#define PTPM_TP_LEAP_59        0x02u
#define PTPM_TP_UTC_OFF_VALID  0x04u
#define PTPM_TP_PTP_TIMESCALE  0x08u
#define PTPM_TP_TIME_TRACEABLE 0x10u
#define PTPM_TP_FREQ_TRACEABLE 0x20u

struct ptpm_port_id {
	uint8_t clock[8]; /* clockIdentity */
	uint16_t port;    /* portNumber */
};

/* What a request's header carries; ptp4l drops a message whose
 * transportSpecific or domainNumber is not its own. */
struct ptpm_hdr {
	uint8_t transport_specific; /* 0..15; gPTP (802.1AS) uses 1 */
	uint8_t domain;
	uint16_t sequence;
	struct ptpm_port_id source;
};

struct ptpm_time_status {      /* TIME_STATUS_NP, 50 bytes */
	int64_t master_offset; /* ns */
	int64_t ingress_time;  /* ns */
	int32_t cumulative_scaled_rate_offset;
	int32_t scaled_last_gm_phase_change;
	uint16_t gm_time_base_indicator;
	uint16_t last_gm_phase_change_ns_msb;  /* ScaledNs: nanoseconds_msb */
	uint64_t last_gm_phase_change_ns_lsb;  /* nanoseconds_lsb */
	uint16_t last_gm_phase_change_frac_ns; /* fractional_nanoseconds */
	int32_t gm_present;
	uint8_t gm_identity[8];
};

struct ptpm_port_ds { /* PORT_DATA_SET, 26 bytes */
	struct ptpm_port_id port;
	uint8_t port_state; /* enum ptpm_port_state */
	int8_t log_min_delay_req_interval;
	int64_t peer_mean_path_delay; /* TimeInterval: ns << 16 */
	int8_t log_announce_interval;
	uint8_t announce_receipt_timeout;
	int8_t log_sync_interval;
	uint8_t delay_mechanism;
	int8_t log_min_pdelay_req_interval;
	uint8_t version_number;
};

struct ptpm_time_props { /* TIME_PROPERTIES_DATA_SET, 4 bytes */
	int16_t current_utc_offset;
	uint8_t flags; /* PTPM_TP_* */
	uint8_t time_source;
};

struct ptpm_error {        /* MANAGEMENT_ERROR_STATUS TLV */
	uint16_t error_id; /* managementErrorId, e.g. 0x0002 NO_SUCH_ID */
	uint16_t mgmt_id;  /* the managementId it answers */
	char text[256];    /* displayData, NUL-terminated; non-printable bytes replaced by '?' */
};

/* One decoded management message. */
struct ptpm_msg {
	struct ptpm_hdr hdr; /* transport_specific, domain, sequence, source */
	struct ptpm_port_id target;
	uint8_t action;   /* enum ptpm_action */
	bool is_error;    /* the TLV was MANAGEMENT_ERROR_STATUS: see err */
	uint16_t mgmt_id; /* managementId (of the TLV, or err.mgmt_id) */
	union {
		struct ptpm_time_status ts;
		struct ptpm_port_ds pds;
		struct ptpm_time_props tp;
	} u; /* valid for a MANAGEMENT TLV with one of the PTPM_ID_* above */
	struct ptpm_error err;
};

enum ptpm_err {
	PTPM_E_OK = 0,
	PTPM_E_SHORT,      /* fewer bytes than a header, or than messageLength says */
	PTPM_E_LENGTH,     /* datagram longer than messageLength, or than PTPM_MSG_MAX */
	PTPM_E_TYPE,       /* messageType is not management (0xD) */
	PTPM_E_VERSION,    /* versionPTP is not 2 */
	PTPM_E_CONTROL,    /* controlField is not 4 (management) */
	PTPM_E_TLV,        /* no TLV, a TLV not ending where the message does, an odd length,
	                    * an error status under 8 bytes or displayData past its TLV */
	PTPM_E_TLV_TYPE,   /* a TLV type other than management or error status */
	PTPM_E_TLV_LEN,    /* a management TLV whose data size does not match its id */
	PTPM_E_UNKNOWN_ID, /* a managementId this codec does not decode */
	PTPM_E_ACTION,     /* actionField out of range */
	PTPM_E_BUFFER,     /* the caller's buffer is too small */
	PTPM_E_COUNT
};

const char *ptpm_err_name(int err);
const char *ptpm_port_state_name(uint8_t state); /* "SLAVE", ..., "UNKNOWN" */

/* Writes a GET of mgmt_id (empty TLV, targetPortIdentity all ones, boundary
 * hops 0) into buf: PTPM_GET_LEN bytes, or -PTPM_E_BUFFER. */
int ptpm_encode_get(uint8_t *buf, size_t cap, const struct ptpm_hdr *h, uint16_t mgmt_id);

/* Decodes one datagram. A management TLV with an id other than the three
 * above gives -PTPM_E_UNKNOWN_ID (with out->mgmt_id set); an error status
 * TLV decodes (0) with is_error set. */
int ptpm_decode(const uint8_t *buf, size_t len, struct ptpm_msg *out);

/* "001122.fffe.334455", as pmc prints a clockIdentity; buf of 19+ bytes. */
void ptpm_clock_id_str(const uint8_t id[8], char *buf, size_t len);

#endif
