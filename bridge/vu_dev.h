/*
 * vhost-user backend role: we are the device toward a VMM (QEMU) or any
 * vhost-user frontend. One listening UNIX socket, at most one frontend
 * connected at a time; after it goes away the next one is accepted.
 *
 * The endpoint handles the control plane (features, memory table, vring
 * set-up, config, backend channel) and the kick/call eventfds. The data
 * plane belongs to the owner: when a queue starts it gets the struct virtq
 * and pops chains itself. A protocol error closes the connection with a log
 * line saying what was wrong; the listening socket stays.
 */
#ifndef VB_VU_DEV_H
#define VB_VU_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/virtq.h"

struct vb_loop;
struct vu_dev;

#define VU_DEV_MAX_QUEUES 64

struct vu_dev_ops {
	/* Device features to offer (end to end); the endpoint adds ring and protocol bits. */
	uint64_t (*get_features)(void *arg);
	/* The frontend acked these device features (ring bits removed). */
	void (*set_features)(void *arg, uint64_t device_features);
	/* Fill len bytes of config space at offset; 0 or -errno. */
	int (*get_config)(void *arg, uint32_t offset, uint8_t *buf, uint32_t len);
	int (*set_config)(void *arg, uint32_t offset, const uint8_t *buf, uint32_t len);
	/* Queue q is ready (addresses, kick, enabled); vq stays valid until queue_stop. */
	void (*queue_start)(void *arg, unsigned q, struct virtq *vq);
	/* Queue q stops (GET_VRING_BASE, disable, reset, memory removed or disconnect);
	 * its rings are still mapped during the call. */
	void (*queue_stop)(void *arg, unsigned q);
	/* The guest kicked queue q. */
	void (*queue_kick)(void *arg, unsigned q);
	/* Device reset (RESET_OWNER / RESET_DEVICE / status 0). Queues were stopped before. */
	void (*reset)(void *arg);
	/* A frontend connected / went away (queues were stopped before). */
	void (*connected)(void *arg);
	void (*disconnected)(void *arg, const char *reason);
};

struct vu_dev_params {
	const char *path;    /* socket to create (an existing socket file is replaced) */
	const char *name;    /* for log lines */
	unsigned num_queues; /* 1..VU_DEV_MAX_QUEUES */
	uint16_t max_queue_size;
	uint32_t max_mem_slots; /* <= GMEM_MAX_REGIONS */
};

/* Creates the listening socket. NULL with err filled on failure. */
struct vu_dev *vu_dev_new(struct vb_loop *loop, const struct vu_dev_params *p,
                          const struct vu_dev_ops *ops, void *arg, char *err, size_t errlen);
/* Stops queues, closes the connection and the listener, unlinks the socket.
 * Not from inside an ops callback. */
void vu_dev_free(struct vu_dev *d);

/* Signals the guest for queue q if the ring asks for it (EVENT_IDX aware). */
void vu_dev_notify(struct vu_dev *d, unsigned q);
/* Sends CONFIG_CHANGE_MSG on the backend channel, if the frontend gave us one. */
int vu_dev_config_changed(struct vu_dev *d);
/* Drops the current frontend (e.g. the guest broke a ring) with a reason. Called
 * from inside an ops callback, the teardown happens when that callback returns. */
void vu_dev_disconnect(struct vu_dev *d, const char *reason);

bool vu_dev_connected(const struct vu_dev *d);
const struct gmem *vu_dev_mem(const struct vu_dev *d);
/* Acked features incl. ring bits (EVENT_IDX, INDIRECT), for status output. */
uint64_t vu_dev_acked_features(const struct vu_dev *d);

#endif
