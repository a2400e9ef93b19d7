/*
 * The event-loop hooks the core asks for: fd watches and timers.
 * The vhost-user endpoints, ring engine and sessions use only this header;
 * loop_event.c maps it onto libevent 2 (the only file of bridge/ that does).
 */
#ifndef VB_LOOP_H
#define VB_LOOP_H

#include <stdint.h>

#define VB_EV_READ  0x1u
#define VB_EV_WRITE 0x2u

struct vb_loop;
struct vb_watch;
struct vb_timer;

typedef void (*vb_watch_cb)(int fd, unsigned events, void *arg);
typedef void (*vb_timer_cb)(void *arg);

struct vb_loop *vb_loop_new(void);
void vb_loop_free(struct vb_loop *loop);
/* Runs until vb_loop_break(); returns 0, or -1 on an internal error. */
int vb_loop_run(struct vb_loop *loop);
void vb_loop_break(struct vb_loop *loop);
/* The libevent struct event_base *, for transports built on bufferevents. */
void *vb_loop_base(struct vb_loop *loop);

/* Persistent watch on fd for events (VB_EV_*); NULL on allocation failure. */
struct vb_watch *vb_watch_new(struct vb_loop *loop, int fd, unsigned events, vb_watch_cb cb,
                              void *arg);
/* Change the watched events; 0 disables the watch without freeing it. */
int vb_watch_set(struct vb_watch *w, unsigned events);
/* Stops and frees; safe from inside the watch's own callback; NULL is a no-op. */
void vb_watch_free(struct vb_watch *w);

struct vb_timer *vb_timer_new(struct vb_loop *loop, vb_timer_cb cb, void *arg);
/* (Re)arms a one-shot timer to fire after ns nanoseconds. */
void vb_timer_arm(struct vb_timer *t, uint64_t ns);
void vb_timer_cancel(struct vb_timer *t);
void vb_timer_free(struct vb_timer *t);

/* Signal handler run on the loop (not in signal context). */
struct vb_watch *vb_signal_new(struct vb_loop *loop, int signo, vb_watch_cb cb, void *arg);

#endif
