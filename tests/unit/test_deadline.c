/*
 * test_deadline.c - lazily re-armed timeouts on a real libuv loop.
 *
 * Each case records when deadlines fire relative to plain libuv timers
 * ("probes") placed far apart (tens of milliseconds), so the assertions
 * are about order, not about how fast the machine is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <uv.h>

#include "deadline.h"

struct rig {
	uv_loop_t loop;
	struct deadline d;
	uv_timer_t probe;
	int fired;        /* how often the deadline fired */
	int fired_at_probe; /* d's count when the probe ran; -1 before */
};

static void on_fire(void *arg)
{
	struct rig *r = arg;

	r->fired++;
}

static void on_probe(uv_timer_t *t)
{
	struct rig *r = t->data;

	r->fired_at_probe = r->fired;
}

static void rig_init(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	r->fired_at_probe = -1;
	assert_int_equal(uv_loop_init(&r->loop), 0);
	deadline_init(&r->d, &r->loop, on_fire, r);
	uv_timer_init(&r->loop, &r->probe);
	r->probe.data = r;
}

static void rig_run_and_close(struct rig *r)
{
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_close(deadline_handle(&r->d), NULL);
	uv_close((uv_handle_t *)&r->probe, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&r->loop), 0);
}

/* Moving a deadline earlier takes effect: it fires before a probe that
 * runs long before the first time it was set for. */
static void test_earlier_wins(void **state)
{
	struct rig r;

	rig_init(&r);
	deadline_set(&r.d, 5000);
	deadline_set(&r.d, 10);
	uv_timer_start(&r.probe, on_probe, 300, 0);
	while (r.fired_at_probe < 0)
		uv_run(&r.loop, UV_RUN_ONCE);
	assert_int_equal(r.fired_at_probe, 1);
	deadline_clear(&r.d); /* nothing left to wait for */
	rig_run_and_close(&r);
	assert_int_equal(r.fired, 1);
}

/* Moving a deadline later is honoured although the timer stays armed for
 * the earlier time: nothing fires at the earlier time, once later. */
static void test_later_is_honoured(void **state)
{
	struct rig r;

	rig_init(&r);
	deadline_set(&r.d, 10);
	deadline_set(&r.d, 400);
	uv_timer_start(&r.probe, on_probe, 150, 0);
	rig_run_and_close(&r);
	assert_int_equal(r.fired_at_probe, 0);
	assert_int_equal(r.fired, 1);
}

/* A cleared deadline never fires, even though its timer wakes up once. */
static void test_clear(void **state)
{
	struct rig r;

	rig_init(&r);
	deadline_set(&r.d, 10);
	deadline_clear(&r.d);
	uv_timer_start(&r.probe, on_probe, 100, 0);
	rig_run_and_close(&r);
	assert_int_equal(r.fired_at_probe, 0);
	assert_int_equal(r.fired, 0);
}

/* Zero means the next loop turn, even while armed for later. */
static void test_zero_is_next_turn(void **state)
{
	struct rig r;

	rig_init(&r);
	deadline_set(&r.d, 5000);
	deadline_set(&r.d, 0);
	uv_timer_start(&r.probe, on_probe, 200, 0);
	rig_run_and_close(&r);
	assert_int_equal(r.fired_at_probe, 1);
	assert_int_equal(r.fired, 1);
}

/* Set again after firing: it fires again. */
static void test_rearm_after_fire(void **state)
{
	struct rig r;

	rig_init(&r);
	deadline_set(&r.d, 5);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	assert_int_equal(r.fired, 1);
	deadline_set(&r.d, 5);
	rig_run_and_close(&r);
	assert_int_equal(r.fired, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_earlier_wins),
		cmocka_unit_test(test_later_is_honoured),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_zero_is_next_turn),
		cmocka_unit_test(test_rearm_after_fire),
	};

	return cmocka_run_group_tests_name("deadline", tests, NULL, NULL);
}
