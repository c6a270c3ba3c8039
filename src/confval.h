/*
 * confval.h - the value layer of the configuration: parsers for single
 * strings (durations, sizes, counts, booleans, site names, listen addresses
 * and upstream URLs) and the paths the configuration names.
 * conf.c owns the schema (which keys exist where and what they mean) and
 * confdoc.c the YAML document (${VAR} expansion, key checks, positioned
 * errors); the parsers here only judge one string, so they are easy to test
 * and fuzz. Those that can fail for several reasons set *why to a heap
 * message (caller frees) that quotes the offending text and says what would
 * be valid.
 * Thread: control thread (the address parsers may block on DNS).
 */
#ifndef MOAT_CONFVAL_H
#define MOAT_CONFVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* "500ms", "10s", "5m", "1h", "7d" -> milliseconds. Zero is returned as 0
 * (callers decide whether it is allowed). Returns 0, MOAT_EINVAL for a
 * malformed value, MOAT_ETOOBIG when it does not fit in 64 bits. */
int confval_duration(const char *s, uint64_t *ms);

/* "32768", "32K", "32KiB", "1M", "1MiB", "2G", "2GiB" (suffix
 * case-insensitive; K and KiB both mean 1024) -> bytes.
 * Returns 0, MOAT_EINVAL or MOAT_ETOOBIG. */
int confval_size(const char *s, uint64_t *bytes);

/* Decimal digits only, value <= max. Returns 0, MOAT_EINVAL or MOAT_ETOOBIG. */
int confval_uint(const char *s, uint64_t max, uint64_t *v);

/* "true" / "false". Returns 0 or MOAT_EINVAL. */
int confval_bool(const char *s, bool *v);

/*
 * Canonical site name: lowercase, trailing dot stripped, labels of
 * [a-z0-9-_], optional "*." as the whole first label; IPv4 literals as is,
 * IPv6 literals ("::1" or "[::1]") as "[::1]" (the form uri_canon_host
 * gives for Host headers). On success *out is a heap string.
 * Returns 0 or MOAT_EINVAL with *why set.
 */
int confval_site_name(const char *in, char **out, char **why);

/*
 * A listen address: "HOST:PORT", ":PORT" (all addresses: [::] dual-stack),
 * "[v6]:PORT", or "NAME:PORT" (resolved; one entry per distinct address the
 * host can bind). Appends to the heap array *addrs / *n (caller frees each
 * text and the array). Returns 0 or MOAT_EINVAL with *why set.
 */
int confval_listen(const char *s, struct conf_addr **addrs, size_t *n,
		   char **why);

/*
 * An upstream URL "http://HOST[:PORT][/]". Fills url, hostport and the
 * first resolved address of *up (heap strings; caller frees).
 * Returns 0 or MOAT_EINVAL with *why set; *up is untouched on failure.
 */
int confval_upstream(const char *s, struct conf_upstream *up, char **why);

/* Same socket address (family, address and port)? */
bool confval_addr_is_same(const struct conf_addr *a, const struct conf_addr *b);

/* Would binding both collide: same port and the same or a wildcard address? */
bool confval_addr_overlaps(const struct conf_addr *a, const struct conf_addr *b);

/* Set a->text to the printable form "127.0.0.1:80" / "[::1]:80" (heap). */
void confval_addr_set_text(struct conf_addr *a);

/* ---- paths ---------------------------------------------------------------- */

/* dir/p for a relative p, else p; "." segments and doubled slashes removed.
 * Heap string. */
char *confval_path(const char *dir, const char *p);

/* dir made absolute against the working directory ("." when NULL or
 * empty). Heap string. */
char *confval_abs_dir(const char *dir);

/* An existing regular file this process can open for reading (the contents
 * are checked by whoever loads it). Returns 0, or a negative code with *why
 * naming what, the path and the reason (heap; caller frees). */
int confval_check_readable(const char *what, const char *path, char **why);

#endif
