/*
 * conf.c - see conf.h.
 *
 * The schema: which keys exist at each level, their defaults and what they
 * mean. The walk checks each level against a fixed key table and records
 * every problem instead of stopping at the first, so one `moat check` run
 * shows the operator everything to fix; reading nodes, ${VAR} expansion and
 * error collection live in confdoc.c, the parsers of single values in
 * confval.c. On any error the half-built snapshot is thrown away, so callers
 * only ever see a complete one.
 */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "confabuse.h"
#include "confacme.h"
#include "confaccess.h"
#include "confdoc.h"
#include "confval.h"
#include "guard_ban.h"
#include "fsutil.h"
#include "util.h"

#define CONF_MAX_BYTES (1024 * 1024)
#define MAX_UPSTREAMS 64
#define MAX_WORKERS 256
#define HSTS_DEFAULT_S 31536000u
#define DEMO_FILE "(built-in demo)"

/* Listen addresses with the node each came from (NULL for defaults). */
struct lsn {
	struct conf_addr *addr;
	size_t n;
	const yaml_node_t **node;
	bool given;
};

struct ctx {
	struct confdoc d;
	bool need_moat_ca;      /* moat's client CA files must exist (not for moat ca) */
	char *dir;              /* absolute directory for relative paths */
	struct conf *c;
	struct lsn http, https;
	const yaml_node_t *default_node; /* first "default: true" */
};

__attribute__((format(printf, 3, 4)))
static void err(struct ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	confdoc_verr(&x->d, n, fmt, ap);
	va_end(ap);
}

/* ---- top-level values ------------------------------------------------ */

static void parse_data(struct ctx *x, const yaml_node_t *n)
{
	const char *t = confdoc_scalar(&x->d, n, "data", "\"/var/lib/moat\"");

	if (t == NULL)
		return;
	if (t[0] == '\0') {
		err(x, n, "data must not be empty; expected a directory like \"/var/lib/moat\"");
		return;
	}
	free(x->c->data);
	x->c->data = confval_path(x->dir, t);
}

static void add_listen(struct ctx *x, struct lsn *l, const yaml_node_t *n,
		       const char *s)
{
	char *why = NULL;
	size_t before = l->n, i;

	if (confval_listen(s, &l->addr, &l->n, &why) < 0) {
		err(x, n, "%s", why);
		free(why);
		return;
	}
	l->node = xrealloc(l->node, l->n * sizeof(*l->node));
	for (i = before; i < l->n; i++)
		l->node[i] = n;
}

/* { address: "127.0.0.1:8443", proxy_protocol: true } */
static void add_listen_map(struct ctx *x, struct lsn *l, const yaml_node_t *n,
			   const char *proto)
{
	static const char *const keys[] = { "address", "proxy_protocol" };
	struct confdoc_field f[2];
	char *where = xasprintf("in listen.%s", proto);
	const char *t;
	bool pp = false;
	size_t before = l->n, i;

	if (!confdoc_fields(&x->d, n, "a listener", where,
			    "{ address: \"127.0.0.1:8443\", proxy_protocol: true }", keys, 2, f))
		goto out;
	if (f[0].val == NULL) {
		err(x, n, "a listener in listen.%s needs address, like { address: "
		    "\"127.0.0.1:8443\", proxy_protocol: true }", proto);
		goto out;
	}
	if (f[1].val != NULL) {
		t = confdoc_scalar(&x->d, f[1].val, "proxy_protocol", "true");
		if (t != NULL && confval_bool(t, &pp) != 0)
			err(x, f[1].val, "\"%s\" is not valid for proxy_protocol; expected true or "
			    "false", t);
		if (pp && x->c->ntrusted == 0)
			err(x, f[1].val, "proxy_protocol: true needs trusted_proxies: moat takes a "
			    "PROXY header only from the addresses listed there, so list your load "
			    "balancer or relay, like trusted_proxies: [ 10.0.0.5 ]");
	}
	t = confdoc_scalar(&x->d, f[0].val, "address", "\"127.0.0.1:8443\"");
	if (t == NULL)
		goto out;
	add_listen(x, l, f[0].val, t);
	for (i = before; i < l->n; i++)
		l->addr[i].proxy_protocol = pp;
out:
	free(where);
}

static void parse_listen_item(struct ctx *x, const yaml_node_t *item, struct lsn *l,
			      const char *proto)
{
	char *what;
	const char *t;

	if (item->type == YAML_MAPPING_NODE) {
		add_listen_map(x, l, item, proto);
		return;
	}
	what = xasprintf("each address in listen.%s", proto);
	t = confdoc_scalar(&x->d, item, what, "\"127.0.0.1:8443\"");
	free(what);
	if (t != NULL)
		add_listen(x, l, item, t);
}

static void parse_listen_one(struct ctx *x, const yaml_node_t *n, struct lsn *l,
			     const char *proto)
{
	yaml_node_item_t *it;
	const char *t;

	l->given = true;
	if (n->type == YAML_SCALAR_NODE) {
		t = confdoc_text(&x->d, n);
		if (t != NULL && strcmp(proto, "http") == 0 && strcmp(t, "off") == 0)
			return;
		if (t != NULL)
			add_listen(x, l, n, t);
		return;
	}
	if (n->type == YAML_MAPPING_NODE) {
		add_listen_map(x, l, n, proto);
		return;
	}
	if (n->data.sequence.items.start == n->data.sequence.items.top) {
		err(x, n, "listen.%s is an empty list; give at least one address%s", proto,
		    strcmp(proto, "http") == 0 ? ", or write http: off" : "");
		return;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
		parse_listen_item(x, confdoc_node(&x->d, *it), l, proto);
}

static void parse_listen(struct ctx *x, const yaml_node_t *n)
{
	static const char *const keys[] = { "http", "https" };
	struct confdoc_field f[2];

	if (!confdoc_fields(&x->d, n, "listen", "in listen",
			    "{ http: \":80\", https: \":443\" }", keys, 2, f))
		return;
	if (f[0].val != NULL)
		parse_listen_one(x, f[0].val, &x->http, "http");
	if (f[1].val != NULL)
		parse_listen_one(x, f[1].val, &x->https, "https");
}

static unsigned auto_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	if (n > MAX_WORKERS)
		return MAX_WORKERS;
	return (unsigned)n;
}

static void parse_workers(struct ctx *x, const yaml_node_t *n)
{
	const char *t = confdoc_scalar(&x->d, n, "workers", "2 or \"auto\"");
	uint64_t v;

	if (t == NULL)
		return;
	if (strcmp(t, "auto") == 0) {
		x->c->workers = auto_workers();
		return;
	}
	if (confval_uint(t, MAX_WORKERS, &v) < 0 || v == 0) {
		err(x, n, "\"%s\" is not a valid worker count; expected an integer 1-%d or "
		    "\"auto\"", t, MAX_WORKERS);
		return;
	}
	x->c->workers = (unsigned)v;
}

static void parse_access_log(struct ctx *x, const yaml_node_t *n)
{
	const char *t = confdoc_scalar(&x->d, n, "access_log", "stdout");

	if (t == NULL)
		return;
	if (t[0] == '\0') {
		err(x, n, "access_log must not be empty; expected stdout, off or a file path");
		return;
	}
	free(x->c->access_log);
	if (strcmp(t, "stdout") == 0 || strcmp(t, "off") == 0)
		x->c->access_log = xstrdup(t);
	else
		x->c->access_log = confval_path(x->dir, t);
}

/* A duration of at least min_ms that fits in max_ms; false when reported. */
static bool duration(struct ctx *x, const yaml_node_t *n, const char *what,
		     uint64_t min_ms, uint64_t max_ms, uint64_t *ms)
{
	return confdoc_duration(&x->d, n, what, min_ms, max_ms, ms);
}

static void parse_timeouts(struct ctx *x, const yaml_node_t *n)
{
	static const char *const keys[] = {
		"header", "idle", "connect", "response", "drain", "upstream_idle", "write", "body"
	};
	struct conf_timeouts *t = &x->c->t;
	uint32_t *dst[] = {
		&t->header_ms, &t->idle_ms, &t->connect_ms, &t->response_ms,
		&t->drain_ms, &t->upstream_idle_ms, &t->write_ms, &t->body_ms
	};
	struct confdoc_field f[8];
	uint64_t ms;
	size_t i;

	if (!confdoc_fields(&x->d, n, "timeouts", "in timeouts", "{ header: 10s, idle: 60s }",
			    keys, 8, f))
		return;
	for (i = 0; i < 8; i++) {
		char *what = xasprintf("timeouts.%s", keys[i]);

		if (f[i].val != NULL && duration(x, f[i].val, what, 1, UINT32_MAX, &ms))
			*dst[i] = (uint32_t)ms;
		free(what);
	}
}

static bool size_value(struct ctx *x, const yaml_node_t *n, const char *what,
		       uint64_t *v)
{
	const char *t = confdoc_scalar(&x->d, n, what, "\"32KiB\"");
	bool ok = false;

	if (t == NULL)
		goto out;
	if (confval_size(t, v) < 0) {
		err(x, n, "\"%s\" is not a valid size for %s; expected a number of bytes, "
		    "optionally with K, KiB, M, MiB, G or GiB, like \"32KiB\"", t, what);
		goto out;
	}
	ok = true;
out:
	return ok;
}

static bool count_value(struct ctx *x, const yaml_node_t *n, const char *what, uint64_t min,
			uint64_t max, uint64_t *v)
{
	const char *t = confdoc_scalar(&x->d, n, what, "256");

	if (t == NULL)
		return false;
	if (confval_uint(t, max, v) != 0 || *v < min) {
		err(x, n, "\"%s\" is not a valid %s; expected a whole number from %llu to %llu", t,
		    what, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	return true;
}

static void parse_limits(struct ctx *x, const yaml_node_t *n)
{
	static const char *const keys[] = {
		"header_size", "body_size", "min_body_rate", "connections_per_client",
		"connections", "bans"
	};
	struct confdoc_field f[6];
	uint64_t v;

	if (!confdoc_fields(&x->d, n, "limits", "in limits",
			    "{ header_size: 32KiB, body_size: 0 }", keys, 6, f))
		return;
	if (f[0].val != NULL && size_value(x, f[0].val, "limits.header_size", &v)) {
		if (v < 1024 || v > 64 * 1024)
			err(x, f[0].val, "limits.header_size \"%s\" is out of range; expected "
			    "1KiB to 64KiB", confdoc_text(&x->d, f[0].val));
		else
			x->c->max_header_bytes = (size_t)v;
	}
	if (f[1].val != NULL && size_value(x, f[1].val, "limits.body_size", &v))
		x->c->max_body_bytes = v;
	if (f[2].val != NULL && size_value(x, f[2].val, "limits.min_body_rate", &v))
		x->c->min_body_rate = v;
	if (f[3].val != NULL && count_value(x, f[3].val, "limits.connections_per_client", 1,
					    1000000, &v))
		x->c->conns_per_client = (uint32_t)v;
	if (f[4].val != NULL && count_value(x, f[4].val, "limits.connections", 1, 10000000, &v))
		x->c->conns_total = (uint32_t)v;
	if (f[5].val != NULL && count_value(x, f[5].val, "limits.bans", 1, 10000000, &v))
		x->c->ban_table = (size_t)v;
}

/* ---- sites ----------------------------------------------------------- */

static void parse_to(struct ctx *x, const yaml_node_t *n, struct conf_site *s)
{
	const yaml_node_t *item;
	size_t count = 1, i;
	char *why;

	if (n->type == YAML_MAPPING_NODE) {
		err(x, n, "\"to\" in site \"%s\" must be an upstream URL like "
		    "\"http://127.0.0.1:9000\" or a list of them, not a mapping", s->host);
		return;
	}
	if (n->type == YAML_SEQUENCE_NODE) {
		count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
		if (count == 0) {
			err(x, n, "\"to\" in site \"%s\" is an empty list; give at least one "
			    "upstream like \"http://127.0.0.1:9000\"", s->host);
			return;
		}
		if (count > MAX_UPSTREAMS) {
			err(x, n, "site \"%s\" has %zu upstreams; at most %d are allowed",
			    s->host, count, MAX_UPSTREAMS);
			return;
		}
	}
	s->up = xcalloc(count, sizeof(*s->up));
	for (i = 0; i < count; i++) {
		const char *t;

		item = n;
		if (n->type == YAML_SEQUENCE_NODE)
			item = confdoc_node(&x->d, n->data.sequence.items.start[i]);
		t = confdoc_scalar(&x->d, item, "each upstream in \"to\"",
				   "\"http://127.0.0.1:9000\"");
		if (t == NULL)
			continue;
		why = NULL;
		if (confval_upstream(t, &s->up[s->nup], &why) < 0) {
			err(x, item, "%s", why);
			free(why);
			continue;
		}
		s->nup++;
	}
}

static bool site_bool(struct ctx *x, const yaml_node_t *n, const char *key,
		      const struct conf_site *s, bool *v)
{
	const char *t = confdoc_scalar(&x->d, n, key, "true");
	bool ok = false;

	if (t == NULL)
		goto out;
	if (confval_bool(t, v) < 0) {
		err(x, n, "\"%s\" is not valid for \"%s\" in site \"%s\"; expected true or "
		    "false", t, key, s->host);
		goto out;
	}
	ok = true;
out:
	return ok;
}

static void parse_hsts(struct ctx *x, const yaml_node_t *n, struct conf_site *s)
{
	const char *t = confdoc_scalar(&x->d, n, "hsts", "true");
	char *what;
	uint64_t ms;

	if (t == NULL)
		return;
	if (confval_bool(t, &s->hsts) == 0) {
		s->hsts_max_age = s->hsts ? HSTS_DEFAULT_S : 0;
		return;
	}
	if (confval_duration(t, &ms) == MOAT_EINVAL) {
		err(x, n, "\"%s\" is not valid for hsts in site \"%s\"; expected true, false "
		    "or a max-age duration like \"180d\"", t, s->host);
		return;
	}
	what = xasprintf("hsts in site \"%s\"", s->host);
	if (duration(x, n, what, 1000, (uint64_t)UINT32_MAX * 1000u, &ms)) {
		s->hsts = true;
		s->hsts_max_age = (uint32_t)(ms / 1000u);
	}
	free(what);
}

static void parse_site_body(struct ctx *x, const yaml_node_t *key,
			    const yaml_node_t *n, struct conf_site *s)
{
	static const char *const keys[] = {
		"to", "tls", "default", "redirect", "hsts", CONFACCESS_KEYS, CONFABUSE_SITE_KEYS
	};
	struct confdoc_field f[5 + CONFACCESS_NKEYS + CONFABUSE_NSITE];
	char *what, *where;

	what = xasprintf("site \"%s\"", s->host);
	where = xasprintf("in site \"%s\"", s->host);
	/* "app.localhost:" with nothing after it is an empty site: report the
	 * missing "to" rather than a type error. */
	if (confdoc_is_null(n))
		memset(f, 0, sizeof(f));
	else if (!confdoc_fields(&x->d, n, what, where, "{ to: \"http://127.0.0.1:9000\" }",
				 keys, 5 + CONFACCESS_NKEYS + CONFABUSE_NSITE, f))
		goto out;
	if (f[0].val != NULL)
		parse_to(x, f[0].val, s);
	else
		err(x, key, "site \"%s\" has no upstream; add to: http://127.0.0.1:9000",
		    s->host);
	confacme_site(&x->d, x->dir, f[1].val, s);
	if (f[2].val != NULL && site_bool(x, f[2].val, "default", s, &s->is_default) &&
	    s->is_default) {
		if (x->default_node != NULL)
			err(x, f[2].val, "site \"%s\" is marked default, but so is the site at "
			    "line %d; at most one site may be default", s->host,
			    (int)x->default_node->start_mark.line + 1);
		else
			x->default_node = f[2].val;
	}
	if (f[3].val != NULL)
		site_bool(x, f[3].val, "redirect", s, &s->redirect);
	if (f[4].val != NULL)
		parse_hsts(x, f[4].val, s);
	confaccess_site(&x->d, x->dir, x->c->data, x->d.name, x->need_moat_ca, f + 5, s);
	confabuse_site(&x->d, f + 5 + CONFACCESS_NKEYS, s);
out:
	free(where);
	free(what);
}

static void site_defaults(struct conf_site *s)
{
	s->tls = CONF_TLS_INTERNAL;
	s->redirect = true;
	s->hsts = true;
	s->hsts_max_age = HSTS_DEFAULT_S;
}

static void parse_sites(struct ctx *x, const yaml_node_t *n)
{
	struct conf *c = x->c;
	yaml_node_pair_t *p;
	size_t npairs, i;

	if (n->type != YAML_MAPPING_NODE && !confdoc_is_null(n)) {
		char *got = confdoc_describe(&x->d, n);

		err(x, n, "sites must be a mapping of host names to settings, like "
		    "\"app.example.org: { to: http://127.0.0.1:9000 }\", not %s", got);
		free(got);
		return;
	}
	npairs = n->type == YAML_MAPPING_NODE ?
		 (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start) : 0;
	if (npairs == 0) {
		err(x, n, "at least one site is required, like \"sites: { app.example.org: { "
		    "to: http://127.0.0.1:9000 } }\"");
		return;
	}
	c->sites = xcalloc(npairs, sizeof(*c->sites));
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = confdoc_node(&x->d, p->key), *v = confdoc_node(&x->d, p->value);
		struct conf_site *s = &c->sites[c->nsites];
		const char *name;
		char *why = NULL;

		name = confdoc_scalar(&x->d, k, "a site name", "\"app.example.org\"");
		if (name == NULL)
			continue;
		site_defaults(s);
		s->line = (int)k->start_mark.line + 1;
		s->col = (int)k->start_mark.column + 1;
		if (confval_site_name(name, &s->host, &why) < 0) {
			err(x, k, "%s", why);
			free(why);
			/* Still check the body, with the name as written. */
			s->host = xstrdup(name);
		}
		for (i = 0; i < c->nsites; i++) {
			if (strcmp(c->sites[i].host, s->host) != 0)
				continue;
			err(x, k, "duplicate site \"%s\"; it was already declared at line %d%s",
			    name, c->sites[i].line,
			    strcmp(name, s->host) != 0 ? " (names are compared in lowercase, without a trailing dot)" : "");
			break;
		}
		c->nsites++;
		parse_site_body(x, k, v, s);
	}
}

/* ---- whole file ------------------------------------------------------ */

static void default_listen(struct ctx *x, struct lsn *l, const char *s)
{
	char *why = NULL;

	if (l->given)
		return;
	if (confval_listen(s, &l->addr, &l->n, &why) < 0) {
		err(x, NULL, "default listen address %s: %s", s, why);
		free(why);
		return;
	}
	l->node = xcalloc(l->n, sizeof(*l->node));
}

static void report_overlap(struct ctx *x, const struct conf_addr *y,
			   const yaml_node_t *yn, const char *yproto,
			   const struct conf_addr *w, const yaml_node_t *wn,
			   const char *wproto)
{
	char *from;

	if (wn != NULL)
		from = xasprintf("at line %d", (int)wn->start_mark.line + 1);
	else
		from = xstrdup("by default");
	if (confval_addr_is_same(w, y))
		err(x, yn != NULL ? yn : wn, "listen address \"%s\" for %s is already used for "
		    "%s %s; each address and port can be used only once", y->text, yproto,
		    wproto, from);
	else
		err(x, yn != NULL ? yn : wn, "listen address \"%s\" for %s overlaps \"%s\" for "
		    "%s %s, which includes it; each address and port can be used only once",
		    y->text, yproto, w->text, wproto, from);
	free(from);
}

/* Every listen address that would bind the same socket as an earlier one. */
static void check_overlaps(struct ctx *x)
{
	const struct lsn *ls[2] = { &x->http, &x->https };
	static const char *const proto[2] = { "http", "https" };
	size_t a, b, i, j, end;
	bool found;

	for (b = 0; b < 2; b++) {
		for (j = 0; j < ls[b]->n; j++) {
			found = false;
			for (a = 0; a <= b && !found; a++) {
				end = a == b ? j : ls[a]->n;
				for (i = 0; i < end && !found; i++) {
					found = confval_addr_overlaps(&ls[a]->addr[i],
								      &ls[b]->addr[j]);
					if (found)
						report_overlap(x, &ls[b]->addr[j], ls[b]->node[j],
							       proto[b], &ls[a]->addr[i],
							       ls[a]->node[i], proto[a]);
				}
			}
		}
	}
}

static void parse_root(struct ctx *x, const yaml_node_t *root)
{
	static const char *const keys[] = {
		"data", "listen", "workers", "access_log", "timeouts", "limits", "sites",
		CONFABUSE_ROOT_KEYS, CONFACME_ROOT_KEYS
	};
	struct confdoc_field f[7 + CONFABUSE_NROOT + CONFACME_NROOT];

	if (!confdoc_fields(&x->d, root, "the configuration", "at the top level",
			    "\"sites: { app.example.org: { to: http://127.0.0.1:9000 } }\"",
			    keys, 7 + CONFABUSE_NROOT + CONFACME_NROOT, f))
		return;
	/* before the listeners, which check proxy_protocol against trusted_proxies */
	confabuse_root(&x->d, f + 7, x->c);
	if (f[0].val != NULL)
		parse_data(x, f[0].val);
	if (f[1].val != NULL)
		parse_listen(x, f[1].val);
	if (f[2].val != NULL)
		parse_workers(x, f[2].val);
	if (f[3].val != NULL)
		parse_access_log(x, f[3].val);
	if (f[4].val != NULL)
		parse_timeouts(x, f[4].val);
	if (f[5].val != NULL)
		parse_limits(x, f[5].val);
	confacme_root(&x->d, x->dir, f + 7 + CONFABUSE_NROOT, x->c);
	if (f[6].val != NULL)
		parse_sites(x, f[6].val);
	else
		err(x, root, "at least one site is required; add a \"sites:\" section like "
		    "\"sites: { app.example.org: { to: http://127.0.0.1:9000 } }\"");
}

static struct conf *conf_new(const char *file)
{
	struct conf *c = xcalloc(1, sizeof(*c));

	c->file = xstrdup(file);
	c->data = xstrdup("/var/lib/moat");
	c->workers = auto_workers();
	c->access_log = xstrdup("stdout");
	c->t.header_ms = 10 * 1000;
	c->t.idle_ms = 60 * 1000;
	c->t.connect_ms = 5 * 1000;
	c->t.response_ms = 60 * 1000;
	c->t.drain_ms = 10 * 1000;
	c->t.upstream_idle_ms = 30 * 1000;
	c->max_header_bytes = 32 * 1024;
	c->max_body_bytes = 0;
	c->t.write_ms = 30 * 1000;
	c->t.body_ms = 10 * 1000;
	c->min_body_rate = 1024;
	c->conns_per_client = 256;
	c->ban_table = BANS_DEFAULT_CAP;
	confabuse_defaults(c);
	confacme_defaults(c);
	return c;
}

static struct conf *parse(const char *name, const char *dir, const char *text, size_t len,
			  bool need_moat_ca, char **errs)
{
	yaml_node_t *root;
	struct conf *c = NULL;
	struct ctx x;
	size_t i;

	*errs = NULL;
	memset(&x, 0, sizeof(x));
	confdoc_init(&x.d, name);
	x.need_moat_ca = need_moat_ca;
	x.dir = confval_abs_dir(dir);
	x.c = conf_new(name);
	root = confdoc_load(&x.d, text, len);
	if (root == NULL)
		goto out;
	parse_root(&x, root);
	default_listen(&x, &x.http, ":80");
	default_listen(&x, &x.https, ":443");
	check_overlaps(&x);
out:
	x.c->http = x.http.addr;
	x.c->nhttp = x.http.n;
	x.c->https = x.https.addr;
	x.c->nhttps = x.https.n;
	for (i = 0; i < x.c->nsites && x.c->default_site == NULL; i++) {
		if (x.c->sites[i].is_default)
			x.c->default_site = &x.c->sites[i];
	}
	if (root != NULL)
		confacme_check(&x.d, x.c);
	if (confdoc_has_errors(&x.d)) {
		*errs = confdoc_errors(&x.d);
		conf_free(x.c);
	} else {
		c = x.c;
	}
	free(x.http.node);
	free(x.https.node);
	free(x.dir);
	confdoc_free(&x.d);
	return c;
}

/* The whole file, or NULL with *errs set. */
static char *read_text(const char *path, size_t *len, char **errs)
{
	char *buf = NULL;
	struct stat st;
	ssize_t r;
	size_t n = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*errs = xasprintf("%s: cannot read the configuration: %s\n", path,
				  strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*errs = xasprintf("%s: cannot read the configuration: not a regular file\n",
				  path);
		goto out_close;
	}
	if (st.st_size > CONF_MAX_BYTES) {
		*errs = xasprintf("%s: the configuration is larger than %d bytes; is this the "
				  "right file?\n", path, CONF_MAX_BYTES);
		goto out_close;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*errs = xasprintf("%s: cannot read the configuration: %s\n", path,
					  strerror(errno));
			free(buf);
			buf = NULL;
			goto out_close;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
out_close:
	close(fd);
out:
	return buf;
}

struct conf *conf_parse(const char *name, const char *dir, const char *text,
			size_t len, char **errs)
{
	return parse(name, dir, text, len, true, errs);
}

static struct conf *load(const char *path, bool need_moat_ca, char **errs)
{
	struct conf *c = NULL;
	char *text, *dir = NULL;
	size_t len = 0;

	*errs = NULL;
	text = read_text(path, &len, errs);
	if (text == NULL)
		goto out;
	dir = fs_dirname(path);
	c = parse(path, dir, text, len, need_moat_ca, errs);
out:
	free(dir);
	free(text);
	return c;
}

struct conf *conf_load(const char *path, char **errs)
{
	return load(path, true, errs);
}

struct conf *conf_load_for_ca(const char *path, char **errs)
{
	return load(path, false, errs);
}

/* Listen on a name, or on the fallback literal if the name does not resolve
 * (a broken /etc/hosts should not stop the demo). */
static void demo_listen(struct conf_addr **addrs, size_t *n, const char *name,
			const char *fallback)
{
	char *why = NULL;

	if (confval_listen(name, addrs, n, &why) == 0)
		return;
	free(why);
	why = NULL;
	if (confval_listen(fallback, addrs, n, &why) < 0) {
		fprintf(stderr, "moat: %s: %s\n", __func__, why);
		free(why);
	}
}

struct conf *conf_demo(const char *data_dir)
{
	struct conf *c = conf_new(DEMO_FILE);
	struct conf_site *s;

	free(c->data);
	c->data = xstrdup(data_dir);
	demo_listen(&c->https, &c->nhttps, "localhost:8443", "127.0.0.1:8443");
	demo_listen(&c->http, &c->nhttp, "localhost:8080", "127.0.0.1:8080");
	c->sites = xcalloc(1, sizeof(*c->sites));
	c->nsites = 1;
	s = &c->sites[0];
	site_defaults(s);
	s->host = xstrdup("localhost");
	s->welcome = true;
	s->is_default = true;
	c->default_site = s;
	return c;
}

static void free_addrs(struct conf_addr *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(a[i].text);
	free(a);
}

void conf_free(struct conf *c)
{
	size_t i, j;

	if (c == NULL)
		return;
	for (i = 0; i < c->nsites; i++) {
		struct conf_site *s = &c->sites[i];

		for (j = 0; j < s->nup; j++) {
			free(s->up[j].url);
			free(s->up[j].hostport);
			free(s->up[j].addr.text);
		}
		free(s->up);
		free(s->host);
		free(s->cert_file);
		free(s->key_file);
		confaccess_free(s);
		confabuse_free_site(s);
	}
	free(c->sites);
	confabuse_free(c);
	confacme_free(c);
	free_addrs(c->http, c->nhttp);
	free_addrs(c->https, c->nhttps);
	free(c->access_log);
	free(c->data);
	free(c->file);
	free(c);
}

const struct conf_site *conf_find_site(const struct conf *c, const char *host)
{
	const struct conf_site *s = NULL;
	const char *rest;
	size_t i;

	if (host == NULL)
		goto fallback;
	for (i = 0; i < c->nsites; i++) {
		if (strcmp(c->sites[i].host, host) == 0) {
			s = &c->sites[i];
			goto out;
		}
	}
	rest = strchr(host, '.');
	if (rest == NULL)
		goto fallback;
	rest++;
	for (i = 0; i < c->nsites; i++) {
		const char *h = c->sites[i].host;

		if (h[0] == '*' && h[1] == '.' && strcmp(h + 2, rest) == 0) {
			s = &c->sites[i];
			goto out;
		}
	}
fallback:
	s = c->default_site;
out:
	return s;
}
