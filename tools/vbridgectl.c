/* vbridgectl: inspect a running vbridged over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_DEFAULT_SOCKET "/run/vbridge/vbridged.sock"
#define CTL_TIMEOUT_MS     5000
#define CTL_MAX_REPLY      (16u << 20)

struct ctl_opts {
	const char *socket;
	int json;
};

/* Sends one command line and returns the whole reply (malloc'd), or NULL. */
static char *ctl_request(const char *path, const char *cmd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = 0, cap = 65536;
	char *buf;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vbridgectl: socket path too long\n");
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "vbridgectl: %s: %s (is vbridged running?)\n", path,
		        strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return NULL;
	}
	if (dprintf(fd, "%s\n", cmd) < 0 || !(buf = malloc(cap))) {
		close(fd);
		return NULL;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, CTL_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "vbridgectl: no answer from %s\n", path);
			goto fail;
		}
		if (len + 1 >= cap) {
			char *nb = cap < CTL_MAX_REPLY ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			goto fail;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static uint64_t ju64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A transport's own counters, "name value" pairs on one line (none: nothing). */
static void print_counters(const char *indent, json_object *c)
{
	const char *sep = "";

	if (!c || !json_object_is_type(c, json_type_object) || !json_object_object_length(c)) {
		return;
	}
	printf("%s", indent);
	json_object_object_foreach(c, key, val)
	{
		printf("%s%s %" PRIu64, sep, key, (uint64_t)json_object_get_int64(val));
		sep = ", ";
	}
	printf("\n");
}

static void print_queues(json_object *dev, const char *in_key, const char *out_key)
{
	json_object *qs = jget(dev, "queues");

	for (size_t i = 0; qs && i < json_object_array_length(qs); i++) {
		json_object *q = json_object_array_get_idx(qs, i);

		printf("    queue %" PRIu64 ": %s size %" PRIu64 ", requests %" PRIu64
		       ", completions %" PRIu64 ", inflight %" PRIu64 ", %s %" PRIu64
		       " B, %s %" PRIu64 " B\n",
		       ju64(q, "index"),
		       json_object_get_boolean(jget(q, "started")) ? "started" : "stopped",
		       ju64(q, "size"), ju64(q, "requests"), ju64(q, "completions"),
		       ju64(q, "inflight"), out_key, ju64(q, out_key), in_key, ju64(q, in_key));
	}
}

static int64_t ji64(json_object *o, const char *k)
{
	json_object *v = jget(o, k);

	return v ? json_object_get_int64(v) : 0;
}

static void print_time(json_object *t)
{
	if (!t) {
		return;
	}
	printf("time: %s (%s)\n", jstr(t, "state"), jstr(t, "reason"));
	if (*jstr(t, "ptp4l")) {
		printf("  ptp4l %s, port %s, grandmaster %s%s, master offset %" PRId64
		       " ns, rate %+" PRId64 " ppb, last Sync %.1f s ago\n",
		       jstr(t, "ptp4l"), *jstr(t, "port_state") ? jstr(t, "port_state") : "-",
		       *jstr(t, "gm_identity") ? jstr(t, "gm_identity") : "-",
		       json_object_get_boolean(jget(t, "grandmaster")) ? " (this node)" : "",
		       ji64(t, "master_offset_ns"), ji64(t, "rate_ppb"),
		       ji64(t, "sync_age_ns") < 0 ? -1.0 : (double)ji64(t, "sync_age_ns") / 1e9);
	}
	printf("  TAI offset %" PRId64 " s from %s\n", ji64(t, "tai_offset_s"),
	       jstr(t, "tai_source"));
}

static void print_status(json_object *st)
{
	json_object *a;

	printf("node %s (vbridged %s), up %" PRIu64 " s, epoch %s\n", jstr(st, "node"),
	       jstr(st, "version"), ju64(st, "uptime_s"), jstr(st, "epoch"));
	print_time(jget(st, "time"));
	a = jget(st, "listen");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		printf("listening on %s\n",
		       json_object_get_string(json_object_array_get_idx(a, i)));
	}
	a = jget(st, "links");
	printf("links:%s\n", a && json_object_array_length(a) ? "" : " none");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *l = json_object_array_get_idx(a, i);

		printf("  %s %s %s, peer %s, %s, tx %" PRIu64 " msgs/%" PRIu64 " B, rx %" PRIu64
		       " msgs/%" PRIu64 " B, rtt %" PRIu64 " us%s%s\n",
		       jstr(l, "uri"), jstr(l, "direction"), jstr(l, "state"), jstr(l, "peer_node"),
		       jstr(l, "security"), ju64(l, "tx_msgs"), ju64(l, "tx_bytes"),
		       ju64(l, "rx_msgs"), ju64(l, "rx_bytes"), ju64(l, "rtt_us"),
		       *jstr(l, "last_error") ? ", last error: " : "", jstr(l, "last_error"));
		if (*jstr(l, "transport_detail")) {
			printf("    %s\n", jstr(l, "transport_detail"));
		}
		print_counters("    ", jget(l, "transport_counters"));
	}
	a = jget(st, "imports");
	printf("imports:%s\n", a && json_object_array_length(a) ? "" : " none");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *d = json_object_array_get_idx(a, i);

		printf("  %s from %s: %s, %s, socket %s, VMM %s%s%s\n", jstr(d, "name"),
		       jstr(d, "source"), jstr(d, "state"), jstr(d, "device_type"),
		       jstr(d, "socket"),
		       json_object_get_boolean(jget(d, "vmm_connected")) ? "connected" : "none",
		       *jstr(d, "last_error") ? ", last error: " : "", jstr(d, "last_error"));
		print_queues(d, "bytes_in", "bytes_out");
	}
	a = jget(st, "exports");
	printf("exports:%s\n", a && json_object_array_length(a) ? "" : " none");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *d = json_object_array_get_idx(a, i);

		printf("  %s (%s, %s): %s%s%s%s%s\n", jstr(d, "name"), jstr(d, "device_type"),
		       jstr(d, "backend"), jstr(d, "state"), *jstr(d, "importer") ? " by " : "",
		       jstr(d, "importer"), *jstr(d, "last_error") ? ", last error: " : "",
		       jstr(d, "last_error"));
		print_queues(d, "bytes_out", "bytes_in");
	}
}

/* One histogram as "n N, p50 X us, p99 Y us, max Z us". */
static void print_hist(const char *what, json_object *h)
{
	if (!h || !ju64(h, "count")) {
		return;
	}
	printf("      %-15s n %" PRIu64 ", min %.1f, p50 %.1f, p99 %.1f, max %.1f us%s\n", what,
	       ju64(h, "count"), (double)ji64(h, "min_ns") / 1e3, (double)ji64(h, "p50_ns") / 1e3,
	       (double)ji64(h, "p99_ns") / 1e3, (double)ji64(h, "max_ns") / 1e3,
	       ju64(h, "below_zero") ? " (some below zero)" : "");
}

static void print_timing(const char *what, json_object *t)
{
	if (!t) {
		return;
	}
	printf("    %s: stamped %" PRIu64 ", timed %" PRIu64 ", held %" PRIu64 ", late %" PRIu64
	       ", dropped %" PRIu64 ", unsynchronized %" PRIu64 "\n",
	       what, ju64(t, "stamped"), ju64(t, "timed"), ju64(t, "held"), ju64(t, "late"),
	       ju64(t, "dropped"), ju64(t, "unsync"));
	print_hist("one-way latency", jget(t, "latency"));
	print_hist("jitter |D|", jget(jget(t, "jitter"), "delta"));
	print_hist("release-deadline", jget(t, "delivery_error"));
}

static void print_stats(json_object *st)
{
	json_object *a;

	printf("node %s\n", jstr(st, "node"));
	print_time(jget(st, "time"));
	a = jget(st, "imports");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *d = json_object_array_get_idx(a, i);
		json_object *qs = jget(d, "queues");

		printf("import %s (on-unsync %s%s)\n", jstr(d, "name"), jstr(d, "on_unsync"),
		       json_object_get_boolean(jget(d, "holding")) ? ", holding" : "");
		for (size_t k = 0; qs && k < json_object_array_length(qs); k++) {
			json_object *q = json_object_array_get_idx(qs, k);

			printf("  queue %" PRIu64 ": latency budget %.3f ms, late %s\n",
			       ju64(q, "index"), (double)ju64(q, "latency_budget_ns") / 1e6,
			       jstr(q, "late"));
			print_timing("completions", jget(q, "completions_timing"));
		}
	}
	a = jget(st, "exports");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *d = json_object_array_get_idx(a, i);
		json_object *qs = jget(d, "queues");

		printf("export %s\n", jstr(d, "name"));
		for (size_t k = 0; qs && k < json_object_array_length(qs); k++) {
			json_object *q = json_object_array_get_idx(qs, k);

			printf("  queue %" PRIu64 ":\n", ju64(q, "index"));
			print_timing("requests", jget(q, "requests_timing"));
		}
	}
}

/* Asks vbridged for cmd; prints the answer raw (--json) or through print. */
static int ctl_show(const struct ctl_opts *o, const char *cmd, void (*print)(json_object *))
{
	char *reply = ctl_request(o->socket, cmd);
	json_object *st;

	if (!reply) {
		return 1;
	}
	if (o->json) {
		fputs(reply, stdout);
		free(reply);
		return 0;
	}
	st = json_tokener_parse(reply);
	free(reply);
	if (!st) {
		fprintf(stderr, "vbridgectl: malformed answer from vbridged\n");
		return 1;
	}
	if (jget(st, "error")) {
		fprintf(stderr, "vbridgectl: %s\n", jstr(st, "error"));
		json_object_put(st);
		return 1;
	}
	print(st);
	json_object_put(st);
	return 0;
}

static int cmd_status(const struct ctl_opts *o, int argc, char **argv)
{
	return ctl_show(o, "status", print_status);
}

static int cmd_stats(const struct ctl_opts *o, int argc, char **argv)
{
	return ctl_show(o, "stats", print_stats);
}

static const struct ctl_subcmd {
	const char *name;
	int (*run)(const struct ctl_opts *o, int argc, char **argv);
	const char *help;
} subcmds[] = {
    {"status", cmd_status, "node, time, links, devices and queues with their counters"},
    {"stats", cmd_stats, "per queue: one-way latency, jitter and delivery-time error histograms"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vbridgectl [-s SOCKET] [--json] COMMAND\n"
	           "  -s, --socket PATH  control socket (default " CTL_DEFAULT_SOCKET ")\n"
	           "  -j, --json         print the answer as JSON\n"
	           "commands:\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++) {
		fprintf(f, "  %-10s %s\n", subcmds[i].name, subcmds[i].help);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl_opts o = {.socket = getenv("VBRIDGE_CONTROL")};
	int c;

	if (!o.socket) {
		o.socket = CTL_DEFAULT_SOCKET;
	}
	while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++) {
		if (strcmp(argv[optind], subcmds[i].name) == 0) {
			/* --json may also follow the command */
			for (int k = optind + 1; k < argc; k++) {
				if (strcmp(argv[k], "--json") == 0 || strcmp(argv[k], "-j") == 0) {
					o.json = 1;
				}
			}
			return subcmds[i].run(&o, argc - optind, argv + optind);
		}
	}
	fprintf(stderr, "vbridgectl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
