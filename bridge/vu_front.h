/*
 * vhost-user frontend role: we drive an existing backend (qemu-storage-daemon,
 * vhost-device-*). Requests are synchronous with bounded waits; replies are
 * validated (REPLY flag, same request, exact size, no fds). After any
 * protocol error or timeout the connection is marked broken and every
 * further call fails with -EPIPE; vu_front_error() says why.
 */
#ifndef VB_VU_FRONT_H
#define VB_VU_FRONT_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/vu_msg.h"

struct vu_front;

/*
 * Connects to the backend's UNIX socket. NULL with err filled on failure.
 * timeout_ms also bounds every later request's wait for its reply or ack.
 */
struct vu_front *vu_front_connect(const char *path, int timeout_ms, char *err, size_t errlen);
void vu_front_free(struct vu_front *f);

int vu_front_fd(const struct vu_front *f);
bool vu_front_broken(const struct vu_front *f);
const char *vu_front_error(const struct vu_front *f);

int vu_front_get_features(struct vu_front *f, uint64_t *features);
int vu_front_set_features(struct vu_front *f, uint64_t features);
int vu_front_get_protocol_features(struct vu_front *f, uint64_t *pf);
/* Also remembers pf: REPLY_ACK then makes every set-request wait for its ack. */
int vu_front_set_protocol_features(struct vu_front *f, uint64_t pf);
uint64_t vu_front_protocol_features(const struct vu_front *f);
int vu_front_set_owner(struct vu_front *f);
int vu_front_reset_owner(struct vu_front *f);
int vu_front_get_queue_num(struct vu_front *f, uint64_t *n);
/* SET_MEM_TABLE with n (1..8) regions, fds[i] backing r[i] (not closed). */
int vu_front_set_mem_table(struct vu_front *f, const struct vu_mem_region *r, const int *fds,
                           unsigned n);
int vu_front_set_vring_num(struct vu_front *f, unsigned idx, unsigned num);
int vu_front_set_vring_addr(struct vu_front *f, const struct vu_vring_addr *a);
int vu_front_set_vring_base(struct vu_front *f, unsigned idx, unsigned base);
int vu_front_get_vring_base(struct vu_front *f, unsigned idx, unsigned *base);
/* fd < 0 sends the no-fd flag. The fd is not closed. */
int vu_front_set_vring_kick(struct vu_front *f, unsigned idx, int fd);
int vu_front_set_vring_call(struct vu_front *f, unsigned idx, int fd);
int vu_front_set_vring_enable(struct vu_front *f, unsigned idx, bool enable);
int vu_front_get_config(struct vu_front *f, uint32_t offset, uint8_t *buf, uint32_t len);
int vu_front_set_config(struct vu_front *f, uint32_t offset, const uint8_t *buf, uint32_t len);

/*
 * Creates the backend channel (socketpair, SET_BACKEND_REQ_FD) and returns
 * our end (owned by f) or -errno.
 */
int vu_front_open_backend_channel(struct vu_front *f);
/*
 * Reads one request from the backend channel (call when its fd is
 * readable), validates it and acks it if NEED_REPLY. 1 with *request set,
 * 0 if nothing complete yet, -errno on error/EOF (channel then closed).
 */
int vu_front_backend_read(struct vu_front *f, uint32_t *request);
int vu_front_backend_fd(const struct vu_front *f);

#endif
