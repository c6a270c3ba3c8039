/*
 * testfs.h - file helpers the unit tests of modules that write files share
 * (pki, ca, fsutil). Include after <cmocka.h>; header-only, static inline,
 * because each test program is one translation unit.
 */
#ifndef MOAT_TESTFS_H
#define MOAT_TESTFS_H

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

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

#endif
