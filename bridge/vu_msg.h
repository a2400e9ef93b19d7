/*
 * vhost-user messages (QEMU docs/interop/vhost-user.rst, 7.2 era): pure
 * codec, no sockets. A message is a 12-byte header (u32 request, u32 flags,
 * u32 size) and size payload bytes; fds travel beside it (SCM_RIGHTS).
 */
#ifndef VB_VU_MSG_H
#define VB_VU_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VU_HDR_SIZE          12u
#define VU_MAX_PAYLOAD       4096u /* the largest request we accept is far smaller */
#define VU_MAX_FDS           8u    /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VU_MAX_CONFIG        256u
#define VU_MEM_TABLE_REGIONS 8u

#define VU_FLAG_VERSION_MASK 0x3u
#define VU_VERSION           0x1u
#define VU_FLAG_REPLY        0x4u
#define VU_FLAG_NEED_REPLY   0x8u

#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD     0x100u

#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_F_LOG_ALL                26

enum vu_protocol_feature {
	VU_PF_MQ = 0,
	VU_PF_LOG_SHMFD = 1,
	VU_PF_RARP = 2,
	VU_PF_REPLY_ACK = 3,
	VU_PF_MTU = 4,
	VU_PF_BACKEND_REQ = 5,
	VU_PF_CROSS_ENDIAN = 6,
	VU_PF_CRYPTO_SESSION = 7,
	VU_PF_PAGEFAULT = 8,
	VU_PF_CONFIG = 9,
	VU_PF_BACKEND_SEND_FD = 10,
	VU_PF_HOST_NOTIFIER = 11,
	VU_PF_INFLIGHT_SHMFD = 12,
	VU_PF_RESET_DEVICE = 13,
	VU_PF_INBAND_NOTIFICATIONS = 14,
	VU_PF_CONFIGURE_MEM_SLOTS = 15,
	VU_PF_STATUS = 16,
};

enum vu_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_MAX
};

/* Requests on the backend channel (backend -> frontend). */
enum vu_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VHOST_USER_BACKEND_VRING_CALL = 4,
	VHOST_USER_BACKEND_VRING_ERR = 5,
	VHOST_USER_BACKEND_MAX
};

struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint8_t payload[VU_MAX_PAYLOAD] __attribute__((aligned(8)));
	int fds[VU_MAX_FDS];
	unsigned nfds;
};

struct vu_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vu_mem_table {
	uint32_t nregions;
	struct vu_mem_region r[VU_MEM_TABLE_REGIONS];
};

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_vring_file {
	uint32_t index;
	bool nofd;
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VU_MAX_CONFIG];
};

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD payload (24 bytes on the wire, padding included). */
struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

#define VU_INFLIGHT_SIZE 24u

/*
 * Parses and checks a header: version 1, REPLY set iff is_reply, NEED_REPLY
 * only on requests, size <= VU_MAX_PAYLOAD. 0 or -EPROTO with *why set.
 */
int vu_hdr_parse(const uint8_t hdr[VU_HDR_SIZE], bool is_reply, uint32_t *request, uint32_t *flags,
                 uint32_t *size, const char **why);
void vu_hdr_put(uint8_t hdr[VU_HDR_SIZE], uint32_t request, uint32_t flags, uint32_t size);

/*
 * Checks a whole request from a frontend (backend role): known code, exact
 * payload size for its type, expected fd count. 0 or -EPROTO with *why.
 */
int vu_msg_check_request(const struct vu_msg *m, const char **why);
/* Checks a reply from a backend to request req: REPLY, same code, exact size, no fds. */
int vu_msg_check_reply(const struct vu_msg *m, uint32_t req, uint32_t size, const char **why);

/* Payload decoders: each checks m->size first; 0 or -EPROTO with *why. */
int vu_get_u64(const struct vu_msg *m, uint64_t *v, const char **why);
int vu_get_vring_state(const struct vu_msg *m, struct vu_vring_state *s, const char **why);
int vu_get_vring_addr(const struct vu_msg *m, struct vu_vring_addr *a, const char **why);
/* Checks the u64 at full width: only bits 0-7 (index) and bit 8 (no fd) may be set. */
int vu_get_vring_file(const struct vu_msg *m, struct vu_vring_file *f, const char **why);
/* SET_MEM_TABLE: 1..8 regions, size == 8 + 32 * nregions, nregions == nfds. */
int vu_get_mem_table(const struct vu_msg *m, struct vu_mem_table *t, const char **why);
/* ADD_MEM_REG / REM_MEM_REG: u64 padding then one region. */
int vu_get_mem_region(const struct vu_msg *m, struct vu_mem_region *r, const char **why);
/* GET_CONFIG / SET_CONFIG: size <= 256 and m->size == 12 + size. */
int vu_get_config(const struct vu_msg *m, struct vu_config *c, const char **why);
/* GET_INFLIGHT_FD / SET_INFLIGHT_FD: m->size == 24; value ranges are the caller's. */
int vu_get_inflight(const struct vu_msg *m, struct vu_inflight *in, const char **why);

/* Encoders set request/flags(version 1)/size and the payload; fds are set by the caller. */
void vu_msg_init(struct vu_msg *m, uint32_t request, uint32_t flags);
void vu_put_u64(struct vu_msg *m, uint64_t v);
void vu_put_vring_state(struct vu_msg *m, const struct vu_vring_state *s);
void vu_put_vring_addr(struct vu_msg *m, const struct vu_vring_addr *a);
void vu_put_mem_table(struct vu_msg *m, const struct vu_mem_table *t);
void vu_put_mem_region(struct vu_msg *m, const struct vu_mem_region *r);
void vu_put_config(struct vu_msg *m, const struct vu_config *c);
void vu_put_inflight(struct vu_msg *m, const struct vu_inflight *in);

/*
 * Checks a request received on the backend channel (frontend role): version
 * 1, no REPLY, a code we handle (CONFIG_CHANGE_MSG), its size, no fds.
 * 0 or -EPROTO with *why.
 */
int vu_msg_check_backend_request(const struct vu_msg *m, const char **why);

const char *vu_request_name(uint32_t request);
const char *vu_backend_request_name(uint32_t request);

#endif
