/*
 * confprint.c - see confprint.h.
 */
#include "confprint.h"
#include "conf.h"
#include "netaddr.h"
#include "pathpat.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ---- moat check ------------------------------------------------------ */

#define NCOLS 4

static void print_addrs(FILE *out, const char *proto, const struct conf_addr *a,
			size_t n)
{
	size_t i;

	fprintf(out, "%s ", proto);
	for (i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", a[i].text);
}

/* What the http listener does: redirect, plain http, or a mix. */
static void print_http_mode(const struct conf *c, FILE *out)
{
	size_t i, plain = 0;
	bool first = true;

	for (i = 0; i < c->nsites; i++)
		plain += !c->sites[i].redirect;
	if (plain == 0) {
		fputs(" (redirects to https)", out);
		return;
	}
	if (plain == c->nsites) {
		fputs(" (plain http)", out);
		return;
	}
	fputs(" (redirects to https; plain http for ", out);
	for (i = 0; i < c->nsites; i++) {
		if (c->sites[i].redirect)
			continue;
		fprintf(out, "%s%s", first ? "" : ", ", c->sites[i].host);
		first = false;
	}
	fputs(")", out);
}

/* Who may reach a site, in a few words (heap string). */
static char *exposed(const struct conf *c, const struct conf_site *s)
{
	const char *how;

	if (c->nhttp == 0)
		how = "https only";
	else if (s->redirect)
		how = "https only (http redirects)";
	else
		how = "https and plain http";
	if (s->clients == CONF_CLIENTS_REQUIRED)
		return xasprintf("client certificate holders (%zu public path%s), %s", s->npub,
				 s->npub == 1 ? "" : "s", how);
	if (s->clients == CONF_CLIENTS_OPTIONAL)
		return xasprintf("anyone (client certificates optional), %s", how);
	return xasprintf("anyone, %s", how);
}

/* Per site with a client policy: which method+paths are public and which
 * need a certificate, and where the CA comes from. */
static void print_policies(const struct conf *c, FILE *out)
{
	const struct conf_site *s;
	size_t i, k;

	for (i = 0; i < c->nsites; i++) {
		s = &c->sites[i];
		if (s->clients == CONF_CLIENTS_OFF)
			continue;
		fprintf(out, "\n%s: client certificates %s, from %s%s%s%s\n", s->host,
			s->clients == CONF_CLIENTS_REQUIRED ? "required" : "optional",
			s->client_ca_moat ? "moat's client CA " : "the CA in ", s->client_ca,
			s->crl_file != NULL ? ", revocation list " : " (no revocation list)",
			s->crl_file != NULL ? s->crl_file : "");
		if (s->clients == CONF_CLIENTS_OPTIONAL) {
			fputs("  anyone may enter; a valid certificate is passed upstream as "
			      "X-Client-Cert-Subject and X-Client-Cert-Fingerprint\n", out);
			continue;
		}
		if (s->npub == 0) {
			fputs("  public, no certificate needed: nothing\n", out);
		} else {
			fputs("  public, no certificate needed:\n", out);
			for (k = 0; k < s->npub; k++)
				fprintf(out, "    %s\n", pathpat_text(s->pub[k]));
		}
		fprintf(out, "  certificate needed: %s (otherwise 403)\n",
			s->npub == 0 ? "every method and path" : "every other method and path");
	}
}

static void print_cidrs(FILE *out, const struct cidr *l, size_t n)
{
	char text[NETADDR_TEXT];
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", cidr_format(&l[i], text, sizeof(text)));
	if (n == 0)
		fputs("nobody", out);
}

static void print_statuses(FILE *out, const struct conf_ban *b)
{
	const char *sep = "";
	int st;

	for (st = 100; st < 600; st++) {
		if ((b->status[st / 64] >> (st % 64)) & 1) {
			fprintf(out, "%s%d", sep, st);
			sep = ",";
		}
	}
}

static void print_abuse(const struct conf *c, FILE *out)
{
	const struct conf_site *s;
	size_t i, k;

	fputs("\nclient address: ", out);
	if (c->ntrusted == 0) {
		fputs("the TCP peer (no trusted_proxies)\n", out);
	} else {
		fprintf(out, "from %s or a PROXY header when the peer is one of: ",
			c->ip_header == CLIENTIP_FORWARDED ? "Forwarded" : "X-Forwarded-For");
		print_cidrs(out, c->trusted, c->ntrusted);
		fputc('\n', out);
	}
	fputs("never banned: ", out);
	print_cidrs(out, c->never_ban, c->nnever_ban);
	fprintf(out, "\nconnections: at most %u per client address, ", c->conns_per_client);
	if (c->conns_total > 0)
		fprintf(out, "%u in all\n", c->conns_total);
	else
		fputs("3/4 of the open-file limit in all\n", out);
	for (i = 0; i < c->nsites; i++) {
		s = &c->sites[i];
		if (s->nlimits == 0 && s->nbans == 0)
			continue;
		fprintf(out, "\n%s: rate limits and bans, per client\n", s->host);
		for (k = 0; k < s->nlimits; k++)
			fprintf(out, "  limit %s: %s (429 beyond)\n",
				s->limits[k].match ? pathpat_text(s->limits[k].match) : "every request",
				s->limits[k].text);
		for (k = 0; k < s->nbans; k++) {
			fprintf(out, "  ban for %llus after %u answers ",
				(unsigned long long)(s->bans[k].for_ms / 1000), s->bans[k].after);
			print_statuses(out, &s->bans[k]);
			fprintf(out, " within %llus to %s\n",
				(unsigned long long)(s->bans[k].window_ms / 1000), s->bans[k].text);
		}
	}
}

/* How an ACME site's certificate is validated. */
static const char *acme_challenge_text(const struct conf *c, const struct conf_site *s)
{
	if (s->host[0] == '*' || s->chal == CONF_CHAL_DNS)
		return c->acme.dns.provider == CONF_DNS_RFC2136 ? "dns-01 via rfc2136" :
			"dns-01 via duckdns";
	if (s->chal == CONF_CHAL_HTTP)
		return "http-01";
	if (s->chal == CONF_CHAL_TLSALPN)
		return "tls-alpn-01";
	return c->nhttp > 0 ? "tls-alpn-01 or http-01" : "tls-alpn-01";
}

static void print_acme(const struct conf *c, FILE *out)
{
	bool any = false;
	size_t i;

	for (i = 0; i < c->nsites; i++)
		any = any || c->sites[i].tls == CONF_TLS_ACME;
	if (any) {
		fprintf(out, "\nACME: %s, account %s", c->acme.directory,
			c->acme.email != NULL ? c->acme.email : "without email");
		if (c->acme.dns.provider != CONF_DNS_NONE)
			fprintf(out, ", DNS-01 through %s",
				c->acme.dns.provider == CONF_DNS_DUCKDNS ? "DuckDNS" : c->acme.dns.server.text);
		if (c->acme.renew_before_ms > 0)
			fprintf(out, ", renewed %llu h before expiry",
				(unsigned long long)(c->acme.renew_before_ms / 3600000u));
		else
			fputs(", renewed when a third of the lifetime remains", out);
		fputs("\n  until a certificate arrives, the site is served one from the internal CA\n",
		      out);
	}
	if (c->ddns.on) {
		fputs("\ndynamic DNS: DuckDNS keeps ", out);
		for (i = 0; i < c->ddns.ndomains; i++)
			fprintf(out, "%s%s.duckdns.org", i ? ", " : "", c->ddns.domains[i]);
		fprintf(out, " pointed at this network's address, every %us\n", c->ddns.every_ms / 1000);
	}
}

/* The four cells of one site's row (heap strings). */
static void site_cells(const struct conf *c, const struct conf_site *s,
		       char *cell[NCOLS])
{
	char *ups, *t;
	size_t i;

	cell[0] = xasprintf("%s%s", s->host, s->is_default ? " (default)" : "");
	if (s->tls == CONF_TLS_FILES)
		cell[1] = xasprintf("files: %s", s->cert_file);
	else if (s->tls == CONF_TLS_ACME)
		cell[1] = xasprintf("ACME, %s", acme_challenge_text(c, s));
	else
		cell[1] = xstrdup("internal CA");
	ups = xstrdup(s->welcome ? "welcome page" : "");
	for (i = 0; i < s->nup; i++) {
		t = xasprintf("%s%s%s", ups, i ? ", " : "", s->up[i].url);
		free(ups);
		ups = t;
	}
	cell[2] = ups;
	cell[3] = exposed(c, s);
}

void confprint_table(const struct conf *c, FILE *out)
{
	static const char *const head[NCOLS] = {
		"SITE", "CERTIFICATE", "UPSTREAMS", "EXPOSED TO"
	};
	size_t width[NCOLS], i, j, len;
	char *(*cells)[NCOLS];

	fputs("listeners: ", out);
	print_addrs(out, "https", c->https, c->nhttps);
	fputs("; ", out);
	if (c->nhttp == 0) {
		fputs("http off", out);
	} else {
		print_addrs(out, "http", c->http, c->nhttp);
		print_http_mode(c, out);
	}
	fprintf(out, "\nworkers: %u   data: %s   access log: %s\n\n", c->workers, c->data,
		c->access_log);

	cells = xcalloc(c->nsites, sizeof(*cells));
	for (j = 0; j < NCOLS; j++)
		width[j] = strlen(head[j]);
	for (i = 0; i < c->nsites; i++) {
		site_cells(c, &c->sites[i], cells[i]);
		for (j = 0; j < NCOLS; j++) {
			len = strlen(cells[i][j]);
			if (len > width[j])
				width[j] = len;
		}
	}
	for (i = 0; i <= c->nsites; i++) {
		for (j = 0; j < NCOLS; j++) {
			const char *cell = i == 0 ? head[j] : cells[i - 1][j];

			if (j + 1 < NCOLS)
				fprintf(out, "%-*s  ", (int)width[j], cell);
			else
				fprintf(out, "%s\n", cell);
		}
	}
	for (i = 0; i < c->nsites; i++) {
		for (j = 0; j < NCOLS; j++)
			free(cells[i][j]);
	}
	free(cells);
	print_acme(c, out);
	print_policies(c, out);
	print_abuse(c, out);
}
