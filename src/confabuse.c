/*
 * confabuse.c - see confabuse.h.
 */
#include "confabuse.h"
#include "conf.h"
#include "confval.h"
#include "guard_ban.h"
#include "pathpat.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RATE 1000000u
#define MAX_BURST 1000000u
#define MAX_CIDRS 1024
#define MAX_RULES 64
#define MAX_BAN_FOR_MS (3650ull * 86400 * 1000)

static const char RATE_HINT[] = "a rate like \"20/s\", \"20/s burst 40\" or \"5/m\" (count per "
				"s, m, h or d, then optionally burst N)";

void confabuse_defaults(struct conf *c)
{
	const char *why;

	c->never_ban = xcalloc(2, sizeof(*c->never_ban));
	cidr_parse("127.0.0.1", &c->never_ban[0], &why);
	cidr_parse("::1", &c->never_ban[1], &why);
	c->nnever_ban = 2;
	c->ip_header = CLIENTIP_XFF;
}

/* ---- addresses --------------------------------------------------------- */

static void parse_cidrs(struct confdoc *d, const yaml_node_t *n, const char *key,
			struct cidr **out, size_t *nout)
{
	const yaml_node_t *item;
	yaml_node_item_t *it;
	const char *t, *why;
	size_t cap;
	char *what = xasprintf("each entry of %s", key);

	free(*out);
	*out = NULL;
	*nout = 0;
	if (confdoc_is_null(n))
		goto out;
	if (n->type == YAML_SCALAR_NODE) {
		cap = 1;
	} else if (n->type == YAML_SEQUENCE_NODE) {
		cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	} else {
		confdoc_err(d, n, "%s must be a list of addresses or prefixes like "
			    "[ 127.0.0.1/32, \"192.168.0.0/16\", \"::1\" ], not a mapping", key);
		goto out;
	}
	if (cap > MAX_CIDRS) {
		confdoc_err(d, n, "%s has %zu entries; at most %d are allowed", key, cap,
			    MAX_CIDRS);
		goto out;
	}
	*out = xcalloc(cap + 1, sizeof(**out));
	for (it = n->type == YAML_SCALAR_NODE ? NULL : n->data.sequence.items.start;
	     it == NULL || it < n->data.sequence.items.top; it++) {
		item = it == NULL ? n : confdoc_node(d, *it);
		t = confdoc_scalar(d, item, what, "\"192.168.0.0/16\"");
		if (t != NULL && cidr_parse(t, &(*out)[*nout], &why) == 0)
			(*nout)++;
		else if (t != NULL)
			confdoc_err(d, item, "\"%s\" in %s is not an address or prefix: %s", t, key,
				    why);
		if (it == NULL)
			break;
	}
out:
	free(what);
}

static void parse_ip_header(struct confdoc *d, const yaml_node_t *n, struct conf *c)
{
	const char *t = confdoc_scalar(d, n, "client_ip_header", "x-forwarded-for");

	if (t == NULL)
		return;
	if (strcasecmp(t, "x-forwarded-for") == 0)
		c->ip_header = CLIENTIP_XFF;
	else if (strcasecmp(t, "forwarded") == 0)
		c->ip_header = CLIENTIP_FORWARDED;
	else
		confdoc_err(d, n, "\"%s\" is not a valid client_ip_header; expected "
			    "x-forwarded-for or forwarded (the header your trusted proxy sets)", t);
}

void confabuse_root(struct confdoc *d, const struct confdoc_field *f, struct conf *c)
{
	if (f[0].val != NULL)
		parse_cidrs(d, f[0].val, "trusted_proxies", &c->trusted, &c->ntrusted);
	if (f[1].val != NULL)
		parse_cidrs(d, f[1].val, "never_ban", &c->never_ban, &c->nnever_ban);
	if (f[2].val != NULL)
		parse_ip_header(d, f[2].val, c);
	if (f[2].val != NULL && c->ntrusted == 0)
		confdoc_err(d, f[2].key, "client_ip_header has no effect without trusted_proxies: "
			    "moat believes the header only from the proxies listed there");
}

/* ---- rates ------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Digits at *p (no sign, no leading zero run beyond one digit), at most max. */
static int read_uint(const char **p, uint64_t max, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	if (!isdigit((unsigned char)*s))
		return MOAT_EINVAL;
	while (isdigit((unsigned char)*s)) {
		x = x * 10 + (uint64_t)(*s - '0');
		if (x > max)
			return MOAT_EINVAL;
		s++;
	}
	*p = s;
	*v = x;
	return 0;
}

int confabuse_rate(const char *t, struct rate *r)
{
	static const struct { char unit; uint32_t ms; } units[] = {
		{ 's', 1000u }, { 'm', 60000u }, { 'h', 3600000u }, { 'd', 86400000u },
	};
	const char *p = skip_ws(t);
	uint64_t count, burst;
	size_t i;

	if (read_uint(&p, MAX_RATE, &count) != 0 || count == 0 || *p++ != '/')
		return MOAT_EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (*p == units[i].unit)
			break;
	if (i == sizeof(units) / sizeof(units[0]))
		return MOAT_EINVAL;
	p++;
	burst = count;
	if (*p == ' ' || *p == '\t') {
		p = skip_ws(p);
		if (strncmp(p, "burst", 5) == 0) {
			p = skip_ws(p + 5);
			if (read_uint(&p, MAX_BURST, &burst) != 0 || burst == 0)
				return MOAT_EINVAL;
			p = skip_ws(p);
		}
	}
	if (*p != '\0')
		return MOAT_EINVAL;
	r->count = (uint32_t)count;
	r->period_ms = units[i].ms;
	r->burst = (uint32_t)burst;
	return 0;
}

static bool rate_value(struct confdoc *d, const yaml_node_t *n, const char *what,
		       struct rate *r)
{
	const char *t = confdoc_scalar(d, n, what, "\"20/s burst 40\"");

	if (t == NULL)
		return false;
	if (confabuse_rate(t, r) != 0) {
		confdoc_err(d, n, "\"%s\" is not a valid rate for %s; expected %s, counts up to "
			    "%u", t, what, RATE_HINT, MAX_RATE);
		return false;
	}
	return true;
}

/* ---- path patterns ------------------------------------------------------ */

static struct pathpat *one_pattern(struct confdoc *d, const yaml_node_t *n, const char *what)
{
	const char *t = confdoc_scalar(d, n, what, "\"POST /api/auth/login\"");
	struct pathpat *p;
	char *why = NULL;

	if (t == NULL)
		return NULL;
	p = pathpat_parse(t, &why);
	if (p == NULL) {
		confdoc_err(d, n, "%s: %s", what, why);
		free(why);
	}
	return p;
}

/* ---- limit and path_limits --------------------------------------------- */

static void add_limit(struct conf_site *s, struct pathpat *match, const struct rate *r,
		      const char *text)
{
	struct conf_limit *l = &s->limits[s->nlimits];
	/* the place in the list too: two equal entries are two budgets */
	char *id = xasprintf("limit %zu: %s", s->nlimits, match != NULL ? pathpat_text(match) : "");

	s->nlimits++;
	l->match = match;
	l->rate = *r;
	l->text = xstrdup(text);
	l->id = limit_rule_id(s->host, id, r);
	free(id);
}

static void parse_path_limits(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	static const char *const keys[] = { "match", "limit" };
	struct confdoc_field f[2];
	yaml_node_item_t *it;
	char *what = xasprintf("path_limits in site \"%s\"", s->host), *where;
	struct pathpat *p;
	struct rate r;
	size_t count;

	if (n->type != YAML_SEQUENCE_NODE) {
		confdoc_err(d, n, "%s must be a list like [ { match: \"POST /api/upload/**\", "
			    "limit: \"2/s burst 5\" } ]", what);
		goto out;
	}
	count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > MAX_RULES) {
		confdoc_err(d, n, "%s has %zu rules; at most %d are allowed", what, count, MAX_RULES);
		goto out;
	}
	s->limits = xrealloc(s->limits, (s->nlimits + count) * sizeof(*s->limits));
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		const yaml_node_t *item = confdoc_node(d, *it);

		where = xasprintf("in an entry of %s", what);
		if (confdoc_fields(d, item, "each entry of path_limits", where,
				   "{ match: \"POST /api/upload/**\", limit: \"2/s burst 5\" }",
				   keys, 2, f)) {
			if (f[0].val == NULL || f[1].val == NULL) {
				confdoc_err(d, item, "each entry of %s needs both match and limit, "
					    "like { match: \"POST /api/upload/**\", limit: \"2/s\" }",
					    what);
			} else {
				p = one_pattern(d, f[0].val, "match");
				if (p != NULL && rate_value(d, f[1].val, "limit", &r))
					add_limit(s, p, &r, confdoc_text(d, f[1].val));
				else
					pathpat_free(p);
			}
		}
		free(where);
	}
out:
	free(what);
}

/* ---- ban rules ------------------------------------------------------------ */

static bool parse_matches(struct confdoc *d, const yaml_node_t *n, struct conf_ban *b)
{
	yaml_node_item_t *it;
	size_t count = 1;
	struct pathpat *p;

	if (n->type == YAML_SEQUENCE_NODE)
		count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count == 0 || count > MAX_RULES) {
		confdoc_err(d, n, "match must name 1 to %d requests like \"POST /api/auth/login\"",
			    MAX_RULES);
		return false;
	}
	b->match = xcalloc(count, sizeof(*b->match));
	if (n->type != YAML_SEQUENCE_NODE) {
		b->match[0] = one_pattern(d, n, "match");
		b->nmatch = b->match[0] != NULL;
		return b->nmatch == 1;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		p = one_pattern(d, confdoc_node(d, *it), "each entry of match");
		if (p != NULL)
			b->match[b->nmatch++] = p;
	}
	return b->nmatch == count;
}

static bool one_status(struct confdoc *d, const yaml_node_t *n, struct conf_ban *b)
{
	const char *t = confdoc_scalar(d, n, "status", "401");
	uint64_t v;

	if (t == NULL)
		return false;
	if (confval_uint(t, 599, &v) != 0 || v < 100) {
		confdoc_err(d, n, "\"%s\" is not an HTTP status; expected a number from 100 to 599 "
			    "like 401", t);
		return false;
	}
	b->status[v / 64] |= 1ull << (v % 64);
	return true;
}

static void parse_status(struct confdoc *d, const yaml_node_t *n, struct conf_ban *b)
{
	yaml_node_item_t *it;

	memset(b->status, 0, sizeof(b->status));
	if (n->type != YAML_SEQUENCE_NODE) {
		one_status(d, n, b);
		return;
	}
	if (n->data.sequence.items.start == n->data.sequence.items.top)
		confdoc_err(d, n, "status is an empty list; give the answers that count as "
			    "failures, like [401, 403]");
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
		one_status(d, confdoc_node(d, *it), b);
}

/* "5 in 10m" */
static void parse_after(struct confdoc *d, const yaml_node_t *n, struct conf_ban *b)
{
	const char *t = confdoc_scalar(d, n, "after", "\"5 in 10m\""), *p;
	uint64_t count, ms;

	if (t == NULL)
		return;
	p = skip_ws(t);
	if (read_uint(&p, BAN_AFTER_MAX, &count) != 0 || count == 0 || strncmp(p, " in ", 4) != 0 ||
	    confval_duration(skip_ws(p + 4), &ms) != 0 || ms < 1000 || ms > MAX_BAN_FOR_MS) {
		confdoc_err(d, n, "\"%s\" is not a valid after; expected \"N in DURATION\" like "
			    "\"5 in 10m\", N from 1 to %d and the window from 1s to 3650d", t,
			    BAN_AFTER_MAX);
		return;
	}
	b->after = (uint32_t)count;
	b->window_ms = ms;
}

static void parse_for(struct confdoc *d, const yaml_node_t *n, struct conf_ban *b)
{
	const char *t = confdoc_scalar(d, n, "for", "\"1h\"");
	uint64_t ms;

	if (t == NULL)
		return;
	if (confval_duration(t, &ms) != 0 || ms < 1000 || ms > MAX_BAN_FOR_MS) {
		confdoc_err(d, n, "\"%s\" is not a valid ban duration; expected 1s to 3650d, like "
			    "\"1h\"", t);
		return;
	}
	b->for_ms = ms;
}

/* The failure counters' identity: everything that decides what counts and
 * what follows, and the rule's place, so two rules never share counters. */
static void ban_rule_id(const struct conf_site *s, struct conf_ban *b)
{
	struct rate r = { b->after, (uint32_t)(b->window_ms > UINT32_MAX ? UINT32_MAX : b->window_ms),
			  (uint32_t)b->nmatch };
	size_t len = 0, i;
	char *text, *id;

	for (i = 0; i < b->nmatch; i++)
		len += strlen(pathpat_text(b->match[i])) + 2;
	text = xcalloc(len + 1, 1);
	for (i = 0; i < b->nmatch; i++) {
		if (i > 0)
			strcat(text, ", ");
		strcat(text, pathpat_text(b->match[i]));
	}
	b->text = text;
	id = xasprintf("ban %zu: %s; status", s->nbans, text);
	for (i = 0; i < sizeof(b->status) / sizeof(b->status[0]); i++) {
		char *t = xasprintf("%s %llx", id, (unsigned long long)b->status[i]);

		free(id);
		id = t;
	}
	text = xasprintf("%s; window %llu; for %llu", id, (unsigned long long)b->window_ms,
			 (unsigned long long)b->for_ms);
	b->id = limit_rule_id(s->host, text, &r);
	free(text);
	free(id);
}

static void parse_one_ban(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	static const char *const keys[] = { "match", "status", "after", "for" };
	static const char example[] = "{ match: \"POST /api/auth/login\", status: [401, 403], "
				      "after: \"5 in 10m\", for: 1h }";
	struct confdoc_field f[4];
	struct conf_ban *b = &s->bans[s->nbans];
	char *where = xasprintf("in a ban rule of site \"%s\"", s->host);

	memset(b, 0, sizeof(*b));
	if (!confdoc_fields(d, n, "each ban rule", where, example, keys, 4, f))
		goto out;
	if (f[0].val == NULL) {
		confdoc_err(d, n, "a ban rule of site \"%s\" needs match: the requests to watch, "
			    "like %s", s->host, example);
		goto out;
	}
	/* defaults: failed logins, 5 in 10 minutes, banned for an hour */
	b->status[401 / 64] |= 1ull << (401 % 64);
	b->status[403 / 64] |= 1ull << (403 % 64);
	b->after = 5;
	b->window_ms = 600000;
	b->for_ms = 3600000;
	parse_matches(d, f[0].val, b);
	if (f[1].val != NULL)
		parse_status(d, f[1].val, b);
	if (f[2].val != NULL)
		parse_after(d, f[2].val, b);
	if (f[3].val != NULL)
		parse_for(d, f[3].val, b);
	ban_rule_id(s, b);
	s->nbans++;
out:
	free(where);
}

static void parse_bans(struct confdoc *d, const yaml_node_t *n, struct conf_site *s)
{
	yaml_node_item_t *it;
	size_t count = 1;

	if (n->type == YAML_SEQUENCE_NODE)
		count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > MAX_RULES) {
		confdoc_err(d, n, "ban in site \"%s\" has %zu rules; at most %d are allowed",
			    s->host, count, MAX_RULES);
		return;
	}
	s->bans = xcalloc(count + 1, sizeof(*s->bans));
	if (n->type != YAML_SEQUENCE_NODE) {
		parse_one_ban(d, n, s);
		return;
	}
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
		parse_one_ban(d, confdoc_node(d, *it), s);
}

void confabuse_site(struct confdoc *d, const struct confdoc_field *f, struct conf_site *s)
{
	struct rate r;
	char *what;

	if (f[0].val != NULL) {
		what = xasprintf("limit in site \"%s\"", s->host);
		if (rate_value(d, f[0].val, what, &r)) {
			s->limits = xrealloc(s->limits, (s->nlimits + 1) * sizeof(*s->limits));
			add_limit(s, NULL, &r, confdoc_text(d, f[0].val));
		}
		free(what);
	}
	if (f[1].val != NULL)
		parse_path_limits(d, f[1].val, s);
	if (f[2].val != NULL)
		parse_bans(d, f[2].val, s);
}

void confabuse_free_site(struct conf_site *s)
{
	size_t i, j;

	for (i = 0; i < s->nlimits; i++) {
		pathpat_free(s->limits[i].match);
		free(s->limits[i].text);
	}
	free(s->limits);
	for (i = 0; i < s->nbans; i++) {
		for (j = 0; j < s->bans[i].nmatch; j++)
			pathpat_free(s->bans[i].match[j]);
		free(s->bans[i].match);
		free(s->bans[i].text);
	}
	free(s->bans);
}

void confabuse_free(struct conf *c)
{
	free(c->trusted);
	free(c->never_ban);
}
