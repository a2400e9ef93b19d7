/*
 * The gPTP status client: asks ptp4l over its UNIX management socket (as
 * `pmc` does) whether this node's clock agrees with the grandmaster, and
 * turns the answer into the node's common time base.
 *
 * vbridged does not run PTP; linuxptp does. Every poll interval the client
 * sends GET TIME_STATUS_NP, PORT_DATA_SET and TIME_PROPERTIES_DATA_SET and
 * decides (ptp_decide(), pure):
 *   synchronized    a port in SLAVE with |master_offset| under the threshold
 *                   and ingress_time advancing (a new Sync was taken in), or
 *                   this node is the grandmaster (a port in MASTER and the
 *                   grandmaster identity is our own clock);
 *   unsynchronized  ptp4l answers, but one of those does not hold (the
 *                   automotive profile reaches SLAVE before any Sync, so port
 *                   state alone proves nothing);
 *   no ptp4l        not configured, the socket refuses, or no answer within
 *                   the bounded wait.
 *
 * The common time base is TAI in the grandmaster's clock: ptp_now() reads
 * the system clock, makes it TAI (the kernel TAI offset if set, else
 * ptp4l's currentUtcOffset when valid), and, on a slave whose ptp4l runs on
 * the system clock (software time stamping), removes the measured offset to
 * the grandmaster, extrapolated from the last Sync with the measured rate
 * ratio (ptp_convert(), pure). So a free-running slave (ptp4l free_running 1)
 * still stamps in the grandmaster's time.
 */
#ifndef VB_PTP_H
#define VB_PTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/tsn/ptpmgmt.h"

struct event_base;
struct ptp_client;

enum ptp_sync {
	PTP_NO_PTP4L = 0,
	PTP_UNSYNC = 1,
	PTP_SYNC = 2,
};

const char *ptp_sync_name(enum ptp_sync s); /* "no-ptp4l", "unsynchronized", "synchronized" */

struct ptp_config {
	const char *path;       /* ptp4l's uds_address; NULL: no ptp4l configured */
	bool trust_local;       /* no path: take the system clock as synchronized */
	int domain;             /* domainNumber, 0..255 */
	int transport_specific; /* 0..15, or -1: try 1 (gPTP) and 0 until one answers */
	uint64_t poll_ns;       /* between polls; also the bounded wait for answers */
	int64_t max_offset_ns;  /* |master_offset| above this is unsynchronized */
};

#define PTP_POLL_NS_DEFAULT       500000000ull /* 0.5 s */
#define PTP_MAX_OFFSET_NS_DEFAULT 100000ll     /* 100 us: software time stamping */

/* What one poll round learnt; the input of ptp_decide(). */
struct ptp_obs {
	bool answered; /* all three GETs answered within the wait */
	struct ptpm_time_status ts;
	uint8_t port_state;   /* the best port: SLAVE over MASTER over the rest */
	uint8_t own_clock[8]; /* our clockIdentity (PORT_DATA_SET portIdentity) */
	int8_t log_sync_interval;
	struct ptpm_time_props tp;
	uint64_t ingress_age_ns; /* monotonic time since ingress_time last changed */
};

/* The decision of one round, with why (for the log and status). */
enum ptp_sync ptp_decide(const struct ptp_obs *o, int64_t max_offset_ns, bool *is_gm, char *why,
                         size_t whylen);

/* Converting the system clock to the common time base. */
struct ptp_timebase {
	int64_t tai_offset_ns; /* added to CLOCK_REALTIME to get TAI */
	bool slave;            /* apply the grandmaster offset below */
	int64_t ingress_local; /* CLOCK_REALTIME ns of the last Sync (ingress_time) */
	int64_t master_offset; /* local - grandmaster at ingress_local, ns */
	double rate;           /* grandmaster ns per local ns (1 + csro / 2^41) */
};

/* Common time of local CLOCK_REALTIME ns rt. */
int64_t ptp_convert(const struct ptp_timebase *tb, int64_t rt);

/* Called on every change of state (also of grandmaster). */
typedef void (*ptp_change_cb)(void *arg, enum ptp_sync state);

/*
 * cfg->path NULL gives a client without ptp4l that stamps TAI from the local
 * clock: in no-ptp4l for good, or synchronized for good with trust_local
 * (one host, or a system clock kept by phc2sys or chrony that is trusted).
 */
struct ptp_client *ptp_client_new(struct event_base *evb, const struct ptp_config *cfg,
                                  ptp_change_cb cb, void *arg, char *err, size_t errlen);
void ptp_client_free(struct ptp_client *c);

enum ptp_sync ptp_state(const struct ptp_client *c);
/* Now, in the common time base (ns). NULL: local TAI. */
int64_t ptp_now(const struct ptp_client *c);
/* The local monotonic ns at which common time t falls (for timers). */
int64_t ptp_to_mono(const struct ptp_client *c, int64_t t);

struct ptp_status {
	enum ptp_sync state;
	char reason[160];
	char path[108];
	bool is_gm;
	char gm_identity[24]; /* as pmc prints it; "" before any answer */
	char port_state[16];
	int64_t master_offset_ns;
	int64_t ingress_age_ns; /* -1: never */
	int transport_specific; /* in use; -1 while probing */
	int tai_offset_s;       /* applied to CLOCK_REALTIME */
	const char *tai_source; /* "kernel", "ptp4l currentUtcOffset", "none" */
	double rate_ppb;        /* (rate - 1) * 1e9 */
	uint64_t changes, polls, answers, timeouts, errors;
};
void ptp_get_status(const struct ptp_client *c, struct ptp_status *st);

#endif
