/*
 * uri.h - one canonical form for request hosts and paths, decided before any
 * routing or policy runs.
 * Thread: pure functions; safe from any thread. No allocation.
 */
#ifndef MOAT_URI_H
#define MOAT_URI_H

#include <stddef.h>

/*
 * Canonicalise a Host header value or authority ("Name.Example.:8443",
 * "[::1]:80", "127.0.0.1"): lowercase, trailing dot removed, port split off.
 * Writes the host (no port, IPv6 keeps its brackets) NUL-terminated into
 * out[outsz]; *port is the port or 0 when absent.
 * Returns 0, or MOAT_EPROTO for an empty host, a character outside
 * [a-z0-9._-] in a name, an empty label, a bad IP literal, userinfo, or a
 * port that is not 1-65535; MOAT_ETOOBIG when it does not fit.
 */
int uri_canon_host(const char *in, size_t n, char *out, size_t outsz, int *port);

/*
 * Canonicalise an origin-form target (path and optional query) into out
 * (outsz >= n + 1 always suffices; output is NUL-terminated, *outlen set).
 * Path: percent-escapes must be %HH; escapes of unreserved characters are
 * decoded, others upper-cased; "//" collapses to "/"; "." and ".." segments
 * are removed (never above the root). Refused with MOAT_EPROTO, because they
 * could mean two things to the upstream: %2F, %5C, %00, a backslash, a
 * dot-segment spelled with escapes (%2e%2e), a dot-segment followed by ';'
 * ("..;"), '#', controls, space and non-ASCII bytes.
 * The query (from the first '?') is copied unchanged after checking it holds
 * only visible ASCII other than '#'.
 */
int uri_normalize_target(const char *in, size_t n, char *out, size_t outsz, size_t *outlen);

/* Value of a hexadecimal digit (either case), or -1. */
int uri_hex_value(unsigned char c);

#endif
