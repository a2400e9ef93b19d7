#include "bridge/control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge/jw.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/node.h"

#define CTL_MAX_CLIENTS 16
#define CTL_LINE_MAX    256
#define CTL_TIMEOUT_NS  (5ull * 1000000000ull)

struct ctl_client {
	struct control *ctl;
	int fd;
	struct vb_watch *w;
	struct vb_timer *timeout;
	char line[CTL_LINE_MAX];
	size_t have;
	char *out;
	size_t out_len, out_off;
};

struct control {
	struct node *node;
	char path[108];
	int fd;
	struct vb_watch *w;
	struct ctl_client *clients[CTL_MAX_CLIENTS];
};

struct ctl_cmd {
	const char *name;
	void (*run)(struct control *c, const char *args, struct jw *w);
};

static void ctl_status(struct control *c, const char *args, struct jw *w)
{
	node_status_json(c->node, w);
}

static void ctl_stats(struct control *c, const char *args, struct jw *w)
{
	node_stats_json(c->node, w);
}

static const struct ctl_cmd ctl_cmds[] = {
    {"status", ctl_status},
    {"stats", ctl_stats},
};

static void ctl_client_free(struct ctl_client *cl)
{
	struct control *c = cl->ctl;

	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (c->clients[i] == cl) {
			c->clients[i] = NULL;
		}
	}
	vb_watch_free(cl->w);
	vb_timer_free(cl->timeout);
	close(cl->fd);
	free(cl->out);
	free(cl);
}

static void ctl_client_timeout(void *arg)
{
	struct ctl_client *cl = arg;

	log_warnx("control: client timed out");
	ctl_client_free(cl);
}

static void ctl_run(struct ctl_client *cl)
{
	char *args = strchr(cl->line, ' ');
	struct jw w;

	if (args) {
		*args++ = '\0';
	}
	jw_init(&w);
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		if (strcmp(cl->line, ctl_cmds[i].name) == 0) {
			ctl_cmds[i].run(cl->ctl, args ? args : "", &w);
			break;
		}
	}
	if (w.len == 0) {
		jw_obj_begin(&w, NULL);
		jw_str(&w, "error", "unknown command");
		jw_str(&w, "command", cl->line);
		jw_obj_end(&w);
	}
	jw_raw(&w, "\n", 1);
	if (w.failed) {
		jw_free(&w);
		ctl_client_free(cl);
		return;
	}
	cl->out = w.buf;
	cl->out_len = w.len;
	vb_watch_set(cl->w, VB_EV_WRITE);
}

static void ctl_client_write(struct ctl_client *cl)
{
	ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL);

	if (n < 0 && errno == EAGAIN) {
		return;
	}
	if (n <= 0) {
		ctl_client_free(cl);
		return;
	}
	cl->out_off += (size_t)n;
	if (cl->out_off == cl->out_len) {
		ctl_client_free(cl);
	}
}

static void ctl_client_io(int fd, unsigned ev, void *arg)
{
	struct ctl_client *cl = arg;
	ssize_t n;
	char *nl;

	if (cl->out) {
		ctl_client_write(cl);
		return;
	}
	n = recv(fd, cl->line + cl->have, sizeof(cl->line) - 1 - cl->have, 0);
	if (n < 0 && errno == EAGAIN) {
		return;
	}
	if (n <= 0) {
		ctl_client_free(cl);
		return;
	}
	cl->have += (size_t)n;
	cl->line[cl->have] = '\0';
	nl = strchr(cl->line, '\n');
	if (!nl) {
		if (cl->have == sizeof(cl->line) - 1) {
			log_warnx("control: command line too long");
			ctl_client_free(cl);
		}
		return;
	}
	*nl = '\0';
	if (nl > cl->line && nl[-1] == '\r') {
		nl[-1] = '\0';
	}
	ctl_run(cl);
}

static void ctl_accept(int fd, unsigned ev, void *arg)
{
	struct control *c = arg;
	struct ctl_client *cl;
	unsigned slot;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0) {
		return;
	}
	for (slot = 0; slot < CTL_MAX_CLIENTS && c->clients[slot]; slot++) {
	}
	cl = slot < CTL_MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
	if (!cl) {
		log_warnx("control: too many clients");
		close(cfd);
		return;
	}
	cl->ctl = c;
	cl->fd = cfd;
	cl->w = vb_watch_new(c->node->loop, cfd, VB_EV_READ, ctl_client_io, cl);
	cl->timeout = vb_timer_new(c->node->loop, ctl_client_timeout, cl);
	c->clients[slot] = cl;
	if (!cl->w || !cl->timeout) {
		ctl_client_free(cl);
		return;
	}
	vb_timer_arm(cl->timeout, CTL_TIMEOUT_NS);
}

struct control *control_new(struct node *n, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct control *c;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->node = n;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Replace a stale socket of an earlier run, never anything else. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		unlink(path);
	}
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 || listen(c->fd, 8) < 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		if (c->fd >= 0) {
			close(c->fd);
		}
		free(c);
		return NULL;
	}
	c->w = vb_watch_new(n->loop, c->fd, VB_EV_READ, ctl_accept, c);
	return c;
}

void control_free(struct control *c)
{
	if (!c) {
		return;
	}
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (c->clients[i]) {
			ctl_client_free(c->clients[i]);
		}
	}
	vb_watch_free(c->w);
	close(c->fd);
	unlink(c->path);
	free(c);
}
