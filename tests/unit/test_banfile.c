/*
 * test_banfile.c - the ban file (round trip, missing, malformed, expired
 * entries, mode) and the data directory's lock.
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
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":1800000000,"
			    "\"until\":1800000000}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "not after");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":\"1\","
			    "\"until\":1800000000}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "unix times");
	write_text(f->path, "{\"version\":1,\"bans\":[{\"address\":\"192.0.2.7\",\"since\":1,"
			    "\"until\":1800000000,\"reason\":5}]}");
	assert_read_fails(f->path, MOAT_EINVAL, "bans[0]", "\"reason\"");
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
		cmocka_unit_test_setup_teardown(hand_written, setup, teardown),
		cmocka_unit_test_setup_teardown(expired_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_needs_directory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
