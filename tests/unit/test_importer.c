/*
 * importer: a queue flooded with chains cannot starve the device's other
 * queues (adversarial case 32, "one queue kicked a million times a second").
 *
 * The real node, link and importer run on the real loop in this thread; the
 * test plays the VMM (a vhost-user frontend with a memfd as guest RAM and two
 * queues of 1024) and the exporting node (a TCP peer on loopback that speaks
 * the wire protocol and never completes anything), and drives the loop by
 * hand, one iteration at a time where it matters.
 *
 * Why a unit test of the importer: the defence is the per-queue budget of
 * iq_process() (bridge/importer.c IQ_BUDGET, 256 chains per queue per pass,
 * then the flush timer resumes). Kicks coalesce in the eventfd, so "a
 * million kicks a second" means "a queue that always has a full ring"; what
 * bounds the other queues' latency is how many chains one pass takes from
 * the flooded one before the loop gets to the others. Only here can the
 * test stop after exactly one loop iteration and look: end to end, timing
 * through QEMU or vblk-bench would blur the pass it happened in. The
 * exporter's EX_BUDGET (reaping a backend's used ring) is the same loop shape
 * facing the backend: test_exporter.c. vu_dev's 32 messages per wakeup bound
 * control messages, not kicks, and are not exercised here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge/config.h"
#include "bridge/importer.h"
#include "bridge/jw.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_msg.h"
#include "bridge/wire.h"
#include "tests/unit/harness.h"

#define QSIZE     1024u /* the largest the importer accepts by default */
#define BUDGET    256u  /* docs/security.md case 32: chains per queue per pass */
#define MEM_SIZE  0x20000ull
#define MEM_UADDR 0x7f0000000000ull /* guest physical 0 in the frontend's space */
#define BUF_OFF   0x10000ull
#define BIT(n)    (1ull << (n))

/* Queue q's rings in guest memory (q 0 or 1, QSIZE entries each). */
#define DESC_OFF(q)  (0x8000ull * (q))
#define AVAIL_OFF(q) (0x8000ull * (q) + 0x4000)
#define USED_OFF(q)  (0x8000ull * (q) + 0x5000)

struct fx {
	char dir[64];
	struct vb_config cfg;
	struct vb_loop *loop;
	struct node node;
	bool node_up;
	int lfd;        /* the exporting node's listener */
	struct peer ex; /* the exporting node, on the link it accepted */
	uint32_t chan;
	int fe; /* the VMM's vhost-user connection */
	int memfd;
	uint8_t *guest;
	int kick[2], call[2];
};

static struct fx *F;
static const char *import_extra = ""; /* options added to the import (setup_timed) */

static void pump(void)
{
	harness_pump(F->loop, HARNESS_PUMP_ROUNDS);
}

/* ---- the exporting node ---- */

/* Accepts the importer's link, HELLO both ways, ATTACH -> ATTACH_OK (blk, 2 queues). */
static void ex_attach(void)
{
	struct wire_msg m = {.type = WIRE_HELLO}, in;
	uint8_t copy[1024];

	assert_true(harness_wait_readable(F->loop, F->lfd, 2000));
	F->ex.fd = accept4(F->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(F->ex.fd >= 0);
	peer_expect(&F->ex, WIRE_HELLO, &in, copy, sizeof(copy));
	m.u.hello.ver_min = m.u.hello.ver_max = WIRE_VERSION;
	m.u.hello.epoch = 7;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "ecu-a");
	peer_send(&F->ex, &m);
	peer_expect(&F->ex, WIRE_ATTACH, &in, copy, sizeof(copy));
	assert_string_equal(in.u.attach.name, "disk0");
	F->chan = in.chan;
	memset(&m, 0, sizeof(m));
	m.type = WIRE_ATTACH_OK;
	m.chan = F->chan;
	m.u.attach_ok.device_id = 2;
	m.u.attach_ok.num_queues = 2;
	m.u.attach_ok.max_queue_size = QSIZE;
	m.u.attach_ok.features = BIT(VIRTIO_F_VERSION_1) | BIT(12); /* VIRTIO_BLK_F_MQ */
	m.u.attach_ok.session = 1;
	peer_send(&F->ex, &m);
}

/* ---- the VMM ---- */

static void fe_send(uint32_t req, const void *p, uint32_t len, int fd)
{
	union harness_cmsg cm;
	uint8_t buf[VU_HDR_SIZE + 64];
	struct iovec iov = {.iov_base = buf, .iov_len = VU_HDR_SIZE + len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(len <= 64);
	put_le32(buf, req);
	put_le32(buf + 4, VU_VERSION | VU_FLAG_NEED_REPLY);
	put_le32(buf + 8, len);
	if (len) {
		memcpy(buf + VU_HDR_SIZE, p, len);
	}
	assert_int_equal(harness_attach_fds(&mh, &cm, &fd, fd >= 0), 0);
	assert_int_equal(sendmsg(F->fe, &mh, MSG_NOSIGNAL), (ssize_t)iov.iov_len);
}

/* A request (with NEED_REPLY where it has no reply of its own) and its u64 answer. */
static uint64_t fe_call(uint32_t req, const void *p, uint32_t len, int fd)
{
	uint8_t hdr[VU_HDR_SIZE], v[8];

	fe_send(req, p, len, fd);
	assert_true(harness_wait_readable(F->loop, F->fe, 2000));
	assert_int_equal(recv(F->fe, hdr, sizeof(hdr), MSG_WAITALL), VU_HDR_SIZE);
	assert_int_equal(get_le32(hdr), req);
	assert_int_equal(get_le32(hdr + 8), 8);
	assert_int_equal(recv(F->fe, v, sizeof(v), MSG_WAITALL), 8);
	return get_le64(v);
}

static uint64_t fe_u64(uint32_t req, uint64_t val)
{
	uint8_t p[8];

	put_le64(p, val);
	return fe_call(req, p, sizeof(p), -1);
}

static uint64_t fe_state(uint32_t req, uint32_t idx, uint32_t num)
{
	uint8_t p[8];

	put_le32(p, idx);
	put_le32(p + 4, num);
	return fe_call(req, p, sizeof(p), -1);
}

static void fe_ring(uint32_t q)
{
	uint8_t p[40] = {0};

	assert_int_equal(fe_state(VHOST_USER_SET_VRING_NUM, q, QSIZE), 0);
	assert_int_equal(fe_state(VHOST_USER_SET_VRING_BASE, q, 0), 0);
	put_le32(p, q);
	put_le64(p + 8, MEM_UADDR + DESC_OFF(q));
	put_le64(p + 16, MEM_UADDR + USED_OFF(q));
	put_le64(p + 24, MEM_UADDR + AVAIL_OFF(q));
	assert_int_equal(fe_call(VHOST_USER_SET_VRING_ADDR, p, sizeof(p), -1), 0);
	put_le64(p, q);
	assert_int_equal(fe_call(VHOST_USER_SET_VRING_KICK, p, 8, F->kick[q]), 0);
	assert_int_equal(fe_call(VHOST_USER_SET_VRING_CALL, p, 8, F->call[q]), 0);
	assert_int_equal(fe_state(VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
}

/* QEMU's order: features, protocol features, owner, memory, then each ring. */
static void fe_start(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const uint64_t pf = BIT(VU_PF_MQ) | BIT(VU_PF_REPLY_ACK) | BIT(VU_PF_CONFIGURE_MEM_SLOTS);
	uint8_t region[40] = {0};
	uint64_t f;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/disk0.sock", F->dir);
	/* The importer makes its socket once the exporter accepted the attach. */
	for (int t = 0; t < 2000 && access(sa.sun_path, F_OK) < 0; t++) {
		pump();
		usleep(1000);
	}
	F->fe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(F->fe >= 0);
	assert_int_equal(connect(F->fe, (struct sockaddr *)&sa, sizeof(sa)), 0);
	f = fe_call(VHOST_USER_GET_FEATURES, NULL, 0, -1);
	assert_true(f & BIT(VHOST_USER_F_PROTOCOL_BIT));
	assert_int_equal(fe_u64(VHOST_USER_SET_FEATURES, f), 0);
	assert_int_equal(fe_call(VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, -1) & pf, pf);
	assert_int_equal(fe_u64(VHOST_USER_SET_PROTOCOL_FEATURES, pf), 0);
	assert_int_equal(fe_call(VHOST_USER_SET_OWNER, NULL, 0, -1), 0);
	put_le64(region + 8, 0); /* guest physical */
	put_le64(region + 16, MEM_SIZE);
	put_le64(region + 24, MEM_UADDR);
	assert_int_equal(fe_call(VHOST_USER_ADD_MEM_REG, region, sizeof(region), F->memfd), 0);
	fe_ring(0);
	fe_ring(1);
}

/* The guest: n chains of one writable 64-byte buffer on queue q, heads 0..n-1. */
static void guest_post(unsigned q, uint16_t n)
{
	struct vring_desc *desc = (struct vring_desc *)(F->guest + DESC_OFF(q));
	uint16_t *avail = (uint16_t *)(F->guest + AVAIL_OFF(q));

	for (uint16_t i = 0; i < n; i++) {
		desc[i] = (struct vring_desc){BUF_OFF, 64, VRING_DESC_F_WRITE, 0};
		avail[2 + i] = i;
	}
	__atomic_store_n(&avail[1], n, __ATOMIC_RELEASE);
}

static void kick(unsigned q)
{
	uint64_t one = 1;

	assert_int_equal(write(F->kick[q], &one, sizeof(one)), 8);
}

/* REQUESTs the importer counted for queue q (its status, as vbridgectl shows it). */
static uint64_t requests_of(unsigned q)
{
	struct jw w;

	jw_init(&w);
	import_status_json(F->node.imports[0], &w);
	return status_counter(&w, q, "requests");
}

/* ---- fixture ---- */

static int setup(void **state)
{
	static struct fx *fx;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	char err[256], spec[128];

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	F = fx;
	fx->ex.fd = fx->fe = -1;
	fx->ex.node = "importer";
	fx->ex.expect_ms = 2000;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_importer.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fx->lfd >= 0);
	assert_int_equal(bind(fx->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fx->lfd, 1), 0);
	assert_int_equal(getsockname(fx->lfd, (struct sockaddr *)&sa, &salen), 0);
	config_defaults(&fx->cfg);
	snprintf(spec, sizeof(spec), "disk0=tcp://127.0.0.1:%u%s", ntohs(sa.sin_port),
	         import_extra);
	if (*import_extra) {
		assert_int_equal(config_set(&fx->cfg, "ptp4l", "local", err, sizeof(err)), 0);
	}
	import_extra = ""; /* for the next test's setup */
	assert_int_equal(config_set(&fx->cfg, "node", "ecu-b", err, sizeof(err)), 0);
	assert_int_equal(config_set(&fx->cfg, "runtime-dir", fx->dir, err, sizeof(err)), 0);
	assert_int_equal(config_set(&fx->cfg, "import", spec, err, sizeof(err)), 0);
	assert_int_equal(config_finish(&fx->cfg, err, sizeof(err)), 0);
	fx->loop = vb_loop_new();
	assert_non_null(fx->loop);
	fx->ex.loop = fx->loop;
	assert_int_equal(node_init(&fx->node, fx->loop, &fx->cfg), 0);
	fx->node_up = true;
	fx->memfd = memfd_create("test_importer-guest", MFD_CLOEXEC);
	assert_true(fx->memfd >= 0);
	assert_int_equal(ftruncate(fx->memfd, (off_t)MEM_SIZE), 0);
	fx->guest = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fx->memfd, 0);
	assert_true(fx->guest != MAP_FAILED);
	for (int q = 0; q < 2; q++) {
		fx->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fx->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(fx->kick[q] >= 0 && fx->call[q] >= 0);
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->fe >= 0) {
		close(fx->fe);
		pump();
	}
	if (fx->node_up) {
		node_fini(&fx->node);
	}
	if (fx->ex.fd >= 0) {
		close(fx->ex.fd);
	}
	close(fx->lfd);
	vb_loop_free(fx->loop);
	for (int q = 0; q < 2; q++) {
		close(fx->kick[q]);
		close(fx->call[q]);
	}
	munmap(fx->guest, MEM_SIZE);
	close(fx->memfd);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* ---- the test ---- */

/*
 * Queue 0 holds a full ring (QSIZE chains, four budgets' worth), queue 1 one
 * chain; both kicked. In the one loop iteration that handles the kicks,
 * queue 1's chain must be taken while queue 0 still has chains left; then
 * queue 0 must still be drained to the end (the budget defers, never drops),
 * and on the link queue 1's REQUEST must come after at most one budget of
 * queue 0's.
 */
static void test_flooded_queue_does_not_starve(void **state)
{
	struct wire_msg m;
	uint8_t copy[256];
	unsigned got0 = 0, before1 = 0, got1 = 0;
	uint8_t seen[QSIZE] = {0};
	uint64_t n0;

	pump();
	ex_attach();
	fe_start();
	pump();
	assert_int_equal(requests_of(0), 0);
	assert_int_equal(requests_of(1), 0);

	guest_post(0, QSIZE);
	guest_post(1, 1);
	kick(0);
	kick(1);
	/* Exactly one iteration: it runs both kick callbacks, in whatever order. */
	assert_int_equal(event_base_loop(vb_loop_base(F->loop), EVLOOP_ONCE), 0);
	n0 = requests_of(0);
	if (requests_of(1) != 1 || n0 == 0 || n0 > BUDGET) {
		fail_msg("one pass took %llu chains of queue 0 (of %u) and %llu of queue 1",
		         (unsigned long long)n0, QSIZE, (unsigned long long)requests_of(1));
	}

	/* What the link carries, in order: every chain once, queue 1 early. */
	while (got0 + got1 < QSIZE + 1 && peer_recv(&F->ex, &m, copy, sizeof(copy), 3000)) {
		uint16_t head;

		if (m.type != WIRE_REQUEST) {
			continue;
		}
		head = (uint16_t)(m.u.request.id & 0xffff);
		assert_int_equal(m.chan, F->chan);
		assert_true(m.u.request.queue <= 1);
		assert_int_equal(m.u.request.wr_len, 64);
		if (m.u.request.queue == 1) {
			assert_int_equal(head, 0);
			before1 = got0;
			got1++;
			continue;
		}
		assert_true(head < QSIZE);
		if (seen[head]++) {
			fail_msg("queue 0 head %u sent twice", head);
		}
		got0++;
	}
	if (got0 != QSIZE || got1 != 1) {
		fail_msg("the link carried %u of queue 0's %u chains and %u of queue 1's 1", got0,
		         QSIZE, got1);
	}
	if (before1 > BUDGET) {
		fail_msg("queue 1's request came after %u of queue 0's", before1);
	}
	assert_int_equal(requests_of(0), QSIZE);
	assert_int_equal(requests_of(1), 1);
}

/* ---- presentation time ---- */

static int setup_timed(void **state)
{
	import_extra = ",latency=20ms,late=1:drop";
	return setup(state);
}

static uint16_t used_idx(unsigned q)
{
	return __atomic_load_n((uint16_t *)(F->guest + USED_OFF(q) + 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_len(unsigned q, unsigned i)
{
	return get_le32(F->guest + USED_OFF(q) + 4 + 8 * i + 4);
}

static void ex_complete(const struct wire_request *r, int64_t t_done, uint8_t fill)
{
	struct wire_msg m = {.type = WIRE_COMPLETION, .chan = F->chan};
	uint8_t data[64];

	memset(data, fill, sizeof(data));
	m.u.completion.queue = r->queue;
	m.u.completion.id = r->id;
	m.u.completion.t_capture = r->t_capture;
	m.u.completion.t_done = (uint64_t)t_done;
	m.u.completion.written = sizeof(data);
	m.u.completion.data = data;
	peer_send(&F->ex, &m);
}

static const struct wire_request *find_req(struct wire_request *r, unsigned n, unsigned q,
                                           uint16_t head)
{
	for (unsigned i = 0; i < n; i++) {
		if (r[i].queue == q && (r[i].id & 0xffff) == head) {
			return &r[i];
		}
	}
	fail_msg("no request for queue %u head %u", q, head);
	return NULL;
}

/*
 * latency=20ms, queue 1 late=drop, the clock trusted (ptp4l=local). Each
 * REQUEST carries its capture time and capture + 20 ms (DROP_LATE on queue
 * 1 only). A completion done now waits in the importer and reaches the used
 * ring 20 ms after it was done, not before; one done a second ago is late:
 * delivered at once with its data (queue 0), or dropped (queue 1): used
 * length 0 and the guest's buffer left as it was. The stats count each.
 */
static void test_presentation_time(void **state)
{
	struct wire_request req[3];
	struct wire_msg m;
	uint8_t copy[3][256];
	unsigned n = 0;
	int64_t t0, now;
	struct jw w;

	pump();
	ex_attach();
	fe_start();
	pump();
	guest_post(0, 2);
	guest_post(1, 1);
	kick(0);
	kick(1);
	while (n < 3 && peer_recv(&F->ex, &m, copy[n], sizeof(copy[n]), 3000)) {
		if (m.type == WIRE_REQUEST) {
			req[n] = m.u.request;
			assert_true(req[n].t_capture > 0);
			assert_int_equal(req[n].t_deadline, req[n].t_capture + 20000000);
			assert_int_equal(req[n].flags, req[n].queue == 1 ? WIRE_REQ_DROP_LATE : 0);
			n++;
		}
	}
	assert_int_equal(n, 3);

	/* Late on queue 1 (late=drop): used length 0, nothing written. */
	memset(F->guest + BUF_OFF, 0x11, 64);
	now = node_time(&F->node);
	ex_complete(find_req(req, n, 1, 0), now - 1000000000ll, 0xd1);
	for (int t = 0; t < 2000 && used_idx(1) == 0; t++) {
		pump();
	}
	assert_int_equal(used_idx(1), 1);
	assert_int_equal(used_len(1, 0), 0);
	assert_int_equal(F->guest[BUF_OFF], 0x11);

	/* Late on queue 0 (late=deliver): at once, with its data. */
	ex_complete(find_req(req, n, 0, 1), now - 1000000000ll, 0xd2);
	for (int t = 0; t < 2000 && used_idx(0) == 0; t++) {
		pump();
	}
	assert_int_equal(used_idx(0), 1);
	assert_int_equal(used_len(0, 0), 64);
	assert_int_equal(F->guest[BUF_OFF], 0xd2);

	/* Done now: held 20 ms, never less. */
	t0 = node_time(&F->node);
	ex_complete(find_req(req, n, 0, 0), t0, 0xd3);
	while (used_idx(0) == 1) {
		now = node_time(&F->node);
		assert_true(now - t0 < 2000000000ll);
		pump();
	}
	now = node_time(&F->node);
	if (now - t0 < 20000000) {
		fail_msg("released %lld ns after it was done, budget 20 ms", (long long)(now - t0));
	}
	assert_int_equal(used_len(0, 1), 64);
	assert_int_equal(F->guest[BUF_OFF], 0xd3);

	jw_init(&w);
	import_stats_json(F->node.imports[0], &w);
	jw_raw(&w, "", 1);
	assert_false(w.failed);
	assert_non_null(strstr(w.buf, "\"late\":\"drop\""));
	{
		/* Queue 0: 2 timed, 1 held, 1 late; queue 1: 1 timed, 1 late, 1 dropped. */
		const char *q0 = strstr(w.buf, "\"index\":0");
		const char *q1 = strstr(w.buf, "\"index\":1");

		assert_non_null(q0);
		assert_non_null(q1);
		assert_non_null(strstr(q0, "\"timed\":2,\"held\":1,\"late\":1,\"dropped\":0"));
		assert_non_null(strstr(q1, "\"timed\":1,\"held\":0,\"late\":1,\"dropped\":1"));
	}
	jw_free(&w);

	/* A completion "done" 20 s from now would sit in the used ring's way: the link ends. */
	guest_post(0, 3);
	kick(0);
	n = 0;
	while (n == 0 && peer_recv(&F->ex, &m, copy[0], sizeof(copy[0]), 3000)) {
		if (m.type == WIRE_REQUEST) {
			req[n++] = m.u.request;
		}
	}
	assert_int_equal(n, 1);
	ex_complete(&req[0], node_time(&F->node) + 20000000000ll, 0xd4);
	{
		bool closed = false;

		for (int t = 0; t < 3000 && !closed; t++) {
			if (harness_wait_readable(F->loop, F->ex.fd, 1)) {
				closed =
				    recv(F->ex.fd, F->ex.rx, sizeof(F->ex.rx), MSG_DONTWAIT) == 0;
			}
		}
		assert_true(closed);
	}
	assert_int_equal(used_idx(0), 2);
	assert_int_equal(F->guest[BUF_OFF], 0xd3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_flooded_queue_does_not_starve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_presentation_time, setup_timed, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
