/*
 * libFuzzer target for the TLS handshake of tls:// links
 * (transport/tcp/tls_ctx.c: our context policy, the verify callback, pins,
 * the peer identity, the failure reasons), through memory BIOs: no socket.
 * Our session reads from a memory BIO the harness fills and writes into its
 * own BIO pair (tls_session_start_bio), exactly as on a link.
 *
 * The test PKI is fixed (tests/fuzz/pki, made with tools/vb-pki, valid for
 * a century) so that the seeds stay meaningful: CA, ecu-a (our node) and
 * ecu-b (the peer's key).
 *
 * Input: mode:u8, then by mode % 3:
 *   0  the fuzzer is a client of our server,  body := chunk*
 *   1  the fuzzer is a server for our client, body := chunk*
 *        chunk := len:u16 bytes[len]: written to our read BIO, then one
 *        handshake step; at the end the peer hangs up (EOF) and we step again.
 *   2  an honest OpenSSL peer presents a certificate from the input,
 *        body := flags:u8 der[...]
 *        bit 0  we are the server (else the client)
 *        bit 1  the harness signs the certificate with the test CA's key, so
 *               the fuzzer's names, dates and extensions get past the chain
 *               signature and reach our checks
 *        bit 2  the certificate gets the peer's key (else it keeps its own,
 *               and the peer cannot prove possession: it sends none)
 *        bit 3  our side requires a pin (that of ecu-b's key)
 *        bit 4  the peer sends the CA certificate along
 *
 * Checked besides memory safety: a session we call established has a peer
 * certificate that an independent X509_verify_cert() against the test CA
 * accepts, carries the pin when one is required, and has an identity equal
 * to tls_cert_identity() of it, 1..253 characters of [A-Za-z0-9._-]; every
 * failure has a printable reason.
 */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/fuzz/fuzz_input.h"
#include "transport/tcp/tls.h"

#ifndef VB_FUZZ_PKI
#error "VB_FUZZ_PKI: the directory of the fixed test PKI"
#endif

#define MAX_ROUNDS 16

static struct {
	struct transport_tls *plain, *pinned; /* our node (ecu-a), without and with a pin */
	SSL_CTX *peer_ctx;                    /* the honest peer: TLS 1.3, verifies nothing */
	X509 *ca;
	EVP_PKEY *ca_key, *peer_key;
	X509_STORE *store; /* the test CA, for the independent check */
	uint8_t pin[TLS_PIN_LEN];
} F;

static void *load_pem(const char *name, int key)
{
	char path[512];
	FILE *f;
	void *v;

	snprintf(path, sizeof(path), "%s/%s", VB_FUZZ_PKI, name);
	f = fopen(path, "re");
	if (!f) {
		fprintf(fuzz_err(), "fuzz_tls: %s: %s\n", path, strerror(errno));
		abort();
	}
	v = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
	        : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!v) {
		fprintf(fuzz_err(), "fuzz_tls: %s: not PEM\n", path);
		abort();
	}
	return v;
}

static struct transport_tls *our_tls(const char *pin)
{
	struct transport_tls_config c = {
	    .cert = VB_FUZZ_PKI "/ecu-a.pem",
	    .key = VB_FUZZ_PKI "/ecu-a.key",
	    .ca = VB_FUZZ_PKI "/ca.pem",
	    .pins = pin ? &pin : NULL,
	    .npins = pin ? 1 : 0,
	};
	char err[256];
	struct transport_tls *tls = transport_tls_new(&c, err, sizeof(err));

	if (!tls) {
		fprintf(fuzz_err(), "fuzz_tls: %s\n", err);
		abort();
	}
	return tls;
}

static void spki_sha256(X509 *cert, uint8_t out[TLS_PIN_LEN])
{
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	unsigned len = 0;

	FUZZ_CHECK(n > 0 && EVP_Digest(der, (size_t)n, out, &len, EVP_sha256(), NULL) == 1);
	OPENSSL_free(der);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	X509 *peer_cert;
	char hex[2 * TLS_PIN_LEN + 1];

	fuzz_quiet_logs();
	F.ca = load_pem("ca.pem", 0);
	F.ca_key = load_pem("ca.key", 1);
	F.peer_key = load_pem("ecu-b.key", 1);
	peer_cert = load_pem("ecu-b.pem", 0);
	spki_sha256(peer_cert, F.pin);
	X509_free(peer_cert);
	for (int i = 0; i < TLS_PIN_LEN; i++) {
		snprintf(hex + 2 * i, 3, "%02x", F.pin[i]);
	}
	F.plain = our_tls(NULL);
	F.pinned = our_tls(hex);
	F.store = X509_STORE_new();
	FUZZ_CHECK(F.store && X509_STORE_add_cert(F.store, F.ca) == 1);
	F.peer_ctx = SSL_CTX_new(TLS_method());
	FUZZ_CHECK(F.peer_ctx && SSL_CTX_set_min_proto_version(F.peer_ctx, TLS1_3_VERSION));
	SSL_CTX_set_verify(F.peer_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(F.peer_ctx, SSL_OP_NO_TICKET);
	return 0;
}

/* --- one session of ours ------------------------------------------------------------------ */

struct ours {
	struct tls_session s;
	BIO *in;  /* what the peer sent, for us to read (owned by s.ssl) */
	int done; /* 1 established, -1 failed */
	char why[256];
};

static void ours_start(struct ours *o, struct transport_tls *tls, int server)
{
	memset(o, 0, sizeof(*o));
	o->s.tls = tls_ref(tls);
	o->in = BIO_new(BIO_s_mem());
	FUZZ_CHECK(o->in && tls_session_start_bio(&o->s, o->in, server) == 0);
}

static void ours_end(struct ours *o)
{
	if (fuzz_log_level() > 0) { /* VB_FUZZ_LOG=1: what became of each session */
		fprintf(fuzz_err(), "fuzz_tls: %s: %s\n",
		        o->done > 0   ? "established"
		        : o->done < 0 ? "refused"
		                      : "unfinished",
		        o->done > 0 ? o->s.identity : o->why);
	}
	tls_session_end(&o->s);
	transport_tls_free(o->s.tls);
	ERR_clear_error();
}

static void check_printable(const char *why)
{
	FUZZ_CHECK(why[0] != '\0');
	for (const char *p = why; *p; p++) {
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
	}
}

static int identity_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Our session says the peer is authenticated: check that against an independent verdict. */
static void check_accepted(struct ours *o)
{
	X509 *leaf = SSL_get0_peer_certificate(o->s.ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(o->s.ssl);
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	char id[TLS_IDENTITY_MAX + 1];
	uint8_t pin[TLS_PIN_LEN];
	size_t n = strlen(o->s.identity);

	FUZZ_CHECK(leaf && xs);
	FUZZ_CHECK(X509_STORE_CTX_init(xs, F.store, leaf, chain) == 1);
	FUZZ_CHECK(X509_verify_cert(xs) == 1);
	X509_STORE_CTX_free(xs);
	if (o->s.tls == F.pinned) {
		spki_sha256(leaf, pin);
		FUZZ_CHECK(memcmp(pin, F.pin, TLS_PIN_LEN) == 0);
	}
	FUZZ_CHECK(n >= 1 && n <= TLS_IDENTITY_MAX);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(identity_char_ok(o->s.identity[i]));
	}
	FUZZ_CHECK(tls_cert_identity(leaf, id, sizeof(id)) == 0 && strcmp(id, o->s.identity) == 0);
	check_printable(o->s.security);
}

/* One handshake step of ours; records the outcome once. */
static void ours_step(struct ours *o)
{
	int rc, err;

	if (o->done) {
		return;
	}
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(o->s.ssl);
	if (rc == 1) {
		if (tls_session_established(&o->s, o->why, sizeof(o->why)) == 0) {
			o->done = 1;
			check_accepted(o);
		} else {
			o->done = -1;
			check_printable(o->why);
		}
		return;
	}
	err = SSL_get_error(o->s.ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		return;
	}
	o->done = -1;
	tls_session_failure(&o->s, err, o->why, sizeof(o->why));
	check_printable(o->why);
}

/* Moves what src holds into dst (dst NULL: drops it). Bytes moved. */
static size_t pump(BIO *src, BIO *dst)
{
	uint8_t buf[4096];
	size_t total = 0;
	int n;

	while ((n = BIO_read(src, buf, sizeof(buf))) > 0) {
		if (dst) {
			FUZZ_CHECK(BIO_write(dst, buf, n) == n);
		}
		total += (size_t)n;
	}
	return total;
}

/* --- modes -------------------------------------------------------------------------------- */

static void fuzz_raw(struct fin *in, int server)
{
	struct ours o;
	uint8_t buf[65536];

	ours_start(&o, F.plain, server);
	ours_step(&o); /* a client speaks first */
	pump(o.s.net, NULL);
	while (!fin_done(in) && !o.done) {
		size_t n = fin_u16(in);

		n = n < in->left ? n : in->left;
		fin_bytes(in, buf, n);
		FUZZ_CHECK(BIO_write(o.in, buf, (int)n) == (int)n || n == 0);
		ours_step(&o);
		pump(o.s.net, NULL);
	}
	BIO_set_mem_eof_return(o.in, 0); /* the peer hangs up */
	ours_step(&o);
	if (!o.done) {
		/* Still waiting with EOF pending would be a hang on a real link. */
		FUZZ_CHECK(BIO_ctrl_pending(o.in) != 0);
	}
	ours_end(&o);
}

/* The peer's certificate from the input, adjusted as the flags say; NULL if not DER. */
static X509 *peer_cert(const uint8_t *der, size_t len, unsigned flags)
{
	const unsigned char *p = der;
	X509 *cert = d2i_X509(NULL, &p, (long)len);

	if (!cert) {
		return NULL;
	}
	if (flags & 4) {
		X509_set_pubkey(cert, F.peer_key);
	}
	if (flags & 2) {
		X509_set_issuer_name(cert, X509_get_subject_name(F.ca));
		X509_sign(cert, F.ca_key, EVP_sha256());
	}
	return cert;
}

static void fuzz_cert(struct fin *in)
{
	unsigned flags = fin_u8(in);
	X509 *cert = peer_cert(in->p, in->left, flags);
	char id[TLS_IDENTITY_MAX + 1];
	BIO *pin_, *pout;
	struct ours o;
	SSL *peer;

	if (!cert) {
		ERR_clear_error();
		return;
	}
	/* The identity parser alone, on every certificate, signed or not. */
	if (tls_cert_identity(cert, id, sizeof(id)) == 0) {
		FUZZ_CHECK(id[0] && strlen(id) <= TLS_IDENTITY_MAX);
		for (const char *c = id; *c; c++) {
			FUZZ_CHECK(identity_char_ok(*c));
		}
	}
	peer = SSL_new(F.peer_ctx);
	pin_ = BIO_new(BIO_s_mem());
	pout = BIO_new(BIO_s_mem());
	FUZZ_CHECK(peer && pin_ && pout);
	SSL_set_bio(peer, pin_, pout);
	/* Key first: a certificate that does not match it makes OpenSSL drop the key. */
	SSL_use_PrivateKey(peer, F.peer_key);
	SSL_use_certificate(peer, cert);
	if (flags & 16) {
		SSL_add1_chain_cert(peer, F.ca);
	}
	ERR_clear_error();
	if (flags & 1) {
		SSL_set_connect_state(peer);
	} else {
		SSL_set_accept_state(peer);
	}
	ours_start(&o, (flags & 8) ? F.pinned : F.plain, flags & 1);
	for (int round = 0; round < MAX_ROUNDS && !o.done; round++) {
		size_t moved;

		SSL_do_handshake(peer);
		ERR_clear_error();
		ours_step(&o);
		moved = pump(pout, o.in) + pump(o.s.net, pin_);
		if (!moved) {
			break;
		}
	}
	ours_end(&o);
	SSL_free(peer);
	X509_free(cert);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in;
	unsigned mode;

	if (size < 1) {
		return 0;
	}
	fin_init(&in, data, size);
	mode = fin_u8(&in) % 3;
	if (mode == 2) {
		fuzz_cert(&in);
	} else {
		fuzz_raw(&in, mode == 0);
	}
	return 0;
}
