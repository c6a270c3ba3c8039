/*
 * tls.c - see tls.h.
 *
 * Every SSL starts on the "front" context, which carries the protocol,
 * cipher and callback settings (OpenSSL copies those from the context an SSL
 * is created from, not from the one SSL_set_SSL_CTX switches to). The
 * servername callback then switches to the site's context, which carries
 * its certificate and key (and, because OpenSSL reads it from the switched
 * context, the ALPN callback).
 */
#include "tls.h"
#include "tls13.h"
#include "acme_chal.h"
#include "certstore.h"
#include "clientcert.h"
#include "conf.h"
#include "log.h"
#include "pki.h"
#include "uri.h"
#include "util.h"
#include "x509util.h"

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>

/* Mozilla "intermediate" (v5.7): TLS 1.2 AEAD suites with forward secrecy. */
static const char CIPHERS_12[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
	"DHE-RSA-CHACHA20-POLY1305";
static const char SUITES_13[] =
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char GROUPS[] = "X25519:P-256:P-384";
static const unsigned char SESSION_CTX[] = "moat";

struct tls_sites {
	const struct conf *conf;
	SSL_CTX *front;
	SSL_CTX **site_ctx; /* parallel to conf->sites */
	long long *renew_at; /* parallel: when an internal certificate is due (0: never) */
	bool *placeholder;   /* parallel: an ACME site served by the internal CA for now */
	unsigned char (*sid)[SHA256_DIGEST_LENGTH]; /* parallel: session id context */
	unsigned char sid_none[SHA256_DIGEST_LENGTH]; /* for a hello naming no site */
	struct client_trust **trust; /* parallel: NULL for clients: off */
};

static int site_idx = -1;
static int secrets_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void make_idx(void)
{
	site_idx = SSL_get_ex_new_index(0, "moat site", NULL, NULL, NULL);
	secrets_idx = SSL_get_ex_new_index(0, "moat secrets", NULL, NULL, NULL);
}

/* "LABEL <client random, hex> <secret, hex>" into out; returns the length,
 * 0 when the line is not that label or is malformed */
static size_t take_secret(const char *line, const char *label, unsigned char *out)
{
	size_t ll = strlen(label), n = 0;
	const char *p;
	int hi, lo;

	if (strncmp(line, label, ll) != 0 || line[ll] != ' ')
		return 0;
	p = strchr(line + ll + 1, ' ');
	if (p == NULL)
		return 0;
	for (p++; p[0] != '\0' && n < TLS13_MAX_SECRET; p += 2) {
		hi = uri_hex_value((unsigned char)p[0]);
		lo = hi < 0 ? -1 : uri_hex_value((unsigned char)p[1]);
		if (lo < 0)
			return 0;
		out[n++] = (unsigned char)(hi << 4 | lo);
	}
	return p[0] == '\0' ? n : 0;
}

/* OpenSSL hands every secret it derives to this callback; the two
 * application traffic secrets go to the connection (tls13.h), the rest is
 * ignored. Nothing is written anywhere. */
static void keylog_cb(const SSL *ssl, const char *line)
{
	struct tls13_secrets *sec = SSL_get_ex_data(ssl, secrets_idx);
	size_t n;

	if (sec == NULL)
		return;
	n = take_secret(line, "CLIENT_TRAFFIC_SECRET_0", sec->client);
	if (n > 0) {
		sec->client_len = n;
		return;
	}
	n = take_secret(line, "SERVER_TRAFFIC_SECRET_0", sec->server);
	if (n > 0)
		sec->server_len = n;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	unsigned char sellen = 0;

	/* "acme-tls/1" is answered only by a challenge's own context (sni_cb);
	 * a site never completes a handshake that offered it (RFC 8737 4). */
	if (acme_chal_has_alpn(in, inlen))
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
	if (SSL_select_next_proto(&sel, &sellen, h11, sizeof(h11) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	*outlen = sellen;
	return SSL_TLSEXT_ERR_OK;
}

/* Marks an SSL whose ClientHello offered "acme-tls/1": set by hello_cb,
 * read by sni_cb. */
static int acme_idx = -1;
static pthread_once_t acme_once = PTHREAD_ONCE_INIT;
static char acme_mark;

static void make_acme_idx(void)
{
	acme_idx = SSL_get_ex_new_index(0, "moat acme-tls/1", NULL, NULL, NULL);
}

static int acme_index(void)
{
	pthread_once(&acme_once, make_acme_idx);
	return acme_idx;
}

/*
 * A ClientHello offering "acme-tls/1" is a CA validating a TLS-ALPN-01
 * challenge (RFC 8737): it gets the challenge's own context (certificate,
 * ALPN "acme-tls/1", no client certificate request, no ticket) when one is
 * pending for the name it sends, else no_application_protocol; never a
 * site's certificate. A name that only a "*." site answers is never
 * validated this way (RFC 8737 6 excludes wildcards). host is NULL when the
 * hello named nothing usable.
 */
static int acme_switch(SSL *ssl, const char *host, const struct conf_site *site, int *alert)
{
	SSL_CTX *ctx = NULL;

	if (host != NULL && (site == NULL || strncmp(site->host, "*.", 2) != 0))
		ctx = acme_chal_alpn_ctx(host);
	if (ctx == NULL) {
		*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (SSL_set_SSL_CTX(ssl, ctx) == NULL) {
		SSL_CTX_free(ctx);
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	SSL_CTX_free(ctx); /* the SSL holds a reference of its own now */
	/* options and ticket count are the SSL's, copied from the front
	 * context; the verify mode may be a site's after a HelloRetryRequest */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	SSL_set_options(ssl, SSL_OP_NO_TICKET);
	SSL_set_num_tickets(ssl, 0);
	SSL_set_ex_data(ssl, site_idx, (void *)site);
	return SSL_TLSEXT_ERR_OK;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_sites *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct conf_site *site = NULL;
	bool named = false;
	char host[256];
	int port;
	size_t i;

	if (name == NULL) {
		site = t->conf->default_site;
	} else if (uri_canon_host(name, strlen(name), host, sizeof(host), &port) == 0 &&
		   port == 0) {
		named = true;
		site = conf_find_site(t->conf, host);
	}
	if (SSL_get_ex_data(ssl, acme_index()) != NULL)
		return acme_switch(ssl, named ? host : NULL, site, alert);
	if (site == NULL) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	i = (size_t)(site - t->conf->sites);
	if (SSL_set_SSL_CTX(ssl, t->site_ctx[i]) == NULL) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	/* OpenSSL keeps the verify mode of the context the SSL was made from;
	 * whether a certificate is asked for is the site's decision (and a
	 * second ClientHello after HelloRetryRequest may name another site). */
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(t->site_ctx[i]), NULL);
	SSL_set_ex_data(ssl, site_idx, (void *)site);
	return SSL_TLSEXT_ERR_OK;
}

/* The site a ClientHello's SNI names (or the default site), read from the
 * raw extension because SSL_get_servername is not set yet at this point. */
static const struct conf_site *hello_site(SSL *ssl, const struct tls_sites *t)
{
	const unsigned char *p;
	size_t len, list, nlen;
	char name[256], host[256];
	int port;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1)
		return t->conf->default_site;
	/* server_name_list length, then one host_name entry */
	if (len < 5)
		return NULL;
	list = ((size_t)p[0] << 8) | p[1];
	if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
		return NULL;
	nlen = ((size_t)p[3] << 8) | p[4];
	if (nlen == 0 || nlen + 5 > len || nlen >= sizeof(name))
		return NULL;
	memcpy(name, p + 5, nlen);
	name[nlen] = '\0';
	if (memchr(name, '\0', nlen) != NULL ||
	    uri_canon_host(name, nlen, host, sizeof(host), &port) != 0 || port != 0)
		return NULL;
	return conf_find_site(t->conf, host);
}

/* Does the ClientHello offer "acme-tls/1"? Read from the raw extension
 * (ALPN is parsed after the servername callback needs the answer); a
 * malformed one offers nothing, and OpenSSL rejects it later. */
static bool hello_offers_acme(SSL *ssl)
{
	const unsigned char *p;
	size_t len;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				      &p, &len) != 1 ||
	    len < 2 || (((size_t)p[0] << 8) | p[1]) != len - 2)
		return false;
	return acme_chal_has_alpn(p + 2, len - 2);
}

/*
 * Sessions are bound to the site: the session id context is a digest of the
 * site's name, set before OpenSSL decides on resumption (which happens
 * before the servername callback), so a session or ticket from one site is
 * never resumed under another site's name and always gets that site's full
 * handshake and checks.
 */
static int hello_cb(SSL *ssl, int *alert, void *arg)
{
	static const unsigned char acme_sid[] = "moat acme-tls/1 handshake";
	const struct tls_sites *t = arg;
	const struct conf_site *site = hello_site(ssl, t);
	const unsigned char *sid = site != NULL ? t->sid[site - t->conf->sites] : t->sid_none;
	unsigned int sid_len = SHA256_DIGEST_LENGTH;
	bool acme = hello_offers_acme(ssl);

	/* A challenge handshake resumes nothing: a context of its own, which
	 * no ticket carries (its handshakes issue none), so it always shows
	 * the challenge certificate. */
	if (acme) {
		sid = acme_sid;
		sid_len = sizeof(acme_sid) - 1;
	}
	if (SSL_set_ex_data(ssl, acme_index(), acme ? &acme_mark : NULL) != 1 ||
	    SSL_set_session_id_context(ssl, sid, sid_len) != 1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *new_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, SESSION_CTX, sizeof(SESSION_CTX) - 1);
	/* Resumption is by stateless tickets only (TLS 1.2 and 1.3): a server
	 * cache would hold a session per handshake in memory and walk itself
	 * every 255 handshakes. One ticket per connection is enough, since a
	 * resumed connection is handed a fresh one. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, CIPHERS_12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, SUITES_13) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_dh_auto(ctx, 1);
	/* ALPN is answered from the context the SNI callback switched to, so
	 * every context carries the callback, not just the front one. */
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	/* per context for the same reason: OpenSSL asks the current one */
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	return ctx;
}

/* The same rule as pki.c: renew when a third of the lifetime remains. */
static long long renewal_time(SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	long long nb, na;

	if (x == NULL)
		return 0;
	nb = x509_epoch(X509_get0_notBefore(x));
	na = x509_epoch(X509_get0_notAfter(x));
	return na - (na - nb) / 3;
}

/* Loads the pair into ctx; on failure *why says which file and why. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char **why)
{
	char buf[256];
	unsigned long e;

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		e = ERR_peek_last_error();
		ERR_error_string_n(e, buf, sizeof(buf));
		*why = xasprintf("certificate file %s: cannot load a PEM certificate chain (%s)",
				 cert, buf);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		e = ERR_peek_last_error();
		/* OpenSSL checks the pair while loading the key */
		if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
			*why = xasprintf("key file %s does not match the certificate in %s; "
					 "use the key the certificate was issued for", key, cert);
			goto fail;
		}
		ERR_error_string_n(e, buf, sizeof(buf));
		*why = xasprintf("key file %s: cannot load a PEM private key (%s)", key, buf);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*why = xasprintf("key file %s does not match the certificate in %s; "
				 "use the key the certificate was issued for", key, cert);
		goto fail;
	}
	ERR_clear_error();
	return 0;
fail:
	ERR_clear_error();
	return MOAT_ETLS;
}

int tls_check_pair(const char *cert_file, const char *key_file, char **why)
{
	SSL_CTX *ctx = new_ctx();
	int rc;

	*why = NULL;
	if (ctx == NULL) {
		*why = xstrdup("cannot create a TLS context");
		return MOAT_ETLS;
	}
	rc = load_pair(ctx, cert_file, key_file, why);
	SSL_CTX_free(ctx);
	return rc;
}

/* Load the site's client CA and have its context ask for certificates. */
static int setup_clients(struct tls_sites *t, size_t i)
{
	const struct conf_site *s = &t->conf->sites[i];
	char *why = NULL;

	t->trust[i] = client_trust_new(s, &why);
	if (t->trust[i] == NULL) {
		log_error("site %s: %s", s->host, why);
		free(why);
		return MOAT_ECONFIG;
	}
	if (client_trust_setup(t->trust[i], t->site_ctx[i]) < 0) {
		log_tls_error("tls: cannot set up client certificates");
		return MOAT_ETLS;
	}
	return 0;
}

/* The installed ACME pair of s, when it loads; a broken one is logged and
 * replaced by the placeholder (the ACME thread orders a new one). */
static bool acme_pair(const struct conf *c, const struct conf_site *s, char **cert, char **key)
{
	char *why = NULL;

	*cert = certstore_path(c->data, s->host, "cert.pem");
	*key = certstore_path(c->data, s->host, "key.pem");
	if (tls_check_pair(*cert, *key, &why) == 0)
		return true;
	log_error("site %s: %s; serving a certificate of the internal CA until a new one is "
		  "obtained", s->host, why);
	free(why);
	free(*cert);
	free(*key);
	*cert = *key = NULL;
	return false;
}

/* Whether an ACME site is being served its placeholder (cert is the file
 * the context was loaded from). */
static bool is_placeholder(const struct conf *c, const struct conf_site *s, const char *cert)
{
	char *acme = certstore_path(c->data, s->host, "cert.pem");
	bool yes = strcmp(acme, cert) != 0;

	free(acme);
	return yes;
}

struct tls_sites *tls_sites_new(const struct conf *c)
{
	struct tls_sites *t = xcalloc(1, sizeof(*t));
	char *cert = NULL, *key = NULL, *why = NULL;
	bool ok = true;
	size_t i;
	time_t na;

	pthread_once(&idx_once, make_idx);
	t->conf = c;
	t->site_ctx = xcalloc(c->nsites, sizeof(*t->site_ctx));
	t->renew_at = xcalloc(c->nsites, sizeof(*t->renew_at));
	t->placeholder = xcalloc(c->nsites, sizeof(*t->placeholder));
	t->trust = xcalloc(c->nsites, sizeof(*t->trust));
	/* digests of the site names, computed once rather than per hello */
	t->sid = xcalloc(c->nsites, sizeof(*t->sid));
	for (i = 0; i < c->nsites; i++)
		SHA256((const unsigned char *)c->sites[i].host, strlen(c->sites[i].host), t->sid[i]);
	SHA256((const unsigned char *)"", 0, t->sid_none);
	t->front = new_ctx();
	if (t->front == NULL) {
		log_tls_error("tls: cannot create the front context");
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(t->front, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(t->front, t);
	SSL_CTX_set_client_hello_cb(t->front, hello_cb, t);

	for (i = 0; i < c->nsites; i++) {
		const struct conf_site *s = &c->sites[i];

		if (s->tls == CONF_TLS_ACME && certstore_has_cert(c->data, s->host) &&
		    acme_pair(c, s, &cert, &key)) {
			/* the ACME thread installed one (certstore.h) */
		} else if (s->tls == CONF_TLS_INTERNAL || s->tls == CONF_TLS_ACME) {
			/* an ACME site serves a certificate of the internal CA until
			 * its own arrives, rather than failing every handshake */
			if (pki_ensure_ca(c->data) != 0 ||
			    pki_ensure_leaf(c->data, s->host, &cert, &key, &na) != 0) {
				log_error("site %s: cannot obtain a certificate from the internal CA in %s",
					  s->host, c->data);
				ok = false;
				continue;
			}
		} else {
			cert = xstrdup(s->cert_file);
			key = xstrdup(s->key_file);
		}
		t->site_ctx[i] = new_ctx();
		if (t->site_ctx[i] == NULL ||
		    load_pair(t->site_ctx[i], cert, key, &why) != 0) {
			log_error("site %s: %s", s->host, why ? why : "cannot create a TLS context");
			ok = false;
		} else {
			/* After a HelloRetryRequest the second ClientHello is read
			 * on the context the SNI callback switched to, and OpenSSL
			 * takes the hello callback from there: without it, a
			 * second ClientHello naming another site would keep the
			 * first site's session id context and resume its ticket. */
			SSL_CTX_set_client_hello_cb(t->site_ctx[i], hello_cb, t);
			if (s->tls == CONF_TLS_INTERNAL)
				t->renew_at[i] = renewal_time(t->site_ctx[i]);
			else if (s->tls == CONF_TLS_ACME && is_placeholder(c, s, cert))
				t->renew_at[i] = renewal_time(t->site_ctx[i]);
			t->placeholder[i] = s->tls == CONF_TLS_ACME && is_placeholder(c, s, cert);
			if (s->clients != CONF_CLIENTS_OFF && setup_clients(t, i) < 0)
				ok = false;
		}
		free(why);
		free(cert);
		free(key);
		why = cert = key = NULL;
	}
	if (!ok)
		goto fail;
	return t;
fail:
	tls_sites_free(t);
	return NULL;
}

void tls_sites_free(struct tls_sites *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->conf->nsites; i++) {
		SSL_CTX_free(t->site_ctx[i]);
		client_trust_free(t->trust[i]);
	}
	free(t->trust);
	free(t->site_ctx);
	free(t->renew_at);
	free(t->placeholder);
	free(t->sid);
	SSL_CTX_free(t->front);
	free(t);
}

SSL *tls_sites_new_ssl(struct tls_sites *t)
{
	SSL *ssl = SSL_new(t->front);

	if (ssl != NULL)
		SSL_set_accept_state(ssl);
	return ssl;
}

void tls_capture_secrets(SSL *ssl, struct tls13_secrets *sec)
{
	SSL_set_ex_data(ssl, secrets_idx, sec);
}

const struct conf_site *tls_site_of(const SSL *ssl)
{
	if (site_idx < 0)
		return NULL;
	return SSL_get_ex_data(ssl, site_idx);
}

bool tls_sites_need_renewal(const struct tls_sites *t, long long now)
{
	size_t i;

	for (i = 0; i < t->conf->nsites; i++)
		if (t->renew_at[i] != 0 && now >= t->renew_at[i])
			return true;
	return false;
}

const struct client_trust *tls_site_trust(const struct tls_sites *t, const struct conf_site *s)
{
	if (s == NULL)
		return NULL;
	return t->trust[s - t->conf->sites];
}

struct client_id *tls_client_id(const struct tls_sites *t, const struct conf_site *s, SSL *ssl)
{
	const struct client_trust *trust = tls_site_trust(t, s);

	if (trust == NULL)
		return NULL;
	return client_id_new(ssl, trust);
}

X509 *tls_site_cert(const struct tls_sites *t, const struct conf_site *s)
{
	SSL_CTX *ctx = t->site_ctx[s - t->conf->sites];

	return ctx != NULL ? SSL_CTX_get0_certificate(ctx) : NULL;
}

bool tls_site_is_placeholder(const struct tls_sites *t, const struct conf_site *s)
{
	return t->placeholder[s - t->conf->sites];
}

bool tls_is_acme_challenge(SSL *ssl, const char *peer)
{
	const unsigned char *alpn;
	unsigned int len;
	const char *sni;

	SSL_get0_alpn_selected(ssl, &alpn, &len);
	if (len != sizeof(ACME_TLS_ALPN) - 1 || memcmp(alpn, ACME_TLS_ALPN, len) != 0)
		return false;
	sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	log_info("acme: answered a TLS-ALPN-01 challenge for %s from %s",
		 sni != NULL ? sni : "(no name)", peer);
	return true;
}
