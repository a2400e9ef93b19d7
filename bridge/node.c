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
	if (node_tls_init(n) < 0) {
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
}

void node_status_json(struct node *n, struct jw *w)
{
	jw_obj_begin(w, NULL);
	jw_str(w, "node", n->cfg->node);
	jw_str(w, "version", VB_VERSION);
	jw_hex(w, "epoch", n->epoch);
	jw_u64(w, "uptime_s", (vb_now_ns() - n->started_ns) / 1000000000ull);
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
