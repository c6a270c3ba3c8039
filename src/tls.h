/*
 * tls.h - one SSL_CTX per site, chosen by SNI; TLS 1.2/1.3 with Mozilla's
 * "intermediate" cipher suites; ALPN http/1.1.
 *
 * A struct tls_sites belongs to one configuration generation (worker.c):
 * built on the control thread, then only read (SSL_new) by workers until the
 * generation's last reference goes away. OpenSSL's SSL_CTX is safe to share.
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct conf;
struct conf_site;
struct tls_sites;

/*
 * Build the contexts for every site of c: for tls: internal, make sure the
 * internal CA and the site's certificate exist in c->data (pki.c); for
 * files, load and check the pair. Returns NULL after logging every problem
 * (which file, why, how to fix). Control thread. Caller frees.
 */
struct tls_sites *tls_sites_new(const struct conf *c);

/* NULL is a no-op. Any thread, once no SSL made from it is in use. */
void tls_sites_free(struct tls_sites *t);

/* A new server-side SSL object (accept state) whose SNI callback selects
 * the site's context. Caller frees with SSL_free. Any thread. */
SSL *tls_sites_new_ssl(struct tls_sites *t);

struct tls13_secrets;

/* Have the handshake's application traffic secrets copied into sec (for
 * tls13_take_over); sec must outlive the handshake or be detached with
 * NULL. Owning worker only. */
void tls_capture_secrets(SSL *ssl, struct tls13_secrets *sec);

/* The site the handshake selected (SNI, or the default site); NULL before
 * the ClientHello was processed. */
const struct conf_site *tls_site_of(const SSL *ssl);

/*
 * Check that cert_file holds a certificate chain and key_file a private key
 * that matches it, without keeping them. On failure returns a negative code
 * and *why is a heap string naming the file and the reason (caller frees).
 */
int tls_check_pair(const char *cert_file, const char *key_file, char **why);

/* True when an internal-CA certificate in t has less than a third of its
 * lifetime left at time now (seconds since the epoch), so a generation
 * built now would carry a renewed one. */
bool tls_sites_need_renewal(const struct tls_sites *t, long long now);

/* The certificate site s of t's configuration is served with (borrowed,
 * valid while t is). */
X509 *tls_site_cert(const struct tls_sites *t, const struct conf_site *s);

/* Whether s (an ACME site) is served the internal CA's stand-in because
 * it has no usable ACME certificate yet. */
bool tls_site_is_placeholder(const struct tls_sites *t, const struct conf_site *s);

/* After a finished handshake: whether it answered an ACME TLS-ALPN-01
 * challenge (ALPN acme-tls/1, chosen only while one is published; logged
 * with peer), so the connection carries nothing more and is closed. */
bool tls_is_acme_challenge(SSL *ssl, const char *peer);

struct client_trust;
struct client_id;

/* The client CA trust of a site of t's configuration; NULL for clients: off. */
const struct client_trust *tls_site_trust(const struct tls_sites *t, const struct conf_site *s);

/* After a finished handshake for site s: the client certificate presented,
 * judged (clientcert.h); NULL when the site asks for none or none came.
 * Caller frees with client_id_free. */
struct client_id *tls_client_id(const struct tls_sites *t, const struct conf_site *s, SSL *ssl);

#endif
