#include "bridge/node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bridge/control.h"
#include "bridge/exporter.h"
#include "bridge/importer.h"
#include "bridge/jw.h"
#include "bridge/link.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "transport/tsn/ptp.h"

#define NODE_TX_HIGH_WATER (2u << 20)

int node_add_link(struct node *n, struct link *l)
{
	for (unsigned i = 0; i < NODE_MAX_LINKS; i++) {
		if (!n->links[i]) {
			n->links[i] = l;
			return 0;
		}
	}
	log_warnx("too many links (%u)", NODE_MAX_LINKS);
	return -ENOSPC;
}

void node_del_link(struct node *n, struct link *l)
{
	for (unsigned i = 0; i < NODE_MAX_LINKS; i++) {
		if (n->links[i] == l) {
			n->links[i] = NULL;
		}
	}
}

struct link *node_link_for(struct node *n, const char *uri)
{
	for (unsigned i = 0; i < NODE_MAX_LINKS; i++) {
		if (n->links[i] && strcmp(link_uri(n->links[i]), uri) == 0) {
			return n->links[i];
		}
	}
	return link_connect(n, uri);
}

void node_attach(struct node *n, struct link *l, uint32_t chan, const char *name)
{
	for (unsigned i = 0; i < n->nexports; i++) {
		if (strcmp(export_name(n->exports[i]), name) == 0) {
			export_attach(n->exports[i], l, chan);
			return;
		}
	}
	log_warnx("link %s: node %s asked for export %s, which does not exist", link_uri(l),
	          link_peer_name(l), name);
	link_send_error(l, chan, WIRE_E_NOENT, "no export named %s on node %s", name, n->cfg->node);
}

static void node_on_accept(struct transport *t, void *arg)
{
	link_accept(arg, t);
}

static int node_listen(struct node *n)
{
	for (unsigned i = 0; i < n->cfg->nlisten; i++) {
		int rc = transport_listen(n->loop, n->cfg->listen[i], &n->tp, node_on_accept, n,
		                          &n->listeners[n->nlisteners]);

		if (rc < 0) {
			log_errx("listen %s: %s", n->cfg->listen[i], strerror(-rc));
			return rc;
		}
		log_info("listening on %s", transport_listener_uri(n->listeners[n->nlisteners]));
		n->nlisteners++;
	}
	return 0;
}

/* The TLS context of every tls:// link of this node, from --tls-cert/key/ca/pin. */
static int node_tls_init(struct node *n)
{
	const struct vb_config *cfg = n->cfg;
	const char *pins[VB_MAX_PINS];
	struct transport_tls_config tc = {
	    .cert = cfg->tls_cert,
	    .key = cfg->tls_key,
	    .ca = cfg->tls_ca,
	    .pins = pins,
	    .npins = cfg->ntls_pins,
	    .identity = cfg->node,
	};
	char err[256];

	if (!cfg->tls_cert[0]) {
		return 0;
	}
	for (unsigned i = 0; i < cfg->ntls_pins; i++) {
		pins[i] = cfg->tls_pins[i];
	}
	n->tls = transport_tls_new(&tc, err, sizeof(err));
	if (!n->tls) {
		log_errx("tls: %s", err);
		return -1;
	}
	n->tp.tls = n->tls;
	log_info("tls: certificate %s, CA %s, %u pin(s)", cfg->tls_cert, cfg->tls_ca,
	         cfg->ntls_pins);
	return 0;
}

int node_reload(struct node *n)
{
	char err[256];
	int rc;

	if (!n->tls) {
		log_info("reload: no TLS configured, nothing to reload");
		return 0;
	}
	rc = transport_tls_reload(n->tls, err, sizeof(err));
	if (rc < 0) {
		log_warnx("reload: keeping the current TLS context: %s", err);
		return rc;
	}
	log_info("reload: TLS certificate, key and CA reloaded; new links use them");
	return 0;
}

int64_t node_time(const struct node *n)
{
	return ptp_now(n->ptp);
}

bool node_synced(const struct node *n)
{
	return ptp_state(n->ptp) == PTP_SYNC;
}

void node_arm_at(const struct node *n, struct vb_timer *t, int64_t at)
{
	int64_t wake;

	if (at == INT64_MAX) {
		vb_timer_cancel(t);
		return;
	}
	wake = at - (int64_t)n->cfg->release_spin_ns - node_time(n);
	vb_timer_arm(t, wake > 0 ? (uint64_t)wake : 0);
}

int64_t node_time_at(const struct node *n, int64_t at)
{
	int64_t now = node_time(n);

	if (at != INT64_MAX && at > now && at - now <= (int64_t)n->cfg->release_spin_ns) {
		while ((now = node_time(n)) < at) {
		}
	}
	return now;
}

static void node_on_time(void *arg, enum ptp_sync state)
{
	struct node *n = arg;

	for (unsigned i = 0; i < n->nimports; i++) {
		import_time_changed(n->imports[i]);
	}
	for (unsigned i = 0; i < n->nexports; i++) {
		export_time_changed(n->exports[i]);
	}
}

static int node_time_init(struct node *n)
{
	const struct vb_config *cfg = n->cfg;
	struct ptp_config pc = {
	    .path = cfg->ptp4l[0] ? cfg->ptp4l : NULL,
	    .trust_local = cfg->ptp_local,
	    .domain = cfg->ptp_domain,
	    .transport_specific = cfg->ptp_transport_specific,
	    .max_offset_ns = (int64_t)cfg->ptp_max_offset_ns,
	};
	char err[200];

	n->ptp = ptp_client_new(vb_loop_base(n->loop), &pc, node_on_time, n, err, sizeof(err));
	if (!n->ptp) {
		log_errx("%s", err);
		return -1;
	}
	if (cfg->time_trace[0]) {
		n->trace = fopen(cfg->time_trace, "ae");
		if (!n->trace) {
			log_err("time-trace %s", cfg->time_trace);
			return -1;
		}
		setvbuf(n->trace, NULL, _IOLBF, 0); /* whole lines: readers see them at once */
	}
	return 0;
}

int node_init(struct node *n, struct vb_loop *loop, const struct vb_config *cfg)
{
	char err[256];

	memset(n, 0, sizeof(*n));
	n->loop = loop;
	n->cfg = cfg;
	n->started_ns = vb_now_ns();
	if (getrandom(&n->epoch, sizeof(n->epoch), 0) != sizeof(n->epoch)) {
		n->epoch = n->started_ns;
	}
	n->tp.max_msg = cfg->max_msg;
	n->tp.tx_high_water = NODE_TX_HIGH_WATER;
	n->tp.tsn_tagged = cfg->tsn_vlan >= 0;
	n->tp.tsn_vid = cfg->tsn_vlan >= 0 ? (unsigned)cfg->tsn_vlan : 0;
	if (node_tls_init(n) < 0 || node_time_init(n) < 0) {
		return -1;
	}
	for (unsigned i = 0; i < cfg->nexports; i++) {
		if (!(n->exports[n->nexports] = export_new(n, &cfg->exports[i]))) {
			return -ENOMEM;
		}
		n->nexports++;
	}
	if (node_listen(n) < 0) {
		return -1;
	}
	for (unsigned i = 0; i < cfg->nimports; i++) {
		if (!(n->imports[n->nimports] = import_new(n, &cfg->imports[i]))) {
			log_errx("import %s: cannot set up", cfg->imports[i].name);
			return -1;
		}
		n->nimports++;
	}
	n->ctl = control_new(n, cfg->control, err, sizeof(err));
	if (!n->ctl) {
		log_errx("%s", err);
		return -1;
	}
	return 0;
}

void node_fini(struct node *n)
{
	control_free(n->ctl);
	n->ctl = NULL;
	for (unsigned i = 0; i < n->nimports; i++) {
		import_free(n->imports[i]);
	}
	n->nimports = 0;
	for (unsigned i = 0; i < n->nexports; i++) {
		export_free(n->exports[i]);
	}
	n->nexports = 0;
	for (unsigned i = 0; i < n->nlisteners; i++) {
		transport_listener_free(n->listeners[i]);
	}
	n->nlisteners = 0;
	for (unsigned i = 0; i < NODE_MAX_LINKS; i++) {
		link_free(n->links[i]);
	}
	transport_tls_free(n->tls);
	n->tls = NULL;
	ptp_client_free(n->ptp);
	n->ptp = NULL;
	if (n->trace) {
		fclose(n->trace);
		n->trace = NULL;
	}
}

static void node_time_json(struct node *n, struct jw *w)
{
	struct ptp_status st;

	ptp_get_status(n->ptp, &st);
	jw_obj_begin(w, "time");
	jw_str(w, "state", ptp_sync_name(st.state));
	jw_str(w, "reason", st.reason);
	jw_str(w, "ptp4l", st.path);
	jw_bool(w, "grandmaster", st.is_gm);
	jw_str(w, "gm_identity", st.gm_identity);
	jw_str(w, "port_state", st.port_state);
	jw_i64(w, "master_offset_ns", st.master_offset_ns);
	jw_i64(w, "sync_age_ns", st.ingress_age_ns);
	jw_i64(w, "rate_ppb", (int64_t)st.rate_ppb);
	jw_i64(w, "transport_specific", st.transport_specific);
	jw_i64(w, "tai_offset_s", st.tai_offset_s);
	jw_str(w, "tai_source", st.tai_source);
	jw_i64(w, "now_ns", node_time(n));
	jw_u64(w, "changes", st.changes);
	jw_u64(w, "polls", st.polls);
	jw_u64(w, "answers", st.answers);
	jw_u64(w, "timeouts", st.timeouts);
	jw_u64(w, "errors", st.errors);
	jw_obj_end(w);
}

void node_stats_json(struct node *n, struct jw *w)
{
	jw_obj_begin(w, NULL);
	jw_str(w, "node", n->cfg->node);
	node_time_json(n, w);
	jw_arr_begin(w, "imports");
	for (unsigned i = 0; i < n->nimports; i++) {
		import_stats_json(n->imports[i], w);
	}
	jw_arr_end(w);
	jw_arr_begin(w, "exports");
	for (unsigned i = 0; i < n->nexports; i++) {
		export_stats_json(n->exports[i], w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

void node_status_json(struct node *n, struct jw *w)
{
	jw_obj_begin(w, NULL);
	jw_str(w, "node", n->cfg->node);
	jw_str(w, "version", VB_VERSION);
	jw_hex(w, "epoch", n->epoch);
	jw_u64(w, "uptime_s", (vb_now_ns() - n->started_ns) / 1000000000ull);
	node_time_json(n, w);
	jw_arr_begin(w, "listen");
	for (unsigned i = 0; i < n->nlisteners; i++) {
		jw_str(w, NULL, transport_listener_uri(n->listeners[i]));
	}
	jw_arr_end(w);
	jw_arr_begin(w, "links");
	for (unsigned i = 0; i < NODE_MAX_LINKS; i++) {
		if (n->links[i]) {
			link_status_json(n->links[i], w);
		}
	}
	jw_arr_end(w);
	jw_arr_begin(w, "imports");
	for (unsigned i = 0; i < n->nimports; i++) {
		import_status_json(n->imports[i], w);
	}
	jw_arr_end(w);
	jw_arr_begin(w, "exports");
	for (unsigned i = 0; i < n->nexports; i++) {
		export_status_json(n->exports[i], w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}
