/*
 * test_banfile.c - the ban file (round trip, missing, malformed, out of
 * bounds and expired entries, mode) and the data directory's lock.
 * Each test works in its own mkdtemp directory, removed in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banfile.h"
#include "banop.h"
#include "fsutil.h"
#include "netaddr.h"
#include "testfs.h"
#include "util.h"

#define NOW 1700000000

struct fx {
	char *dir;
	char *path; /* dir/bans.json */
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->dir = xstrdup("/tmp/moat-test-banfile-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f->dir);
		free(f);
		return -1;
	}
	f->path = banfile_path(f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	testfs_rm_tree(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

static struct ban make_ban(const char *addr, int64_t since, int64_t until, const char *reason)
{
	struct ipaddr a;
	struct ban b;

	memset(&b, 0, sizeof(b));
	assert_int_equal(ipaddr_parse(addr, strlen(addr), &a), 0);
	b.key = ipaddr_key(&a);
	b.since = since;
	b.until = until;
	snprintf(b.reason, sizeof(b.reason), "%s", reason);
	return b;
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600), 0);
}

static void assert_same_ban(const struct ban *got, const struct ban *want)
{
	char g[NETADDR_TEXT], w[NETADDR_TEXT];

	assert_string_equal(cidr_format(&got->key, g, sizeof(g)),
			    cidr_format(&want->key, w, sizeof(w)));
	assert_int_equal(got->key.bits, want->key.bits);
	assert_int_equal(got->since, want->since);
	assert_int_equal(got->until, want->until);
	assert_string_equal(got->reason, want->reason);
}

/* Read path expecting failure code; why must contain each of the words. */
static void assert_read_fails(const char *path, int code, const char *w1, const char *w2)
{
	struct ban *b = NULL;
	char *why = NULL;
	size_t n = 99;

	assert_int_equal(banfile_read(path, NOW, &b, &n, &why), code);
	assert_null(b);
	assert_int_equal(n, 0);
	assert_non_null(why);
	if (strstr(why, path) == NULL || strstr(why, w1) == NULL ||
	    (w2 != NULL && strstr(why, w2) == NULL))
		fail_msg("message \"%s\" should name %s, \"%s\" and \"%s\"", why, path, w1,
			 w2 != NULL ? w2 : "");
	free(why);
}

static void round_trip(void **state)
{
	struct fx *f = *state;
	struct ban in[3], *out = NULL;
	char *why = NULL;
	size_t n = 0, i;

	in[0] = make_ban("192.0.2.7", NOW - 10, NOW + 3600, "site a.example: POST /login 401 x5");
	in[1] = make_ban("2001:db8::1234", NOW, NOW + 60, "quote \" backslash \\ tab-free");
	in[2] = make_ban("198.51.100.1", NOW - 100, NOW + 1, "");
	assert_int_equal(banfile_write(f->path, in, 3), 0);
	assert_int_equal(banfile_read(f->path, NOW, &out, &n, &why), 0);
	assert_null(why);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		assert_same_ban(&out[i], &in[i]);
	/* an IPv6 client is stored as its /64 */
	{
		char t[NETADDR_TEXT];

		assert_string_equal(cidr_format(&out[1].key, t, sizeof(t)), "2001:db8::/64");
	}
	free(out);
}

static void empty_round_trip(void **state)
{
	struct fx *f = *state;
	struct ban *out = NULL;
	char *why = NULL, *text;
	size_t n = 5;

	assert_int_equal(banfile_write(f->path, NULL, 0), 0);
	text = testfs_slurp(f->path);
	assert_string_equal(text, "{\"version\":1,\"bans\":[]}\n");
	free(text);
	assert_int_equal(banfile_read(f->path, NOW, &out, &n, &why), 0);
	assert_non_null(out);
	assert_int_equal(n, 0);
	free(out);
}

static void missing_file_is_empty(void **state)
{
	struct fx *f = *state;
	struct ban *out = NULL;
	char *why = NULL;
	size_t n = 5;

	assert_int_equal(banfile_read(f->path, NOW, &out, &n, &why), 0);
	assert_non_null(out);
	assert_null(why);
	assert_int_equal(n, 0);
	free(out);
}

static void malformed_json(void **state)
{
	struct fx *f = *state;

	write_text(f->path, "{\"version\":1,\n\"bans\":[{\"address\":\"192.0.2.7\",}]}\n");
	/* the position is file:line:col */
	assert_read_fails(f->path, MOAT_EINVAL, "malformed JSON", ":2:");
	write_text(f->path, "");
	assert_read_fails(f->path, MOAT_EINVAL, "malformed JSON", NULL);
	write_text(f->path, "{\"version\":1,\"bans\":[],\"bans\":[]}");
	assert_read_fails(f->path, MOAT_EINVAL, "malformed JSON", "duplicate");
	/* jansson quotes the stray byte; it must not reach a terminal raw */
	write_text(f->path, "{\"version\":1,\x1b[2J}");
	assert_read_fails(f->path, MOAT_EINVAL, "malformed JSON", "near '?'");
}

static void malformed_entries(void **state)
{
	struct fx *f = *state;

	write_text(f->path, "[1,2]");
	assert_read_fails(f->path, MOAT_EINVAL, "not a moat ban file", NULL);
	write_text(f->path, "{\"version\":2,\"bans\":[]}");
	assert_read_fails(f->path, MOAT_EINVAL, "version 2", NULL);
	write_text(f->path, "{\"version\":1,\"bans\":[{\"since\":1,\"until\":2}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "\"address\"");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":1,"
			    "\"until\":1800000000},{\"address\":\"nope\",\"since\":1,\"until\":2}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[1]", NULL);
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"10.0.0.0/8\",\"since\":1,"
			    "\"until\":1800000000}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "not a client key");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":1600000000,"
			    "\"until\":1600000000}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "not after");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":\"1\","
			    "\"until\":1800000000}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "unix times");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":1,"
			    "\"until\":1800000000,\"reason\":5}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "\"reason\"");
}

/* Write one entry with since, until and the reason (JSON text, quotes
 * included; NULL: none) and read the file at NOW. */
static int read_entry(const char *path, long long since, long long until, const char *reason,
		      struct ban **out, size_t *n, char **why)
{
	char *text = xasprintf("{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":%lld,"
			       "\"until\":%lld%s%s}]}", since, until,
			       reason != NULL ? ",\"reason\":" : "", reason != NULL ? reason : "");

	write_text(path, text);
	free(text);
	*out = NULL;
	*n = 99;
	*why = NULL;
	return banfile_read(path, NOW, out, n, why);
}

/* The entry is refused with exactly "<path>: " + want. */
static void assert_entry_refused(const char *path, long long since, long long until,
				 const char *reason, const char *want)
{
	struct ban *b = NULL;
	char *why = NULL, *full = xasprintf("%s: %s", path, want);
	size_t n = 0;

	assert_int_equal(read_entry(path, since, until, reason, &b, &n, &why), MOAT_EINVAL);
	assert_null(b);
	assert_int_equal(n, 0);
	assert_non_null(why);
	assert_string_equal(why, full);
	free(why);
	free(full);
}

/* The entry is read back with these times and reason. */
static void assert_entry_read(const char *path, long long since, long long until,
			      const char *reason, const char *want_reason)
{
	struct ban *b = NULL;
	char *why = NULL;
	size_t n = 0;

	assert_int_equal(read_entry(path, since, until, reason, &b, &n, &why), 0);
	assert_null(why);
	assert_int_equal(n, 1);
	assert_int_equal(b[0].since, since);
	assert_int_equal(b[0].until, until);
	assert_string_equal(b[0].reason, want_reason);
	free(b);
}

#define DAY 86400LL
#define CAP ((long long)BANOP_FOR_MAX)

/* A hand-edited file is held to what moat writes: times it could have
 * made (since may be long past), a reason that is one line of text. */
static void out_of_bounds(void **state)
{
	struct fx *f = *state;
	char *long_reason = xcalloc(BAN_REASON_MAX + 3, 1), *ok_reason;

	/* until beyond the longest ban (10 years, + a day of clock skew) from now */
	assert_entry_refused(f->path, NOW - 10, NOW + CAP + DAY + 1, NULL,
			     "bans[0].until: 2015446401 is more than 10 years after now "
			     "(1700000000), longer than any ban moat makes; set it to at most "
			     "2015446400 or delete the entry");
	assert_entry_refused(f->path, 1, 253402300800LL, NULL,
			     "bans[0].until: 253402300800 is more than 10 years after now "
			     "(1700000000), longer than any ban moat makes; set it to at most "
			     "2015446400 or delete the entry");
	assert_entry_refused(f->path, 1, 9223372036854775807LL, NULL,
			     "bans[0].until: 9223372036854775807 is more than 10 years after now "
			     "(1700000000), longer than any ban moat makes; set it to at most "
			     "2015446400 or delete the entry");
	assert_entry_read(f->path, NOW - 10, NOW + CAP + DAY, NULL, "");
	/* a ban made years ago for 10 years still runs */
	assert_entry_read(f->path, NOW - 5 * 365 * DAY, NOW - 5 * 365 * DAY + CAP, NULL, "");
	/* until <= since */
	assert_entry_refused(f->path, NOW, NOW, NULL,
			     "bans[0].until: 1700000000 is not after since (1700000000): a ban "
			     "ends after it starts; fix the times or delete the entry");
	assert_entry_refused(f->path, NOW, NOW - 1, NULL,
			     "bans[0].until: 1699999999 is not after since (1700000000): a ban "
			     "ends after it starts; fix the times or delete the entry");
	/* since negative, or in the future beyond a day of clock skew */
	assert_entry_refused(f->path, -5, NOW + 60, NULL,
			     "bans[0].since: -5 is before 1970 (unix times count seconds from "
			     "1970-01-01 UTC); fix it or delete the entry");
	assert_entry_refused(f->path, -9223372036854775807LL - 1, NOW + 60, NULL,
			     "bans[0].since: -9223372036854775808 is before 1970 (unix times "
			     "count seconds from 1970-01-01 UTC); fix it or delete the entry");
	assert_entry_refused(f->path, NOW + DAY + 1, NOW + 2 * DAY, NULL,
			     "bans[0].since: 1700086401 is more than a day after now (1700000000): "
			     "a ban cannot start in the future; set it to at most 1700086400 "
			     "(check this machine's clock too) or delete the entry");
	assert_entry_read(f->path, 0, NOW + 60, NULL, "");
	assert_entry_read(f->path, NOW + DAY, NOW + 2 * DAY, NULL, "");
	/* control characters in reason, shown by their code, never raw */
	assert_entry_refused(f->path, 1, NOW + 60, "\"\\u001b[2J\\u001b]0;owned\\u0007\"",
			     "bans[0].reason: byte 1 is a control character (0x1b); a reason is "
			     "one line of printable text: remove it");
	assert_entry_refused(f->path, 1, NOW + 60, "\"two\\nlines\"",
			     "bans[0].reason: byte 4 is a control character (0x0a); a reason is "
			     "one line of printable text: remove it");
	assert_entry_refused(f->path, 1, NOW + 60, "\"tab\\there\"",
			     "bans[0].reason: byte 4 is a control character (0x09); a reason is "
			     "one line of printable text: remove it");
	assert_entry_refused(f->path, 1, NOW + 60, "\"del\\u007f\"",
			     "bans[0].reason: byte 4 is a control character (0x7f); a reason is "
			     "one line of printable text: remove it");
	/* reason longer than moat keeps (it used to be cut silently) */
	memset(long_reason, 'x', BAN_REASON_MAX + 2);
	long_reason[0] = '"';
	long_reason[BAN_REASON_MAX + 1] = '"';
	assert_entry_refused(f->path, 1, NOW + 60, long_reason,
			     "bans[0].reason: 160 bytes, longer than moat keeps; shorten it to at "
			     "most 159 bytes");
	long_reason[BAN_REASON_MAX] = '"';
	long_reason[BAN_REASON_MAX + 1] = '\0';
	ok_reason = xstrndup(long_reason + 1, BAN_REASON_MAX - 1);
	assert_entry_read(f->path, 1, NOW + 60, long_reason, ok_reason);
	/* text beyond ASCII is not a control character */
	assert_entry_read(f->path, 1, NOW + 60, "\"caf\\u00e9 \\u2014 ok\"", "caf\xc3\xa9 \xe2\x80\x94 ok");
	assert_entry_read(f->path, 1, NOW + 60, "\"\"", "");
	free(ok_reason);
	free(long_reason);
}

/* A hand-written IPv6 address stands for its /64; reason is optional. */
static void hand_written(void **state)
{
	struct fx *f = *state;
	struct ban *out = NULL;
	char *why = NULL, t[NETADDR_TEXT];
	size_t n = 0;

	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"2001:db8:1:2:3:4:5:6\","
			    "\"since\":1,\"until\":1800000000,\"extra\":true}]}");
	assert_int_equal(banfile_read(f->path, NOW, &out, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_string_equal(cidr_format(&out[0].key, t, sizeof(t)), "2001:db8:1:2::/64");
	assert_string_equal(out[0].reason, "");
	free(out);
}

static void expired_dropped(void **state)
{
	struct fx *f = *state;
	struct ban in[4], *out = NULL;
	char *why = NULL;
	size_t n = 0;

	in[0] = make_ban("192.0.2.1", NOW - 100, NOW - 1, "expired");
	in[1] = make_ban("192.0.2.2", NOW - 100, NOW, "ends now");
	in[2] = make_ban("192.0.2.3", NOW - 100, NOW + 1, "one second left");
	in[3] = make_ban("192.0.2.4", NOW - 100, NOW - 50, "expired too");
	assert_int_equal(banfile_write(f->path, in, 4), 0);
	assert_int_equal(banfile_read(f->path, NOW, &out, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_same_ban(&out[0], &in[2]);
	free(out);
}

static void file_mode(void **state)
{
	struct fx *f = *state;
	struct ban b = make_ban("192.0.2.7", NOW, NOW + 1, "x");
	mode_t old = umask(0);

	assert_int_equal(banfile_write(f->path, &b, 1), 0);
	umask(old);
	testfs_assert_mode(f->path, 0600);
	/* rewriting keeps it */
	assert_int_equal(banfile_write(f->path, &b, 1), 0);
	testfs_assert_mode(f->path, 0600);
}

static void lock_excludes(void **state)
{
	struct fx *f = *state;
	char *lock = banfile_lock_path(f->dir);
	mode_t old = umask(0);
	int fd1, fd2, fd3;

	fd1 = banfile_lock(f->dir);
	umask(old);
	assert_true(fd1 >= 0);
	testfs_assert_mode(lock, 0600);
	assert_int_equal(banfile_lock_holder(f->dir), (long)getpid());
	/* a second open file description: flock excludes it, even in one process */
	fd2 = banfile_lock(f->dir);
	assert_int_equal(fd2, MOAT_EEXIST);
	close(fd1);
	fd3 = banfile_lock(f->dir);
	assert_true(fd3 >= 0);
	close(fd3);
	free(lock);
}

static void lock_needs_directory(void **state)
{
	struct fx *f = *state;
	char *gone = xasprintf("%s/nope", f->dir);

	assert_int_equal(banfile_lock(gone), MOAT_EIO);
	assert_int_equal(banfile_lock_holder(gone), 0);
	free(gone);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_file_is_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_json, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(out_of_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(hand_written, setup, teardown),
		cmocka_unit_test_setup_teardown(expired_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_needs_directory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
