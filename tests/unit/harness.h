/*
 * Helpers of the cmocka unit tests: tests/harness.h with the checks made, a
 * queue's counter read from a node's status JSON, and a scripted peer node
 * that speaks the wire protocol (bridge/wire.h) to the node under test over
 * a socket, one whole message at a time.
 */
#ifndef VB_TESTS_UNIT_HARNESS_H
#define VB_TESTS_UNIT_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bridge/jw.h"
#include "bridge/loop.h"
#include "bridge/util.h"
#include "bridge/wire.h"
#include "tests/harness.h"

/* ---- the process: descriptors and mappings ---- */

static inline int fd_count(void)
{
	int n = harness_fd_count();

	assert_true(n >= 0);
	return n;
}

static inline int map_count(const char *tag)
{
	int n = harness_map_count(tag);

	assert_true(n >= 0);
	return n;
}

/* ---- a node's status ---- */

/*
 * Counter what of queue q in the status JSON w holds (an export's or an
 * import's, as vbridgectl shows it); fails the test if it is not there.
 * Frees w.
 */
static inline uint64_t status_counter(struct jw *w, unsigned q, const char *what)
{
	char key[32], field[32];
	const char *at;
	uint64_t v;

	assert_false(w->failed);
	jw_raw(w, "", 1); /* NUL */
	snprintf(key, sizeof(key), "{\"index\":%u,", q);
	snprintf(field, sizeof(field), "\"%s\":", what);
	at = strstr(w->buf, key);
	assert_non_null(at);
	at = strstr(at, field);
	assert_non_null(at);
	v = strtoull(at + strlen(field), NULL, 10);
	jw_free(w);
	return v;
}

/* ---- a scripted peer node ---- */

struct peer {
	struct vb_loop *loop; /* the node under test's, pumped while we wait */
	int fd;               /* our end of its link, or -1 */
	const char *node;     /* the node under test, for failure messages ("exporter") */
	int expect_ms;        /* how long peer_expect() waits */
	bool skip_ping;       /* peer_expect() passes over PINGs (keepalives) */
	uint8_t rx[1 << 17];  /* received, not yet taken */
	size_t rxlen;
};

static inline void peer_send(struct peer *p, const struct wire_msg *m)
{
	uint8_t buf[WIRE_HDR_LEN + 512];
	size_t n = wire_encode(buf, sizeof(buf), m);

	assert_true(n > 0);
	assert_int_equal(send(p->fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The next whole message into *m (pointers into copy), or false after timeout_ms. */
static inline bool peer_recv(struct peer *p, struct wire_msg *m, uint8_t *copy, size_t cap,
                             int timeout_ms)
{
	for (int t = 0;; t++) {
		uint32_t len = p->rxlen >= 4 ? get_le32(p->rx) : 0;
		const char *why = NULL;

		if (len && p->rxlen >= len) {
			assert_true(len <= cap);
			memcpy(copy, p->rx, len);
			memmove(p->rx, p->rx + len, p->rxlen - len);
			p->rxlen -= len;
			if (wire_decode(copy, len, m, &why) < 0) {
				fail_msg("%s sent a malformed message: %s", p->node, why);
			}
			return true;
		}
		if (t >= timeout_ms) {
			return false;
		}
		if (harness_wait_readable(p->loop, p->fd, 1)) {
			ssize_t n =
			    recv(p->fd, p->rx + p->rxlen, sizeof(p->rx) - p->rxlen, MSG_DONTWAIT);

			assert_true(n > 0);
			p->rxlen += (size_t)n;
		}
	}
}

/* The next message (past PINGs if skip_ping) must come within expect_ms and be a type. */
static inline void peer_expect(struct peer *p, uint8_t type, struct wire_msg *m, uint8_t *copy,
                               size_t cap)
{
	do {
		if (!peer_recv(p, m, copy, cap, p->expect_ms)) {
			fail_msg("no %s from the %s", wire_type_name(type), p->node);
		}
	} while (p->skip_ping && m->type == WIRE_PING);
	if (m->type != type) {
		fail_msg("%s from the %s, want %s%s%s", wire_type_name(m->type), p->node,
		         wire_type_name(type), m->type == WIRE_ERROR ? ": " : "",
		         m->type == WIRE_ERROR ? m->u.error.reason : "");
	}
}

#endif
