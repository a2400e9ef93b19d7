/*
 * tcp-bench: the raw TCP baseline that vbridge's numbers are held against,
 * run between the same namespaces in the same run (tests/e2e/bench.sh).
 *
 *   tcp-bench server --listen ADDR:PORT
 *   tcp-bench pingpong --connect ADDR:PORT [--request 64] [--reply 4096] [--count N]
 *                      [--seconds T]
 *   tcp-bench stream --connect ADDR:PORT [--size 65536] [--seconds T]
 *
 * A connection opens with a 16-byte hello {le32 magic, le32 mode, le32
 * request, le32 reply}. pingpong: the client sends request bytes, the server
 * answers reply bytes, once per round trip. stream: the client writes size
 * bytes at a time until it half-closes; the server then answers the byte
 * count it read (le64) and closes, so the rate counts only what arrived.
 * TCP_NODELAY on both ends, as vbridge's own links use.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tools/bench.h"

#define HELLO_MAGIC    0x42544256u /* "VBTB" */
#define HELLO_SIZE     16u
#define MAX_MSG        (16u << 20)
#define IDLE_TIMEOUT_S 30
#define STREAM_SECONDS 5
#define MODE_PINGPONG  1u
#define MODE_STREAM    2u
#define STREAM_CHUNK   (128u << 10) /* as iperf3 reads */

struct opts {
	const char *addr;
	uint64_t request, reply, size, count, warmup;
	double seconds;
	bool json;
};

/* 0 on success, -1 on EOF before len bytes, -errno on error. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n == 0) {
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* "host:port" or "[v6]:port" */
static struct addrinfo *resolve(const char *spec, bool passive)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
	char host[256];
	const char *colon = strrchr(spec, ':'), *h = host;
	struct addrinfo *ai;
	size_t hl;
	int rc;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
		bench_die("%s: want ADDR:PORT", spec);
	}
	hl = (size_t)(colon - spec);
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		h = host + 1;
	}
	rc = getaddrinfo(h, colon + 1, &hints, &ai);
	if (rc != 0) {
		bench_die("%s: %s", spec, gai_strerror(rc));
	}
	return ai;
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		bench_die("TCP_NODELAY: %s", strerror(errno));
	}
}

/* ---- server ---- */

static void serve_pingpong(int fd, uint32_t req, uint32_t rep)
{
	uint8_t *buf = calloc(1, req > rep ? req : rep);

	if (!buf) {
		fprintf(stderr, "tcp-bench: server: out of memory\n");
		return;
	}
	while (read_full(fd, buf, req) == 0) {
		if (write_full(fd, buf, rep) < 0) {
			break;
		}
	}
	free(buf);
}

/*
 * A small static buffer, as iperf3 reads into: with a 16 MiB malloc'd one the
 * receiver, not the link, was the bottleneck (about 1.1 against 1.7 GB/s on
 * loopback here, the socket's receive queue growing to 11 MB).
 */
static void serve_stream(int fd)
{
	static uint8_t buf[STREAM_CHUNK];
	uint64_t total = 0;
	uint8_t out[8];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return;
		}
		total += (uint64_t)n;
	}
	bench_put_le64(out, total);
	write_full(fd, out, sizeof(out));
}

static void serve_one(int fd)
{
	uint8_t hello[HELLO_SIZE];
	uint32_t mode, req, rep;

	if (read_full(fd, hello, sizeof(hello)) < 0 || bench_get_le32(hello) != HELLO_MAGIC) {
		fprintf(stderr, "tcp-bench: server: bad hello, connection dropped\n");
		return;
	}
	mode = bench_get_le32(hello + 4);
	req = bench_get_le32(hello + 8);
	rep = bench_get_le32(hello + 12);
	if (mode == MODE_PINGPONG && req >= 1 && req <= MAX_MSG && rep >= 1 && rep <= MAX_MSG) {
		serve_pingpong(fd, req, rep);
	} else if (mode == MODE_STREAM) {
		serve_stream(fd);
	} else {
		fprintf(stderr, "tcp-bench: server: mode %u request %u reply %u refused\n", mode,
		        req, rep);
	}
}

/* One client at a time: the benchmark runs its workloads one after another. */
static int cmd_server(const struct opts *o)
{
	struct addrinfo *ai = resolve(o->addr, true);
	const struct timeval idle = {.tv_sec = IDLE_TIMEOUT_S};
	int one = 1, lfd, fd;

	lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		bench_die("socket: %s", strerror(errno));
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 8) < 0) {
		bench_die("listen %s: %s", o->addr, strerror(errno));
	}
	freeaddrinfo(ai);
	fprintf(stderr, "tcp-bench: listening on %s\n", o->addr);
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			bench_die("accept: %s", strerror(errno));
		}
		set_nodelay(fd);
		/* Clients are served one at a time: an idle one must not hold the others off. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
		serve_one(fd);
		close(fd);
	}
}

/* ---- clients ---- */

static int dial(const struct opts *o, uint32_t mode, uint32_t req, uint32_t rep)
{
	struct addrinfo *ai = resolve(o->addr, false);
	uint8_t hello[HELLO_SIZE];
	int fd;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int err = errno;

		freeaddrinfo(ai);
		bench_die("connect %s: %s", o->addr, strerror(err));
	}
	freeaddrinfo(ai);
	set_nodelay(fd);
	bench_put_le32(hello, HELLO_MAGIC);
	bench_put_le32(hello + 4, mode);
	bench_put_le32(hello + 8, req);
	bench_put_le32(hello + 12, rep);
	if (write_full(fd, hello, sizeof(hello)) < 0) {
		bench_die("hello: %s", strerror(errno));
	}
	return fd;
}

static void round_trip(int fd, uint8_t *buf, const struct opts *o)
{
	int rc;

	if ((rc = write_full(fd, buf, o->request)) < 0) {
		bench_die("send: %s", strerror(-rc));
	}
	if ((rc = read_full(fd, buf, o->reply)) < 0) {
		bench_die("receive: %s", rc == -1 ? "server closed the connection" : strerror(-rc));
	}
}

static int cmd_pingpong(const struct opts *o)
{
	static struct bench_hist lat;
	size_t bufsz = o->request > o->reply ? o->request : o->reply;
	uint8_t *buf = malloc(bufsz);
	uint64_t t0, t, start, deadline, n = 0;
	int fd;

	if (!buf) {
		bench_die("out of memory");
	}
	memset(buf, 0xa5, bufsz);
	fd = dial(o, MODE_PINGPONG, (uint32_t)o->request, (uint32_t)o->reply);
	for (uint64_t i = 0; i < o->warmup; i++) {
		round_trip(fd, buf, o);
	}
	bench_hist_reset(&lat);
	start = t = bench_now_ns();
	deadline = o->seconds > 0 ? start + (uint64_t)(o->seconds * 1e9) : UINT64_MAX;
	for (; n < o->count && t < deadline; n++) {
		t0 = t;
		round_trip(fd, buf, o);
		t = bench_now_ns();
		bench_hist_add(&lat, t - t0);
	}
	close(fd);
	bench_print(stdout,
	            &(struct bench_result){.tool = "tcp",
	                                   .mode = "pingpong",
	                                   .size = o->reply,
	                                   .depth = 1,
	                                   .queues = 1,
	                                   .requests = n,
	                                   .bytes = n * (o->request + o->reply),
	                                   .seconds = (double)(t - start) / 1e9,
	                                   .has_latency = true,
	                                   .lat = &lat},
	            o->json);
	free(buf);
	return 0;
}

static int cmd_stream(const struct opts *o)
{
	uint8_t *buf = malloc(o->size), got[8];
	uint64_t start, deadline, writes = 0, sent = 0, recvd, end;
	int fd, rc;

	if (!buf) {
		bench_die("out of memory");
	}
	memset(buf, 0xa5, o->size);
	fd = dial(o, MODE_STREAM, (uint32_t)o->size, 0);
	start = bench_now_ns();
	deadline = start + (uint64_t)((o->seconds > 0 ? o->seconds : STREAM_SECONDS) * 1e9);
	do {
		if ((rc = write_full(fd, buf, o->size)) < 0) {
			bench_die("send: %s", strerror(-rc));
		}
		writes++;
		sent += o->size;
	} while (bench_now_ns() < deadline);
	shutdown(fd, SHUT_WR);
	if ((rc = read_full(fd, got, sizeof(got))) < 0) {
		bench_die("no byte count from the server: %s", rc == -1 ? "EOF" : strerror(-rc));
	}
	end = bench_now_ns();
	recvd = bench_get_le64(got);
	if (recvd != sent) {
		bench_die("server read %" PRIu64 " bytes, %" PRIu64 " were sent", recvd, sent);
	}
	close(fd);
	bench_print(stdout,
	            &(struct bench_result){.tool = "tcp",
	                                   .mode = "stream",
	                                   .size = o->size,
	                                   .depth = 1,
	                                   .queues = 1,
	                                   .requests = writes,
	                                   .bytes = recvd,
	                                   .seconds = (double)(end - start) / 1e9},
	            o->json);
	free(buf);
	return 0;
}

/* ---- command line ---- */

struct cmd {
	const char *name;
	int (*run)(const struct opts *o);
};

static const struct cmd cmds[] = {
    {"server", cmd_server},
    {"pingpong", cmd_pingpong},
    {"stream", cmd_stream},
};

#define OPT(field) offsetof(struct opts, field)

static const struct bench_opt opt_table[] = {
    {"listen", BO_STR, OPT(addr), 0, 0, "ADDR:PORT  server: where to listen"},
    {"connect", BO_STR, OPT(addr), 0, 0, "ADDR:PORT  client: the server"},
    {"request", BO_NUM, OPT(request), 1, MAX_MSG, "BYTES      pingpong: bytes sent (default 64)"},
    {"reply", BO_NUM, OPT(reply), 1, MAX_MSG, "BYTES      pingpong: bytes answered (default 4096)"},
    {"count", BO_NUM, OPT(count), 1, UINT32_MAX,
     "N          pingpong: round trips (default 10000)"},
    {"warmup", BO_NUM, OPT(warmup), 0, UINT32_MAX,
     "N          pingpong: round trips before measuring (default 100)"},
    {"size", BO_NUM, OPT(size), 1, MAX_MSG, "BYTES      stream: bytes per write (default 64k)"},
    {"seconds", BO_SECONDS, OPT(seconds), 0, 0,
     "T          stream: how long to write (default 5);\n"
     "                             pingpong: stop after T s even before --count"},
    {"json", BO_FLAG, OPT(json), 0, 0, "           print one JSON object instead of a line"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static const char synopsis[] = "usage: tcp-bench server --listen ADDR:PORT\n"
                               "       tcp-bench pingpong --connect ADDR:PORT [options]\n"
                               "       tcp-bench stream --connect ADDR:PORT [options]\n";

int main(int argc, char **argv)
{
	struct opts o = {.request = 64,
	                 .reply = 4096,
	                 .size = 65536,
	                 .count = 10000,
	                 .warmup = 100,
	                 .seconds = 0};
	const struct cmd *cmd = &cmds[bench_pick_cmd(argc, argv, "tcp-bench", synopsis, cmds,
	                                             sizeof(cmds) / sizeof(cmds[0]),
	                                             sizeof(cmds[0]), opt_table, N_OPTS)];

	bench_getopt(argc, argv, synopsis, opt_table, N_OPTS, &o);
	if (optind != argc || !o.addr) {
		fprintf(stderr, "%s(--help lists the options)\n", synopsis);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmd->run(&o);
}
