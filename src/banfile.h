/*
 * banfile.h - the bans on disk: <data>/bans.json, written whole to a temp
 * file, fsynced and renamed (fsutil.h), so a crash or kill -9 leaves the
 * old list or the new one. Also the data directory's lock, held by the
 * running daemon and taken briefly by `moat ban` when it edits the file
 * with no daemon running.
 *
 * File format (docs/config.md, "Bans"):
 *   {"version":1,"bans":[{"address":"192.0.2.7","since":1700000000,
 *     "until":1700003600,"reason":"..."}, ...]}
 * "address" is the client key as cidr_format writes it ("2001:db8::/64").
 * Thread: control thread (blocking file I/O).
 */
#ifndef MOAT_BANFILE_H
#define MOAT_BANFILE_H

#include <stddef.h>
#include <stdint.h>

#include "guard_ban.h"

#define BANFILE_NAME "bans.json"
#define BANFILE_LOCK_NAME "moat.lock"

/* <data>/bans.json; heap string. */
char *banfile_path(const char *data);

/* <data>/moat.lock; heap string. */
char *banfile_lock_path(const char *data);

/*
 * Read the file. A missing file is an empty list. Returns 0 with a heap
 * array (caller frees), or MOAT_EINVAL / MOAT_EIO with *why a heap message
 * naming the file, the entry and field ("bans[3].until") and how to fix it
 * (caller frees). Entries already expired at now are dropped.
 * Every entry is held to what moat writes itself, so a hand-edited file
 * cannot put absurd dates or terminal escapes in front of an operator:
 * 0 <= since <= now + 1 day; since < until <= now + BANOP_FOR_MAX + 1 day
 * (the day is clock skew); reason (optional, may be empty) at most
 * BAN_REASON_MAX - 1 bytes and no control characters (bytes < 0x20, 0x7f).
 */
int banfile_read(const char *path, int64_t now, struct ban **out, size_t *n, char **why);

/* Replace the file with b[0..n) (mode 0600; when root writes it, it is
 * given to the data directory's owner, so a daemon running as that user
 * can still read it). Returns 0 or MOAT_EIO (logged). */
int banfile_write(const char *path, const struct ban *b, size_t n);

/*
 * Take the data directory's lock (<data>/moat.lock, flock): exclusive and
 * without waiting. Returns the held descriptor (>= 0; close it to release),
 * MOAT_EEXIST when another process holds it, or MOAT_EIO (logged).
 * The holder's pid is written into the file for banfile_lock_holder. Each
 * call opens the file anew, so two calls in one process exclude each other
 * too. The directory must exist (it is not created here).
 */
int banfile_lock(const char *data);

/* The pid recorded by the lock's holder, or 0 when unknown. Only for
 * messages: the pid may be stale once the holder has exited. */
long banfile_lock_holder(const char *data);

#endif
