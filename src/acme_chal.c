/*
 * acme_chal.c - see acme_chal.h.
 *
 * Two fixed tables under one mutex. Lookups are linear: a table holds a
 * handful of entries while an order is being validated and is empty the
 * rest of the time, and only requests under ACME_CHAL_PREFIX and
 * ClientHellos offering "acme-tls/1" ever look.
 *
 * A TLS-ALPN-01 context is shared by reference: a handshake that switched
 * to it holds its own reference (SSL_set_SSL_CTX), so withdrawing or
 * replacing a challenge never pulls a context from under a connection.
 */
#include "acme_chal.h"
#include "log.h"
#include "util.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct http_chal {
	char *host;
	char *token;
	char *keyauth;
};

struct alpn_chal {
	char *host;
	SSL_CTX *ctx;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct http_chal http[ACME_CHAL_MAX];
static size_t nhttp;
static struct alpn_chal alpn[ACME_CHAL_MAX];
static size_t nalpn;

/* Distinct from every site's (a 32-byte digest, tls.c), so a session made
 * elsewhere is never resumed on a challenge context. */
static const unsigned char ACME_SID_CTX[] = "moat acme-tls/1";

static bool is_b64url(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

/* 1..max characters, each accepted by ok or equal to extra (0: none). */
static bool valid_str(const char *s, size_t max, bool (*ok)(unsigned char), char extra)
{
	size_t n;

	if (s == NULL)
		return false;
	for (n = 0; s[n] != '\0'; n++)
		if (n >= max || !(ok((unsigned char)s[n]) || (extra != 0 && s[n] == extra)))
			return false;
	return n > 0;
}

/* A canonical host as uri_canon_host writes it (lowercase name, IPv4, or
 * bracketed IPv6); never a wildcard. */
static bool is_host_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
	       ch == '_' || ch == ':' || ch == '[' || ch == ']';
}

static bool valid_host(const char *host)
{
	return valid_str(host, ACME_CHAL_HOST_MAX, is_host_char, 0);
}

bool acme_chal_has_alpn(const unsigned char *in, size_t len)
{
	static const char want[] = ACME_TLS_ALPN;
	size_t i = 0, l;

	while (i < len) {
		l = in[i];
		if (l == 0 || l > len - i - 1)
			return false; /* malformed: OpenSSL rejects the hello anyway */
		if (l == sizeof(want) - 1 && memcmp(in + i + 1, want, l) == 0)
			return true;
		i += 1 + l;
	}
	return false;
}

const char *acme_chal_http_token(const char *path)
{
	size_t plen = sizeof(ACME_CHAL_PREFIX) - 1;

	if (path == NULL || strncmp(path, ACME_CHAL_PREFIX, plen) != 0)
		return NULL;
	if (!valid_str(path + plen, ACME_CHAL_TOKEN_MAX, is_b64url, 0))
		return NULL;
	return path + plen;
}

/* ---- HTTP-01 ------------------------------------------------------- */

/* Index of (host, token) or -1; mu held. */
static long find_http(const char *host, const char *token)
{
	size_t i;

	for (i = 0; i < nhttp; i++)
		if (strcmp(http[i].host, host) == 0 && strcmp(http[i].token, token) == 0)
			return (long)i;
	return -1;
}

int acme_chal_http_put(const char *host, const char *token, const char *key_authorization)
{
	char *ka;
	long i;
	int rc = 0;

	if (!valid_host(host) || !valid_str(token, ACME_CHAL_TOKEN_MAX, is_b64url, 0) ||
	    !valid_str(key_authorization, ACME_CHAL_KEYAUTH_MAX, is_b64url, '.')) {
		log_error("acme_chal_http_put: malformed challenge for %s",
			  host != NULL ? host : "(null)");
		return MOAT_EINVAL;
	}
	ka = xstrdup(key_authorization);
	pthread_mutex_lock(&mu);
	i = find_http(host, token);
	if (i >= 0) {
		free(http[i].keyauth);
		http[i].keyauth = ka;
		goto out;
	}
	if (nhttp == ACME_CHAL_MAX) {
		free(ka);
		rc = MOAT_ENOMEM;
		goto out;
	}
	http[nhttp].host = xstrdup(host);
	http[nhttp].token = xstrdup(token);
	http[nhttp].keyauth = ka;
	nhttp++;
out:
	pthread_mutex_unlock(&mu);
	if (rc == MOAT_ENOMEM)
		log_error("acme_chal_http_put: %d HTTP-01 challenges are pending already; "
			  "not answering one more for %s", ACME_CHAL_MAX, host);
	return rc;
}

static void free_http(struct http_chal *h)
{
	free(h->host);
	free(h->token);
	free(h->keyauth);
}

void acme_chal_http_del(const char *host, const char *token)
{
	long i;

	if (host == NULL || token == NULL)
		return;
	pthread_mutex_lock(&mu);
	i = find_http(host, token);
	if (i >= 0) {
		free_http(&http[i]);
		http[i] = http[--nhttp]; /* order does not matter */
		memset(&http[nhttp], 0, sizeof(http[nhttp]));
	}
	pthread_mutex_unlock(&mu);
}

bool acme_chal_http_get(const char *host, const char *token, char *out, size_t cap)
{
	bool found = false;
	size_t n;
	long i;

	if (cap > 0)
		out[0] = '\0';
	if (host == NULL || token == NULL)
		return false;
	pthread_mutex_lock(&mu);
	i = find_http(host, token);
	if (i >= 0) {
		n = strlen(http[i].keyauth);
		if (n < cap) {
			memcpy(out, http[i].keyauth, n + 1);
			found = true;
		}
	}
	pthread_mutex_unlock(&mu);
	return found;
}

/* ---- TLS-ALPN-01 --------------------------------------------------- */

/* RFC 8737 3: the server negotiates "acme-tls/1" and nothing else. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char proto[] = ACME_TLS_ALPN;

	if (!acme_chal_has_alpn(in, inlen))
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
	*out = proto;
	*outlen = sizeof(proto) - 1;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * OpenSSL reads a second ClientHello (after HelloRetryRequest) with the
 * callbacks of the context the first one switched to, so a hello reaching
 * this context has not been screened by tls.c: it must still offer
 * "acme-tls/1". The ALPN callback alone would not do, since OpenSSL skips
 * it when the hello has no ALPN extension at all, and the handshake would
 * then end without "acme-tls/1" and be taken for HTTP.
 */
static int hello_check(SSL *ssl, int *alert, void *arg)
{
	const unsigned char *p;
	size_t len;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				      &p, &len) != 1 ||
	    len < 2 || (((size_t)p[0] << 8) | p[1]) != len - 2 ||
	    !acme_chal_has_alpn(p + 2, len - 2)) {
		*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* The context answering the challenge; borrows cert and key (OpenSSL
 * takes references of its own). NULL after logging. */
static SSL_CTX *alpn_ctx_new(const char *host, X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		goto fail;
	/* RFC 8737 4: TLS 1.2 or higher */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		goto fail;
	/* The validator closes right after the handshake: no tickets to
	 * resume with (a resumed handshake would carry no certificate). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			    SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_session_id_context(ctx, ACME_SID_CTX, sizeof(ACME_SID_CTX) - 1) != 1 ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	SSL_CTX_set_client_hello_cb(ctx, hello_check, NULL);
	return ctx;
fail:
	log_tls_error("acme_chal_alpn_put: cannot make a TLS-ALPN-01 context");
	log_error("acme_chal_alpn_put: not answering TLS-ALPN-01 for %s", host);
	SSL_CTX_free(ctx);
	return NULL;
}

/* Index of host or -1; mu held. */
static long find_alpn(const char *host)
{
	size_t i;

	for (i = 0; i < nalpn; i++)
		if (strcmp(alpn[i].host, host) == 0)
			return (long)i;
	return -1;
}

int acme_chal_alpn_put(const char *host, X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *ctx = NULL, *old = NULL;
	long i;
	int rc = 0;

	if (!valid_host(host) || cert == NULL || key == NULL) {
		log_error("acme_chal_alpn_put: malformed challenge for %s",
			  host != NULL ? host : "(null)");
		rc = MOAT_EINVAL;
		goto out;
	}
	ctx = alpn_ctx_new(host, cert, key);
	if (ctx == NULL) {
		rc = MOAT_ETLS;
		goto out;
	}
	pthread_mutex_lock(&mu);
	i = find_alpn(host);
	if (i >= 0) {
		old = alpn[i].ctx;
		alpn[i].ctx = ctx;
	} else if (nalpn < ACME_CHAL_MAX) {
		alpn[nalpn].host = xstrdup(host);
		alpn[nalpn].ctx = ctx;
		nalpn++;
	} else {
		old = ctx; /* freed below, outside the lock */
		rc = MOAT_ENOMEM;
	}
	pthread_mutex_unlock(&mu);
	SSL_CTX_free(old);
	if (rc == MOAT_ENOMEM)
		log_error("acme_chal_alpn_put: %d TLS-ALPN-01 challenges are pending already; "
			  "not answering one more for %s", ACME_CHAL_MAX, host);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

void acme_chal_alpn_del(const char *host)
{
	SSL_CTX *old = NULL;
	char *name = NULL;
	long i;

	if (host == NULL)
		return;
	pthread_mutex_lock(&mu);
	i = find_alpn(host);
	if (i >= 0) {
		name = alpn[i].host;
		old = alpn[i].ctx;
		alpn[i] = alpn[--nalpn];
		memset(&alpn[nalpn], 0, sizeof(alpn[nalpn]));
	}
	pthread_mutex_unlock(&mu);
	free(name);
	SSL_CTX_free(old);
}

SSL_CTX *acme_chal_alpn_ctx(const char *host)
{
	SSL_CTX *ctx = NULL;
	long i;

	if (host == NULL)
		return NULL;
	pthread_mutex_lock(&mu);
	i = find_alpn(host);
	if (i >= 0 && SSL_CTX_up_ref(alpn[i].ctx) == 1)
		ctx = alpn[i].ctx;
	pthread_mutex_unlock(&mu);
	return ctx;
}

void acme_chal_clear(void)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nhttp; i++)
		free_http(&http[i]);
	memset(http, 0, sizeof(http));
	nhttp = 0;
	for (i = 0; i < nalpn; i++) {
		free(alpn[i].host);
		SSL_CTX_free(alpn[i].ctx);
	}
	memset(alpn, 0, sizeof(alpn));
	nalpn = 0;
	pthread_mutex_unlock(&mu);
}
