/*
 * acmed.h - the ACME thread: keeps every `tls: acme` site's certificate
 * obtained and renewed (docs/internals/acme.md).
 *
 * It sleeps until the next certificate is due (missing, inside its
 * renewal window, or retrying after a failure), orders it (acme_order.h)
 * and, once a new certificate is installed, calls `changed` so the control
 * thread rebuilds the TLS contexts (gen_renew): new connections get the new
 * certificate, open ones keep theirs. At most ACMED_ORDERS_PER_MIN new
 * orders are placed a minute, whatever the number of sites.
 *
 * Ownership: acmed_start takes a reference on the generation it is given
 * (and each one acmed_reconfigure hands it), dropped when replaced or at
 * acmed_stop.
 * Thread: acmed_* from the control thread; `changed` is called on the ACME
 * thread and must only signal (uv_async_send).
 */
#ifndef MOAT_ACMED_H
#define MOAT_ACMED_H

#include <jansson.h>

#define ACMED_ORDERS_PER_MIN 10
#define ACMED_WARN_DAYS 7

struct acmed;
struct conf;
struct gen;

/* Before the TLS contexts of c are built: finish or undo certificate
 * installs a crash cut short (certstore_recover), so what is served is
 * what the ACME thread will find. Control thread. */
void acmed_prepare(const struct conf *c);

/* Start the thread for g's configuration (it idles without ACME sites).
 * NULL when the thread cannot be started (logged). */
struct acmed *acmed_start(struct gen *g, void (*changed)(void *arg), void *arg);

/* A new configuration (reload) or a renewed generation. */
void acmed_reconfigure(struct acmed *a, struct gen *g);

/* Ask the thread to stop without waiting for it (a signal handler on the
 * control loop); acmed_stop then joins. NULL is a no-op. */
void acmed_signal_stop(struct acmed *a);

/* Stop the thread (an order in flight is abandoned where it stands and
 * resumed at the next start) and free. NULL is a no-op. */
void acmed_stop(struct acmed *a);

/* The certificates of every site of g, as `moat status` shows them: names,
 * source, issuer, not_after, and for ACME sites next_renewal, state,
 * last_error, challenge. a may be NULL. Caller json_decref. */
json_t *acmed_status(struct acmed *a, struct gen *g);

#endif
