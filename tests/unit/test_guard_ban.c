/*
 * test_guard_ban.c - the ban table (keys, expiry, lifting, the bound and
 * who it evicts, notification, the lock-free filter of lookups, readers
 * racing a writer) and the failure counters of ban rules.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
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

/* At the current time: nothing with an empty table, the ban once made. */
static void test_active_now(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct ban b = ban_on("192.0.2.77", now - 10, now + 600);
	struct ipaddr a = addr("192.0.2.77");

	assert_false(bans_active_now(&a));
	assert_int_equal(bans_add(&b), 0);
	assert_true(bans_active_now(&a));
	b.until = now - 1;
	b.since = now - 20;
	assert_int_equal(bans_add(&b), 0);      /* replaced by one that has ended */
	assert_false(bans_active_now(&a));
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
	assert_false(bans_active(&a1, 10));
	assert_true(bans_active(&a2, 60));
}

/* An ended ban closes no connection and need not be written (loading skips
 * it): expiry bumps no epoch and calls no notify. */
static void test_expiry_does_not_notify(void **state)
{
	struct ban a = ban_on("203.0.113.10", 0, 50), b = ban_on("203.0.113.11", 0, 60);
	struct ipaddr ia = addr("203.0.113.10");
	unsigned e0;

	bans_add(&a);
	bans_add(&b);
	assert_int_equal(notified, 2);
	e0 = bans_epoch();
	assert_int_equal(bans_expire(55), 1);
	assert_int_equal(notified, 2);
	assert_int_equal(bans_epoch(), e0);
	assert_false(bans_active(&ia, 10));
	assert_int_equal(bans_expire(100), 1);
	assert_int_equal(notified, 2);
	assert_int_equal(bans_epoch(), e0);
}

static size_t listed(int64_t now)
{
	size_t n;

	free(bans_list(now, &n));
	return n;
}

/* The walk is skipped until the earliest end; whatever order bans come in,
 * are replaced or removed in, each still leaves the table at its end. */
static void test_expiry_on_time(void **state)
{
	struct ban early = ban_on("198.51.100.10", 0, 100), late = ban_on("198.51.100.11", 0, 200);
	struct ban mid = ban_on("198.51.100.12", 0, 150);

	/* later after earlier */
	bans_add(&early);
	bans_add(&late);
	assert_int_equal(bans_expire(99), 0);
	assert_int_equal(bans_expire(100), 1);
	assert_int_equal(bans_expire(199), 0);
	assert_int_equal(listed(0), 1);
	assert_int_equal(bans_expire(200), 1);
	assert_int_equal(listed(0), 0);

	/* earlier after later, after a walk that found nothing due */
	bans_add(&late);
	assert_int_equal(bans_expire(150), 0);
	bans_add(&early);
	assert_int_equal(bans_expire(100), 1);
	assert_int_equal(listed(0), 1);

	/* removing the earliest: the next one still ends on time */
	bans_add(&early);
	bans_add(&mid);                    /* three bans: the table is full */
	assert_int_equal(bans_remove(&early.key), 0);
	assert_int_equal(bans_expire(120), 0);
	assert_int_equal(bans_expire(150), 1);
	assert_int_equal(listed(0), 1);

	/* a replacement that ends sooner ends then */
	late.until = 120;
	bans_add(&late);
	assert_int_equal(bans_expire(119), 0);
	assert_int_equal(bans_expire(120), 1);
	assert_int_equal(listed(0), 0);

	/* loaded bans too */
	bans_load(&mid, 1, 0);
	assert_int_equal(bans_expire(150), 1);

	/* evicting the earliest leaves the rest ending on time */
	early.until = 100;
	late.until = 300;
	mid.until = 200;
	bans_add(&early);
	bans_add(&mid);
	bans_add(&late);
	bans_add(&(struct ban){ .key = ban_on("198.51.100.13", 0, 1).key, .since = 0,
				.until = 400 });   /* evicts early */
	assert_int_equal(bans_expire(199), 0);
	assert_int_equal(bans_expire(200), 1);
	assert_int_equal(bans_expire(300), 1);
	assert_int_equal(bans_expire(400), 1);
	assert_int_equal(listed(0), 0);
}

/* Many bans ending at once: the first ten are named, the rest counted in
 * one line, and the log is written after the lock is released (a log
 * call that took the lock again would deadlock here). */
static void test_expiry_log_is_bounded(void **state)
{
	char path[] = "/tmp/test_guard_ban_log.XXXXXX", buf[16384], text[32];
	struct ban b;
	int fd, saved, i, named = 0;
	ssize_t len;
	char *p;

	bans_shutdown();
	bans_init(100, on_change, &notified);
	for (i = 0; i < 25; i++) {
		snprintf(text, sizeof(text), "192.0.2.%d", 100 + i);
		b = ban_on(text, 0, 10);
		bans_add(&b);
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	saved = dup(2);
	dup2(fd, 2);
	assert_int_equal(bans_expire(10), 25);
	dup2(saved, 2);
	close(saved);
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(len > 0);
	buf[len] = '\0';
	for (p = buf; (p = strstr(p, "ended (test ")) != NULL; p++)
		named++;
	assert_int_equal(named, 10);
	assert_non_null(strstr(buf, "... and 15 more bans ended"));
}

/* bans_expire with its log lines (thousands in the random tests) dropped. */
static size_t expire_quietly(int64_t now)
{
	int null = open("/dev/null", O_WRONLY), saved = dup(2);
	size_t gone;

	assert_true(null >= 0 && saved >= 0);
	dup2(null, 2);
	gone = bans_expire(now);
	dup2(saved, 2);
	close(saved);
	close(null);
	return gone;
}

/* A tiny deterministic generator, so a failure can be replayed. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define POOL 20000

static struct ipaddr pool_addr(int i)
{
	char text[32];

	snprintf(text, sizeof(text), "10.%d.%d.%d", 1 + i / 65536, (i / 256) % 256, i % 256);
	return addr(text);
}

/*
 * The filter of lookups never says "not banned" of a banned client: bans
 * added, replaced, removed and ended at random over 20000 keys (so the
 * 65536-bit filter has many keys sharing a bit, whose removal must not
 * clear the bit of the other) agree with a reference after every round.
 */
static void test_filter_no_false_negative(void **state)
{
	static struct ipaddr a[POOL];
	static int64_t until[POOL];        /* 0: no ban */
	uint64_t seed = 0x5eed1234abcdull;
	int64_t now = 1000;
	struct ban b;
	int round, op, i, j;
	size_t want, gone;

	bans_shutdown();
	bans_init(POOL, on_change, &notified);
	for (i = 0; i < POOL; i++) {
		a[i] = pool_addr(i);
		until[i] = 0;
	}
	for (round = 0; round < 40; round++) {
		for (op = 0; op < 2000; op++) {
			i = (int)(rnd_next(&seed) % POOL);
			switch (rnd_next(&seed) % 4) {
			case 0:
			case 1:
				b = (struct ban){ .key = ipaddr_key(&a[i]), .since = now,
						  .until = now + 1 + (int64_t)(rnd_next(&seed) % 50) };
				assert_int_equal(bans_add(&b), 0);
				until[i] = b.until;
				break;
			case 2:
				b.key = ipaddr_key(&a[i]);
				assert_int_equal(bans_remove(&b.key),
						 until[i] > now ? 0 : MOAT_ENOTFOUND);
				until[i] = 0;
				break;
			default:
				break;
			}
			if (until[i] != 0 && until[i] <= now)
				until[i] = 0;
		}
		now += 1 + (int64_t)(rnd_next(&seed) % 10);
		want = 0;
		for (j = 0; j < POOL; j++)
			if (until[j] != 0 && until[j] <= now) {
				until[j] = 0;
				want++;
			}
		gone = expire_quietly(now);
		assert_int_equal(gone, want);
		for (j = 0; j < POOL; j++)
			if (bans_active(&a[j], now) != (until[j] > now))
				fail_msg("round %d: %d banned until %lld, table says %d at %lld", round, j,
					 (long long)until[j], bans_active(&a[j], now), (long long)now);
	}
	for (j = 0; j < POOL; j++)
		if (until[j] != 0) {
			b.key = ipaddr_key(&a[j]);
			assert_int_equal(bans_remove(&b.key), 0);
			assert_false(bans_active(&a[j], now));
		}
	assert_int_equal(listed(0), 0);
}

/*
 * Readers racing one writer that adds, removes and expires (so the filter
 * is rebuilt under them): a client banned for the whole run is never seen
 * as not banned, and a client never banned never as banned. A smoke test
 * for the sanitizer builds (and TSan by hand): a reader whose bit is set
 * waits on the lock the writer holds, so it seldom looks at the filter in
 * the middle of a rebuild; the argument that it cannot see a remaining
 * ban's bit cleared is in guard_ban.c.
 */
#define RACE_READERS 3
#define RACE_KEPT 64
#define RACE_CHURN 4096

static struct ipaddr race_kept[RACE_KEPT], race_never[RACE_KEPT];
static atomic_bool race_stop;
static atomic_ulong race_misses, race_false, race_lookups;

static void *race_reader(void *arg)
{
	unsigned long misses = 0, falses = 0, n = 0;
	int i;

	while (!atomic_load(&race_stop)) {
		for (i = 0; i < RACE_KEPT; i++, n += 2) {
			if (!bans_active(&race_kept[i], 1000))
				misses++;
			if (bans_active(&race_never[i], 1000))
				falses++;
		}
	}
	atomic_fetch_add(&race_misses, misses);
	atomic_fetch_add(&race_false, falses);
	atomic_fetch_add(&race_lookups, n);
	return NULL;
}

static void test_readers_race_writer(void **state)
{
	static struct ipaddr churn[RACE_CHURN];
	pthread_t t[RACE_READERS];
	uint64_t seed = 0xfeedbeefull, t0;
	struct ban b;
	int i, k, round;

	bans_shutdown();
	bans_init(RACE_KEPT + RACE_CHURN, on_change, &notified);
	for (i = 0; i < RACE_KEPT; i++) {
		race_kept[i] = pool_addr(i);
		race_never[i] = pool_addr(100000 + i);
		b = (struct ban){ .key = ipaddr_key(&race_kept[i]), .since = 0, .until = 1000000 };
		bans_add(&b);
	}
	for (i = 0; i < RACE_CHURN; i++)
		churn[i] = pool_addr(200000 + i);
	atomic_store(&race_stop, false);
	atomic_store(&race_misses, 0);
	atomic_store(&race_false, 0);
	atomic_store(&race_lookups, 0);
	for (i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_reader, NULL), 0);
	/* 0.3 s of changes, so that the readers surely run during them */
	t0 = moat_now_ms();
	for (round = 0; round < 200 || moat_now_ms() - t0 < 300; round++) {
		for (k = 0; k < 64; k++) {
			i = (int)(rnd_next(&seed) % RACE_CHURN);
			b = (struct ban){ .key = ipaddr_key(&churn[i]), .since = 0,
					  .until = 1 + (int64_t)(rnd_next(&seed) % 3000) };
			bans_add(&b);
			if (k % 4 == 0) {
				i = (int)(rnd_next(&seed) % RACE_CHURN);
				b.key = ipaddr_key(&churn[i]);
				bans_remove(&b.key);
			}
		}
		/* the kept bans stay; the churn ends in the table's own time,
		 * which the readers' clock (1000) does not share */
		expire_quietly(round % 300 * 10);
	}
	atomic_store(&race_stop, true);
	for (i = 0; i < RACE_READERS; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&race_lookups) > 0);
	printf("readers: %lu lookups during %d rounds of changes\n", atomic_load(&race_lookups),
	       round);
	assert_int_equal(atomic_load(&race_misses), 0);
	assert_int_equal(atomic_load(&race_false), 0);
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
		cmocka_unit_test_setup_teardown(test_active_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_evicts_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_does_not_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_on_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_log_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_no_false_negative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_race_writer, setup, teardown),
		cmocka_unit_test(test_strikes),
		cmocka_unit_test(test_strikes_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
