/*
 * acme_order.h - one certificate from an ACME CA, start to finish (RFC
 * 8555 7.4-7.5): place (or resume) the order, answer each authorization's
 * challenge, finalize with a CSR for a fresh P-256 key, download the
 * chain, install it (certstore.h).
 *
 * The order's URL and the future certificate's key are kept in the site's
 * certificate directory (order.json, order.key) from the moment the order
 * exists, so a process killed at any step resumes the same order on its
 * next start instead of placing another.
 * Thread: the ACME thread; blocks on the network and on DNS propagation.
 */
#ifndef MOAT_ACME_ORDER_H
#define MOAT_ACME_ORDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct acme_client;

/* Everything is borrowed for the duration of acme_order_run. */
struct acme_job {
	const char *data;          /* data directory */
	const char *directory;     /* the CA's directory URL (an order of another is dropped) */
	const char *host;          /* the site's name: the certificate's one name */
	enum conf_chal chal;       /* the site's choice */
	bool http, https;          /* which listeners moat has */
	const struct conf_dns *dns; /* the DNS-01 provider (provider NONE: none) */
	const char *ca_roots;
	const char *avoid;         /* a challenge type that just failed, tried last; or NULL */
	const char *replaces;      /* ARI id of the certificate being renewed, or NULL */
	const _Atomic bool *stop;
};

/*
 * Obtain and install a certificate for job. cl has its account set
 * (acme_account). *placed tells whether a new order was asked for (false
 * when an existing one was resumed), whether or not the CA accepted it;
 * chal[cap] gets the challenge type used.
 * Returns 0, or MOAT_EIO with *err (heap) saying what failed.
 */
int acme_order_run(struct acme_client *cl, const struct acme_job *job, bool *placed,
		   char *chal, size_t cap, char **err);

/* Whether an order is in progress for host (order.json exists). */
bool acme_order_pending(const char *data, const char *host);

#endif
