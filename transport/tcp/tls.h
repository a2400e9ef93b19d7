/*
 * Between tls_ctx.c (OpenSSL contexts, verification, identities) and
 * tls_link.c (tls:// links on sockets); internal to transport/tcp/.
 */
#ifndef VB_TLS_H
#define VB_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "transport/transport.h"

#define TLS_PIN_LEN      32  /* SHA-256 */
#define TLS_IDENTITY_MAX 253 /* a DNS name */

/* One link's TLS state; the SSL's app data, read by the verify callback. */
struct tls_session {
	struct transport_tls *tls; /* the link's reference */
	SSL *ssl;                  /* reads fd through a socket BIO, writes into a BIO pair */
	BIO *net;                  /* the pair's far end: ciphertext for the caller to send */
	char verify_why[160];      /* why the verify callback refused */
	char identity[TLS_IDENTITY_MAX + 1]; /* set at depth 0 once the chain and pins passed */
	char security[64];                   /* "TLSv1.3 TLS_AES_256_GCM_SHA384" once UP */
};

/* Takes a reference. */
struct transport_tls *tls_ref(struct transport_tls *tls);
unsigned tls_handshake_timeout_ms(const struct transport_tls *tls);

/*
 * An SSL from tls's current context on fd (which stays the caller's), as
 * server or client; s->tls must be set. It reads fd itself; what it writes
 * waits in s->net (BIO_nread0/BIO_nread) for the caller to send. 0 or -ENOMEM.
 */
int tls_session_start(struct tls_session *s, int fd, int server);
/* The same reading from rbio, which the session owns from here (freed also on -ENOMEM). */
int tls_session_start_bio(struct tls_session *s, BIO *rbio, int server);
/* Frees the SSL and the pair (not fd, not the reference); identity and security stay readable. */
void tls_session_end(struct tls_session *s);
/* After SSL_do_handshake() returned 1: the verdict and identity re-checked. 0 or -EPERM + why. */
int tls_session_established(struct tls_session *s, char *why, size_t len);
/*
 * Why an SSL call failed, given SSL_get_error()'s code (errno intact for
 * SSL_ERROR_SYSCALL); drains the error queue. 1 if the peer just closed
 * the connection (close_notify or EOF), 0 for an error.
 */
int tls_session_failure(struct tls_session *s, int ssl_err, char *why, size_t len);

/* Parsers, also for tests: 0 or -EINVAL. */
int tls_pin_parse(const char *s, size_t len, uint8_t out[TLS_PIN_LEN]);
/* First usable SAN DNS name, else the (single) CN: 1..253 of [A-Za-z0-9._-]. */
int tls_cert_identity(X509 *cert, char *out, size_t len);

#endif
