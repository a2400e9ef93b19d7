/*
 * libFuzzer target for the vhost-user backend endpoint (bridge/vu_dev.c with
 * bridge/vu_io.c, vu_msg.c, gmem.c, virtq.c): the fuzzer is the VMM.
 *
 * One real endpoint (vu_dev_new on a real vb_loop, listening in a temporary
 * directory made once) lives for the whole run. Each input connects a new
 * frontend, sends a stream of messages with the fds the input asks for,
 * kicks rings, truncates guest memory under the endpoint, then hangs up. The
 * whole state machine and every handler run, as with QEMU.
 *
 * Input format (fields little-endian; past the end everything reads 0):
 *   input   := record*
 *   record  := ctl:u8 body
 *   ctl & 7 == 0..5: a message
 *     bit 3: raw 12-byte header from the input (else request:u8, flags made valid)
 *     bit 4: header and payload in two writes, the loop running in between
 *     bit 5: NEED_REPLY (cooked header)
 *     bits 6-7: fd count 0, 1, 2, or 3: the next byte % 13 (over 8: MSG_CTRUNC)
 *     body := fdspec* (request:u8 | header:12) len:u16 payload[len]
 *     fdspec := kind:u8, kind & 7: 0 memfd, 1 eventfd, 2 regular file, 3 socket,
 *               4 the last memfd again, 5 memfd with content (off:u16 n:u8 bytes[n]),
 *               6-7 eventfd; kind >> 4: file size in 4 KiB pages
 *   ctl & 7 == 6: kick: which:u8, the harness's eventfd which % count gets a 1
 *   ctl & 7 == 7: action: what:u8 sel:u8 (see act_*)
 *
 * Checked besides memory safety: every byte the endpoint sends is a well
 * formed reply; after the hang-up the owner heard "disconnected", every
 * started queue was stopped, no guest memory is mapped. With
 * VB_FUZZ_FDCHECK=1 every input must also leave the process with the fds and
 * mappings it had before (slower: reads /proc each time).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge/gmem.h"
#include "bridge/log.h"
#include "bridge/loop.h"
#include "bridge/sigbus.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_dev.h"
#include "bridge/vu_msg.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/harness.h"

#define NQ            2
#define QMAX          256
#define MEMFD_TAG     "fuzz-vu-guest"
#define PAGE          4096u
#define MAX_RECORDS   256
#define MAX_FDS       128 /* fds the harness creates per input */
#define PUMP_ROUNDS   4
#define HANGUP_ROUNDS 64

enum fd_kind { FK_MEMFD, FK_EVENTFD, FK_FILE, FK_SOCKET, FK_SAME, FK_MEMFD_FILL };

struct hfd {
	int fd;    /* our copy; the endpoint gets its own through SCM_RIGHTS */
	int other; /* socketpair: the end we keep; -1 */
	enum fd_kind kind;
};

struct owner {
	struct virtq *vq[NQ];
	int starts, stops, connected, disconnected, kicks, chains;
	uint8_t config[64];
};

struct state {
	char dir[64];
	char path[128];
	struct vb_loop *loop;
	struct vu_dev *dev;
	struct owner o;
	/* per input */
	int client;
	bool gone; /* the endpoint closed on us, or we hung up */
	struct hfd fds[MAX_FDS];
	unsigned nfds;
	int last_memfd;
	uint8_t rx[2 * (VU_HDR_SIZE + VU_MAX_PAYLOAD)];
	size_t rx_have;
	bool fdcheck;
};

static struct state S;

/* ---- the owner: a device that completes every chain it is given ---- */

static uint64_t o_get_features(void *arg)
{
	return (1ull << 1) | (1ull << 6) | (1ull << 9) | (1ull << VIRTIO_F_RING_PACKED);
}

static void o_set_features(void *arg, uint64_t f)
{
}

static int o_get_config(void *arg, uint32_t off, uint8_t *buf, uint32_t len)
{
	if (off > sizeof(S.o.config) || len > sizeof(S.o.config) - off) {
		return -EINVAL;
	}
	memcpy(buf, S.o.config + off, len);
	return 0;
}

static int o_set_config(void *arg, uint32_t off, const uint8_t *buf, uint32_t len)
{
	if (off > sizeof(S.o.config) || len > sizeof(S.o.config) - off) {
		return -EINVAL;
	}
	memcpy(S.o.config + off, buf, len);
	return 0;
}

static void o_queue_start(void *arg, unsigned q, struct virtq *vq)
{
	FUZZ_CHECK(q < NQ && !S.o.vq[q]);
	S.o.vq[q] = vq;
	S.o.starts++;
}

static void o_queue_stop(void *arg, unsigned q)
{
	volatile uint16_t used;

	FUZZ_CHECK(q < NQ && S.o.vq[q]);
	/* vu_dev.h: the rings are still mapped during the call (adversarial case 18). */
	if (!S.o.vq[q]->broken) {
		used = __atomic_load_n(&S.o.vq[q]->used[1], __ATOMIC_ACQUIRE);
		(void)used;
	}
	S.o.vq[q] = NULL;
	S.o.stops++;
}

/* Like the importer: serve what the guest offers, drop the VMM when it cheats. */
static void o_queue_kick(void *arg, unsigned q)
{
	struct virtq *vq;
	struct virtq_chain c;
	int rc = 0;

	FUZZ_CHECK(q < NQ && S.o.vq[q]);
	vq = S.o.vq[q];
	S.o.kicks++;
	for (unsigned n = 0; n < vq->num && (rc = virtq_pop(vq, &c)) == 1; n++) {
		uint8_t zero[64] = {0};

		iov_from_buf(c.iov + c.nrd, c.nwr, 0, zero, VB_MIN(sizeof(zero), c.wr_len));
		FUZZ_CHECK(virtq_push(vq, c.head, VB_MIN(sizeof(zero), c.wr_len)) == 0);
		S.o.chains++;
	}
	if (rc < 0) {
		vu_dev_disconnect(S.dev, "guest broke the ring");
		return;
	}
	if (gmem_faulted(vu_dev_mem(S.dev))) {
		vu_dev_disconnect(S.dev, "guest memory truncated");
		return;
	}
	vu_dev_notify(S.dev, q);
}

static void o_reset(void *arg)
{
	for (unsigned q = 0; q < NQ; q++) {
		FUZZ_CHECK(!S.o.vq[q]); /* vu_dev.h: queues were stopped before */
	}
}

static void o_connected(void *arg)
{
	S.o.connected++;
}

static void o_disconnected(void *arg, const char *reason)
{
	for (unsigned q = 0; q < NQ; q++) {
		FUZZ_CHECK(!S.o.vq[q]);
	}
	FUZZ_CHECK(reason && reason[0]);
	S.o.disconnected++;
	if (fuzz_log_level()) {
		fprintf(fuzz_err(), "fuzz_vu_stream: %d queue starts, %d kicks, %d chains; %s\n",
		        S.o.starts, S.o.kicks, S.o.chains, reason);
	}
}

static const struct vu_dev_ops owner_ops = {
    .get_features = o_get_features,
    .set_features = o_set_features,
    .get_config = o_get_config,
    .set_config = o_set_config,
    .queue_start = o_queue_start,
    .queue_stop = o_queue_stop,
    .queue_kick = o_queue_kick,
    .reset = o_reset,
    .connected = o_connected,
    .disconnected = o_disconnected,
};

/* ---- the loop and the frontend socket ---- */

static void pump(int rounds)
{
	harness_pump(S.loop, rounds);
}

/* Replies as the spec frames them: version 1, REPLY, no NEED_REPLY, a bounded size. */
static void rx_check(void)
{
	while (S.rx_have >= VU_HDR_SIZE) {
		uint32_t flags = get_le32(S.rx + 4), size = get_le32(S.rx + 8);

		FUZZ_CHECK(flags == (VU_VERSION | VU_FLAG_REPLY));
		FUZZ_CHECK(size <= VU_MAX_PAYLOAD);
		if (S.rx_have < VU_HDR_SIZE + size) {
			return;
		}
		S.rx_have -= VU_HDR_SIZE + size;
		memmove(S.rx, S.rx + VU_HDR_SIZE + size, S.rx_have);
	}
}

static void drain_replies(void)
{
	for (;;) {
		ssize_t n =
		    recv(S.client, S.rx + S.rx_have, sizeof(S.rx) - S.rx_have, MSG_DONTWAIT);

		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				S.gone = true;
			}
			return;
		}
		S.rx_have += (size_t)n;
		rx_check();
	}
}

static bool send_bytes(const uint8_t *buf, size_t len, const int *fds, unsigned nfds)
{
	union harness_cmsg cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	unsigned stalls = 0;
	ssize_t n;

	FUZZ_CHECK(harness_attach_fds(&mh, &cm, fds, nfds) == 0);
	while (mh.msg_iov->iov_len > 0) {
		n = sendmsg(S.client, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			/* Our replies are drained: an endpoint that stops reading hangs. */
			FUZZ_CHECK(++stalls < 10000);
			pump(1);
			drain_replies();
			continue;
		}
		if (n <= 0) {
			S.gone = true;
			return false;
		}
		/* The fds went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		iov.iov_base = (uint8_t *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
	}
	return true;
}

static int connect_client(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return -1;
	}
	memcpy(sa.sun_path, S.path, strlen(S.path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- fds the input asks for ---- */

static int new_file(unsigned pages)
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
	if (fd >= 0 && ftruncate(fd, (off_t)pages * PAGE) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int new_memfd(unsigned pages)
{
	int fd = memfd_create(MEMFD_TAG, MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)pages * PAGE) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void memfd_fill(struct fin *in, int fd)
{
	uint8_t buf[256];
	uint16_t off = fin_u16(in);
	size_t n = fin_u8(in);

	fin_bytes(in, buf, n);
	if (pwrite(fd, buf, n, off) < 0) {
		return; /* beyond a small file: nothing to write */
	}
}

static int make_fd(struct fin *in)
{
	uint8_t spec = fin_u8(in);
	unsigned pages = spec >> 4;
	struct hfd *h;
	int sv[2];

	if (S.nfds >= MAX_FDS) {
		return -1;
	}
	h = &S.fds[S.nfds];
	h->other = -1;
	h->kind = (enum fd_kind)(spec & 7);
	switch (spec & 7) {
	case FK_MEMFD:
		h->fd = S.last_memfd = new_memfd(pages);
		break;
	case FK_FILE:
		h->fd = new_file(pages);
		break;
	case FK_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			return -1;
		}
		h->fd = sv[0];
		h->other = sv[1];
		break;
	case FK_SAME:
		h->fd = S.last_memfd >= 0 ? dup(S.last_memfd) : new_memfd(pages);
		break;
	case FK_MEMFD_FILL:
		h->fd = S.last_memfd = new_memfd(pages);
		if (h->fd >= 0) {
			memfd_fill(in, h->fd);
		}
		break;
	default:
		h->kind = FK_EVENTFD;
		h->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		break;
	}
	if (h->fd < 0) {
		if (h->other >= 0) {
			close(h->other);
		}
		return -1;
	}
	S.nfds++;
	return h->fd;
}

static void close_fds(void)
{
	for (unsigned i = 0; i < S.nfds; i++) {
		close(S.fds[i].fd);
		if (S.fds[i].other >= 0) {
			close(S.fds[i].other);
		}
	}
	S.nfds = 0;
	S.last_memfd = -1;
}

/* The k-th harness fd of a kind (k modulo their count), or NULL. */
static struct hfd *nth_fd(bool (*is)(const struct hfd *), unsigned k)
{
	unsigned n = 0, i;

	for (i = 0; i < S.nfds; i++) {
		n += is(&S.fds[i]);
	}
	if (n == 0) {
		return NULL;
	}
	k %= n;
	for (i = 0; i < S.nfds; i++) {
		if (is(&S.fds[i]) && k-- == 0) {
			return &S.fds[i];
		}
	}
	return NULL;
}

static bool is_eventfd(const struct hfd *h)
{
	return h->kind == FK_EVENTFD;
}

static bool is_memfd(const struct hfd *h)
{
	return h->kind == FK_MEMFD || h->kind == FK_MEMFD_FILL || h->kind == FK_SAME;
}

static bool is_socket(const struct hfd *h)
{
	return h->kind == FK_SOCKET && h->other >= 0;
}

/* ---- records ---- */

static void rec_message(struct fin *in, uint8_t ctl)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD + 64];
	int fds[16];
	unsigned nfds = ctl >> 6, n = 0;
	uint16_t len;

	if (nfds == 3) {
		nfds = fin_u8(in) % 13;
	}
	for (unsigned i = 0; i < nfds; i++) {
		int fd = make_fd(in);

		if (fd >= 0) {
			fds[n++] = fd;
		}
	}
	if (ctl & 8) {
		fin_bytes(in, buf, VU_HDR_SIZE);
		len = fin_u16(in) % (VU_MAX_PAYLOAD + 64);
	} else {
		uint8_t req = fin_u8(in);

		len = fin_u16(in) % (VU_MAX_PAYLOAD + 64);
		vu_hdr_put(buf, req, VU_VERSION | (ctl & 0x20 ? VU_FLAG_NEED_REPLY : 0), len);
	}
	if (len > in->left) {
		len = (uint16_t)in->left;
		if (!(ctl & 8)) {
			put_le32(buf + 8, len);
		}
	}
	fin_bytes(in, buf + VU_HDR_SIZE, len);
	if (ctl & 0x10) {
		/* Header now, payload later (adversarial case 4). */
		if (send_bytes(buf, VU_HDR_SIZE, fds, n)) {
			pump(1);
			if (len) {
				send_bytes(buf + VU_HDR_SIZE, len, NULL, 0);
			}
		}
	} else {
		send_bytes(buf, VU_HDR_SIZE + len, fds, n);
	}
}

static void rec_kick(struct fin *in)
{
	struct hfd *h = nth_fd(is_eventfd, fin_u8(in));
	uint64_t one = 1;

	if (h && write(h->fd, &one, sizeof(one)) < 0) {
		return; /* counter full: the endpoint has a wakeup pending anyway */
	}
}

static void act_truncate(struct fin *in, uint8_t what, uint8_t sel)
{
	struct hfd *h = nth_fd(is_memfd, sel);

	/* The VMM shrinks guest memory under us (adversarial case 16). */
	if (h && ftruncate(h->fd, (off_t)(what >> 4) * PAGE) < 0) {
		return;
	}
}

static void act_fill(struct fin *in, uint8_t what, uint8_t sel)
{
	struct hfd *h = nth_fd(is_memfd, sel);

	if (h) {
		memfd_fill(in, h->fd);
	}
}

static void act_backend(struct fin *in, uint8_t what, uint8_t sel)
{
	struct hfd *h = nth_fd(is_socket, sel);
	uint8_t junk[32];

	if (!h) {
		return;
	}
	if (what & 0x10) {
		close(h->other);
		h->other = -1;
		return;
	}
	fin_bytes(in, junk, sizeof(junk));
	if (send(h->other, junk, 1 + sel % sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		return;
	}
}

static void act_owner(struct fin *in, uint8_t what, uint8_t sel)
{
	switch (what >> 4 & 3) {
	case 0:
		(void)vu_dev_config_changed(S.dev);
		break;
	case 1:
		vu_dev_notify(S.dev, sel % (NQ + 1));
		break;
	case 2:
		vu_dev_disconnect(S.dev, "owner gives up");
		break;
	default:
		pump(1);
		break;
	}
}

static void act_eof(struct fin *in, uint8_t what, uint8_t sel)
{
	/* Half a message, then EOF (adversarial case 1). */
	shutdown(S.client, SHUT_WR);
}

typedef void (*act_fn)(struct fin *in, uint8_t what, uint8_t sel);

static const act_fn acts[] = {act_truncate, act_fill, act_backend, act_owner, act_eof};

static void rec_action(struct fin *in)
{
	uint8_t what = fin_u8(in), sel = fin_u8(in);

	acts[what % ARRAY_SIZE(acts)](in, what, sel);
}

static void run_records(struct fin *in)
{
	for (int r = 0; r < MAX_RECORDS && !fin_done(in) && !S.gone; r++) {
		uint8_t ctl = fin_u8(in);

		switch (ctl & 7) {
		case 6:
			rec_kick(in);
			break;
		case 7:
			rec_action(in);
			break;
		default:
			rec_message(in, ctl);
			break;
		}
		pump(PUMP_ROUNDS);
		drain_replies();
		if (S.o.disconnected) {
			S.gone = true;
		}
	}
}

/* ---- set-up once, one session per input ---- */

static void cleanup(void)
{
	vu_dev_free(S.dev);
	vb_loop_free(S.loop);
	rmdir(S.dir);
}

static void setup(void)
{
	struct vu_dev_params p = {
	    .name = "fuzz",
	    .num_queues = NQ,
	    .max_queue_size = QMAX,
	    .max_mem_slots = 8,
	};
	char err[256];

	snprintf(S.dir, sizeof(S.dir), "/tmp/fuzz_vu.XXXXXX");
	FUZZ_CHECK(mkdtemp(S.dir));
	snprintf(S.path, sizeof(S.path), "%s/dev.sock", S.dir);
	p.path = S.path;
	S.loop = vb_loop_new();
	FUZZ_CHECK(S.loop);
	S.dev = vu_dev_new(S.loop, &p, &owner_ops, NULL, err, sizeof(err));
	if (!S.dev) {
		fprintf(stderr, "fuzz_vu_stream: %s\n", err);
		abort();
	}
	atexit(cleanup);
	S.last_memfd = -1;
	S.fdcheck = getenv("VB_FUZZ_FDCHECK") && atoi(getenv("VB_FUZZ_FDCHECK"));
	/* After libFuzzer's own handlers: a truncated memfd costs the session (sigbus.h). */
	FUZZ_CHECK(sigbus_guard_install() == 0);
}

static void hang_up(void)
{
	close(S.client);
	S.client = -1;
	for (int i = 0; i < HANGUP_ROUNDS && vu_dev_connected(S.dev); i++) {
		pump(1);
	}
	FUZZ_CHECK(!vu_dev_connected(S.dev));
	FUZZ_CHECK(S.o.disconnected == 1);
	FUZZ_CHECK(S.o.starts == S.o.stops);
	FUZZ_CHECK(vu_dev_mem(S.dev)->nregions == 0);
}

/*
 * Guest-memory guards and handlers keep pointers into the endpoint's state;
 * one that points into a dead stack frame is only seen with a fake stack.
 */
const char *__asan_default_options(void);

const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
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
	int fds_before = 0, maps_before = 0;
	struct fin in;

	if (!S.dev) {
		setup();
	}
	if (S.fdcheck) {
		fds_before = harness_fd_count();
		maps_before = harness_map_count(MEMFD_TAG);
		FUZZ_CHECK(fds_before >= 0 && maps_before >= 0);
	}
	memset(&S.o, 0, sizeof(S.o));
	S.gone = false;
	S.rx_have = 0;
	S.client = connect_client();
	FUZZ_CHECK(S.client >= 0);
	for (int i = 0; i < HANGUP_ROUNDS && !S.o.connected; i++) {
		pump(1);
	}
	FUZZ_CHECK(S.o.connected == 1 && vu_dev_connected(S.dev));

	fin_init(&in, data, size);
	run_records(&in);
	hang_up();
	close_fds();
	if (S.fdcheck) {
		FUZZ_CHECK(harness_fd_count() == fds_before);
		FUZZ_CHECK(harness_map_count(MEMFD_TAG) == maps_before);
	}
	return 0;
}
