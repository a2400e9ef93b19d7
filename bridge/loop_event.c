/* libevent 2 backing for bridge/loop.h. */
#include "bridge/loop.h"

#include <event2/event.h>
#include <stdlib.h>

struct vb_loop {
	struct event_base *base;
};

struct vb_watch {
	struct event *ev;
	vb_watch_cb cb;
	void *arg;
	int fd;
	unsigned events;
};

struct vb_timer {
	struct event *ev;
	vb_timer_cb cb;
	void *arg;
};

struct vb_loop *vb_loop_new(void)
{
	struct vb_loop *loop = calloc(1, sizeof(*loop));
	struct event_config *ec = event_config_new();

	if (!loop || !ec) {
		free(loop);
		if (ec) {
			event_config_free(ec);
		}
		return NULL;
	}
	/*
	 * Timers to the microsecond (epoll's own timeout is in milliseconds;
	 * with this flag libevent 2.1 uses a timerfd): buffers held for their
	 * presentation time are released by timers.
	 */
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	loop->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!loop->base) {
		free(loop);
		return NULL;
	}
	return loop;
}

void vb_loop_free(struct vb_loop *loop)
{
	if (!loop) {
		return;
	}
	event_base_free(loop->base);
	free(loop);
}

int vb_loop_run(struct vb_loop *loop)
{
	return event_base_dispatch(loop->base) < 0 ? -1 : 0;
}

void vb_loop_break(struct vb_loop *loop)
{
	event_base_loopbreak(loop->base);
}

void *vb_loop_base(struct vb_loop *loop)
{
	return loop->base;
}

static void watch_trampoline(evutil_socket_t fd, short what, void *arg)
{
	struct vb_watch *w = arg;
	unsigned events = 0;

	if (what & (EV_READ | EV_SIGNAL)) {
		events |= VB_EV_READ;
	}
	if (what & EV_WRITE) {
		events |= VB_EV_WRITE;
	}
	w->cb((int)fd, events, w->arg);
}

struct vb_watch *vb_watch_new(struct vb_loop *loop, int fd, unsigned events, vb_watch_cb cb,
                              void *arg)
{
	struct vb_watch *w = calloc(1, sizeof(*w));

	if (!w) {
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	w->fd = fd;
	w->ev = event_new(loop->base, fd, 0, watch_trampoline, w);
	if (!w->ev) {
		free(w);
		return NULL;
	}
	if (vb_watch_set(w, events) < 0) {
		vb_watch_free(w);
		return NULL;
	}
	return w;
}

int vb_watch_set(struct vb_watch *w, unsigned events)
{
	short what = EV_PERSIST;
	struct event_base *base = event_get_base(w->ev);

	if (events == w->events && event_pending(w->ev, EV_READ | EV_WRITE, NULL)) {
		return 0;
	}
	event_del(w->ev);
	w->events = events;
	if (!events) {
		return 0;
	}
	if (events & VB_EV_READ) {
		what |= EV_READ;
	}
	if (events & VB_EV_WRITE) {
		what |= EV_WRITE;
	}
	if (event_assign(w->ev, base, w->fd, what, watch_trampoline, w) < 0) {
		return -1;
	}
	return event_add(w->ev, NULL);
}

void vb_watch_free(struct vb_watch *w)
{
	if (!w) {
		return;
	}
	event_free(w->ev);
	free(w);
}

struct vb_watch *vb_signal_new(struct vb_loop *loop, int signo, vb_watch_cb cb, void *arg)
{
	struct vb_watch *w = calloc(1, sizeof(*w));

	if (!w) {
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	w->fd = signo;
	w->ev = evsignal_new(loop->base, signo, watch_trampoline, w);
	if (!w->ev || event_add(w->ev, NULL) < 0) {
		vb_watch_free(w);
		return NULL;
	}
	return w;
}

static void timer_trampoline(evutil_socket_t fd, short what, void *arg)
{
	struct vb_timer *t = arg;

	t->cb(t->arg);
}

struct vb_timer *vb_timer_new(struct vb_loop *loop, vb_timer_cb cb, void *arg)
{
	struct vb_timer *t = calloc(1, sizeof(*t));

	if (!t) {
		return NULL;
	}
	t->cb = cb;
	t->arg = arg;
	t->ev = evtimer_new(loop->base, timer_trampoline, t);
	if (!t->ev) {
		free(t);
		return NULL;
	}
	return t;
}

void vb_timer_arm(struct vb_timer *t, uint64_t ns)
{
	struct timeval tv = {.tv_sec = (time_t)(ns / 1000000000ull),
	                     .tv_usec = (suseconds_t)((ns % 1000000000ull) / 1000)};

	evtimer_add(t->ev, &tv);
}

void vb_timer_cancel(struct vb_timer *t)
{
	evtimer_del(t->ev);
}

void vb_timer_free(struct vb_timer *t)
{
	if (!t) {
		return;
	}
	event_free(t->ev);
	free(t);
}
