/*
 * An export: a local device (a vhost-user backend we drive as frontend)
 * offered to remote importers. One device session per attach.
 */
#ifndef VB_EXPORTER_H
#define VB_EXPORTER_H

#include <stdint.h>

struct node;
struct link;
struct vb_export;
struct export;
struct jw;

struct export *export_new(struct node *n, const struct vb_export *cfg);
void export_free(struct export *ex);
const char *export_name(const struct export *ex);
/* Handles ATTACH on chan of link l: answers ATTACH_OK or ERROR. */
void export_attach(struct export *ex, struct link *l, uint32_t chan);
void export_status_json(const struct export *ex, struct jw *w);
void export_stats_json(const struct export *ex, struct jw *w);
/* The node's clock became synchronized or stopped being so. */
void export_time_changed(struct export *ex);

#endif
