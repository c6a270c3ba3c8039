/*
 * confacme.c - see confacme.h.
 */
#include "confacme.h"

#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "confval.h"
#include "httpc.h"
#include "netaddr.h"
#include "util.h"

#define MAX_DDNS_DOMAINS 32
#define MAX_TSIG_SECRET 128
#define DAY_MS (86400ull * 1000u)

void confacme_defaults(struct conf *c)
{
	c->acme.directory = xstrdup(CONFACME_LE_DIRECTORY);
	c->acme.dns.url = xstrdup(CONFACME_DUCKDNS_URL);
	c->acme.dns.ttl = 60;
	c->acme.dns.propagation_ms = 2 * 60 * 1000;
	c->acme.dns.settle_ms = 30 * 1000;
	c->ddns.url = xstrdup(CONFACME_DUCKDNS_URL);
	c->ddns.every_ms = 5 * 60 * 1000;
}

/* ---- names -------------------------------------------------------------- */

static bool ends_with_label(const char *host, const char *suffix)
{
	size_t h = strlen(host), s = strlen(suffix);

	if (h == s)
		return strcmp(host, suffix) == 0;
	return h > s && host[h - s - 1] == '.' && strcmp(host + h - s, suffix) == 0;
}

bool confacme_is_private_name(const char *host)
{
	static const char *const private_suffixes[] = {
		"localhost", "local", "internal", "test", "example", "invalid", "home.arpa",
		"lan", "localdomain", "home", "corp",
	};
	struct ipaddr ip;
	size_t i;

	if (host[0] == '[' || ipaddr_parse(host, strlen(host), &ip) == 0)
		return true;
	if (strchr(host, '.') == NULL)
		return true;
	for (i = 0; i < sizeof(private_suffixes) / sizeof(private_suffixes[0]); i++)
		if (ends_with_label(host, private_suffixes[i]))
			return true;
	return false;
}

/* "Moat.Example." -> "moat.example." (heap); NULL when it is no DNS name. */
static char *dns_name(const char *t)
{
	size_t n = strlen(t), i;
	char *out;

	if (n == 0 || n > 253)
		return NULL;
	for (i = 0; i < n; i++)
		if (!(t[i] == '.' || t[i] == '-' || t[i] == '_' || (t[i] >= '0' && t[i] <= '9') ||
		      ((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z')))
			return NULL;
	if (t[0] == '.' || strstr(t, "..") != NULL)
		return NULL;
	out = xasprintf("%s%s", t, t[n - 1] == '.' ? "" : ".");
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] | 0x20);
	return out;
}

/* A DuckDNS subdomain: "example" or "example.duckdns.org" -> "example". */
static char *duck_label(const char *t)
{
	static const char suffix[] = ".duckdns.org";
	size_t n = strlen(t), i;
	char *out;

	if (n > sizeof(suffix) - 1 && strcasecmp(t + n - (sizeof(suffix) - 1), suffix) == 0)
		n -= sizeof(suffix) - 1;
	if (n == 0 || n > 63)
		return NULL;
	for (i = 0; i < n; i++)
		if (!(t[i] == '-' || (t[i] >= '0' && t[i] <= '9') ||
		      ((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z')))
			return NULL;
	out = xstrndup(t, n);
	for (i = 0; i < n; i++)
		out[i] = (char)((out[i] >= 'A' && out[i] <= 'Z') ? out[i] | 0x20 : out[i]);
	return out;
}

/* ---- values --------------------------------------------------------------- */

static char *text_of(struct confdoc *d, const yaml_node_t *n, const char *what,
		     const char *example)
{
	const char *t = confdoc_scalar(d, n, what, example);

	if (t == NULL)
		return NULL;
	if (t[0] == '\0') {
		confdoc_err(d, n, "%s must not be empty; expected a value like %s", what, example);
		return NULL;
	}
	return xstrdup(t);
}

static void url_value(struct confdoc *d, const yaml_node_t *n, const char *what,
		      const char *example, char **dst)
{
	char *t = text_of(d, n, what, example), *why = NULL;

	if (t == NULL)
		return;
	if (httpc_url_ok(t, &why) < 0) {
		confdoc_err(d, n, "%s \"%s\": %s", what, t, why);
		free(t);
		free(why);
		return;
	}
	free(*dst);
	*dst = t;
}

static void file_value(struct confdoc *d, const char *dir, const yaml_node_t *n,
		       const char *what, char **dst)
{
	const char *t = confdoc_scalar(d, n, what, "\"./ca-roots.pem\"");
	char *why = NULL;

	if (t == NULL)
		return;
	if (t[0] == '\0') {
		confdoc_err(d, n, "%s must not be empty; expected a PEM file", what);
		return;
	}
	free(*dst);
	*dst = confval_path(dir, t);
	if (confval_check_readable(what, *dst, &why) < 0)
		confdoc_err(d, n, "%s", why);
	free(why);
}

/* "HOST", "HOST:PORT", "[v6]:PORT" of a DNS server (port 53 by default). */
static void server_value(struct confdoc *d, const yaml_node_t *n, const char *what,
			 struct conf_addr *a)
{
	const char *t = confdoc_scalar(d, n, what, "\"127.0.0.1:53\"");
	struct addrinfo hints, *res = NULL;
	const char *port = "53", *colon;
	char *host = NULL;

	if (t == NULL)
		return;
	if (t[0] == '[') {
		colon = strchr(t, ']');
		if (colon != NULL && (colon[1] == '\0' || colon[1] == ':')) {
			host = xstrndup(t + 1, (size_t)(colon - t - 1));
			if (colon[1] == ':')
				port = colon + 2;
		}
	} else {
		colon = strchr(t, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			host = xstrndup(t, (size_t)(colon - t));
			port = colon + 1;
		} else if (colon == NULL) {
			host = xstrdup(t);
		}
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (host == NULL || host[0] == '\0' || port[0] == '\0' ||
	    getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		confdoc_err(d, n, "\"%s\" is not a usable address for %s; expected \"HOST:PORT\" "
			    "or \"[IPv6]:PORT\" of a DNS server, like \"127.0.0.1:53\"", t, what);
		goto out;
	}
	free(a->text);
	memset(a, 0, sizeof(*a));
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->salen = res->ai_addrlen;
	confval_addr_set_text(a);
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
}

static void uint_value(struct confdoc *d, const yaml_node_t *n, const char *what,
		       uint64_t min, uint64_t max, uint32_t *dst)
{
	const char *t = confdoc_scalar(d, n, what, "60");
	uint64_t v;

	if (t == NULL)
		return;
	if (confval_uint(t, max, &v) < 0 || v < min) {
		confdoc_err(d, n, "\"%s\" is not valid for %s; expected a whole number from %llu "
			    "to %llu", t, what, (unsigned long long)min, (unsigned long long)max);
		return;
	}
	*dst = (uint32_t)v;
}

static void ms_value(struct confdoc *d, const yaml_node_t *n, const char *what,
		     uint64_t min, uint64_t max, uint32_t *dst)
{
	uint64_t ms;

	if (confdoc_duration(d, n, what, min, max, &ms))
		*dst = (uint32_t)ms;
}

/* The TSIG secret as tsig-keygen prints it (base64). */
static void secret_value(struct confdoc *d, const yaml_node_t *n, struct conf_dns *dns)
{
	const char *t = confdoc_scalar(d, n, "acme.dns.key_secret", "\"base64 from tsig-keygen\"");
	unsigned char buf[MAX_TSIG_SECRET + 4];
	EVP_ENCODE_CTX *e = NULL;
	int len = 0, fin = 0;
	size_t tl;

	if (t == NULL)
		return;
	tl = strlen(t);
	if (tl == 0 || tl > (MAX_TSIG_SECRET / 3 + 1) * 4)
		goto bad;
	e = EVP_ENCODE_CTX_new();
	EVP_DecodeInit(e);
	if (EVP_DecodeUpdate(e, buf, &len, (const unsigned char *)t, (int)tl) < 0 ||
	    EVP_DecodeFinal(e, buf + len, &fin) != 1 || len + fin < 16)
		goto bad;
	dns->key_len = (size_t)(len + fin);
	dns->key = xmalloc(dns->key_len);
	memcpy(dns->key, buf, dns->key_len);
	goto out;
bad:
	confdoc_err(d, n, "acme.dns.key_secret must be the base64 secret of a TSIG key (at "
		    "least 16 bytes), as printed by \"tsig-keygen -a hmac-sha256 moat\"");
out:
	EVP_ENCODE_CTX_free(e);
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* ---- acme ----------------------------------------------------------------- */

static void parse_provider(struct confdoc *d, const yaml_node_t *n, struct conf_dns *dns)
{
	const char *t = confdoc_scalar(d, n, "acme.dns.provider", "duckdns");

	if (t == NULL)
		return;
	if (strcmp(t, "duckdns") == 0)
		dns->provider = CONF_DNS_DUCKDNS;
	else if (strcmp(t, "rfc2136") == 0)
		dns->provider = CONF_DNS_RFC2136;
	else
		confdoc_err(d, n, "\"%s\" is not a DNS provider moat knows; expected duckdns or "
			    "rfc2136", t);
}

static void parse_algorithm(struct confdoc *d, const yaml_node_t *n, struct conf_dns *dns)
{
	const char *t = confdoc_scalar(d, n, "acme.dns.algorithm", "hmac-sha256");

	if (t == NULL)
		return;
	if (strcasecmp(t, "hmac-sha256") == 0)
		dns->alg = CONF_TSIG_SHA256;
	else if (strcasecmp(t, "hmac-sha512") == 0)
		dns->alg = CONF_TSIG_SHA512;
	else if (strcasecmp(t, "hmac-sha1") == 0)
		dns->alg = CONF_TSIG_SHA1;
	else
		confdoc_err(d, n, "\"%s\" is not a TSIG algorithm moat supports; expected "
			    "hmac-sha256, hmac-sha512 or hmac-sha1", t);
}

static void dns_name_value(struct confdoc *d, const yaml_node_t *n, const char *what,
			   char **dst)
{
	const char *t = confdoc_scalar(d, n, what, "example.org");
	char *v;

	if (t == NULL)
		return;
	v = dns_name(t);
	if (v == NULL) {
		confdoc_err(d, n, "\"%s\" is not a DNS name for %s; expected something like "
			    "\"example.org\"", t, what);
		return;
	}
	free(*dst);
	*dst = v;
}

static void parse_dns(struct confdoc *d, const yaml_node_t *n, struct conf_dns *dns)
{
	enum { PROVIDER, TOKEN, URL, DOMAIN, SERVER, ZONE, KEY_NAME, KEY_SECRET, ALGORITHM,
	       RESOLVER, TTL, PROPAGATION, SETTLE, NKEYS };
	static const char *const keys[NKEYS] = {
		"provider", "token", "url", "domain", "server", "zone", "key_name", "key_secret",
		"algorithm", "resolver", "ttl", "propagation", "settle",
	};
	static const int duck_only[] = { TOKEN, URL, DOMAIN };
	static const int rfc_only[] = { SERVER, ZONE, KEY_NAME, KEY_SECRET, ALGORITHM };
	struct confdoc_field f[NKEYS];
	const char *other;
	size_t i;

	if (!confdoc_fields(d, n, "acme.dns", "in acme.dns",
			    "{ provider: duckdns, token: \"${DUCKDNS_TOKEN}\" }", keys, NKEYS, f))
		return;
	if (f[PROVIDER].val == NULL) {
		confdoc_err(d, n, "acme.dns needs a provider: duckdns or rfc2136");
		return;
	}
	parse_provider(d, f[PROVIDER].val, dns);
	if (dns->provider == CONF_DNS_NONE)
		return;
	/* a key of the other provider is a mistake worth pointing at */
	for (i = 0; i < sizeof(duck_only) / sizeof(duck_only[0]); i++)
		if (dns->provider != CONF_DNS_DUCKDNS && f[duck_only[i]].key != NULL)
			confdoc_err(d, f[duck_only[i]].key, "acme.dns.%s belongs to provider "
				    "duckdns, not rfc2136", keys[duck_only[i]]);
	for (i = 0; i < sizeof(rfc_only) / sizeof(rfc_only[0]); i++)
		if (dns->provider != CONF_DNS_RFC2136 && f[rfc_only[i]].key != NULL)
			confdoc_err(d, f[rfc_only[i]].key, "acme.dns.%s belongs to provider "
				    "rfc2136, not duckdns", keys[rfc_only[i]]);
	if (dns->provider == CONF_DNS_DUCKDNS) {
		if (f[TOKEN].val == NULL)
			confdoc_err(d, n, "acme.dns with provider duckdns needs token: "
				    "\"${DUCKDNS_TOKEN}\" (shown at the top of duckdns.org when signed in)");
		else
			dns->token = text_of(d, f[TOKEN].val, "acme.dns.token", "\"${DUCKDNS_TOKEN}\"");
		if (f[URL].val != NULL)
			url_value(d, f[URL].val, "acme.dns.url", "\"" CONFACME_DUCKDNS_URL "\"",
				  &dns->url);
		if (f[DOMAIN].val != NULL) {
			other = confdoc_scalar(d, f[DOMAIN].val, "acme.dns.domain", "example");
			dns->domain = other != NULL ? duck_label(other) : NULL;
			if (other != NULL && dns->domain == NULL)
				confdoc_err(d, f[DOMAIN].val, "\"%s\" is not a DuckDNS subdomain; "
					    "expected a label like \"example\" (for example.duckdns.org)",
					    other);
		}
	} else {
		other = f[SERVER].val == NULL ? "server" : f[KEY_NAME].val == NULL ? "key_name" :
			f[KEY_SECRET].val == NULL ? "key_secret" : NULL;
		if (other != NULL)
			confdoc_err(d, n, "acme.dns with provider rfc2136 needs server, key_name and "
				    "key_secret; \"%s\" is missing", other);
		if (f[SERVER].val != NULL)
			server_value(d, f[SERVER].val, "acme.dns.server", &dns->server);
		if (f[ZONE].val != NULL)
			dns_name_value(d, f[ZONE].val, "acme.dns.zone", &dns->zone);
		if (f[KEY_NAME].val != NULL)
			dns_name_value(d, f[KEY_NAME].val, "acme.dns.key_name", &dns->key_name);
		if (f[KEY_SECRET].val != NULL)
			secret_value(d, f[KEY_SECRET].val, dns);
		if (f[ALGORITHM].val != NULL)
			parse_algorithm(d, f[ALGORITHM].val, dns);
	}
	if (f[RESOLVER].val != NULL)
		server_value(d, f[RESOLVER].val, "acme.dns.resolver", &dns->resolver);
	if (f[TTL].val != NULL)
		uint_value(d, f[TTL].val, "acme.dns.ttl", 1, 86400, &dns->ttl);
	if (f[PROPAGATION].val != NULL)
		ms_value(d, f[PROPAGATION].val, "acme.dns.propagation", 1000, DAY_MS,
			 &dns->propagation_ms);
	if (f[SETTLE].val != NULL)
		ms_value(d, f[SETTLE].val, "acme.dns.settle", 0, DAY_MS, &dns->settle_ms);
}

static void parse_email(struct confdoc *d, const yaml_node_t *n, struct conf_acme *a)
{
	const char *t = confdoc_scalar(d, n, "acme.email", "me@example.org");
	const char *at;

	if (t == NULL)
		return;
	at = strchr(t, '@');
	if (at == NULL || at == t || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
	    strpbrk(t, " \t,;<>\"()[]\\") != NULL || strlen(t) > 254) {
		confdoc_err(d, n, "\"%s\" is not an email address for acme.email; expected "
			    "something like me@example.org", t);
		return;
	}
	free(a->email);
	a->email = xstrdup(t);
}

static void parse_acme(struct confdoc *d, const char *dir, const yaml_node_t *n,
		       struct conf_acme *a)
{
	static const char *const keys[] = {
		"email", "directory", "ca_roots", "dns", "renew_before"
	};
	struct confdoc_field f[5];
	uint64_t ms;

	if (!confdoc_fields(d, n, "acme", "in acme", "{ email: me@example.org }", keys, 5, f))
		return;
	if (f[0].val != NULL)
		parse_email(d, f[0].val, a);
	if (f[1].val != NULL)
		url_value(d, f[1].val, "acme.directory", "\"" CONFACME_LE_DIRECTORY "\"",
			  &a->directory);
	/* state.json keeps the issuing directory to compare with this one */
	if (f[1].val != NULL && strlen(a->directory) > CONFACME_URL_MAX)
		confdoc_err(d, f[1].val, "acme.directory is %zu characters long; at most %d are "
			    "supported", strlen(a->directory), CONFACME_URL_MAX);
	if (f[2].val != NULL)
		file_value(d, dir, f[2].val, "acme.ca_roots", &a->ca_roots);
	if (f[3].val != NULL)
		parse_dns(d, f[3].val, &a->dns);
	if (f[4].val != NULL && confdoc_duration(d, f[4].val, "acme.renew_before", 60 * 1000,
						   100 * 365 * DAY_MS, &ms))
		a->renew_before_ms = ms;
}

/* ---- ddns ----------------------------------------------------------------- */

static void parse_domains(struct confdoc *d, const yaml_node_t *n, struct conf_ddns *g)
{
	const yaml_node_t *item;
	yaml_node_item_t *it;
	const char *t;
	size_t cap;
	char *v;

	if (n->type == YAML_SCALAR_NODE) {
		cap = 1;
	} else if (n->type == YAML_SEQUENCE_NODE) {
		cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	} else {
		confdoc_err(d, n, "ddns.duckdns.domains must be a list like [ example ]");
		return;
	}
	if (cap == 0 || cap > MAX_DDNS_DOMAINS) {
		confdoc_err(d, n, "ddns.duckdns.domains has %zu entries; expected 1 to %d", cap,
			    MAX_DDNS_DOMAINS);
		return;
	}
	g->domains = xcalloc(cap, sizeof(*g->domains));
	for (it = n->type == YAML_SCALAR_NODE ? NULL : n->data.sequence.items.start;
	     it == NULL || it < n->data.sequence.items.top; it++) {
		item = it == NULL ? n : confdoc_node(d, *it);
		t = confdoc_scalar(d, item, "each entry of ddns.duckdns.domains", "example");
		v = t != NULL ? duck_label(t) : NULL;
		if (v != NULL)
			g->domains[g->ndomains++] = v;
		else if (t != NULL)
			confdoc_err(d, item, "\"%s\" is not a DuckDNS subdomain; expected a label "
				    "like \"example\" (for example.duckdns.org)", t);
		if (it == NULL)
			break;
	}
}

static void parse_ddns(struct confdoc *d, const char *dir, const yaml_node_t *n,
		       struct conf_ddns *g)
{
	static const char *const top[] = { "duckdns" };
	static const char *const keys[] = { "domains", "token", "every", "url", "ca_roots" };
	struct confdoc_field t[1], f[5];
	uint64_t ms;

	if (!confdoc_fields(d, n, "ddns", "in ddns",
			    "{ duckdns: { domains: [ example ], token: \"${DUCKDNS_TOKEN}\" } }",
			    top, 1, t) || t[0].val == NULL)
		return;
	if (!confdoc_fields(d, t[0].val, "ddns.duckdns", "in ddns.duckdns",
			    "{ domains: [ example ], token: \"${DUCKDNS_TOKEN}\" }", keys, 5, f))
		return;
	g->on = true;
	if (f[0].val == NULL)
		confdoc_err(d, t[0].val, "ddns.duckdns needs domains: [ example ] (the names "
			    "before .duckdns.org)");
	else
		parse_domains(d, f[0].val, g);
	if (f[1].val == NULL)
		confdoc_err(d, t[0].val, "ddns.duckdns needs token: \"${DUCKDNS_TOKEN}\"");
	else
		g->token = text_of(d, f[1].val, "ddns.duckdns.token", "\"${DUCKDNS_TOKEN}\"");
	if (f[2].val != NULL && confdoc_duration(d, f[2].val, "ddns.duckdns.every", 1000,
						   DAY_MS, &ms))
		g->every_ms = (uint32_t)ms;
	if (f[3].val != NULL)
		url_value(d, f[3].val, "ddns.duckdns.url", "\"" CONFACME_DUCKDNS_URL "\"",
			  &g->url);
	if (f[4].val != NULL)
		file_value(d, dir, f[4].val, "ddns.duckdns.ca_roots", &g->ca_roots);
}

void confacme_root(struct confdoc *d, const char *dir, const struct confdoc_field *f,
		   struct conf *c)
{
	if (f[0].val != NULL && !confdoc_is_null(f[0].val))
		parse_acme(d, dir, f[0].val, &c->acme);
	if (f[1].val != NULL && !confdoc_is_null(f[1].val))
		parse_ddns(d, dir, f[1].val, &c->ddns);
}

/* ---- sites ---------------------------------------------------------------- */

static void parse_chal(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	static const char *const names[] = { "auto", "http", "tls-alpn", "dns" };
	static const enum conf_chal vals[] = {
		CONF_CHAL_AUTO, CONF_CHAL_HTTP, CONF_CHAL_TLSALPN, CONF_CHAL_DNS
	};
	const char *t = confdoc_scalar(d, n, "tls acme", "dns");
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < 4; i++) {
		if (strcmp(t, names[i]) == 0) {
			s->tls = CONF_TLS_ACME;
			s->chal = vals[i];
			return;
		}
	}
	confdoc_err(d, n, "\"%s\" is not an ACME challenge for site \"%s\"; expected auto, "
		    "http, tls-alpn or dns", t, s->host);
}

static void parse_files(struct confdoc *d, const char *dir, const yaml_node_t *n,
			const struct confdoc_field *f, struct conf_site *s)
{
	static const char *const keys[] = { "cert", "key" };
	static const char *const names[] = { "certificate", "key" };
	char **dst[] = { &s->cert_file, &s->key_file };
	const char *t;
	char *why = NULL;
	size_t i;

	s->tls = CONF_TLS_FILES;
	for (i = 0; i < 2; i++) {
		if (f[i].val == NULL) {
			confdoc_err(d, n, "tls of site \"%s\" needs both \"cert\" and \"key\"; "
				    "\"%s\" is missing", s->host, keys[i]);
			continue;
		}
		t = confdoc_scalar(d, f[i].val, keys[i], "\"certs/app.pem\"");
		if (t == NULL)
			continue;
		if (t[0] == '\0') {
			confdoc_err(d, f[i].val, "tls %s of site \"%s\" must not be empty; expected "
				    "a file path", keys[i], s->host);
			continue;
		}
		*dst[i] = confval_path(dir, t);
		if (confval_check_readable(names[i], *dst[i], &why) < 0)
			confdoc_err(d, f[i].val, "%s", why);
		free(why);
		why = NULL;
	}
}

void confacme_site(struct confdoc *d, const char *dir, const yaml_node_t *n,
		   struct conf_site *s)
{
	static const char *const keys[] = { "cert", "key", "acme" };
	struct confdoc_field f[3];
	const char *t;
	char *where;

	if (n == NULL || confdoc_is_null(n)) {
		s->tls = confacme_is_private_name(s->host) ? CONF_TLS_INTERNAL : CONF_TLS_ACME;
		return;
	}
	if (n->type == YAML_SCALAR_NODE) {
		t = confdoc_text(d, n);
		if (t == NULL)
			return;
		if (strcmp(t, "auto") == 0)
			s->tls = confacme_is_private_name(s->host) ? CONF_TLS_INTERNAL : CONF_TLS_ACME;
		else if (strcmp(t, "internal") == 0)
			s->tls = CONF_TLS_INTERNAL;
		else if (strcmp(t, "acme") == 0)
			s->tls = CONF_TLS_ACME;
		else
			confdoc_err(d, n, "\"%s\" is not a valid tls setting for site \"%s\"; expected "
				    "auto, internal, acme, { acme: dns } or { cert: FILE, key: FILE }",
				    t, s->host);
		return;
	}
	where = xasprintf("in tls of site \"%s\"", s->host);
	if (!confdoc_fields(d, n, "tls", where, "{ cert: FILE, key: FILE } or { acme: dns }",
			    keys, 3, f))
		goto out;
	if (f[2].val != NULL && (f[0].val != NULL || f[1].val != NULL))
		confdoc_err(d, n, "tls of site \"%s\" has both acme and cert/key; choose one: "
			    "{ acme: dns } or { cert: FILE, key: FILE }", s->host);
	else if (f[2].val != NULL)
		parse_chal(d, f[2].val, s);
	else
		parse_files(d, dir, n, f, s);
out:
	free(where);
}

void confacme_check(struct confdoc *d, const struct conf *c)
{
	const struct conf_site *s;
	bool wild;
	size_t i;

	for (i = 0; i < c->nsites; i++) {
		s = &c->sites[i];
		if (s->tls != CONF_TLS_ACME)
			continue;
		wild = s->host[0] == '*';
		if (s->host[0] == '[' || (s->host[0] >= '0' && s->host[0] <= '9' &&
					  strspn(s->host, "0123456789.") == strlen(s->host))) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" is an IP address; ACME "
					"certificates here are for names only; use tls: internal",
					s->host);
		} else if ((wild || s->chal == CONF_CHAL_DNS) && c->acme.dns.provider == CONF_DNS_NONE) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" needs a DNS-01 challenge%s, "
					"but acme.dns is not set; add acme: { dns: { provider: "
					"duckdns, token: \"${DUCKDNS_TOKEN}\" } } (or rfc2136), or "
					"use tls: internal", s->host,
					wild ? " (wildcard certificates can only be validated by DNS)" : "");
		} else if ((wild || s->chal == CONF_CHAL_DNS) &&
			   c->acme.dns.provider == CONF_DNS_DUCKDNS && c->acme.dns.domain == NULL &&
			   !ends_with_label(s->host, "duckdns.org")) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" would be validated through "
					"DuckDNS, but it is not a duckdns.org name; set acme.dns.domain to "
					"the DuckDNS subdomain its _acme-challenge name points to (CNAME)",
					s->host);
		} else if (wild && s->chal != CONF_CHAL_AUTO && s->chal != CONF_CHAL_DNS) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" is a wildcard; its "
					"certificate can only be validated by DNS-01: use tls: "
					"{ acme: dns }", s->host);
		} else if (s->chal == CONF_CHAL_HTTP && c->nhttp == 0) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" asks for the HTTP-01 "
					"challenge, but the http listener is off; set listen.http "
					"(the CA connects to port 80) or use tls: { acme: tls-alpn }",
					s->host);
		} else if (s->chal == CONF_CHAL_TLSALPN && c->nhttps == 0) {
			confdoc_err_pos(d, s->line, s->col, "site \"%s\" asks for the TLS-ALPN-01 "
					"challenge, but there is no https listener", s->host);
		}
	}
}

void confacme_free(struct conf *c)
{
	struct conf_dns *dns = &c->acme.dns;
	size_t i;

	free(c->acme.email);
	free(c->acme.directory);
	free(c->acme.ca_roots);
	if (dns->token != NULL)
		OPENSSL_cleanse(dns->token, strlen(dns->token));
	free(dns->token);
	free(dns->url);
	free(dns->domain);
	free(dns->server.text);
	free(dns->zone);
	free(dns->key_name);
	if (dns->key != NULL)
		OPENSSL_cleanse(dns->key, dns->key_len);
	free(dns->key);
	free(dns->resolver.text);
	for (i = 0; i < c->ddns.ndomains; i++)
		free(c->ddns.domains[i]);
	free(c->ddns.domains);
	if (c->ddns.token != NULL)
		OPENSSL_cleanse(c->ddns.token, strlen(c->ddns.token));
	free(c->ddns.token);
	free(c->ddns.url);
	free(c->ddns.ca_roots);
}
