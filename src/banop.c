/*
 * banop.c - see banop.h.
 */
#include "banop.h"
#include "conf.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* v4-mapped 127.0.0.1 and ::1, both single addresses. */
static const struct cidr default_never[] = {
	{ .a = { .b = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 } }, .bits = 128 },
	{ .a = { .b = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 } }, .bits = 128 },
};

struct banop_exempt banop_default_exempt(void)
{
	struct banop_exempt ex = {
		.never_ban = default_never,
		.nnever_ban = sizeof(default_never) / sizeof(default_never[0]),
	};

	return ex;
}

struct banop_exempt banop_exempt_of(const struct conf *c)
{
	struct banop_exempt ex = banop_default_exempt();

	if (c != NULL) {
		ex.never_ban = c->never_ban;
		ex.nnever_ban = c->nnever_ban;
		ex.trusted = c->trusted;
		ex.ntrusted = c->ntrusted;
	}
	return ex;
}

int banop_key(const char *text, struct cidr *key, char **why)
{
	struct ipaddr a;
	struct cidr c;
	const char *cwhy = NULL;

	if (strchr(text, '/') == NULL) {
		if (ipaddr_parse(text, strlen(text), &a) < 0) {
			*why = xasprintf("\"%s\" is not an IP address (want 192.0.2.7 or 2001:db8::7)",
					 text);
			return MOAT_EINVAL;
		}
		*key = ipaddr_key(&a);
		return 0;
	}
	if (cidr_parse(text, &c, &cwhy) < 0) {
		*why = xasprintf("\"%s\": %s", text, cwhy != NULL ? cwhy : "not a prefix");
		return MOAT_EINVAL;
	}
	*key = ipaddr_key(&c.a);
	if (key->bits != c.bits || !ipaddr_equal(&key->a, &c.a)) {
		*why = xasprintf("\"%s\" is not a client: moat bans one IPv4 address or one IPv6 /64 "
				 "(want 192.0.2.7, 2001:db8::7 or 2001:db8::/64)", text);
		return MOAT_EINVAL;
	}
	return 0;
}

/* Two prefixes overlap when the shorter one holds the other's start. */
static const struct cidr *overlap(const struct cidr *key, const struct cidr *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (cidr_contains(&l[i], &key->a) || cidr_contains(key, &l[i].a))
			return &l[i];
	return NULL;
}

static int check_exempt(const char *text, const struct cidr *key, const struct banop_exempt *ex,
			char **why)
{
	const struct cidr *hit;
	char s[NETADDR_TEXT];

	hit = overlap(key, ex->never_ban, ex->nnever_ban);
	if (hit != NULL) {
		*why = xasprintf("%s is in never_ban (%s): moat never bans it", text,
				 cidr_format(hit, s, sizeof(s)));
		return MOAT_EEXIST;
	}
	hit = overlap(key, ex->trusted, ex->ntrusted);
	if (hit != NULL) {
		*why = xasprintf("%s is in trusted_proxies (%s): banning it would shut out every "
				 "client behind that proxy; ban the client's own address instead",
				 text, cidr_format(hit, s, sizeof(s)));
		return MOAT_EEXIST;
	}
	return 0;
}

static int check_reason(const char *reason, char **why)
{
	size_t i, len = strlen(reason);

	if (len == 0 || len >= BAN_REASON_MAX) {
		*why = xasprintf("the reason is %zu bytes; give 1 to %d", len, BAN_REASON_MAX - 1);
		return MOAT_EINVAL;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)reason[i];

		if (ch < 0x20 || ch == 0x7f) {
			*why = xasprintf("the reason holds a control character (byte %zu); "
					 "give one line of text", i + 1);
			return MOAT_EINVAL;
		}
	}
	return 0;
}

int banop_make(const char *text, int64_t for_s, const char *reason, int64_t now,
	       const struct banop_exempt *ex, struct ban *out, char **why)
{
	int rc;

	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (reason == NULL)
		reason = BANOP_REASON_DEFAULT;
	rc = banop_key(text, &out->key, why);
	if (rc == 0 && (for_s < 1 || for_s > BANOP_FOR_MAX)) {
		*why = xasprintf("a ban lasts 1 second to 10 years (%lld seconds), not %lld seconds",
				 (long long)BANOP_FOR_MAX, (long long)for_s);
		rc = MOAT_EINVAL;
	}
	if (rc == 0)
		rc = check_reason(reason, why);
	if (rc == 0)
		rc = check_exempt(text, &out->key, ex, why);
	if (rc < 0)
		return rc;
	out->since = now;
	out->until = now + for_s;
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
	return 0;
}

json_t *banop_json(const struct ban *b, int64_t now)
{
	char addr[NETADDR_TEXT];
	json_t *j, *r;

	/* A reason that is not UTF-8 (a hand-edited file) still shows. */
	r = json_string(b->reason);
	if (r == NULL)
		r = json_string("(not UTF-8)");
	j = json_pack("{s:s, s:I, s:I, s:I, s:o}", "address",
		      cidr_format(&b->key, addr, sizeof(addr)), "since", (json_int_t)b->since,
		      "until", (json_int_t)b->until, "remaining",
		      (json_int_t)(b->until > now ? b->until - now : 0), "reason", r);
	if (j == NULL)
		abort(); /* OOM only */
	return j;
}

json_t *banop_json_list(const struct ban *b, size_t from, size_t n, int64_t now)
{
	json_t *l = json_array();
	size_t i;

	if (l == NULL)
		abort();
	for (i = from; i < n; i++)
		json_array_append_new(l, banop_json(&b[i], now));
	return l;
}
