/*
 * test_banop.c - what an operator may ban: address and key parsing, the
 * never_ban / trusted_proxies refusals (including overlap with an IPv6
 * /64), duration and reason bounds, and the JSON shape of a ban.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "banop.h"
#include "util.h"

#define NOW 1700000000

static void assert_why(const char *why, const char *word)
{
	if (why == NULL || strstr(why, word) == NULL)
		fail_msg("message \"%s\" should say \"%s\"", why != NULL ? why : "(none)", word);
}

static void assert_key(const char *text, const char *want)
{
	struct cidr k;
	char *why = NULL, got[NETADDR_TEXT];

	if (banop_key(text, &k, &why) < 0)
		fail_msg("%s: %s", text, why);
	assert_string_equal(cidr_format(&k, got, sizeof(got)), want);
}

static void assert_bad_key(const char *text, const char *word)
{
	struct cidr k;
	char *why = NULL;

	assert_int_equal(banop_key(text, &k, &why), MOAT_EINVAL);
	assert_why(why, word);
	free(why);
}

static void keys(void **state)
{
	assert_key("192.0.2.7", "192.0.2.7");
	assert_key("192.0.2.7/32", "192.0.2.7");
	assert_key("2001:db8::7", "2001:db8::/64");
	assert_key("[2001:db8::7]", "2001:db8::/64");
	assert_key("2001:db8::/64", "2001:db8::/64");
	assert_key("::ffff:192.0.2.7", "192.0.2.7");
	assert_bad_key("example.org", "not an IP address");
	assert_bad_key("192.0.2.0/24", "not a client");
	assert_bad_key("2001:db8::/48", "not a client");
	assert_bad_key("2001:db8::1/128", "not a client");
	assert_bad_key("192.0.2.7/33", "192.0.2.7/33");
}

static struct cidr prefix(const char *s)
{
	struct cidr c;
	const char *why = NULL;

	assert_int_equal(cidr_parse(s, &c, &why), 0);
	return c;
}

static void exempt(void **state)
{
	struct cidr never[2], trusted[1];
	struct banop_exempt ex = { never, 2, trusted, 1 }, def = banop_default_exempt();
	struct ban b;
	char *why = NULL;

	never[0] = prefix("192.168.0.0/16");
	never[1] = prefix("2001:db8:0:1::5");
	trusted[0] = prefix("10.0.0.1");
	assert_int_equal(banop_make("192.168.4.4", 60, NULL, NOW, &ex, &b, &why), MOAT_EEXIST);
	assert_why(why, "never_ban (192.168.0.0/16)");
	free(why);
	/* the /64 that would be banned holds a never_ban address */
	assert_int_equal(banop_make("2001:db8:0:1::9", 60, NULL, NOW, &ex, &b, &why), MOAT_EEXIST);
	assert_why(why, "never_ban");
	free(why);
	assert_int_equal(banop_make("10.0.0.1", 60, NULL, NOW, &ex, &b, &why), MOAT_EEXIST);
	assert_why(why, "trusted_proxies (10.0.0.1)");
	free(why);
	assert_int_equal(banop_make("10.0.0.2", 60, NULL, NOW, &ex, &b, &why), 0);
	assert_null(why);
	/* the built-in never_ban */
	assert_int_equal(banop_make("127.0.0.1", 60, NULL, NOW, &def, &b, &why), MOAT_EEXIST);
	free(why);
	assert_int_equal(banop_make("::1", 60, NULL, NOW, &def, &b, &why), MOAT_EEXIST);
	free(why);
	assert_int_equal(banop_make("127.0.0.2", 60, NULL, NOW, &def, &b, &why), 0);
}

static void bounds(void **state)
{
	struct banop_exempt none = { 0 };
	struct ban b;
	char *why = NULL, long_reason[BAN_REASON_MAX + 1];

	assert_int_equal(banop_make("192.0.2.7", 0, NULL, NOW, &none, &b, &why), MOAT_EINVAL);
	assert_why(why, "1 second to 10 years");
	free(why);
	assert_int_equal(banop_make("192.0.2.7", BANOP_FOR_MAX + 1, NULL, NOW, &none, &b, &why),
			 MOAT_EINVAL);
	free(why);
	memset(long_reason, 'x', BAN_REASON_MAX);
	long_reason[BAN_REASON_MAX] = '\0';
	assert_int_equal(banop_make("192.0.2.7", 60, long_reason, NOW, &none, &b, &why),
			 MOAT_EINVAL);
	assert_why(why, "give 1 to 159");
	free(why);
	assert_int_equal(banop_make("192.0.2.7", 60, "two\nlines", NOW, &none, &b, &why),
			 MOAT_EINVAL);
	assert_why(why, "control character");
	free(why);
	long_reason[BAN_REASON_MAX - 1] = '\0';
	assert_int_equal(banop_make("192.0.2.7", BANOP_FOR_MAX, long_reason, NOW, &none, &b, &why),
			 0);
	assert_int_equal(b.until - b.since, BANOP_FOR_MAX);
	assert_int_equal(banop_make("192.0.2.7", 60, NULL, NOW, &none, &b, &why), 0);
	assert_string_equal(b.reason, BANOP_REASON_DEFAULT);
	assert_int_equal(b.since, NOW);
	assert_int_equal(b.until, NOW + 60);
}

static void json_shape(void **state)
{
	struct banop_exempt none = { 0 };
	struct ban b;
	char *why = NULL, *s;
	json_t *j;

	assert_int_equal(banop_make("2001:db8::7", 3600, "r", NOW, &none, &b, &why), 0);
	j = banop_json(&b, NOW + 600);
	s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "{\"address\":\"2001:db8::/64\",\"since\":1700000000,"
			       "\"until\":1700003600,\"remaining\":3000,\"reason\":\"r\"}");
	free(s);
	json_decref(j);
	j = banop_json(&b, NOW + 7200);
	assert_int_equal(json_integer_value(json_object_get(j, "remaining")), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys),
		cmocka_unit_test(exempt),
		cmocka_unit_test(bounds),
		cmocka_unit_test(json_shape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
