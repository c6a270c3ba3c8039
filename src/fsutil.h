/*
 * fsutil.h - files the daemon owns: private directories and atomic writes.
 * Every state file is written to a temp file in the same directory, fsynced,
 * renamed over the target, and the directory fsynced, so a crash or kill -9
 * at any moment leaves either the old or the new file, never a torn one.
 * Thread: safe from any thread (no shared state). Blocking: control thread.
 */
#ifndef MOAT_FSUTIL_H
#define MOAT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Atomically replace path with data[0..len) with the given mode.
 * Returns 0 or MOAT_EIO (logged with the path and errno). */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* rename(from, to), then fsync to's directory. Returns 0 or MOAT_EIO
 * (logged). */
int fs_rename_durable(const char *from, const char *to);

/* mkdir -p; the final directory gets mode 0700 (fixed if it exists looser).
 * Returns 0 or MOAT_EIO. */
int fs_mkdir_private(const char *path);

/* Read a whole file of at most max bytes into a NUL-terminated heap buffer
 * (caller frees; wipe it if it held a secret). Returns 0, MOAT_EIO, or
 * MOAT_ETOOBIG when the file is larger than max. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);

/* "a/b" for a relative b, else b itself; returns a heap string. */
char *fs_resolve(const char *base_dir, const char *p);

/* Directory part of a path ("." when none); heap string. */
char *fs_dirname(const char *path);

#endif
