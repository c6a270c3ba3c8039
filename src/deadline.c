/*
 * deadline.c - see deadline.h.
 */
#include "deadline.h"

#include <stddef.h>

static void on_timer(uv_timer_t *t)
{
	struct deadline *d = (struct deadline *)((char *)t - offsetof(struct deadline, timer));
	uint64_t now = uv_now(t->loop);

	d->armed = 0;
	if (d->due == 0)
		return;
	if (d->due > now) {
		d->armed = d->due;
		uv_timer_start(&d->timer, on_timer, d->due - now, 0);
		return;
	}
	d->due = 0;
	d->fire(t->data);
}

void deadline_init(struct deadline *d, uv_loop_t *loop, void (*fire)(void *), void *arg)
{
	uv_timer_init(loop, &d->timer);
	d->timer.data = arg;
	d->due = 0;
	d->armed = 0;
	d->fire = fire;
}

void deadline_set(struct deadline *d, uint64_t ms)
{
	uint64_t now = uv_now(d->timer.loop);

	d->due = now + ms;
	/* a timer that fires no later than the new time re-arms itself then */
	if (d->armed != 0 && d->armed <= d->due)
		return;
	d->armed = d->due;
	uv_timer_start(&d->timer, on_timer, ms, 0);
}

void deadline_clear(struct deadline *d)
{
	d->due = 0;
}
