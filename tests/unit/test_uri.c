/*
 * test_uri.c - canonical hosts and targets, one cmocka test per table row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "uri.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

static int ntests;
static struct CMUnitTest tests[512];
static char names[512][80];

/* A printable test name for an input that may hold any byte. */
static const char *name_of(const char *prefix, const char *in, size_t n)
{
	char *out = names[ntests];
	size_t o, i;

	o = (size_t)snprintf(out, sizeof(names[0]), "%s \"", prefix);
	for (i = 0; i < n && o + 6 < sizeof(names[0]); i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(names[0]) - o, "\\x%02x", c);
	}
	snprintf(out + o, sizeof(names[0]) - o, "\"");
	return out;
}

static void add(const char *name, void (*fn)(void **), const void *row)
{
	assert_true(ntests < (int)(sizeof(tests) / sizeof(tests[0])));
	tests[ntests].name = name;
	tests[ntests].test_func = fn;
	tests[ntests].setup_func = NULL;
	tests[ntests].teardown_func = NULL;
	tests[ntests].initial_state = (void *)(uintptr_t)row;
	ntests++;
}

/* ---- hosts ----------------------------------------------------------- */

#define L10 "abcdefghij"
#define L63 L10 L10 L10 L10 L10 L10 "abc"
#define L61 L10 L10 L10 L10 L10 L10 "a"
/* 3 * (63 + 1) + 61 = 253 */
#define N253 L63 "." L63 "." L63 "." L61

struct host {
	const char *in;
	size_t n;
	int rc;
	const char *out;
	int port;
};

#define HOK(lit, out, port) { S(lit), 0, out, port }
#define HBAD(lit) { S(lit), MOAT_EPROTO, "", 0 }

static const struct host hosts[] = {
	HOK("example.org", "example.org", 0),
	HOK("Name.Example.:8443", "name.example", 8443),
	HOK("LOCALHOST", "localhost", 0),
	HOK("a", "a", 0),
	HOK("a.", "a", 0),
	HOK("a_b-c.d", "a_b-c.d", 0),
	HOK("-a.b-", "-a.b-", 0),
	HOK("127.0.0.1", "127.0.0.1", 0),
	HOK("127.0.0.1:8080", "127.0.0.1", 8080),
	HOK("999.1.1.1", "999.1.1.1", 0),
	HOK("x:1", "x", 1),
	HOK("x:65535", "x", 65535),
	HOK("x:00080", "x", 80),
	HOK("[::1]", "[::1]", 0),
	HOK("[::1]:80", "[::1]", 80),
	HOK("[2001:DB8::A]", "[2001:db8::a]", 0),
	HOK("[::FFFF:1.2.3.4]:443", "[::ffff:1.2.3.4]", 443),
	HOK(L63 ".org", L63 ".org", 0),
	HOK(N253, N253, 0),
	HOK(N253 ".", N253, 0),
	HOK(N253 ".:1", N253, 1),
	HBAD(""),
	HBAD("."),
	HBAD(".a"),
	HBAD("a..b"),
	HBAD("a.."),
	HBAD(".."),
	HBAD(":80"),
	HBAD("a:"),
	HBAD("a.:"),
	HBAD("a:0"),
	HBAD("a:00000"),
	HBAD("a:65536"),
	HBAD("a:99999"),
	HBAD("a:123456"),
	HBAD("a:-1"),
	HBAD("a:+1"),
	HBAD("a:8a"),
	HBAD("a:80:80"),
	HBAD("a: 80"),
	HBAD("a :80"),
	HBAD("u@a"),
	HBAD("u:p@a:80"),
	HBAD("@a"),
	HBAD("a b"),
	HBAD("a/b"),
	HBAD("a\\b"),
	HBAD("a%2eb"),
	HBAD("a*"),
	HBAD("a\0b"),
	HBAD("caf\xc3\xa9.org"),
	HBAD(L63 "a.org"),
	HBAD(N253 "b"),
	HBAD(N253 ".."),
	HBAD("[]"),
	HBAD("[::1"),
	HBAD("[::g]"),
	HBAD("[1.2.3.4]"),
	HBAD("[::1]x"),
	HBAD("[::1]:"),
	HBAD("[::1]:0"),
	HBAD("[::1%eth0]"),
	HBAD("[v1.x]"),
	HBAD("[::1]]"),
	HBAD("::1"),
};

static void t_host(void **state)
{
	const struct host *h = *state;
	char out[300];
	int port = -1, rc;

	rc = uri_canon_host(h->in, h->n, out, sizeof(out), &port);
	if (rc != h->rc)
		print_error("input \"%.*s\"\n", (int)h->n, h->in);
	assert_int_equal(rc, h->rc);
	assert_string_equal(out, h->out);
	assert_int_equal(port, h->port);
}

static void t_host_outsz(void **state)
{
	char out[16];
	int port;

	(void)state;
	assert_int_equal(uri_canon_host(S("Example.org:80"), out, 12, &port), 0);
	assert_string_equal(out, "example.org");
	assert_int_equal(port, 80);
	assert_int_equal(uri_canon_host(S("Example.org:80"), out, 11, &port), MOAT_ETOOBIG);
	assert_int_equal(port, 0);
	assert_int_equal(uri_canon_host(S("a."), out, 2, &port), 0);
	assert_string_equal(out, "a");
	assert_int_equal(uri_canon_host(S("a"), out, 0, &port), MOAT_ETOOBIG);
	/* Malformed wins over too big: the caller learns the real problem. */
	assert_int_equal(uri_canon_host(S("a..b"), out, 1, &port), MOAT_EPROTO);
}

/* ---- targets --------------------------------------------------------- */

struct target {
	const char *in;
	size_t n;
	int rc;
	const char *out;
};

#define TOK(lit, out) { S(lit), 0, out }
#define TBAD(lit) { S(lit), MOAT_EPROTO, "" }

static const struct target targets[] = {
	TOK("/", "/"),
	TOK("/a/b", "/a/b"),
	TOK("/A/B", "/A/B"),
	TOK("/a/./b", "/a/b"),
	TOK("/a/../b", "/b"),
	TOK("/public/../admin", "/admin"),
	TOK("/public/./../admin/", "/admin/"),
	TOK("/../a", "/a"),
	TOK("/../../a", "/a"),
	TOK("/a/b/../../../c", "/c"),
	TOK("/a/..", "/"),
	TOK("/a/b/..", "/a/"),
	TOK("/a/.", "/a/"),
	TOK("/.", "/"),
	TOK("/..", "/"),
	TOK("/a/b/../../..", "/"),
	TOK("//x", "/x"),
	TOK("//", "/"),
	TOK("/a//b///c", "/a/b/c"),
	TOK("/a/", "/a/"),
	TOK("/a//", "/a/"),
	TOK("/a/.//b", "/a/b"),
	TOK("/.a", "/.a"),
	TOK("/..a", "/..a"),
	TOK("/...", "/..."),
	TOK("/a.", "/a."),
	TOK("/a..", "/a.."),
	TOK("/a;b", "/a;b"),
	TOK("/a/b;c/", "/a/b;c/"),
	TOK("/;x", "/;x"),
	TOK("/%7euser", "/~user"),
	TOK("/%41%42c", "/ABc"),
	TOK("/%2d%2E%5f%7E", "/-._~"),
	TOK("/%2e%2e%2e", "/..."),
	TOK("/x%2e", "/x."),
	TOK("/%3a%3B", "/%3A%3B"),
	TOK("/%c3%a9", "/%C3%A9"),
	TOK("/%25", "/%25"),
	TOK("/%25%32%66", "/%252f"),
	TOK("/%20", "/%20"),
	TOK("/a?b", "/a?b"),
	TOK("/?", "/?"),
	TOK("/a/.?q", "/a/?q"),
	TOK("/a/..?q", "/?q"),
	TOK("/a/../b?x=/../y", "/b?x=/../y"),
	TOK("/a?%zz%2f\\", "/a?%zz%2f\\"),
	TOK("/a?b?c", "/a?b?c"),
	TBAD(""),
	TBAD("a"),
	TBAD("*"),
	TBAD("?a"),
	TBAD("http://a/"),
	TBAD("/%2f"),
	TBAD("/%2F"),
	TBAD("/a%2fb"),
	TBAD("/%5c"),
	TBAD("/%5C"),
	TBAD("/%00"),
	TBAD("/%2e%2e/admin"),
	TBAD("/public/%2e%2e/admin"),
	TBAD("/%2E/x"),
	TBAD("/.%2e/x"),
	TBAD("/%2e./x"),
	TBAD("/%2e"),
	TBAD("/a/%2e%2e"),
	TBAD("/..;/admin"),
	TBAD("/public/..;/admin"),
	TBAD("/.;/x"),
	TBAD("/..;x"),
	TBAD("/.;"),
	TBAD("/%2e;x"),
	TBAD("/..%3b/x"),
	TBAD("/%zz"),
	TBAD("/%4"),
	TBAD("/%"),
	TBAD("/a%"),
	TBAD("/%g0"),
	TBAD("/%0g"),
	TBAD("/a\\b"),
	TBAD("/\\..\\admin"),
	TBAD("/a b"),
	TBAD("/a\tb"),
	TBAD("/a\rb"),
	TBAD("/\x7f"),
	TBAD("/\x80"),
	TBAD("/\xff"),
	TBAD("/a\0b"),
	TBAD("/a#b"),
	TBAD("/a?b#c"),
	TBAD("/a?b c"),
	TBAD("/a?\x01"),
	TBAD("/a?\x80"),
};

static void t_target(void **state)
{
	const struct target *t = *state;
	char out[256], again[256];
	size_t outlen = 999, n2;
	int rc;

	rc = uri_normalize_target(t->in, t->n, out, t->n + 1, &outlen);
	if (rc != t->rc)
		print_error("input \"%.*s\"\n", (int)t->n, t->in);
	assert_int_equal(rc, t->rc);
	assert_string_equal(out, t->out);
	assert_int_equal(outlen, strlen(t->out));
	if (rc != 0)
		return;
	/* The canonical form is a fixed point. */
	assert_int_equal(uri_normalize_target(out, outlen, again, sizeof(again), &n2), 0);
	assert_string_equal(again, out);
	/* One byte short of the result (and its NUL) is too small. */
	assert_int_equal(uri_normalize_target(t->in, t->n, again, outlen, &n2), MOAT_ETOOBIG);
}

static void t_target_outsz(void **state)
{
	char out[8];
	size_t n;

	(void)state;
	assert_int_equal(uri_normalize_target(S("/abc"), out, 5, &n), 0);
	assert_int_equal(uri_normalize_target(S("/abc"), out, 4, &n), MOAT_ETOOBIG);
	assert_int_equal(n, 0);
	/* outsz >= n + 1 is what uri.h promises; intermediate steps may need it. */
	assert_int_equal(uri_normalize_target(S("/a/../b"), out, 8, &n), 0);
	assert_string_equal(out, "/b");
	assert_int_equal(uri_normalize_target(S("/"), out, 0, &n), MOAT_ETOOBIG);
	assert_int_equal(uri_normalize_target(S("/a?bcdefgh"), out, sizeof(out), &n),
			 MOAT_ETOOBIG);
}

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		add(name_of("host", hosts[i].in, hosts[i].n), t_host, &hosts[i]);
	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
		add(name_of("target", targets[i].in, targets[i].n), t_target, &targets[i]);
	add("host output size", t_host_outsz, NULL);
	add("target output size", t_target_outsz, NULL);
	return _cmocka_run_group_tests("uri", tests, (size_t)ntests, NULL, NULL);
}
