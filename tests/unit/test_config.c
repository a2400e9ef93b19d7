/*
 * Configuration: export/import specs, single keys, INI texts, argv with -f,
 * derived paths. Tables of {input, expected}, good and malformed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge/config.h"
#include "bridge/util.h"

#define P107                                                                                       \
	"/0123456789012345678901234567890123456789012345678901234567890123456789012345678901"      \
	"234567890123456789012345"
#define P108 P107 "6"

static void check_err(int rc, int want, const char *err, const char *has, const char *what)
{
	if (rc != want) {
		fail_msg("%s: rc %d, expected %d (err: %s)", what, rc, want, err);
	}
	if (has && !strstr(err, has)) {
		fail_msg("%s: error \"%s\" lacks \"%s\"", what, err, has);
	}
}

/* Export specs ------------------------------------------------------------------------------- */

static const struct {
	const char *spec;
	int rc;
	const char *name, *path;
	uint32_t device_id, config_size;
	uint64_t pool;
	const char *err_has; /* for refusals */
} export_cases[] = {
    {"disk0=vhost-user:/run/qsd/disk0.sock", 0, "disk0", "/run/qsd/disk0.sock", 0, 0, 0, NULL},
    {"disk0=vhost-user:/s,type=blk", 0, "disk0", "/s", 2, 60, 0, NULL},
    {"n=vhost-user:/s,type=net", 0, "n", "/s", 1, 12, 0, NULL},
    {"c=vhost-user:/s,type=can", 0, "c", "/s", 36, 2, 0, NULL},
    {"g=vhost-user:/s,type=gpu", 0, "g", "/s", 16, 16, 0, NULL},
    {"i=vhost-user:/s,type=input", 0, "i", "/s", 18, 136, 0, NULL},
    {"r=vhost-user:/s,type=rng,pool=1M", 0, "r", "/s", 4, 0, 1 << 20, NULL},
    {"d=vhost-user:/s,type=blk,config-size=32", 0, "d", "/s", 2, 32, 0, NULL},
    {"d=vhost-user:/s,config-size=8,type=blk", 0, "d", "/s", 2, 8, 0, NULL},
    {"d=vhost-user:/s,config-size=0,type=blk", 0, "d", "/s", 2, 0, 0, NULL},
    {"d=vhost-user:/s,type=99", 0, "d", "/s", 99, 0, 0, NULL},
    {"d=vhost-user:/s,config-size=256", 0, "d", "/s", 0, 256, 0, NULL},
    {"d=vhost-user:/s,pool=64K", 0, "d", "/s", 0, 0, 64 << 10, NULL},
    {"d=vhost-user:/s,pool=1G", 0, "d", "/s", 0, 0, 1 << 30, NULL},
    {"d=vhost-user:/a,,b.sock,type=blk", 0, "d", "/a,b.sock", 2, 60, 0, NULL},
    {"d=vhost-user:rel.sock", 0, "d", "rel.sock", 0, 0, 0, NULL},
    {"A.b_c-9=vhost-user:/s", 0, "A.b_c-9", "/s", 0, 0, 0, NULL},
    {"d=vhost-user:" P107, 0, "d", P107, 0, 0, 0, NULL},
    {"d=vhost-user:" P108, -EINVAL, NULL, NULL, 0, 0, 0, "path of 1..107"},
    {"disk0", -EINVAL, NULL, NULL, 0, 0, 0, "NAME="},
    {"=vhost-user:/s", -EINVAL, NULL, NULL, 0, 0, 0, "bad name"},
    {"di sk=vhost-user:/s", -EINVAL, NULL, NULL, 0, 0, 0, "bad name"},
    {"a/b=vhost-user:/s", -EINVAL, NULL, NULL, 0, 0, 0, "bad name"},
    {"1234567890123456789012345678901234567890123456789012345678901234=vhost-user:/s", -EINVAL,
     NULL, NULL, 0, 0, 0, "bad name"},
    {"d=file:/img", -EINVAL, NULL, NULL, 0, 0, 0, "unknown backend"},
    {"d=vhost-user:", -EINVAL, NULL, NULL, 0, 0, 0, "path"},
    {"d=", -EINVAL, NULL, NULL, 0, 0, 0, "unknown backend"},
    {"d=vhost-user:/s,foo=1", -EINVAL, NULL, NULL, 0, 0, 0, "unknown option 'foo'"},
    {"d=vhost-user:/s,type=blk,type=net", -EINVAL, NULL, NULL, 0, 0, 0, "given twice"},
    {"d=vhost-user:/s,type=floppy", -EINVAL, NULL, NULL, 0, 0, 0, "unknown device type"},
    {"d=vhost-user:/s,type=0", -EINVAL, NULL, NULL, 0, 0, 0, "unknown device type"},
    {"d=vhost-user:/s,type=256", -EINVAL, NULL, NULL, 0, 0, 0, "unknown device type"},
    {"d=vhost-user:/s,config-size=257", -EINVAL, NULL, NULL, 0, 0, 0, "config-size"},
    {"d=vhost-user:/s,config-size=-1", -EINVAL, NULL, NULL, 0, 0, 0, "config-size"},
    {"d=vhost-user:/s,config-size=1k", -EINVAL, NULL, NULL, 0, 0, 0, "config-size"},
    {"d=vhost-user:/s,pool=0", -EINVAL, NULL, NULL, 0, 0, 0, "pool"},
    {"d=vhost-user:/s,pool=63K", -EINVAL, NULL, NULL, 0, 0, 0, "pool"},
    {"d=vhost-user:/s,pool=2G", -EINVAL, NULL, NULL, 0, 0, 0, "pool"},
    {"d=vhost-user:/s,pool=lots", -EINVAL, NULL, NULL, 0, 0, 0, "pool"},
    {"d=vhost-user:/s,", -EINVAL, NULL, NULL, 0, 0, 0, "want KEY=VALUE"},
    {"d=vhost-user:/s,type", -EINVAL, NULL, NULL, 0, 0, 0, "want KEY=VALUE"},
    {"d=vhost-user:/s,type=", -EINVAL, NULL, NULL, 0, 0, 0, "want KEY=VALUE"},
    {"d=vhost-user:/s,=blk", -EINVAL, NULL, NULL, 0, 0, 0, "want KEY=VALUE"},
};

/* Plain tcp:// only on loopback unless allowed; tls:// needs its files. */
static void test_finish_security(void **state)
{
	static const struct {
		const char *key, *value;
		int plaintext_ok;
		const char *err_has; /* NULL: accepted */
	} rows[] = {
	    {"listen", "tcp://127.0.0.1:7800", 0, NULL},
	    {"listen", "tcp://[::1]:7800", 0, NULL},
	    {"listen", "tcp://localhost:7800", 0, NULL},
	    {"listen", "tcp://0.0.0.0:7800", 0, "plain tcp:// beyond loopback"},
	    {"listen", "tcp://[::]:7800", 0, "plain tcp:// beyond loopback"},
	    {"listen", "tcp://169.254.1.1:7800", 1, NULL},
	    {"import", "d=tcp://ecu-a:7800", 0, "import tcp://ecu-a:7800"},
	    {"import", "d=tcp://127.0.0.2:7800", 0, NULL},
	    {"import", "d=tls://ecu-a:7800", 1, "need --tls-cert"},
	    {"listen", "tls://[::]:7800", 0, "need --tls-cert"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct vb_config c;
		char err[512] = "";
		int rc;

		config_defaults(&c);
		c.allow_plaintext = rows[i].plaintext_ok;
		assert_int_equal(config_set(&c, "node", "n", err, sizeof(err)), 0);
		assert_int_equal(config_set(&c, rows[i].key, rows[i].value, err, sizeof(err)), 0);
		rc = config_finish(&c, err, sizeof(err));
		if (!rows[i].err_has ? rc != 0 : rc == 0 || !strstr(err, rows[i].err_has)) {
			fail_msg("%s=%s: rc %d, err '%s'", rows[i].key, rows[i].value, rc, err);
		}
	}
}

/* allow=: who may attach; checked as node names. */
static void test_export_allow(void **state)
{
	static const struct {
		const char *spec;
		int rc;
		unsigned n;
		const char *first, *last;
	} rows[] = {
	    {"d=vhost-user:/x", 0, 0, NULL, NULL},
	    {"d=vhost-user:/x,allow=ecu-b", 0, 1, "ecu-b", "ecu-b"},
	    {"d=vhost-user:/x,allow=ecu-b,class=bulk", 0, 1, "ecu-b", "ecu-b"},
	    {"d=vhost-user:/x,allow=ecu-b:rig.lab-3", 0, 2, "ecu-b", "rig.lab-3"},
	    {"d=vhost-user:/x,allow=", -EINVAL, 0, NULL, NULL},
	    {"d=vhost-user:/x,allow=a::b", -EINVAL, 0, NULL, NULL},
	    {"d=vhost-user:/x,allow=a:", -EINVAL, 0, NULL, NULL},
	    {"d=vhost-user:/x,allow=ecu b", -EINVAL, 0, NULL, NULL},
	    {"d=vhost-user:/x,allow=a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q", -EINVAL, 0, NULL, NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct vb_export e;
		char err[256] = "";
		int rc = config_parse_export(rows[i].spec, &e, err, sizeof(err));

		if (rc != rows[i].rc) {
			fail_msg("%s: rc %d, want %d (%s)", rows[i].spec, rc, rows[i].rc, err);
		}
		if (rc < 0) {
			assert_non_null(strstr(err, "allow"));
			continue;
		}
		assert_int_equal(e.nallow, rows[i].n);
		if (rows[i].n) {
			assert_string_equal(e.allow[0], rows[i].first);
			assert_string_equal(e.allow[rows[i].n - 1], rows[i].last);
		}
	}
}

/* Security keys: pins in both notations, allow-plaintext as flag and as INI value. */
static void test_security_keys(void **state)
{
	static const struct {
		const char *key, *value;
		int rc;
	} rows[] = {
	    {"tls-pin", "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0},
	    {"tls-pin", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF", 0},
	    {"tls-pin", "sha256//short", -EINVAL},
	    {"tls-pin", "0123456789abcdef", -EINVAL},
	    {"tls-pin", "sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EINVAL},
	    {"allow-plaintext", "yes", 0},
	    {"allow-plaintext", "maybe", -EINVAL},
	    {"tls-cert", "", -EINVAL},
	    {"tls-ca", "/etc/vbridge/ca.pem", 0},
	};
	struct vb_config c;
	char err[256];

	config_defaults(&c);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		int rc = config_set(&c, rows[i].key, rows[i].value, err, sizeof(err));

		if (rc != rows[i].rc) {
			fail_msg("%s=%s: rc %d, want %d (%s)", rows[i].key, rows[i].value, rc,
			         rows[i].rc, err);
		}
	}
	assert_int_equal(c.ntls_pins, 2);
	assert_int_equal(c.allow_plaintext, 1);
	assert_string_equal(c.tls_ca, "/etc/vbridge/ca.pem");
	assert_int_equal(config_set(&c, "allow-plaintext", "no", err, sizeof(err)), 0);
	assert_int_equal(c.allow_plaintext, 0);
	assert_int_equal(config_set(&c, "allow-plaintext", NULL, err, sizeof(err)), 0);
	assert_int_equal(c.allow_plaintext, 1);
}

static void test_export_specs(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(export_cases); i++) {
		struct vb_export e;
		char err[256] = "";
		int rc = config_parse_export(export_cases[i].spec, &e, err, sizeof(err));

		check_err(rc, export_cases[i].rc, err, export_cases[i].err_has,
		          export_cases[i].spec);
		if (rc < 0) {
			continue;
		}
		assert_string_equal(e.name, export_cases[i].name);
		assert_string_equal(e.path, export_cases[i].path);
		assert_int_equal(e.kind, VB_EXPORT_VHOST_USER);
		assert_int_equal(e.device_id, export_cases[i].device_id);
		assert_int_equal(e.config_size, export_cases[i].config_size);
		assert_int_equal(e.pool_size, export_cases[i].pool);
	}
}

/* Import specs ------------------------------------------------------------------------------- */

static const struct {
	const char *spec;
	int rc;
	const char *name, *source, *socket;
	const char *err_has;
} import_cases[] = {
    {"disk0=tcp://ecu-a:7800", 0, "disk0", "tcp://ecu-a:7800", "", NULL},
    {"d=tcp://10.0.0.1:1", 0, "d", "tcp://10.0.0.1:1", "", NULL},
    {"d=tcp://host.example:65535", 0, "d", "tcp://host.example:65535", "", NULL},
    {"d=tcp://[::1]:7800", 0, "d", "tcp://[::1]:7800", "", NULL},
    {"d=tcp://[fe80::1%veth0]:7800", 0, "d", "tcp://[fe80::1%veth0]:7800", "", NULL},
    {"d=tcp://[::ffff:10.0.0.1]:7800", 0, "d", "tcp://[::ffff:10.0.0.1]:7800", "", NULL},
    {"d=tcp://a:1,socket=/tmp/d.sock", 0, "d", "tcp://a:1", "/tmp/d.sock", NULL},
    {"d=tcp://a:1,socket=" P107, 0, "d", "tcp://a:1", P107, NULL},
    {"d=tcp://a:1,socket=" P108, -EINVAL, NULL, NULL, NULL, "socket"},
    {"d=tls://a:1", 0, "d", "tls://a:1", "", NULL},
    {"d=tsn://eth0/02:00:00:00:00:0a", 0, "d", "tsn://eth0/02:00:00:00:00:0a", "", NULL},
    {"d=tsn://vbb0/02:00:00:00:00:0A,class=audio", 0, "d", "tsn://vbb0/02:00:00:00:00:0A", "",
     NULL},
    {"d=tsn://eth0", -EINVAL, NULL, NULL, NULL, "want tsn://IFNAME/PEER-MAC"},
    {"d=tsn://eth0/01:00:5e:00:00:01", -EINVAL, NULL, NULL, NULL, "must be unicast"},
    {"d=tsn://eth0/02:00:00:00:00", -EINVAL, NULL, NULL, NULL, "want tsn://IFNAME/PEER-MAC"},
    {"d=tsn://a:b/02:00:00:00:00:0a", -EINVAL, NULL, NULL, NULL, "bad interface name"},
    {"d=tsn://0123456789abcdef/02:00:00:00:00:0a", -EINVAL, NULL, NULL, NULL, "bad interface name"},
    {"d=tsn:///02:00:00:00:00:0a", -EINVAL, NULL, NULL, NULL, "bad interface name"},
    {"d=tcp://a:1,class=video", 0, "d", "tcp://a:1", "", NULL},
    {"d=tcp://a:1,class=fast", -EINVAL, NULL, NULL, NULL, "class: want control"},
    {"d=udp://a:1", -EINVAL, NULL, NULL, NULL, "want tcp://"},
    {"d=a:1", -EINVAL, NULL, NULL, NULL, "want tcp://"},
    {"d=tcp://a", -EINVAL, NULL, NULL, NULL, "no :PORT"},
    {"d=tcp://a:", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://:7800", -EINVAL, NULL, NULL, NULL, "no host"},
    {"d=tcp://a:0", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://a:65536", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://a:99999999999999999999999", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://a:7800x", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://a:+80", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://a:80/x", -EINVAL, NULL, NULL, NULL, "bad port"},
    {"d=tcp://::1:7800", -EINVAL, NULL, NULL, NULL, "brackets"},
    {"d=tcp://[::1]7800", -EINVAL, NULL, NULL, NULL, "no :PORT"},
    {"d=tcp://[::1]", -EINVAL, NULL, NULL, NULL, "no :PORT"},
    {"d=tcp://[::1:7800", -EINVAL, NULL, NULL, NULL, "no ']'"},
    {"d=tcp://[zz::1]:80", -EINVAL, NULL, NULL, NULL, "bad IPv6 address"},
    {"d=tcp://[]:80", -EINVAL, NULL, NULL, NULL, "bad IPv6 address"},
    {"d=tcp://[10.0.0.1]:80", -EINVAL, NULL, NULL, NULL, "bad IPv6 address"},
    {"d=tcp://[fe80::1%]:80", -EINVAL, NULL, NULL, NULL, "zone"},
    {"d=tcp://[fe80::1%a/b]:80", -EINVAL, NULL, NULL, NULL, "zone"},
    {"d=tcp://a b:80", -EINVAL, NULL, NULL, NULL, "bad character"},
    {"d=tcp://a:1,foo=bar", -EINVAL, NULL, NULL, NULL, "unknown option 'foo'"},
    {"d=tcp://a:1,socket=", -EINVAL, NULL, NULL, NULL, "want KEY=VALUE"},
    {"d=tcp://a:1,socket=/x,socket=/y", -EINVAL, NULL, NULL, NULL, "given twice"},
    {"tcp://a:1", -EINVAL, NULL, NULL, NULL, "want NAME="},
    {"d=tcp://a:1,", -EINVAL, NULL, NULL, NULL, "want KEY=VALUE"},
    {"d:x=tcp://a:1", -EINVAL, NULL, NULL, NULL, "bad name"},
    {"d=tsn://e/02:00:00:00:00:0a,latency=5ms,late=drop,on-unsync=hold", 0, "d",
     "tsn://e/02:00:00:00:00:0a", "", NULL},
    {"d=tcp://a:1,latency=5", -EINVAL, NULL, NULL, NULL, "want 0 or a duration"},
    {"d=tcp://a:1,latency=5 ms", -EINVAL, NULL, NULL, NULL, "want 0 or a duration"},
    {"d=tcp://a:1,latency=-5ms", -EINVAL, NULL, NULL, NULL, "want 0 or a duration"},
    {"d=tcp://a:1,latency=11s", -EINVAL, NULL, NULL, NULL, "up to 10s"},
    {"d=tcp://a:1,latency=99999999999999999999ns", -EINVAL, NULL, NULL, NULL, "duration"},
    {"d=tcp://a:1,latency=5min", -EINVAL, NULL, NULL, NULL, "duration"},
    {"d=tcp://a:1,latency=64:5ms", -EINVAL, NULL, NULL, NULL, "queue '64': want 0..63"},
    {"d=tcp://a:1,latency=x:5ms", -EINVAL, NULL, NULL, NULL, "queue 'x'"},
    {"d=tcp://a:1,latency=1:5ms/", -EINVAL, NULL, NULL, NULL, NULL},
    {"d=tcp://a:1,latency=1:5ms//2:1ms", -EINVAL, NULL, NULL, NULL, "want VALUE or QUEUE:VALUE"},
    {"d=tcp://a:1,latency=1:5ms/2", -EINVAL, NULL, NULL, NULL, "want QUEUE:VALUE"},
    {"d=tcp://a:1,late=later", -EINVAL, NULL, NULL, NULL, "want deliver or drop"},
    {"d=tcp://a:1,late=1:later", -EINVAL, NULL, NULL, NULL, "want deliver or drop"},
    {"d=tcp://a:1,on-unsync=wait", -EINVAL, NULL, NULL, NULL, "want deliver or hold"},
};

/* latency=, late= and on-unsync= land per queue; items apply in order. */
static void test_import_timing(void **state)
{
	struct vb_import im;
	char err[256] = "";

	assert_int_equal(config_parse_import("d=tcp://a:1", &im, err, sizeof(err)), 0);
	for (int q = 0; q < VB_MAX_QUEUES; q++) {
		assert_int_equal(im.latency_ns[q], 0);
	}
	assert_int_equal(im.late_drop, 0);
	assert_int_equal(im.on_unsync_hold, 0);

	assert_int_equal(config_parse_import("d=tcp://a:1,latency=5ms,late=drop,on-unsync=hold",
	                                     &im, err, sizeof(err)),
	                 0);
	for (int q = 0; q < VB_MAX_QUEUES; q++) {
		assert_int_equal(im.latency_ns[q], 5000000);
	}
	assert_int_equal(im.late_drop, ~0ull);
	assert_int_equal(im.on_unsync_hold, 1);

	assert_int_equal(config_parse_import("d=tcp://a:1,latency=*:250us/1:0/63:1s,late=2:drop/"
	                                     "2:deliver/3:drop,on-unsync=deliver",
	                                     &im, err, sizeof(err)),
	                 0);
	assert_int_equal(im.latency_ns[0], 250000);
	assert_int_equal(im.latency_ns[1], 0);
	assert_int_equal(im.latency_ns[2], 250000);
	assert_int_equal(im.latency_ns[63], 1000000000);
	assert_int_equal(im.late_drop, 1ull << 3);
	assert_int_equal(im.on_unsync_hold, 0);

	assert_int_equal(config_parse_import("d=tcp://a:1,latency=0,late=*:drop/0:deliver", &im,
	                                     err, sizeof(err)),
	                 0);
	assert_int_equal(im.latency_ns[5], 0);
	assert_int_equal(im.late_drop, ~1ull);
	assert_int_equal(config_parse_import("d=tcp://a:1,latency=10s", &im, err, sizeof(err)), 0);
	assert_int_equal(im.latency_ns[0], 10000000000ull);
	assert_int_equal(config_parse_import("d=tcp://a:1,latency=1500ns", &im, err, sizeof(err)),
	                 0);
	assert_int_equal(im.latency_ns[0], 1500);
}

static void test_import_specs(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(import_cases); i++) {
		struct vb_import im;
		char err[256] = "";
		int rc = config_parse_import(import_cases[i].spec, &im, err, sizeof(err));

		check_err(rc, import_cases[i].rc, err, import_cases[i].err_has,
		          import_cases[i].spec);
		if (rc < 0) {
			continue;
		}
		assert_string_equal(im.name, import_cases[i].name);
		assert_string_equal(im.source, import_cases[i].source);
		assert_string_equal(im.socket, import_cases[i].socket);
	}
}

/* Single keys through config_set ------------------------------------------------------------- */

static const struct {
	const char *key, *value;
	int rc;
	const char *err_has;
} set_cases[] = {
    {"node", "ecu-a", 0, NULL},
    {"node", "", -EINVAL, "node: : want 1..63"},
    {"node", "ecu a", -EINVAL, "node: ecu a: want"},
    {"node", "1234567890123456789012345678901234567890123456789012345678901234", -EINVAL, "node"},
    {"node", NULL, -EINVAL, "node: value required"},
    {"listen", "tcp://0.0.0.0:7800", 0, NULL},
    {"listen", "tcp://[::]:7800", 0, NULL},
    {"listen", "tcp://127.0.0.1:0", 0, NULL},
    {"listen", "tcp://x:99999", -EINVAL, "listen: tcp://x:99999: bad port"},
    {"listen", "udp://x:1", -EINVAL, "want tcp://"},
    {"listen", "tsn://eth0", 0, NULL},
    {"listen", "tsn://eth0/02:00:00:00:00:0a", -EINVAL, "listen on tsn://IFNAME"},
    {"tsn-vlan", "5", 0, NULL},
    {"tsn-vlan", "0", 0, NULL},
    {"tsn-vlan", "none", 0, NULL},
    {"tsn-vlan", "4095", -EINVAL, "want none or a VLAN id"},
    {"ptp4l", "/var/run/ptp4l", 0, NULL},
    {"ptp4l", "none", 0, NULL},
    {"ptp4l", "local", 0, NULL},
    {"ptp4l", "", -EINVAL, "want none, local or a socket path"},
    {"ptp4l", P108, -EINVAL, "want none, local or a socket path"},
    {"ptp-domain", "0", 0, NULL},
    {"ptp-domain", "255", 0, NULL},
    {"ptp-domain", "256", -EINVAL, "want a PTP domain number"},
    {"ptp-transport-specific", "auto", 0, NULL},
    {"ptp-transport-specific", "1", 0, NULL},
    {"ptp-transport-specific", "16", -EINVAL, "want auto or 0..15"},
    {"ptp-max-offset", "100us", 0, NULL},
    {"ptp-max-offset", "1s", 0, NULL},
    {"ptp-max-offset", "0", -EINVAL, "want a duration from 1ns"},
    {"ptp-max-offset", "2s", -EINVAL, "want a duration from 1ns"},
    {"ptp-max-offset", "100", -EINVAL, "want a duration from 1ns"},
    {"time-trace", "/tmp/t.csv", 0, NULL},
    {"release-spin", "0", 0, NULL},
    {"release-spin", "150us", 0, NULL},
    {"release-spin", "2ms", -EINVAL, "want 0 or a duration up to 1ms"},
    {"export", "disk0=vhost-user:/s", 0, NULL},
    {"export", "disk0", -EINVAL, "export: disk0: want NAME="},
    {"import", "disk1=tcp://a:1", 0, NULL},
    {"import", "disk1=tcp://a", -EINVAL, "import: disk1=tcp://a: no :PORT"},
    {"runtime-dir", "/run/x", 0, NULL},
    {"runtime-dir", "run/x", -EINVAL, "absolute"},
    {"runtime-dir", "", -EINVAL, "absolute"},
    {"runtime-dir", P108, -EINVAL, "absolute"},
    {"control", "/run/x/ctl.sock", 0, NULL},
    {"control", "", -EINVAL, "control"},
    {"control", P108, -EINVAL, "control"},
    {"pool-size", "16M", 0, NULL},
    {"pool-size", "65536", 0, NULL},
    {"pool-size", "1k", -EINVAL, "pool-size: 1k: want a size"},
    {"pool-size", "2G", -EINVAL, "pool-size"},
    {"pool-size", "-1", -EINVAL, "pool-size"},
    {"pool-size", " 16M", -EINVAL, "pool-size"},
    {"pool-size", "16Q", -EINVAL, "pool-size"},
    {"max-queue-size", "1024", 0, NULL},
    {"max-queue-size", "1", 0, NULL},
    {"max-queue-size", "32768", 0, NULL},
    {"max-queue-size", "1000", -EINVAL, "power of 2"},
    {"max-queue-size", "0", -EINVAL, "power of 2"},
    {"max-queue-size", "65536", -EINVAL, "power of 2"},
    {"max-queue-size", "1k", -EINVAL, "power of 2"},
    {"max-msg", "4M", 0, NULL},
    {"max-msg", "4096", 0, NULL},
    {"max-msg", "4095", -EINVAL, "max-msg"},
    {"max-msg", "65M", -EINVAL, "max-msg"},
    {"nodes", "x", -EINVAL, "unknown key 'nodes'"},
    {"verbose", NULL, -EINVAL, "unknown key 'verbose'"},
    {"file", "/etc/x", -EINVAL, "unknown key 'file'"},
};

static void test_set_keys(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(set_cases); i++) {
		struct vb_config c;
		char what[256], err[512] = "";
		int rc;

		config_defaults(&c);
		rc = config_set(&c, set_cases[i].key, set_cases[i].value, err, sizeof(err));
		snprintf(what, sizeof(what), "%s=%s", set_cases[i].key,
		         set_cases[i].value ? set_cases[i].value : "(null)");
		check_err(rc, set_cases[i].rc, err, set_cases[i].err_has, what);
	}
}

static void test_set_values(void **state)
{
	struct vb_config c;
	char err[256];

	config_defaults(&c);
	assert_int_equal(config_set(&c, "pool-size", "32M", err, sizeof(err)), 0);
	assert_int_equal(c.pool_size, 32u << 20);
	assert_int_equal(config_set(&c, "max-queue-size", "256", err, sizeof(err)), 0);
	assert_int_equal(c.max_queue_size, 256);
	assert_int_equal(config_set(&c, "max-msg", "1M", err, sizeof(err)), 0);
	assert_int_equal(c.max_msg, 1u << 20);
	assert_int_equal(config_set(&c, "runtime-dir", "/run/vb//", err, sizeof(err)), 0);
	assert_string_equal(c.runtime_dir, "/run/vb");
	assert_int_equal(config_set(&c, "runtime-dir", "/", err, sizeof(err)), 0);
	assert_string_equal(c.runtime_dir, "/");
	/* A refused value leaves the old one. */
	assert_int_equal(config_set(&c, "max-msg", "1G", err, sizeof(err)), -EINVAL);
	assert_int_equal(c.max_msg, 1u << 20);
}

static void test_lists(void **state)
{
	struct vb_config c;
	char v[64], err[256];

	config_defaults(&c);
	for (unsigned i = 0; i < VB_MAX_LISTEN; i++) {
		snprintf(v, sizeof(v), "tcp://127.0.0.1:%u", 7800 + i);
		assert_int_equal(config_set(&c, "listen", v, err, sizeof(err)), 0);
	}
	assert_int_equal(config_set(&c, "listen", "tcp://127.0.0.1:9000", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "more than 8"));
	assert_int_equal(c.nlisten, VB_MAX_LISTEN);

	config_defaults(&c);
	assert_int_equal(config_set(&c, "listen", "tcp://a:1", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "listen", "tcp://a:1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "given twice"));

	for (unsigned i = 0; i < VB_MAX_EXPORTS; i++) {
		snprintf(v, sizeof(v), "e%u=vhost-user:/s%u", i, i);
		assert_int_equal(config_set(&c, "export", v, err, sizeof(err)), 0);
	}
	assert_int_equal(config_set(&c, "export", "x=vhost-user:/s", err, sizeof(err)), -EINVAL);
	assert_int_equal(c.nexports, VB_MAX_EXPORTS);
	assert_int_equal(config_set(&c, "import", "e1=tcp://a:1", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "e1=tcp://b:2", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "import e1 already defined"));

	config_defaults(&c);
	assert_int_equal(config_set(&c, "export", "d=vhost-user:/a", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "export", "d=vhost-user:/b", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "export d already defined"));
}

/* INI texts ---------------------------------------------------------------------------------- */

static const char good_ini[] = "; vbridged configuration\n"
                               "# comments both ways\n"
                               "\n"
                               "[global]\n"
                               "node = ecu-a\n"
                               "  listen = tcp://[::]:7800\n"
                               "\tlisten=tcp://0.0.0.0:7801\n"
                               "export = disk0=vhost-user:/run/qsd/disk0.sock,type=blk ; trailing\n"
                               "export = rng0=vhost-user:/run/rng.sock,type=rng\n"
                               "import = cam0=tcp://ecu-c:7800,socket=/run/cam0.sock\n"
                               "runtime-dir = /run/vb\n"
                               "pool-size = 8M\n"
                               "max-queue-size = 256\n"
                               "max-msg = 1M\n"
                               "control = /run/vb/ctl.sock\n";

static void test_ini_good(void **state)
{
	struct vb_config c;
	char err[512] = "";

	config_defaults(&c);
	assert_int_equal(
	    config_parse_ini(&c, good_ini, strlen(good_ini), "t.conf", err, sizeof(err)), 0);
	assert_string_equal(c.node, "ecu-a");
	assert_int_equal(c.nlisten, 2);
	assert_string_equal(c.listen[0], "tcp://[::]:7800");
	assert_string_equal(c.listen[1], "tcp://0.0.0.0:7801");
	assert_int_equal(c.nexports, 2);
	assert_string_equal(c.exports[0].path, "/run/qsd/disk0.sock");
	assert_int_equal(c.exports[0].device_id, 2);
	assert_int_equal(c.exports[1].device_id, 4);
	assert_int_equal(c.nimports, 1);
	assert_string_equal(c.imports[0].socket, "/run/cam0.sock");
	assert_string_equal(c.runtime_dir, "/run/vb");
	assert_int_equal(c.pool_size, 8u << 20);
	assert_int_equal(c.max_queue_size, 256);
	assert_int_equal(c.max_msg, 1u << 20);
	assert_string_equal(c.control, "/run/vb/ctl.sock");
}

static const struct {
	const char *what, *text;
	int rc;
	const char *err_has;
	const char *node; /* expected node on success, or NULL */
} ini_cases[] = {
    {"empty", "", 0, NULL, ""},
    {"only comments", "; a\n# b\n\n", 0, NULL, ""},
    {"keys before any section", "node = pre\n", 0, NULL, "pre"},
    {"CRLF", "[global]\r\nnode = crlf\r\n", 0, NULL, "crlf"},
    {"no final newline", "[global]\nnode = last", 0, NULL, "last"},
    {"inline comment", "[global]\nnode = a ; comment\n", 0, NULL, "a"},
    {"indented key is no continuation", "[global]\nnode = a\n    max-msg = 1M\n", 0, NULL, "a"},
    {"section twice", "[global]\nnode = a\n[global]\nmax-msg = 1M\n", 0, NULL, "a"},
    {"unknown key", "[global]\nnode = a\nnodes = b\n", -EINVAL, "t.conf:3: unknown key 'nodes'",
     NULL},
    {"command-line-only key", "[global]\nverbose = 1\n", -EINVAL, "t.conf:2: unknown key 'verbose'",
     NULL},
    {"file key", "[global]\nfile = /x\n", -EINVAL, "t.conf:2: unknown key 'file'", NULL},
    {"unknown section", "[global]\nnode = a\n\n[port eth0]\nx = 1\n", -EINVAL,
     "t.conf:4: unknown section [port eth0]", NULL},
    {"empty unknown section", "[global]\nnode = a\n[extra]\n", -EINVAL,
     "t.conf:3: unknown section [extra]", NULL},
    {"section with spaces", "[ global ]\nnode = a\n", -EINVAL, "t.conf:1: unknown section", NULL},
    {"section without ]", "[global\nnode = a\n", -EINVAL, "t.conf:1: section header without", NULL},
    {"bad value", "[global]\nmax-queue-size = 1000\n", -EINVAL,
     "t.conf:2: max-queue-size: 1000: want a power of 2", NULL},
    {"empty value", "[global]\nnode =\n", -EINVAL, "t.conf:2: node: : want", NULL},
    {"bad export", "[global]\n\nexport = d=file:/x\n", -EINVAL,
     "t.conf:3: export: d=file:/x: unknown backend", NULL},
    {"single key twice", "[global]\nnode = a\nnode = b\n", -EINVAL, "t.conf:3: node given twice",
     NULL},
    {"repeated listen", "listen = tcp://a:1\nlisten = tcp://a:2\nlisten = tcp://a:3\n", 0, NULL,
     ""},
    {"export name twice", "export = d=vhost-user:/a\nexport = d=vhost-user:/b\n", -EINVAL,
     "t.conf:2: export: d=vhost-user:/b: export d already defined", NULL},
    {"syntax error", "[global]\nnode a\n", -EINVAL, "t.conf:2: syntax error", NULL},
    {"syntax error before a bad key", "[global]\njunk\nnodes = a\n", -EINVAL,
     "t.conf:2: syntax error", NULL},
    {"bad key before a syntax error", "[global]\nnodes = a\njunk\n", -EINVAL,
     "t.conf:2: unknown key", NULL},
    {"first error wins", "[global]\nmax-msg = 1\nnode = a b\n", -EINVAL, "t.conf:2: max-msg", NULL},
};

static void test_ini_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(ini_cases); i++) {
		struct vb_config c;
		char err[512] = "";
		int rc;

		config_defaults(&c);
		rc = config_parse_ini(&c, ini_cases[i].text, strlen(ini_cases[i].text), "t.conf",
		                      err, sizeof(err));
		check_err(rc, ini_cases[i].rc, err, ini_cases[i].err_has, ini_cases[i].what);
		if (rc == 0 && ini_cases[i].node) {
			assert_string_equal(c.node, ini_cases[i].node);
		}
	}
}

static void test_ini_bounds(void **state)
{
	struct vb_config c;
	char err[512] = "";
	char text[600];
	static const char part[] = "node = abcdef";

	/* The length bounds the text: no terminator needed, none read past. */
	char *heap = malloc(sizeof(part) - 1);

	assert_non_null(heap);
	memcpy(heap, part, sizeof(part) - 1);
	config_defaults(&c);
	assert_int_equal(config_parse_ini(&c, heap, 8, "t.conf", err, sizeof(err)), 0);
	assert_string_equal(c.node, "a");
	config_defaults(&c);
	assert_int_equal(config_parse_ini(&c, heap, sizeof(part) - 1, "t.conf", err, sizeof(err)),
	                 0);
	assert_string_equal(c.node, "abcdef");
	free(heap);

	/* A line over inih's buffer is refused, not split into two lines. */
	snprintf(text, sizeof(text), "[global]\nnode = a\ncontrol = /%0250d\nmax-msg = 1M\n", 0);
	config_defaults(&c);
	assert_int_equal(config_parse_ini(&c, text, strlen(text), "t.conf", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "t.conf:3: line longer than"));
	assert_int_equal(c.max_msg, 4u << 20); /* nothing after the error applied */

	/* A NUL inside the text is an error, not an end of file. */
	static const char nul[] = "[global]\nnode = a\0b\nmax-msg = 1M\n";

	config_defaults(&c);
	assert_int_equal(config_parse_ini(&c, nul, sizeof(nul) - 1, "t.conf", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "t.conf:2: NUL byte"));
}

/*
 * Found by tests/fuzz/fuzz_config: a line holding a NUL and longer than
 * inih's line buffer was copied whole into that buffer (a stack overflow
 * inside ini_parse_stream). It must be refused like any NUL line.
 */
static void test_ini_long_nul_line(void **state)
{
	static struct vb_config c;
	static char text[1 << 16];
	char err[512] = "";
	size_t n = 0;

	n += (size_t)snprintf(text, sizeof(text), "[global]\nnode = a");
	memset(text + n, 'b', sizeof(text) - n - 32);
	text[n + 10] = '\0';
	n = sizeof(text) - 32;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\nmax-msg = 1M\n");
	config_defaults(&c);
	assert_int_equal(config_parse_ini(&c, text, n, "t.conf", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.conf:2: NUL byte"));
	assert_int_equal(c.max_msg, 4u << 20);
}

/* Command line ------------------------------------------------------------------------------- */

static char tmpfile_path[64];

static void write_tmp(const char *text)
{
	int fd;

	strcpy(tmpfile_path, "/tmp/test_config.XXXXXX");
	fd = mkstemp(tmpfile_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int parse_list(struct vb_config *c, char *err, size_t errlen, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"vbridged";
	while (*args && argc < 31) {
		argv[argc++] = (char *)*args++;
	}
	argv[argc] = NULL;
	config_defaults(c);
	return config_parse_args(c, argc, argv, err, errlen);
}

#define parse_argv(c, err, errlen, ...)                                                            \
	parse_list((c), (err), (errlen), (const char *const[]){__VA_ARGS__})

static void test_args_file_then_flags(void **state)
{
	struct vb_config c;
	char err[512] = "";

	write_tmp("[global]\n"
	          "node = file-node\n"
	          "runtime-dir = /tmp/from-file\n"
	          "listen = tcp://127.0.0.1:7800\n"
	          "export = disk0=vhost-user:/run/qsd/disk0.sock,type=blk\n"
	          "max-msg = 1M\n");
	/* -f comes after --node: the file is still read first, the flag still wins. */
	assert_int_equal(parse_argv(&c, err, sizeof(err), "-d", "--node", "cli-node", "-v", "-v",
	                            "-f", tmpfile_path, "--listen", "tcp://127.0.0.1:7801",
	                            "--max-msg=2M", "--import", "cam=tcp://[::1]:7800", NULL),
	                 0);
	unlink(tmpfile_path);
	assert_string_equal(c.file, tmpfile_path);
	assert_string_equal(c.node, "cli-node");
	assert_string_equal(c.runtime_dir, "/tmp/from-file");
	assert_int_equal(c.nlisten, 2);
	assert_string_equal(c.listen[0], "tcp://127.0.0.1:7800");
	assert_string_equal(c.listen[1], "tcp://127.0.0.1:7801");
	assert_int_equal(c.nexports, 1);
	assert_int_equal(c.nimports, 1);
	assert_int_equal(c.max_msg, 2u << 20);
	assert_int_equal(c.log_stderr, 1);
	assert_int_equal(c.verbose, 2);
	assert_int_equal(c.check_only, 0);

	/* Later flags override earlier ones; short options bundle. */
	assert_int_equal(
	    parse_argv(&c, err, sizeof(err), "-dvn", "--node", "a", "--node", "b", NULL), 0);
	assert_string_equal(c.node, "b");
	assert_int_equal(c.check_only, 1);
	assert_int_equal(c.verbose, 1);
	assert_string_equal(c.file, "");
}

static const struct {
	const char *what;
	const char *argv[6];
	int rc;
	const char *err_has;
} arg_cases[] = {
    {"no arguments", {NULL}, 0, NULL},
    {"unknown long option", {"--bogus", NULL}, -EINVAL, "unknown or ambiguous option --bogus"},
    {"unknown short option", {"-x", NULL}, -EINVAL, "unknown option -x"},
    {"missing argument, long", {"--node", NULL}, -EINVAL, "--node needs an argument"},
    {"missing argument, short", {"-f", NULL}, -EINVAL, "-f needs an argument"},
    {"argument to a flag", {"--verbose=3", NULL}, -EINVAL, "--verbose takes no argument"},
    {"stray argument", {"-d", "extra", NULL}, -EINVAL, "unexpected argument 'extra'"},
    {"bad value", {"--max-queue-size", "3", NULL}, -EINVAL, "max-queue-size: 3: want"},
    {"missing file",
     {"-f", "/nonexistent/vbridged.conf", NULL},
     -EINVAL,
     "/nonexistent/vbridged.conf: No such file"},
    {"directory as file", {"-f", "/tmp", NULL}, -EINVAL, "not a regular file"},
    {"file keys as flags", {"--pool-size", "32M", "--runtime-dir", "/tmp/x", NULL}, 0, NULL},
    {"abbreviated long option", {"--runtime", "/tmp/y", NULL}, 0, NULL},
    {"bad value before --help", {"--node", "a b", "--help", NULL}, 1, NULL},
    {"--version", {"--version", NULL}, 1, NULL},
};

/* --help and --version print to stdout: keep the test output readable. */
static int parse_quiet(struct vb_config *c, char *err, size_t errlen, const char *const *args)
{
	int saved, null, rc;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	null = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && null >= 0);
	dup2(null, STDOUT_FILENO);
	rc = parse_list(c, err, errlen, args);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(null);
	return rc;
}

static void test_args_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(arg_cases); i++) {
		struct vb_config c;
		char err[512] = "";
		int rc = parse_quiet(&c, err, sizeof(err), arg_cases[i].argv);

		check_err(rc, arg_cases[i].rc, err, arg_cases[i].err_has, arg_cases[i].what);
	}
}

static void test_args_file_errors(void **state)
{
	struct vb_config c;
	char err[512] = "";

	write_tmp("[global]\nnode = a\nmax-queue-size = 7\n");
	assert_int_equal(parse_argv(&c, err, sizeof(err), "-f", tmpfile_path, NULL), -EINVAL);
	unlink(tmpfile_path);
	assert_non_null(strstr(err, tmpfile_path));
	assert_non_null(strstr(err, ":3: max-queue-size: 7:"));
}

/* config_finish -------------------------------------------------------------------------- */

static void test_finish_defaults(void **state)
{
	struct vb_config c;
	char err[512] = "", host[256];

	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_string_equal(c.runtime_dir, "/run/vbridge");
	assert_int_equal(c.pool_size, 16u << 20);
	assert_int_equal(c.max_queue_size, 1024);
	assert_int_equal(c.max_msg, 4u << 20);
	assert_string_equal(c.control, "");
	assert_int_equal(config_set(&c, "node", "n1", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "cam0=tcp://a:1", err, sizeof(err)), 0);
	assert_int_equal(
	    config_set(&c, "import", "cam1=tcp://a:1,socket=/x/c1.sock", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "export", "d0=vhost-user:/s", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "export", "d1=vhost-user:/s,pool=1M", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "pool-size", "2M", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_string_equal(c.control, "/run/vbridge/vbridged.sock");
	assert_string_equal(c.imports[0].socket, "/run/vbridge/cam0.sock");
	assert_string_equal(c.imports[1].socket, "/x/c1.sock");
	assert_int_equal(c.exports[0].pool_size, 2u << 20);
	assert_int_equal(c.exports[1].pool_size, 1u << 20);

	/* Derived from runtime-dir; explicit control kept. */
	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "runtime-dir", "/tmp/rd/", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "cam0=tcp://a:1", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_string_equal(c.control, "/tmp/rd/vbridged.sock");
	assert_string_equal(c.imports[0].socket, "/tmp/rd/cam0.sock");
	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "control", "/c.sock", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_string_equal(c.control, "/c.sock");

	/* The node name falls back to the hostname when that is a valid name. */
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	if (strlen(host) <= VB_NAME_MAX &&
	    strspn(host, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(host)) {
		assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
		assert_string_equal(c.node, host);
	}
}

static void test_finish_errors(void **state)
{
	struct vb_config c;
	char err[512] = "";
	/* 100 bytes: fits itself but not with "/vbridged.sock" appended. */
	static const char dir100[] =
	    "/0123456789012345678901234567890123456789012345678901234567890"
	    "12345678901234567890123456789012345678";

	assert_int_equal(strlen(dir100), 100);
	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "node", "n", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "runtime-dir", dir100, err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "control"));

	/* ... and with an explicit control the import socket is what does not fit. */
	assert_int_equal(config_set(&c, "control", "/c.sock", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "cam0=tcp://a:1", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "import cam0"));

	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "node", "n", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "a=tcp://h:1,socket=/s.sock", err, sizeof(err)),
	                 0);
	assert_int_equal(config_set(&c, "import", "b=tcp://h:1,socket=/s.sock", err, sizeof(err)),
	                 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "share socket /s.sock"));

	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "node", "n", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "import", "a=tcp://h:1,socket=/c.sock", err, sizeof(err)),
	                 0);
	assert_int_equal(config_set(&c, "control", "/c.sock", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "control socket"));

	/* Names unique even when the struct was filled by other means. */
	config_defaults(&c);
	c.allow_plaintext = 1; /* these cases use tcp:// to other hosts */
	assert_int_equal(config_set(&c, "node", "n", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "export", "d=vhost-user:/s", err, sizeof(err)), 0);
	c.exports[1] = c.exports[0];
	c.nexports = 2;
	assert_int_equal(config_finish(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "export d defined twice"));
}

/* Tables ------------------------------------------------------------------------------------- */

static void test_device_types(void **state)
{
	static const struct {
		const char *name;
		uint32_t id, size;
	} want[] = {
	    {"net", 1, 12},    {"blk", 2, 60},  {"console", 3, 12}, {"rng", 4, 0},
	    {"scsi", 8, 36},   {"gpu", 16, 16}, {"input", 18, 136}, {"vsock", 19, 8},
	    {"sound", 25, 16}, {"fs", 26, 40},  {"i2c", 34, 0},     {"can", 36, 2},
	    {"gpio", 41, 8},
	};

	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct vb_device_type *t = vb_device_type_by_name(want[i].name);

		assert_non_null(t);
		assert_int_equal(t->id, want[i].id);
		assert_int_equal(t->config_size, want[i].size);
		assert_ptr_equal(vb_device_type_by_id(want[i].id), t);
	}
	assert_null(vb_device_type_by_name("floppy"));
	assert_null(vb_device_type_by_name(""));
	assert_null(vb_device_type_by_id(0));
	assert_null(vb_device_type_by_id(5));
}

static void test_usage(void **state)
{
	static const char *const want[] = {
	    "vbridged [-d] [-v] [-n] [-f FILE] [--node NAME] [--listen URI]...\n"
	    "         [--export NAME=BACKEND]... [--import NAME=SOURCE[,socket=PATH]]...\n"
	    "         [--runtime-dir DIR] [--control PATH]\n"
	    "BACKEND  vhost-user:PATH     connect as frontend to a backend's socket\n"
	    "SOURCE   tcp://HOST:PORT     the export called NAME on that node\n",
	    "--node NAME",
	    "--listen URI",
	    "--export NAME=BACKEND",
	    "--import NAME=SOURCE",
	    "--runtime-dir DIR",
	    "--control PATH",
	    "--pool-size SIZE",
	    "--max-queue-size N",
	    "--max-msg SIZE",
	    "-d, --foreground",
	    "-v, --verbose",
	    "-n, --check",
	    "-f, --file FILE",
	    "--help",
	    "--version",
	    "Keys of FILE's [global] section, as the long options: node listen export import "
	    "runtime-dir control pool-size max-queue-size max-msg tls-cert tls-key tls-ca tls-pin "
	    "allow-plaintext tsn-vlan ptp4l ptp-domain ptp-transport-specific ptp-max-offset "
	    "time-trace release-spin\n",
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_usage(f);
	fclose(f);
	assert_true(strncmp(buf, want[0], strlen(want[0])) == 0);
	for (size_t i = 1; i < ARRAY_SIZE(want); i++) {
		if (!strstr(buf, want[i])) {
			fail_msg("usage lacks \"%s\"", want[i]);
		}
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_export_specs),
	    cmocka_unit_test(test_export_allow),
	    cmocka_unit_test(test_security_keys),
	    cmocka_unit_test(test_finish_security),
	    cmocka_unit_test(test_import_specs),
	    cmocka_unit_test(test_import_timing),
	    cmocka_unit_test(test_set_keys),
	    cmocka_unit_test(test_set_values),
	    cmocka_unit_test(test_lists),
	    cmocka_unit_test(test_ini_good),
	    cmocka_unit_test(test_ini_table),
	    cmocka_unit_test(test_ini_bounds),
	    cmocka_unit_test(test_ini_long_nul_line),
	    cmocka_unit_test(test_args_file_then_flags),
	    cmocka_unit_test(test_args_table),
	    cmocka_unit_test(test_args_file_errors),
	    cmocka_unit_test(test_finish_defaults),
	    cmocka_unit_test(test_finish_errors),
	    cmocka_unit_test(test_device_types),
	    cmocka_unit_test(test_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
