/*
 * clientcert.h - client certificates: the trust a site places in one or
 * more CAs (moat's own client CA, or a PEM file of another CA with its
 * CRL), and the identity a client proved in its handshake.
 *
 * The handshake itself never fails over a certificate: OpenSSL is told to
 * accept whatever the client presents (its CertificateVerify signature
 * still proves the client holds the key), and moat judges the certificate
 * here, once per handshake, against the site's current CA set. Time and
 * revocation are judged again on every request, so a certificate that
 * expires or is revoked while a connection is open stops counting at once,
 * and a resumed session (whose certificate comes back from the ticket) is
 * judged exactly like a new one.
 *
 * Ownership: a client_trust belongs to one generation's tls_sites (built
 * on the control thread, read by workers); a client_id belongs to one
 * connection. Thread: client_trust_new on the control thread; the rest from
 * any thread, a client_id from its connection's worker only.
 */
#ifndef MOAT_CLIENTCERT_H
#define MOAT_CLIENTCERT_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct conf_site;
struct client_trust;
struct client_id;

enum client_status {
	CLIENT_OK = 0,
	CLIENT_NONE,          /* no certificate presented */
	CLIENT_UNTRUSTED,     /* not issued by the site's CA (foreign, self-signed, bad chain) */
	CLIENT_WRONG_USAGE,   /* lacks the clientAuth extended key usage */
	CLIENT_NOT_YET_VALID,
	CLIENT_EXPIRED,
	CLIENT_REVOKED,
	CLIENT_CRL_STALE,     /* the CRL is past its nextUpdate: cannot vouch */
};

/*
 * Load the CA certificates (and CRL) the site trusts: every certificate in
 * s->client_ca must be a CA certificate; the CRL must be signed by one of
 * them and current. Returns the trust, or NULL with *why (heap, caller
 * frees) naming the file, the problem and how to fix it.
 */
struct client_trust *client_trust_new(const struct conf_site *s, char **why);

/* NULL is a no-op. */
void client_trust_free(struct client_trust *t);

/* Make ctx ask for a client certificate naming the trusted CAs, and leave
 * the verdict to client_id_new. Returns 0 or MOAT_ETLS. */
int client_trust_setup(const struct client_trust *t, SSL_CTX *ctx);

/* The certificate the client of a finished handshake presented, judged
 * against t; NULL when it presented none. Caller frees with
 * client_id_free. */
struct client_id *client_id_new(SSL *ssl, const struct client_trust *t);

/* NULL is a no-op. */
void client_id_free(struct client_id *id);

/* The certificate's standing now (time and revocation included). id may
 * be NULL (CLIENT_NONE). Cheap: a read lock and a binary search per
 * certificate of the chain. */
enum client_status client_id_status(struct client_id *id, const struct client_trust *t);

/* Did the handshake find it issued by the site's CA for client use (so its
 * name can be believed), whatever its standing now? */
bool client_id_verified(const struct client_id *id);

/* Was it valid once and is no longer: expired, revoked, or its CRL went
 * out of date. */
bool client_id_lapsed(struct client_id *id, const struct client_trust *t);

/* Its common name ("" when none); valid while id lives. */
const char *client_id_name(const struct client_id *id);

/* Subject in RFC 4514 form, non-ASCII escaped, or NULL when it could not
 * be written safely as a header value. */
const char *client_id_subject(const struct client_id *id);

/* SHA-256 of the certificate (DER), 64 lowercase hex digits. */
const char *client_id_fingerprint(const struct client_id *id);

/* Serial number in uppercase hex (for logs). */
const char *client_id_serial(const struct client_id *id);

/* "ok", "no-cert", "untrusted", "wrong-usage", "not-yet-valid", "expired",
 * "revoked", "crl-stale". */
const char *client_status_name(enum client_status s);

#endif
