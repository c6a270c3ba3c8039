/*
 * testfs.h - file helpers the unit tests of modules that write files share
 * (pki, ca, fsutil). Include after <cmocka.h>; header-only, static inline,
 * because each test program is one translation unit.
 */
#ifndef MOAT_TESTFS_H
#define MOAT_TESTFS_H

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "util.h"

static inline int testfs_rm_entry(const char *path, const struct stat *st, int flag,
				  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm -rf dir (a test's temp dir). */
static inline void testfs_rm_tree(const char *dir)
{
	nftw(dir, testfs_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The whole file (at most 1 MiB), NUL-terminated; caller frees. */
static inline char *testfs_slurp(const char *path)
{
	char *buf = NULL;
	size_t len;

	assert_int_equal(fs_read_file(path, 1 << 20, &buf, &len), 0);
	return buf;
}

/* Asserting in octal makes a mode mismatch readable. */
static inline void testfs_assert_mode(const char *path, unsigned want)
{
	struct stat st;
	char got_s[16], want_s[16];

	assert_int_equal(stat(path, &st), 0);
	snprintf(got_s, sizeof(got_s), "%04o", (unsigned)(st.st_mode & 07777));
	snprintf(want_s, sizeof(want_s), "%04o", want);
	if (strcmp(got_s, want_s) != 0)
		fail_msg("%s: mode %s, want %s", path, got_s, want_s);
}

/* Write data[0..len) to path (a test fixture; not atomic). */
static inline void testfs_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* stdout (and whatever the command redirects there) of a shell command
 * formatted like printf: the independent checkers (openssl, python3) the
 * crypto tests compare against. Caller frees. */
static inline char *testfs_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *testfs_run(const char *fmt, ...)
{
	size_t cap = 4096, n = 0, got;
	char *buf = xmalloc(cap), cmd[2048];
	va_list ap;
	FILE *f;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_true(len > 0 && (size_t)len < sizeof(cmd));
	f = popen(cmd, "r");
	assert_non_null(f);
	for (;;) {
		got = fread(buf + n, 1, cap - 1 - n, f);
		if (got == 0)
			break;
		n += got;
		if (n == cap - 1) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	buf[n] = '\0';
	pclose(f);
	return buf;
}

/* A temp dir with a checker script (python3, run by the test) and the
 * files a test hands it: the object under test, its public key, what the
 * checker should find. */
struct testfs_checker {
	char dir[64];
	char script[96];
	char file[96];
	char pub[96];
	char expect[96];
};

/* name: a word for the temp dir; script: the checker's source. NULL when
 * the directory cannot be made. Free with testfs_checker_free. */
static inline struct testfs_checker *testfs_checker_new(const char *name, const char *script)
{
	struct testfs_checker *c = xcalloc(1, sizeof(*c));

	snprintf(c->dir, sizeof(c->dir), "/tmp/moat-test-%s-XXXXXX", name);
	if (mkdtemp(c->dir) == NULL) {
		free(c);
		return NULL;
	}
	snprintf(c->script, sizeof(c->script), "%s/check.py", c->dir);
	snprintf(c->file, sizeof(c->file), "%s/file", c->dir);
	snprintf(c->pub, sizeof(c->pub), "%s/pub.pem", c->dir);
	snprintf(c->expect, sizeof(c->expect), "%s/expect", c->dir);
	testfs_write(c->script, script, strlen(script));
	return c;
}

static inline void testfs_checker_free(struct testfs_checker *c)
{
	testfs_rm_tree(c->dir);
	free(c);
}

#endif
