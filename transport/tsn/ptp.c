/*
 * The gPTP status client (see ptp.h). One AF_UNIX datagram socket bound to
 * an abstract address of our own, so ptp4l's answers come back to us; a
 * poll timer that closes one round of three GETs and opens the next. An
 * answer is taken only when its sequenceId belongs to the current round:
 * late answers of an earlier round, and datagrams from anyone else, are
 * dropped. A round that is not fully answered by the next tick counts as a
 * timeout; two in a row make the state no-ptp4l. Nothing here blocks: a
 * ptp4l that is not running, restarts, or never answers only changes state.
 */
#include "transport/tsn/ptp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge/log.h"
#include "bridge/util.h"

#define PTP_TIMEOUT_ROUNDS 2 /* unanswered rounds before no-ptp4l */
#define PTP_STALE_MIN_NS   1000000000ll
#define PTP_STALE_SYNCS    4 /* sync intervals without a new Sync before unsynchronized */
#define NS_PER_S           1000000000ll

static const char *const sync_names[] = {
    [PTP_NO_PTP4L] = "no-ptp4l",
    [PTP_UNSYNC] = "unsynchronized",
    [PTP_SYNC] = "synchronized",
};

const char *ptp_sync_name(enum ptp_sync s)
{
	return (unsigned)s < ARRAY_SIZE(sync_names) ? sync_names[s] : "?";
}

struct ptp_client {
	struct event_base *evb;
	struct ptp_config cfg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	struct event *rx_ev, *tick_ev;
	ptp_change_cb cb;
	void *cb_arg;

	/* the round in flight */
	uint16_t seq_base; /* its three GETs use seq_base .. seq_base + 2 */
	uint16_t next_seq;
	bool got_ts, got_pds, got_tp;
	struct ptp_obs round;
	int send_errno;

	/* what the rounds found */
	int ts_in_use;       /* transportSpecific ptp4l answered to; -1 while probing */
	unsigned ts_probe;   /* probing: rounds so far, alternating 1 and 0 */
	unsigned unanswered; /* rounds in a row */
	bool have_ingress;   /* ingress_time seen changing at least once */
	int64_t last_ingress;
	uint64_t ingress_mono; /* when it last changed */
	struct ptp_obs last;
	bool have_last;

	enum ptp_sync state;
	bool is_gm;
	uint8_t gm[8];
	char reason[160];
	struct ptp_timebase tb;
	const char *tai_source;
	uint64_t changes, polls, answers, timeouts, errors;
};

/* ---- pure parts ---- */

static int port_rank(uint8_t s)
{
	switch (s) {
	case PTPM_PS_SLAVE:
		return 3;
	case PTPM_PS_MASTER:
		return 2;
	case PTPM_PS_UNCALIBRATED:
		return 1;
	default:
		return 0;
	}
}

static int64_t stale_limit_ns(int8_t log_sync_interval)
{
	int l = VB_MAX(-7, VB_MIN(4, (int)log_sync_interval));
	int64_t interval = l >= 0 ? NS_PER_S << l : NS_PER_S >> -l;

	return VB_MAX(PTP_STALE_MIN_NS, PTP_STALE_SYNCS * interval);
}

enum ptp_sync ptp_decide(const struct ptp_obs *o, int64_t max_offset_ns, bool *is_gm, char *why,
                         size_t whylen)
{
	int64_t off = o->ts.master_offset;
	int64_t stale = stale_limit_ns(o->log_sync_interval);
	char gm[24];

	*is_gm = false;
	if (!o->answered) {
		snprintf(why, whylen, "ptp4l did not answer");
		return PTP_NO_PTP4L;
	}
	ptpm_clock_id_str(o->ts.gm_identity, gm, sizeof(gm));
	if (o->port_state == PTPM_PS_MASTER && !memcmp(o->ts.gm_identity, o->own_clock, 8)) {
		*is_gm = true;
		snprintf(why, whylen, "this node is the grandmaster (%s)", gm);
		return PTP_SYNC;
	}
	if (o->port_state != PTPM_PS_SLAVE) {
		snprintf(why, whylen, "port state %s", ptpm_port_state_name(o->port_state));
		return PTP_UNSYNC;
	}
	if (!o->ts.gm_present) {
		snprintf(why, whylen, "port SLAVE but no grandmaster present");
		return PTP_UNSYNC;
	}
	if (off > max_offset_ns || off < -max_offset_ns) {
		snprintf(why, whylen, "master offset %" PRId64 " ns, over %" PRId64 " ns", off,
		         max_offset_ns);
		return PTP_UNSYNC;
	}
	if (o->ingress_age_ns > (uint64_t)stale) {
		if (o->ingress_age_ns == UINT64_MAX) {
			snprintf(why, whylen, "port SLAVE but no Sync taken in yet");
		} else {
			snprintf(why, whylen, "no Sync taken in for %.1f s",
			         (double)o->ingress_age_ns / 1e9);
		}
		return PTP_UNSYNC;
	}
	snprintf(why, whylen, "slave of grandmaster %s, master offset %" PRId64 " ns", gm, off);
	return PTP_SYNC;
}

int64_t ptp_convert(const struct ptp_timebase *tb, int64_t rt)
{
	int64_t gm = rt;

	if (tb->slave) {
		double since = (double)(rt - tb->ingress_local);

		gm = tb->ingress_local - tb->master_offset + (int64_t)(since * tb->rate);
	}
	return gm + tb->tai_offset_ns;
}

/* ---- clocks ---- */

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* The kernel's TAI offset (adjtimex), or 0 when unset. */
static int kernel_tai(void)
{
	struct timex tx = {0};

	return adjtimex(&tx) < 0 ? 0 : tx.tai;
}

/*
 * CLOCK_TAI is CLOCK_REALTIME plus the kernel's offset, which is 0 until
 * someone (phc2sys, chrony, ntpd) sets it: trust it only when set, else take
 * ptp4l's currentUtcOffset when the grandmaster marks it valid.
 */
static void update_tai(struct ptp_client *c)
{
	int tai = kernel_tai();

	if (tai > 0) {
		c->tb.tai_offset_ns = (int64_t)tai * NS_PER_S;
		c->tai_source = "kernel";
	} else if (c->have_last && (c->last.tp.flags & PTPM_TP_UTC_OFF_VALID)) {
		c->tb.tai_offset_ns = (int64_t)c->last.tp.current_utc_offset * NS_PER_S;
		c->tai_source = "ptp4l currentUtcOffset";
	} else {
		c->tb.tai_offset_ns = 0;
		c->tai_source = "none (kernel TAI offset unset, no valid UTC offset from ptp4l)";
	}
}

/*
 * The grandmaster offset is applied when ptp4l runs on the system clock
 * (software time stamping: ingress_time is CLOCK_REALTIME, within seconds of
 * ours). With hardware time stamping ptp4l disciplines the PHC and phc2sys
 * the system clock; ingress_time is then PHC time and the system clock is
 * taken as is.
 */
static void update_timebase(struct ptp_client *c)
{
	const struct ptp_obs *o = &c->last;
	int64_t now = realtime_ns();
	int64_t d = now - o->ts.ingress_time;

	c->tb.slave = c->state == PTP_SYNC && !c->is_gm && o->ts.ingress_time &&
	              d > -10 * NS_PER_S && d < 10 * NS_PER_S;
	if (c->tb.slave) {
		c->tb.ingress_local = o->ts.ingress_time;
		c->tb.master_offset = o->ts.master_offset;
		c->tb.rate =
		    1.0 + (double)o->ts.cumulative_scaled_rate_offset / (double)(1ull << 41);
	} else {
		c->tb.rate = 1.0;
	}
}

/* ---- state ---- */

static void set_state(struct ptp_client *c, enum ptp_sync st, bool is_gm, const uint8_t *gm,
                      const char *why)
{
	bool gm_changed = st == PTP_SYNC && c->state == PTP_SYNC && gm && memcmp(gm, c->gm, 8);
	char id[24];

	snprintf(c->reason, sizeof(c->reason), "%s", why);
	if (st == c->state && !gm_changed && is_gm == c->is_gm) {
		return;
	}
	if (gm) {
		memcpy(c->gm, gm, 8);
	}
	c->is_gm = is_gm;
	c->changes++;
	if (st == PTP_SYNC) {
		ptpm_clock_id_str(c->gm, id, sizeof(id));
		log_notice("time: %s to grandmaster %s: %s", ptp_sync_name(st), id, why);
	} else {
		log_warnx("time: %s: %s", ptp_sync_name(st), why);
	}
	c->state = st;
	if (c->cb) {
		c->cb(c->cb_arg, st);
	}
}

static void end_round(struct ptp_client *c)
{
	uint64_t mono = vb_now_ns();
	char why[160];
	enum ptp_sync st;
	bool is_gm;

	c->round.answered = c->got_ts && c->got_pds && c->got_tp;
	if (!c->round.answered) {
		if (c->polls == 0) {
			return; /* nothing asked yet */
		}
		c->timeouts++;
		if (++c->unanswered < PTP_TIMEOUT_ROUNDS) {
			return;
		}
		if (c->send_errno) {
			snprintf(why, sizeof(why), "ptp4l socket %s: %s", c->path,
			         strerror(c->send_errno));
		} else {
			snprintf(why, sizeof(why), "no answer from ptp4l at %s for %.1f s", c->path,
			         (double)(c->unanswered * c->cfg.poll_ns) / 1e9);
		}
		if (c->cfg.transport_specific < 0) {
			c->ts_in_use = -1; /* ptp4l may come back with another configuration */
		}
		c->have_ingress = false;
		c->last_ingress = 0;
		c->have_last = false;
		set_state(c, PTP_NO_PTP4L, false, NULL, why);
		update_tai(c);
		update_timebase(c);
		return;
	}
	c->unanswered = 0;
	/* ingress_time advancing: a new Sync was taken in since we last looked. */
	if (c->round.ts.ingress_time != c->last_ingress) {
		if (c->last_ingress && c->round.ts.ingress_time) {
			c->have_ingress = true;
		}
		c->last_ingress = c->round.ts.ingress_time;
		c->ingress_mono = mono;
	}
	c->round.ingress_age_ns = c->have_ingress ? mono - c->ingress_mono : UINT64_MAX;
	c->last = c->round;
	c->have_last = true;
	st = ptp_decide(&c->round, c->cfg.max_offset_ns, &is_gm, why, sizeof(why));
	set_state(c, st, is_gm, c->round.ts.gm_identity, why);
	update_tai(c);
	update_timebase(c);
}

/* ---- I/O ---- */

static void send_get(struct ptp_client *c, uint16_t id, uint8_t ts)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ptpm_hdr h = {.transport_specific = ts, .domain = (uint8_t)c->cfg.domain};
	uint8_t buf[PTPM_GET_LEN];
	int n;

	h.sequence = c->next_seq++;
	/* sourcePortIdentity: our pid, as pmc does; ptp4l answers to the address anyway. */
	memcpy(h.source.clock, "vbridge", 7);
	h.source.port = (uint16_t)getpid();
	n = ptpm_encode_get(buf, sizeof(buf), &h, id);
	if (n < 0) {
		return;
	}
	memcpy(sa.sun_path, c->path, strlen(c->path));
	if (sendto(c->fd, buf, (size_t)n, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EAGAIN) {
			c->send_errno = errno;
		}
	}
}

static void start_round(struct ptp_client *c)
{
	uint8_t ts;

	if (c->ts_in_use >= 0) {
		ts = (uint8_t)c->ts_in_use;
	} else if (c->cfg.transport_specific >= 0) {
		ts = (uint8_t)c->cfg.transport_specific;
	} else {
		ts = (c->ts_probe++ & 1) ? 0 : 1; /* gPTP's 1 first */
	}
	c->got_ts = c->got_pds = c->got_tp = false;
	memset(&c->round, 0, sizeof(c->round));
	c->send_errno = 0;
	c->seq_base = c->next_seq;
	c->polls++;
	send_get(c, PTPM_ID_TIME_STATUS_NP, ts);
	send_get(c, PTPM_ID_PORT_DATA_SET, ts);
	send_get(c, PTPM_ID_TIME_PROPERTIES_DATA_SET, ts);
}

static void on_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct ptp_client *c = arg;
	struct timeval tv = {.tv_sec = (time_t)(c->cfg.poll_ns / 1000000000ull),
	                     .tv_usec = (suseconds_t)(c->cfg.poll_ns % 1000000000ull / 1000)};

	end_round(c);
	start_round(c);
	evtimer_add(c->tick_ev, &tv);
}

static void take(struct ptp_client *c, const struct ptpm_msg *m)
{
	switch (m->mgmt_id) {
	case PTPM_ID_TIME_STATUS_NP:
		c->round.ts = m->u.ts;
		c->got_ts = true;
		break;
	case PTPM_ID_PORT_DATA_SET:
		/* One answer per port: keep the most useful one. */
		if (!c->got_pds ||
		    port_rank(m->u.pds.port_state) > port_rank(c->round.port_state)) {
			c->round.port_state = m->u.pds.port_state;
			c->round.log_sync_interval = m->u.pds.log_sync_interval;
			memcpy(c->round.own_clock, m->u.pds.port.clock, 8);
		}
		c->got_pds = true;
		break;
	case PTPM_ID_TIME_PROPERTIES_DATA_SET:
		c->round.tp = m->u.tp;
		c->got_tp = true;
		break;
	default:
		break;
	}
}

static void on_rx(evutil_socket_t fd, short ev, void *arg)
{
	struct ptp_client *c = arg;
	uint8_t buf[PTPM_MSG_MAX];
	struct ptpm_msg m;

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		int rc;
		uint16_t off;

		if (n < 0) {
			return;
		}
		if ((size_t)n > sizeof(buf)) {
			c->errors++;
			log_debug("ptp4l: answer of %zd bytes, over %u: ignored", n, PTPM_MSG_MAX);
			continue;
		}
		rc = ptpm_decode(buf, (size_t)n, &m);
		if (rc < 0) {
			c->errors++;
			log_debug("ptp4l: malformed answer (%s): ignored", ptpm_err_name(-rc));
			continue;
		}
		off = (uint16_t)(m.hdr.sequence - c->seq_base);
		if (off > 2 || m.action != PTPM_RESPONSE) {
			continue; /* an earlier round's, or not an answer */
		}
		if (m.is_error) {
			c->errors++;
			log_debug("ptp4l: error 0x%04x for id 0x%04x: %s", m.err.error_id,
			          m.err.mgmt_id, m.err.text);
			continue;
		}
		c->answers++;
		if (c->ts_in_use < 0) {
			c->ts_in_use = m.hdr.transport_specific;
		}
		take(c, &m);
	}
}

struct ptp_client *ptp_client_new(struct event_base *evb, const struct ptp_config *cfg,
                                  ptp_change_cb cb, void *arg, char *err, size_t errlen)
{
	static unsigned instance;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ptp_client *c = calloc(1, sizeof(*c));
	socklen_t salen;
	int n;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->evb = evb;
	c->cfg = *cfg;
	c->cb = cb;
	c->cb_arg = arg;
	c->fd = -1;
	c->ts_in_use = -1;
	c->tb.rate = 1.0;
	c->state = PTP_NO_PTP4L;
	if (!c->cfg.poll_ns) {
		c->cfg.poll_ns = PTP_POLL_NS_DEFAULT;
	}
	if (!c->cfg.max_offset_ns) {
		c->cfg.max_offset_ns = PTP_MAX_OFFSET_NS_DEFAULT;
	}
	snprintf(c->reason, sizeof(c->reason), "no ptp4l configured (--ptp4l)");
	update_tai(c);
	if (!cfg->path) {
		if (cfg->trust_local) {
			c->state = PTP_SYNC;
			snprintf(c->reason, sizeof(c->reason),
			         "the local clock is taken as synchronized (--ptp4l local)");
		}
		return c;
	}
	if (strlen(cfg->path) >= sizeof(c->path)) {
		snprintf(err, errlen, "ptp4l socket path too long: %s", cfg->path);
		free(c);
		return NULL;
	}
	strcpy(c->path, cfg->path);
	c->cfg.path = c->path;
	snprintf(c->reason, sizeof(c->reason), "waiting for ptp4l at %s", c->path);
	/* Our own address, abstract (nothing to clean up): ptp4l answers to it. */
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vbridged-ptp.%d.%u", getpid(),
	             instance++);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&sa, salen) < 0) {
		snprintf(err, errlen, "ptp4l client socket: %s", strerror(errno));
		ptp_client_free(c);
		return NULL;
	}
	c->rx_ev = event_new(evb, c->fd, EV_READ | EV_PERSIST, on_rx, c);
	c->tick_ev = evtimer_new(evb, on_tick, c);
	if (!c->rx_ev || !c->tick_ev || event_add(c->rx_ev, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		ptp_client_free(c);
		return NULL;
	}
	event_active(c->tick_ev, EV_TIMEOUT, 0);
	return c;
}

void ptp_client_free(struct ptp_client *c)
{
	if (!c) {
		return;
	}
	if (c->rx_ev) {
		event_free(c->rx_ev);
	}
	if (c->tick_ev) {
		event_free(c->tick_ev);
	}
	if (c->fd >= 0) {
		close(c->fd);
	}
	free(c);
}

enum ptp_sync ptp_state(const struct ptp_client *c)
{
	return c ? c->state : PTP_NO_PTP4L;
}

int64_t ptp_now(const struct ptp_client *c)
{
	static const struct ptp_timebase local = {.rate = 1.0};

	return ptp_convert(c ? &c->tb : &local, realtime_ns());
}

int64_t ptp_to_mono(const struct ptp_client *c, int64_t t)
{
	return (int64_t)vb_now_ns() + (t - ptp_now(c));
}

void ptp_get_status(const struct ptp_client *c, struct ptp_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = c->state;
	snprintf(st->reason, sizeof(st->reason), "%s", c->reason);
	snprintf(st->path, sizeof(st->path), "%s", c->path);
	st->is_gm = c->is_gm;
	st->ingress_age_ns = -1;
	st->transport_specific = c->ts_in_use;
	if (c->have_last) {
		ptpm_clock_id_str(c->last.ts.gm_identity, st->gm_identity, sizeof(st->gm_identity));
		snprintf(st->port_state, sizeof(st->port_state), "%s",
		         ptpm_port_state_name(c->last.port_state));
		st->master_offset_ns = c->last.ts.master_offset;
		if (c->have_ingress) {
			st->ingress_age_ns = (int64_t)(vb_now_ns() - c->ingress_mono);
		}
	}
	st->tai_offset_s = (int)(c->tb.tai_offset_ns / NS_PER_S);
	st->tai_source = c->tai_source;
	st->rate_ppb = (c->tb.rate - 1.0) * 1e9;
	st->changes = c->changes;
	st->polls = c->polls;
	st->answers = c->answers;
	st->timeouts = c->timeouts;
	st->errors = c->errors;
}
