/*
 * An import: a remote export made available as a local vhost-user backend
 * socket. Attaches over a link, creates the socket once attached, turns the
 * guest's descriptor chains into REQUESTs and COMPLETIONs back into used
 * entries.
 */
#ifndef VB_IMPORTER_H
#define VB_IMPORTER_H

struct node;
struct vb_import;
struct import;
struct jw;

struct import *import_new(struct node *n, const struct vb_import *cfg);
void import_free(struct import *im);
void import_status_json(const struct import *im, struct jw *w);
void import_stats_json(const struct import *im, struct jw *w);
/* The node's clock became synchronized or stopped being so. */
void import_time_changed(struct import *im);

#endif
