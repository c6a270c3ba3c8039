/*
 * test_duckdns.c - DuckDNS's verbose answers (OK, KO, garbage, oversized)
 * and the request URL (percent-encoding, the op's parameters). No network:
 * duckdns_parse and duckdns_url are what duckdns_call is made of. Also the
 * DDNS updater's retry schedule (ddns_retry_ms), DuckDNS's only user of it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ddns.h"
#include "duckdns.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- answers ---------------------------------------------------------- */

struct answer {
	const char *name;
	enum duckdns_op op;
	const char *body;
	size_t len;
	int rc;
	bool updated;
	const char *ipv4;
	const char *ipv6;
};

static const struct answer answers[] = {
	{ "updated v4", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\n\nUPDATED"), 0, true, "192.0.2.7", "" },
	{ "nochange v4", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\n\nNOCHANGE"), 0, false, "192.0.2.7",
	  "" },
	{ "both families", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\n2001:db8::21\nUPDATED"), 0, true,
	  "192.0.2.7", "2001:db8::21" },
	{ "no addresses", DUCKDNS_ADDRESS, S("OK\n\n\nNOCHANGE"), 0, false, "", "" },
	{ "crlf and final newline", DUCKDNS_ADDRESS, S("OK\r\n192.0.2.7\r\n\r\nUPDATED\r\n"), 0,
	  true, "192.0.2.7", "" },
	{ "blanks around lines", DUCKDNS_ADDRESS, S("OK \n 192.0.2.7\n\nUPDATED \n\n\n"), 0, true,
	  "192.0.2.7", "" },
	{ "ko", DUCKDNS_ADDRESS, S("KO"), MOAT_EINVAL, false, "", "" },
	{ "ko newline", DUCKDNS_ADDRESS, S("KO\n"), MOAT_EINVAL, false, "", "" },
	{ "ko with more", DUCKDNS_ADDRESS, S("KO\n1.2.3.4\n\nUPDATED"), MOAT_EPROTO, false, "",
	  "" },
	{ "empty", DUCKDNS_ADDRESS, S(""), MOAT_EPROTO, false, "", "" },
	{ "only newlines", DUCKDNS_ADDRESS, S("\n\n"), MOAT_EPROTO, false, "", "" },
	{ "terse ok for address", DUCKDNS_ADDRESS, S("OK"), MOAT_EPROTO, false, "", "" },
	{ "lowercase ok", DUCKDNS_ADDRESS, S("ok\n192.0.2.7\n\nUPDATED"), MOAT_EPROTO, false, "",
	  "" },
	{ "html", DUCKDNS_ADDRESS, S("<html><body>Login</body></html>"), MOAT_EPROTO, false, "",
	  "" },
	{ "bad status word", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\n\nDONE"), MOAT_EPROTO, false, "",
	  "" },
	{ "bad address", DUCKDNS_ADDRESS, S("OK\n192.0.2.777\n\nUPDATED"), MOAT_EPROTO, false, "",
	  "" },
	{ "bad ipv6", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\nnot-an-address\nUPDATED"), MOAT_EPROTO,
	  false, "", "" },
	{ "long address line", DUCKDNS_ADDRESS,
	  S("OK\n1111111111111111111111111111111111111111111111111111111111111111111\n\nUPDATED"),
	  MOAT_EPROTO, false, "", "" },
	{ "three lines", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\nUPDATED"), MOAT_EPROTO, false, "",
	  "" },
	{ "five lines", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\n\nUPDATED\nUPDATED"), MOAT_EPROTO,
	  false, "", "" },
	{ "many lines", DUCKDNS_ADDRESS, S("OK\n1\n2\n3\n4\n5\n6\n7\n8\n9"), MOAT_EPROTO, false,
	  "", "" },
	{ "nul byte", DUCKDNS_ADDRESS, S("OK\n192.0.2.7\0\n\nUPDATED"), MOAT_EPROTO, false, "",
	  "" },
	{ "txt verbose", DUCKDNS_TXT_SET, S("OK\nsome-token-value\nUPDATED"), 0, true, "", "" },
	{ "txt terse", DUCKDNS_TXT_SET, S("OK"), 0, false, "", "" },
	{ "txt four lines", DUCKDNS_TXT_SET, S("OK\n192.0.2.7\n\nNOCHANGE"), 0, false, "", "" },
	{ "txt clear", DUCKDNS_TXT_CLEAR, S("OK\n\nUPDATED\n"), 0, true, "", "" },
	{ "txt ko", DUCKDNS_TXT_SET, S("KO"), MOAT_EINVAL, false, "", "" },
	{ "txt bad status", DUCKDNS_TXT_SET, S("OK\nvalue\nMAYBE"), MOAT_EPROTO, false, "", "" },
	{ "txt garbage", DUCKDNS_TXT_CLEAR, S("Bad Gateway"), MOAT_EPROTO, false, "", "" },
};

static void test_answer(void **state)
{
	const struct answer *t = *state;
	struct duckdns_answer a;
	int rc;

	memset(&a, 0x5a, sizeof(a));
	rc = duckdns_parse(t->op, t->body, t->len, &a);
	if (rc != t->rc)
		fail_msg("%s: rc %d (%s), want %d (%s)", t->name, rc, moat_strerror(rc), t->rc,
			 moat_strerror(t->rc));
	if (a.updated != t->updated)
		fail_msg("%s: updated %d, want %d", t->name, a.updated, t->updated);
	if (strcmp(a.ipv4, t->ipv4) != 0)
		fail_msg("%s: ipv4 \"%s\", want \"%s\"", t->name, a.ipv4, t->ipv4);
	if (strcmp(a.ipv6, t->ipv6) != 0)
		fail_msg("%s: ipv6 \"%s\", want \"%s\"", t->name, a.ipv6, t->ipv6);
}

/* Longer than DUCKDNS_MAX_ANSWER: refused whatever it holds, even a valid
 * answer padded with blank lines. */
static void test_oversized(void **state)
{
	static const char valid[] = "OK\n1.2.3.4\n\nUPDATED";
	size_t n = DUCKDNS_MAX_ANSWER + 1;
	char *body = xmalloc(n);
	struct duckdns_answer a;
	int over, at;

	(void)state;
	memset(body, '\n', n);
	memcpy(body, valid, strlen(valid));
	over = duckdns_parse(DUCKDNS_ADDRESS, body, n, &a);
	/* exactly the limit is still read */
	at = duckdns_parse(DUCKDNS_ADDRESS, body, n - 1, &a);
	free(body);
	if (over != MOAT_ETOOBIG)
		fail_msg("oversized: rc %d (%s), want MOAT_ETOOBIG", over, moat_strerror(over));
	if (at != 0)
		fail_msg("at the limit: rc %d (%s), want 0", at, moat_strerror(at));
}

/* ---- URLs ------------------------------------------------------------- */

struct url {
	const char *name;
	const char *base;
	const char *token;
	const char *domains;
	enum duckdns_op op;
	const char *txt;
	const char *want;
};

static const struct url urls[] = {
	{ "address", "https://www.duckdns.org/update", "a7c4d0ad-114e-40ef-ba1d-d217904a50f2",
	  "example", DUCKDNS_ADDRESS, NULL,
	  "https://www.duckdns.org/update?domains=example"
	  "&token=a7c4d0ad-114e-40ef-ba1d-d217904a50f2&verbose=true&ip=" },
	{ "two domains keep their comma", "http://127.0.0.1:1/update", "t", "one,two",
	  DUCKDNS_ADDRESS, "ignored", "http://127.0.0.1:1/update?domains=one,two&token=t"
	  "&verbose=true&ip=" },
	{ "txt set", "http://127.0.0.1:1/update", "t", "example", DUCKDNS_TXT_SET,
	  "Ab-_9~x.y", "http://127.0.0.1:1/update?domains=example&token=t&verbose=true"
	  "&txt=Ab-_9~x.y" },
	{ "txt clear", "http://127.0.0.1:1/update", "t", "example", DUCKDNS_TXT_CLEAR, "x",
	  "http://127.0.0.1:1/update?domains=example&token=t&verbose=true&txt=removed&clear=true" },
	{ "token and txt escaped", "http://127.0.0.1:1/update", "a&b=c d/%+?#\xc3\xa9",
	  "ex&ample", DUCKDNS_TXT_SET, "v=1&w",
	  "http://127.0.0.1:1/update?domains=ex%26ample&token=a%26b%3Dc%20d%2F%25%2B%3F%23%C3%A9"
	  "&verbose=true&txt=v%3D1%26w" },
	{ "control bytes", "http://127.0.0.1:1/update", "\x01\x7f", "a", DUCKDNS_ADDRESS, NULL,
	  "http://127.0.0.1:1/update?domains=a&token=%01%7F&verbose=true&ip=" },
	{ "base with a query", "http://127.0.0.1:1/update?x=1", "t", "a", DUCKDNS_ADDRESS, NULL,
	  "http://127.0.0.1:1/update?x=1&domains=a&token=t&verbose=true&ip=" },
	{ "empty txt", "http://127.0.0.1:1/u", "t", "a", DUCKDNS_TXT_SET, NULL,
	  "http://127.0.0.1:1/u?domains=a&token=t&verbose=true&txt=" },
};

static void test_url(void **state)
{
	const struct url *t = *state;
	char *got = duckdns_url(t->base, t->token, t->domains, t->op, t->txt), copy[512];

	snprintf(copy, sizeof(copy), "%s", got);
	free(got);
	if (strcmp(copy, t->want) != 0)
		fail_msg("%s:\n got  %s\n want %s", t->name, copy, t->want);
}

/* The worst case (every byte escaped) fits the buffer duckdns_url sizes. */
static void test_url_all_escaped(void **state)
{
	char tok[256], *got, want[1024];
	size_t i, o;

	(void)state;
	for (i = 0; i < 255; i++)
		tok[i] = (char)(i + 1);
	tok[255] = '\0';
	got = duckdns_url("http://h/u", tok, "d", DUCKDNS_TXT_SET, tok);
	o = (size_t)snprintf(want, sizeof(want), "http://h/u?domains=d&token=");
	for (i = 0; i < 255; i++) {
		unsigned char c = (unsigned char)tok[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			want[o++] = (char)c;
		else
			o += (size_t)snprintf(want + o, sizeof(want) - o, "%%%02X", c);
	}
	want[o] = '\0';
	if (strncmp(got, want, o) != 0)
		fail_msg("all bytes:\n got  %s\n want %s", got, want);
	assert_non_null(strstr(got, "&verbose=true&txt=%01%02"));
	assert_int_equal(strlen(got), o + strlen("&verbose=true&txt=") + (o - strlen(
		"http://h/u?domains=d&token=")));
	free(got);
}

/* ---- retry schedule ---------------------------------------------------- */

#define MIN 60000u

static void test_retry_schedule(void **state)
{
	static const struct {
		unsigned failures;
		uint32_t every;
		uint64_t want;
	} rows[] = {
		{ 0, 5 * MIN, 5 * MIN },      /* success: the interval */
		{ 1, 5 * MIN, 1 * MIN },
		{ 2, 5 * MIN, 2 * MIN },
		{ 3, 5 * MIN, 5 * MIN },
		{ 4, 5 * MIN, 5 * MIN },      /* 10 min capped at every */
		{ 1, 60 * MIN, 1 * MIN },
		{ 4, 60 * MIN, 10 * MIN },
		{ 5, 60 * MIN, 20 * MIN },
		{ 6, 60 * MIN, 30 * MIN },
		{ 7, 60 * MIN, 30 * MIN },    /* the last step repeats */
		{ 1000000, 60 * MIN, 30 * MIN },
		{ 1, 1000, 1000 },            /* every: 1s retries each second */
		{ 6, 1000, 1000 },
		{ 0, 1000, 1000 },
	};
	size_t i;
	uint64_t got;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		got = ddns_retry_ms(rows[i].failures, rows[i].every);
		if (got != rows[i].want)
			fail_msg("failures %u every %u ms: %llu ms, want %llu ms", rows[i].failures,
				 rows[i].every, (unsigned long long)got,
				 (unsigned long long)rows[i].want);
	}
}

int main(void)
{
	struct CMUnitTest tests[64];
	int n = 0;
	size_t i;

	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		tests[n] = (struct CMUnitTest){ answers[i].name, test_answer, NULL, NULL,
						(void *)&answers[i] };
		n++;
	}
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		tests[n] = (struct CMUnitTest){ urls[i].name, test_url, NULL, NULL,
						(void *)&urls[i] };
		n++;
	}
	tests[n++] = (struct CMUnitTest){ "oversized", test_oversized, NULL, NULL, NULL };
	tests[n++] = (struct CMUnitTest){ "every byte escaped", test_url_all_escaped, NULL, NULL,
					  NULL };
	tests[n++] = (struct CMUnitTest){ "ddns retry schedule", test_retry_schedule, NULL, NULL,
					  NULL };
	return _cmocka_run_group_tests("duckdns", tests, (size_t)n, NULL, NULL);
}
