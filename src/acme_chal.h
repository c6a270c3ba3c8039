/*
 * acme_chal.h - the ACME challenges moat is answering right now: HTTP-01
 * (RFC 8555 8.3) key authorizations by (host, token), and TLS-ALPN-01
 * (RFC 8737) server contexts by host.
 *
 * One process-wide store: the ACME thread publishes a challenge before it
 * tells the CA to validate and withdraws it afterwards; workers look it up
 * on the rare requests and handshakes that ask for one (proxy.c for
 * /.well-known/acme-challenge/, tls.c for ClientHellos offering
 * "acme-tls/1"). A mutex guards it; it holds at most ACME_CHAL_MAX entries
 * of each kind. It does not belong to a configuration generation, so a
 * challenge survives a reload.
 * Thread: every function is safe from any thread.
 */
#ifndef MOAT_ACME_CHAL_H
#define MOAT_ACME_CHAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#define ACME_CHAL_MAX 256          /* pending challenges of each kind */
#define ACME_CHAL_HOST_MAX 253     /* longest host name */
#define ACME_CHAL_TOKEN_MAX 128    /* longest HTTP-01 token (base64url) */
#define ACME_CHAL_KEYAUTH_MAX 256  /* longest key authorization */
#define ACME_CHAL_PREFIX "/.well-known/acme-challenge/"
#define ACME_TLS_ALPN "acme-tls/1" /* RFC 8737's ALPN protocol name */

/*
 * Publish an HTTP-01 answer: a GET for ACME_CHAL_PREFIX token on host is
 * answered with key_authorization. host is a canonical lowercase name (no
 * port, no "*."), token 1..ACME_CHAL_TOKEN_MAX base64url characters,
 * key_authorization 1..ACME_CHAL_KEYAUTH_MAX base64url characters and '.'.
 * Replaces the answer of an existing (host, token). Strings are copied.
 * Returns 0, MOAT_EINVAL (a malformed argument) or MOAT_ENOMEM (the store
 * holds ACME_CHAL_MAX HTTP-01 answers already).
 */
int acme_chal_http_put(const char *host, const char *token, const char *key_authorization);

/* Withdraw (host, token); absent is a no-op. */
void acme_chal_http_del(const char *host, const char *token);

/*
 * Copy the key authorization published for (host, token), NUL-terminated,
 * into out[0..cap). False when none is published or it does not fit (out
 * is then the empty string when cap > 0).
 */
bool acme_chal_http_get(const char *host, const char *token, char *out, size_t cap);

/*
 * The token of a normalized request path that is exactly ACME_CHAL_PREFIX
 * followed by 1..ACME_CHAL_TOKEN_MAX base64url characters (so no query,
 * no further segment); a pointer into path, or NULL.
 */
const char *acme_chal_http_token(const char *path);

/*
 * Publish a TLS-ALPN-01 certificate for host (canonical lowercase, no
 * "*."; RFC 8737 6 rules out wildcards): a ClientHello naming host and
 * offering "acme-tls/1" is then answered with cert and key, which become a
 * server context of their own (TLS 1.2 and 1.3, no client certificate, no
 * session tickets, ALPN "acme-tls/1" or no_application_protocol). Takes
 * ownership of cert and key, also on failure. Replaces the certificate of
 * an existing host (connections in progress keep the old one).
 * Returns 0, MOAT_EINVAL (bad host, no cert or key), MOAT_ETLS (OpenSSL
 * refused the pair; logged) or MOAT_ENOMEM (ACME_CHAL_MAX hosts already).
 */
int acme_chal_alpn_put(const char *host, X509 *cert, EVP_PKEY *key);

/* Withdraw host's TLS-ALPN-01 certificate; absent is a no-op. */
void acme_chal_alpn_del(const char *host);

/* The TLS-ALPN-01 context published for host, refcount +1 (caller
 * SSL_CTX_free), or NULL. */
SSL_CTX *acme_chal_alpn_ctx(const char *host);

/* True when the wire-format ALPN list in[0..len) (RFC 7301 3.1
 * ProtocolNameList without its length prefix) names "acme-tls/1". */
bool acme_chal_has_alpn(const unsigned char *in, size_t len);

/* Withdraw every challenge of both kinds (shutdown, tests). */
void acme_chal_clear(void);

#endif
