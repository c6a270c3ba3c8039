/*
 * confaccess.c - see confaccess.h.
 *
 * Every key here only makes sense together with the others: a public list
 * without clients: required, or a CRL for moat's own CA, would look like
 * protection while doing nothing, so such combinations are errors rather
 * than silently ignored.
 */
#include "confaccess.h"
#include "conf.h"
#include "confval.h"
#include "pathpat.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

char *confaccess_moat_ca(const char *data)
{
	return xasprintf("%s/client-ca/ca.pem", data);
}

char *confaccess_moat_crl(const char *data)
{
	return xasprintf("%s/client-ca/crl.pem", data);
}

static void parse_clients(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	const char *t = confdoc_scalar(d, n, "clients", "required");

	if (t == NULL)
		return;
	if (strcmp(t, "off") == 0)
		s->clients = CONF_CLIENTS_OFF;
	else if (strcmp(t, "optional") == 0)
		s->clients = CONF_CLIENTS_OPTIONAL;
	else if (strcmp(t, "required") == 0)
		s->clients = CONF_CLIENTS_REQUIRED;
	else
		confdoc_err(d, n, "\"%s\" is not valid for clients in site \"%s\"; expected off, "
			    "optional or required", t, s->host);
}

/* A file path value, resolved and checked to be readable. */
static char *file_value(struct confdoc *d, const yaml_node_t *n, const char *dir,
			const char *key, const char *what, const struct conf_site *s)
{
	const char *t = confdoc_scalar(d, n, key, "\"clients-ca.pem\"");
	char *path, *why = NULL;

	if (t == NULL)
		return NULL;
	if (t[0] == '\0') {
		confdoc_err(d, n, "%s in site \"%s\" must not be empty; expected a file path",
			    key, s->host);
		return NULL;
	}
	path = confval_path(dir, t);
	if (confval_check_readable(what, path, &why) < 0)
		confdoc_err(d, n, "%s", why);
	free(why);
	return path;
}

/* client_ca: moat (or absent) uses moat's own CA, which must exist. */
static void parse_ca(struct confdoc *d, const yaml_node_t *n, const yaml_node_t *clients,
		     const char *dir, const char *data, const char *conf_file,
		     bool need_moat_ca, struct conf_site *s)
{
	const char *t = n != NULL ? confdoc_scalar(d, n, "client_ca", "moat") : "moat";
	char *why = NULL;

	if (t == NULL)
		return;
	if (strcmp(t, "moat") != 0) {
		s->client_ca = file_value(d, n, dir, "client_ca", "client CA", s);
		return;
	}
	s->client_ca_moat = true;
	s->client_ca = confaccess_moat_ca(data);
	s->crl_file = confaccess_moat_crl(data);
	if (!need_moat_ca)
		goto out;
	if (confval_check_readable("client CA", s->client_ca, &why) < 0) {
		confdoc_err(d, n != NULL ? n : clients, "site \"%s\" accepts certificates from "
			    "moat's client CA, but %s; create the CA with: moat ca init -c %s",
			    s->host, why, conf_file);
		goto out;
	}
	/* why is NULL here: the check succeeded */
	if (confval_check_readable("CRL", s->crl_file, &why) < 0)
		confdoc_err(d, n != NULL ? n : clients, "site \"%s\": moat's client CA has no "
			    "readable revocation list: %s; restore it from a backup (moat ca "
			    "revoke writes a new one)", s->host, why);
out:
	free(why);
}

static void add_public(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	const char *t = confdoc_scalar(d, n, "each entry of public", "\"GET /share/**\"");
	struct pathpat *p;
	char *why = NULL;
	size_t i;

	if (t == NULL)
		return;
	p = pathpat_parse(t, &why);
	if (p == NULL) {
		confdoc_err(d, n, "public in site \"%s\": %s", s->host, why);
		free(why);
		return;
	}
	for (i = 0; i < s->npub; i++) {
		if (strcmp(pathpat_text(s->pub[i]), pathpat_text(p)) == 0) {
			confdoc_err(d, n, "public in site \"%s\": \"%s\" is listed twice", s->host, t);
			pathpat_free(p);
			return;
		}
	}
	s->pub[s->npub++] = p;
}

static void parse_public(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	yaml_node_item_t *it;
	size_t count = 1;

	if (n->type == YAML_MAPPING_NODE) {
		confdoc_err(d, n, "public in site \"%s\" must be a list of entries like "
			    "[\"GET /share/**\", \"GET,HEAD /api/assets/*/thumbnail\"], not a mapping",
			    s->host);
		return;
	}
	if (n->type == YAML_SEQUENCE_NODE)
		count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	s->pub = xcalloc(count > 0 ? count : 1, sizeof(*s->pub));
	if (n->type == YAML_SCALAR_NODE) {
		add_public(d, n, s);
		return;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
		add_public(d, confdoc_node(d, *it), s);
}

void confaccess_site(struct confdoc *d, const char *dir, const char *data,
		     const char *conf_file, bool need_moat_ca,
		     const struct confdoc_field *f, struct conf_site *s)
{
	const yaml_node_t *clients = f[0].val, *ca = f[1].val, *crl = f[2].val, *pub = f[3].val;

	if (clients != NULL)
		parse_clients(d, clients, s);
	if (s->clients == CONF_CLIENTS_OFF) {
		if (ca != NULL)
			confdoc_err(d, f[1].key, "client_ca in site \"%s\" has no effect without "
				    "clients: required or optional; add one, or remove client_ca",
				    s->host);
		if (crl != NULL)
			confdoc_err(d, f[2].key, "crl in site \"%s\" has no effect without "
				    "clients: required or optional", s->host);
		if (pub != NULL)
			confdoc_err(d, f[3].key, "public in site \"%s\" lists what needs no client "
				    "certificate, which only means something with clients: required",
				    s->host);
		return;
	}
	if (pub != NULL && s->clients != CONF_CLIENTS_REQUIRED)
		confdoc_err(d, f[3].key, "public in site \"%s\" has no effect with clients: "
			    "optional, which denies nobody; use clients: required", s->host);
	parse_ca(d, ca, clients, dir, data, conf_file, need_moat_ca, s);
	if (crl != NULL && s->client_ca_moat)
		confdoc_err(d, f[2].key, "crl in site \"%s\": moat's own client CA keeps its "
			    "revocation list in %s (moat ca revoke); crl is for client_ca: FILE",
			    s->host, s->crl_file);
	else if (crl != NULL)
		s->crl_file = file_value(d, crl, dir, "crl", "CRL", s);
	if (pub != NULL)
		parse_public(d, pub, s);
}

void confaccess_free(struct conf_site *s)
{
	size_t i;

	for (i = 0; i < s->npub; i++)
		pathpat_free(s->pub[i]);
	free(s->pub);
	free(s->client_ca);
	free(s->crl_file);
}
