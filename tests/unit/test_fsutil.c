/*
 * test_fsutil.c - atomic writes, private directories, bounded reads.
 * Each test works in its own mkdtemp directory, removed in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "testfs.h"
#include "util.h"

static int setup(void **state)
{
	char *dir = xstrdup("/tmp/moat-test-fsutil-XXXXXX");

	if (mkdtemp(dir) == NULL) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char *dir = *state;

	testfs_rm_tree(dir);
	free(dir);
	return 0;
}

/* Number of entries in dir (without . and ..); *tmp counts temp files. */
static int count_entries(const char *dir, int *tmp)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	*tmp = 0;
	for (de = readdir(d); de != NULL; de = readdir(d)) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (strstr(de->d_name, ".tmp.") != NULL)
			(*tmp)++;
	}
	closedir(d);
	return n;
}

static void assert_content(const char *path, const char *want)
{
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(fs_read_file(path, 1 << 20, &buf, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(buf, want);
	free(buf);
}

static void write_atomic_replaces(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/state.json", dir);
	int tmp;

	assert_int_equal(fs_write_atomic(path, "one", 3, 0644), 0);
	assert_content(path, "one");
	testfs_assert_mode(path, 0644);
	assert_int_equal(fs_write_atomic(path, "two, and longer", 15, 0600), 0);
	assert_content(path, "two, and longer");
	testfs_assert_mode(path, 0600);
	assert_int_equal(fs_write_atomic(path, "", 0, 0600), 0);
	assert_content(path, "");
	assert_int_equal(count_entries(dir, &tmp), 1);
	assert_int_equal(tmp, 0);
	free(path);
}

static void write_atomic_mode_ignores_umask(void **state)
{
	const char *dir = *state;
	char *a = xasprintf("%s/a.key", dir);
	char *b = xasprintf("%s/b.pem", dir);
	mode_t old = umask(0);

	/* A permissive umask must not loosen a key... */
	assert_int_equal(fs_write_atomic(a, "k", 1, 0600), 0);
	testfs_assert_mode(a, 0600);
	/* ...and a strict one must not hide a certificate. */
	umask(077);
	assert_int_equal(fs_write_atomic(b, "c", 1, 0644), 0);
	testfs_assert_mode(b, 0644);
	umask(old);
	free(b);
	free(a);
}

static void write_atomic_large(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/big", dir);
	size_t n = 3u << 20, i, len = 0;
	char *data = xmalloc(n), *back = NULL;

	for (i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(fs_write_atomic(path, data, n, 0600), 0);
	assert_int_equal(fs_read_file(path, n, &back, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(back, data, n);
	free(back);
	free(data);
	free(path);
}

static void write_atomic_missing_dir(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/nope/file", dir);
	int tmp;

	assert_int_equal(fs_write_atomic(path, "x", 1, 0600), MOAT_EIO);
	assert_int_equal(count_entries(dir, &tmp), 0);
	free(path);
}

/* rename() fails after the temp file exists: it must be removed. */
static void write_atomic_rename_fails(void **state)
{
	const char *dir = *state;
	char *target = xasprintf("%s/target", dir);
	char *inner = xasprintf("%s/target/keep", dir);
	int tmp;

	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(fs_write_atomic(inner, "keep", 4, 0600), 0);
	assert_int_equal(fs_write_atomic(target, "x", 1, 0600), MOAT_EIO);
	assert_int_equal(count_entries(dir, &tmp), 1);
	assert_int_equal(tmp, 0);
	assert_content(inner, "keep");
	free(inner);
	free(target);
}

static void mkdir_private_nested(void **state)
{
	const char *dir = *state;
	char *a = xasprintf("%s/a", dir);
	char *ab = xasprintf("%s/a/b", dir);
	char *abc = xasprintf("%s/a/b/c", dir);
	char *slash = xasprintf("%s/a/b/c/d//e/", dir);
	char *de = xasprintf("%s/a/b/c/d", dir);
	mode_t old = umask(022);

	assert_int_equal(fs_mkdir_private(abc), 0);
	testfs_assert_mode(a, 0700);
	testfs_assert_mode(ab, 0700);
	testfs_assert_mode(abc, 0700);
	/* Idempotent, and tolerant of doubled and trailing slashes. */
	assert_int_equal(fs_mkdir_private(abc), 0);
	assert_int_equal(fs_mkdir_private(slash), 0);
	testfs_assert_mode(de, 0700);
	umask(old);
	free(de);
	free(slash);
	free(abc);
	free(ab);
	free(a);
}

static void mkdir_private_tightens(void **state)
{
	const char *dir = *state;
	char *p = xasprintf("%s/p", dir);
	char *q = xasprintf("%s/p/q", dir);

	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(fs_mkdir_private(q), 0);
	/* An existing parent is not ours to change. */
	testfs_assert_mode(p, 0755);
	testfs_assert_mode(q, 0700);
	assert_int_equal(fs_mkdir_private(p), 0);
	testfs_assert_mode(p, 0700);
	free(q);
	free(p);
}

static void mkdir_private_file_in_the_way(void **state)
{
	const char *dir = *state;
	char *f = xasprintf("%s/f", dir);
	char *under = xasprintf("%s/f/g", dir);

	assert_int_equal(fs_write_atomic(f, "x", 1, 0600), 0);
	assert_int_equal(fs_mkdir_private(f), MOAT_EIO);
	assert_int_equal(fs_mkdir_private(under), MOAT_EIO);
	assert_int_equal(fs_mkdir_private(""), MOAT_EIO);
	assert_int_equal(fs_mkdir_private("//"), MOAT_EIO);
	free(under);
	free(f);
}

static void read_file_limits(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/hundred", dir);
	char *empty = xasprintf("%s/empty", dir);
	char *missing = xasprintf("%s/missing", dir);
	char data[100];
	char *buf = NULL;
	size_t len = 7;

	memset(data, 'x', sizeof(data));
	assert_int_equal(fs_write_atomic(path, data, sizeof(data), 0600), 0);
	assert_int_equal(fs_write_atomic(empty, "", 0, 0600), 0);

	assert_int_equal(fs_read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 100);
	assert_int_equal(buf[100], '\0');
	assert_memory_equal(buf, data, sizeof(data));
	free(buf);

	assert_int_equal(fs_read_file(path, 99, &buf, &len), MOAT_ETOOBIG);
	assert_null(buf);
	assert_int_equal(len, 0);

	assert_int_equal(fs_read_file(empty, 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);

	assert_int_equal(fs_read_file(path, 100, &buf, NULL), 0);
	free(buf);

	assert_int_equal(fs_read_file(missing, 100, &buf, &len), MOAT_EIO);
	assert_null(buf);
	assert_int_equal(fs_read_file(dir, 100, &buf, &len), MOAT_EIO);
	assert_null(buf);
	free(missing);
	free(empty);
	free(path);
}

/* /proc files claim size 0, so this takes the grow-while-reading path. */
static void read_file_grows_past_fstat_size(void **state)
{
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(fs_read_file("/proc/self/status", 1 << 16, &buf, &len), 0);
	assert_true(len > 0);
	assert_int_equal(strlen(buf), len);
	assert_non_null(strstr(buf, "Name:"));
	free(buf);
	assert_int_equal(fs_read_file("/proc/self/status", 10, &buf, &len),
			 MOAT_ETOOBIG);
	assert_null(buf);
}

static void resolve_and_dirname(void **state)
{
	static const char *const dn[][2] = {
		{ "a/b", "a" },      { "b", "." },     { "/b", "/" },
		{ "/", "/" },        { "a/b/", "a" },  { "a//b", "a" },
		{ "", "." },         { "//x", "/" },   { "/etc/moat/moat.yaml", "/etc/moat" },
	};
	static const char *const rs[][3] = {
		{ "/etc/moat", "certs/a.pem", "/etc/moat/certs/a.pem" },
		{ "/etc/moat/", "a.pem", "/etc/moat/a.pem" },
		{ "/etc/moat", "/abs/a.pem", "/abs/a.pem" },
		{ ".", "a.pem", "./a.pem" },
		{ "", "a.pem", "a.pem" },
	};
	size_t i;

	for (i = 0; i < sizeof(dn) / sizeof(dn[0]); i++) {
		char *got = fs_dirname(dn[i][0]);

		assert_string_equal(got, dn[i][1]);
		free(got);
	}
	for (i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
		char *got = fs_resolve(rs[i][0], rs[i][1]);

		assert_string_equal(got, rs[i][2]);
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(write_atomic_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(write_atomic_mode_ignores_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(write_atomic_large, setup, teardown),
		cmocka_unit_test_setup_teardown(write_atomic_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(write_atomic_rename_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_private_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_private_tightens, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_private_file_in_the_way, setup, teardown),
		cmocka_unit_test_setup_teardown(read_file_limits, setup, teardown),
		cmocka_unit_test(read_file_grows_past_fstat_size),
		cmocka_unit_test(resolve_and_dirname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
