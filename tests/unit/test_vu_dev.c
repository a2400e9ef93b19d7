/*
 * vu_dev: a scripted frontend over the real listening socket. The test plays
 * QEMU 7.2 (the normal set-up sequence of one queue) and a hostile VMM (one
 * table entry per malformed message); after each hostile case the endpoint
 * must have closed the connection, told the owner why, closed every fd and
 * unmapped every region, and must accept a new frontend.
 *
 * The event loop is driven by hand (event_base_loop(EVLOOP_NONBLOCK)) between
 * the frontend's writes and reads, so everything runs in one thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
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
#include "tests/unit/harness.h"

#define NQ        2
#define QMAX      256
#define MEM_SIZE  0x10000ull
#define MEM_GPA   0x100000ull
#define MEM_UADDR 0x7f0000000000ull
#define DESC_OFF  0x0000ull
#define AVAIL_OFF 0x1000ull
#define USED_OFF  0x2000ull
#define BUF_OFF   0x4000ull
#define QSIZE     256u
#define MEMFD_TAG "vutest-guest"

#define DEV_FEATURES (BIT(1) | BIT(6) | BIT(9))
#define BIT(n)       (1ull << (n))
#define PF_ALL                                                                                     \
	(BIT(VU_PF_MQ) | BIT(VU_PF_REPLY_ACK) | BIT(VU_PF_BACKEND_REQ) | BIT(VU_PF_CONFIG) |       \
	 BIT(VU_PF_CONFIGURE_MEM_SLOTS) | BIT(VU_PF_RESET_DEVICE))

/* ---- the owner's side: callbacks record what happened ---- */

struct owner {
	int connected, disconnected, starts, stops, kicks, resets;
	int start_q, stop_q, kick_q;
	uint16_t stop_used_idx;
	struct virtq *vq;
	uint64_t dev_features;
	char reason[256];
	bool pop_on_kick;        /* complete every chain and notify, like a device */
	bool disconnect_on_kick; /* report a broken ring from inside the callback */
	bool disconnect_on_start;
	bool faulted; /* the guest memory table said so after the last kick */
	int popped;
	uint8_t config[16];
	int config_sets;
};

struct fx {
	struct vb_loop *loop;
	struct vu_dev *dev;
	char dir[64];
	char path[128];
	struct owner o;
	int memfd;
	uint8_t *guest; /* our view of the memfd */
};

static struct fx *F;

static uint64_t o_get_features(void *arg)
{
	/* RING_PACKED (34) is offered by the "device" and must be filtered. */
	return DEV_FEATURES | BIT(34);
}

static void o_set_features(void *arg, uint64_t f)
{
	F->o.dev_features = f;
}

static int o_get_config(void *arg, uint32_t off, uint8_t *buf, uint32_t len)
{
	if (off > sizeof(F->o.config) || len > sizeof(F->o.config) - off) {
		return -EINVAL;
	}
	memcpy(buf, F->o.config + off, len);
	return 0;
}

static int o_set_config(void *arg, uint32_t off, const uint8_t *buf, uint32_t len)
{
	if (off > sizeof(F->o.config) || len > sizeof(F->o.config) - off) {
		return -EINVAL;
	}
	memcpy(F->o.config + off, buf, len);
	F->o.config_sets++;
	return 0;
}

static void o_queue_start(void *arg, unsigned q, struct virtq *vq)
{
	F->o.starts++;
	F->o.start_q = (int)q;
	F->o.vq = vq;
	if (F->o.disconnect_on_start) {
		vu_dev_disconnect(F->dev, "owner refuses the queue");
	}
}

static void o_queue_stop(void *arg, unsigned q)
{
	/* The rings must still be mapped when the owner hears of the stop. */
	F->o.stop_used_idx = __atomic_load_n(&F->o.vq->used[1], __ATOMIC_ACQUIRE);
	F->o.stops++;
	F->o.stop_q = (int)q;
	F->o.vq = NULL;
}

static void o_queue_kick(void *arg, unsigned q)
{
	struct virtq_chain c;

	F->o.kicks++;
	F->o.kick_q = (int)q;
	if (F->o.disconnect_on_kick) {
		vu_dev_disconnect(F->dev, "queue 0: guest broke the ring");
		/* The endpoint defers the teardown: the ring is still ours here. */
		assert_true(vu_dev_connected(F->dev));
		return;
	}
	while (F->o.pop_on_kick && F->o.vq && virtq_pop(F->o.vq, &c) == 1) {
		F->o.popped++;
		assert_int_equal(virtq_push(F->o.vq, c.head, 0), 0);
	}
	if (F->o.pop_on_kick) {
		vu_dev_notify(F->dev, q);
	}
	F->o.faulted = gmem_faulted(vu_dev_mem(F->dev));
}

static void o_reset(void *arg)
{
	F->o.resets++;
}

static void o_connected(void *arg)
{
	F->o.connected++;
}

static void o_disconnected(void *arg, const char *reason)
{
	F->o.disconnected++;
	snprintf(F->o.reason, sizeof(F->o.reason), "%s", reason);
	assert_false(vu_dev_connected(F->dev));
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

/* ---- driving the loop ---- */

static void pump(void)
{
	harness_pump(F->loop, HARNESS_PUMP_ROUNDS);
}

/* ---- the scripted frontend ---- */

struct rmsg {
	uint32_t request, flags, size;
	uint8_t payload[512];
};

static void sun_set(struct sockaddr_un *sa, const char *path)
{
	assert_true(strlen(path) < sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

static int fe_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sun_set(&sa, F->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump();
	return fd;
}

static void fe_send_raw(int fd, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union harness_cmsg cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_int_equal(harness_attach_fds(&mh, &cm, fds, nfds), 0);
	assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void fe_send(int fd, uint32_t req, uint32_t flags, const void *p, uint32_t len,
                    const int *fds, unsigned nfds)
{
	uint8_t buf[VU_HDR_SIZE + 512];

	assert_true(len <= 512);
	put_le32(buf, req);
	put_le32(buf + 4, flags | VU_VERSION);
	put_le32(buf + 8, len);
	if (len) {
		memcpy(buf + VU_HDR_SIZE, p, len);
	}
	fe_send_raw(fd, buf, VU_HDR_SIZE + len, fds, nfds);
	pump();
}

static void fe_recv(int fd, struct rmsg *m)
{
	uint8_t hdr[VU_HDR_SIZE];

	assert_true(harness_wait_readable(F->loop, fd, 2000));
	assert_int_equal(recv(fd, hdr, sizeof(hdr), MSG_WAITALL), VU_HDR_SIZE);
	m->request = get_le32(hdr);
	m->flags = get_le32(hdr + 4);
	m->size = get_le32(hdr + 8);
	assert_true(m->size <= sizeof(m->payload));
	if (m->size) {
		assert_int_equal(recv(fd, m->payload, m->size, MSG_WAITALL), (ssize_t)m->size);
	}
	assert_int_equal(m->flags, VU_VERSION | VU_FLAG_REPLY);
}

static uint64_t fe_recv_u64(int fd, uint32_t req)
{
	struct rmsg m;

	fe_recv(fd, &m);
	assert_int_equal(m.request, req);
	assert_int_equal(m.size, 8);
	return get_le64(m.payload);
}

/* A request with NEED_REPLY and its REPLY_ACK u64. */
static uint64_t fe_call(int fd, uint32_t req, const void *p, uint32_t len, const int *fds,
                        unsigned nfds)
{
	fe_send(fd, req, VU_FLAG_NEED_REPLY, p, len, fds, nfds);
	return fe_recv_u64(fd, req);
}

static uint64_t fe_get_u64(int fd, uint32_t req)
{
	fe_send(fd, req, 0, NULL, 0, NULL, 0);
	return fe_recv_u64(fd, req);
}

static uint64_t fe_set_u64(int fd, uint32_t req, uint64_t v)
{
	uint8_t p[8];

	put_le64(p, v);
	return fe_call(fd, req, p, sizeof(p), NULL, 0);
}

static void state_put(uint8_t p[8], uint32_t idx, uint32_t num)
{
	put_le32(p, idx);
	put_le32(p + 4, num);
}

static uint64_t fe_state(int fd, uint32_t req, uint32_t idx, uint32_t num)
{
	uint8_t p[8];

	state_put(p, idx, num);
	return fe_call(fd, req, p, sizeof(p), NULL, 0);
}

static void addr_put(uint8_t p[40], uint32_t idx, uint64_t desc, uint64_t avail, uint64_t used)
{
	memset(p, 0, 40);
	put_le32(p, idx);
	put_le64(p + 8, desc);
	put_le64(p + 16, used);
	put_le64(p + 24, avail);
}

static uint64_t fe_addr(int fd, uint32_t idx, uint64_t desc, uint64_t avail, uint64_t used)
{
	uint8_t p[40];

	addr_put(p, idx, desc, avail, used);
	return fe_call(fd, VHOST_USER_SET_VRING_ADDR, p, sizeof(p), NULL, 0);
}

/* Sends an fd and closes our copy: the endpoint owns it now. */
static uint64_t fe_file(int fd, uint32_t req, uint64_t v, int efd)
{
	uint8_t p[8];
	uint64_t r;

	put_le64(p, v);
	r = fe_call(fd, req, p, sizeof(p), &efd, efd >= 0);
	if (efd >= 0) {
		close(efd);
	}
	return r;
}

static void region_put(uint8_t p[40], uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t off)
{
	put_le64(p, 0);
	put_le64(p + 8, gpa);
	put_le64(p + 16, size);
	put_le64(p + 24, uaddr);
	put_le64(p + 32, off);
}

static uint64_t fe_add_region(int fd, uint64_t gpa, uint64_t size, uint64_t uaddr, int mfd)
{
	uint8_t p[40];

	region_put(p, gpa, size, uaddr, 0);
	return fe_call(fd, VHOST_USER_ADD_MEM_REG, p, sizeof(p), &mfd, 1);
}

/* Reads (and drops) whatever the endpoint still sends until it closes. */
static bool fe_closed(int fd)
{
	uint8_t buf[256];

	for (int i = 0; i < 100; i++) {
		ssize_t n;

		if (!harness_wait_readable(F->loop, fd, 2000)) {
			return false;
		}
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			return true;
		}
	}
	return false;
}

/* ---- the QEMU 7.2 sequence ---- */

static int memfd_new(size_t size)
{
	int fd = memfd_create(MEMFD_TAG, MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void fe_negotiate(int fd)
{
	uint64_t f = fe_get_u64(fd, VHOST_USER_GET_FEATURES);

	assert_int_equal(f & DEV_FEATURES, DEV_FEATURES);
	assert_true(f & BIT(VIRTIO_F_VERSION_1));
	assert_true(f & BIT(VIRTIO_F_RING_EVENT_IDX));
	assert_true(f & BIT(VIRTIO_F_RING_INDIRECT_DESC));
	assert_true(f & BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	assert_false(f & BIT(34)); /* packed rings are not ours to offer */
	assert_int_equal(fe_set_u64(fd, VHOST_USER_SET_FEATURES, f), 0);
	assert_int_equal(F->o.dev_features, DEV_FEATURES | BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(vu_dev_acked_features(F->dev), f);
	assert_int_equal(fe_get_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES), PF_ALL);
	assert_int_equal(fe_set_u64(fd, VHOST_USER_SET_PROTOCOL_FEATURES, PF_ALL), 0);
	assert_int_equal(fe_get_u64(fd, VHOST_USER_GET_QUEUE_NUM), NQ);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	assert_int_equal(fe_get_u64(fd, VHOST_USER_GET_MAX_MEM_SLOTS), 8);
}

static void fe_memory(int fd)
{
	int mfd = memfd_new(MEM_SIZE);

	assert_int_equal(fe_add_region(fd, MEM_GPA, MEM_SIZE, MEM_UADDR, mfd), 0);
	close(mfd);
	assert_int_equal(vu_dev_mem(F->dev)->nregions, 1);
}

static int eventfd_new(void)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(efd >= 0);
	return efd;
}

/* Rings of queue q, up to SET_VRING_CALL; returns our kick and call eventfds. */
static void fe_ring(int fd, uint32_t q, int *kick, int *call)
{
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_NUM, q, QSIZE), 0);
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_BASE, q, 0), 0);
	assert_int_equal(
	    fe_addr(fd, q, MEM_UADDR + DESC_OFF, MEM_UADDR + AVAIL_OFF, MEM_UADDR + USED_OFF), 0);
	*kick = eventfd_new();
	*call = eventfd_new();
	assert_int_equal(fe_file(fd, VHOST_USER_SET_VRING_KICK, q, dup(*kick)), 0);
	assert_int_equal(fe_file(fd, VHOST_USER_SET_VRING_CALL, q, dup(*call)), 0);
}

/* Full set-up of queue 0 through SET_VRING_ENABLE 1. */
static int fe_start(int *kick, int *call)
{
	int fd = fe_connect();

	fe_negotiate(fd);
	fe_memory(fd);
	fe_ring(fd, 0, kick, call);
	assert_int_equal(F->o.starts, 0); /* F_PROTOCOL_FEATURES: rings start disabled */
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(F->o.starts, 1);
	assert_int_equal(F->o.start_q, 0);
	assert_non_null(F->o.vq);
	return fd;
}

/* The guest side: one chain of one writable buffer in the avail ring. */
static void guest_post(uint16_t slot)
{
	struct vring_desc *desc = (struct vring_desc *)(F->guest + DESC_OFF);
	uint16_t *avail = (uint16_t *)(F->guest + AVAIL_OFF);

	desc[slot].addr = MEM_GPA + BUF_OFF;
	desc[slot].len = 64;
	desc[slot].flags = VRING_DESC_F_WRITE;
	desc[slot].next = 0;
	avail[2 + slot % QSIZE] = slot;
	__atomic_store_n(&avail[1], (uint16_t)(slot + 1), __ATOMIC_RELEASE);
}

static void kick(int efd)
{
	uint64_t one = 1;

	assert_int_equal(write(efd, &one, sizeof(one)), 8);
	pump();
}

static bool eventfd_fired(int efd)
{
	uint64_t v;

	return read(efd, &v, sizeof(v)) == 8 && v > 0;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct vu_dev_params p = {
	    .name = "test",
	    .num_queues = NQ,
	    .max_queue_size = QMAX,
	    .max_mem_slots = 8,
	};
	char err[200];
	static struct fx fx;
	int mfd;

	memset(&fx, 0, sizeof(fx));
	F = &fx;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vu_dev.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	snprintf(fx.path, sizeof(fx.path), "%s/dev.sock", fx.dir);
	p.path = fx.path;
	fx.loop = vb_loop_new();
	assert_non_null(fx.loop);
	fx.dev = vu_dev_new(fx.loop, &p, &owner_ops, &fx, err, sizeof(err));
	assert_non_null(fx.dev);
	/* The guest's RAM as the test sees it; the endpoint maps its own copy. */
	mfd = memfd_new(MEM_SIZE);
	fx.guest = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(fx.guest != MAP_FAILED);
	fx.memfd = mfd;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	vu_dev_free(F->dev);
	assert_int_equal(access(F->path, F_OK), -1); /* the socket file is gone */
	munmap(F->guest, MEM_SIZE);
	close(F->memfd);
	vb_loop_free(F->loop);
	rmdir(F->dir);
	return 0;
}

/* Test memory shared with the endpoint: same memfd as F->guest. */
static void fe_memory_shared(int fd)
{
	assert_int_equal(fe_add_region(fd, MEM_GPA, MEM_SIZE, MEM_UADDR, F->memfd), 0);
}

static int fe_start_shared(int *kick, int *call)
{
	int fd = fe_connect();

	fe_negotiate(fd);
	fe_memory_shared(fd);
	fe_ring(fd, 0, kick, call);
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(F->o.starts, 1);
	return fd;
}

static void close_all(int a, int b, int c)
{
	close(a);
	close(b);
	close(c);
}

/* ---- normal operation ---- */

static void test_qemu72_sequence(void **state)
{
	int base_fds = fd_count();
	int kfd, cfd, fd, open_fds;
	struct rmsg m;
	uint8_t p[8];

	fd = fe_start_shared(&kfd, &cfd);
	assert_int_equal(F->o.connected, 1);
	assert_true(vu_dev_connected(F->dev));

	/* A kick reaches the owner; a completion signals the call eventfd. */
	F->o.pop_on_kick = true;
	guest_post(0);
	kick(kfd);
	assert_int_equal(F->o.kicks, 1);
	assert_int_equal(F->o.kick_q, 0);
	assert_int_equal(F->o.popped, 1);
	assert_true(eventfd_fired(cfd));

	/* GET_VRING_BASE stops the ring and reports where it stopped. */
	open_fds = fd_count();
	state_put(p, 0, 0);
	fe_send(fd, VHOST_USER_GET_VRING_BASE, 0, p, sizeof(p), NULL, 0);
	fe_recv(fd, &m);
	assert_int_equal(m.request, VHOST_USER_GET_VRING_BASE);
	assert_int_equal(m.size, 8);
	assert_int_equal(get_le32(m.payload), 0);
	assert_int_equal(get_le32(m.payload + 4), 1);
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(F->o.stop_q, 0);
	/* The kick fd went with the ring: closed, and later kicks reach nobody. */
	assert_int_equal(fd_count(), open_fds - 1);
	kick(kfd);
	assert_int_equal(F->o.kicks, 1);

	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(F->o.disconnected, 1);
	assert_int_equal(fd_count(), base_fds);
}

/* Without F_PROTOCOL_FEATURES a ring starts on its kick fd (spec: Ring states). */
static void test_legacy_start_on_kick(void **state)
{
	int fd = fe_connect();
	int kfd, cfd, mfd = memfd_new(MEM_SIZE);
	uint64_t f = fe_get_u64(fd, VHOST_USER_GET_FEATURES);
	uint8_t p[8 + 32];

	f &= ~BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(fe_set_u64(fd, VHOST_USER_SET_FEATURES, f), 0);
	/* No protocol features: ADD_MEM_REG (CONFIGURE_MEM_SLOTS) is not allowed. */
	region_put(p, MEM_GPA, MEM_SIZE, MEM_UADDR, 0);
	fe_send(fd, VHOST_USER_ADD_MEM_REG, 0, p, 40, &mfd, 1);
	assert_true(fe_closed(fd));
	assert_string_equal(F->o.reason, "ADD_MEM_REG: protocol feature not negotiated");
	close(fd);
	pump();

	fd = fe_connect();
	assert_int_equal(fe_set_u64(fd, VHOST_USER_SET_FEATURES, f), 0);
	memset(p, 0, sizeof(p));
	put_le32(p, 1);
	put_le64(p + 8, MEM_GPA);
	put_le64(p + 16, MEM_SIZE);
	put_le64(p + 24, MEM_UADDR);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_MEM_TABLE, p, sizeof(p), &mfd, 1), 0);
	close(mfd);
	fe_ring(fd, 1, &kfd, &cfd);
	assert_int_equal(F->o.starts, 1);
	assert_int_equal(F->o.start_q, 1);
	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(F->o.disconnected, 2);
}

/* VMM killed mid-traffic: queues stopped, memory unmapped, fds closed (case 46). */
static void test_vmm_gone(void **state)
{
	int base_fds = fd_count();
	int base_maps = map_count(MEMFD_TAG);
	int kfd, cfd, fd = fe_start(&kfd, &cfd);

	assert_int_equal(map_count(MEMFD_TAG), base_maps + 1);
	close(fd);
	pump();
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(F->o.disconnected, 1);
	assert_string_equal(F->o.reason, "frontend closed the connection");
	assert_int_equal(map_count(MEMFD_TAG), base_maps);
	close(kfd);
	close(cfd);
	assert_int_equal(fd_count(), base_fds);
	assert_int_equal(vu_dev_mem(F->dev)->nregions, 0);
}

/* QEMU 7.2 attaches the fd to REM_MEM_REG; a queue whose rings go is stopped first. */
static void test_rem_mem_reg_stops_queue(void **state)
{
	int base_fds = fd_count();
	int kfd, cfd, fd = fe_start(&kfd, &cfd);
	uint8_t p[40];
	int mfd = memfd_new(MEM_SIZE);

	region_put(p, MEM_GPA, MEM_SIZE, MEM_UADDR, 0);
	assert_int_equal(fe_call(fd, VHOST_USER_REM_MEM_REG, p, sizeof(p), &mfd, 1), 0);
	close(mfd);
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(vu_dev_mem(F->dev)->nregions, 0);
	/* Unknown region: refused, connection kept. */
	assert_int_not_equal(fe_call(fd, VHOST_USER_REM_MEM_REG, p, sizeof(p), NULL, 0), 0);
	assert_true(vu_dev_connected(F->dev));
	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(fd_count(), base_fds);
}

/*
 * Found by tests/fuzz/fuzz_vu_stream (adversarial case 16 on the SET_MEM_TABLE
 * path): the table was built on the stack and copied into place, so each
 * region's SIGBUS guard still pointed at the dead stack copy. A truncated
 * memfd then wrote into a stale stack frame and the session carried on.
 */
static void test_set_mem_table_truncated(void **state)
{
	int kfd, cfd, fd = fe_connect();
	int mfd = memfd_new(MEM_SIZE);
	uint64_t f = fe_get_u64(fd, VHOST_USER_GET_FEATURES);
	uint8_t p[8 + 32];

	assert_int_equal(sigbus_guard_install(), 0); /* over the test framework's handler */
	/* Without F_PROTOCOL_FEATURES the ring starts as soon as it has a kick fd. */
	f &= ~BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(fe_set_u64(fd, VHOST_USER_SET_FEATURES, f), 0);
	memset(p, 0, sizeof(p));
	put_le32(p, 1);
	put_le64(p + 8, MEM_GPA);
	put_le64(p + 16, MEM_SIZE);
	put_le64(p + 24, MEM_UADDR);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_MEM_TABLE, p, sizeof(p), &mfd, 1), 0);
	fe_ring(fd, 0, &kfd, &cfd);
	assert_int_equal(F->o.starts, 1);
	F->o.pop_on_kick = true;
	assert_int_equal(ftruncate(mfd, 0), 0); /* the VMM takes the guest's RAM away */
	kick(kfd);
	assert_int_equal(F->o.kicks, 1);
	assert_true(F->o.faulted);
	close(mfd);
	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(F->o.disconnected, 1);
}

/* SET_MEM_TABLE replaces the table; a running ring that still fits keeps running. */
static void test_set_mem_table_remap(void **state)
{
	int kfd, cfd, fd = fe_start(&kfd, &cfd);
	uint8_t p[8 + 64];
	int mfd[2] = {memfd_new(MEM_SIZE), memfd_new(MEM_SIZE)};

	memset(p, 0, sizeof(p));
	put_le32(p, 2);
	put_le64(p + 8, MEM_GPA);
	put_le64(p + 16, MEM_SIZE);
	put_le64(p + 24, MEM_UADDR);
	put_le64(p + 40, MEM_GPA + MEM_SIZE);
	put_le64(p + 48, MEM_SIZE);
	put_le64(p + 56, MEM_UADDR + MEM_SIZE);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_MEM_TABLE, p, sizeof(p), mfd, 2), 0);
	assert_int_equal(vu_dev_mem(F->dev)->nregions, 2);
	assert_int_equal(F->o.stops, 0);
	/* A table without the rings' region stops the queue before unmapping. */
	put_le32(p, 1);
	put_le64(p + 8, MEM_GPA + MEM_SIZE);
	put_le64(p + 24, MEM_UADDR + MEM_SIZE);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_MEM_TABLE, p, 40, &mfd[1], 1), 0);
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(vu_dev_mem(F->dev)->nregions, 1);
	close(mfd[0]);
	close(mfd[1]);
	close_all(fd, kfd, cfd);
	pump();
}

static void test_config(void **state)
{
	int fd = fe_connect();
	uint8_t p[12 + 16];
	struct rmsg m;

	fe_negotiate(fd);
	memcpy(F->o.config, "0123456789abcdef", 16);
	memset(p, 0, sizeof(p));
	put_le32(p, 4);
	put_le32(p + 4, 8);
	fe_send(fd, VHOST_USER_GET_CONFIG, 0, p, 12 + 8, NULL, 0);
	fe_recv(fd, &m);
	assert_int_equal(m.request, VHOST_USER_GET_CONFIG);
	assert_int_equal(m.size, 12 + 8);
	assert_memory_equal(m.payload + 12, "456789ab", 8);
	/* Beyond the device's config space: a zero-size reply (spec: GET_CONFIG). */
	put_le32(p, 12);
	fe_send(fd, VHOST_USER_GET_CONFIG, 0, p, 12 + 8, NULL, 0);
	fe_recv(fd, &m);
	assert_int_equal(m.size, 0);
	/* SET_CONFIG: applied, or refused without dropping the frontend. */
	put_le32(p, 0);
	put_le32(p + 4, 4);
	memcpy(p + 12, "WXYZ", 4);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_CONFIG, p, 12 + 4, NULL, 0), 0);
	assert_memory_equal(F->o.config, "WXYZ", 4);
	put_le32(p, 14);
	assert_int_not_equal(fe_call(fd, VHOST_USER_SET_CONFIG, p, 12 + 4, NULL, 0), 0);
	assert_true(vu_dev_connected(F->dev));
	close(fd);
	pump();
}

static void test_backend_channel(void **state)
{
	int base_fds = fd_count();
	int fd = fe_connect();
	int sv[2];
	uint8_t hdr[VU_HDR_SIZE];

	fe_negotiate(fd);
	assert_int_equal(vu_dev_config_changed(F->dev), -ENOTCONN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fe_call(fd, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1), 0);
	close(sv[1]);
	assert_int_equal(vu_dev_config_changed(F->dev), 0);
	assert_int_equal(recv(sv[0], hdr, sizeof(hdr), MSG_WAITALL), VU_HDR_SIZE);
	assert_int_equal(get_le32(hdr), VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	assert_int_equal(get_le32(hdr + 4), VU_VERSION); /* no NEED_REPLY */
	assert_int_equal(get_le32(hdr + 8), 0);
	/* Junk on the channel is discarded; EOF closes it. */
	assert_int_equal(write(sv[0], "junk", 4), 4);
	pump();
	assert_true(vu_dev_connected(F->dev));
	close(sv[0]);
	pump();
	assert_int_equal(vu_dev_config_changed(F->dev), -ENOTCONN);
	close(fd);
	pump();
	assert_int_equal(fd_count(), base_fds);
}

static void test_reset_device(void **state)
{
	int kfd2, cfd2, kfd, cfd, fd = fe_start(&kfd, &cfd);

	assert_int_equal(fe_call(fd, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	assert_int_equal(F->o.stops, 1);
	assert_int_equal(F->o.resets, 1);
	/* The ring was forgotten: enabling it again does not start it. */
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(F->o.starts, 1);
	/* SET_VRING_ENABLE 0 stops a running ring. */
	fe_ring(fd, 1, &kfd2, &cfd2);
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
	assert_int_equal(F->o.starts, 2);
	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
	assert_int_equal(F->o.stops, 2);
	close_all(fd, kfd, cfd);
	close(kfd2);
	close(cfd2);
	pump();
}

/* The owner reports a broken ring from inside queue_kick: torn down after it returns. */
static void test_owner_disconnect_in_callback(void **state)
{
	int base_fds = fd_count();
	int kfd, cfd, fd = fe_start(&kfd, &cfd);

	F->o.disconnect_on_kick = true;
	kick(kfd);
	assert_true(fe_closed(fd));
	assert_int_equal(F->o.disconnected, 1);
	assert_string_equal(F->o.reason, "queue 0: guest broke the ring");
	assert_int_equal(F->o.stops, 1);
	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(fd_count(), base_fds);

	/* The same from inside queue_start, during message dispatch. */
	F->o.disconnect_on_kick = false;
	F->o.disconnect_on_start = true;
	fd = fe_connect();
	fe_negotiate(fd);
	fe_memory(fd);
	fe_ring(fd, 0, &kfd, &cfd);
	fe_send(fd, VHOST_USER_SET_VRING_ENABLE, 0, (uint8_t[8]){0, 0, 0, 0, 1}, 8, NULL, 0);
	assert_true(fe_closed(fd));
	assert_string_equal(F->o.reason, "owner refuses the queue");
	close_all(fd, kfd, cfd);
	pump();
	assert_int_equal(fd_count(), base_fds);
}

/* A second frontend is turned away; the first keeps working. */
static void test_second_frontend(void **state)
{
	int a = fe_connect();
	int b;

	assert_int_equal(fe_get_u64(a, VHOST_USER_GET_QUEUE_NUM), NQ);
	b = fe_connect();
	assert_true(fe_closed(b));
	close(b);
	assert_int_equal(F->o.connected, 1);
	assert_int_equal(F->o.disconnected, 0);
	assert_int_equal(fe_get_u64(a, VHOST_USER_GET_QUEUE_NUM), NQ);
	close(a);
	pump();
	/* ...and the next one is accepted. */
	a = fe_connect();
	assert_int_equal(fe_get_u64(a, VHOST_USER_GET_QUEUE_NUM), NQ);
	assert_int_equal(F->o.connected, 2);
	close(a);
	pump();
}

/* Payload arriving 200 ms after its header is still one message (case 4). */
static void test_split_message(void **state)
{
	int fd = fe_connect();
	uint8_t buf[VU_HDR_SIZE + 8];
	struct rmsg m;

	put_le32(buf, VHOST_USER_SET_FEATURES);
	put_le32(buf + 4, VU_VERSION | VU_FLAG_NEED_REPLY);
	put_le32(buf + 8, 8);
	put_le64(buf + 12, BIT(VIRTIO_F_VERSION_1));
	fe_send_raw(fd, buf, 5, NULL, 0);
	pump();
	usleep(100000);
	fe_send_raw(fd, buf + 5, 10, NULL, 0);
	pump();
	usleep(100000);
	fe_send_raw(fd, buf + 15, sizeof(buf) - 15, NULL, 0);
	fe_recv(fd, &m);
	assert_int_equal(get_le64(m.payload), 0);
	assert_int_equal(vu_dev_acked_features(F->dev), BIT(VIRTIO_F_VERSION_1));
	close(fd);
	pump();
}

/* ---- hostile frontends ---- */

enum prefix { P_NONE, P_NEGOTIATED, P_MEMORY };
enum fdkind {
	FD_NONE,
	FD_EVENTFD,
	FD_REGULAR,
	FD_SOCKET,
	FD_PIPE,
	FD_MEMFD,
	FD_MEMFD_SMALL,
	FD_TWO
};

struct hostile {
	const char *name;
	enum prefix prefix;
	uint32_t request;
	uint32_t flags;
	uint8_t payload[80];
	uint32_t len;
	enum fdkind fds;
	/* Special scripts: raw bytes, EOF after a header, a ring set-up. */
	void (*script)(int fd, const struct hostile *h);
	uint64_t a, b;
};

static int make_fd(enum fdkind k, int *second)
{
	int sv[2], fd = -1;
	char tmpl[] = "/tmp/vu_dev_reg.XXXXXX";

	switch (k) {
	case FD_EVENTFD:
		return eventfd_new();
	case FD_REGULAR:
		fd = mkstemp(tmpl);
		unlink(tmpl);
		return fd;
	case FD_SOCKET:
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		close(sv[1]);
		return sv[0];
	case FD_PIPE:
		assert_int_equal(pipe2(sv, O_CLOEXEC), 0);
		close(sv[1]);
		return sv[0];
	case FD_MEMFD:
		return memfd_new(MEM_SIZE);
	case FD_MEMFD_SMALL:
		return memfd_new(MEM_SIZE / 2);
	case FD_TWO:
		*second = eventfd_new();
		return eventfd_new();
	default:
		return -1;
	}
}

static void script_send(int fd, const struct hostile *h)
{
	int fds[2] = {-1, -1};
	unsigned n;

	fds[0] = make_fd(h->fds, &fds[1]);
	n = (fds[0] >= 0) + (fds[1] >= 0);
	fe_send(fd, h->request, h->flags, h->payload, h->len, fds, n);
	for (unsigned i = 0; i < n; i++) {
		close(fds[i]);
	}
}

static void script_raw_header(int fd, const struct hostile *h)
{
	uint8_t hdr[VU_HDR_SIZE];

	put_le32(hdr, (uint32_t)h->a);
	put_le32(hdr + 4, VU_VERSION);
	put_le32(hdr + 8, (uint32_t)h->b);
	fe_send_raw(fd, hdr, sizeof(hdr), NULL, 0);
	/* Header then EOF (case 1): the half-read message must not leak. */
	shutdown(fd, SHUT_WR);
}

static void script_flags(int fd, const struct hostile *h)
{
	uint8_t hdr[VU_HDR_SIZE];

	put_le32(hdr, VHOST_USER_GET_FEATURES);
	put_le32(hdr + 4, (uint32_t)h->a);
	put_le32(hdr + 8, 0);
	fe_send_raw(fd, hdr, sizeof(hdr), NULL, 0);
}

/* Ring at desc/avail/used offsets a..: NUM, BASE, ADDR, KICK, then ENABLE. */
static void script_ring(int fd, const struct hostile *h)
{
	int efd = eventfd_new();
	uint8_t p[40];

	assert_int_equal(fe_state(fd, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	addr_put(p, 0, MEM_UADDR + h->a, MEM_UADDR + AVAIL_OFF, MEM_UADDR + h->b);
	fe_send(fd, VHOST_USER_SET_VRING_ADDR, 0, p, sizeof(p), NULL, 0);
	put_le64(p, 0);
	if (vu_dev_connected(F->dev)) {
		fe_send(fd, VHOST_USER_SET_VRING_KICK, 0, p, 8, &efd, 1);
		state_put(p, 0, 1);
		fe_send(fd, VHOST_USER_SET_VRING_ENABLE, 0, p, 8, NULL, 0);
	}
	close(efd);
}

#define U64B(v)                                                                                    \
	(uint8_t)(v), (uint8_t)((uint64_t)(v) >> 8), (uint8_t)((uint64_t)(v) >> 16),               \
	    (uint8_t)((uint64_t)(v) >> 24), (uint8_t)((uint64_t)(v) >> 32),                        \
	    (uint8_t)((uint64_t)(v) >> 40), (uint8_t)((uint64_t)(v) >> 48),                        \
	    (uint8_t)((uint64_t)(v) >> 56)
#define U32B(v) (uint8_t)(v), (uint8_t)((v) >> 8), (uint8_t)((v) >> 16), (uint8_t)((v) >> 24)
#define U64(v)                                                                                     \
	{                                                                                          \
		U64B(v)                                                                            \
	}
#define ST(i, n)                                                                                   \
	{                                                                                          \
		U32B(i), U32B(n)                                                                   \
	}
#define ADDR_IDX(i)                                                                                \
	{                                                                                          \
		U32B(i)                                                                            \
	}
#define REGION(g, sz)                                                                              \
	{                                                                                          \
		U64B(0), U64B(g), U64B(sz), U64B(MEM_UADDR), U64B(0)                               \
	}
#define NR VU_FLAG_NEED_REPLY

/* A message case: prefix, request, flags, payload length, fd kind, payload. */
#define M(nm, pre, req, fl, ln, fdk, ...)                                                          \
	{                                                                                          \
		.name = (nm), .prefix = (pre), .request = (req), .flags = (fl), .len = (ln),       \
		.fds = (fdk), .payload = __VA_ARGS__                                               \
	}
/* A scripted case. */
#define S(nm, pre, fn, va, vb)                                                                     \
	{                                                                                          \
		.name = (nm), .prefix = (pre), .script = (fn), .a = (va), .b = (vb)                \
	}

static const struct hostile hostile_cases[] = {
    S("size 0xFFFFFFFF", P_NONE, script_raw_header, 1, 0xFFFFFFFFu),
    S("header then EOF", P_NONE, script_raw_header, 2, 8),
    S("version 2", P_NONE, script_flags, 2, 0),
    S("REPLY flag on a request", P_NONE, script_flags, 1 | VU_FLAG_REPLY, 0),
    M("unknown request 999", P_NONE, 999, NR, 0, FD_NONE, {0}),
    M("unknown request 41", P_NONE, 41, 0, 0, FD_NONE, {0}),
    M("SET_STATUS not offered", P_NEGOTIATED, VHOST_USER_SET_STATUS, NR, 8, FD_NONE, U64(0xf)),
    M("GET_STATUS not offered", P_NEGOTIATED, VHOST_USER_GET_STATUS, 0, 0, FD_NONE, {0}),
    M("SET_LOG_BASE unsupported", P_NEGOTIATED, VHOST_USER_SET_LOG_BASE, 0, 8, FD_NONE, U64(0)),
    M("GET_CONFIG before CONFIG", P_NONE, VHOST_USER_GET_CONFIG, 0, 16, FD_NONE, ST(0, 4)),
    M("SET_FEATURES packed", P_NONE, VHOST_USER_SET_FEATURES, NR, 8, FD_NONE, U64(BIT(34))),
    M("SET_FEATURES bit 63", P_NONE, VHOST_USER_SET_FEATURES, 0, 8, FD_NONE, U64(BIT(63))),
    M("SET_PROTOCOL_FEATURES STATUS", P_NONE, VHOST_USER_SET_PROTOCOL_FEATURES, NR, 8, FD_NONE,
      U64(BIT(VU_PF_STATUS))),
    M("GET_FEATURES with an fd", P_NONE, VHOST_USER_GET_FEATURES, 0, 0, FD_EVENTFD, {0}),
    M("SET_FEATURES short", P_NONE, VHOST_USER_SET_FEATURES, NR, 4, FD_NONE, {0}),
    /* Per-vring index at full width (case 10). */
    M("SET_VRING_NUM idx 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, NR, 8, FD_NONE,
      ST(0x10000, 16)),
    M("SET_VRING_NUM idx ~0", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, 0, 8, FD_NONE,
      ST(0xFFFFFFFFu, 16)),
    M("SET_VRING_NUM idx 2", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, 0, 8, FD_NONE, ST(2, 16)),
    M("SET_VRING_BASE idx 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_BASE, 0, 8, FD_NONE,
      ST(0x10000, 0)),
    M("SET_VRING_BASE idx ~0", P_NEGOTIATED, VHOST_USER_SET_VRING_BASE, NR, 8, FD_NONE,
      ST(0xFFFFFFFFu, 0)),
    M("SET_VRING_ADDR idx 0x10000", P_MEMORY, VHOST_USER_SET_VRING_ADDR, 0, 40, FD_NONE,
      ADDR_IDX(0x10000)),
    M("SET_VRING_ADDR idx ~0", P_MEMORY, VHOST_USER_SET_VRING_ADDR, NR, 40, FD_NONE,
      ADDR_IDX(0xFFFFFFFFu)),
    M("SET_VRING_KICK idx 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_EVENTFD,
      U64(0x10000)),
    M("SET_VRING_KICK idx ~0", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, NR, 8, FD_EVENTFD,
      U64(0xFFFFFFFFu)),
    M("SET_VRING_KICK idx 2", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_EVENTFD, U64(2)),
    M("SET_VRING_CALL idx 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, 0, 8, FD_EVENTFD,
      U64(0x10000)),
    M("SET_VRING_ENABLE idx 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_ENABLE, 0, 8, FD_NONE,
      ST(0x10000, 1)),
    M("SET_VRING_ENABLE idx ~0", P_NEGOTIATED, VHOST_USER_SET_VRING_ENABLE, NR, 8, FD_NONE,
      ST(0xFFFFFFFFu, 1)),
    M("SET_VRING_ENABLE value 2", P_NEGOTIATED, VHOST_USER_SET_VRING_ENABLE, NR, 8, FD_NONE,
      ST(0, 2)),
    M("GET_VRING_BASE idx 0x10000", P_NEGOTIATED, VHOST_USER_GET_VRING_BASE, 0, 8, FD_NONE,
      ST(0x10000, 0)),
    M("GET_VRING_BASE idx ~0", P_NEGOTIATED, VHOST_USER_GET_VRING_BASE, 0, 8, FD_NONE,
      ST(0xFFFFFFFFu, 0)),
    /* Ring sizes (case 11). */
    M("SET_VRING_NUM 0", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, NR, 8, FD_NONE, ST(0, 0)),
    M("SET_VRING_NUM 3", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, NR, 8, FD_NONE, ST(0, 3)),
    M("SET_VRING_NUM 65536", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, 0, 8, FD_NONE, ST(0, 65536)),
    M("SET_VRING_NUM above max", P_NEGOTIATED, VHOST_USER_SET_VRING_NUM, 0, 8, FD_NONE, ST(0, 512)),
    M("SET_VRING_BASE 0x10000", P_NEGOTIATED, VHOST_USER_SET_VRING_BASE, 0, 8, FD_NONE,
      ST(0, 0x10000)),
    /* Fd types (cases 8 and 9). */
    M("kick fd regular file", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, NR, 8, FD_REGULAR, U64(0)),
    M("kick fd socket", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_SOCKET, U64(0)),
    M("kick fd pipe", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_PIPE, U64(0)),
    M("call fd pipe", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, NR, 8, FD_PIPE, U64(1)),
    M("kick without fd (polling)", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, NR, 8, FD_NONE,
      U64(0x100)),
    M("kick no-fd bit with an fd", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_EVENTFD,
      U64(0x100)),
    M("kick with two fds", P_NEGOTIATED, VHOST_USER_SET_VRING_KICK, 0, 8, FD_TWO, U64(0)),
    M("call fd regular file", P_NEGOTIATED, VHOST_USER_SET_VRING_CALL, 0, 8, FD_REGULAR, U64(0)),
    M("err fd socket", P_NEGOTIATED, VHOST_USER_SET_VRING_ERR, 0, 8, FD_SOCKET, U64(0)),
    M("backend fd eventfd", P_NEGOTIATED, VHOST_USER_SET_BACKEND_REQ_FD, 0, 0, FD_EVENTFD, {0}),
    /* Memory (cases 12-15). */
    M("ADD_MEM_REG overlapping", P_MEMORY, VHOST_USER_ADD_MEM_REG, NR, 40, FD_MEMFD,
      REGION(MEM_GPA + 0x1000, 0x1000)),
    M("ADD_MEM_REG beyond the memfd", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, 0, 40, FD_MEMFD_SMALL,
      REGION(MEM_GPA, MEM_SIZE)),
    M("ADD_MEM_REG socket fd", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, 0, 40, FD_SOCKET,
      REGION(MEM_GPA, MEM_SIZE)),
    M("ADD_MEM_REG size 0", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, NR, 40, FD_MEMFD,
      REGION(MEM_GPA, 0)),
    M("ADD_MEM_REG gpa wraps", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, 0, 40, FD_MEMFD,
      REGION(0xFFFFFFFFFFFFF000ull, 0x2000)),
    M("ADD_MEM_REG without fd", P_NEGOTIATED, VHOST_USER_ADD_MEM_REG, 0, 40, FD_NONE,
      REGION(MEM_GPA, MEM_SIZE)),
    M("SET_MEM_TABLE 0 regions", P_NEGOTIATED, VHOST_USER_SET_MEM_TABLE, 0, 8, FD_NONE, {0}),
    M("SET_MEM_TABLE 2 regions 1 fd", P_NEGOTIATED, VHOST_USER_SET_MEM_TABLE, 0, 72, FD_MEMFD, {2}),
    /* Ring addresses (case 17): a = desc offset, b = used offset. */
    S("ring outside any region", P_MEMORY, script_ring, MEM_SIZE * 4, USED_OFF),
    S("ring straddles the region end", P_MEMORY, script_ring, DESC_OFF, MEM_SIZE - 0x100),
    S("desc misaligned", P_MEMORY, script_ring, DESC_OFF + 8, USED_OFF),
    S("used misaligned", P_MEMORY, script_ring, DESC_OFF, USED_OFF + 2),
};

static void run_prefix(int fd, enum prefix p)
{
	if (p >= P_NEGOTIATED) {
		fe_negotiate(fd);
	}
	if (p >= P_MEMORY) {
		fe_memory(fd);
	}
}

static void check_fresh_frontend_works(void)
{
	int fd = fe_connect();

	assert_true(fe_get_u64(fd, VHOST_USER_GET_FEATURES) & BIT(VIRTIO_F_VERSION_1));
	close(fd);
	pump();
}

static void test_hostile(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(hostile_cases); i++) {
		const struct hostile *h = &hostile_cases[i];
		int base_fds = fd_count();
		int base_maps = map_count(MEMFD_TAG);
		int before = F->o.disconnected;
		int fd;

		print_message("hostile: %s\n", h->name);
		fd = fe_connect();
		run_prefix(fd, h->prefix);
		(h->script ? h->script : script_send)(fd, h);
		assert_true(fe_closed(fd));
		assert_false(vu_dev_connected(F->dev));
		assert_int_equal(F->o.disconnected, before + 1);
		assert_true(strlen(F->o.reason) > 0);
		assert_int_equal(F->o.starts, F->o.stops); /* nothing left running */
		close(fd);
		pump();
		assert_int_equal(fd_count(), base_fds);
		assert_int_equal(map_count(MEMFD_TAG), base_maps);
		check_fresh_frontend_works();
		assert_int_equal(fd_count(), base_fds);
	}
}

/* The call fd replaced many times: each old one is closed, the count stays flat. */
static void test_fd_flood(void **state)
{
	int base_fds = fd_count();
	int fd = fe_connect();
	int efd = eventfd_new();

	for (int i = 0; i < 200; i++) {
		fe_send(fd, VHOST_USER_SET_VRING_CALL, NR, (uint8_t[8]){0}, 8, &efd, 1);
		assert_int_equal(fe_recv_u64(fd, VHOST_USER_SET_VRING_CALL), 0);
	}
	close(efd);
	close(fd);
	pump();
	assert_int_equal(fd_count(), base_fds);
}

/* Out of fds: accepting pauses instead of spinning, and resumes (listener backoff). */
static void test_accept_emfile(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct rlimit old, low;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sun_set(&sa, F->path);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd + 1; /* no room for the accepted socket */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump();
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	pump();
	assert_int_equal(F->o.connected, 0); /* paused, not retried at once */
	for (int i = 0; i < 300 && !F->o.connected; i++) {
		usleep(10000);
		pump();
	}
	assert_int_equal(F->o.connected, 1);
	assert_int_equal(fe_get_u64(fd, VHOST_USER_GET_QUEUE_NUM), NQ);
	close(fd);
	pump();
}

/* ---- construction ---- */

static void test_new_errors(void **state)
{
	struct vu_dev_params p = {
	    .name = "bad", .num_queues = 1, .max_queue_size = 256, .max_mem_slots = 8};
	char path[160], err[200];
	struct vu_dev *d;
	int fd;

	/* A regular file at the path is not ours to replace. */
	snprintf(path, sizeof(path), "%s/file", F->dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	p.path = path;
	assert_null(vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);

	/* Parameters out of range. */
	snprintf(path, sizeof(path), "%s/x.sock", F->dir);
	p.num_queues = 0;
	assert_null(vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err)));
	p.num_queues = VU_DEV_MAX_QUEUES + 1;
	assert_null(vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err)));
	p.num_queues = 1;
	p.max_mem_slots = 33;
	assert_null(vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err)));
	p.max_mem_slots = 8;
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_null(vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err)));

	/* A stale socket file is replaced; the mode is 0660. */
	snprintf(path, sizeof(path), "%s/x.sock", F->dir);
	d = vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err));
	assert_non_null(d);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0660);
	}
	vu_dev_free(d);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		sun_set(&sa, path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	close(fd);
	d = vu_dev_new(F->loop, &p, &owner_ops, F, err, sizeof(err));
	assert_non_null(d);
	vu_dev_free(d);
	vu_dev_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_qemu72_sequence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_start_on_kick, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vmm_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rem_mem_reg_stops_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_mem_table_remap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_mem_table_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backend_channel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_disconnect_in_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_frontend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fd_flood, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_accept_emfile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
	};

	log_init(1, 0, "test_vu_dev");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
