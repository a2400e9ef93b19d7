/*
 * vhost-user socket I/O: reading whole messages with their fds from a
 * non-blocking UNIX socket (piecewise, as bytes arrive) and sending them.
 */
#ifndef VB_VU_IO_H
#define VB_VU_IO_H

#include "bridge/vu_msg.h"

/* Incremental receive state for one connection. */
struct vu_rx {
	uint8_t hdr[VU_HDR_SIZE];
	size_t have;   /* bytes of header + payload received so far */
	uint32_t size; /* payload size, once the header is in */
	bool is_reply; /* parse headers as replies */
	struct vu_msg *msg;
};

void vu_rx_init(struct vu_rx *rx, struct vu_msg *msg, bool is_reply);

/*
 * Reads what the socket has (recvmsg with MSG_CMSG_CLOEXEC). Returns 1 when
 * rx->msg holds a whole message (header checked with vu_hdr_parse, fds
 * gathered: the caller owns them), 0 when more bytes are needed (EAGAIN),
 * -ECONNRESET on EOF, -EPROTO on a bad header, MSG_CTRUNC or more than
 * VU_MAX_FDS fds, other -errno on socket errors; *why says what happened.
 * On error every fd received so far is closed. After 1 the state is reset
 * for the next message.
 */
int vu_rx_read(int fd, struct vu_rx *rx, const char **why);
/* Closes fds held by a partial message and resets. */
void vu_rx_reset(struct vu_rx *rx);

/* Closes every fd in m and sets nfds to 0. */
void vu_msg_close_fds(struct vu_msg *m);

/*
 * Sends m with its fds (MSG_NOSIGNAL), waiting up to timeout_ms for socket
 * space if needed. 0 or -errno.
 */
int vu_send(int fd, const struct vu_msg *m, int timeout_ms);

/* Blocking receive of one whole message within timeout_ms (frontend side). 0 or -errno. */
int vu_recv(int fd, struct vu_msg *m, bool is_reply, int timeout_ms, const char **why);

#endif
