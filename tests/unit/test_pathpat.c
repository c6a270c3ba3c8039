/*
 * test_pathpat.c - public: entries: what parses (with the exact message when
 * it does not) and what each pattern matches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pathpat.h"
#include "uri.h"
#include "util.h"

struct bad {
	const char *text;
	const char *want; /* start of the message */
};

static const struct bad bad_cases[] = {
	{ "GET", "\"GET\": expected METHODS and a path pattern" },
	{ "/share/x", "\"/share/x\": expected METHODS and a path pattern" },
	{ "get /x", "\"get /x\": methods are case-sensitive" },
	{ "GET,,HEAD /x", "\"GET,,HEAD /x\": \"\" is not a method" },
	{ "GET, /x", "\"GET, /x\": \"\" is not a method" },
	{ "G(T /x", "\"G(T /x\": \"G(T\" is not a method" },
	{ "GET,* /x", "\"GET,* /x\": \"*\" is not a method" },
	{ "GET share", "\"GET share\": the path pattern must start with /" },
	{ "GET /x?y=1", "\"GET /x?y=1\": patterns match the path only" },
	{ "GET /a*b", "\"GET /a*b\": * stands for one whole segment" },
	{ "GET /a/b**", "\"GET /a/b**\": * stands for one whole segment" },
	{ "GET /**/x", "\"GET /**/x\": ** matches the rest of the path" },
	{ "GET /a/../b", "\"GET /a/../b\": write the path in canonical form, \"/b\"" },
	{ "GET /a//b", "\"GET /a//b\": write the path in canonical form, \"/a/b\"" },
	{ "GET /%7euser", "\"GET /%7euser\": write the path in canonical form, \"/~user\"" },
	{ "GET /a%2fb", "\"GET /a%2fb\": the path contains a character or escape" },
	{ "GET /a\\b", "\"GET /a\\b\": the path contains a character or escape" },
	{ "GET /a /b", "\"GET /a /b\": one entry is METHODS and one path pattern" },
};

static void test_bad(void **state)
{
	size_t i, failed = 0;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char *why = NULL;
		struct pathpat *p = pathpat_parse(bad_cases[i].text, &why);

		if (p != NULL || why == NULL ||
		    strncmp(why, bad_cases[i].want, strlen(bad_cases[i].want)) != 0) {
			print_error("\"%s\": want \"%s...\", got %s\n", bad_cases[i].text,
				    bad_cases[i].want, why ? why : "(parsed)");
			failed++;
		}
		pathpat_free(p);
		free(why);
	}
	assert_int_equal(failed, 0);
}

static void test_too_many(void **state)
{
	char text[512] = "GET";
	char *why = NULL;
	struct pathpat *p;
	int i;

	for (i = 1; i < PATHPAT_MAX_METHODS + 1; i++)
		strcat(text, ",GET");
	strcat(text, " /x");
	p = pathpat_parse(text, &why);
	assert_null(p);
	assert_non_null(strstr(why, "at most 16 methods"));
	free(why);
	strcpy(text, "GET ");
	for (i = 0; i < PATHPAT_MAX_SEGMENTS + 1; i++)
		strcat(text, "/a");
	p = pathpat_parse(text, &why);
	assert_null(p);
	assert_non_null(strstr(why, "at most 64 segments"));
	free(why);
}

struct match {
	const char *pattern;
	const char *method;
	const char *path;
	bool want;
};

static const struct match match_cases[] = {
	{ "GET /share/**", "GET", "/share/abc", true },
	{ "GET /share/**", "GET", "/share/a/b/c", true },
	{ "GET /share/**", "GET", "/share/", true },
	{ "GET /share/**", "GET", "/share", false },
	{ "GET /share/**", "GET", "/shared/x", false },
	{ "GET /share/**", "GET", "/sharex", false },
	{ "GET /share/**", "HEAD", "/share/abc", false },
	{ "GET /share/**", "POST", "/share/abc", false },
	{ "GET /share/**", "get", "/share/abc", false },
	{ "GET /share/**", "GET", "/share/abc?x=/api", true },
	{ "GET /share/**", "GET", "/api?x=/share/a", false },
	{ "GET /api/shared-links/me", "GET", "/api/shared-links/me", true },
	{ "GET /api/shared-links/me", "GET", "/api/shared-links/me?key=1", true },
	{ "GET /api/shared-links/me", "GET", "/api/shared-links/me/", false },
	{ "GET /api/shared-links/me", "GET", "/api/shared-links/mex", false },
	{ "GET /api/shared-links/me", "GET", "/api/shared-links", false },
	{ "GET,HEAD /api/assets/*/thumbnail", "GET", "/api/assets/42/thumbnail", true },
	{ "GET,HEAD /api/assets/*/thumbnail", "HEAD", "/api/assets/42/thumbnail", true },
	{ "GET,HEAD /api/assets/*/thumbnail", "POST", "/api/assets/42/thumbnail", false },
	{ "GET,HEAD /api/assets/*/thumbnail", "GET", "/api/assets/4/2/thumbnail", false },
	{ "GET,HEAD /api/assets/*/thumbnail", "GET", "/api/assets/thumbnail", false },
	{ "GET,HEAD /api/assets/*/thumbnail", "GET", "/api/assets/42/thumbnail/x", false },
	{ "GET,HEAD /api/assets/*/thumbnail", "GET", "/api/assets/42/thumbnails", false },
	{ "* /healthz", "DELETE", "/healthz", true },
	{ "* /healthz", "PROPFIND", "/healthz", true },
	{ "PROPFIND /dav/*", "PROPFIND", "/dav/x", true },
	{ "PROPFIND /dav/*", "PROPFIND", "/dav/", false },
	{ "GET /**", "GET", "/", true },
	{ "GET /**", "GET", "/anything/at/all", true },
	{ "GET /", "GET", "/", true },
	{ "GET /", "GET", "/x", false },
	{ "GET /*", "GET", "/x", true },
	{ "GET /*", "GET", "/", false },
	{ "GET /*", "GET", "/x/", false },
	{ "GET /a/", "GET", "/a/", true },
	{ "GET /a/", "GET", "/a", false },
	{ "GET /~user/*", "GET", "/~user/x", true },
	/* escapes that stay escaped compare as written, upper-case */
	{ "GET /a%20b", "GET", "/a%20b", true },
	{ "GET /a%20b", "GET", "/a b", false },
	/* a literal star in a path is not a wildcard for the request */
	{ "GET /x/*", "GET", "/x/*", true },
	{ "GET /x/y", "GET", "/x/*", false },
};

/* Every request path goes through the proxy's normalisation first; the
 * cases above are already canonical, which this checks too. */
static void test_match(void **state)
{
	size_t i, failed = 0;

	for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match *m = &match_cases[i];
		char *why = NULL;
		struct pathpat *p = pathpat_parse(m->pattern, &why);
		bool got;

		if (p == NULL) {
			print_error("\"%s\" did not parse: %s\n", m->pattern, why);
			free(why);
			failed++;
			continue;
		}
		got = pathpat_match(p, m->method, strlen(m->method), m->path, strlen(m->path));
		if (got != m->want) {
			print_error("\"%s\" vs %s %s: want %d, got %d\n", m->pattern, m->method,
				    m->path, m->want, got);
			failed++;
		}
		pathpat_free(p);
	}
	assert_int_equal(failed, 0);
}

/* Raw paths that try to reach a private path through a public prefix are
 * either normalised away from it or refused before matching. */
static void test_through_normalisation(void **state)
{
	static const struct { const char *raw; int rc; bool want; } cases[] = {
		{ "/share/../api/albums", 0, false },
		{ "/share/./x", 0, true },
		{ "//share//x", 0, true },
		{ "/%73hare/x", 0, true },
		{ "/share/%2e%2e/api", MOAT_EPROTO, false },
		{ "/share%2fx", MOAT_EPROTO, false },
		{ "/share/x%00", MOAT_EPROTO, false },
		{ "/share\\x", MOAT_EPROTO, false },
		{ "/share/..;/api", MOAT_EPROTO, false },
	};
	char *why = NULL;
	struct pathpat *p = pathpat_parse("GET /share/**", &why);
	char out[256];
	size_t i, n;
	int rc;

	assert_non_null(p);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = uri_normalize_target(cases[i].raw, strlen(cases[i].raw), out, sizeof(out), &n);
		if (rc != cases[i].rc)
			fail_msg("%s: normalise rc %d, want %d", cases[i].raw, rc, cases[i].rc);
		if (rc == 0 && pathpat_match(p, "GET", 3, out, n) != cases[i].want)
			fail_msg("%s (-> %s): want match %d", cases[i].raw, out, cases[i].want);
	}
	pathpat_free(p);
}

/* Rules that count against a client match the spellings an upstream may
 * route to the same handler; the strict match (public:) does not. */
static void test_loose(void **state)
{
	static const struct { const char *pattern, *method, *path; bool strict, loose; } cases[] = {
		{ "POST /api/auth/login", "POST", "/api/auth/login", true, true },
		{ "POST /api/auth/login", "post", "/api/auth/login", false, true },
		{ "POST /api/auth/login", "Post", "/API/Auth/LOGIN", false, true },
		{ "POST /api/auth/login", "POST", "/api/auth/login/", false, true },
		{ "POST /api/auth/login", "POST", "/api/auth/login/?next=/", false, true },
		{ "POST /api/auth/login", "POST", "/api/auth/login//", false, false },
		{ "POST /api/auth/login", "POST", "/api/auth/login/x", false, false },
		{ "POST /api/auth/login", "POST", "/api/auth/logins", false, false },
		{ "POST /api/auth/login", "GET", "/api/auth/login", false, false },
		{ "POST /api/*/login", "POST", "/API/v2/Login/", false, true },
		{ "GET /share/**", "get", "/SHARE/x", false, true },
		{ "* /a", "whatever", "/A/", false, true },
	};
	char *why = NULL;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pathpat *p = pathpat_parse(cases[i].pattern, &why);
		const char *m = cases[i].method, *path = cases[i].path;

		assert_non_null(p);
		if (pathpat_match(p, m, strlen(m), path, strlen(path)) != cases[i].strict)
			fail_msg("\"%s\" vs %s %s: strict want %d", cases[i].pattern, m, path,
				 cases[i].strict);
		if (pathpat_match_loose(p, m, strlen(m), path, strlen(path)) != cases[i].loose)
			fail_msg("\"%s\" vs %s %s: loose want %d", cases[i].pattern, m, path,
				 cases[i].loose);
		pathpat_free(p);
	}
}

static void test_text(void **state)
{
	char *why = NULL;
	struct pathpat *p = pathpat_parse("GET,HEAD   /api/assets/*/thumbnail", &why);

	assert_non_null(p);
	assert_string_equal(pathpat_text(p), "GET,HEAD /api/assets/*/thumbnail");
	pathpat_free(p);
	pathpat_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_through_normalisation),
		cmocka_unit_test(test_loose),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
