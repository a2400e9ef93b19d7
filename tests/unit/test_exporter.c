/*
 * exporter: a backend that completes a flood of requests on one queue cannot
 * starve the device's other queues, and the flood itself is reaped to the end
 * (adversarial case 32, on the exporter's side).
 *
 * The real node, link and exporter run on a hand-driven loop in this thread;
 * the test plays the importing node (a TCP peer on loopback that speaks the
 * wire protocol) and the device backend. The backend is our own vhost-user
 * endpoint (bridge/vu_dev.c) on a second loop in a second thread, because the
 * exporter's frontend waits synchronously for the backend's replies; it holds
 * every chain it is given until the test lets it complete them all at once.
 *
 * The defence under test is xq_reap()'s budget (bridge/exporter.c EX_BUDGET,
 * 256 used entries per queue per pass, then the flush timer resumes): in the
 * one loop iteration that handles both queues' call eventfds, queue 1's
 * completion must go out while queue 0 still has used entries left, and all
 * of queue 0's must follow: the queue's callbacks are off when its budget
 * runs out, so only the flush timer brings the reaping back. See
 * test_importer.c for the guest-facing side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "bridge/config.h"
#include "bridge/exporter.h"
#include "bridge/jw.h"
#include "bridge/loop.h"
#include "bridge/node.h"
#include "bridge/util.h"
#include "bridge/virtq.h"
#include "bridge/vu_dev.h"
#include "bridge/wire.h"
#include "tests/unit/harness.h"
#include "transport/transport.h"

#define BUDGET 256u  /* docs/security.md case 32: used entries per queue per pass */
#define QSIZE0 1024u /* the largest queue the exporter accepts by default */
#define FLOOD  1000u /* requests on queue 0, almost four budgets */
#define QSIZE1 8u
#define BIT(n) (1ull << (n))

/* ---- the backend: vu_dev on its own loop and thread ---- */

struct backend {
	struct vb_loop *loop;
	struct vu_dev *dev;
	struct vb_watch *release_w, *stop_w;
	int release_fd, stop_fd;
	pthread_t th;
	struct virtq *vq[2]; /* __atomic: set and cleared by the backend thread */
	uint16_t held[2][QSIZE0];
	unsigned nheld[2]; /* __atomic: chains popped and not completed */
	int released;      /* __atomic: all held chains pushed and signalled */
	char err[200];     /* a ring error seen by the backend */
};

static struct backend *B;

static uint64_t b_get_features(void *arg)
{
	return BIT(VIRTIO_F_VERSION_1);
}

static void b_set_features(void *arg, uint64_t f)
{
}

static int b_get_config(void *arg, uint32_t off, uint8_t *buf, uint32_t len)
{
	memset(buf, 0, len);
	return 0;
}

static int b_set_config(void *arg, uint32_t off, const uint8_t *buf, uint32_t len)
{
	return -EINVAL;
}

static void b_queue_start(void *arg, unsigned q, struct virtq *vq)
{
	if (q < 2) {
		__atomic_store_n(&B->vq[q], vq, __ATOMIC_RELEASE);
	}
}

static void b_queue_stop(void *arg, unsigned q)
{
	if (q < 2) {
		__atomic_store_n(&B->vq[q], NULL, __ATOMIC_RELEASE);
	}
}

/* Takes every available chain and holds it. */
static void b_queue_kick(void *arg, unsigned q)
{
	struct virtq_chain c;
	int rc;

	if (q >= 2 || !B->vq[q]) {
		return;
	}
	while ((rc = virtq_pop(B->vq[q], &c)) == 1) {
		unsigned n = __atomic_load_n(&B->nheld[q], __ATOMIC_RELAXED);

		B->held[q][n] = c.head;
		__atomic_store_n(&B->nheld[q], n + 1, __ATOMIC_RELEASE);
	}
	if (rc < 0) {
		snprintf(B->err, sizeof(B->err), "queue %u: %s", q, B->vq[q]->err);
	}
}

static void b_nop(void *arg)
{
}

static void b_disconnected(void *arg, const char *reason)
{
}

static const struct vu_dev_ops backend_ops = {
    .get_features = b_get_features,
    .set_features = b_set_features,
    .get_config = b_get_config,
    .set_config = b_set_config,
    .queue_start = b_queue_start,
    .queue_stop = b_queue_stop,
    .queue_kick = b_queue_kick,
    .reset = b_nop,
    .connected = b_nop,
    .disconnected = b_disconnected,
};

/* Completes everything held, queue 0 first, then signals both queues. */
static void b_release(int fd, unsigned ev, void *arg)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v)) {
		return;
	}
	for (unsigned q = 0; q < 2; q++) {
		unsigned n = __atomic_load_n(&B->nheld[q], __ATOMIC_ACQUIRE);

		for (unsigned i = 0; i < n && B->vq[q]; i++) {
			virtq_push(B->vq[q], B->held[q][i], 0);
		}
		__atomic_store_n(&B->nheld[q], 0, __ATOMIC_RELEASE);
	}
	vu_dev_notify(B->dev, 0);
	vu_dev_notify(B->dev, 1);
	__atomic_store_n(&B->released, 1, __ATOMIC_RELEASE);
}

static void b_stop(int fd, unsigned ev, void *arg)
{
	vb_loop_break(B->loop);
}

static void *b_main(void *arg)
{
	vb_loop_run(B->loop);
	return NULL;
}

static void backend_start(const char *path)
{
	struct vu_dev_params p = {
	    .path = path,
	    .name = "backend",
	    .num_queues = 2,
	    .max_queue_size = QSIZE0,
	    .max_mem_slots = 8,
	};
	char err[200];

	B = calloc(1, sizeof(*B));
	assert_non_null(B);
	B->loop = vb_loop_new();
	assert_non_null(B->loop);
	B->dev = vu_dev_new(B->loop, &p, &backend_ops, B, err, sizeof(err));
	if (!B->dev) {
		fail_msg("backend: %s", err);
	}
	B->release_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	B->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(B->release_fd >= 0 && B->stop_fd >= 0);
	B->release_w = vb_watch_new(B->loop, B->release_fd, VB_EV_READ, b_release, B);
	B->stop_w = vb_watch_new(B->loop, B->stop_fd, VB_EV_READ, b_stop, B);
	assert_true(B->release_w && B->stop_w);
	assert_int_equal(pthread_create(&B->th, NULL, b_main, B), 0);
}

static void backend_stop(void)
{
	uint64_t one = 1;

	if (!B) {
		return;
	}
	assert_int_equal(write(B->stop_fd, &one, sizeof(one)), 8);
	pthread_join(B->th, NULL);
	vb_watch_free(B->release_w);
	vb_watch_free(B->stop_w);
	vu_dev_free(B->dev);
	vb_loop_free(B->loop);
	close(B->release_fd);
	close(B->stop_fd);
	free(B);
	B = NULL;
}

/* ---- the exporting node (under test) and the importing node (the test) ---- */

struct fx {
	char dir[64];
	struct vb_config cfg;
	struct vb_loop *loop;
	struct node node;
	bool node_up;
	struct peer im; /* the importing node */
};

static struct fx *F;

static void pump(void)
{
	harness_pump(F->loop, HARNESS_PUMP_ROUNDS);
}

static void im_queue_start(uint16_t q, uint16_t size)
{
	struct wire_msg m = {.type = WIRE_QUEUE_START, .chan = 1};

	m.u.queue.index = q;
	m.u.queue.size = size;
	peer_send(&F->im, &m);
}

static bool backend_started(void)
{
	return __atomic_load_n(&B->vq[0], __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&B->vq[1], __ATOMIC_ACQUIRE);
}

/* HELLO both ways, ATTACH, FEATURES, both queues started at the backend. */
static void im_attach(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	const char *uri = transport_listener_uri(F->node.listeners[0]);
	struct wire_msg m = {.type = WIRE_HELLO}, in;
	uint8_t copy[1024];

	sa.sin_port = htons((uint16_t)atoi(strrchr(uri, ':') + 1));
	F->im.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(F->im.fd >= 0);
	assert_int_equal(connect(F->im.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	m.u.hello.ver_min = m.u.hello.ver_max = WIRE_VERSION;
	m.u.hello.epoch = 9;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "ecu-b");
	peer_send(&F->im, &m);
	peer_expect(&F->im, WIRE_HELLO, &in, copy, sizeof(copy));
	memset(&m, 0, sizeof(m));
	m.type = WIRE_ATTACH;
	m.chan = 1;
	snprintf(m.u.attach.name, sizeof(m.u.attach.name), "disk0");
	peer_send(&F->im, &m);
	peer_expect(&F->im, WIRE_ATTACH_OK, &in, copy, sizeof(copy));
	assert_int_equal(in.u.attach_ok.num_queues, 2);
	assert_true(in.u.attach_ok.max_queue_size >= QSIZE0);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_FEATURES;
	m.chan = 1;
	m.u.features.features = in.u.attach_ok.features;
	peer_send(&F->im, &m);
	im_queue_start(0, QSIZE0);
	im_queue_start(1, QSIZE1);
	for (int t = 0; t < 3000 && !backend_started(); t++) {
		pump();
		usleep(1000);
	}
	assert_true(backend_started());
}

/* A request for 64 writable bytes; id: queue in bit 32, index below. */
static void im_request(uint16_t q, uint32_t i)
{
	struct wire_msg m = {.type = WIRE_REQUEST, .chan = 1};

	m.u.request.queue = q;
	m.u.request.wr_len = 64;
	m.u.request.id = ((uint64_t)q << 32) | (i + 1);
	peer_send(&F->im, &m);
}

/* What the exporter counted for queue q (its status, as vbridgectl shows it). */
static uint64_t status_of(unsigned q, const char *what)
{
	struct jw w;

	jw_init(&w);
	export_status_json(F->node.exports[0], &w);
	return status_counter(&w, q, what);
}

static bool trust_clock; /* setup_timed: ptp4l=local */

static bool held_all(void)
{
	return __atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE) == FLOOD &&
	       __atomic_load_n(&B->nheld[1], __ATOMIC_ACQUIRE) == 1;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	static struct fx *fx;
	char err[256], spec[160];

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	F = fx;
	fx->im.fd = -1;
	fx->im.node = "exporter";
	fx->im.expect_ms = 3000;
	fx->im.skip_ping = true;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_exporter.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(spec, sizeof(spec), "%s/backend.sock", fx->dir);
	backend_start(spec);
	snprintf(spec, sizeof(spec), "disk0=vhost-user:%s/backend.sock,type=blk", fx->dir);
	config_defaults(&fx->cfg);
	assert_int_equal(config_set(&fx->cfg, "node", "ecu-a", err, sizeof(err)), 0);
	assert_int_equal(config_set(&fx->cfg, "runtime-dir", fx->dir, err, sizeof(err)), 0);
	assert_int_equal(config_set(&fx->cfg, "listen", "tcp://127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(config_set(&fx->cfg, "export", spec, err, sizeof(err)), 0);
	if (trust_clock) {
		assert_int_equal(config_set(&fx->cfg, "ptp4l", "local", err, sizeof(err)), 0);
	}
	trust_clock = false; /* for the next test's setup */
	assert_int_equal(config_finish(&fx->cfg, err, sizeof(err)), 0);
	fx->loop = vb_loop_new();
	assert_non_null(fx->loop);
	fx->im.loop = fx->loop;
	assert_int_equal(node_init(&fx->node, fx->loop, &fx->cfg), 0);
	fx->node_up = true;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->im.fd >= 0) {
		close(fx->im.fd);
		pump();
	}
	/* The backend still answers while the exporter lets go of it. */
	if (fx->node_up) {
		node_fini(&fx->node);
	}
	backend_stop();
	vb_loop_free(fx->loop);
	unlink(fx->cfg.control);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* ---- the test ---- */

/*
 * FLOOD requests on queue 0 and one on queue 1 are all with the backend,
 * which then completes every one of them at once and signals both queues.
 */
static void test_flooded_queue_does_not_starve(void **state)
{
	struct wire_msg m;
	uint8_t copy[256], seen[FLOOD] = {0};
	unsigned got0 = 0, got1 = 0, before1 = 0;
	uint64_t one = 1, n0;

	pump();
	im_attach();
	for (uint32_t i = 0; i < FLOOD; i++) {
		im_request(0, i);
	}
	im_request(1, 0);
	for (int t = 0; t < 3000 && !held_all(); t++) {
		pump();
		usleep(1000);
	}
	if (!held_all()) {
		fail_msg("the backend got %u of %u requests on queue 0 and %u of 1 on queue 1 (%s)",
		         __atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE), FLOOD,
		         __atomic_load_n(&B->nheld[1], __ATOMIC_ACQUIRE), B->err);
	}
	assert_int_equal(status_of(0, "completions"), 0);

	/* Our loop stands still while the backend completes and signals everything. */
	assert_int_equal(write(B->release_fd, &one, sizeof(one)), 8);
	for (int t = 0; t < 3000 && !__atomic_load_n(&B->released, __ATOMIC_ACQUIRE); t++) {
		usleep(1000);
	}
	assert_true(__atomic_load_n(&B->released, __ATOMIC_ACQUIRE));
	/* Exactly one iteration: both call eventfds are readable, both callbacks run. */
	assert_int_equal(event_base_loop(vb_loop_base(F->loop), EVLOOP_ONCE), 0);
	n0 = status_of(0, "completions");
	if (status_of(1, "completions") != 1 || n0 == 0 || n0 > BUDGET) {
		fail_msg("one pass reaped %llu of queue 0's %u used entries and %llu of queue 1's",
		         (unsigned long long)n0, FLOOD,
		         (unsigned long long)status_of(1, "completions"));
	}

	/* What the link carries, in order: every completion once, queue 1's early. */
	while (got0 + got1 < FLOOD + 1 && peer_recv(&F->im, &m, copy, sizeof(copy), 3000)) {
		uint64_t id;

		if (m.type != WIRE_COMPLETION) {
			continue;
		}
		id = m.u.completion.id;
		assert_int_equal(m.u.completion.queue, id >> 32);
		assert_int_equal(m.u.completion.status, WIRE_CPL_OK);
		if (id >> 32 == 1) {
			before1 = got0;
			got1++;
			continue;
		}
		assert_true((id & 0xffffffff) >= 1 && (id & 0xffffffff) <= FLOOD);
		if (seen[(id & 0xffffffff) - 1]++) {
			fail_msg("completion %llu sent twice", (unsigned long long)id);
		}
		got0++;
	}
	if (got0 != FLOOD || got1 != 1) {
		fail_msg("the link carried %u of queue 0's %u completions and %u of queue 1's 1",
		         got0, FLOOD, got1);
	}
	if (before1 > BUDGET) {
		fail_msg("queue 1's completion came after %u of queue 0's", before1);
	}
	assert_int_equal(status_of(0, "inflight"), 0);
	assert_int_equal(status_of(1, "inflight"), 0);
}

/* ---- presentation time ---- */

static int setup_timed(void **state)
{
	trust_clock = true;
	return setup(state);
}

static void im_timed_request(uint16_t q, uint32_t i, int64_t deadline, uint16_t flags)
{
	struct wire_msg m = {.type = WIRE_REQUEST, .chan = 1};

	m.u.request.queue = q;
	m.u.request.wr_len = 64;
	m.u.request.id = ((uint64_t)q << 32) | (i + 1);
	m.u.request.t_capture = (uint64_t)(deadline - 5000000);
	m.u.request.t_deadline = (uint64_t)deadline;
	m.u.request.flags = flags;
	peer_send(&F->im, &m);
}

/*
 * The clock trusted (ptp4l=local). A request that arrives after its
 * deadline with DROP_LATE is never given to the backend: it completes LATE
 * without data. A request due in 30 ms reaches the backend at its deadline,
 * not before; one without DROP_LATE that is late goes at once.
 */
static void test_presentation_time(void **state)
{
	struct wire_msg m;
	uint8_t copy[256];
	int64_t now, due;
	bool got = false;

	pump();
	im_attach();
	now = node_time(&F->node);
	im_timed_request(1, 0, now - 1000000000ll, WIRE_REQ_DROP_LATE);
	while (!got && peer_recv(&F->im, &m, copy, sizeof(copy), 3000)) {
		if (m.type == WIRE_COMPLETION) {
			assert_int_equal(m.u.completion.id, (1ull << 32) | 1);
			assert_int_equal(m.u.completion.status, WIRE_CPL_LATE);
			assert_int_equal(m.u.completion.written, 0);
			got = true;
		}
	}
	assert_true(got);
	assert_int_equal(__atomic_load_n(&B->nheld[1], __ATOMIC_ACQUIRE), 0);

	due = node_time(&F->node) + 30000000;
	im_timed_request(0, 0, due, WIRE_REQ_DROP_LATE);
	while (__atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE) == 0) {
		now = node_time(&F->node);
		assert_true(now - due < 2000000000ll);
		pump();
	}
	now = node_time(&F->node);
	if (now < due) {
		fail_msg("the backend got the request %lld ns before its deadline",
		         (long long)(due - now));
	}
	im_timed_request(0, 1, node_time(&F->node) - 1000000, 0);
	for (int t = 0; t < 3000 && __atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE) < 2; t++) {
		pump();
		usleep(1000);
	}
	assert_int_equal(__atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE), 2);
	{
		struct jw w;

		jw_init(&w);
		export_stats_json(F->node.exports[0], &w);
		jw_raw(&w, "", 1);
		assert_false(w.failed);
		/* Queue 0: 2 timed, 1 held, 1 late; queue 1: 1 late and dropped. */
		assert_non_null(strstr(w.buf, "\"timed\":2,\"held\":1,\"late\":1,\"dropped\":0"));
		assert_non_null(strstr(w.buf, "\"timed\":1,\"held\":0,\"late\":1,\"dropped\":1"));
		jw_free(&w);
	}
	/* A deadline 20 s ahead would hold the queue for nothing: the link ends (the log says why).
	 */
	im_timed_request(0, 2, node_time(&F->node) + 20000000000ll, 0);
	got = false;
	for (int t = 0; t < 3000 && !got; t++) {
		if (harness_wait_readable(F->loop, F->im.fd, 1)) {
			ssize_t n = recv(F->im.fd, F->im.rx, sizeof(F->im.rx), MSG_DONTWAIT);

			got = n == 0;
		}
	}
	assert_true(got);
	assert_int_equal(__atomic_load_n(&B->nheld[0], __ATOMIC_ACQUIRE), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_presentation_time, setup_timed, teardown),
	    cmocka_unit_test_setup_teardown(test_flooded_queue_does_not_starve, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
