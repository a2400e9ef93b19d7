/*
 * The daemon's node: links, imports, exports and the control socket on one
 * event loop. Internal to bridge/.
 */
#ifndef VB_NODE_H
#define VB_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bridge/config.h"
#include "bridge/wire.h"
#include "transport/transport.h"

struct vb_loop;
struct vb_timer;
struct link;
struct import;
struct export;
struct control;
struct jw;
struct ptp_client;

#define NODE_MAX_LINKS 64

struct node {
	struct vb_loop *loop;
	const struct vb_config *cfg;
	uint64_t epoch;
	uint64_t started_ns;
	struct transport_params tp;
	struct transport_listener *listeners[VB_MAX_LISTEN];
	unsigned nlisteners;
	struct link *links[NODE_MAX_LINKS];
	struct import *imports[VB_MAX_IMPORTS];
	unsigned nimports;
	struct export *exports[VB_MAX_EXPORTS];
	unsigned nexports;
	struct control *ctl;
	struct transport_tls *tls; /* NULL when no tls:// link is configured */
	struct ptp_client *ptp;    /* the gPTP status client; always there (--ptp4l or not) */
	FILE *trace;               /* --time-trace, or NULL */
};

int node_init(struct node *n, struct vb_loop *loop, const struct vb_config *cfg);
void node_fini(struct node *n);
/* Registers/unregisters a link in n->links (for status). */
int node_add_link(struct node *n, struct link *l);
void node_del_link(struct node *n, struct link *l);
/* The outgoing link to uri, shared by every import from that node. */
struct link *node_link_for(struct node *n, const char *uri);
/* An ATTACH for an export arrived on an accepted link. */
void node_attach(struct node *n, struct link *l, uint32_t chan, const char *name);
void node_status_json(struct node *n, struct jw *w);
/* Now in the common time base (ns), and whether it agrees with the grandmaster. */
int64_t node_time(const struct node *n);
bool node_synced(const struct node *n);
/*
 * Release timers (presentation time): arm t to fire at common time at
 * (INT64_MAX: cancel), release-spin early; in its callback,
 * node_time_at() is the time now, after spinning up to at when at is that
 * close (never past it on the timer's account).
 */
void node_arm_at(const struct node *n, struct vb_timer *t, int64_t at);
int64_t node_time_at(const struct node *n, int64_t at);
/* The control socket's "stats": per-queue timing of every import and export. */
void node_stats_json(struct node *n, struct jw *w);
/* SIGHUP: reload what can be reloaded (TLS certificate, key, CA). 0 or -errno, logged. */
int node_reload(struct node *n);

#endif
