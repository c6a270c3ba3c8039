/*
 * guard.c - see guard.h.
 */
#include "guard.h"
#include "clientip.h"
#include "conf.h"
#include "conn.h"
#include "exchange.h"
#include "gen.h"
#include "guard_ban.h"
#include "guard_limit.h"
#include "log.h"
#include "netaddr.h"
#include "pathpat.h"
#include "util.h"
#include "worker.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * The rules in force for a request: the worker's newest configuration, not
 * the one the connection started with, so that a limit, ban rule,
 * never_ban or trusted_proxies entry a reload adds during an attack reaches
 * the attacker's open keep-alive connections too.
 */
static const struct conf *rules(const struct conn *c)
{
	return c->w->gen->conf;
}

/* x's site in cf (the same site, looked up again after a reload). */
static const struct conf_site *site_in(const struct conf *cf, const struct exchange *x)
{
	if (cf == exchange_conf(x->c))
		return x->site;
	return conf_find_site(cf, x->host);
}

static bool exempt(const struct conf *cf, const struct ipaddr *a)
{
	return cidr_list_contains(cf->never_ban, cf->nnever_ban, a) ||
	       cidr_list_contains(cf->trusted, cf->ntrusted, a);
}

static bool banned(const struct conf *cf, const struct ipaddr *a)
{
	return bans_active_now(a) && !exempt(cf, a);
}

#define REFUSAL_LINES 100 /* refused connections logged one by one per second and worker */

/*
 * A refused connection leaves an access log line with no request in it. A
 * flood of them (a banned client reconnecting in a loop costs it nothing)
 * would fill the disk, so each worker writes at most REFUSAL_LINES a
 * second; the next line written says how many were left out ("unlogged").
 * moat status counts every one.
 */
static void log_refusal(struct conn *c, enum deny_reason why)
{
	static __thread uint64_t window, lines, unlogged;
	struct access_rec r = {
		.client = c->peer,
		.start_ms = moat_now_ms(),
		.deny = deny_name(why),
	};

	deny_count(why);
	if (r.start_ms / 1000 != window) {
		window = r.start_ms / 1000;
		lines = 0;
	}
	if (++lines > REFUSAL_LINES) {
		unlogged++;
		return;
	}
	r.unlogged = unlogged;
	unlogged = 0;
	log_access(&r);
}

bool guard_admit(struct conn *c)
{
	const struct conf *cf = c->gen->conf;
	uint32_t per = cf->conns_per_client;
	/* an IPv6 client is its /64, as for limits and bans: many addresses
	 * of one /64 do not buy more connections */
	struct cidr key = ipaddr_key(&c->addr);

	if (banned(cf, &c->addr)) {
		log_refusal(c, DENY_BAN);
		return false;
	}
	/* a trusted proxy carries many clients: only the total applies to it */
	if (cidr_list_contains(cf->trusted, cf->ntrusted, &c->addr))
		per = 0;
	if (conncap_open(&key.a, per, cf->conns_total) != 0) {
		log_refusal(c, DENY_CONNCAP);
		return false;
	}
	c->counted = true;
	return true;
}

void guard_release(struct conn *c)
{
	struct cidr key;

	if (!c->counted)
		return;
	c->counted = false;
	key = ipaddr_key(&c->addr);
	conncap_close(&key.a);
}

bool guard_conn_banned(const struct conn *c)
{
	const struct conf *cf = rules(c);

	if (c->ban_closing)
		return false;
	/* A trusted proxy's connection carries many clients in turn: it goes
	 * only while it is busy for the banned one (a download, a WebSocket);
	 * an idle one stays for the others, and the banned client's next
	 * request through it gets 403. */
	return banned(cf, &c->addr) ||
	       (c->has_req_addr && c->x != NULL && banned(cf, &c->req_addr));
}

/* Loosely: "post /API/auth/login/" must count like "POST /api/auth/login"
 * when the upstream routes both to the same handler (pathpat.h). */
static bool rule_matches(const struct pathpat *p, const struct exchange *x)
{
	return p == NULL ||
	       pathpat_match_loose(p, x->method, strlen(x->method), x->path, strlen(x->path));
}

int guard_request(struct conn *c, struct exchange *x, const struct h1_msg *m,
		  uint32_t *retry_after)
{
	const struct conf *cf = rules(c);
	const struct conf_site *s = site_in(cf, x);
	bool trusted = cf == exchange_conf(c) ? c->peer_trusted :
		       cidr_list_contains(cf->trusted, cf->ntrusted, &c->addr);
	uint64_t now = 0;
	struct cidr key;
	uint32_t wait = 0;
	size_t i, k;

	x->client = c->addr;
	if (trusted) {
		x->client = clientip_resolve(m, cf->ip_header, cf->trusted, cf->ntrusted, &c->addr);
		ipaddr_format(&x->client, x->client_txt, sizeof(x->client_txt));
		c->req_addr = x->client;
		c->has_req_addr = true;
	}
	if (banned(cf, &x->client)) {
		x->deny = deny_name(DENY_BAN);
		deny_count(DENY_BAN);
		return 403;
	}
	if (s == NULL || s->nlimits == 0)
		return 0;
	key = ipaddr_key(&x->client);
	for (i = 0; i < s->nlimits && wait == 0; i++) {
		if (!rule_matches(s->limits[i].match, x))
			continue;
		if (now == 0)
			now = moat_now_ms();
		wait = limit_take(s->limits[i].id, &s->limits[i].rate, &key, now);
	}
	if (wait == 0)
		return 0;
	/* refused: the rules that let it through get their tokens back, so
	 * hammering one path does not also drain the site's budget */
	for (k = 0; k + 1 < i; k++)
		if (rule_matches(s->limits[k].match, x))
			limit_refund(s->limits[k].id, &s->limits[k].rate, &key);
	*retry_after = wait;
	x->deny = deny_name(DENY_RATE);
	deny_count(DENY_RATE);
	return 429;
}

static bool status_in(const struct conf_ban *b, int status)
{
	return status >= 0 && status < 640 && (b->status[status / 64] >> (status % 64)) & 1;
}

static bool ban_matches(const struct conf_ban *b, const struct exchange *x)
{
	size_t i;

	for (i = 0; i < b->nmatch; i++)
		if (rule_matches(b->match[i], x))
			return true;
	return false;
}

/* "10m", "1h", "90s": the largest unit that divides ms. */
static void fmt_duration(uint64_t ms, char *buf, size_t cap)
{
	static const struct { uint64_t ms; char unit; } u[] = {
		{ 86400000, 'd' }, { 3600000, 'h' }, { 60000, 'm' }, { 1000, 's' },
	};
	size_t i;

	for (i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		if (ms >= u[i].ms && ms % u[i].ms == 0) {
			snprintf(buf, cap, "%llu%c", (unsigned long long)(ms / u[i].ms), u[i].unit);
			return;
		}
	}
	snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

static void ban_now(struct exchange *x, const struct conf_site *s, const struct conf_ban *b,
		    int status)
{
	struct ban ban = {0};
	char win[24], dur[24], who[NETADDR_TEXT];

	ban.key = ipaddr_key(&x->client);
	ban.since = (int64_t)time(NULL);
	ban.until = ban.since + (int64_t)((b->for_ms + 999) / 1000);
	fmt_duration(b->window_ms, win, sizeof(win));
	fmt_duration(b->for_ms, dur, sizeof(dur));
	snprintf(ban.reason, sizeof(ban.reason), "site %s: %s answered %d %u times in %s",
		 s->host, b->text, status, b->after, win);
	bans_add(&ban);
	log_warn("banned %s for %s: %s", cidr_format(&ban.key, who, sizeof(who)), dur, ban.reason);
}

bool guard_observe(struct exchange *x, int status)
{
	const struct conf *cf = rules(x->c);
	const struct conf_site *s;
	struct cidr key;
	size_t i;

	if (x->site == NULL)
		return false;
	s = site_in(cf, x);
	if (s == NULL || s->nbans == 0 || exempt(cf, &x->client))
		return false;
	key = ipaddr_key(&x->client);
	for (i = 0; i < s->nbans; i++) {
		const struct conf_ban *b = &s->bans[i];

		if (!status_in(b, status) || !ban_matches(b, x))
			continue;
		if (ban_strike(b->id, b->after, b->window_ms, &key, moat_now_ms())) {
			ban_now(x, s, b, status);
			x->c->ban_closing = true;
			return true;
		}
	}
	return false;
}
