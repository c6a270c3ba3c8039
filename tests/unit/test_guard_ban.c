/*
 * test_guard_ban.c - the ban table (keys, expiry, lifting, the bound and
 * who it evicts, notification) and the failure counters of ban rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_ban.h"
#include "netaddr.h"
#include "util.h"

static int notified;

static void on_change(void *arg)
{
	(*(int *)arg)++;
}

static struct ipaddr addr(const char *text)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(text, strlen(text), &a), 0);
	return a;
}

static struct ban ban_on(const char *text, int64_t since, int64_t until)
{
	struct ipaddr a = addr(text);
	struct ban b = { .key = ipaddr_key(&a), .since = since, .until = until };

	snprintf(b.reason, sizeof(b.reason), "test %s", text);
	return b;
}

static int setup(void **state)
{
	notified = 0;
	bans_init(3, on_change, &notified);
	return 0;
}

static int teardown(void **state)
{
	bans_shutdown();
	return 0;
}

static void test_add_check_remove(void **state)
{
	struct ban b = ban_on("192.0.2.1", 100, 200), got;
	struct ipaddr a = addr("192.0.2.1"), other = addr("192.0.2.2");
	unsigned e0 = bans_epoch();

	assert_false(bans_active(&a, 150));
	assert_int_equal(bans_add(&b), 0);
	assert_int_equal(notified, 1);
	assert_true(bans_epoch() != e0);
	assert_true(bans_active(&a, 150));
	assert_false(bans_active(&a, 200));   /* over at until */
	assert_false(bans_active(&other, 150));
	assert_true(bans_get(&a, 150, &got));
	assert_string_equal(got.reason, "test 192.0.2.1");
	assert_int_equal(bans_remove(&b.key), 0);
	assert_int_equal(notified, 2);
	assert_false(bans_active(&a, 150));
	assert_int_equal(bans_remove(&b.key), MOAT_ENOTFOUND);
	assert_int_equal(notified, 2);
	b.until = b.since;
	assert_int_equal(bans_add(&b), MOAT_EINVAL);
}

/* An IPv6 ban covers the /64: rotating addresses inside it does not help. */
static void test_ipv6_prefix(void **state)
{
	struct ban b = ban_on("2001:db8:aa:bb::1", 0, 100);
	struct ipaddr same = addr("2001:db8:aa:bb:1234:5678:9abc:def0");
	struct ipaddr next = addr("2001:db8:aa:bc::1");
	char text[NETADDR_TEXT];

	bans_add(&b);
	assert_string_equal(cidr_format(&b.key, text, sizeof(text)), "2001:db8:aa:bb::/64");
	assert_true(bans_active(&same, 50));
	assert_false(bans_active(&next, 50));
}

/* A full table evicts the ban made first; replacing a ban renews its age. */
static void test_bounded_evicts_oldest(void **state)
{
	struct ban a = ban_on("198.51.100.1", 10, 1000), b = ban_on("198.51.100.2", 20, 1000);
	struct ban c = ban_on("198.51.100.3", 30, 1000), d = ban_on("198.51.100.4", 40, 1000);
	struct ipaddr ia = addr("198.51.100.1"), ib = addr("198.51.100.2");
	struct ban *list;
	size_t n;
	uint64_t ev = bans_evicted();

	bans_add(&a);
	bans_add(&b);
	bans_add(&c);
	a.until = 2000;
	bans_add(&a);         /* replaced: now the newest */
	bans_add(&d);         /* full: b goes */
	assert_int_equal(bans_evicted() - ev, 1);
	assert_true(bans_active(&ia, 500));
	assert_false(bans_active(&ib, 500));
	list = bans_list(500, &n);
	assert_int_equal(n, 3);
	assert_true(ipaddr_equal(&list[2].key.a, &d.key.a));
	assert_int_equal(list[1].until, 2000);
	free(list);
}

static void test_expire_and_load(void **state)
{
	struct ban in[3] = {
		ban_on("203.0.113.1", 0, 50), ban_on("203.0.113.2", 0, 500),
		ban_on("203.0.113.3", 0, 40),
	};
	struct ipaddr a1 = addr("203.0.113.1"), a2 = addr("203.0.113.2");
	struct ban *list;
	size_t n;

	bans_load(in, 3, 45);               /* the third had ended already */
	assert_int_equal(notified, 0);      /* loading is not a change to save */
	list = bans_list(45, &n);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(bans_expire(49), 0);
	assert_int_equal(bans_expire(60), 1);
	assert_int_equal(notified, 1);
	assert_false(bans_active(&a1, 10));
	assert_true(bans_active(&a2, 60));
}

/* "after 3 in 1s": the third failure inside the window fires and the count
 * starts again; failures that left the window do not count. */
static void test_strikes(void **state)
{
	struct ipaddr a = addr("192.0.2.50"), b = addr("192.0.2.51");
	struct cidr ka = ipaddr_key(&a), kb = ipaddr_key(&b);

	assert_false(ban_strike(1, 3, 1000, &ka, 10000));
	assert_false(ban_strike(1, 3, 1000, &ka, 10500));
	assert_false(ban_strike(1, 3, 1000, &kb, 10600));   /* another client */
	assert_false(ban_strike(2, 3, 1000, &ka, 10700));   /* another rule */
	assert_true(ban_strike(1, 3, 1000, &ka, 10999));
	assert_false(ban_strike(1, 3, 1000, &ka, 11000));   /* counting again */
	/* spread out: never three inside one second */
	assert_false(ban_strike(1, 3, 1000, &kb, 11600));
	assert_false(ban_strike(1, 3, 1000, &kb, 12500));
	assert_false(ban_strike(1, 3, 1000, &kb, 13400));
	assert_false(ban_strike(1, 3, 1000, &kb, 13500));
	assert_true(ban_strike(1, 3, 1000, &kb, 13600));
	/* after: 1 fires at once; out-of-range counts never do */
	assert_true(ban_strike(3, 1, 1000, &ka, 20000));
	assert_false(ban_strike(4, 0, 1000, &ka, 20000));
	assert_false(ban_strike(4, BAN_AFTER_MAX + 1, 1000, &ka, 20000));
}

/* A crowd of clients never holds more than BAN_STRIKES_CAP counters; the
 * one left alone longest is forgotten first. */
static void test_strikes_bounded(void **state)
{
	struct ipaddr first = addr("10.0.0.1");
	struct cidr k = ipaddr_key(&first);
	char text[32];
	struct ipaddr a;
	struct cidr ka;
	int i;

	assert_false(ban_strike(9, 2, 3600000, &k, 1));
	for (i = 0; i < BAN_STRIKES_CAP + 5000; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.%d", 1 + i / 65536, (i / 256) % 256, i % 256);
		a = addr(text);
		ka = ipaddr_key(&a);
		assert_false(ban_strike(9, 2, 3600000, &ka, 2));
	}
	/* the first client's failure was forgotten: one more does not fire */
	assert_false(ban_strike(9, 2, 3600000, &k, 3));
	assert_true(ban_strike(9, 2, 3600000, &k, 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_check_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_evicts_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_and_load, setup, teardown),
		cmocka_unit_test(test_strikes),
		cmocka_unit_test(test_strikes_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
