/*
 * confacme.h - the keys of automatic HTTPS (docs/config.md, "Certificates"):
 * a site's `tls` (auto, internal, acme, { acme: CHALLENGE }, { cert, key }),
 * the top-level `acme` section (account, directory, DNS-01 provider,
 * renewal) and `ddns` (DuckDNS updater). conf.c owns the rest of the
 * schema and hands the fields over.
 * Thread: control thread.
 */
#ifndef MOAT_CONFACME_H
#define MOAT_CONFACME_H

#include "confdoc.h"

struct conf;
struct conf_site;

#define CONFACME_ROOT_KEYS "acme", "ddns"
#define CONFACME_NROOT 2

#define CONFACME_LE_DIRECTORY "https://acme-v02.api.letsencrypt.org/directory"
#define CONFACME_DUCKDNS_URL "https://www.duckdns.org/update"
#define CONFACME_URL_MAX 255 /* longest acme.directory (certstore.h keeps it) */

/* The defaults before the file is read. */
void confacme_defaults(struct conf *c);

/* Read the top-level fields f[CONFACME_NROOT] (zeroed when absent) into c;
 * dir resolves relative paths. */
void confacme_root(struct confdoc *d, const char *dir, const struct confdoc_field *f,
		   struct conf *c);

/* A site's tls value n (NULL when the site has none: tls: auto). */
void confacme_site(struct confdoc *d, const char *dir, const yaml_node_t *n,
		   struct conf_site *s);

/* After every section was read: what ACME sites need (a DNS provider for
 * wildcards and DNS-01, a listener for HTTP-01) is there. */
void confacme_check(struct confdoc *d, const struct conf *c);

/* Whether `tls: auto` keeps host on the internal CA: localhost, IP
 * addresses, single labels and the private-use names (.local, .internal,
 * .test, .home.arpa, .lan, ...). host is canonical (lowercase). */
bool confacme_is_private_name(const char *host);

/* Free what confacme_* stored. */
void confacme_free(struct conf *c);

#endif
