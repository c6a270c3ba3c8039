/*
 * confaccess.h - the keys of a site that decide who may enter: clients,
 * client_ca, crl and public (docs/config.md, "Client certificates").
 * conf.c owns the rest of the schema and calls this for one site once its
 * other keys are read. The CA and CRL files are only checked to exist here;
 * clientcert.c loads and judges their contents when TLS is set up.
 * Thread: control thread.
 */
#ifndef MOAT_CONFACCESS_H
#define MOAT_CONFACCESS_H

#include "confdoc.h"

#include <stdbool.h>

struct conf_site;

/* The keys, in the order confaccess_site expects their fields. */
#define CONFACCESS_KEYS "clients", "client_ca", "crl", "public"
#define CONFACCESS_NKEYS 4

/* Where moat's own client CA keeps its files (heap strings). */
char *confaccess_moat_ca(const char *data);
char *confaccess_moat_crl(const char *data);

/*
 * Read f[CONFACCESS_NKEYS] (fields from confdoc_fields, zeroed when a key
 * is absent) into s. site_key is the site's name node (for errors that
 * concern the site as a whole), dir resolves relative paths, data is the
 * data directory and conf_file names the configuration in hints. Without
 * need_moat_ca, moat's own client CA files are not required to exist yet
 * (moat ca creates them). Errors are recorded in d.
 */
void confaccess_site(struct confdoc *d, const char *dir, const char *data,
		     const char *conf_file, bool need_moat_ca,
		     const struct confdoc_field *f, struct conf_site *s);

/* Free what confaccess_site stored in s. */
void confaccess_free(struct conf_site *s);

#endif
