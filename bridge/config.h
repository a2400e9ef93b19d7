/*
 * Configuration model of vbridged: filled from defaults, then the INI file
 * (-f FILE, [global] section, linuxptp style), then the command line. Every
 * key is declared once in config.c's table with its long option twin.
 */
#ifndef VB_CONFIG_H
#define VB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VB_NAME_MAX       63
#define VB_PATH_MAX       108 /* sun_path */
#define VB_URI_MAX        255
#define VB_MAX_LISTEN     8
#define VB_MAX_EXPORTS    32
#define VB_MAX_IMPORTS    32
#define VB_MAX_ALLOW      16
#define VB_MAX_PINS       4
#define VB_MAX_QUEUES     64 /* VU_DEV_MAX_QUEUES */
#define VB_DEFAULT_RUNDIR "/run/vbridge"

enum vb_export_kind {
	VB_EXPORT_VHOST_USER = 1,
};

struct vb_export {
	char name[VB_NAME_MAX + 1];
	enum vb_export_kind kind;
	char path[VB_PATH_MAX];                    /* vhost-user:PATH */
	uint32_t device_id;                        /* type=blk etc., 0 if not given */
	uint32_t config_size;                      /* config-size=N, else from the type, else 0 */
	uint64_t pool_size;                        /* pool=SIZE, else the global pool-size */
	char allow[VB_MAX_ALLOW][VB_NAME_MAX + 1]; /* allow=A:B: who may attach; none: anyone */
	unsigned nallow;
	unsigned cls; /* class=NAME: traffic class of its completions (transport.h), control */
};

struct vb_import {
	char name[VB_NAME_MAX + 1];
	char source[VB_URI_MAX + 1]; /* tcp://HOST:PORT */
	char socket[VB_PATH_MAX];    /* socket=PATH, else RUNTIME_DIR/NAME.sock */
	unsigned cls;                /* class=NAME: traffic class of its requests, control */
	/* Presentation time (docs/operations.md "Time"): per queue */
	uint64_t latency_ns[VB_MAX_QUEUES]; /* latency=DURATION: budget after capture; 0 none */
	uint64_t late_drop;                 /* late=drop: bit per queue; else deliver */
	int on_unsync_hold; /* on-unsync=hold: no new requests while unsynchronized */
};

struct vb_config {
	int log_stderr; /* -d */
	int verbose;    /* -v, repeatable */
	int check_only; /* -n */
	char file[VB_PATH_MAX * 2];
	char node[VB_NAME_MAX + 1];
	char listen[VB_MAX_LISTEN][VB_URI_MAX + 1];
	unsigned nlisten;
	struct vb_export exports[VB_MAX_EXPORTS];
	unsigned nexports;
	struct vb_import imports[VB_MAX_IMPORTS];
	unsigned nimports;
	char runtime_dir[VB_PATH_MAX];
	char control[VB_PATH_MAX]; /* default RUNTIME_DIR/vbridged.sock */
	uint64_t pool_size;        /* exporter buffer pool per device, default 16 MiB */
	uint32_t max_queue_size;   /* largest queue accepted, default 1024 */
	uint32_t max_msg;          /* largest wire message, default 4 MiB */
	char tls_cert[VB_PATH_MAX * 2];
	char tls_key[VB_PATH_MAX * 2];
	char tls_ca[VB_PATH_MAX * 2];
	char tls_pins[VB_MAX_PINS][72];
	unsigned ntls_pins;
	int allow_plaintext;              /* tcp:// beyond loopback */
	int tsn_vlan;                     /* tsn-vlan=VID: 802.1Q tag on tsn:// frames; -1 none */
	char ptp4l[VB_PATH_MAX];          /* ptp4l's management socket (uds_address); "" none */
	int ptp_local;                    /* ptp4l=local: no ptp4l, the system clock is trusted */
	int ptp_domain;                   /* its domainNumber */
	int ptp_transport_specific;       /* its transportSpecific; -1 find out */
	uint64_t ptp_max_offset_ns;       /* |master offset| over this: unsynchronized */
	char time_trace[VB_PATH_MAX * 2]; /* one line per timed buffer; "" none */
	uint64_t release_spin_ns;         /* wake this early and spin to a deadline; 0 none */
};

/* Known virtio device types: name <-> id and config space size. */
struct vb_device_type {
	const char *name;
	uint32_t id;
	uint32_t config_size;
};
const struct vb_device_type *vb_device_type_by_name(const char *name);
const struct vb_device_type *vb_device_type_by_id(uint32_t id);

void config_defaults(struct vb_config *c);

/*
 * Applies one key (long option name or INI key, e.g. "listen", "export")
 * with its value. 0 or -EINVAL with err filled ("export: ...: why").
 */
int config_set(struct vb_config *c, const char *key, const char *value, char *err, size_t errlen);

/* Parses INI text (the whole file). 0 or -EINVAL with err ("FILE:LINE: why"). */
int config_parse_ini(struct vb_config *c, const char *text, size_t len, const char *fname,
                     char *err, size_t errlen);

/*
 * Parses argv (defaults, then -f FILE if given, then the other options in
 * order). c must already hold config_defaults(). 0, 1 if --help/--version
 * was printed, or -EINVAL with err.
 */
int config_parse_args(struct vb_config *c, int argc, char **argv, char *err, size_t errlen);

/* Final checks: names unique, node set (hostname if not), derived paths. 0 or -EINVAL. */
int config_finish(struct vb_config *c, char *err, size_t errlen);

/* NAME=vhost-user:PATH[,type=T][,config-size=N][,pool=SIZE] */
int config_parse_export(const char *spec, struct vb_export *e, char *err, size_t errlen);
/* NAME=tcp://HOST:PORT[,socket=PATH] */
int config_parse_import(const char *spec, struct vb_import *i, char *err, size_t errlen);

/* Is the host of a tcp:// or tls:// URI a loopback address (127/8, [::1], localhost)? */
int config_uri_is_loopback(const char *uri);

void config_usage(FILE *f);

#endif
