/*
 * admincli.h - the CLI's end of the admin socket (admin.h): one request,
 * one answer; and the human-readable tables that `moat ban` and `moat
 * status` both print from an answer.
 * Thread: main thread of a CLI command (blocking I/O).
 */
#ifndef MOAT_ADMINCLI_H
#define MOAT_ADMINCLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Send req to the daemon on <data>/admin.sock and read its answer.
 * Returns 0 with *ans (new reference; it may say "ok": false),
 * MOAT_ENOTFOUND when no daemon answers there (no socket file, or the
 * connection is refused: a socket left by a killed daemon), or MOAT_EIO
 * with *why a heap sentence (caller frees): permission denied, a timeout,
 * an answer that is not JSON.
 */
int admincli_call(const char *data, json_t *req, json_t **ans, char **why);

/*
 * When no daemon answered: take the data directory's lock (banfile.h) so
 * the files can be used without one. Returns the lock descriptor (close it
 * to release); MOAT_ENOTFOUND when data does not exist; MOAT_EEXIST when a
 * process holds the lock although nothing answers on the socket (a daemon
 * still starting, or hung), after printing so with its pid and the socket
 * path, prefixed with "moat CMD: "; or MOAT_EIO (logged).
 */
int admincli_offline_lock(const char *cmd, const char *data);

/* "45s", "59m 3s", "2h 5m", "6d 23h" into buf[cap]; returns buf. */
char *admincli_duration(int64_t s, char *buf, size_t cap);

/* A table of bans as banop_json_list makes them: ADDRESS, UNTIL (UTC),
 * REMAINING, REASON; each line starts with indent. */
void admincli_print_bans(FILE *f, json_t *list, const char *indent);

#endif
