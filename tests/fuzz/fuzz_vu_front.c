/*
 * libFuzzer target for the vhost-user frontend role (bridge/vu_front.c with
 * bridge/vu_io.c, vu_msg.c): the fuzzer is the device backend.
 *
 * The harness listens on a UNIX socket in a temporary directory made once.
 * Each input connects a new vu_front to it, accepts the connection and runs
 * records, most of them calls of the vu_front API as the exporter makes
 * them. Before a call the harness writes the backend's answer into the
 * accepted socket (honest, mutated, cut short, doubled, missing), so a call
 * never waits for bytes still to come and the waits can be 0 or 1 ms. Raw
 * records put any bytes and fds in the stream between calls; the backend
 * channel, once the frontend has opened it, gets messages of its own.
 *
 * Input format (fields little-endian; past the end everything reads 0):
 *   input   := opts:u8 record*
 *     opts bit 0: waits of 1 ms (vu_front_connect's timeout_ms) instead of 0
 *   record  := op:u8 body; (op & 31) % 22 selects, op >> 5 is the answer mode
 *     0-17: a call of calls[]: body := args value answer
 *       args: set_features, set_protocol_features: v:u64; set_mem_table:
 *       n:u8 (n % 10 regions; 0 and 9 are refused); set_vring_num,
 *       set_vring_base: idx:u8 num:u16; set_vring_addr, get_vring_base:
 *       idx:u8; set_vring_kick, set_vring_call: idx:u8 f:u8 (bit 0: no fd,
 *       bit 1: idx + 256, refused); set_vring_enable: idx:u8 on:u8;
 *       get_config, set_config: off:u8 len:u16 (len % 260; beyond 256
 *       refused); the others none
 *       value: what the reply carries: u64 for get_features,
 *       get_protocol_features, get_queue_num; num:u32 for get_vring_base
 *       (index: the one asked for); data[len] for get_config; for the
 *       others a u64 ack, 0 unless mode 1 reads it here
 *       The reply R: that value with REPLY and the call's code; for a call
 *       that waits for none, an ack-shaped u64 all the same.
 *       answer, by mode: 0: R if the call waits for it; 1: the same, with the
 *       ack value from the input; 2: nothing; 3: R mutated: dreq:u8 (xor into
 *       the code) dflags:u8 (xor into the flags) dsize:u8 (int8 added to the
 *       size; bytes past the payload are 0) n:u8 fdspec[n % 13] (on the first
 *       byte); 4: as 0, then EOF; 5: R cut after cut:u8 % its length bytes,
 *       then EOF; 6: R, twice if the call waits for it; 7: R with n:u8
 *       fdspec[n % 13] riding on its first payload byte
 *     18: bytes on the main socket, 19: on the backend channel (then read):
 *       body := ctl:u8 [n:u8] fdspec* msg
 *       ctl >> 6: fds 0, 1, 2, or 3: n % 13 of them; fds ride on the first byte
 *       ctl bit 0: msg := header:12 len:u16 payload[len % 4160] as given
 *       else msg := request:u8 len:u16 payload[len % 4160], version 1, REPLY
 *         on the main socket, ctl bit 1: NEED_REPLY, size from the payload
 *       ctl bit 2: header and payload in two writes, the fds on the second
 *     20: EOF on the main socket (the harness shuts its write side)
 *     21: the harness closes its end of the backend channel, then reads it
 *   fdspec  := kind:u8; kind % 4: 0 eventfd, 1 memfd, 2 regular file, 3 socket
 *
 * Checked besides memory safety, after every call: once vu_front_broken()
 * it stays so and every call fails, vu_front_backend_read too (-EPIPE;
 * -EINVAL for arguments refused before anything is sent); a failure leaves a
 * non-empty vu_front_error(); only a success reports a value (the outputs
 * keep a sentinel otherwise) or changes the protocol features; the frontend
 * sent exactly one well formed request for the call (NEED_REPLY iff
 * REPLY_ACK and a set-request) or none; on a clean stream (nothing unread
 * before the answer) an honest reply succeeds and its value is reported, a
 * refusing ack fails the call but not the session, a missing reply times
 * out, a cut one is an EOF, fds on a reply break the session; the channel
 * hands out only CONFIG_CHANGE_MSG, closes on any error and sends only well
 * formed acks. With VB_FUZZ_FDCHECK=1 every input must also leave the
 * process with the fds it had before (slower: reads /proc each time).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge/util.h"
#include "bridge/vu_front.h"
#include "bridge/vu_io.h"
#include "bridge/vu_msg.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/harness.h"

#define MAX_RECORDS 128
#define MAX_LEN     (VU_MAX_PAYLOAD + 64) /* payload lengths a record may ask for */
#define MAX_FDS     13                    /* over 8: MSG_CTRUNC */
#define CHAN_READS  4
#define SENTINEL    0xa5
#define ACK_SIZE    (VU_HDR_SIZE + 8)
#define FD_PAGE     4096

_Static_assert(MAX_FDS <= HARNESS_MAX_FDS, "put() attaches up to MAX_FDS - 1 fds");

enum kind {
	K_GET,    /* waits for a u64 */
	K_BASE,   /* GET_VRING_BASE: waits for a vring state */
	K_CONFIG, /* GET_CONFIG: waits for the config header and data */
	K_SET,    /* waits for an ack once REPLY_ACK is negotiated */
	K_NOACK,  /* SET_PROTOCOL_FEATURES: waits for nothing, ever */
};

enum mode { M_HONEST, M_ACKVAL, M_NONE, M_MUTATE, M_EOF, M_CUT, M_TWICE, M_FDS };

/* What a call must do when the stream held nothing else before its answer. */
enum expect { E_ANY, E_OK, E_TIMEOUT, E_RESET, E_PROTO };

struct args {
	unsigned idx, num, n;
	uint64_t v;
	uint32_t off, len;
	bool nofd, on;
};

/* What calls report: SENTINEL bytes before, untouched unless the call succeeds. */
struct out {
	uint64_t v;
	unsigned base;
	uint8_t cfg[VU_MAX_CONFIG];
};

struct call {
	const char *name;
	uint32_t req;
	enum kind kind;
	void (*args)(struct fin *in, struct args *a);
	bool (*valid)(const struct args *a); /* NULL: the frontend sends any */
	int (*run)(struct vu_front *f, const struct args *a, struct out *o);
};

struct reply {
	uint8_t buf[VU_HDR_SIZE + MAX_LEN];
	size_t len;
	uint64_t v;                 /* the u64, num or ack value it carries */
	uint8_t cfg[VU_MAX_CONFIG]; /* GET_CONFIG data */
};

struct state {
	char dir[64];
	char path[128];
	int lfd;
	int memfd, evfd; /* handed to the frontend by SET_MEM_TABLE, SET_VRING_KICK/CALL */
	bool fdcheck, ready;
	/* per input */
	struct vu_front *f;
	int conn; /* our end of the frontend's connection */
	int chan; /* our end of the backend channel, -1 */
	bool eof; /* we shut our write side */
	struct vu_rx rx;
	struct vu_msg req;
	uint8_t acks[ACK_SIZE];
	size_t acks_have;
};

static struct state S;

/* ---- fds the input asks for ---- */

static int new_file(void)
{
	int fd = open(S.dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		char path[160];

		snprintf(path, sizeof(path), "%s/file.XXXXXX", S.dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0) {
			unlink(path);
		}
	}
	return fd;
}

static int make_fd(uint8_t kind)
{
	int sv[2], fd = -1;

	switch (kind % 4) {
	case 0:
		fd = eventfd(0, EFD_CLOEXEC);
		break;
	case 1:
		fd = memfd_create("fuzz-vu-front", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, FD_PAGE) < 0) {
			close(fd);
			fd = -1;
		}
		break;
	case 2:
		fd = new_file();
		break;
	default:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
			close(sv[1]);
			fd = sv[0];
		}
		break;
	}
	return fd;
}

/* n fdspecs from the input; returns how many fds were made. */
static unsigned make_fds(struct fin *in, unsigned n, int *fds)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		int fd = make_fd(fin_u8(in));

		if (fd >= 0) {
			fds[k++] = fd;
		}
	}
	return k;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		close(fds[i]);
	}
}

/* ---- writing as the backend ---- */

/* Fds ride on the first byte. False when the socket is full (a stuck backend) or gone. */
static bool put(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds)
{
	union harness_cmsg cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (sock < 0) {
		return false;
	}
	FUZZ_CHECK(harness_attach_fds(&mh, &cm, fds, nfds) == 0);
	while (iov.iov_len > 0) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n <= 0) {
			return false;
		}
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		iov.iov_base = (uint8_t *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
	}
	return true;
}

static void put_eof(void)
{
	shutdown(S.conn, SHUT_WR);
	S.eof = true;
}

/* Bytes the frontend has not read yet. */
static int pending(void)
{
	int n = 0;

	FUZZ_CHECK(ioctl(vu_front_fd(S.f), FIONREAD, &n) == 0);
	return n;
}

/* ---- records 18 and 19: messages as the input gives them ---- */

static void rec_bytes(struct fin *in, int sock, bool reply)
{
	uint8_t ctl = fin_u8(in);
	uint8_t buf[VU_HDR_SIZE + MAX_LEN];
	unsigned nfds = ctl >> 6, n;
	int fds[MAX_FDS];
	uint16_t len;

	if (nfds == 3) {
		nfds = fin_u8(in) % MAX_FDS;
	}
	n = make_fds(in, nfds, fds);
	if (ctl & 1) {
		fin_bytes(in, buf, VU_HDR_SIZE);
		len = fin_u16(in) % MAX_LEN;
	} else {
		uint32_t flags = VU_VERSION | (reply ? VU_FLAG_REPLY : 0);

		flags |= ctl & 2 ? VU_FLAG_NEED_REPLY : 0;
		vu_hdr_put(buf, fin_u8(in), flags, 0);
		len = fin_u16(in) % MAX_LEN;
	}
	if (len > in->left) {
		len = (uint16_t)in->left;
	}
	if (!(ctl & 1)) {
		put_le32(buf + 8, len);
	}
	fin_bytes(in, buf + VU_HDR_SIZE, len);
	if ((ctl & 4) && len) {
		if (put(sock, buf, VU_HDR_SIZE, NULL, 0)) {
			put(sock, buf + VU_HDR_SIZE, len, fds, n);
		}
	} else {
		put(sock, buf, VU_HDR_SIZE + len, fds, n);
	}
	close_fds(fds, n);
}

/* ---- the backend channel ---- */

static void chan_set(int fd)
{
	if (S.chan >= 0) {
		close(S.chan);
	}
	S.chan = fd;
	S.acks_have = 0;
}

/* Whatever the frontend writes on the channel is an ack of CONFIG_CHANGE_MSG: u64 0. */
static void chan_drain_acks(void)
{
	uint8_t want[ACK_SIZE] = {0};

	if (S.chan < 0) {
		return;
	}
	vu_hdr_put(want, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, VU_VERSION | VU_FLAG_REPLY, 8);
	for (;;) {
		ssize_t n =
		    recv(S.chan, S.acks + S.acks_have, ACK_SIZE - S.acks_have, MSG_DONTWAIT);

		if (n <= 0) {
			return;
		}
		S.acks_have += (size_t)n;
		if (S.acks_have == ACK_SIZE) {
			FUZZ_CHECK(memcmp(S.acks, want, ACK_SIZE) == 0);
			S.acks_have = 0;
		}
	}
}

static void chan_read(void)
{
	for (int i = 0; i < CHAN_READS; i++) {
		bool was_broken = vu_front_broken(S.f);
		int had = vu_front_backend_fd(S.f);
		uint32_t req = UINT32_MAX;
		int ret = vu_front_backend_read(S.f, &req);

		if (fuzz_log_level() > 1) {
			fprintf(fuzz_err(), "fuzz_vu_front: backend_read -> %d %s\n", ret,
			        vu_front_error(S.f));
		}
		FUZZ_CHECK(ret <= 1);
		if (had < 0) {
			FUZZ_CHECK(ret == -ENOTCONN);
		}
		if (was_broken) {
			FUZZ_CHECK(ret < 0 && vu_front_broken(S.f));
		}
		if (ret == 1) {
			FUZZ_CHECK(req == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
			FUZZ_CHECK(vu_front_protocol_features(S.f) & (1ull << VU_PF_CONFIG));
			FUZZ_CHECK(!vu_front_broken(S.f));
		} else {
			FUZZ_CHECK(req == UINT32_MAX);
		}
		if (ret == 0) {
			FUZZ_CHECK(vu_front_backend_fd(S.f) == had);
		}
		/* "-errno on error/EOF (channel then closed)" */
		if (ret < 0) {
			FUZZ_CHECK(vu_front_backend_fd(S.f) == -1);
		}
		if (ret < 0 && ret != -ENOTCONN) {
			FUZZ_CHECK(vu_front_error(S.f)[0] != '\0');
		}
		/* A misbehaving backend loses the whole session, not only its channel. */
		if (ret == -EPROTO) {
			FUZZ_CHECK(vu_front_broken(S.f));
		}
		chan_drain_acks();
		if (ret != 1) {
			return;
		}
	}
}

static void rec_chan(struct fin *in)
{
	rec_bytes(in, S.chan, false);
	chan_read();
}

static void rec_chan_eof(struct fin *in)
{
	chan_set(-1);
	chan_read();
}

/* ---- calls: arguments ---- */

static void a_none(struct fin *in, struct args *a)
{
}

static void a_u64(struct fin *in, struct args *a)
{
	a->v = fin_u64(in);
}

static void a_table(struct fin *in, struct args *a)
{
	a->n = fin_u8(in) % (VU_MEM_TABLE_REGIONS + 2);
}

static void a_state(struct fin *in, struct args *a)
{
	a->idx = fin_u8(in);
	a->num = fin_u16(in);
}

static void a_idx(struct fin *in, struct args *a)
{
	a->idx = fin_u8(in);
}

static void a_file(struct fin *in, struct args *a)
{
	uint8_t f;

	a->idx = fin_u8(in);
	f = fin_u8(in);
	a->nofd = f & 1;
	a->idx += f & 2 ? 256 : 0;
}

static void a_enable(struct fin *in, struct args *a)
{
	a->idx = fin_u8(in);
	a->on = fin_u8(in) & 1;
}

static void a_config(struct fin *in, struct args *a)
{
	a->off = fin_u8(in);
	a->len = fin_u16(in) % (VU_MAX_CONFIG + 4);
}

static bool v_table(const struct args *a)
{
	return a->n >= 1 && a->n <= VU_MEM_TABLE_REGIONS;
}

static bool v_file(const struct args *a)
{
	return a->idx <= VU_VRING_IDX_MASK;
}

static bool v_config(const struct args *a)
{
	return a->len <= VU_MAX_CONFIG && a->off <= VU_MAX_CONFIG - a->len;
}

/* ---- calls: the API ---- */

static int r_get_features(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_get_features(f, &o->v);
}

static int r_set_features(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_features(f, a->v);
}

static int r_get_pf(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_get_protocol_features(f, &o->v);
}

static int r_set_pf(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_protocol_features(f, a->v);
}

static int r_set_owner(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_owner(f);
}

static int r_reset_owner(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_reset_owner(f);
}

static int r_get_queue_num(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_get_queue_num(f, &o->v);
}

static int r_set_mem_table(struct vu_front *f, const struct args *a, struct out *o)
{
	struct vu_mem_region r[VU_MEM_TABLE_REGIONS + 1];
	int fds[VU_MEM_TABLE_REGIONS + 1];

	for (unsigned i = 0; i < a->n; i++) {
		r[i] = (struct vu_mem_region){
		    .gpa = (uint64_t)i << 20,
		    .size = 1u << 20,
		    .uaddr = 0x7f0000000000ull + ((uint64_t)i << 20),
		};
		fds[i] = S.memfd;
	}
	return vu_front_set_mem_table(f, r, fds, a->n);
}

static int r_set_vring_num(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_vring_num(f, a->idx, a->num);
}

static int r_set_vring_addr(struct vu_front *f, const struct args *a, struct out *o)
{
	struct vu_vring_addr x = {.index = a->idx, .desc = 0x1000, .used = 0x2000, .avail = 0x3000};

	return vu_front_set_vring_addr(f, &x);
}

static int r_set_vring_base(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_vring_base(f, a->idx, a->num);
}

static int r_get_vring_base(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_get_vring_base(f, a->idx, &o->base);
}

static int r_set_vring_kick(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_vring_kick(f, a->idx, a->nofd ? -1 : S.evfd);
}

static int r_set_vring_call(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_vring_call(f, a->idx, a->nofd ? -1 : S.evfd);
}

static int r_set_vring_enable(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_set_vring_enable(f, a->idx, a->on);
}

static int r_get_config(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_get_config(f, a->off, o->cfg, a->len);
}

static int r_set_config(struct vu_front *f, const struct args *a, struct out *o)
{
	uint8_t data[VU_MAX_CONFIG + 4];

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)i;
	}
	return vu_front_set_config(f, a->off, data, a->len);
}

static int r_open_chan(struct vu_front *f, const struct args *a, struct out *o)
{
	return vu_front_open_backend_channel(f);
}

#define CALL(n, code, k, a, v)                                                                     \
	{                                                                                          \
#n, VHOST_USER_##code, k, a, v, r_##n                                              \
	}

static const struct call calls[] = {
    CALL(get_features, GET_FEATURES, K_GET, a_none, NULL),
    CALL(set_features, SET_FEATURES, K_SET, a_u64, NULL),
    CALL(get_pf, GET_PROTOCOL_FEATURES, K_GET, a_none, NULL),
    CALL(set_pf, SET_PROTOCOL_FEATURES, K_NOACK, a_u64, NULL),
    CALL(set_owner, SET_OWNER, K_SET, a_none, NULL),
    CALL(reset_owner, RESET_OWNER, K_SET, a_none, NULL),
    CALL(get_queue_num, GET_QUEUE_NUM, K_GET, a_none, NULL),
    CALL(set_mem_table, SET_MEM_TABLE, K_SET, a_table, v_table),
    CALL(set_vring_num, SET_VRING_NUM, K_SET, a_state, NULL),
    CALL(set_vring_addr, SET_VRING_ADDR, K_SET, a_idx, NULL),
    CALL(set_vring_base, SET_VRING_BASE, K_SET, a_state, NULL),
    CALL(get_vring_base, GET_VRING_BASE, K_BASE, a_idx, NULL),
    CALL(set_vring_kick, SET_VRING_KICK, K_SET, a_file, v_file),
    CALL(set_vring_call, SET_VRING_CALL, K_SET, a_file, v_file),
    CALL(set_vring_enable, SET_VRING_ENABLE, K_SET, a_enable, NULL),
    CALL(get_config, GET_CONFIG, K_CONFIG, a_config, v_config),
    CALL(set_config, SET_CONFIG, K_SET, a_config, v_config),
    CALL(open_chan, SET_BACKEND_REQ_FD, K_SET, a_none, NULL),
};

static unsigned request_fds(const struct call *c, const struct args *a)
{
	switch (c->req) {
	case VHOST_USER_SET_MEM_TABLE:
		return a->n;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
		return !a->nofd;
	case VHOST_USER_SET_BACKEND_REQ_FD:
		return 1;
	default:
		return 0;
	}
}

/* ---- calls: the answer ---- */

/* R: what the call waits for, or an ack-shaped u64 if it waits for none. */
static void reply_make(struct fin *in, const struct call *c, const struct args *a, enum mode m,
                       struct reply *r)
{
	uint8_t *p = r->buf + VU_HDR_SIZE;
	uint32_t size = 8;

	memset(r->cfg, 0, sizeof(r->cfg));
	switch (c->kind) {
	case K_GET:
		r->v = fin_u64(in);
		put_le64(p, r->v);
		break;
	case K_BASE:
		r->v = fin_u32(in);
		put_le32(p, a->idx);
		put_le32(p + 4, (uint32_t)r->v);
		break;
	case K_CONFIG:
		size = 12 + VB_MIN(a->len, VU_MAX_CONFIG);
		fin_bytes(in, r->cfg, size - 12);
		put_le32(p, a->off);
		put_le32(p + 4, a->len);
		put_le32(p + 8, 0);
		memcpy(p + 12, r->cfg, size - 12);
		break;
	default:
		r->v = m == M_ACKVAL ? fin_u64(in) : 0;
		put_le64(p, r->v);
		break;
	}
	vu_hdr_put(r->buf, c->req, VU_VERSION | VU_FLAG_REPLY, size);
	r->len = VU_HDR_SIZE + size;
}

/* Mode 3; true if the mutation changed nothing. */
static bool reply_mutate(struct fin *in, struct reply *r)
{
	uint8_t dreq = fin_u8(in), dflags = fin_u8(in);
	int8_t dsize = (int8_t)fin_u8(in);
	int fds[MAX_FDS];
	unsigned n = make_fds(in, fin_u8(in) % MAX_FDS, fds);
	uint32_t size = get_le32(r->buf + 8);
	uint32_t nsize = (int32_t)size + dsize < 0 ? 0 : (uint32_t)((int32_t)size + dsize);

	if (nsize > size) {
		memset(r->buf + r->len, 0, nsize - size);
	}
	put_le32(r->buf, get_le32(r->buf) ^ dreq);
	put_le32(r->buf + 4, get_le32(r->buf + 4) ^ dflags);
	put_le32(r->buf + 8, nsize);
	r->len = VU_HDR_SIZE + nsize;
	put(S.conn, r->buf, r->len, fds, n);
	close_fds(fds, n);
	return dreq == 0 && dflags == 0 && dsize == 0 && n == 0;
}

/* Writes the answer of mode m; returns what the call must then do on a clean stream. */
static enum expect answer(struct fin *in, struct reply *r, enum mode m, bool waits)
{
	int fds[MAX_FDS];
	unsigned n;
	bool ok;

	switch (m) {
	case M_HONEST:
	case M_ACKVAL:
		ok = !waits || put(S.conn, r->buf, r->len, NULL, 0);
		return ok ? E_OK : E_ANY;
	case M_NONE:
		return waits ? E_TIMEOUT : E_OK;
	case M_MUTATE:
		return reply_mutate(in, r) || !waits ? E_OK : E_ANY;
	case M_EOF:
		ok = !waits || put(S.conn, r->buf, r->len, NULL, 0);
		put_eof();
		return ok ? E_OK : E_ANY;
	case M_CUT:
		ok = put(S.conn, r->buf, fin_u8(in) % r->len, NULL, 0);
		put_eof();
		return !waits ? E_OK : ok ? E_RESET : E_ANY;
	case M_TWICE:
		ok = put(S.conn, r->buf, r->len, NULL, 0);
		ok = ok && (!waits || put(S.conn, r->buf, r->len, NULL, 0));
		return ok || !waits ? E_OK : E_ANY;
	default:
		n = make_fds(in, fin_u8(in) % MAX_FDS, fds);
		ok = put(S.conn, r->buf, VU_HDR_SIZE, NULL, 0) &&
		     put(S.conn, r->buf + VU_HDR_SIZE, r->len - VU_HDR_SIZE, fds, n);
		close_fds(fds, n);
		return !waits ? E_OK : ok && n ? E_PROTO : E_ANY;
	}
}

/* ---- calls: what the frontend sent, what it returned ---- */

/* The requests the call sent: each well formed and for this call. */
static unsigned drain_requests(const struct call *c, const struct args *a, bool ack, int ret)
{
	const char *why = "?";
	unsigned n = 0;
	int r;

	while ((r = vu_rx_read(S.conn, &S.rx, &why)) == 1) {
		struct vu_msg *m = &S.req;

		FUZZ_CHECK(vu_msg_check_request(m, &why) == 0);
		FUZZ_CHECK(m->request == c->req);
		FUZZ_CHECK(m->flags == (VU_VERSION | (ack ? VU_FLAG_NEED_REPLY : 0)));
		FUZZ_CHECK(m->nfds == request_fds(c, a));
		if (c->req == VHOST_USER_SET_BACKEND_REQ_FD && ret >= 0) {
			chan_set(m->fds[0]);
			m->fds[0] = -1;
		}
		vu_msg_close_fds(m);
		n++;
	}
	FUZZ_CHECK(r == 0);
	return n;
}

/* On a clean stream the answer decides the outcome. */
static void check_expect(const struct call *c, const struct args *a, enum expect e,
                         const struct reply *r, bool waits, int ret, const struct out *o)
{
	bool broken = vu_front_broken(S.f);

	switch (e) {
	case E_ANY:
		break;
	case E_OK:
		if (c->kind == K_BASE && r->v > 0xffff) {
			/* Split rings only: a base is a 16-bit index. */
			FUZZ_CHECK(ret == -EPROTO && broken);
		} else if (c->kind == K_SET && waits && r->v != 0) {
			/* REPLY_ACK: a non-zero ack is a refusal, the session stays. */
			FUZZ_CHECK(ret == -EIO && !broken);
		} else {
			FUZZ_CHECK(ret >= 0);
		}
		if (ret >= 0 && (c->kind == K_GET || c->kind == K_BASE)) {
			FUZZ_CHECK((c->kind == K_GET ? o->v : o->base) == r->v);
		}
		if (ret >= 0 && c->kind == K_CONFIG) {
			FUZZ_CHECK(memcmp(o->cfg, r->cfg, a->len) == 0);
		}
		break;
	case E_TIMEOUT:
		FUZZ_CHECK(ret == -ETIMEDOUT && broken);
		break;
	case E_RESET:
		FUZZ_CHECK(ret == -ECONNRESET && broken);
		break;
	case E_PROTO:
		FUZZ_CHECK(ret == -EPROTO && broken);
		break;
	}
}

static void rec_call(struct fin *in, const struct call *c, enum mode m)
{
	struct args a = {0};
	struct out o, none;
	struct reply r;
	uint64_t pf = vu_front_protocol_features(S.f);
	bool ack = c->kind == K_SET && (pf & (1ull << VU_PF_REPLY_ACK));
	bool was_broken = vu_front_broken(S.f), valid, waits, clean;
	enum expect e;
	unsigned sent;
	int ret;

	c->args(in, &a);
	valid = !c->valid || c->valid(&a);
	waits = valid && !was_broken &&
	        (c->kind == K_GET || c->kind == K_BASE || c->kind == K_CONFIG || ack);
	reply_make(in, c, &a, m, &r);
	clean = valid && !was_broken && !S.eof && pending() == 0;
	e = answer(in, &r, m, waits);
	memset(&o, SENTINEL, sizeof(o));
	memset(&none, SENTINEL, sizeof(none));

	ret = c->run(S.f, &a, &o);

	if (fuzz_log_level() > 1) {
		fprintf(fuzz_err(), "fuzz_vu_front: %s mode %d -> %d %s\n", c->name, m, ret,
		        vu_front_error(S.f));
	}
	sent = drain_requests(c, &a, ack, ret);
	FUZZ_CHECK(sent <= 1);
	if (!valid) {
		FUZZ_CHECK(ret == -EINVAL && sent == 0);
		FUZZ_CHECK(vu_front_broken(S.f) == was_broken);
	} else if (was_broken) {
		FUZZ_CHECK(ret == -EPIPE && sent == 0);
	}
	if (was_broken) {
		FUZZ_CHECK(vu_front_broken(S.f));
	}
	if (ret >= 0) {
		FUZZ_CHECK(!vu_front_broken(S.f) && sent == 1);
	} else {
		FUZZ_CHECK(memcmp(&o, &none, sizeof(o)) == 0);
		if (ret != -EINVAL) {
			FUZZ_CHECK(vu_front_error(S.f)[0] != '\0');
		}
	}
	if (c->kind == K_NOACK) {
		FUZZ_CHECK(vu_front_protocol_features(S.f) == (ret == 0 ? a.v : pf));
	} else {
		FUZZ_CHECK(vu_front_protocol_features(S.f) == pf);
	}
	if (c->req == VHOST_USER_SET_BACKEND_REQ_FD && ret >= 0) {
		FUZZ_CHECK(vu_front_backend_fd(S.f) == ret);
	}
	if (clean) {
		check_expect(c, &a, e, &r, waits, ret, &o);
	}
}

/* ---- records ---- */

static void rec_eof(struct fin *in)
{
	put_eof();
}

static void run_records(struct fin *in)
{
	for (int i = 0; i < MAX_RECORDS && !fin_done(in); i++) {
		uint8_t op = fin_u8(in);
		unsigned what = (op & 31) % (ARRAY_SIZE(calls) + 4);

		if (what < ARRAY_SIZE(calls)) {
			rec_call(in, &calls[what], (enum mode)(op >> 5));
			continue;
		}
		switch (what - ARRAY_SIZE(calls)) {
		case 0:
			rec_bytes(in, S.conn, true);
			break;
		case 1:
			rec_chan(in);
			break;
		case 2:
			rec_eof(in);
			break;
		default:
			rec_chan_eof(in);
			break;
		}
	}
}

/* ---- set-up once, one connection per input ---- */

static void cleanup(void)
{
	close(S.lfd);
	unlink(S.path);
	rmdir(S.dir);
}

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(S.dir, sizeof(S.dir), "/tmp/fuzz_vu_front.XXXXXX");
	FUZZ_CHECK(mkdtemp(S.dir));
	snprintf(S.path, sizeof(S.path), "%s/backend.sock", S.dir);
	memcpy(sa.sun_path, S.path, strlen(S.path) + 1);
	S.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(S.lfd >= 0);
	FUZZ_CHECK(bind(S.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FUZZ_CHECK(listen(S.lfd, 4) == 0);
	S.memfd = memfd_create("fuzz-vu-front-guest", MFD_CLOEXEC);
	FUZZ_CHECK(S.memfd >= 0);
	S.evfd = eventfd(0, EFD_CLOEXEC);
	FUZZ_CHECK(S.evfd >= 0);
	S.chan = -1;
	S.ready = true;
	S.fdcheck = getenv("VB_FUZZ_FDCHECK") && atoi(getenv("VB_FUZZ_FDCHECK"));
	atexit(cleanup);
}

static void session_start(bool slow)
{
	char err[256] = "";

	S.f = vu_front_connect(S.path, slow ? 1 : 0, err, sizeof(err));
	if (!S.f) {
		fprintf(fuzz_err(), "fuzz_vu_front: %s\n", err);
		abort();
	}
	S.conn = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	FUZZ_CHECK(S.conn >= 0);
	vu_rx_init(&S.rx, &S.req, false);
	S.eof = false;
	FUZZ_CHECK(!vu_front_broken(S.f) && vu_front_error(S.f)[0] == '\0');
	FUZZ_CHECK(vu_front_backend_fd(S.f) == -1 && vu_front_protocol_features(S.f) == 0);
}

static void session_end(void)
{
	vu_front_free(S.f);
	S.f = NULL;
	vu_rx_reset(&S.rx);
	close(S.conn);
	S.conn = -1;
	chan_set(-1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_logs();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds_before = 0;
	struct fin in;

	if (!S.ready) {
		setup();
	}
	if (S.fdcheck) {
		fds_before = harness_fd_count();
		FUZZ_CHECK(fds_before >= 0);
	}
	fin_init(&in, data, size);
	session_start(fin_u8(&in) & 1);
	run_records(&in);
	session_end();
	if (S.fdcheck) {
		FUZZ_CHECK(harness_fd_count() == fds_before);
	}
	return 0;
}
