/*
 * test_httpc.c - which URLs moat sends requests (and tokens) to, and the
 * RFC 3339 times ACME answers carry (acme_parse_time).
 * Requests themselves are exercised against real servers by the ACME and
 * DDNS integration tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "httpc.h"
#include "util.h"

static void test_url_ok(void **state)
{
	static const struct {
		const char *url;
		bool ok;
		const char *why; /* part of the reason, when refused */
	} cases[] = {
		{ "https://acme-v02.api.letsencrypt.org/directory", true, NULL },
		{ "https://127.0.0.1:14000/dir", true, NULL },
		{ "http://127.0.0.1:8080/update", true, NULL },
		{ "http://127.9.9.9/update", true, NULL },
		{ "http://[::1]:8080/update", true, NULL },
		{ "http://localhost:8080/update", true, NULL },
		{ "http://www.duckdns.org/update", false, "only to a loopback address" },
		{ "http://10.0.0.1/update", false, "only to a loopback address" },
		{ "http://[::ffff:10.0.0.1]/x", false, "only to a loopback address" },
		{ "http://128.0.0.1/x", false, "only to a loopback address" },
		{ "ftp://example.org/x", false, "scheme ftp" },
		{ "not a url", false, "not a URL" },
		{ "", false, "not a URL" },
	};
	char *why;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		if (cases[i].ok) {
			assert_int_equal(httpc_url_ok(cases[i].url, &why), 0);
			assert_null(why);
		} else {
			assert_int_equal(httpc_url_ok(cases[i].url, &why), MOAT_EINVAL);
			assert_non_null(why);
			if (strstr(why, cases[i].why) == NULL)
				fail_msg("%s: got \"%s\", want it to mention \"%s\"", cases[i].url, why,
					 cases[i].why);
		}
		free(why);
	}
}

static void test_parse_time(void **state)
{
	static const struct {
		const char *in;
		int rc;
		long long want;
	} cases[] = {
		{ "2026-11-22T07:35:26Z", 0, 1795332926LL },
		{ "2026-11-22T07:35:26.123456789Z", 0, 1795332926LL },
		{ "2026-11-22T08:35:26+01:00", 0, 1795332926LL },
		{ "2026-11-22T06:35:26-01:00", 0, 1795332926LL },
		{ "1970-01-01T00:00:00Z", 0, 0 },
		{ "2026-11-22T07:35:26", MOAT_EINVAL, 0 },
		{ "2026-11-22 07:35:26Z", MOAT_EINVAL, 0 },
		{ "2026-11-22T07:35:26Zjunk", MOAT_EINVAL, 0 },
		{ "yesterday", MOAT_EINVAL, 0 },
	};
	long long t;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = -1;
		if (acme_parse_time(cases[i].in, &t) != cases[i].rc)
			fail_msg("%s: want rc %d", cases[i].in, cases[i].rc);
		if (cases[i].rc == 0 && t != cases[i].want)
			fail_msg("%s: got %lld, want %lld", cases[i].in, t, cases[i].want);
	}
	assert_int_equal(acme_parse_time(NULL, &t), MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_ok),
		cmocka_unit_test(test_parse_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
