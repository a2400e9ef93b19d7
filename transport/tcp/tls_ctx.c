/*
 * TLS contexts for tls:// links (OpenSSL 3): building and reloading the
 * SSL_CTX, certificate verification with optional SPKI pins, the peer
 * identity, and why a handshake failed in words an operator can act on.
 *
 * Policy (RFC 8446 only): TLS 1.3, AES-GCM and ChaCha20-Poly1305 suites,
 * groups X25519 and P-256, no early data. Both sides present a certificate
 * that must chain to the configured CA file; the system store is never
 * loaded. Resumption is off (no tickets, no session cache): a resumed
 * session would skip the certificate checks, so a peer whose certificate
 * or pin was withdrawn would keep getting in.
 *
 * Reload swaps tls->ctx for links made afterwards. An SSL holds a
 * reference to the context it was made from, so existing links keep
 * theirs; links and listeners hold a reference to the transport_tls for
 * its pins.
 */
#include "transport/tcp/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "bridge/log.h"
#include "bridge/util.h"

#define TLS_TIMEOUT_DEFAULT_MS 10000
#define TLS_VERIFY_DEPTH       8
#define TLS_READ_BUFFER        (64 * 1024)  /* read-ahead: several records per recv(2) */
#define TLS_NET_BUF            (256 * 1024) /* ciphertext waiting for send(2) */
#define TLS_CIPHERSUITES                                                                           \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_GROUPS "X25519:P-256"
/* 3.0.0-3.0.6 overflow in X.509 punycode decoding, reachable through client certificates. */
#define TLS_OPENSSL_MIN 0x30000070L

struct transport_tls {
	unsigned refs;
	SSL_CTX *ctx; /* for new links; existing ones hold their own reference */
	char *cert, *key, *ca;
	char *identity; /* our certificate must name it; NULL: unchecked */
	unsigned npins;
	uint8_t pins[TRANSPORT_TLS_MAX_PINS][TLS_PIN_LEN];
	unsigned timeout_ms;
};

/* --- OpenSSL errors ------------------------------------------------------------------------ */

/* The earliest queued error (the cause; later ones are consequences), then the queue emptied. */
static void tls_err_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *lib, *reason;

	if (!e) {
		snprintf(buf, len, "unknown error");
		return;
	}
	lib = ERR_lib_error_string(e);
	reason = ERR_reason_error_string(e);
	if (reason) {
		snprintf(buf, len, "%s%s%s", lib ? lib : "", lib ? ": " : "", reason);
	} else {
		snprintf(buf, len, "error %#lx", e);
	}
	ERR_clear_error();
}

/* --- pins ---------------------------------------------------------------------------------- */

static int tls_b64_val(char c)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

static int tls_pin_hex(const char *s, uint8_t out[TLS_PIN_LEN])
{
	size_t i;

	for (i = 0; i < TLS_PIN_LEN; i++) {
		int hi = vb_hex_val(s[2 * i]), lo = vb_hex_val(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -EINVAL;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/*
 * 32 bytes are 43 base64 characters and one '=' (RFC 4648 section 4). The
 * last character carries 2 unused bits, which must be zero: one spelling
 * per key, so a pin compares as text too.
 */
static int tls_pin_b64(const char *s, uint8_t out[TLS_PIN_LEN])
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, n = 0;

	if (s[43] != '=') {
		return -EINVAL;
	}
	for (i = 0; i < 43; i++) {
		int v = tls_b64_val(s[i]);

		if (v < 0) {
			return -EINVAL;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	return n == TLS_PIN_LEN && (acc & ((1u << bits) - 1)) == 0 ? 0 : -EINVAL;
}

int tls_pin_parse(const char *s, size_t len, uint8_t out[TLS_PIN_LEN])
{
	static const char prefix[] = "sha256//";
	const size_t plen = sizeof(prefix) - 1;

	if (!s) {
		return -EINVAL;
	}
	if (len == 2 * TLS_PIN_LEN) {
		return tls_pin_hex(s, out);
	}
	if (len == plen + 44 && memcmp(s, prefix, plen) == 0) {
		return tls_pin_b64(s + plen, out);
	}
	return -EINVAL;
}

/* SHA-256 of the DER SubjectPublicKeyInfo (RFC 7469 section 2.4). 0 or -EINVAL. */
static int tls_spki_sha256(X509 *cert, uint8_t out[TLS_PIN_LEN])
{
	unsigned char *der = NULL;
	unsigned int n = 0;
	int len, ok;

	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (len <= 0) {
		return -EINVAL;
	}
	ok = EVP_Digest(der, (size_t)len, out, &n, EVP_sha256(), NULL);
	OPENSSL_free(der);
	return ok && n == TLS_PIN_LEN ? 0 : -EINVAL;
}

static int tls_pin_match(const struct transport_tls *tls, const uint8_t pin[TLS_PIN_LEN])
{
	unsigned i;

	for (i = 0; i < tls->npins; i++) {
		if (CRYPTO_memcmp(tls->pins[i], pin, TLS_PIN_LEN) == 0) {
			return 1;
		}
	}
	return 0;
}

/* --- identity ------------------------------------------------------------------------------ */

/* A node name as DNS spells it; also keeps control characters and '*' out of logs and checks. */
static int tls_name_ok(const unsigned char *p, size_t n)
{
	size_t i;

	if (n < 1 || n > TLS_IDENTITY_MAX) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_')) {
			return 0;
		}
	}
	return 1;
}

static int tls_name_copy(const unsigned char *p, size_t n, char *out, size_t len)
{
	if (!tls_name_ok(p, n) || n >= len) {
		return -EINVAL;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/*
 * SAN DNS names first. If the certificate has any, the CN is not consulted
 * even when none is usable (RFC 6125 section 6.4.4); a duplicated SAN
 * extension is refused. 1: found; 0: no DNS name; -EINVAL: refused.
 */
static int tls_san_identity(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *gens;
	int crit = 0, i, ndns = 0, rc = -EINVAL;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		return crit == -1 ? 0 : -EINVAL;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS) {
			continue;
		}
		ndns++;
		if (tls_name_copy(ASN1_STRING_get0_data(g->d.dNSName),
		                  (size_t)ASN1_STRING_length(g->d.dNSName), out, len) == 0) {
			rc = 1;
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	return ndns ? rc : 0;
}

/* The subject's CN, if there is exactly one. */
static int tls_cn_identity(X509 *cert, char *out, size_t len)
{
	const X509_NAME *subj = X509_get_subject_name(cert);
	unsigned char *utf8 = NULL;
	int idx, n, rc;

	idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0) {
		return -EINVAL;
	}
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
	if (n < 0) {
		return -EINVAL;
	}
	rc = tls_name_copy(utf8, (size_t)n, out, len);
	OPENSSL_free(utf8);
	return rc;
}

int tls_cert_identity(X509 *cert, char *out, size_t len)
{
	int rc = tls_san_identity(cert, out, len);

	if (rc != 0) {
		return rc > 0 ? 0 : rc;
	}
	return tls_cn_identity(cert, out, len);
}

/* --- verification -------------------------------------------------------------------------- */

/* At depth 0, once the chain is good: pins, then a usable identity. 1 to accept. */
static int tls_verify_leaf(struct tls_session *s, X509_STORE_CTX *xs)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	uint8_t pin[TLS_PIN_LEN];
	unsigned char b64[48];

	if (!cert || tls_spki_sha256(cert, pin) < 0) {
		snprintf(s->verify_why, sizeof(s->verify_why), "cannot hash the peer's public key");
		return 0;
	}
	if (s->tls->npins && !tls_pin_match(s->tls, pin)) {
		EVP_EncodeBlock(b64, pin, TLS_PIN_LEN);
		snprintf(s->verify_why, sizeof(s->verify_why),
		         "pin mismatch: the peer's key is sha256//%s", (char *)b64);
		return 0;
	}
	if (tls_cert_identity(cert, s->identity, sizeof(s->identity)) < 0) {
		s->identity[0] = '\0';
		snprintf(
		    s->verify_why, sizeof(s->verify_why),
		    "no usable identity in the peer certificate (SAN DNS or CN, [A-Za-z0-9._-])");
		return 0;
	}
	return 1;
}

/*
 * OpenSSL calls this per certificate with its own verdict (ok). The first
 * refusal is kept for the log line; at depth 0 a good chain must also pass
 * tls_verify_leaf, reported as an application verification failure.
 */
static int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_session *s = ssl ? SSL_get_app_data(ssl) : NULL;
	int depth = X509_STORE_CTX_get_error_depth(xs);

	if (!s) {
		return 0;
	}
	if (!ok) {
		if (!s->verify_why[0]) {
			snprintf(s->verify_why, sizeof(s->verify_why),
			         "certificate verify failed at depth %d: %s", depth,
			         X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
		}
		return 0;
	}
	if (depth == 0 && !tls_verify_leaf(s, xs)) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* --- contexts ------------------------------------------------------------------------------ */

/* Never prompt on a terminal for a key passphrase: an encrypted key just fails to load. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static int tls_load_cert(SSL_CTX *ctx, const char *path)
{
	return SSL_CTX_use_certificate_chain_file(ctx, path);
}

static int tls_load_key(SSL_CTX *ctx, const char *path)
{
	return SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
}

/* The CA file only: no default paths, so the system store never authenticates a peer. */
static int tls_load_ca(SSL_CTX *ctx, const char *path)
{
	return SSL_CTX_load_verify_locations(ctx, path, NULL);
}

static const struct {
	const char *what;
	size_t off; /* of the path in struct transport_tls */
	int (*load)(SSL_CTX *ctx, const char *path);
} tls_files[] = {
    {"certificate", offsetof(struct transport_tls, cert), tls_load_cert},
    {"key", offsetof(struct transport_tls, key), tls_load_key},
    {"CA", offsetof(struct transport_tls, ca), tls_load_ca},
};

static const char *tls_file_path(const struct transport_tls *tls, size_t i)
{
	return *(char *const *)((const char *)tls + tls_files[i].off);
}

/* Protocol policy (top of file); 0 or -EINVAL. */
static int tls_ctx_policy(SSL_CTX *ctx)
{
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* NO_AUTO_CHAIN: send the certificate file's chain, not one built from the peers' CA. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	/* FAIL_IF_NO_PEER_CERT applies to the server side; a client always gets one in TLS 1.3. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_num_tickets(ctx, 0) || !SSL_CTX_set_max_early_data(ctx, 0) ||
	    !SSL_CTX_set_recv_max_early_data(ctx, 0) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		return -EINVAL;
	}
	return 0;
}

/* Loads the three files, and checks the key belongs to the certificate. 0 or -errno + err. */
static int tls_ctx_load(SSL_CTX *ctx, const struct transport_tls *tls, char *err, size_t errlen)
{
	char why[200];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tls_files); i++) {
		const char *path = tls_file_path(tls, i);

		/* OpenSSL reports a missing file as a parse error: say which and why first. */
		if (access(path, R_OK) < 0) {
			int e = errno;

			snprintf(err, errlen, "%s %s: %s", tls_files[i].what, path, strerror(e));
			return -e;
		}
		ERR_clear_error();
		if (tls_files[i].load(ctx, path) != 1) {
			/* Loading the key checks it against the certificate already. */
			unsigned long e = ERR_peek_error();

			if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
			    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
				break;
			}
			tls_err_text(why, sizeof(why));
			snprintf(err, errlen, "%s %s: %s", tls_files[i].what, path, why);
			return -EINVAL;
		}
	}
	if (i < ARRAY_SIZE(tls_files) || SSL_CTX_check_private_key(ctx) != 1) {
		tls_err_text(why, sizeof(why));
		snprintf(err, errlen, "key %s does not match certificate %s: %s", tls->key,
		         tls->cert, why);
		return -EINVAL;
	}
	return 0;
}

/* Our own certificate names the node we are, or no peer would take our links. */
static int tls_ctx_check_name(SSL_CTX *ctx, const struct transport_tls *tls, char *err,
                              size_t errlen)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	char id[TLS_IDENTITY_MAX + 1];

	if (!tls->identity) {
		return 0;
	}
	if (!cert || tls_cert_identity(cert, id, sizeof(id)) < 0) {
		snprintf(err, errlen,
		         "certificate %s has no usable name (SAN DNS or CN); it must name node %s",
		         tls->cert, tls->identity);
		return -EINVAL;
	}
	if (strcmp(id, tls->identity) != 0) {
		snprintf(
		    err, errlen,
		    "certificate %s names %s, not this node (%s): peers would refuse its links",
		    tls->cert, id, tls->identity);
		return -EINVAL;
	}
	return 0;
}

static int tls_ctx_build(const struct transport_tls *tls, SSL_CTX **out, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int rc;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_method());
	if (!ctx) {
		ERR_clear_error();
		snprintf(err, errlen, "out of memory for an SSL context");
		return -ENOMEM;
	}
	if (tls_ctx_policy(ctx) < 0) {
		char why[200];

		tls_err_text(why, sizeof(why));
		snprintf(err, errlen, "TLS policy refused by OpenSSL: %s", why);
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	rc = tls_ctx_load(ctx, tls, err, errlen);
	if (rc == 0) {
		rc = tls_ctx_check_name(ctx, tls, err, errlen);
	}
	if (rc < 0) {
		SSL_CTX_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

static void tls_free_fields(struct transport_tls *tls)
{
	SSL_CTX_free(tls->ctx);
	free(tls->cert);
	free(tls->key);
	free(tls->ca);
	free(tls->identity);
	free(tls);
}

static int tls_config_copy(struct transport_tls *tls, const struct transport_tls_config *c,
                           char *err, size_t errlen)
{
	unsigned i;

	if (!c->cert || !c->key || !c->ca || !*c->cert || !*c->key || !*c->ca) {
		snprintf(err, errlen, "tls needs a certificate, a key and a CA file");
		return -EINVAL;
	}
	if (c->npins > TRANSPORT_TLS_MAX_PINS || (c->npins && !c->pins)) {
		snprintf(err, errlen, "at most %d pins", TRANSPORT_TLS_MAX_PINS);
		return -EINVAL;
	}
	for (i = 0; i < c->npins; i++) {
		const char *p = c->pins[i];

		if (!p || tls_pin_parse(p, strlen(p), tls->pins[i]) < 0) {
			snprintf(
			    err, errlen,
			    "pin \"%.80s\": want sha256//BASE64 (44 characters) or 64 hex digits",
			    p ? p : "");
			return -EINVAL;
		}
	}
	tls->npins = c->npins;
	tls->timeout_ms =
	    c->handshake_timeout_ms ? c->handshake_timeout_ms : TLS_TIMEOUT_DEFAULT_MS;
	tls->cert = strdup(c->cert);
	tls->key = strdup(c->key);
	tls->ca = strdup(c->ca);
	tls->identity = c->identity ? strdup(c->identity) : NULL;
	if (!tls->cert || !tls->key || !tls->ca || (c->identity && !tls->identity)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

struct transport_tls *transport_tls_new(const struct transport_tls_config *c, char *err,
                                        size_t errlen)
{
	struct transport_tls *tls;

	if (OpenSSL_version_num() < TLS_OPENSSL_MIN) {
		log_warnx("tls: %s is older than 3.0.7 (X.509 name decoding flaws reachable by "
		          "peers); upgrade OpenSSL",
		          OpenSSL_version(OPENSSL_VERSION));
	}
	tls = c ? calloc(1, sizeof(*tls)) : NULL;
	if (!tls) {
		snprintf(err, errlen, c ? "out of memory" : "no tls configuration");
		return NULL;
	}
	tls->refs = 1;
	if (tls_config_copy(tls, c, err, errlen) < 0 ||
	    tls_ctx_build(tls, &tls->ctx, err, errlen) < 0) {
		tls_free_fields(tls);
		return NULL;
	}
	return tls;
}

int transport_tls_reload(struct transport_tls *tls, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int rc;

	rc = tls_ctx_build(tls, &ctx, err, errlen);
	if (rc < 0) {
		log_warnx("tls: reload failed, keeping the current certificate: %s", err);
		return rc;
	}
	/* Links made from the old context hold their own reference to it. */
	SSL_CTX_free(tls->ctx);
	tls->ctx = ctx;
	log_info("tls: reloaded certificate %s, key %s, CA %s", tls->cert, tls->key, tls->ca);
	return 0;
}

struct transport_tls *tls_ref(struct transport_tls *tls)
{
	tls->refs++;
	return tls;
}

void transport_tls_free(struct transport_tls *tls)
{
	if (tls && --tls->refs == 0) {
		tls_free_fields(tls);
	}
}

unsigned tls_handshake_timeout_ms(const struct transport_tls *tls)
{
	return tls->timeout_ms;
}

/* --- sessions ------------------------------------------------------------------------------ */

int tls_session_start_bio(struct tls_session *s, BIO *rbio, int server)
{
	BIO *wbio = NULL;

	ERR_clear_error();
	s->verify_why[0] = s->identity[0] = s->security[0] = '\0';
	s->ssl = SSL_new(s->tls->ctx);
	if (!s->ssl || !rbio || BIO_new_bio_pair(&wbio, TLS_NET_BUF, &s->net, 0) != 1) {
		ERR_clear_error();
		BIO_free(rbio);
		SSL_free(s->ssl);
		s->ssl = NULL;
		s->net = NULL;
		return -ENOMEM;
	}
	SSL_set_bio(s->ssl, rbio, wbio); /* the SSL owns both from here */
	SSL_set_app_data(s->ssl, s);
	if (server) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
	}
	return 0;
}

/*
 * Reads go straight to the socket (read-ahead: several records per
 * recv). Writes go into a BIO pair the link empties with send(2): up to
 * TLS_NET_BUF of records per system call instead of one per record, no
 * SIGPIPE (MSG_NOSIGNAL), and alerts are flushed deliberately.
 */
int tls_session_start(struct tls_session *s, int fd, int server)
{
	return tls_session_start_bio(s, BIO_new_socket(fd, BIO_NOCLOSE), server);
}

void tls_session_end(struct tls_session *s)
{
	SSL_free(s->ssl); /* the socket BIO does not own fd (BIO_NOCLOSE) */
	s->ssl = NULL;
	BIO_free(s->net);
	s->net = NULL;
}

int tls_session_established(struct tls_session *s, char *why, size_t len)
{
	long vr = SSL_get_verify_result(s->ssl);

	/* The verify callback decided already; this guards against a path that skipped it. */
	if (!SSL_get0_peer_certificate(s->ssl) || vr != X509_V_OK || !s->identity[0]) {
		snprintf(why, len, "peer not authenticated: %s",
		         s->verify_why[0] ? s->verify_why : X509_verify_cert_error_string(vr));
		return -EPERM;
	}
	snprintf(s->security, sizeof(s->security), "%s %s", SSL_get_version(s->ssl),
	         SSL_CIPHER_get_name(SSL_get_current_cipher(s->ssl)));
	return 0;
}

/* OpenSSL reasons worth their own words (the bridge's logs and the tests look for these). */
static const struct {
	int reason;
	const char *why;
} tls_reasons[] = {
    {SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, "no client certificate"},
    {SSL_R_UNSUPPORTED_PROTOCOL, "protocol version: the peer does not offer TLS 1.3"},
    {SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, "protocol version: the peer refused TLS 1.3"},
    {SSL_R_WRONG_VERSION_NUMBER, "protocol version: not a TLS 1.3 peer"},
    {SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, "the peer requires a certificate"},
    {SSL_R_NO_SHARED_CIPHER, "no shared cipher suite"},
    {SSL_R_NO_SUITABLE_KEY_SHARE, "no shared group (X25519, P-256)"},
    {SSL_R_NO_SHARED_GROUPS, "no shared group (X25519, P-256)"},
    {SSL_R_HTTP_REQUEST, "an HTTP request, not TLS"},
};

static const char *tls_reason_words(int reason)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tls_reasons); i++) {
		if (tls_reasons[i].reason == reason) {
			return tls_reasons[i].why;
		}
	}
	return NULL;
}

/* SSL_ERROR_SSL: the first SSL-library error in the queue says what went wrong. */
static int tls_ssl_error(struct tls_session *s, char *why, size_t len)
{
	unsigned long e;
	int reason;

	while ((e = ERR_peek_error()) && ERR_GET_LIB(e) != ERR_LIB_SSL) {
		ERR_get_error();
	}
	if (!e) {
		snprintf(why, len, "TLS protocol error");
		return 0;
	}
	reason = ERR_GET_REASON(e);
	if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		ERR_clear_error();
		snprintf(why, len, "peer closed the connection without close_notify");
		return 1;
	}
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		ERR_clear_error();
		snprintf(why, len, "%s",
		         s->verify_why[0]
		             ? s->verify_why
		             : X509_verify_cert_error_string(SSL_get_verify_result(s->ssl)));
		return 0;
	}
	if (tls_reason_words(reason)) {
		ERR_clear_error();
		snprintf(why, len, "%s", tls_reason_words(reason));
		return 0;
	}
	if (reason >= SSL_AD_REASON_OFFSET) {
		/* An alert from the peer: its reason string names it ("tlsv1 alert unknown ca"). */
		char text[160];

		tls_err_text(text, sizeof(text));
		snprintf(why, len, "the peer refused: %s", text);
		return 0;
	}
	tls_err_text(why, len);
	return 0;
}

int tls_session_failure(struct tls_session *s, int ssl_err, char *why, size_t len)
{
	int e = errno, eof = 0;

	switch (ssl_err) {
	case SSL_ERROR_ZERO_RETURN:
		snprintf(why, len, "peer closed the connection");
		eof = 1;
		break;
	case SSL_ERROR_SYSCALL:
		eof = e == 0;
		snprintf(why, len, "%s",
		         eof ? "peer closed the connection without close_notify" : strerror(e));
		break;
	case SSL_ERROR_SSL:
		eof = tls_ssl_error(s, why, len);
		break;
	default:
		snprintf(why, len, "unexpected SSL error %d", ssl_err);
		break;
	}
	ERR_clear_error();
	return eof;
}
