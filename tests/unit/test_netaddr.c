/*
 * test_netaddr.c - addresses and prefixes: what parses (and how it prints
 * back), what is refused with which message, containment at the edges of a
 * prefix, client keys and the hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <cmocka.h>

#include "netaddr.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Parse from an exact-size heap copy, so ASan sees any read past n. */
static int parse_exact(const char *s, size_t n, struct ipaddr *a)
{
	char *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, s, n);
	rc = ipaddr_parse(copy, n, a);
	free(copy);
	return rc;
}

static struct ipaddr addr(const char *s)
{
	struct ipaddr a;

	if (ipaddr_parse(s, strlen(s), &a) != 0)
		fail_msg("test address %s does not parse", s);
	return a;
}

static struct cidr prefix(const char *s)
{
	struct cidr c;
	const char *why;

	if (cidr_parse(s, &c, &why) != 0)
		fail_msg("test prefix %s does not parse: %s", s, why);
	return c;
}

/* ---- ipaddr_parse / ipaddr_format ----------------------------------- */

static const struct {
	const char *in;
	const char *out;
	bool v4;
} good_addrs[] = {
	{ "192.0.2.1", "192.0.2.1", true },
	{ "0.0.0.0", "0.0.0.0", true },
	{ "255.255.255.255", "255.255.255.255", true },
	{ "2001:db8::1", "2001:db8::1", false },
	{ "2001:DB8::1", "2001:db8::1", false },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", false },
	{ "[2001:db8::1]", "2001:db8::1", false },
	{ "::", "::", false },
	{ "::1", "::1", false },
	{ "[::1]", "::1", false },
	{ "::ffff:192.0.2.1", "192.0.2.1", true },
	{ "::FFFF:c000:0201", "192.0.2.1", true },
	{ "[::ffff:192.0.2.1]", "192.0.2.1", true },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	  false },
	{ "fe80::1", "fe80::1", false },
};

static void test_parse_good(void **state)
{
	char buf[NETADDR_TEXT];
	struct ipaddr a;
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(good_addrs); i++) {
		rc = parse_exact(good_addrs[i].in, strlen(good_addrs[i].in), &a);
		if (rc != 0) {
			print_error("\"%s\": rc %d, want 0\n", good_addrs[i].in, rc);
			failed++;
			continue;
		}
		ipaddr_format(&a, buf, sizeof(buf));
		if (strcmp(buf, good_addrs[i].out) != 0 || ipaddr_is_v4(&a) != good_addrs[i].v4) {
			print_error("\"%s\": got \"%s\" v4=%d, want \"%s\" v4=%d\n",
				    good_addrs[i].in, buf, ipaddr_is_v4(&a), good_addrs[i].out,
				    good_addrs[i].v4);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static const char *const bad_addrs[] = {
	"", " ", "192.0.2.1 ", " 192.0.2.1", "192.0.2", "192.0.2.1.5", "192.0.2.256",
	"192.0.2.01", "0x7f.0.0.1", "1e0.0.0.1", "192.0.2.1:80", "192.0.2.1/32", "192.0.2.-1",
	"[192.0.2.1]", "[2001:db8::1", "2001:db8::1]", "[2001:db8::1]:80", "[]", "[ ::1]",
	"fe80::1%eth0", "fe80::1%1", "2001:db8::1::2", "2001:db8:::1", "12345::1", "g::1",
	"1:2:3:4:5:6:7:8:9", "2001:db8::1/64", "localhost", "::ffff:192.0.2.1.1", "\t::1",
	"2001:db8::\n",
	"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", /* longer than any address */
};

static void test_parse_bad(void **state)
{
	struct ipaddr a;
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(bad_addrs); i++) {
		rc = parse_exact(bad_addrs[i], strlen(bad_addrs[i]), &a);
		if (rc != MOAT_EINVAL) {
			print_error("\"%s\": rc %d, want MOAT_EINVAL\n", bad_addrs[i], rc);
			failed++;
		}
	}
	/* an embedded NUL is a byte like any other, not an end */
	assert_int_equal(parse_exact("192.0.2.1\0x", 11, &a), MOAT_EINVAL);
	assert_int_equal(parse_exact("::1\0", 4, &a), MOAT_EINVAL);
	assert_int_equal(failed, 0);
}

/* Only n bytes count: what follows is not looked at. */
static void test_parse_length(void **state)
{
	struct ipaddr a;
	char buf[NETADDR_TEXT];

	assert_int_equal(parse_exact("192.0.2.15", 9, &a), 0);
	assert_string_equal(ipaddr_format(&a, buf, sizeof(buf)), "192.0.2.1");
	assert_int_equal(parse_exact("[::1]:80", 5, &a), 0);
	assert_string_equal(ipaddr_format(&a, buf, sizeof(buf)), "::1");
	assert_int_equal(parse_exact("::1", 0, &a), MOAT_EINVAL);
}

static void test_sockaddr(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct ipaddr a, b;
	char buf[NETADDR_TEXT];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(443);
	assert_int_equal(inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr), 1);
	assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&sin, &a), 0);
	assert_string_equal(ipaddr_format(&a, buf, sizeof(buf)), "198.51.100.7");
	assert_true(ipaddr_is_v4(&a));
	b = addr("198.51.100.7");
	assert_true(ipaddr_equal(&a, &b));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr), 1);
	assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
	assert_string_equal(ipaddr_format(&a, buf, sizeof(buf)), "2001:db8::42");
	assert_false(ipaddr_is_v4(&a));

	/* a dual-stack socket reports IPv4 clients as v4-mapped: same key */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr), 1);
	assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
	assert_string_equal(ipaddr_format(&a, buf, sizeof(buf)), "198.51.100.7");
	assert_true(ipaddr_is_v4(&a));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(ipaddr_from_sockaddr((struct sockaddr *)&sun, &a), MOAT_EINVAL);
	assert_int_equal(ipaddr_from_sockaddr(NULL, &a), MOAT_EINVAL);
}

static void test_equal(void **state)
{
	struct ipaddr a = addr("192.0.2.1"), b = addr("::ffff:192.0.2.1");
	struct ipaddr c = addr("192.0.2.2"), d = addr("::c000:201");

	assert_true(ipaddr_equal(&a, &b));
	assert_false(ipaddr_equal(&a, &c));
	/* the deprecated IPv4-compatible form is a different (v6) address */
	assert_false(ipaddr_equal(&a, &d));
	assert_false(ipaddr_is_v4(&d));
}

/* ---- client keys ---------------------------------------------------- */

static void test_key(void **state)
{
	struct ipaddr v4 = addr("203.0.113.9"), v4b = addr("203.0.113.10");
	struct ipaddr v6 = addr("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	struct ipaddr v6b = addr("2001:db8:1:2::1"), v6c = addr("2001:db8:1:3::1");
	struct cidr k4 = ipaddr_key(&v4), k4b = ipaddr_key(&v4b);
	struct cidr k6 = ipaddr_key(&v6), k6b = ipaddr_key(&v6b), k6c = ipaddr_key(&v6c);
	char buf[NETADDR_TEXT];

	assert_string_equal(cidr_format(&k4, buf, sizeof(buf)), "203.0.113.9");
	assert_int_equal(k4.bits, 128);
	assert_false(ipaddr_equal(&k4.a, &k4b.a));
	assert_string_equal(cidr_format(&k6, buf, sizeof(buf)), "2001:db8:1:2::/64");
	assert_int_equal(k6.bits, 64);
	/* rotating inside one /64 keeps the key; the next /64 is another */
	assert_true(ipaddr_equal(&k6.a, &k6b.a) && k6.bits == k6b.bits);
	assert_int_equal(cidr_hash(&k6, 7), cidr_hash(&k6b, 7));
	assert_false(ipaddr_equal(&k6.a, &k6c.a));
	assert_true(cidr_contains(&k6, &v6) && cidr_contains(&k6, &v6b));
	assert_false(cidr_contains(&k6, &v6c));
	assert_true(cidr_contains(&k4, &v4));
	assert_false(cidr_contains(&k4, &v4b));
}

/* ---- cidr_parse / cidr_format --------------------------------------- */

static const struct {
	const char *in;
	const char *out;
	unsigned bits;
} good_cidrs[] = {
	{ "10.0.0.0/8", "10.0.0.0/8", 104 },
	{ "192.0.2.1", "192.0.2.1", 128 },
	{ "192.0.2.1/32", "192.0.2.1", 128 },
	{ "192.0.2.128/25", "192.0.2.128/25", 121 },
	{ "0.0.0.0/0", "0.0.0.0/0", 96 },
	{ "2001:db8::/32", "2001:db8::/32", 32 },
	{ "2001:DB8::/32", "2001:db8::/32", 32 },
	{ "2001:db8::1", "2001:db8::1", 128 },
	{ "2001:db8::1/128", "2001:db8::1", 128 },
	{ "2001:db8::/127", "2001:db8::/127", 127 },
	{ "::/0", "::/0", 0 },
	{ "::1", "::1", 128 },
	/* written as v6, the length counts out of 128; it prints as IPv4 */
	{ "::ffff:10.0.0.0/104", "10.0.0.0/8", 104 },
	{ "::ffff:0:0/96", "0.0.0.0/0", 96 },
	{ "::ffff:192.0.2.1", "192.0.2.1", 128 },
	{ "::/96", "::/96", 96 },
	{ "::ffff:0:0/112", "0.0.0.0/16", 112 },
	{ "8000::/1", "8000::/1", 1 },
};

static void test_cidr_good(void **state)
{
	char buf[NETADDR_TEXT];
	struct cidr c, again;
	const char *why;
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(good_cidrs); i++) {
		why = "unset";
		rc = cidr_parse(good_cidrs[i].in, &c, &why);
		if (rc != 0 || why != NULL) {
			print_error("\"%s\": rc %d (%s), want 0\n", good_cidrs[i].in, rc,
				    why ? why : "why NULL");
			failed++;
			continue;
		}
		cidr_format(&c, buf, sizeof(buf));
		if (strcmp(buf, good_cidrs[i].out) != 0 || c.bits != good_cidrs[i].bits) {
			print_error("\"%s\": got \"%s\" bits %u, want \"%s\" bits %u\n",
				    good_cidrs[i].in, buf, c.bits, good_cidrs[i].out,
				    good_cidrs[i].bits);
			failed++;
			continue;
		}
		/* what moat prints reads back as the same prefix */
		if (cidr_parse(buf, &again, &why) != 0 || again.bits != c.bits ||
		    !ipaddr_equal(&again.a, &c.a)) {
			print_error("\"%s\": printed \"%s\" does not read back\n", good_cidrs[i].in,
				    buf);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static const struct {
	const char *in;
	const char *why; /* start of the message */
} bad_cidrs[] = {
	{ "10.0.0.1/8", "host bits are set" },
	{ "192.0.2.1/24", "host bits are set" },
	{ "2001:db8::1/64", "host bits are set" },
	{ "::ffff:10.0.0.1/104", "host bits are set" },
	{ "10.0.0.0/33", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/104", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/08", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/-1", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/+8", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/8 ", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/8/8", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "10.0.0.0/0008", "the prefix length after / must be a number from 0 to 32 for IPv4" },
	{ "2001:db8::/129", "the prefix length after / must be a number from 0 to 128" },
	{ "2001:db8::/1000", "the prefix length after / must be a number from 0 to 128" },
	{ "", "not an IP address or prefix" },
	{ "/8", "not an IP address or prefix" },
	{ " 10.0.0.0/8", "not an IP address or prefix" },
	{ "10.0.0/8", "not an IP address or prefix" },
	{ "[2001:db8::]/32", "not an IP address or prefix" },
	{ "[2001:db8::1]", "not an IP address or prefix" },
	{ "example.org", "not an IP address or prefix" },
	{ "fe80::/10%eth0", "the prefix length after / must be a number from 0 to 128" },
	{ "fe80::%eth0/10", "not an IP address or prefix" },
};

static void test_cidr_bad(void **state)
{
	struct cidr c;
	const char *why;
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(bad_cidrs); i++) {
		why = NULL;
		rc = cidr_parse(bad_cidrs[i].in, &c, &why);
		if (rc != MOAT_EINVAL || why == NULL ||
		    strncmp(why, bad_cidrs[i].why, strlen(bad_cidrs[i].why)) != 0) {
			print_error("\"%s\": rc %d \"%s\", want MOAT_EINVAL \"%s...\"\n",
				    bad_cidrs[i].in, rc, why ? why : "(null)", bad_cidrs[i].why);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- containment ---------------------------------------------------- */

static const struct {
	const char *prefix;
	const char *addr;
	bool want;
} contains[] = {
	{ "10.0.0.0/8", "10.0.0.0", true },
	{ "10.0.0.0/8", "10.255.255.255", true },
	{ "10.0.0.0/8", "11.0.0.0", false },
	{ "10.0.0.0/8", "9.255.255.255", false },
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "2001:db8::a00:1", false },
	{ "192.0.2.128/25", "192.0.2.128", true },
	{ "192.0.2.128/25", "192.0.2.255", true },
	{ "192.0.2.128/25", "192.0.2.127", false },
	{ "192.0.2.0/31", "192.0.2.1", true },
	{ "192.0.2.0/31", "192.0.2.2", false },
	{ "192.0.2.1", "192.0.2.1", true },
	{ "192.0.2.1", "192.0.2.0", false },
	{ "0.0.0.0/0", "255.255.255.255", true },
	{ "0.0.0.0/0", "::1", false },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "::/0", "192.0.2.1", true },
	{ "::/0", "2001:db8::1", true },
	{ "2001:db8::/32", "2001:db8:ffff:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::", false },
	{ "2001:db8::/127", "2001:db8::1", true },
	{ "2001:db8::/127", "2001:db8::2", false },
	{ "8000::/1", "ffff::", true },
	{ "8000::/1", "7fff::", false },
	{ "::1", "::1", true },
	{ "::1", "::2", false },
	{ "::1", "0.0.0.1", false },
};

static void test_contains(void **state)
{
	char buf[NETADDR_TEXT];
	size_t i, failed = 0;

	for (i = 0; i < N(contains); i++) {
		struct cidr c = prefix(contains[i].prefix);
		struct ipaddr a = addr(contains[i].addr);
		bool got = cidr_contains(&c, &a);

		if (got != contains[i].want) {
			print_error("%s in %s (%s): got %d, want %d\n", contains[i].addr,
				    contains[i].prefix, cidr_format(&c, buf, sizeof(buf)), got,
				    contains[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_list(void **state)
{
	struct cidr l[3];
	struct ipaddr a = addr("192.168.1.5"), b = addr("2001:db8::5"), c = addr("8.8.8.8");

	l[0] = prefix("10.0.0.0/8");
	l[1] = prefix("192.168.0.0/16");
	l[2] = prefix("2001:db8::/64");
	assert_false(cidr_list_contains(l, 0, &a));
	assert_false(cidr_list_contains(l, 1, &a));
	assert_true(cidr_list_contains(l, 2, &a));
	assert_true(cidr_list_contains(l, 3, &b));
	assert_false(cidr_list_contains(l, 3, &c));
}

/* ---- hash ----------------------------------------------------------- */

static struct cidr v4_key(uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	char text[16];

	snprintf(text, sizeof(text), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	return prefix(text);
}

static void test_hash_basics(void **state)
{
	struct cidr a = prefix("192.0.2.1"), b = prefix("192.0.2.1");
	struct cidr c = prefix("192.0.2.2"), d = prefix("2001:db8::/64");
	struct cidr e = prefix("2001:db8::/65");

	assert_int_equal(cidr_hash(&a, 1), cidr_hash(&b, 1));
	assert_int_not_equal(cidr_hash(&a, 1), cidr_hash(&a, 2));
	assert_int_not_equal(cidr_hash(&a, 1), cidr_hash(&c, 1));
	/* the length is part of the key */
	assert_int_not_equal(cidr_hash(&d, 1), cidr_hash(&e, 1));
}

/* Consecutive addresses (the easiest keys to come by) spread evenly over
 * the buckets of a small table: no bucket more than twice the mean. */
static void test_hash_spread(void **state)
{
	enum { KEYS = 65536, BUCKETS = 1024 };
	static unsigned load[BUCKETS];
	unsigned i, max = 0;

	memset(load, 0, sizeof(load));
	for (i = 0; i < KEYS; i++) {
		struct cidr k = v4_key(0xc0a80000u + i);

		load[cidr_hash(&k, 0x1234) % BUCKETS]++;
	}
	for (i = 0; i < BUCKETS; i++)
		max = load[i] > max ? load[i] : max;
	if (max > 2 * KEYS / BUCKETS)
		fail_msg("fullest bucket holds %u keys, mean %u", max, KEYS / BUCKETS);
}

/* Flipping one input bit flips about half of the output bits. */
static void test_hash_avalanche(void **state)
{
	struct cidr base = prefix("2001:db8:1234:5678::/64"), k;
	unsigned long flips = 0, trials = 0;
	unsigned byte, bit, s;
	uint64_t h0, h1;

	for (s = 0; s < 16; s++) {
		h0 = cidr_hash(&base, s * 0x9e3779b9u);
		for (byte = 0; byte < 16; byte++) {
			for (bit = 0; bit < 8; bit++) {
				k = base;
				k.a.b[byte] ^= (uint8_t)(1u << bit);
				h1 = cidr_hash(&k, s * 0x9e3779b9u);
				flips += (unsigned long)__builtin_popcountll(h0 ^ h1);
				trials++;
			}
		}
	}
	if (flips < trials * 30 || flips > trials * 34)
		fail_msg("mean %.2f output bits flip per input bit, want about 32",
			 (double)flips / (double)trials);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_cidr_good),
		cmocka_unit_test(test_cidr_bad),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_hash_basics),
		cmocka_unit_test(test_hash_spread),
		cmocka_unit_test(test_hash_avalanche),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
