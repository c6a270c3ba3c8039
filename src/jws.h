/*
 * jws.h - the JSON Web Signature pieces an ACME client (RFC 8555) needs:
 * base64url, the public JWK of an ECDSA P-256 account key and its RFC 7638
 * thumbprint, key authorizations, and flattened ES256 JWS requests.
 *
 * Only ECDSA P-256 (ES256) keys are supported; every function taking a key
 * rejects (logs, returns NULL) any other kind.
 * Ownership: keys and strings passed in are borrowed; returned strings are
 * fresh heap strings the caller frees. Small allocations abort on OOM.
 * Thread: every function is safe from any thread (no shared state).
 */
#ifndef MOAT_JWS_H
#define MOAT_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

/* Whether key is an EC key on the P-256 curve (public or private). */
bool jws_key_is_p256(EVP_PKEY *key);

/* p[0..n) as base64url without padding (RFC 7515 section 2). Never NULL;
 * caller frees. p may be NULL when n is 0. */
char *jws_b64url(const void *p, size_t n);

/*
 * Decode unpadded base64url. Strict: '=' padding, characters outside the
 * URL-safe alphabet, an impossible length and non-zero leftover bits are all
 * MOAT_EINVAL (not logged). On success *out is a heap buffer of *n bytes plus
 * a NUL terminator (for convenience; caller frees); on failure *out is NULL.
 */
int jws_b64url_decode(const char *s, unsigned char **out, size_t *n);

/*
 * The public JWK of a P-256 key, compact, members in lexicographic order:
 * {"crv":"P-256","kty":"EC","x":"...","y":"..."} with x and y as 32-byte
 * big-endian coordinates (left-padded with zeros). This exact string is the
 * RFC 7638 thumbprint input. NULL on failure (logged); caller frees.
 */
char *jws_jwk(EVP_PKEY *key);

/* RFC 7638 thumbprint: base64url(SHA-256(jws_jwk(key))). NULL on failure
 * (logged); caller frees. */
char *jws_thumbprint(EVP_PKEY *key);

/* RFC 8555 section 8.1 key authorization: token "." thumbprint(account_key).
 * NULL on failure (logged); caller frees. */
char *jws_key_authorization(const char *token, EVP_PKEY *account_key);

/*
 * An RFC 8555 section 6.2 request body: the flattened JWS JSON serialization
 * {"protected":"..","payload":"..","signature":".."} signed with ES256 by
 * key. The protected header carries alg, nonce, url and either "kid" (when
 * kid is not NULL: an existing account) or "jwk" (when kid is NULL: new
 * account, or revocation by certificate key). payload is the JSON text to
 * send; "" makes a POST-as-GET (empty payload member). The signature is the
 * 64-byte r||s form JWS requires, not DER.
 * NULL on failure (logged); caller frees.
 */
char *jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
	       const char *payload);

#endif
