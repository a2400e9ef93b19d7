/*
 * vbridged's configuration: one table of keys drives the INI file ([global]
 * section, linuxptp style), the long options and the usage text. Precedence:
 * defaults, then -f FILE, then the command line in order. In a file a
 * single-valued key may appear once; on the command line a later flag
 * overrides the file and earlier flags. List keys (listen, export, import)
 * accumulate from both.
 */
#include "bridge/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge/util.h"
#include "bridge/wire.h"
#include "transport/transport.h"

#ifndef VB_VERSION
#define VB_VERSION "unknown"
#endif

#define POOL_MIN     (64ull << 10)
#define POOL_MAX     (1ull << 30)
#define MSG_MIN      (4u << 10)
#define MSG_MAX      (64u << 20)
#define QSIZE_MAX    32768u /* virtio 1.2 section 2.7: split ring size limit */
#define FILE_MAX     (1u << 20)
#define HOST_MAX     253u
#define IFNAME_MAX   15u /* IFNAMSIZ - 1, for IPv6 zone ids */
#define SOCK_SUFFIX  ".sock"
#define CONTROL_NAME "vbridged.sock"

/*
 * Config space sizes follow the virtio spec's layout of each device (1.2, and
 * 1.3 for sound) without fields that only exist with optional features added
 * later (blk secure-erase/zoned, net speed/RSS, fs notify). config-size=N
 * overrides: a backend may refuse GET_CONFIG beyond what it implements.
 */
static const struct vb_device_type device_types[] = {
    {"net", 1, 12},     /* 5.1.4: mac, status, max_virtqueue_pairs, mtu */
    {"blk", 2, 60},     /* 5.2.4: up to write_zeroes_may_unmap + unused1[3] */
    {"console", 3, 12}, /* 5.3.4: cols, rows, max_nr_ports, emerg_wr */
    {"rng", 4, 0},      /* 5.4.4: none */
    {"scsi", 8, 36},    /* 5.6.4 */
    {"gpu", 16, 16},    /* 5.7.4: events_read, events_clear, num_scanouts, num_capsets */
    {"input", 18, 136}, /* 5.8.4: select, subsel, size, reserved[5], u[128] */
    {"vsock", 19, 8},   /* 5.10.4: guest_cid */
    {"sound", 25, 16},  /* 5.14.4 (1.3): jacks, streams, chmaps, controls */
    {"fs", 26, 40},     /* 5.11.4: tag[36], num_request_queues */
    {"i2c", 34, 0},     /* 5.18.4: none */
    {"can", 36, 2},     /* virtio-can: status */
    {"gpio", 41, 8},    /* 5.17.4: ngpio, padding, gpio_names_size */
};

const struct vb_device_type *vb_device_type_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(device_types); i++) {
		if (!strcmp(device_types[i].name, name)) {
			return &device_types[i];
		}
	}
	return NULL;
}

const struct vb_device_type *vb_device_type_by_id(uint32_t id)
{
	for (size_t i = 0; i < ARRAY_SIZE(device_types); i++) {
		if (device_types[i].id == id) {
			return &device_types[i];
		}
	}
	return NULL;
}

/* Small checked parsers ------------------------------------------------------------------------ */

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Decimal only: no sign, no spaces, no octal surprises. */
static int parse_dec(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s) {
		return -EINVAL;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10) {
			return -EINVAL;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int parse_size_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (!*s || *s < '0' || *s > '9' || vb_parse_size(s, &v) < 0 || v < min || v > max) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * A duration: decimal with a unit, ns, us, ms or s ("5ms", "250us"); a bare
 * 0 is allowed. Up to max ns.
 */
static int parse_duration(const char *s, uint64_t max, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000}};
	char num[24];
	size_t n = strspn(s, "0123456789");
	uint64_t v;

	if (n == 0 || n >= sizeof(num)) {
		return -EINVAL;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_dec(num, max, &v) < 0) {
		return -EINVAL;
	}
	if (!s[n]) {
		return v == 0 ? (*out = 0, 0) : -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!strcmp(s + n, units[i].unit)) {
			if (v > max / units[i].ns) {
				return -EINVAL;
			}
			*out = v * units[i].ns;
			return 0;
		}
	}
	return -EINVAL;
}

static int name_ok(const char *s)
{
	return wire_name_valid(s, strnlen(s, VB_NAME_MAX + 1));
}

/* sun_path holds 108 bytes including the terminator. */
static int path_ok(const char *s)
{
	return *s && strlen(s) < VB_PATH_MAX;
}

static int host_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

/* "[v6]" or "[v6%zone]": the literal must parse, the zone is an interface name. */
static int check_v6(const char *s, size_t len, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + IFNAME_MAX + 2];
	struct in6_addr a;
	char *zone;

	if (len >= sizeof(buf)) {
		return errf(err, errlen, "IPv6 address too long");
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	zone = strchr(buf, '%');
	if (zone) {
		*zone++ = '\0';
		if (!wire_name_valid(zone, strlen(zone)) || strlen(zone) > IFNAME_MAX) {
			return errf(err, errlen, "bad IPv6 zone (want an interface name)");
		}
	}
	if (inet_pton(AF_INET6, buf, &a) != 1) {
		return errf(err, errlen, "bad IPv6 address");
	}
	return 0;
}

static int check_host(const char *s, size_t len, char *err, size_t errlen)
{
	if (len == 0) {
		return errf(err, errlen, "no host");
	}
	if (len > HOST_MAX) {
		return errf(err, errlen, "host name too long");
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ':') {
			return errf(err, errlen, "IPv6 address without [brackets]");
		}
		if (!host_char_ok(s[i])) {
			return errf(err, errlen, "bad character in host name");
		}
	}
	return 0;
}

static int check_tcp_uri(const char *uri, int port0_ok, char *err, size_t errlen);

/*
 * A link URI: tcp:// and tls:// checked here (below), tsn:// by its
 * transport (tsn://IFNAME to listen, tsn://IFNAME/PEER-MAC to import).
 */
static int check_link_uri(const char *uri, int listen, char *err, size_t errlen)
{
	char why[160];

	if (strncmp(uri, "tsn://", 6) != 0) {
		return check_tcp_uri(uri, listen, err, errlen);
	}
	if (strlen(uri) > VB_URI_MAX) {
		return errf(err, errlen, "longer than %d bytes", VB_URI_MAX);
	}
	if (transport_check_uri(uri, listen, why, sizeof(why)) < 0) {
		return errf(err, errlen, "%s", why);
	}
	return 0;
}

/*
 * tcp://HOST:PORT or tls://HOST:PORT with HOST a name, a.b.c.d or
 * [v6[%zone]]; port 0 only where allowed.
 */
static int check_tcp_uri(const char *uri, int port0_ok, char *err, size_t errlen)
{
	const char *hp, *colon;
	uint64_t port;
	int rc;

	if (strncmp(uri, "tcp://", 6) != 0 && strncmp(uri, "tls://", 6) != 0) {
		return errf(err, errlen,
		            "want tcp://HOST:PORT, tls://HOST:PORT or tsn://IFNAME[/PEER-MAC]");
	}
	if (strlen(uri) > VB_URI_MAX) {
		return errf(err, errlen, "longer than %d bytes", VB_URI_MAX);
	}
	hp = uri + 6;
	if (*hp == '[') {
		const char *close = strchr(hp, ']');

		if (!close) {
			return errf(err, errlen, "no ']' after the IPv6 address");
		}
		if (close[1] != ':') {
			return errf(err, errlen, "no :PORT");
		}
		rc = check_v6(hp + 1, (size_t)(close - hp - 1), err, errlen);
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon) {
			return errf(err, errlen, "no :PORT");
		}
		rc = check_host(hp, (size_t)(colon - hp), err, errlen);
	}
	if (rc < 0) {
		return rc;
	}
	if (parse_dec(colon + 1, 65535, &port) < 0 || (port == 0 && !port0_ok)) {
		return errf(err, errlen, "bad port (want %d..65535)", port0_ok ? 0 : 1);
	}
	return 0;
}

/*
 * Next comma-separated field of a spec, QEMU style: ",," stands for a literal
 * comma (so paths may hold one). Returns 1 if a separator followed (another
 * field, maybe empty, comes next), 0 at the end, -EINVAL if it does not fit.
 */
static int next_field(const char **pp, char *out, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;
	int more = 0;

	for (; *p; p++) {
		if (*p == ',' && p[1] != ',') {
			p++;
			more = 1;
			break;
		}
		if (*p == ',') {
			p++;
		}
		if (n + 1 >= cap) {
			return -EINVAL;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
	*pp = p;
	return more;
}

/* "NAME=" at the start of a spec; returns what follows or NULL. */
static const char *spec_name(const char *spec, char *name, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	size_t n;

	if (!eq) {
		errf(err, errlen, "want NAME=...");
		return NULL;
	}
	n = (size_t)(eq - spec);
	if (!wire_name_valid(spec, n)) {
		errf(err, errlen, "bad name (want 1..%d of [A-Za-z0-9._-])", VB_NAME_MAX);
		return NULL;
	}
	memcpy(name, spec, n);
	name[n] = '\0';
	return eq + 1;
}

/* Export and import spec options ----------------------------------------------------------- */

struct spec_opt {
	const char *name;
	int (*set)(void *obj, const char *v, char *err, size_t errlen);
};

static int exp_type(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_export *e = obj;
	const struct vb_device_type *t = vb_device_type_by_name(v);
	uint64_t id;

	if (t) {
		e->device_id = t->id;
		return 0;
	}
	if (parse_dec(v, 255, &id) < 0 || id == 0) {
		return errf(err, errlen, "unknown device type '%s' (a name or 1..255)", v);
	}
	e->device_id = (uint32_t)id;
	return 0;
}

static int exp_config_size(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_export *e = obj;
	uint64_t n;

	if (parse_dec(v, WIRE_CONFIG_MAX, &n) < 0) {
		return errf(err, errlen, "config-size: want 0..%u", WIRE_CONFIG_MAX);
	}
	e->config_size = (uint32_t)n;
	return 0;
}

static int exp_pool(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_export *e = obj;

	if (parse_size_range(v, POOL_MIN, POOL_MAX, &e->pool_size) < 0) {
		return errf(err, errlen, "pool: want a size from 64K to 1G");
	}
	return 0;
}

static int parse_class(const char *v, unsigned *cls, char *err, size_t errlen)
{
	int c = transport_class_parse(v);

	if (c < 0) {
		return errf(err, errlen, "class: want control, audio, video or bulk");
	}
	*cls = (unsigned)c;
	return 0;
}

static int exp_class(void *obj, const char *v, char *err, size_t errlen)
{
	return parse_class(v, &((struct vb_export *)obj)->cls, err, errlen);
}

static int imp_class(void *obj, const char *v, char *err, size_t errlen)
{
	return parse_class(v, &((struct vb_import *)obj)->cls, err, errlen);
}

static int imp_socket(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_import *i = obj;

	if (!path_ok(v)) {
		return errf(err, errlen, "socket: want a path of 1..%d bytes", VB_PATH_MAX - 1);
	}
	strcpy(i->socket, v);
	return 0;
}

/* allow=NAME[:NAME...]: the node identities that may attach. */
static int exp_allow(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_export *e = obj;
	const char *p = v;

	e->nallow = 0;
	for (;;) {
		size_t n = strcspn(p, ":");

		if (n == 0 || n > VB_NAME_MAX) {
			return errf(err, errlen, "allow: want NAME[:NAME...], names of 1..%d bytes",
			            VB_NAME_MAX);
		}
		if (e->nallow >= VB_MAX_ALLOW) {
			return errf(err, errlen, "allow: more than %d names", VB_MAX_ALLOW);
		}
		memcpy(e->allow[e->nallow], p, n);
		e->allow[e->nallow][n] = '\0';
		if (!name_ok(e->allow[e->nallow])) {
			return errf(err, errlen, "allow: '%s' is not a node name",
			            e->allow[e->nallow]);
		}
		e->nallow++;
		if (!p[n]) {
			return 0;
		}
		p += n + 1;
	}
}

/*
 * Per-queue values: "V" for every queue, or "Q:V[/Q:V...]" for some, where
 * "*:V" sets every queue; items apply in order, so "*:5ms/1:0" gives queue
 * 1 none and the others 5 ms. The setter gets each (queue, value) pair
 * (queue -1: every queue).
 */
static int per_queue(const char *v, void *obj,
                     int (*one)(void *obj, int q, const char *val, char *err, size_t errlen),
                     char *err, size_t errlen)
{
	char item[64];

	if (!strchr(v, ':')) {
		return one(obj, -1, v, err, errlen);
	}
	while (*v) {
		size_t n = strcspn(v, "/");
		char *colon;
		uint64_t q;
		int rc;

		if (n == 0 || n >= sizeof(item)) {
			return errf(err, errlen, "want VALUE or QUEUE:VALUE[/QUEUE:VALUE...]");
		}
		memcpy(item, v, n);
		item[n] = '\0';
		colon = strchr(item, ':');
		if (!colon) {
			return errf(err, errlen, "'%s': want QUEUE:VALUE", item);
		}
		*colon = '\0';
		if (!strcmp(item, "*")) {
			rc = one(obj, -1, colon + 1, err, errlen);
		} else if (parse_dec(item, VB_MAX_QUEUES - 1, &q) < 0) {
			return errf(err, errlen, "queue '%s': want 0..%d or *", item,
			            VB_MAX_QUEUES - 1);
		} else {
			rc = one(obj, (int)q, colon + 1, err, errlen);
		}
		if (rc < 0) {
			return rc;
		}
		if (v[n] == '/' && !v[n + 1]) {
			return errf(err, errlen, "want VALUE or QUEUE:VALUE[/QUEUE:VALUE...]");
		}
		v += n + (v[n] == '/');
	}
	return 0;
}

/* The largest latency budget: 10 s (a presentation time, not a timeout). */
#define LATENCY_MAX_NS 10000000000ull

static int imp_latency_one(void *obj, int q, const char *v, char *err, size_t errlen)
{
	struct vb_import *i = obj;
	uint64_t ns;

	if (parse_duration(v, LATENCY_MAX_NS, &ns) < 0) {
		return errf(err, errlen, "'%s': want 0 or a duration up to 10s (5ms, 500us)", v);
	}
	for (int k = 0; k < VB_MAX_QUEUES; k++) {
		if (q < 0 || k == q) {
			i->latency_ns[k] = ns;
		}
	}
	return 0;
}

static int imp_late_one(void *obj, int q, const char *v, char *err, size_t errlen)
{
	struct vb_import *i = obj;
	uint64_t bits = q < 0 ? ~0ull : 1ull << q;

	if (!strcmp(v, "drop")) {
		i->late_drop |= bits;
	} else if (!strcmp(v, "deliver")) {
		i->late_drop &= ~bits;
	} else {
		return errf(err, errlen, "'%s': want deliver or drop", v);
	}
	return 0;
}

static int imp_latency(void *obj, const char *v, char *err, size_t errlen)
{
	return per_queue(v, obj, imp_latency_one, err, errlen);
}

static int imp_late(void *obj, const char *v, char *err, size_t errlen)
{
	return per_queue(v, obj, imp_late_one, err, errlen);
}

static int imp_on_unsync(void *obj, const char *v, char *err, size_t errlen)
{
	struct vb_import *i = obj;

	if (!strcmp(v, "hold")) {
		i->on_unsync_hold = 1;
	} else if (!strcmp(v, "deliver")) {
		i->on_unsync_hold = 0;
	} else {
		return errf(err, errlen, "on-unsync: want deliver or hold");
	}
	return 0;
}

enum export_opt { EO_TYPE, EO_CONFIG_SIZE, EO_POOL, EO_ALLOW, EO_CLASS };

static const struct spec_opt export_opts[] = {
    [EO_TYPE] = {"type", exp_type},    [EO_CONFIG_SIZE] = {"config-size", exp_config_size},
    [EO_POOL] = {"pool", exp_pool},    [EO_ALLOW] = {"allow", exp_allow},
    [EO_CLASS] = {"class", exp_class},
};

static const struct spec_opt import_opts[] = {
    {"socket", imp_socket}, {"class", imp_class},         {"latency", imp_latency},
    {"late", imp_late},     {"on-unsync", imp_on_unsync},
};

/* Applies the ",key=value" options that follow the first field; each may appear once. */
static int spec_options(const char *p, int more, const struct spec_opt *opts, size_t nopts,
                        void *obj, unsigned *given, char *err, size_t errlen)
{
	char field[VB_URI_MAX + 16];

	*given = 0;
	while (more) {
		char *eq;
		size_t k;

		more = next_field(&p, field, sizeof(field));
		if (more < 0) {
			return errf(err, errlen, "option too long");
		}
		eq = strchr(field, '=');
		if (!eq || eq == field || !eq[1]) {
			return errf(err, errlen, "option '%s': want KEY=VALUE", field);
		}
		*eq = '\0';
		for (k = 0; k < nopts && strcmp(opts[k].name, field); k++) {
		}
		if (k == nopts) {
			return errf(err, errlen, "unknown option '%s'", field);
		}
		if (*given & (1u << k)) {
			return errf(err, errlen, "option '%s' given twice", field);
		}
		*given |= 1u << k;
		if (opts[k].set(obj, eq + 1, err, errlen) < 0) {
			return -EINVAL;
		}
	}
	return 0;
}

int config_parse_export(const char *spec, struct vb_export *e, char *err, size_t errlen)
{
	char field[VB_PATH_MAX + 16];
	const char *p;
	unsigned given;
	int more;

	memset(e, 0, sizeof(*e));
	p = spec_name(spec, e->name, err, errlen);
	if (!p) {
		return -EINVAL;
	}
	more = next_field(&p, field, sizeof(field));
	if (more < 0) {
		return errf(err, errlen, "backend path too long");
	}
	if (strncmp(field, "vhost-user:", 11) != 0) {
		return errf(err, errlen, "unknown backend '%s' (want vhost-user:PATH)", field);
	}
	if (!path_ok(field + 11)) {
		return errf(err, errlen, "vhost-user: want a path of 1..%d bytes", VB_PATH_MAX - 1);
	}
	e->kind = VB_EXPORT_VHOST_USER;
	strcpy(e->path, field + 11);
	if (spec_options(p, more, export_opts, ARRAY_SIZE(export_opts), e, &given, err, errlen) <
	    0) {
		return -EINVAL;
	}
	/* config-size wins over the type's size whatever their order. */
	if (!(given & (1u << EO_CONFIG_SIZE))) {
		const struct vb_device_type *t = vb_device_type_by_id(e->device_id);

		e->config_size = t ? t->config_size : 0;
	}
	return 0;
}

int config_parse_import(const char *spec, struct vb_import *i, char *err, size_t errlen)
{
	char field[VB_URI_MAX + 16];
	const char *p;
	unsigned given;
	int more;

	memset(i, 0, sizeof(*i));
	p = spec_name(spec, i->name, err, errlen);
	if (!p) {
		return -EINVAL;
	}
	more = next_field(&p, field, sizeof(field));
	if (more < 0) {
		return errf(err, errlen, "source too long");
	}
	if (check_link_uri(field, 0, err, errlen) < 0) {
		return -EINVAL;
	}
	strcpy(i->source, field);
	return spec_options(p, more, import_opts, ARRAY_SIZE(import_opts), i, &given, err, errlen);
}

/* Key setters: value in, reason out ---------------------------------------------------------- */

static int set_foreground(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	c->log_stderr = 1;
	return 0;
}

static int set_verbose(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (c->verbose < 9) {
		c->verbose++;
	}
	return 0;
}

static int set_check(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	c->check_only = 1;
	return 0;
}

static int set_node(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (!name_ok(v)) {
		return errf(err, errlen, "want 1..%d of [A-Za-z0-9._-]", VB_NAME_MAX);
	}
	strcpy(c->node, v);
	return 0;
}

static int set_listen(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (check_link_uri(v, 1, err, errlen) < 0) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		if (!strcmp(c->listen[i], v)) {
			return errf(err, errlen, "given twice");
		}
	}
	if (c->nlisten >= VB_MAX_LISTEN) {
		return errf(err, errlen, "more than %d listen addresses", VB_MAX_LISTEN);
	}
	strcpy(c->listen[c->nlisten++], v);
	return 0;
}

static int set_export(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	struct vb_export e;

	if (config_parse_export(v, &e, err, errlen) < 0) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->nexports; i++) {
		if (!strcmp(c->exports[i].name, e.name)) {
			return errf(err, errlen, "export %s already defined", e.name);
		}
	}
	if (c->nexports >= VB_MAX_EXPORTS) {
		return errf(err, errlen, "more than %d exports", VB_MAX_EXPORTS);
	}
	c->exports[c->nexports++] = e;
	return 0;
}

static int set_import(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	struct vb_import im;

	if (config_parse_import(v, &im, err, errlen) < 0) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->nimports; i++) {
		if (!strcmp(c->imports[i].name, im.name)) {
			return errf(err, errlen, "import %s already defined", im.name);
		}
	}
	if (c->nimports >= VB_MAX_IMPORTS) {
		return errf(err, errlen, "more than %d imports", VB_MAX_IMPORTS);
	}
	c->imports[c->nimports++] = im;
	return 0;
}

static int set_runtime_dir(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v);

	/* Relative to what? The daemon's cwd is no place for sockets. */
	if (v[0] != '/' || n >= VB_PATH_MAX) {
		return errf(err, errlen, "want an absolute path of at most %d bytes",
		            VB_PATH_MAX - 1);
	}
	while (n > 1 && v[n - 1] == '/') {
		n--;
	}
	memcpy(c->runtime_dir, v, n);
	c->runtime_dir[n] = '\0';
	return 0;
}

static int set_control(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (!path_ok(v)) {
		return errf(err, errlen, "want a path of 1..%d bytes", VB_PATH_MAX - 1);
	}
	strcpy(c->control, v);
	return 0;
}

static int set_pool_size(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (parse_size_range(v, POOL_MIN, POOL_MAX, &c->pool_size) < 0) {
		return errf(err, errlen, "want a size from 64K to 1G");
	}
	return 0;
}

static int set_file_key(char *dst, size_t cap, const char *v, char *err, size_t errlen)
{
	if (!*v || strlen(v) >= cap) {
		return errf(err, errlen, "want a path of 1..%zu bytes", cap - 1);
	}
	strcpy(dst, v);
	return 0;
}

static int set_tls_cert(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	return set_file_key(c->tls_cert, sizeof(c->tls_cert), v, err, errlen);
}

static int set_tls_key(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	return set_file_key(c->tls_key, sizeof(c->tls_key), v, err, errlen);
}

static int set_tls_ca(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	return set_file_key(c->tls_ca, sizeof(c->tls_ca), v, err, errlen);
}

/* sha256//BASE64 (44 characters) or 64 hex digits: checked again when the context is built. */
static int set_tls_pin(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v);
	int b64 = !strncmp(v, "sha256//", 8) && n == 8 + 44;
	int hex = n == 64 && strspn(v, "0123456789abcdefABCDEF") == 64;

	if (!b64 && !hex) {
		return errf(err, errlen, "want sha256//BASE64 or 64 hex digits");
	}
	if (c->ntls_pins >= VB_MAX_PINS) {
		return errf(err, errlen, "more than %d pins", VB_MAX_PINS);
	}
	strcpy(c->tls_pins[c->ntls_pins++], v);
	return 0;
}

/* A flag on the command line; in the file "allow-plaintext = yes|no". */
static int set_allow_plaintext(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (!v || !*v || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1")) {
		c->allow_plaintext = 1;
	} else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0")) {
		c->allow_plaintext = 0;
	} else {
		return errf(err, errlen, "want yes or no");
	}
	return 0;
}

static int set_tsn_vlan(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	if (!strcmp(v, "none")) {
		c->tsn_vlan = -1;
		return 0;
	}
	if (parse_dec(v, 4094, &n) < 0) {
		return errf(err, errlen, "want none or a VLAN id 0..4094 (0: priority tag only)");
	}
	c->tsn_vlan = (int)n;
	return 0;
}

static int set_ptp4l(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	c->ptp4l[0] = '\0';
	c->ptp_local = 0;
	if (!strcmp(v, "none")) {
		return 0;
	}
	if (!strcmp(v, "local")) {
		c->ptp_local = 1;
		return 0;
	}
	if (!path_ok(v)) {
		return errf(err, errlen, "want none, local or a socket path of 1..%d bytes",
		            VB_PATH_MAX - 1);
	}
	strcpy(c->ptp4l, v);
	return 0;
}

static int set_ptp_domain(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	if (parse_dec(v, 255, &n) < 0) {
		return errf(err, errlen, "want a PTP domain number 0..255");
	}
	c->ptp_domain = (int)n;
	return 0;
}

static int set_ptp_transport_specific(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	if (!strcmp(v, "auto")) {
		c->ptp_transport_specific = -1;
		return 0;
	}
	if (parse_dec(v, 15, &n) < 0) {
		return errf(err, errlen, "want auto or 0..15 (gPTP: 1)");
	}
	c->ptp_transport_specific = (int)n;
	return 0;
}

static int set_ptp_max_offset(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (parse_duration(v, 1000000000ull, &c->ptp_max_offset_ns) < 0 ||
	    c->ptp_max_offset_ns == 0) {
		return errf(err, errlen, "want a duration from 1ns to 1s (100us, 1us)");
	}
	return 0;
}

static int set_release_spin(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	if (parse_duration(v, 1000000, &c->release_spin_ns) < 0) {
		return errf(err, errlen, "want 0 or a duration up to 1ms (100us)");
	}
	return 0;
}

static int set_time_trace(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	return set_file_key(c->time_trace, sizeof(c->time_trace), v, err, errlen);
}

static int set_max_queue_size(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	/* virtio 1.2 section 2.7: queue sizes are powers of 2 up to 32768. */
	if (parse_dec(v, QSIZE_MAX, &n) < 0 || n == 0 || (n & (n - 1))) {
		return errf(err, errlen, "want a power of 2 from 1 to %u", QSIZE_MAX);
	}
	c->max_queue_size = (uint32_t)n;
	return 0;
}

static int set_max_msg(struct vb_config *c, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	if (parse_size_range(v, MSG_MIN, MSG_MAX, &n) < 0) {
		return errf(err, errlen, "want a size from 4K to 64M");
	}
	c->max_msg = (uint32_t)n;
	return 0;
}

/* The key table ------------------------------------------------------------------------------ */

enum key_id {
	K_FOREGROUND,
	K_VERBOSE,
	K_CHECK,
	K_FILE,
	K_HELP,
	K_VERSION,
	K_NODE,
	K_LISTEN,
	K_EXPORT,
	K_IMPORT,
	K_RUNTIME_DIR,
	K_CONTROL,
	K_POOL_SIZE,
	K_MAX_QUEUE_SIZE,
	K_MAX_MSG,
	K_TLS_CERT,
	K_TLS_KEY,
	K_TLS_CA,
	K_TLS_PIN,
	K_ALLOW_PLAINTEXT,
	K_TSN_VLAN,
	K_PTP4L,
	K_PTP_DOMAIN,
	K_PTP_TRANSPORT_SPECIFIC,
	K_PTP_MAX_OFFSET,
	K_TIME_TRACE,
	K_RELEASE_SPIN,
	K_COUNT
};

typedef int (*key_setter)(struct vb_config *c, const char *v, char *err, size_t errlen);

struct config_key {
	const char *name;
	int has_arg;
	int repeatable;
	key_setter set; /* NULL: handled by config_parse_args itself */
	const char *help;
	char short_opt;
	int cli_only;
	const char *arg; /* placeholder in the usage text */
};

static const struct config_key keys[K_COUNT] = {
    [K_FOREGROUND] = {"foreground", no_argument, 0, set_foreground,
                      "log to stderr instead of syslog", 'd', 1, NULL},
    [K_VERBOSE] = {"verbose", no_argument, 1, set_verbose, "more log output (repeatable)", 'v', 1,
                   NULL},
    [K_CHECK] = {"check", no_argument, 0, set_check, "check the configuration and exit", 'n', 1,
                 NULL},
    [K_FILE] = {"file", required_argument, 0, NULL,
                "read FILE first ([global] section, keys as the long options)", 'f', 1, "FILE"},
    [K_HELP] = {"help", no_argument, 0, NULL, "print this help and exit", 'h', 1, NULL},
    [K_VERSION] = {"version", no_argument, 0, NULL, "print the version and exit", 0, 1, NULL},
    [K_NODE] = {"node", required_argument, 0, set_node, "this node's name (default: hostname)", 0,
                0, "NAME"},
    [K_LISTEN] = {"listen", required_argument, 1, set_listen,
                  "accept links on tcp://HOST:PORT (repeatable)", 0, 0, "URI"},
    [K_EXPORT] = {"export", required_argument, 1, set_export,
                  "offer a local device as NAME (repeatable)", 0, 0, "NAME=BACKEND"},
    [K_IMPORT] = {"import", required_argument, 1, set_import,
                  "make a remote device a local vhost-user socket (repeatable)", 0, 0,
                  "NAME=SOURCE"},
    [K_RUNTIME_DIR] = {"runtime-dir", required_argument, 0, set_runtime_dir,
                       "sockets go here (default " VB_DEFAULT_RUNDIR ")", 0, 0, "DIR"},
    [K_CONTROL] = {"control", required_argument, 0, set_control,
                   "control socket (default RUNTIME_DIR/" CONTROL_NAME ")", 0, 0, "PATH"},
    [K_POOL_SIZE] = {"pool-size", required_argument, 0, set_pool_size,
                     "exporter buffer pool per device, 64K..1G (default 16M)", 0, 0, "SIZE"},
    [K_MAX_QUEUE_SIZE] = {"max-queue-size", required_argument, 0, set_max_queue_size,
                          "largest virtqueue accepted, power of 2 (default 1024)", 0, 0, "N"},
    [K_MAX_MSG] = {"max-msg", required_argument, 0, set_max_msg,
                   "largest link message, 4K..64M (default 4M)", 0, 0, "SIZE"},
    [K_TLS_CERT] = {"tls-cert", required_argument, 0, set_tls_cert,
                    "this node's certificate (PEM) for tls:// links", 0, 0, "FILE"},
    [K_TLS_KEY] = {"tls-key", required_argument, 0, set_tls_key, "its private key (PEM)", 0, 0,
                   "FILE"},
    [K_TLS_CA] = {"tls-ca", required_argument, 0, set_tls_ca,
                  "CA certificates peers must chain to (PEM; not the system store)", 0, 0, "FILE"},
    [K_TLS_PIN] = {"tls-pin", required_argument, 1, set_tls_pin,
                   "accept only peers with this SPKI SHA-256 (repeatable)", 0, 0, "PIN"},
    [K_ALLOW_PLAINTEXT] = {"allow-plaintext", optional_argument, 0, set_allow_plaintext,
                           "allow tcp:// links to and from other hosts than loopback", 0, 0, NULL},
    [K_TSN_VLAN] = {"tsn-vlan", required_argument, 0, set_tsn_vlan,
                    "802.1Q tag on tsn:// frames: VID 0..4094, PCP from the class (default none)",
                    0, 0, "VID"},
    [K_PTP4L] = {"ptp4l", required_argument, 0, set_ptp4l,
                 "gPTP time from ptp4l's management socket (its uds_address); none; or local: "
                 "trust the system clock (default none)",
                 0, 0, "PATH"},
    [K_PTP_DOMAIN] = {"ptp-domain", required_argument, 0, set_ptp_domain,
                      "ptp4l's domainNumber (default 0)", 0, 0, "N"},
    [K_PTP_TRANSPORT_SPECIFIC] = {"ptp-transport-specific", required_argument, 0,
                                  set_ptp_transport_specific,
                                  "ptp4l's transportSpecific, 0..15 (default auto: 1, then 0)", 0,
                                  0, "N"},
    [K_PTP_MAX_OFFSET] = {"ptp-max-offset", required_argument, 0, set_ptp_max_offset,
                          "largest |master offset| still synchronized (default 100us)", 0, 0,
                          "DURATION"},
    [K_RELEASE_SPIN] = {"release-spin", required_argument, 0, set_release_spin,
                        "wake this early and spin to a presentation time: precision for CPU "
                        "(default 0)",
                        0, 0, "DURATION"},
    [K_TIME_TRACE] = {"time-trace", required_argument, 0, set_time_trace,
                      "append one CSV line per timed buffer released (tests, benchmarks)", 0, 0,
                      "FILE"},
};

static const struct config_key *key_by_name(const char *name)
{
	for (size_t i = 0; i < K_COUNT; i++) {
		if (!strcmp(keys[i].name, name)) {
			return &keys[i];
		}
	}
	return NULL;
}

/* Runs a setter; err becomes "KEY: VALUE: why". */
static int apply_key(struct vb_config *c, const struct config_key *k, const char *v, char *err,
                     size_t errlen)
{
	char why[256] = "";

	if (k->has_arg == required_argument && !v) {
		return errf(err, errlen, "%s: value required", k->name);
	}
	if (k->set(c, v, why, sizeof(why)) < 0) {
		if (v) {
			return errf(err, errlen, "%s: %s: %s", k->name, v, why);
		}
		return errf(err, errlen, "%s: %s", k->name, why);
	}
	return 0;
}

void config_defaults(struct vb_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->runtime_dir, VB_DEFAULT_RUNDIR);
	c->pool_size = 16ull << 20;
	c->max_queue_size = 1024;
	c->max_msg = WIRE_MAX_MSG;
	c->tsn_vlan = -1;
	c->ptp_transport_specific = -1;
	c->ptp_max_offset_ns = 100000;
}

int config_set(struct vb_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_key *k = key_by_name(key);

	if (!k || k->cli_only) {
		return errf(err, errlen, "unknown key '%s'", key);
	}
	return apply_key(c, k, value, err, errlen);
}

/* INI file --------------------------------------------------------------------------------- */

struct ini_ctx {
	struct vb_config *c;
	const char *fname;
	const char *p, *end; /* text not yet handed to inih */
	int line;            /* number of the line handed out last */
	int err_line;        /* first error found by us, 0 if none */
	char *err;
	size_t errlen;
	unsigned seen; /* bit per key given in this file */
};

static int ini_fail(struct ini_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ini_fail(struct ini_ctx *x, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	if (x->err_line) {
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	x->err_line = x->line;
	errf(x->err, x->errlen, "%s:%d: %s", x->fname, x->line, why);
	return 0;
}

/* Only [global] exists; checked here so that an empty unknown section is caught too. */
static void ini_check_section(struct ini_ctx *x, const char *s, size_t n)
{
	const char *close = memchr(s, ']', n);

	if (!close) {
		ini_fail(x, "section header without ']'");
	} else if (close - s - 1 != 6 || memcmp(s + 1, "global", 6) != 0) {
		ini_fail(x, "unknown section [%.*s] (only [global])", (int)(close - s - 1), s + 1);
	}
}

/*
 * fgets for inih over (text, len): counts lines for our messages, refuses NUL
 * bytes and lines longer than inih's buffer (it would split them silently),
 * and drops leading blanks so that inih never takes an indented line for a
 * continuation of the previous value.
 */
static char *cfg_ini_read(char *str, int num, void *stream)
{
	struct ini_ctx *x = stream;
	const char *nl, *s;
	size_t n, skip = 0;

	if (x->p >= x->end || num < 2) {
		return NULL;
	}
	x->line++;
	nl = memchr(x->p, '\n', (size_t)(x->end - x->p));
	n = nl ? (size_t)(nl - x->p) + 1 : (size_t)(x->end - x->p);
	s = x->p;
	x->p += n;
	while (skip < n && (s[skip] == ' ' || s[skip] == '\t')) {
		skip++;
	}
	s += skip;
	n -= skip;
	if (memchr(s, '\0', n)) {
		ini_fail(x, "NUL byte");
	} else if (n > (size_t)num - 1) {
		ini_fail(x, "line longer than %d bytes", num - 2);
	} else if (n && s[0] == '[') {
		ini_check_section(x, s, n);
	}
	/* Whatever the error, no more than inih's buffer holds (a long NUL line overflowed it). */
	n = VB_MIN(n, (size_t)num - 1);
	memcpy(str, s, n);
	str[n] = '\0';
	return str;
}

static int cfg_ini_key(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;
	const struct config_key *k = key_by_name(name);
	char why[384];
	unsigned bit;

	if (x->err_line) {
		return 1; /* the first error is the one reported; apply nothing after it */
	}
	/* Keys before any section header belong to [global], as in linuxptp. */
	if (section[0] && strcmp(section, "global")) {
		return ini_fail(x, "unknown section [%s]", section);
	}
	if (!k || k->cli_only) {
		return ini_fail(x, "unknown key '%s'", name);
	}
	bit = 1u << (k - keys);
	if (!k->repeatable && (x->seen & bit)) {
		return ini_fail(x, "%s given twice", name);
	}
	x->seen |= bit;
	if (apply_key(x->c, k, value, why, sizeof(why)) < 0) {
		return ini_fail(x, "%s", why);
	}
	return 1;
}

int config_parse_ini(struct vb_config *c, const char *text, size_t len, const char *fname,
                     char *err, size_t errlen)
{
	struct ini_ctx x = {
	    .c = c, .fname = fname, .p = text, .end = text + len, .err = err, .errlen = errlen};
	int rc;

	rc = ini_parse_stream(cfg_ini_read, &x, cfg_ini_key, &x);
	if (rc > 0 && (!x.err_line || rc < x.err_line)) {
		return errf(err, errlen, "%s:%d: syntax error (want KEY = VALUE or [global])",
		            fname, rc);
	}
	if (x.err_line) {
		return -EINVAL;
	}
	if (rc < 0) {
		return errf(err, errlen, "%s: cannot parse (out of memory)", fname);
	}
	return 0;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return errf(err, errlen, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		close(fd);
		return errf(err, errlen, "%s: not a regular file of at most 1 MiB", path);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return errf(err, errlen, "%s: out of memory", path);
	}
	while (got < (size_t)st.st_size &&
	       (n = read(fd, buf + got, (size_t)st.st_size - got)) != 0) {
		if (n < 0 && errno != EINTR) {
			free(buf);
			close(fd);
			return errf(err, errlen, "%s: %s", path, strerror(errno));
		}
		got += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

static int config_load_file(struct vb_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (strlen(path) >= sizeof(c->file)) {
		return errf(err, errlen, "-f: path too long");
	}
	strcpy(c->file, path);
	rc = read_file(path, &text, &len, err, errlen);
	if (rc < 0) {
		return rc;
	}
	rc = config_parse_ini(c, text, len, path, err, errlen);
	free(text);
	return rc;
}

/* Command line ----------------------------------------------------------------------------- */

#define OPT_BASE 256 /* getopt_long val of key i is OPT_BASE + i */

static void build_getopt(struct option *lo, char *so)
{
	size_t n = 0;

	*so++ = '+'; /* stop at the first non-option: we refuse it, and argv stays unpermuted */
	*so++ = ':'; /* report a missing argument as ':' */
	for (size_t i = 0; i < K_COUNT; i++) {
		lo[i] = (struct option){keys[i].name, keys[i].has_arg, NULL, OPT_BASE + (int)i};
		if (keys[i].short_opt) {
			so[n++] = keys[i].short_opt;
			if (keys[i].has_arg) {
				so[n++] = ':';
			}
		}
	}
	lo[K_COUNT] = (struct option){0};
	so[n] = '\0';
}

static int opt_key(int ch)
{
	if (ch >= OPT_BASE && ch < OPT_BASE + K_COUNT) {
		return ch - OPT_BASE;
	}
	for (int i = 0; i < K_COUNT; i++) {
		if (keys[i].short_opt && keys[i].short_opt == ch) {
			return i;
		}
	}
	return -1;
}

/* glibc reports a long option's val in optopt, a short one's character, 0 if unknown. */
static int opt_error(int ch, char **argv, char *err, size_t errlen)
{
	int k = optopt >= OPT_BASE ? optopt - OPT_BASE : -1;

	if (ch == ':' && k >= 0) {
		return errf(err, errlen, "--%s needs an argument", keys[k].name);
	}
	if (ch == ':') {
		return errf(err, errlen, "-%c needs an argument", optopt);
	}
	if (k >= 0) {
		return errf(err, errlen, "--%s takes no argument", keys[k].name);
	}
	if (optopt) {
		return errf(err, errlen, "unknown option -%c", optopt);
	}
	return errf(err, errlen, "unknown or ambiguous option %s", argv[optind - 1]);
}

/*
 * One pass over argv. Pass 0 only notes -f, --help, --version (and finds
 * errors early); pass 1 applies the rest, after the file.
 */
static int scan_args(struct vb_config *c, int argc, char **argv, int pass, int *special,
                     const char **file, char *err, size_t errlen)
{
	struct option lo[K_COUNT + 1];
	char so[2 * K_COUNT + 3];
	int ch;

	build_getopt(lo, so);
	optind = 0; /* glibc: full re-initialisation, also between calls */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		int k = opt_key(ch);

		if (ch == '?' || ch == ':' || k < 0) {
			return opt_error(ch, argv, err, errlen);
		}
		if (pass == 0) {
			if (k == K_FILE) {
				*file = optarg;
			} else if (k == K_HELP || k == K_VERSION) {
				*special = k;
			}
		} else if (keys[k].set && apply_key(c, &keys[k], optarg, err, errlen) < 0) {
			return -EINVAL;
		}
	}
	if (optind < argc) {
		return errf(err, errlen, "unexpected argument '%s'", argv[optind]);
	}
	return 0;
}

int config_parse_args(struct vb_config *c, int argc, char **argv, char *err, size_t errlen)
{
	const char *file = NULL;
	int special = -1;

	if (scan_args(c, argc, argv, 0, &special, &file, err, errlen) < 0) {
		return -EINVAL;
	}
	if (special == K_HELP) {
		config_usage(stdout);
		return 1;
	}
	if (special == K_VERSION) {
		printf("vbridged %s (wire protocol %d)\n", VB_VERSION, WIRE_VERSION);
		return 1;
	}
	if (file && config_load_file(c, file, err, errlen) < 0) {
		return -EINVAL;
	}
	return scan_args(c, argc, argv, 1, &special, &file, err, errlen);
}

/* Final checks ----------------------------------------------------------------------------- */

/* Through a local buffer: out and dir are fields of the same struct. */
static int join_path(char *out, const char *dir, const char *name, const char *suffix)
{
	char buf[VB_PATH_MAX];
	int n = snprintf(buf, sizeof(buf), "%s/%s%s", dir, name, suffix);

	if (n <= 0 || n >= VB_PATH_MAX) {
		return -ENAMETOOLONG;
	}
	memcpy(out, buf, (size_t)n + 1);
	return 0;
}

static int finish_node(struct vb_config *c, char *err, size_t errlen)
{
	char host[256];

	if (c->node[0]) {
		return 0;
	}
	if (gethostname(host, sizeof(host)) < 0) {
		return errf(err, errlen, "node: cannot get the hostname; set --node");
	}
	host[sizeof(host) - 1] = '\0';
	if (!name_ok(host)) {
		return errf(err, errlen, "node: hostname '%s' is not a valid name; set --node",
		            host);
	}
	strcpy(c->node, host);
	return 0;
}

static int finish_imports(struct vb_config *c, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->nimports; i++) {
		struct vb_import *im = &c->imports[i];

		if (!im->socket[0] &&
		    join_path(im->socket, c->runtime_dir, im->name, SOCK_SUFFIX)) {
			return errf(err, errlen, "import %s: %s/%s%s does not fit a socket path",
			            im->name, c->runtime_dir, im->name, SOCK_SUFFIX);
		}
		for (unsigned j = 0; j < i; j++) {
			if (!strcmp(c->imports[j].name, im->name)) {
				return errf(err, errlen, "import %s defined twice", im->name);
			}
			if (!strcmp(c->imports[j].socket, im->socket)) {
				return errf(err, errlen, "imports %s and %s share socket %s",
				            c->imports[j].name, im->name, im->socket);
			}
		}
		if (!strcmp(im->socket, c->control)) {
			return errf(err, errlen, "import %s: socket %s is the control socket",
			            im->name, im->socket);
		}
	}
	return 0;
}

static int finish_exports(struct vb_config *c, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->nexports; i++) {
		struct vb_export *e = &c->exports[i];

		if (!e->pool_size) {
			e->pool_size = c->pool_size;
		}
		for (unsigned j = 0; j < i; j++) {
			if (!strcmp(c->exports[j].name, e->name)) {
				return errf(err, errlen, "export %s defined twice", e->name);
			}
		}
	}
	return 0;
}

/* Is the host of tcp://HOST:PORT a loopback address (127/8, ::1, localhost)? */
int config_uri_is_loopback(const char *uri)
{
	const char *h = strstr(uri, "://");

	if (!h) {
		return 0;
	}
	h += 3;
	return !strncmp(h, "127.", 4) || !strncmp(h, "[::1]:", 6) || !strncmp(h, "localhost:", 10);
}

/*
 * Plain tcp:// carries device data unauthenticated and in clear: only over
 * loopback unless the operator says otherwise (security issue, item 2).
 */
static int finish_plaintext(const struct vb_config *c, char *err, size_t errlen)
{
	const char *what = NULL, *uri = NULL;

	for (unsigned i = 0; i < c->nlisten && !uri; i++) {
		if (!strncmp(c->listen[i], "tcp://", 6) && !config_uri_is_loopback(c->listen[i])) {
			what = "listen";
			uri = c->listen[i];
		}
	}
	for (unsigned i = 0; i < c->nimports && !uri; i++) {
		if (!strncmp(c->imports[i].source, "tcp://", 6) &&
		    !config_uri_is_loopback(c->imports[i].source)) {
			what = "import";
			uri = c->imports[i].source;
		}
	}
	if (uri && !c->allow_plaintext) {
		return errf(err, errlen,
		            "%s %s: plain tcp:// beyond loopback is refused; use tls:// or start "
		            "with --allow-plaintext",
		            what, uri);
	}
	return 0;
}

/* tls:// needs a certificate, its key and a CA. */
static int finish_tls(const struct vb_config *c, char *err, size_t errlen)
{
	int tls = 0;

	for (unsigned i = 0; i < c->nlisten; i++) {
		tls |= !strncmp(c->listen[i], "tls://", 6);
	}
	for (unsigned i = 0; i < c->nimports; i++) {
		tls |= !strncmp(c->imports[i].source, "tls://", 6);
	}
	if (tls && (!c->tls_cert[0] || !c->tls_key[0] || !c->tls_ca[0])) {
		return errf(err, errlen, "tls:// links need --tls-cert, --tls-key and --tls-ca");
	}
	return 0;
}

int config_finish(struct vb_config *c, char *err, size_t errlen)
{
	if (finish_plaintext(c, err, errlen) < 0 || finish_tls(c, err, errlen) < 0) {
		return -EINVAL;
	}
	if (finish_node(c, err, errlen) < 0) {
		return -EINVAL;
	}
	if (!c->control[0] && join_path(c->control, c->runtime_dir, CONTROL_NAME, "")) {
		return errf(err, errlen, "control: %s/%s does not fit a socket path",
		            c->runtime_dir, CONTROL_NAME);
	}
	if (finish_exports(c, err, errlen) < 0 || finish_imports(c, err, errlen) < 0) {
		return -EINVAL;
	}
	return 0;
}

/* Usage -------------------------------------------------------------------------------------- */

void config_usage(FILE *f)
{
	fputs(
	    "vbridged [-d] [-v] [-n] [-f FILE] [--node NAME] [--listen URI]...\n"
	    "         [--export NAME=BACKEND]... [--import NAME=SOURCE[,socket=PATH]]...\n"
	    "         [--runtime-dir DIR] [--control PATH]\n"
	    "BACKEND  vhost-user:PATH     connect as frontend to a backend's socket\n"
	    "SOURCE   tcp://HOST:PORT     the export called NAME on that node\n"
	    "         tls://HOST:PORT     the same over TLS 1.3 (--tls-cert/key/ca)\n"
	    "\n"
	    "BACKEND options: ,type=T (a virtio device name or id) ,config-size=N ,pool=SIZE\n"
	    "                 ,allow=NODE[:NODE...] (who may attach; default anyone)\n"
	    "SOURCE  HOST is a name, a.b.c.d or [v6]; socket defaults to RUNTIME_DIR/NAME.sock\n"
	    "SOURCE options: ,socket=PATH ,class=control|audio|video|bulk\n"
	    "                ,latency=DURATION (presentation time after capture; 0 none)\n"
	    "                ,late=deliver|drop ,on-unsync=deliver|hold\n"
	    "                latency and late take V or QUEUE:V[/QUEUE:V...] (* for every queue)\n"
	    "A ',,' in PATH stands for one ','.\n"
	    "\n",
	    f);
	for (size_t i = 0; i < K_COUNT; i++) {
		const struct config_key *k = &keys[i];
		char opt[64];

		snprintf(opt, sizeof(opt), "%c%c%s--%s%s%s", k->short_opt ? '-' : ' ',
		         k->short_opt ? k->short_opt : ' ', k->short_opt ? ", " : "  ", k->name,
		         k->arg ? " " : "", k->arg ? k->arg : "");
		fprintf(f, "  %-30s %s\n", opt, k->help);
	}
	fputs("\nKeys of FILE's [global] section, as the long options:", f);
	for (size_t i = 0; i < K_COUNT; i++) {
		if (!keys[i].cli_only) {
			fprintf(f, " %s", keys[i].name);
		}
	}
	fputc('\n', f);
}
