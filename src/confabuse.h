/*
 * confabuse.h - the keys that keep abusers out (docs/config.md, "Abuse
 * control"): at the top level trusted_proxies, never_ban and
 * client_ip_header; in a site limit, path_limits and ban. conf.c owns the
 * rest of the schema and hands the fields over; limits and timeouts keep
 * their new entries in conf.c with the others.
 * Thread: control thread.
 */
#ifndef MOAT_CONFABUSE_H
#define MOAT_CONFABUSE_H

#include "confdoc.h"
#include "guard_limit.h"

struct conf;
struct conf_site;

#define CONFABUSE_ROOT_KEYS "trusted_proxies", "never_ban", "client_ip_header"
#define CONFABUSE_NROOT 3
#define CONFABUSE_SITE_KEYS "limit", "path_limits", "ban"
#define CONFABUSE_NSITE 3

/* The defaults before the file is read: never_ban 127.0.0.1 and ::1. */
void confabuse_defaults(struct conf *c);

/* Read the top-level fields f[CONFABUSE_NROOT] (zeroed when absent) into c. */
void confabuse_root(struct confdoc *d, const struct confdoc_field *f, struct conf *c);

/* Read a site's fields f[CONFABUSE_NSITE] into s. */
void confabuse_site(struct confdoc *d, const struct confdoc_field *f, struct conf_site *s);

/* "20/s", "20/s burst 40", "5/m", "100/h burst 10", "1000/d". Returns 0 or
 * MOAT_EINVAL (the caller says what is valid). */
int confabuse_rate(const char *t, struct rate *r);

/* Free what confabuse_* stored. NULL-safe. */
void confabuse_free_site(struct conf_site *s);
void confabuse_free(struct conf *c);

#endif
