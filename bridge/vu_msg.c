/*
 * vhost-user message codec. Sizes, fd counts and layouts follow QEMU
 * docs/interop/vhost-user.rst as of QEMU 7.2 ("Message Specification",
 * "Front-end message types", "Back-end message types"). All fields are
 * little-endian on the machines we run on (the spec says native order).
 */
#include "bridge/vu_msg.h"

#include <errno.h>
#include <string.h>

#include "bridge/util.h"

#define SZ_VAR UINT32_MAX /* size checked by the entry's check function */

#define U64_SIZE         8u
#define VRING_STATE_SIZE 8u
#define VRING_ADDR_SIZE  40u
#define MEM_TABLE_HDR    8u  /* u32 nregions, u32 padding */
#define MEM_REGION_SIZE  32u /* gpa, size, uaddr, mmap offset */
#define MEM_REG_MSG_SIZE 40u /* u64 padding + one region */
#define CONFIG_HDR_SIZE  12u /* offset, size, flags */
#define CONFIG_FLAGS_MAX 1u  /* 0: front-end write, 1: live migration */
#define VRING_FILE_BITS  (VU_VRING_IDX_MASK | VU_VRING_NOFD)

struct vu_rule {
	const char *name;
	bool supported;
	uint32_t size; /* exact payload size, or SZ_VAR */
	uint8_t fd_min, fd_max;
	/* Extra structural check: variable sizes, fd counts that depend on the payload. */
	int (*check)(const struct vu_msg *m, const char **why);
};

static int fail(const char **why, const char *msg)
{
	if (why) {
		*why = msg;
	}
	return -EPROTO;
}

static int check_vring_file(const struct vu_msg *m, const char **why);
static int check_mem_table(const struct vu_msg *m, const char **why);
static int check_mem_region(const struct vu_msg *m, const char **why);
static int check_config(const struct vu_msg *m, const char **why);
static int check_config_change(const struct vu_msg *m, const char **why);

#define REQ(code, sz, fmin, fmax, fn)                                                              \
	[VHOST_USER_##code] = {#code, true, (sz), (fmin), (fmax), (fn)}
#define UNSUPPORTED(code) [VHOST_USER_##code] = {#code, false, 0, 0, 0, NULL}

/*
 * One entry per front-end request code. Deliberately unsupported: logging
 * and postcopy (we never offer VHOST_F_LOG_ALL, LOG_SHMFD or PAGEFAULT),
 * IOTLB (no VIRTIO_F_ACCESS_PLATFORM), RARP/MTU/crypto/GPU (device
 * specific), in-band kicks (INBAND_NOTIFICATIONS not offered).
 */
static const struct vu_rule req_rules[VHOST_USER_MAX] = {
    UNSUPPORTED(NONE),
    REQ(GET_FEATURES, 0, 0, 0, NULL),
    REQ(SET_FEATURES, U64_SIZE, 0, 0, NULL),
    REQ(SET_OWNER, 0, 0, 0, NULL),
    REQ(RESET_OWNER, 0, 0, 0, NULL),
    /* The fds match the regions in number and order (SET_MEM_TABLE). */
    REQ(SET_MEM_TABLE, SZ_VAR, 1, VU_MEM_TABLE_REGIONS, check_mem_table),
    UNSUPPORTED(SET_LOG_BASE),
    UNSUPPORTED(SET_LOG_FD),
    REQ(SET_VRING_NUM, VRING_STATE_SIZE, 0, 0, NULL),
    REQ(SET_VRING_ADDR, VRING_ADDR_SIZE, 0, 0, NULL),
    REQ(SET_VRING_BASE, VRING_STATE_SIZE, 0, 0, NULL),
    REQ(GET_VRING_BASE, VRING_STATE_SIZE, 0, 0, NULL),
    /* Bit 8 of the u64 says "no fd in the ancillary data". */
    REQ(SET_VRING_KICK, U64_SIZE, 0, 1, check_vring_file),
    REQ(SET_VRING_CALL, U64_SIZE, 0, 1, check_vring_file),
    REQ(SET_VRING_ERR, U64_SIZE, 0, 1, check_vring_file),
    REQ(GET_PROTOCOL_FEATURES, 0, 0, 0, NULL),
    REQ(SET_PROTOCOL_FEATURES, U64_SIZE, 0, 0, NULL),
    REQ(GET_QUEUE_NUM, 0, 0, 0, NULL),
    REQ(SET_VRING_ENABLE, VRING_STATE_SIZE, 0, 0, NULL),
    UNSUPPORTED(SEND_RARP),
    UNSUPPORTED(NET_SET_MTU),
    REQ(SET_BACKEND_REQ_FD, 0, 1, 1, NULL),
    UNSUPPORTED(IOTLB_MSG),
    REQ(SET_VRING_ENDIAN, VRING_STATE_SIZE, 0, 0, NULL),
    REQ(GET_CONFIG, SZ_VAR, 0, 0, check_config),
    REQ(SET_CONFIG, SZ_VAR, 0, 0, check_config),
    UNSUPPORTED(CREATE_CRYPTO_SESSION),
    UNSUPPORTED(CLOSE_CRYPTO_SESSION),
    UNSUPPORTED(POSTCOPY_ADVISE),
    UNSUPPORTED(POSTCOPY_LISTEN),
    UNSUPPORTED(POSTCOPY_END),
    REQ(GET_INFLIGHT_FD, VU_INFLIGHT_SIZE, 0, 0, NULL),
    REQ(SET_INFLIGHT_FD, VU_INFLIGHT_SIZE, 1, 1, NULL),
    UNSUPPORTED(GPU_SET_SOCKET),
    REQ(RESET_DEVICE, 0, 0, 0, NULL),
    UNSUPPORTED(VRING_KICK),
    REQ(GET_MAX_MEM_SLOTS, 0, 0, 0, NULL),
    REQ(ADD_MEM_REG, MEM_REG_MSG_SIZE, 1, 1, check_mem_region),
    /*
     * The spec: no fd SHOULD be passed, but the back-end MAY accept one
     * (QEMU 7.2 sends it) and MUST then close it unused. The caller closes.
     */
    REQ(REM_MEM_REG, MEM_REG_MSG_SIZE, 0, 1, check_mem_region),
    REQ(SET_STATUS, U64_SIZE, 0, 0, NULL),
    REQ(GET_STATUS, 0, 0, 0, NULL),
};

#define BREQ(code, sz, fn) [VHOST_USER_BACKEND_##code] = {#code, true, (sz), 0, 0, (fn)}
#define BUNSUPPORTED(code) [VHOST_USER_BACKEND_##code] = {#code, false, 0, 0, 0, NULL}

/*
 * Backend-channel requests we accept as front-end. IOTLB, host notifiers and
 * in-band call/err belong to features we never negotiate.
 */
static const struct vu_rule backend_rules[VHOST_USER_BACKEND_MAX] = {
    BUNSUPPORTED(IOTLB_MSG),
    BREQ(CONFIG_CHANGE_MSG, SZ_VAR, check_config_change),
    BUNSUPPORTED(VRING_HOST_NOTIFIER_MSG),
    BUNSUPPORTED(VRING_CALL),
    BUNSUPPORTED(VRING_ERR),
};

const char *vu_request_name(uint32_t request)
{
	if (request < VHOST_USER_MAX && req_rules[request].name) {
		return req_rules[request].name;
	}
	return "UNKNOWN";
}

const char *vu_backend_request_name(uint32_t request)
{
	if (request < VHOST_USER_BACKEND_MAX && backend_rules[request].name) {
		return backend_rules[request].name;
	}
	return "UNKNOWN";
}

int vu_hdr_parse(const uint8_t hdr[VU_HDR_SIZE], bool is_reply, uint32_t *request, uint32_t *flags,
                 uint32_t *size, const char **why)
{
	uint32_t f = get_le32(hdr + 4);
	uint32_t sz = get_le32(hdr + 8);

	/* Header: version in bits 0-1 (only 1 exists), REPLY bit 2, NEED_REPLY bit 3. */
	if ((f & VU_FLAG_VERSION_MASK) != VU_VERSION) {
		return fail(why, "bad version");
	}
	if (!!(f & VU_FLAG_REPLY) != is_reply) {
		return fail(why, is_reply ? "reply without REPLY flag" : "REPLY flag on a request");
	}
	if (is_reply && (f & VU_FLAG_NEED_REPLY)) {
		return fail(why, "NEED_REPLY on a reply");
	}
	/* Bounded before any payload byte is read. */
	if (sz > VU_MAX_PAYLOAD) {
		return fail(why, "payload size too large");
	}
	*request = get_le32(hdr);
	*flags = f;
	*size = sz;
	return 0;
}

void vu_hdr_put(uint8_t hdr[VU_HDR_SIZE], uint32_t request, uint32_t flags, uint32_t size)
{
	put_le32(hdr, request);
	put_le32(hdr + 4, flags);
	put_le32(hdr + 8, size);
}

/* Framing fields of a whole message, re-checked so that callers need not trust the reader. */
static int check_framing(const struct vu_msg *m, bool is_reply, const char **why)
{
	uint8_t hdr[VU_HDR_SIZE];
	uint32_t req, flags, size;

	if (m->nfds > VU_MAX_FDS) {
		return fail(why, "too many fds");
	}
	vu_hdr_put(hdr, m->request, m->flags, m->size);
	return vu_hdr_parse(hdr, is_reply, &req, &flags, &size, why);
}

static int check_rule(const struct vu_rule *r, const struct vu_msg *m, const char **why)
{
	if (!r->name) {
		return fail(why, "unknown request");
	}
	if (!r->supported) {
		return fail(why, "unsupported request");
	}
	if (r->size != SZ_VAR && m->size != r->size) {
		return fail(why, "wrong payload size");
	}
	if (m->nfds < r->fd_min) {
		return fail(why, "missing fd");
	}
	if (m->nfds > r->fd_max) {
		return fail(why, "unexpected fds");
	}
	return r->check ? r->check(m, why) : 0;
}

int vu_msg_check_request(const struct vu_msg *m, const char **why)
{
	int ret = check_framing(m, false, why);

	if (ret < 0) {
		return ret;
	}
	if (m->request >= VHOST_USER_MAX) {
		return fail(why, "unknown request");
	}
	return check_rule(&req_rules[m->request], m, why);
}

int vu_msg_check_backend_request(const struct vu_msg *m, const char **why)
{
	int ret = check_framing(m, false, why);

	if (ret < 0) {
		return ret;
	}
	if (m->request >= VHOST_USER_BACKEND_MAX) {
		return fail(why, "unknown backend request");
	}
	return check_rule(&backend_rules[m->request], m, why);
}

int vu_msg_check_reply(const struct vu_msg *m, uint32_t req, uint32_t size, const char **why)
{
	int ret = check_framing(m, true, why);

	if (ret < 0) {
		return ret;
	}
	if (m->request != req) {
		return fail(why, "reply to another request");
	}
	if (m->size != size) {
		return fail(why, "wrong reply size");
	}
	if (m->nfds) {
		return fail(why, "fds on a reply");
	}
	return 0;
}

static int check_size(const struct vu_msg *m, uint32_t size, const char **why)
{
	return m->size == size ? 0 : fail(why, "wrong payload size");
}

int vu_get_u64(const struct vu_msg *m, uint64_t *v, const char **why)
{
	if (check_size(m, U64_SIZE, why) < 0) {
		return -EPROTO;
	}
	*v = get_le64(m->payload);
	return 0;
}

int vu_get_vring_state(const struct vu_msg *m, struct vu_vring_state *s, const char **why)
{
	if (check_size(m, VRING_STATE_SIZE, why) < 0) {
		return -EPROTO;
	}
	s->index = get_le32(m->payload);
	s->num = get_le32(m->payload + 4);
	return 0;
}

int vu_get_vring_addr(const struct vu_msg *m, struct vu_vring_addr *a, const char **why)
{
	const uint8_t *p = m->payload;

	if (check_size(m, VRING_ADDR_SIZE, why) < 0) {
		return -EPROTO;
	}
	a->index = get_le32(p);
	a->flags = get_le32(p + 4);
	a->desc = get_le64(p + 8);
	a->used = get_le64(p + 16);
	a->avail = get_le64(p + 24);
	a->log = get_le64(p + 32);
	return 0;
}

int vu_get_vring_file(const struct vu_msg *m, struct vu_vring_file *f, const char **why)
{
	uint64_t v;

	if (vu_get_u64(m, &v, why) < 0) {
		return -EPROTO;
	}
	/*
	 * Only bits 0-7 (index) and 8 (no fd) are defined. Checking all 64 bits
	 * keeps an index like 0x10000 from aliasing queue 0 (CVE-2020-10723).
	 */
	if (v & ~(uint64_t)VRING_FILE_BITS) {
		return fail(why, "vring file u64 has bits above 8");
	}
	f->index = (uint32_t)(v & VU_VRING_IDX_MASK);
	f->nofd = (v & VU_VRING_NOFD) != 0;
	return 0;
}

static int check_vring_file(const struct vu_msg *m, const char **why)
{
	struct vu_vring_file f;

	if (vu_get_vring_file(m, &f, why) < 0) {
		return -EPROTO;
	}
	if (f.nofd && m->nfds) {
		return fail(why, "fd attached with the no-fd flag");
	}
	if (!f.nofd && !m->nfds) {
		return fail(why, "missing fd");
	}
	return 0;
}

/* gpa+size and uaddr+size must not wrap; a zero-sized region means nothing. */
static int region_check(const struct vu_mem_region *r, bool check_offset, const char **why)
{
	if (r->size == 0) {
		return fail(why, "zero-sized memory region");
	}
	if (r->size - 1 > UINT64_MAX - r->gpa || r->size - 1 > UINT64_MAX - r->uaddr) {
		return fail(why, "memory region wraps");
	}
	if (check_offset && r->size - 1 > UINT64_MAX - r->mmap_offset) {
		return fail(why, "memory region mmap offset wraps");
	}
	return 0;
}

static void region_get(const uint8_t *p, struct vu_mem_region *r)
{
	r->gpa = get_le64(p);
	r->size = get_le64(p + 8);
	r->uaddr = get_le64(p + 16);
	r->mmap_offset = get_le64(p + 24);
}

static void region_put(uint8_t *p, const struct vu_mem_region *r)
{
	put_le64(p, r->gpa);
	put_le64(p + 8, r->size);
	put_le64(p + 16, r->uaddr);
	put_le64(p + 24, r->mmap_offset);
}

int vu_get_mem_table(const struct vu_msg *m, struct vu_mem_table *t, const char **why)
{
	uint32_t n;

	if (m->size < MEM_TABLE_HDR) {
		return fail(why, "memory table too short");
	}
	n = get_le32(m->payload);
	/* n is bounded before it is used in a size computation. */
	if (n == 0 || n > VU_MEM_TABLE_REGIONS) {
		return fail(why, "bad number of memory regions");
	}
	if (m->size != MEM_TABLE_HDR + n * MEM_REGION_SIZE) {
		return fail(why, "memory table size does not match its region count");
	}
	if (m->nfds != n) {
		return fail(why, "memory table fd count does not match its region count");
	}
	t->nregions = n;
	for (uint32_t i = 0; i < n; i++) {
		region_get(m->payload + MEM_TABLE_HDR + i * MEM_REGION_SIZE, &t->r[i]);
		if (region_check(&t->r[i], true, why) < 0) {
			return -EPROTO;
		}
	}
	return 0;
}

static int check_mem_table(const struct vu_msg *m, const char **why)
{
	struct vu_mem_table t;

	return vu_get_mem_table(m, &t, why);
}

int vu_get_mem_region(const struct vu_msg *m, struct vu_mem_region *r, const char **why)
{
	if (check_size(m, MEM_REG_MSG_SIZE, why) < 0) {
		return -EPROTO;
	}
	region_get(m->payload + 8, r);
	/* REM_MEM_REG: "The mmap offset is ignored." */
	return region_check(r, m->request != VHOST_USER_REM_MEM_REG, why);
}

static int check_mem_region(const struct vu_msg *m, const char **why)
{
	struct vu_mem_region r;

	return vu_get_mem_region(m, &r, why);
}

int vu_get_config(const struct vu_msg *m, struct vu_config *c, const char **why)
{
	uint32_t size;
	uint32_t offset;

	if (m->size < CONFIG_HDR_SIZE) {
		return fail(why, "config message too short");
	}
	offset = get_le32(m->payload);
	size = get_le32(m->payload + 4);
	if (size > VU_MAX_CONFIG || offset > VU_MAX_CONFIG - size) {
		return fail(why, "config access beyond 256 bytes");
	}
	if (m->size != CONFIG_HDR_SIZE + size) {
		return fail(why, "config size does not match the payload");
	}
	c->offset = offset;
	c->size = size;
	c->flags = get_le32(m->payload + 8);
	if (c->flags > CONFIG_FLAGS_MAX) {
		return fail(why, "unknown config flags");
	}
	memcpy(c->data, m->payload + CONFIG_HDR_SIZE, size);
	return 0;
}

static int check_config(const struct vu_msg *m, const char **why)
{
	struct vu_config c;

	return vu_get_config(m, &c, why);
}

/*
 * CONFIG_CHANGE_MSG: the spec says no payload and libvhost-user sends none,
 * but rust-vmm based back-ends (vhost-device-*) send a zero u64.
 */
static int check_config_change(const struct vu_msg *m, const char **why)
{
	return m->size == 0 || m->size == U64_SIZE ? 0 : fail(why, "wrong payload size");
}

int vu_get_inflight(const struct vu_msg *m, struct vu_inflight *in, const char **why)
{
	if (check_size(m, VU_INFLIGHT_SIZE, why) < 0) {
		return -EPROTO;
	}
	in->mmap_size = get_le64(m->payload);
	in->mmap_offset = get_le64(m->payload + 8);
	in->num_queues = get_le16(m->payload + 16);
	in->queue_size = get_le16(m->payload + 18);
	return 0;
}

void vu_msg_init(struct vu_msg *m, uint32_t request, uint32_t flags)
{
	m->request = request;
	m->flags = (flags & ~VU_FLAG_VERSION_MASK) | VU_VERSION;
	m->size = 0;
	m->nfds = 0;
}

void vu_put_u64(struct vu_msg *m, uint64_t v)
{
	put_le64(m->payload, v);
	m->size = U64_SIZE;
}

void vu_put_vring_state(struct vu_msg *m, const struct vu_vring_state *s)
{
	put_le32(m->payload, s->index);
	put_le32(m->payload + 4, s->num);
	m->size = VRING_STATE_SIZE;
}

void vu_put_vring_addr(struct vu_msg *m, const struct vu_vring_addr *a)
{
	uint8_t *p = m->payload;

	put_le32(p, a->index);
	put_le32(p + 4, a->flags);
	put_le64(p + 8, a->desc);
	put_le64(p + 16, a->used);
	put_le64(p + 24, a->avail);
	put_le64(p + 32, a->log);
	m->size = VRING_ADDR_SIZE;
}

void vu_put_mem_table(struct vu_msg *m, const struct vu_mem_table *t)
{
	uint32_t n = VB_MIN(t->nregions, VU_MEM_TABLE_REGIONS);

	put_le32(m->payload, n);
	put_le32(m->payload + 4, 0);
	for (uint32_t i = 0; i < n; i++) {
		region_put(m->payload + MEM_TABLE_HDR + i * MEM_REGION_SIZE, &t->r[i]);
	}
	m->size = MEM_TABLE_HDR + n * MEM_REGION_SIZE;
}

void vu_put_mem_region(struct vu_msg *m, const struct vu_mem_region *r)
{
	put_le64(m->payload, 0);
	region_put(m->payload + 8, r);
	m->size = MEM_REG_MSG_SIZE;
}

void vu_put_config(struct vu_msg *m, const struct vu_config *c)
{
	uint32_t size = VB_MIN(c->size, VU_MAX_CONFIG);

	put_le32(m->payload, c->offset);
	put_le32(m->payload + 4, size);
	put_le32(m->payload + 8, c->flags);
	memcpy(m->payload + CONFIG_HDR_SIZE, c->data, size);
	m->size = CONFIG_HDR_SIZE + size;
}

void vu_put_inflight(struct vu_msg *m, const struct vu_inflight *in)
{
	put_le64(m->payload, in->mmap_size);
	put_le64(m->payload + 8, in->mmap_offset);
	put_le16(m->payload + 16, in->num_queues);
	put_le16(m->payload + 18, in->queue_size);
	put_le32(m->payload + 20, 0);
	m->size = VU_INFLIGHT_SIZE;
}
