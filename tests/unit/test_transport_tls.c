/*
 * tls:// links over 127.0.0.1 on one event loop, with a test PKI made at
 * run time by the openssl CLI: a CA, a foreign CA, node certificates with
 * SAN DNS names, one with a CN only, an expired one, one with a wildcard.
 * Hostile peers are raw OpenSSL clients (no certificate, TLS 1.2 only, a
 * bad length prefix, EOF without close_notify) or raw sockets (a ClientHello
 * at 1 byte per second). What a listener refuses is only logged, so those
 * cases read the log (stderr, captured).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "tests/unit/harness.h"
#include "transport/tcp/tls.h"
#include "transport/transport.h"

#define MIB (1u << 20)

static struct vb_loop *loop;
static struct event *tick;
static char pki[64]; /* the test PKI's directory */
static char pin_a_b64[64], pin_a_hex[72], pin_b_b64[64], pin_b_hex[72];

/* --- loop helpers ------------------------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void run_until(bool (*done)(void *), void *arg, unsigned ms)
{
	uint64_t end = vb_now_ns() + (uint64_t)ms * 1000000u;

	while (!(done && done(arg)) && vb_now_ns() < end) {
		event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
	}
}

static void run_for(unsigned ms)
{
	run_until(NULL, NULL, ms);
}

/* --- the test PKI ------------------------------------------------------------------------- */

static const char pki_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "req() { openssl req \"$@\" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes 2>/dev/null; }\n"
    "mkca() { req -x509 -keyout $1.key -out $1.crt -subj /CN=$1 -days 30; }\n"
    /* node NAME CA DAYS CN [SAN] */
    "node() {\n"
    "  req -new -keyout $1.key -out $1.csr -subj \"/CN=$4\"\n"
    "  { [ -n \"$5\" ] && echo \"subjectAltName=$5\"\n"
    "    echo extendedKeyUsage=serverAuth,clientAuth; echo basicConstraints=CA:FALSE; } > $1.ext\n"
    "  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -days $3 -extfile $1.ext \\\n"
    "    -out $1.crt 2>/dev/null\n"
    "}\n"
    "pin() { openssl x509 -in $1.crt -pubkey -noout | openssl pkey -pubin -outform der |\n"
    "  openssl dgst -sha256 -binary > $1.spki\n"
    "  { printf sha256//; openssl base64 -A < $1.spki; } > $1.pin64\n"
    "  od -An -v -tx1 < $1.spki | tr -d ' \\n' > $1.pinhex; }\n"
    "mkca ca; mkca fca\n"
    "node ecu-a ca 30 ecu-a-cn DNS:ecu-a,DNS:ecu-a.example\n"
    "node ecu-b ca 30 ecu-b DNS:ecu-b\n"
    "node ecu-a2 ca 30 ecu-a2 DNS:ecu-a2\n"
    "node cnonly ca 30 ecu-cn\n"
    "node expired ca -1 ecu-x DNS:ecu-x\n"
    "node foreign fca 30 ecu-a DNS:ecu-a\n"
    "node wild ca 30 ecu-w DNS:*.example\n"
    "pin ecu-a; pin ecu-b\n"
    "echo garbage > garbage.pem\n";

static void read_small(const char *name, char *buf, size_t len)
{
	char path[128];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", pki, name);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static int pki_make(void)
{
	char cmd[256];
	FILE *sh;

	snprintf(pki, sizeof(pki), "/tmp/vb-tls-test.XXXXXX");
	if (!mkdtemp(pki)) {
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "bash -s '%s'", pki);
	sh = popen(cmd, "w");
	if (!sh) {
		return -1;
	}
	fputs(pki_script, sh);
	return pclose(sh) == 0 ? 0 : -1;
}

static void pki_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	if (pki[0] && system(cmd) != 0) {
		fprintf(stderr, "could not remove %s\n", pki);
	}
}

static void pki_path(char *buf, size_t len, const char *name, const char *ext)
{
	snprintf(buf, len, "%s/%s.%s", pki, name, ext);
}

/* A context for node `name` (files name.crt/.key), trusting `ca` (ca.crt). */
static struct transport_tls *tls_for(const char *name, const char *ca, const char *const *pins,
                                     unsigned npins, unsigned timeout_ms)
{
	char cert[128], key[128], cafile[128], err[256] = "";
	struct transport_tls_config c = {.cert = cert,
	                                 .key = key,
	                                 .ca = cafile,
	                                 .pins = pins,
	                                 .npins = npins,
	                                 .handshake_timeout_ms = timeout_ms};
	struct transport_tls *tls;

	pki_path(cert, sizeof(cert), name, "crt");
	pki_path(key, sizeof(key), name, "key");
	pki_path(cafile, sizeof(cafile), ca, "crt");
	tls = transport_tls_new(&c, err, sizeof(err));
	if (!tls) {
		fprintf(stderr, "transport_tls_new(%s): %s\n", name, err);
	}
	assert_non_null(tls);
	return tls;
}

/* --- stderr capture: what a listener refuses is only logged ------------------------------- */

static int cap_saved = -1;
static char cap_path[96];
static char cap_text[16384];

static void capture_start(void)
{
	int fd;

	snprintf(cap_path, sizeof(cap_path), "%s/log.txt", pki);
	fflush(stderr);
	cap_saved = dup(2);
	fd = open(cap_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(cap_saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
}

/* Restores stderr, echoes what was logged, and returns it. */
static const char *capture_end(void)
{
	FILE *f;
	size_t n;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	cap_saved = -1;
	f = fopen(cap_path, "r");
	assert_non_null(f);
	n = fread(cap_text, 1, sizeof(cap_text) - 1, f);
	cap_text[n] = '\0';
	fclose(f);
	fputs(cap_text, stderr);
	return cap_text;
}

/* --- messages: [u32 len][u32 seq][pattern of (seq, offset)] ------------------------------- */

static uint8_t pattern(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static uint8_t *msg_make(size_t len, uint32_t seq)
{
	uint8_t *m = malloc(len);
	size_t i;

	assert_non_null(m);
	put_le32(m, (uint32_t)len);
	put_le32(m + 4, seq);
	for (i = 8; i < len; i++) {
		m[i] = pattern(seq, i);
	}
	return m;
}

static bool msg_ok(const uint8_t *m, size_t len, uint32_t seq)
{
	size_t i;

	if (len < TRANSPORT_MIN_MSG || get_le32(m) != len || get_le32(m + 4) != seq) {
		return false;
	}
	for (i = 8; i < len; i++) {
		if (m[i] != pattern(seq, i)) {
			return false;
		}
	}
	return true;
}

static int send_msg(struct transport *t, size_t len, uint32_t seq)
{
	uint8_t *m = msg_make(len, seq);
	struct iovec iov = {.iov_base = m, .iov_len = len};
	int rc = transport_send(t, &iov, 1);

	free(m);
	return rc;
}

/* --- an endpoint recording its upcalls ---------------------------------------------------- */

struct ep {
	struct transport *t;
	int accepts, ups, downs, writables, errors, echo_fail;
	char reason[320];
	char identity[256]; /* transport_peer_identity() when it came UP (or was accepted) */
	uint32_t rx;
	const size_t *sizes;
	size_t nsizes, sent;
	bool echo, pause_every, close_on_msg, close_on_accept;
};

static void ep_pump(struct ep *e)
{
	while (e->t && e->sent < e->nsizes && transport_writable(e->t)) {
		if (send_msg(e->t, e->sizes[e->sent], (uint32_t)e->sent) < 0) {
			e->errors++;
			return;
		}
		e->sent++;
	}
}

static void ep_close(struct ep *e)
{
	transport_close(e->t);
	e->t = NULL;
}

static void on_message(struct transport *t, const uint8_t *buf, size_t len, void *arg)
{
	struct ep *e = arg;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	if (t != e->t || !msg_ok(buf, len, e->rx) || (e->sizes && len != e->sizes[e->rx])) {
		e->errors++;
	}
	e->rx++;
	if (e->echo) {
		if (transport_send(t, &iov, 1) < 0) {
			e->echo_fail++;
		}
		if (!transport_writable(t)) {
			transport_pause_rx(t, 1);
		}
	}
	if (e->pause_every) {
		transport_pause_rx(t, 1);
	}
	if (e->close_on_msg) {
		ep_close(e);
	}
}

static void on_state(struct transport *t, enum transport_state st, const char *reason, void *arg)
{
	struct ep *e = arg;

	if (t != e->t) {
		e->errors++;
	}
	if (st == TRANSPORT_UP) {
		e->ups++;
		snprintf(e->identity, sizeof(e->identity), "%s", transport_peer_identity(t));
		ep_pump(e);
		return;
	}
	e->downs++;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
}

static void on_writable(struct transport *t, void *arg)
{
	struct ep *e = arg;

	e->writables++;
	if (e->echo) {
		transport_pause_rx(t, 0);
	}
	ep_pump(e);
}

static const struct transport_upcalls ep_upcalls = {
    .on_message = on_message,
    .on_state = on_state,
    .on_writable = on_writable,
};

static void accept_cb(struct transport *t, void *arg)
{
	struct ep *e = arg;

	e->accepts++;
	if (e->t) {
		/* A further link while the first is kept: checked by its client, then closed. */
		transport_close(t);
		return;
	}
	e->t = t;
	snprintf(e->identity, sizeof(e->identity), "%s", transport_peer_identity(t));
	if (e->close_on_accept) {
		ep_close(e);
		return;
	}
	transport_set_upcalls(t, &ep_upcalls, e);
}

/* --- a listener and its peer -------------------------------------------------------------- */

struct pair {
	struct transport_listener *l;
	struct transport_tls *stls, *ctls;
	struct transport_params sp, cp;
	struct ep cli, srv;
};

static const struct transport_params params_default = {.max_msg = MIB, .tx_high_water = 256 * 1024};

static bool pair_settled(void *arg)
{
	struct pair *p = arg;

	return (p->srv.accepts > 0 && p->cli.ups > 0) || p->cli.downs > 0;
}

static int uri_port(const char *uri)
{
	const char *c = strrchr(uri, ':');

	assert_non_null(c);
	return atoi(c + 1);
}

/* Takes over the references stls and ctls (ctls may be NULL: no client yet). */
static void pair_listen(struct pair *p, struct transport_tls *stls, struct transport_tls *ctls)
{
	memset(p, 0, sizeof(*p));
	p->stls = stls;
	p->ctls = ctls;
	p->sp = p->cp = params_default;
	p->sp.tls = stls;
	p->cp.tls = ctls;
	assert_int_equal(
	    transport_listen(loop, "tls://127.0.0.1:0", &p->sp, accept_cb, &p->srv, &p->l), 0);
}

static void pair_connect(struct pair *p)
{
	assert_int_equal(transport_connect(loop, transport_listener_uri(p->l), &p->cp, &ep_upcalls,
	                                   &p->cli, &p->cli.t),
	                 0);
	run_until(pair_settled, p, 5000);
}

static void pair_open(struct pair *p, struct transport_tls *stls, struct transport_tls *ctls)
{
	pair_listen(p, stls, ctls);
	pair_connect(p);
	assert_int_equal(p->cli.downs, 0);
	assert_int_equal(p->cli.ups, 1);
	assert_int_equal(p->srv.accepts, 1);
	assert_non_null(p->srv.t);
}

static void pair_close(struct pair *p)
{
	ep_close(&p->cli);
	ep_close(&p->srv);
	transport_listener_free(p->l);
	transport_tls_free(p->stls);
	transport_tls_free(p->ctls);
	run_for(5);
}

static bool srv_down(void *arg)
{
	return ((struct pair *)arg)->srv.downs > 0;
}

static bool cli_down(void *arg)
{
	return ((struct pair *)arg)->cli.downs > 0;
}

static bool cli_got_all(void *arg)
{
	struct pair *p = arg;

	return p->cli.rx >= p->cli.nsizes || p->cli.errors || p->srv.errors || p->cli.downs;
}

/* --- a raw OpenSSL client (a peer we fully control) --------------------------------------- */

struct raw {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static int raw_socket(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

/* A client (or server) with node's certificate (or none), TLS up to max_version (0: any). */
static void raw_new_role(struct raw *r, const char *node, int max_version, bool server)
{
	char cert[128], key[128];

	r->fd = -1;
	r->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	assert_non_null(r->ctx);
	if (max_version) {
		assert_int_equal(SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(r->ctx, max_version), 1);
	}
	if (node) {
		pki_path(cert, sizeof(cert), node, "crt");
		pki_path(key, sizeof(key), node, "key");
		assert_int_equal(SSL_CTX_use_certificate_file(r->ctx, cert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(r->ctx, key, SSL_FILETYPE_PEM), 1);
	}
	r->ssl = SSL_new(r->ctx);
	assert_non_null(r->ssl);
	if (server) {
		SSL_set_accept_state(r->ssl);
	} else {
		SSL_set_connect_state(r->ssl);
	}
}

/* The client verifies nothing: these tests are about what the server does. */
static void raw_new(struct raw *r, const char *node, int max_version)
{
	raw_new_role(r, node, max_version, false);
}

/* Drives the handshake on r->fd against the loop. 1 done, 0 refused (or timed out). */
static int raw_handshake_fd(struct raw *r)
{
	uint64_t end = vb_now_ns() + 3000000000ull;
	int rc, err;

	SSL_set_fd(r->ssl, r->fd);
	while (vb_now_ns() < end) {
		rc = SSL_do_handshake(r->ssl);
		if (rc == 1) {
			return 1;
		}
		err = SSL_get_error(r->ssl, rc);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			return 0;
		}
		event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
	}
	return 0;
}

static int raw_handshake(struct raw *r, int port)
{
	r->fd = raw_socket(port);
	return raw_handshake_fd(r);
}

static void raw_write(struct raw *r, const void *buf, size_t len)
{
	assert_int_equal(SSL_write(r->ssl, buf, (int)len), (int)len);
}

/* Reads until the server closes or fails the connection; 1 if it did within ms. */
static int raw_wait_closed(struct raw *r, unsigned ms)
{
	uint64_t end = vb_now_ns() + (uint64_t)ms * 1000000u;
	char buf[256];
	int rc, err;

	while (vb_now_ns() < end) {
		rc = SSL_read(r->ssl, buf, sizeof(buf));
		if (rc <= 0) {
			err = SSL_get_error(r->ssl, rc);
			if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				return 1;
			}
		}
		event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
	}
	return 0;
}

/* close_notify first, or just the socket (an EOF without close_notify). */
static void raw_free(struct raw *r, bool notify)
{
	if (notify) {
		SSL_shutdown(r->ssl);
	}
	SSL_free(r->ssl);
	SSL_CTX_free(r->ctx);
	if (r->fd >= 0) {
		close(r->fd);
	}
	ERR_clear_error();
}

/* --- tests: parsers and contexts ---------------------------------------------------------- */

static void test_pin_parse(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint8_t first, last;
	} cases[] = {
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 0, 0x00, 0x1f},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0, 0x00, 0x1f},
	    {"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", 0, 0x00, 0x1f},
	    {"sha256//"
	     "//////////////////////////////////////////8=",
	     0, 0xff, 0xff},
	    /* the last character's two unused bits set: a second spelling of the same key */
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", -EINVAL, 0, 0},
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", -EINVAL, 0, 0},
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", -EINVAL, 0, 0},
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh==", -EINVAL, 0, 0},
	    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd.h8=", -EINVAL, 0, 0},
	    {"sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", -EINVAL, 0, 0},
	    {"sha1//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=a", -EINVAL, 0, 0},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", -EINVAL, 0, 0},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", -EINVAL, 0, 0},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", -EINVAL, 0, 0},
	    {"0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", -EINVAL, 0, 0},
	    {"", -EINVAL, 0, 0},
	};
	uint8_t pin[TLS_PIN_LEN];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(pin, 0xa5, sizeof(pin));
		assert_int_equal(tls_pin_parse(cases[i].in, strlen(cases[i].in), pin), cases[i].rc);
		if (cases[i].rc == 0) {
			assert_int_equal(pin[0], cases[i].first);
			assert_int_equal(pin[31], cases[i].last);
		}
	}
	assert_int_equal(tls_pin_parse(NULL, 0, pin), -EINVAL);
	/* Both notations of one key agree. */
	{
		uint8_t a[TLS_PIN_LEN], b[TLS_PIN_LEN];

		assert_int_equal(tls_pin_parse(pin_a_b64, strlen(pin_a_b64), a), 0);
		assert_int_equal(tls_pin_parse(pin_a_hex, strlen(pin_a_hex), b), 0);
		assert_memory_equal(a, b, TLS_PIN_LEN);
	}
}

static void test_cert_identity(void **state)
{
	static const struct {
		const char *node;
		int rc;
		const char *identity;
	} cases[] = {
	    {"ecu-a", 0, "ecu-a"}, /* the first SAN DNS name, not the CN */
	    {"ecu-b", 0, "ecu-b"},
	    {"cnonly", 0, "ecu-cn"}, /* no SAN: the CN */
	    {"wild", -EINVAL, ""},   /* a SAN DNS name, none usable: the CN is not consulted */
	};
	char path[128], id[TLS_IDENTITY_MAX + 1];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		FILE *f;
		X509 *x;

		pki_path(path, sizeof(path), cases[i].node, "crt");
		f = fopen(path, "r");
		assert_non_null(f);
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		assert_non_null(x);
		id[0] = '\0';
		assert_int_equal(tls_cert_identity(x, id, sizeof(id)), cases[i].rc);
		if (cases[i].rc == 0) {
			assert_string_equal(id, cases[i].identity);
		}
		/* Too small an output buffer is refused, never truncated. */
		assert_int_equal(tls_cert_identity(x, id, 3), -EINVAL);
		X509_free(x);
	}
}

static void test_tls_new_errors(void **state)
{
	static const struct {
		const char *cert, *key, *ca;
		const char *why;
	} cases[] = {
	    {"nonexistent.crt", "ecu-a.key", "ca.crt", "No such file"},
	    {"ecu-a.crt", "nonexistent.key", "ca.crt", "No such file"},
	    {"ecu-a.crt", "ecu-a.key", "nonexistent.crt", "No such file"},
	    {"garbage.pem", "ecu-a.key", "ca.crt", "certificate"},
	    {"ecu-a.crt", "garbage.pem", "ca.crt", "key"},
	    {"ecu-a.crt", "ecu-a.key", "garbage.pem", "CA"},
	    {"ecu-a.crt", "ecu-b.key", "ca.crt", "does not match"},
	};
	const char *bad_pins[] = {"sha256//nope"};
	const char *good_pins[] = {pin_a_b64, pin_b_hex};
	char cert[128], key[128], ca[128], err[256];
	struct transport_tls_config c = {.cert = cert, .key = key, .ca = ca};
	struct transport_tls *tls;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(cert, sizeof(cert), "%s/%s", pki, cases[i].cert);
		snprintf(key, sizeof(key), "%s/%s", pki, cases[i].key);
		snprintf(ca, sizeof(ca), "%s/%s", pki, cases[i].ca);
		err[0] = '\0';
		assert_null(transport_tls_new(&c, err, sizeof(err)));
		if (!strstr(err, cases[i].why)) {
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].why);
		}
	}
	snprintf(cert, sizeof(cert), "%s/ecu-a.crt", pki);
	snprintf(key, sizeof(key), "%s/ecu-a.key", pki);
	snprintf(ca, sizeof(ca), "%s/ca.crt", pki);
	c.pins = bad_pins;
	c.npins = 1;
	assert_null(transport_tls_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "pin"));
	c.pins = good_pins;
	c.npins = TRANSPORT_TLS_MAX_PINS + 1;
	assert_null(transport_tls_new(&c, err, sizeof(err)));
	c.npins = 2;
	c.cert = NULL;
	assert_null(transport_tls_new(&c, err, sizeof(err)));
	assert_null(transport_tls_new(NULL, err, sizeof(err)));
	c.cert = cert;
	tls = transport_tls_new(&c, err, sizeof(err));
	assert_non_null(tls);
	transport_tls_free(tls);
	transport_tls_free(NULL);
}

static void test_params_need_tls(void **state)
{
	struct transport_listener *l = NULL;
	struct transport *t = NULL;
	struct ep e = {0};

	assert_int_equal(
	    transport_connect(loop, "tls://127.0.0.1:1", &params_default, &ep_upcalls, &e, &t),
	    -EINVAL);
	assert_int_equal(
	    transport_listen(loop, "tls://127.0.0.1:0", &params_default, accept_cb, &e, &l),
	    -EINVAL);
	assert_null(t);
	assert_null(l);
}

/* --- tests: links ------------------------------------------------------------------------- */

/* Client sends sizes[] honouring backpressure; the server echoes; both check order and bytes. */
static void test_roundtrip(void **state)
{
	static const size_t sizes[] = {
	    12,      13,  100, 4095, 4096, 4097, 16383, 16384, 16385, 65536,  262144,
	    MIB - 1, MIB, 12,  MIB,  1000, MIB,  17,    MIB,   MIB,   300000,
	};
	struct transport_stats cs, ss;
	struct pair p;

	pair_open(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	/* Each side sees the other's certificate name; SAN DNS before CN. */
	assert_string_equal(p.cli.identity, "ecu-a");
	assert_string_equal(p.srv.identity, "ecu-b");
	assert_string_equal(transport_peer_identity(p.cli.t), "ecu-a");
	assert_true(strncmp(transport_security(p.cli.t), "TLSv1.3 TLS_", 12) == 0);
	assert_string_equal(transport_security(p.cli.t), transport_security(p.srv.t));
	assert_string_equal(transport_kind(p.cli.t), "tls");
	assert_true(strncmp(transport_peer(p.srv.t), "tls://127.0.0.1:", 16) == 0);
	assert_string_equal(transport_peer(p.cli.t), transport_listener_uri(p.l));
	assert_true(strncmp(transport_listener_uri(p.l), "tls://127.0.0.1:", 16) == 0);

	p.srv.echo = true;
	p.srv.sizes = p.cli.sizes = sizes;
	p.cli.nsizes = ARRAY_SIZE(sizes);
	ep_pump(&p.cli);
	run_until(cli_got_all, &p, 20000);
	assert_int_equal(p.cli.errors, 0);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.echo_fail, 0);
	assert_int_equal(p.cli.downs + p.srv.downs, 0);
	assert_int_equal(p.srv.rx, ARRAY_SIZE(sizes));
	assert_int_equal(p.cli.rx, ARRAY_SIZE(sizes));
	transport_get_stats(p.cli.t, &cs);
	transport_get_stats(p.srv.t, &ss);
	assert_int_equal(cs.tx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(ss.rx_msgs, ARRAY_SIZE(sizes));
	assert_int_equal(cs.tx_bytes, ss.rx_bytes);
	assert_int_equal(ss.tx_bytes, cs.rx_bytes);
	assert_int_equal(cs.tx_queued, 0);

	/* The server closes: close_notify, the client sees one orderly DOWN. */
	ep_close(&p.srv);
	run_until(cli_down, &p, 2000);
	assert_int_equal(p.cli.downs, 1);
	assert_string_equal(p.cli.reason, "peer closed the connection");
	assert_int_equal(send_msg(p.cli.t, 100, 0), -ENOTCONN);
	assert_false(transport_writable(p.cli.t));
	/* The identity stays readable after DOWN. */
	assert_string_equal(transport_peer_identity(p.cli.t), "ecu-a");
	pair_close(&p);

	/* A certificate without SAN: the CN is the identity. */
	pair_open(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("cnonly", "ca", NULL, 0, 0));
	assert_string_equal(p.srv.identity, "ecu-cn");
	pair_close(&p);
}

/* Pins in both notations, current and next; the client pins the server too. */
static void test_pins_accepted(void **state)
{
	const char *srv_pins[] = {pin_a_hex, pin_b_b64}; /* a stale pin, then the client's */
	const char *cli_pins[] = {pin_a_hex};
	const char *cli_pins64[] = {pin_b_hex, pin_a_b64};
	struct pair p;

	pair_open(&p, tls_for("ecu-a", "ca", srv_pins, 2, 0),
	          tls_for("ecu-b", "ca", cli_pins, 1, 0));
	assert_string_equal(p.srv.identity, "ecu-b");
	pair_close(&p);
	pair_open(&p, tls_for("ecu-a", "ca", srv_pins, 2, 0),
	          tls_for("ecu-b", "ca", cli_pins64, 2, 0));
	assert_string_equal(p.cli.identity, "ecu-a");
	pair_close(&p);
}

/*
 * Refusals between two of our nodes: the listener logs why and never hands
 * the link out; the client gets DOWN saying why (after UP when only the
 * server refused: TLS 1.3 clients finish first).
 */
static void test_refused_links(void **state)
{
	const char *pin_a[] = {pin_a_b64};
	const char *pin_b[] = {pin_b_hex};
	static const char *const none[] = {NULL};
	const struct {
		const char *srv, *srv_ca, *cli, *cli_ca;
		const char *const *srv_pins, *const *cli_pins;
		const char *srv_log, *cli_reason;
	} cases[] = {
	    /* the client's certificate is from another CA */
	    {"ecu-a", "ca", "foreign", "ca", none, none, "unable to get local issuer certificate",
	     "unknown ca"},
	    /* the client's certificate has expired */
	    {"ecu-a", "ca", "expired", "ca", none, none, "certificate has expired",
	     "certificate expired"},
	    /* the server pins another key than the client's */
	    {"ecu-a", "ca", "ecu-b", "ca", pin_a, none, "pin mismatch", "the peer refused"},
	    /* the client refuses: server certificate from another CA, expired, wrong pin */
	    {"foreign", "fca", "ecu-b", "ca", none, none, "unknown ca",
	     "unable to get local issuer certificate"},
	    {"expired", "ca", "ecu-b", "ca", none, none, "certificate expired",
	     "certificate has expired"},
	    {"ecu-a", "ca", "ecu-b", "ca", none, pin_b, "the peer refused", "pin mismatch"},
	    /* no usable name in the client's certificate */
	    {"ecu-a", "ca", "wild", "ca", none, none, "no usable identity", "the peer refused"},
	};
	struct pair p;
	const char *log;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		unsigned sn = cases[i].srv_pins[0] ? 1 : 0, cn = cases[i].cli_pins[0] ? 1 : 0;

		capture_start();
		pair_listen(&p, tls_for(cases[i].srv, cases[i].srv_ca, cases[i].srv_pins, sn, 0),
		            tls_for(cases[i].cli, cases[i].cli_ca, cases[i].cli_pins, cn, 0));
		assert_int_equal(transport_connect(loop, transport_listener_uri(p.l), &p.cp,
		                                   &ep_upcalls, &p.cli, &p.cli.t),
		                 0);
		run_until(cli_down, &p, 3000);
		run_for(30);
		log = capture_end();
		if (p.cli.downs != 1 || p.srv.accepts != 0 ||
		    !strstr(p.cli.reason, cases[i].cli_reason) || !strstr(log, cases[i].srv_log)) {
			fail_msg("case %zu: downs %d accepts %d, client \"%s\" (want \"%s\"), "
			         "server log "
			         "lacks \"%s\"",
			         i, p.cli.downs, p.srv.accepts, p.cli.reason, cases[i].cli_reason,
			         cases[i].srv_log);
		}
		assert_true(p.cli.ups <= 1);
		pair_close(&p);
	}
}

/* Peers our transport cannot be made to be: no certificate at all, TLS 1.2 only. */
static void test_refused_raw_clients(void **state)
{
	const struct {
		const char *node;
		int max_version;
		const char *srv_log;
	} cases[] = {
	    {NULL, 0, "no client certificate"},
	    {"ecu-b", TLS1_2_VERSION, "protocol version"},
	    {NULL, TLS1_2_VERSION, "protocol version"},
	};
	const char *log;
	struct pair p;
	struct raw r;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		capture_start();
		pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), NULL);
		raw_new(&r, cases[i].node, cases[i].max_version);
		if (raw_handshake(&r, uri_port(transport_listener_uri(p.l)))) {
			/* TLS 1.3: the client is done before the server checked it. */
			assert_true(raw_wait_closed(&r, 3000));
		}
		run_for(20);
		log = capture_end();
		assert_int_equal(p.srv.accepts, 0);
		if (!strstr(log, cases[i].srv_log)) {
			fail_msg("case %zu: server log lacks \"%s\"", i, cases[i].srv_log);
		}
		raw_free(&r, false);
		pair_close(&p);
	}
}

/* A plain listening socket on 127.0.0.1 (the kernel completes connects); its tls:// URI. */
static int raw_listener(char *uri, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(uri, len, "tls://127.0.0.1:%d", ntohs(sin.sin_port));
	return lfd;
}

/* A ClientHello at 1 byte per second: the listener gives up after its handshake timeout. */
static void test_handshake_timeout(void **state)
{
	uint8_t hello[2048];
	uint64_t t0, waited;
	int fd, n, hlen;
	struct pair p;
	struct raw r;
	BIO *rb, *wb;
	char c;

	/* A real ClientHello, taken from a client on memory BIOs. */
	raw_new(&r, "ecu-b", 0);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	SSL_set_bio(r.ssl, rb, wb);
	assert_int_equal(SSL_do_handshake(r.ssl), -1);
	hlen = BIO_read(wb, hello, sizeof(hello));
	assert_true(hlen > 100);

	capture_start();
	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 1500), NULL);
	fd = raw_socket(uri_port(transport_listener_uri(p.l)));
	t0 = vb_now_ns();
	for (n = 0; n < hlen; n++) {
		assert_int_equal(send(fd, hello + n, 1, MSG_NOSIGNAL), 1);
		run_for(1000);
		if (recv(fd, &c, 1, MSG_DONTWAIT) == 0 || errno == ECONNRESET) {
			break;
		}
	}
	waited = (vb_now_ns() - t0) / 1000000u;
	assert_true(capture_end() != NULL);
	assert_non_null(strstr(cap_text, "handshake timed out"));
	assert_true(n < 4);
	assert_true(waited >= 1400 && waited < 4500);
	assert_int_equal(p.srv.accepts, 0);
	close(fd);
	raw_free(&r, false);
	pair_close(&p);
}

/* Our client against a server that accepts TCP and never speaks. */
static void test_client_handshake_timeout(void **state)
{
	struct transport_params cp = params_default;
	char uri[64];
	struct pair p;
	int lfd;
	uint64_t t0;

	memset(&p, 0, sizeof(p));
	lfd = raw_listener(uri, sizeof(uri));
	cp.tls = tls_for("ecu-b", "ca", NULL, 0, 300);
	t0 = vb_now_ns();
	assert_int_equal(transport_connect(loop, uri, &cp, &ep_upcalls, &p.cli, &p.cli.t), 0);
	/* The caller's reference can go at once: the link holds its own. */
	transport_tls_free(cp.tls);
	run_until(cli_down, &p, 3000);
	assert_int_equal(p.cli.ups, 0);
	assert_int_equal(p.cli.downs, 1);
	assert_non_null(strstr(p.cli.reason, "handshake timed out"));
	assert_true(vb_now_ns() - t0 >= 250000000u);
	ep_close(&p.cli);
	close(lfd);
}

/* Inside TLS the framing rules are tcp://'s: a bad prefix drops the link. */
static void test_bad_prefix_in_tls(void **state)
{
	static const uint32_t prefixes[] = {0, 11, MIB + 1, 0xffffffffu};
	uint8_t hdr[4], *m;
	struct pair p;
	struct raw r;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(prefixes); i++) {
		pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), NULL);
		raw_new(&r, "ecu-b", 0);
		assert_int_equal(raw_handshake(&r, uri_port(transport_listener_uri(p.l))), 1);
		m = msg_make(100, 0);
		raw_write(&r, m, 100);
		free(m);
		put_le32(hdr, prefixes[i]);
		raw_write(&r, hdr, sizeof(hdr));
		run_until(srv_down, &p, 2000);
		assert_int_equal(p.srv.accepts, 1);
		assert_string_equal(p.srv.identity, "ecu-b");
		assert_int_equal(p.srv.rx, 1);
		assert_int_equal(p.srv.downs, 1);
		assert_non_null(strstr(p.srv.reason, "bad frame length"));
		/* We sent close_notify: the raw peer sees an orderly close. */
		assert_true(raw_wait_closed(&r, 2000));
		assert_int_equal(SSL_get_shutdown(r.ssl) & SSL_RECEIVED_SHUTDOWN,
		                 SSL_RECEIVED_SHUTDOWN);
		raw_free(&r, false);
		pair_close(&p);
	}
}

/* EOF with or without close_notify is a lost link; messages before it are delivered. */
static void test_peer_eof(void **state)
{
	static const struct {
		size_t partial; /* bytes of a second message before the end */
		bool notify;
		const char *reason;
		bool without;
	} cases[] = {
	    {0, true, "peer closed the connection", false},
	    {0, false, "peer closed the connection without close_notify", true},
	    {50, true, "mid-message", false},
	    {50, false, "mid-message", true},
	};
	struct pair p;
	struct raw r;
	uint8_t *m;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), NULL);
		raw_new(&r, "ecu-b", 0);
		assert_int_equal(raw_handshake(&r, uri_port(transport_listener_uri(p.l))), 1);
		m = msg_make(100, 0);
		raw_write(&r, m, 100);
		free(m);
		if (cases[i].partial) {
			m = msg_make(100, 1);
			raw_write(&r, m, cases[i].partial);
			free(m);
		}
		raw_free(&r, cases[i].notify);
		run_until(srv_down, &p, 2000);
		run_for(20);
		assert_int_equal(p.srv.rx, 1);
		assert_int_equal(p.srv.errors, 0);
		assert_int_equal(p.srv.downs, 1);
		assert_non_null(strstr(p.srv.reason, cases[i].reason));
		assert_int_equal(strstr(p.srv.reason, "without close_notify") != NULL,
		                 cases[i].without);
		pair_close(&p);
	}
}

static bool cli_writable_and_srv_all(void *arg)
{
	struct pair *p = arg;

	return (p->cli.writables > 0 && p->srv.rx >= p->cli.sent) || p->srv.downs || p->cli.downs;
}

static void test_backpressure(void **state)
{
	const size_t hw = 256 * 1024, limit = 4 * hw + MIB;
	struct transport_stats st;
	bool blocked = false;
	int rounds, rc;
	struct pair p;

	pair_open(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	transport_pause_rx(p.srv.t, 1);
	for (rounds = 0; rounds < 2000 && !blocked; rounds++) {
		while (transport_writable(p.cli.t)) {
			assert_int_equal(send_msg(p.cli.t, MIB, (uint32_t)p.cli.sent), 0);
			p.cli.sent++;
		}
		run_for(10);
		if (!transport_writable(p.cli.t)) {
			p.cli.writables = 0;
			run_for(100);
			blocked = !transport_writable(p.cli.t) && p.cli.writables == 0;
		}
	}
	assert_true(blocked);
	assert_int_equal(p.srv.rx, 0);
	do {
		rc = send_msg(p.cli.t, 1000, (uint32_t)p.cli.sent);
		if (rc == 0) {
			p.cli.sent++;
		}
		transport_get_stats(p.cli.t, &st);
		assert_true(st.tx_queued <= limit);
	} while (rc == 0);
	assert_int_equal(rc, -ENOBUFS);

	transport_pause_rx(p.srv.t, 0);
	run_until(cli_writable_and_srv_all, &p, 20000);
	assert_true(p.cli.writables >= 1);
	assert_int_equal(p.srv.rx, p.cli.sent);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs + p.cli.downs, 0);
	pair_close(&p);
}

/*
 * Pausing in on_message with more records already read into SSL (read
 * ahead) and no more bytes on the socket: each resume delivers the next
 * one, and the close_notify behind them is seen only after the last.
 */
static void test_pause_with_records_inside_ssl(void **state)
{
	enum { N = 20 };
	struct pair p;
	struct raw r;
	uint32_t i;
	uint8_t *m;

	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), NULL);
	p.srv.pause_every = true;
	raw_new(&r, "ecu-b", 0);
	assert_int_equal(raw_handshake(&r, uri_port(transport_listener_uri(p.l))), 1);
	for (i = 0; i < N; i++) {
		m = msg_make(100 + i, i);
		raw_write(&r, m, 100 + i); /* one record each */
		free(m);
	}
	SSL_shutdown(r.ssl);
	run_for(50);
	assert_int_equal(p.srv.accepts, 1);
	assert_int_equal(p.srv.rx, 1);
	for (i = 2; i <= N; i++) {
		transport_pause_rx(p.srv.t, 0);
		run_for(5);
		assert_int_equal(p.srv.rx, i);
		assert_int_equal(p.srv.downs, 0);
	}
	transport_pause_rx(p.srv.t, 0);
	run_until(srv_down, &p, 2000);
	assert_int_equal(p.srv.rx, N);
	assert_int_equal(p.srv.errors, 0);
	assert_int_equal(p.srv.downs, 1);
	assert_string_equal(p.srv.reason, "peer closed the connection");
	raw_free(&r, false);
	pair_close(&p);
}

static void test_close_in_upcalls(void **state)
{
	struct pair p;
	uint32_t i;

	/* The accept callback closes at once: the client sees DOWN. */
	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	p.srv.close_on_accept = true;
	pair_connect(&p);
	run_until(cli_down, &p, 3000);
	assert_int_equal(p.srv.accepts, 1);
	assert_int_equal(p.cli.downs, 1);
	pair_close(&p);

	/* The server closes in its first on_message; no upcall follows. */
	pair_open(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	p.srv.close_on_msg = true;
	for (i = 0; i < 5; i++) {
		assert_int_equal(send_msg(p.cli.t, 64 + i, i), 0);
	}
	run_until(cli_down, &p, 2000);
	run_for(20);
	assert_int_equal(p.srv.rx, 1);
	assert_null(p.srv.t);
	assert_int_equal(p.srv.downs, 0);
	assert_int_equal(p.cli.downs, 1);
	pair_close(&p);

	/* Closed before the loop ran: no upcall, no connection. */
	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	assert_int_equal(transport_connect(loop, transport_listener_uri(p.l), &p.cp, &ep_upcalls,
	                                   &p.cli, &p.cli.t),
	                 0);
	ep_close(&p.cli);
	run_for(50);
	assert_int_equal(p.cli.ups + p.cli.downs, 0);
	assert_int_equal(p.srv.accepts, 0);
	pair_close(&p);

	/* Closed in the middle of its handshake (a server that never answers): no upcall. */
	{
		struct transport_params cp = params_default;
		char uri[64], c;
		int lfd, sfd;

		memset(&p, 0, sizeof(p));
		lfd = raw_listener(uri, sizeof(uri));
		cp.tls = tls_for("ecu-b", "ca", NULL, 0, 0);
		assert_int_equal(transport_connect(loop, uri, &cp, &ep_upcalls, &p.cli, &p.cli.t),
		                 0);
		transport_tls_free(cp.tls);
		run_for(50);
		sfd = accept(lfd, NULL, NULL);
		assert_true(sfd >= 0);
		/* The ClientHello is there: the client is in its handshake. */
		assert_true(recv(sfd, &c, 1, MSG_DONTWAIT) == 1);
		ep_close(&p.cli);
		run_for(20);
		assert_int_equal(p.cli.ups + p.cli.downs, 0);
		close(sfd);
		close(lfd);
	}
}

static void copy_file(const char *from, const char *to)
{
	char src[128], dst[128], buf[8192];
	FILE *in, *out;
	size_t n;

	snprintf(src, sizeof(src), "%s/%s", pki, from);
	snprintf(dst, sizeof(dst), "%s/%s", pki, to);
	in = fopen(src, "r");
	out = fopen(dst, "w");
	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		assert_int_equal(fwrite(buf, 1, n, out), n);
	}
	fclose(in);
	fclose(out);
}

static bool cli2_settled(void *arg)
{
	struct ep *e = arg;

	return e->ups || e->downs;
}

static bool cli2_down(void *arg)
{
	return ((struct ep *)arg)->downs > 0;
}

/* A fresh client to p's listener; returns the identity the client saw. */
static void connect_and_check(struct pair *p, const char *want)
{
	struct ep e;

	memset(&e, 0, sizeof(e));
	assert_int_equal(
	    transport_connect(loop, transport_listener_uri(p->l), &p->cp, &ep_upcalls, &e, &e.t),
	    0);
	run_until(cli2_settled, &e, 3000);
	assert_int_equal(e.ups, 1);
	assert_string_equal(e.identity, want);
	ep_close(&e);
}

/*
 * Reload builds a new context from the same paths: good files take effect
 * for new links, existing links keep working on theirs; broken files keep
 * the old context and say why.
 */
/* Our own certificate must name the node we are: else refused at start and by a reload. */
static void test_own_identity(void **state)
{
	char cert[128], key[128], ca[128], err[256] = "";
	struct transport_tls_config c = {.cert = cert, .key = key, .ca = ca, .identity = "ecu-a"};
	struct transport_tls *tls;

	copy_file("ecu-a.crt", "self.crt");
	copy_file("ecu-a.key", "self.key");
	pki_path(cert, sizeof(cert), "self", "crt");
	pki_path(key, sizeof(key), "self", "key");
	pki_path(ca, sizeof(ca), "ca", "crt");
	tls = transport_tls_new(&c, err, sizeof(err));
	assert_non_null(tls);

	/* A reload to another node's certificate keeps the one that names us. */
	copy_file("ecu-b.crt", "self.crt");
	copy_file("ecu-b.key", "self.key");
	assert_int_equal(transport_tls_reload(tls, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "names ecu-b, not this node (ecu-a)")) {
		fail_msg("reload: \"%s\"", err);
	}
	transport_tls_free(tls);

	c.identity = "ecu-b";
	assert_non_null(tls = transport_tls_new(&c, err, sizeof(err)));
	transport_tls_free(tls);
	c.identity = "ecu-c";
	err[0] = '\0';
	assert_null(transport_tls_new(&c, err, sizeof(err)));
	if (!strstr(err, "names ecu-b, not this node (ecu-c): peers would refuse its links")) {
		fail_msg("new: \"%s\"", err);
	}
}

static void test_reload(void **state)
{
	static const struct {
		const char *crt, *key;
		int rc;
		const char *why;
	} broken[] = {
	    {"ecu-a2.crt", "garbage.pem", -EINVAL, "key"},
	    {"ecu-a2.crt", "ecu-a.key", -EINVAL, "does not match"},
	    {"garbage.pem", "ecu-a2.key", -EINVAL, "certificate"},
	};
	static const size_t small[] = {12, 100, 5000};
	char err[256];
	struct pair p;
	size_t i;

	copy_file("ecu-a.crt", "reload.crt");
	copy_file("ecu-a.key", "reload.key");
	pair_open(&p, tls_for("reload", "ca", NULL, 0, 0), tls_for("ecu-b", "ca", NULL, 0, 0));
	assert_string_equal(p.cli.identity, "ecu-a");

	copy_file("ecu-a2.crt", "reload.crt");
	copy_file("ecu-a2.key", "reload.key");
	assert_int_equal(transport_tls_reload(p.stls, err, sizeof(err)), 0);
	connect_and_check(&p, "ecu-a2");
	/* The existing link still carries messages on its old context. */
	p.srv.echo = true;
	p.cli.sizes = p.srv.sizes = small;
	p.cli.nsizes = ARRAY_SIZE(small);
	ep_pump(&p.cli);
	run_until(cli_got_all, &p, 3000);
	assert_int_equal(p.cli.rx, ARRAY_SIZE(small));
	assert_int_equal(p.cli.errors + p.srv.errors, 0);
	assert_string_equal(transport_peer_identity(p.cli.t), "ecu-a");

	for (i = 0; i < ARRAY_SIZE(broken); i++) {
		copy_file(broken[i].crt, "reload.crt");
		copy_file(broken[i].key, "reload.key");
		err[0] = '\0';
		assert_int_equal(transport_tls_reload(p.stls, err, sizeof(err)), broken[i].rc);
		if (!strstr(err, broken[i].why)) {
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, broken[i].why);
		}
		connect_and_check(&p, "ecu-a2");
	}
	/* An unreadable file: -errno. */
	{
		char path[128];

		copy_file("ecu-a2.crt", "reload.crt");
		snprintf(path, sizeof(path), "%s/reload.key", pki);
		assert_int_equal(unlink(path), 0);
		assert_int_equal(transport_tls_reload(p.stls, err, sizeof(err)), -ENOENT);
		connect_and_check(&p, "ecu-a2");
	}
	pair_close(&p);
}

/*
 * No resumption: the server issues no ticket (a resumed session would skip
 * the certificate checks), and a client offering an old session gets a
 * full handshake.
 */
static void test_no_resumption(void **state)
{
	SSL_SESSION *sess;
	struct pair p;
	struct raw r;
	uint8_t *m;
	char buf[64];

	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 0), NULL);
	raw_new(&r, "ecu-b", 0);
	assert_int_equal(raw_handshake(&r, uri_port(transport_listener_uri(p.l))), 1);
	m = msg_make(100, 0);
	raw_write(&r, m, 100);
	free(m);
	run_for(50);
	assert_int_equal(p.srv.rx, 1);
	/* Whatever the server sent after its Finished (tickets would be here) is read now. */
	assert_true(SSL_read(r.ssl, buf, sizeof(buf)) <= 0);
	ERR_clear_error();
	sess = SSL_get1_session(r.ssl);
	assert_non_null(sess);
	assert_false(SSL_SESSION_is_resumable(sess));
	raw_free(&r, true);

	raw_new(&r, "ecu-b", 0);
	assert_int_equal(SSL_set_session(r.ssl, sess), 1);
	assert_int_equal(raw_handshake(&r, uri_port(transport_listener_uri(p.l))), 1);
	run_for(50);
	assert_false(SSL_session_reused(r.ssl));
	assert_int_equal(p.srv.accepts, 2);
	SSL_SESSION_free(sess);
	raw_free(&r, true);
	pair_close(&p);
}

/* Our client against a TLS 1.2-only server: DOWN, never UP, saying why. */
static void test_client_refuses_tls12_server(void **state)
{
	struct transport_params cp = params_default;
	struct pair p;
	struct raw r;
	char uri[64];
	int lfd;
	uint64_t end;

	memset(&p, 0, sizeof(p));
	lfd = raw_listener(uri, sizeof(uri));
	assert_int_equal(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
	cp.tls = tls_for("ecu-b", "ca", NULL, 0, 0);
	assert_int_equal(transport_connect(loop, uri, &cp, &ep_upcalls, &p.cli, &p.cli.t), 0);
	transport_tls_free(cp.tls);
	raw_new_role(&r, "ecu-a", TLS1_2_VERSION, true);
	for (end = vb_now_ns() + 2000000000ull; r.fd < 0 && vb_now_ns() < end;) {
		event_base_loop(vb_loop_base(loop), EVLOOP_ONCE);
		r.fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	assert_true(r.fd >= 0);
	assert_int_equal(raw_handshake_fd(&r), 0);
	run_until(cli_down, &p, 2000);
	assert_int_equal(p.cli.ups, 0);
	assert_int_equal(p.cli.downs, 1);
	assert_non_null(strstr(p.cli.reason, "protocol version"));
	ep_close(&p.cli);
	raw_free(&r, false);
	close(lfd);
}

/* 200 failed handshakes of several kinds leave no descriptor behind. */
static void test_no_fd_leak(void **state)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";
	int before, after, i, fd;
	struct pair p;
	struct ep e;
	struct raw r;

	run_for(20);
	before = fd_count();
	pair_listen(&p, tls_for("ecu-a", "ca", NULL, 0, 2000),
	            tls_for("foreign", "ca", NULL, 0, 0));
	for (i = 0; i < 200; i++) {
		switch (i % 4) {
		case 0: /* a certificate from another CA */
			memset(&e, 0, sizeof(e));
			assert_int_equal(transport_connect(loop, transport_listener_uri(p.l), &p.cp,
			                                   &ep_upcalls, &e, &e.t),
			                 0);
			run_until(cli2_down, &e, 3000);
			assert_int_equal(e.downs, 1);
			ep_close(&e);
			break;
		case 1: /* connect and hang up */
			close(raw_socket(uri_port(transport_listener_uri(p.l))));
			run_for(2);
			break;
		case 2: /* not TLS at all */
			fd = raw_socket(uri_port(transport_listener_uri(p.l)));
			assert_int_equal(send(fd, http, sizeof(http) - 1, MSG_NOSIGNAL),
			                 (ssize_t)sizeof(http) - 1);
			run_for(5);
			close(fd);
			break;
		case 3: /* no client certificate */
			raw_new(&r, NULL, 0);
			if (raw_handshake(&r, uri_port(transport_listener_uri(p.l)))) {
				raw_wait_closed(&r, 1000);
			}
			raw_free(&r, false);
			break;
		}
	}
	assert_int_equal(p.srv.accepts, 0);
	/* Handshakes still pending go with the listener. */
	fd = raw_socket(uri_port(transport_listener_uri(p.l)));
	run_for(20);
	pair_close(&p);
	close(fd);
	run_for(50);
	after = fd_count();
	assert_int_equal(after, before);
}

static int group_setup(void **state)
{
	const struct timeval tv = {.tv_usec = 5000};

	signal(SIGPIPE, SIG_IGN); /* as vbridged does */
	log_init(1, getenv("VB_TEST_VERBOSE") != NULL, "test_transport_tls");
	if (pki_make() < 0) {
		fprintf(stderr, "could not make the test PKI with the openssl CLI\n");
		return -1;
	}
	read_small("ecu-a.pin64", pin_a_b64, sizeof(pin_a_b64));
	read_small("ecu-a.pinhex", pin_a_hex, sizeof(pin_a_hex));
	read_small("ecu-b.pin64", pin_b_b64, sizeof(pin_b_b64));
	read_small("ecu-b.pinhex", pin_b_hex, sizeof(pin_b_hex));
	loop = vb_loop_new();
	if (!loop) {
		return -1;
	}
	tick = event_new(vb_loop_base(loop), -1, EV_PERSIST, tick_cb, NULL);
	return tick && event_add(tick, &tv) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	event_free(tick);
	vb_loop_free(loop);
	pki_remove();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pin_parse),
	    cmocka_unit_test(test_cert_identity),
	    cmocka_unit_test(test_tls_new_errors),
	    cmocka_unit_test(test_own_identity),
	    cmocka_unit_test(test_params_need_tls),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_pins_accepted),
	    cmocka_unit_test(test_refused_links),
	    cmocka_unit_test(test_refused_raw_clients),
	    cmocka_unit_test(test_handshake_timeout),
	    cmocka_unit_test(test_client_handshake_timeout),
	    cmocka_unit_test(test_bad_prefix_in_tls),
	    cmocka_unit_test(test_peer_eof),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_pause_with_records_inside_ssl),
	    cmocka_unit_test(test_close_in_upcalls),
	    cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_no_resumption),
	    cmocka_unit_test(test_client_refuses_tls12_server),
	    cmocka_unit_test(test_no_fd_leak),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
