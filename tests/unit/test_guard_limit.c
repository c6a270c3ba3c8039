/*
 * test_guard_limit.c - token buckets (budgets, refill, Retry-After, one
 * budget per client key and rule, bounded tables), connection caps, and the
 * rates the configuration accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "confabuse.h"
#include "guard_limit.h"
#include "netaddr.h"
#include "util.h"

static struct cidr key(const char *text)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(text, strlen(text), &a), 0);
	return ipaddr_key(&a);
}

static struct ipaddr addr(const char *text)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(text, strlen(text), &a), 0);
	return a;
}

static int setup(void **state)
{
	limits_init(100000);
	return 0;
}

static int teardown(void **state)
{
	limits_shutdown();
	return 0;
}

/* "5/s burst 3": three at once, then one back every 200 ms. */
static void test_burst_then_refill(void **state)
{
	struct rate r = { 5, 1000, 3 };
	struct cidr k = key("192.0.2.1");
	uint64_t t = 1000000;
	int i;

	for (i = 0; i < 3; i++)
		assert_int_equal(limit_take(1, &r, &k, t), 0);
	assert_int_equal(limit_take(1, &r, &k, t), 1);
	assert_int_equal(limit_take(1, &r, &k, t + 199), 1);
	assert_int_equal(limit_take(1, &r, &k, t + 200), 0);
	assert_int_equal(limit_take(1, &r, &k, t + 200), 1);
	/* a long pause refills to the burst, never beyond */
	t += 3600 * 1000;
	for (i = 0; i < 3; i++)
		assert_int_equal(limit_take(1, &r, &k, t), 0);
	assert_int_not_equal(limit_take(1, &r, &k, t), 0);
}

/* Retry-After says when the next token is back, in whole seconds. */
static void test_retry_after(void **state)
{
	struct rate per_min = { 1, 60000, 1 }, per_hour = { 2, 3600000, 2 };
	struct cidr k = key("192.0.2.2");
	uint64_t t = 5000;

	assert_int_equal(limit_take(2, &per_min, &k, t), 0);
	assert_int_equal(limit_take(2, &per_min, &k, t), 60);
	assert_int_equal(limit_take(2, &per_min, &k, t + 30000), 30);
	assert_int_equal(limit_take(2, &per_min, &k, t + 59001), 1);
	assert_int_equal(limit_take(2, &per_min, &k, t + 60000), 0);
	assert_int_equal(limit_take(3, &per_hour, &k, t), 0);
	assert_int_equal(limit_take(3, &per_hour, &k, t), 0);
	assert_int_equal(limit_take(3, &per_hour, &k, t), 1800);
}

/* A client asking every millisecond still gets its token back on time
 * (a level kept in thousandths of a token never refilled for it). */
static void test_frequent_caller_refills(void **state)
{
	struct rate r = { 1, 60000, 1 };
	struct cidr k = key("192.0.2.5");
	uint64_t t, passed = 0;

	for (t = 0; t <= 120000; t++)
		if (limit_take(4, &r, &k, t) == 0)
			passed++;
	assert_int_equal(passed, 3); /* at 0, 60 s and 120 s */
}

/* Clients and rules have budgets of their own; an IPv6 /64 is one client. */
static void test_separate_budgets(void **state)
{
	struct rate r = { 1, 1000, 1 };
	struct cidr a = key("192.0.2.3"), b = key("192.0.2.4");
	struct cidr v6a = key("2001:db8:1:2::1"), v6b = key("2001:db8:1:2:ffff::9");
	struct cidr v6c = key("2001:db8:1:3::1");

	assert_int_equal(limit_take(10, &r, &a, 0), 0);
	assert_int_not_equal(limit_take(10, &r, &a, 0), 0);
	assert_int_equal(limit_take(10, &r, &b, 0), 0);
	assert_int_equal(limit_take(11, &r, &a, 0), 0);
	assert_int_equal(limit_take(10, &r, &v6a, 0), 0);
	assert_int_not_equal(limit_take(10, &r, &v6b, 0), 0);
	assert_int_equal(limit_take(10, &r, &v6c, 0), 0);
}

/* The same site, rule text and rate give the same id (budgets survive a
 * reload); any difference gives another. */
static void test_rule_ids(void **state)
{
	struct rate r = { 20, 1000, 40 }, r2 = { 20, 1000, 41 };
	uint64_t id = limit_rule_id("a.example", "", &r);

	assert_true(id == limit_rule_id("a.example", "", &r));
	assert_true(id != limit_rule_id("b.example", "", &r));
	assert_true(id != limit_rule_id("a.example", "POST /x", &r));
	assert_true(id != limit_rule_id("a.example", "", &r2));
	assert_true(limit_rule_id("ab", "c", &r) != limit_rule_id("a", "bc", &r));
}

/* A table far smaller than the crowd stays at its size and forgets the
 * buckets left alone longest. */
static void test_bounded(void **state)
{
	struct rate r = { 1, 60000, 1 };
	struct limited_client out[8];
	char text[32];
	struct cidr k;
	int i;

	limits_shutdown();
	limits_init(64); /* one bucket per shard */
	for (i = 0; i < 5000; i++) {
		snprintf(text, sizeof(text), "10.0.%d.%d", i / 250, i % 250);
		k = key(text);
		assert_int_equal(limit_take(7, &r, &k, 1000), 0);
		assert_int_not_equal(limit_take(7, &r, &k, 1000), 0);
	}
	/* the first client was forgotten: a fresh budget */
	k = key("10.0.0.0");
	assert_int_equal(limit_take(7, &r, &k, 1000), 0);
	assert_true(limit_limited(out, 8, 1000, 600000) <= 64);
}

/* moat status: who was refused, most refusals first, within the window. */
static void test_limited_list(void **state)
{
	struct rate r = { 1, 60000, 1 };
	struct limited_client out[4];
	struct cidr a = key("198.51.100.1"), b = key("198.51.100.2");
	char text[NETADDR_TEXT];
	int i;

	limit_take(20, &r, &a, 100);
	limit_take(20, &r, &b, 100);
	for (i = 0; i < 3; i++)
		limit_take(20, &r, &a, 200);
	limit_take(20, &r, &b, 300);
	limit_take(21, &r, &b, 300);
	limit_take(21, &r, &b, 300);
	/* a: three refusals; b: one per rule, merged into one line */
	assert_int_equal(limit_limited(out, 4, 1000, 600000), 2);
	assert_string_equal(cidr_format(&out[0].key, text, sizeof(text)), "198.51.100.1");
	assert_int_equal(out[0].refused, 3);
	assert_string_equal(cidr_format(&out[1].key, text, sizeof(text)), "198.51.100.2");
	assert_int_equal(out[1].refused, 2);
	/* outside the window nobody is listed */
	assert_int_equal(limit_limited(out, 4, 1000000, 600000), 0);
}

static void test_conn_caps(void **state)
{
	struct ipaddr a = addr("192.0.2.10"), b = addr("192.0.2.11");
	struct conn_count top[4];

	assert_int_equal(conncap_open(&a, 2, 3), 0);
	assert_int_equal(conncap_open(&a, 2, 3), 0);
	assert_int_equal(conncap_open(&a, 2, 3), MOAT_ENOMEM);  /* per client */
	assert_int_equal(conncap_open(&b, 2, 3), 0);
	assert_int_equal(conncap_open(&b, 2, 3), MOAT_ENOMEM);  /* in total */
	assert_int_equal(conncap_total(), 3);
	assert_int_equal(conncap_top(top, 4), 2);
	assert_true(ipaddr_equal(&top[0].addr, &a));
	assert_int_equal(top[0].n, 2);
	assert_int_equal(top[1].n, 1);
	conncap_close(&a);
	assert_int_equal(conncap_open(&b, 2, 3), 0);
	assert_int_equal(conncap_open(&a, 0, 0), 0);            /* no caps at all */
	conncap_close(&a);
	conncap_close(&a);
	conncap_close(&b);
	conncap_close(&b);
	assert_int_equal(conncap_total(), 0);
	assert_int_equal(conncap_top(top, 4), 0);
}

struct rate_case {
	const char *text;
	int rc;
	uint32_t count, period_ms, burst;
};

static void test_rates(void **state)
{
	static const struct rate_case cases[] = {
		{ "20/s", 0, 20, 1000, 20 },
		{ "20/s burst 40", 0, 20, 1000, 40 },
		{ "5/m", 0, 5, 60000, 5 },
		{ "100/h burst 10", 0, 100, 3600000, 10 },
		{ "1000/d", 0, 1000, 86400000, 1000 },
		{ "  3/s   burst 1  ", 0, 3, 1000, 1 },
		{ "0/s", MOAT_EINVAL, 0, 0, 0 },
		{ "20", MOAT_EINVAL, 0, 0, 0 },
		{ "20/x", MOAT_EINVAL, 0, 0, 0 },
		{ "20/sec", MOAT_EINVAL, 0, 0, 0 },
		{ "20/s burst", MOAT_EINVAL, 0, 0, 0 },
		{ "20/s burst 0", MOAT_EINVAL, 0, 0, 0 },
		{ "20/s burst -1", MOAT_EINVAL, 0, 0, 0 },
		{ "20/s bursts 4", MOAT_EINVAL, 0, 0, 0 },
		{ "-5/s", MOAT_EINVAL, 0, 0, 0 },
		{ "99999999999/s", MOAT_EINVAL, 0, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rate r = { 0, 0, 0 };
		int rc = confabuse_rate(cases[i].text, &r);

		if (rc != cases[i].rc)
			fail_msg("\"%s\": rc %d, want %d", cases[i].text, rc, cases[i].rc);
		if (rc == 0 && (r.count != cases[i].count || r.period_ms != cases[i].period_ms ||
				r.burst != cases[i].burst))
			fail_msg("\"%s\": got %u per %u ms burst %u", cases[i].text, r.count,
				 r.period_ms, r.burst);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_burst_then_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frequent_caller_refills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_separate_budgets, setup, teardown),
		cmocka_unit_test(test_rule_ids),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limited_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_caps, setup, teardown),
		cmocka_unit_test(test_rates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
