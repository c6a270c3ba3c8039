/*
 * banop.h - a ban as the operator asks for one (`moat ban add ADDR --for
 * 1h --reason TEXT`), checked the same way whether the daemon applies it
 * (admin.c) or `moat ban` edits the file because no daemon runs
 * (cli_ban.c); and the JSON shape both show a ban in.
 * Thread: pure functions.
 */
#ifndef MOAT_BANOP_H
#define MOAT_BANOP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "guard_ban.h"
#include "netaddr.h"

#define BANOP_FOR_DEFAULT 3600                        /* seconds */
#define BANOP_FOR_MAX ((int64_t)10 * 365 * 86400)     /* 10 years */
#define BANOP_REASON_DEFAULT "added by moat ban add"

/* What may never be banned: never_ban and trusted_proxies. */
struct banop_exempt {
	const struct cidr *never_ban;
	size_t nnever_ban;
	const struct cidr *trusted;
	size_t ntrusted;
};

/* The built-in never_ban (127.0.0.1 and ::1), for `moat ban --data DIR`
 * with no configuration to read. */
struct banop_exempt banop_default_exempt(void);

/* never_ban and trusted_proxies of c (borrowed: valid while c lives), or
 * the built-in never_ban when c is NULL. */
struct conf;
struct banop_exempt banop_exempt_of(const struct conf *c);

/*
 * The client key an operator names: an address ("192.0.2.7", "2001:db8::1",
 * "[2001:db8::1]"; an IPv6 address stands for its /64), or a key as
 * `moat ban list` prints it ("2001:db8::/64", "192.0.2.7/32").
 * Returns 0, or MOAT_EINVAL with *why a heap sentence quoting text and
 * saying what would be valid (caller frees).
 */
int banop_key(const char *text, struct cidr *key, char **why);

/*
 * Build the ban on text's key from now for for_s seconds (1..BANOP_FOR_MAX)
 * with reason (NULL: BANOP_REASON_DEFAULT; at most BAN_REASON_MAX - 1
 * bytes, no control characters). Refuses a key that overlaps never_ban or
 * trusted_proxies. Returns 0, MOAT_EINVAL (bad value) or MOAT_EEXIST
 * (exempt), with *why a heap sentence (caller frees).
 */
int banop_make(const char *text, int64_t for_s, const char *reason, int64_t now,
	       const struct banop_exempt *ex, struct ban *out, char **why);

/* {"address","since","until","remaining","reason"}; new reference. */
json_t *banop_json(const struct ban *b, int64_t now);

/* An array of b[from..n) as banop_json; new reference. */
json_t *banop_json_list(const struct ban *b, size_t from, size_t n, int64_t now);

#endif
