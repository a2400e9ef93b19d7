/*
 * The scheme table and the thin dispatch from transport.h to each
 * implementation's ops (transport_private.h). Checks shared by every
 * transport (URI shape, parameters) live here so implementations can rely
 * on them.
 */
#include "transport/transport_private.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bridge/util.h"

static const struct transport_ops *const transport_schemes[] = {
    &tcp_transport_ops,
    &tls_transport_ops,
    &tsn_transport_ops,
};

/* Finds the ops for "scheme://rest"; *addr points at rest. */
static int transport_lookup(const char *uri, const struct transport_ops **ops, const char **addr)
{
	const char *sep;
	size_t n, i;

	if (!uri) {
		return -EINVAL;
	}
	sep = strstr(uri, "://");
	if (!sep) {
		return -EINVAL;
	}
	n = (size_t)(sep - uri);
	for (i = 0; i < ARRAY_SIZE(transport_schemes); i++) {
		const char *name = transport_schemes[i]->scheme;

		if (strlen(name) == n && strncmp(uri, name, n) == 0) {
			*ops = transport_schemes[i];
			*addr = sep + 3;
			return 0;
		}
	}
	return -EPROTONOSUPPORT;
}

/*
 * Messages are framed by a u32 prefix, so max_msg above UINT32_MAX cannot be
 * expressed; the ENOBUFS bound (4 * tx_high_water + max_msg) must not overflow.
 */
static int transport_params_check(const struct transport_params *p)
{
	if (!p || p->max_msg < TRANSPORT_MIN_MSG || p->max_msg > UINT32_MAX) {
		return -EINVAL;
	}
	if (p->tx_high_water == 0 || p->tx_high_water > (SIZE_MAX - UINT32_MAX) / 8) {
		return -EINVAL;
	}
	return 0;
}

int transport_connect(struct vb_loop *loop, const char *uri, const struct transport_params *p,
                      const struct transport_upcalls *up, void *arg, struct transport **out)
{
	const struct transport_ops *ops;
	const char *addr;
	struct transport *t;
	int rc;

	rc = transport_lookup(uri, &ops, &addr);
	if (rc < 0) {
		return rc;
	}
	rc = transport_params_check(p);
	if (rc < 0) {
		return rc;
	}
	rc = ops->connect(loop, addr, p, &t);
	if (rc < 0) {
		return rc;
	}
	transport_set_upcalls(t, up, arg);
	*out = t;
	return 0;
}

int transport_listen(struct vb_loop *loop, const char *uri, const struct transport_params *p,
                     transport_accept_cb cb, void *arg, struct transport_listener **out)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc;

	if (!cb) {
		return -EINVAL;
	}
	rc = transport_lookup(uri, &ops, &addr);
	if (rc < 0) {
		return rc;
	}
	rc = transport_params_check(p);
	if (rc < 0) {
		return rc;
	}
	return ops->listen(loop, addr, p, cb, arg, out);
}

void transport_listener_free(struct transport_listener *l)
{
	if (l) {
		l->ops->listener_free(l);
	}
}

const char *transport_listener_uri(const struct transport_listener *l)
{
	return l->uri;
}

void transport_set_upcalls(struct transport *t, const struct transport_upcalls *up, void *arg)
{
	t->up = up;
	t->arg = arg;
}

int transport_send(struct transport *t, const struct iovec *iov, int iovcnt)
{
	return t->ops->send(t, iov, iovcnt);
}

int transport_writable(const struct transport *t)
{
	return t->ops->writable(t);
}

void transport_pause_rx(struct transport *t, int pause)
{
	t->ops->pause_rx(t, pause);
}

void transport_close(struct transport *t)
{
	if (t) {
		t->ops->close(t);
	}
}

static const char *const transport_class_names[TRANSPORT_NCLASS] = {
    [TRANSPORT_CLASS_CONTROL] = "control",
    [TRANSPORT_CLASS_AUDIO] = "audio",
    [TRANSPORT_CLASS_VIDEO] = "video",
    [TRANSPORT_CLASS_BULK] = "bulk",
};

const char *transport_class_name(unsigned cls)
{
	return cls < TRANSPORT_NCLASS ? transport_class_names[cls] : "?";
}

int transport_class_parse(const char *name)
{
	for (unsigned i = 0; i < TRANSPORT_NCLASS; i++) {
		if (!strcmp(name, transport_class_names[i])) {
			return (int)i;
		}
	}
	return -EINVAL;
}

void transport_set_class(struct transport *t, uint32_t chan, unsigned cls)
{
	if (t->ops->set_class && cls < TRANSPORT_NCLASS) {
		t->ops->set_class(t, chan, cls);
	}
}

void transport_detail(const struct transport *t, char *buf, size_t len)
{
	if (len) {
		buf[0] = '\0';
	}
	if (t->ops->detail && len) {
		t->ops->detail(t, buf, len);
	}
}

unsigned transport_counters(const struct transport *t, struct transport_counter *out, unsigned max)
{
	return t->ops->counters ? t->ops->counters(t, out, max) : 0;
}

int transport_check_uri(const char *uri, int listen, char *why, size_t len)
{
	const struct transport_ops *ops;
	const char *addr;
	int rc = transport_lookup(uri, &ops, &addr);

	if (rc < 0) {
		snprintf(why, len, "unknown transport in \"%.64s\"", uri ? uri : "");
		return rc;
	}
	return ops->check ? ops->check(addr, listen, why, len) : 0;
}

const char *transport_kind(const struct transport *t)
{
	return t->ops->scheme;
}

const char *transport_peer(const struct transport *t)
{
	return t->peer;
}

void transport_get_stats(const struct transport *t, struct transport_stats *st)
{
	t->ops->get_stats(t, st);
}

const char *transport_peer_identity(const struct transport *t)
{
	return t->ops->peer_identity ? t->ops->peer_identity(t) : "";
}

const char *transport_security(const struct transport *t)
{
	return t->ops->security ? t->ops->security(t) : "plaintext";
}

/* RFC 3986 host: reg-name characters; IPv6 literals (and a %zone) inside brackets. */
static int host_char_ok(char c, int bracketed)
{
	if (isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_') {
		return 1;
	}
	return bracketed && (c == ':' || c == '%');
}

/* Decimal 0..65535, at least one digit, nothing else. */
static int parse_port(const char *s, size_t len, uint16_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (len == 0 || len > 5) {
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -EINVAL;
		}
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > UINT16_MAX) {
		return -EINVAL;
	}
	*out = (uint16_t)v;
	return 0;
}

int transport_parse_hostport(const char *s, size_t len, struct transport_hostport *out)
{
	const char *host = s, *colon;
	size_t hlen, i;
	int bracketed = len > 0 && s[0] == '[';

	if (bracketed) {
		const char *close = memchr(s, ']', len);

		if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':') {
			return -EINVAL;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		/* An unbracketed IPv6 literal has several colons: the port would be ambiguous. */
		colon = memchr(s, ':', len);
		if (!colon) {
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(out->host)) {
		return -EINVAL;
	}
	for (i = 0; i < hlen; i++) {
		if (!host_char_ok(host[i], bracketed)) {
			return -EINVAL;
		}
	}
	if (parse_port(colon + 1, len - (size_t)(colon + 1 - s), &out->port) < 0) {
		return -EINVAL;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	return 0;
}
