/*
 * deadline.h - a timeout that moves often and rarely fires.
 *
 * Connections move their timeout several times per request (header, idle,
 * response...). Re-arming a libuv timer each time is a heap operation; a
 * deadline only records the new due time and touches the timer when the
 * new time is earlier than the one it is armed for. When the timer fires
 * early (the deadline moved later, or was cleared), it re-arms for what is
 * left or does nothing.
 *
 * Ownership: embedded in its owner; the owner closes the uv timer
 * (deadline_handle) and frees itself in that handle's close callback; the
 * handle's data field is the owner's arg. Thread: the loop's thread only.
 */
#ifndef MOAT_DEADLINE_H
#define MOAT_DEADLINE_H

#include <stdint.h>
#include <uv.h>

struct deadline {
	uv_timer_t timer;
	uint64_t due;            /* loop time it expires at; 0: none */
	uint64_t armed;          /* loop time the uv timer fires at; 0: idle */
	void (*fire)(void *arg); /* called once the deadline has passed */
};

/* Initialise on loop; timer.data is set to arg, which fire receives. */
void deadline_init(struct deadline *d, uv_loop_t *loop, void (*fire)(void *), void *arg);

/* Expire ms from now (0: on the next loop turn), replacing any deadline. */
void deadline_set(struct deadline *d, uint64_t ms);

/* No deadline. */
void deadline_clear(struct deadline *d);

/* The uv handle, for uv_close. */
static inline uv_handle_t *deadline_handle(struct deadline *d)
{
	return (uv_handle_t *)&d->timer;
}

#endif
