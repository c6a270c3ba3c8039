/*
 * fuzz_dnsmsg.c - libFuzzer target for the DNS answer parser and the TSIG
 * check (dnsmsg.c), which read whatever a name server or an attacker on
 * the path sends. Besides "does not crash", it checks properties that
 * must hold for every input:
 *   - parse accepts or says MOAT_EPROTO, and *out is set exactly on success;
 *   - an accepted message ends exactly at its last record: without its
 *     last byte, or with one more, it is refused;
 *   - every accessor runs on an accepted message, and verifying its TSIG
 *     record (if any) with keys it was not signed with fails;
 *   - an accepted message without TSIG, signed here, parses again and
 *     verifies with that key, and no longer verifies once a signed byte
 *     changes.
 * Every buffer is a fresh heap copy of exact size so ASan sees overreads.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"
#include "util.h"

#define MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_dnsmsg: property violated: %s\n", what);
		abort();
	}
}

static int parse_copy(const uint8_t *p, size_t n, struct dnsmsg **m)
{
	uint8_t *b = malloc(n ? n : 1);
	int rc;

	check(b != NULL, "malloc");
	if (n > 0)
		memcpy(b, p, n);
	*m = (struct dnsmsg *)b; /* must be overwritten */
	rc = dnsmsg_parse(b, n, m);
	free(b);
	check(rc == 0 || rc == MOAT_EPROTO, "parse rc");
	check((rc == 0) == (*m != NULL), "*out set exactly on success");
	return rc;
}

static const unsigned char secret[] = "fuzzing secret";
static const struct dnsmsg_key keys[] = {
	{ "moat.", CONF_TSIG_SHA256, secret, sizeof(secret) - 1 },
	{ "moat.", CONF_TSIG_SHA512, secret, sizeof(secret) - 1 },
	{ "k.example.", CONF_TSIG_SHA1, secret, sizeof(secret) - 1 },
};

static void accessors(const struct dnsmsg *m)
{
	static const char *const names[] = { "a.b", "_acme-challenge.example.org", "." };
	uint8_t q[DNSMSG_REQ_MAX], prior[32] = { 0 };
	struct dnsmsg *qm = NULL;
	const char *why;
	size_t qlen, i;

	(void)dnsmsg_id(m);
	(void)dnsmsg_is_truncated(m);
	check(dnsmsg_rcode_name(dnsmsg_rcode(m)) != NULL, "rcode name");
	check(dnsmsg_rcode_name(dnsmsg_tsig_error(m)) != NULL, "TSIG error name");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)dnsmsg_has_txt(m, names[i], "xy");
		(void)dnsmsg_has_txt(m, names[i], "");
		(void)dnsmsg_has_soa(m, names[i]);
		check(dnsmsg_build_query(q, sizeof(q), dnsmsg_id(m), names[i], 16, &qlen) == 0,
		      "build query");
		check(dnsmsg_parse(q, qlen, &qm) == 0, "our own query parses");
		(void)dnsmsg_answers(m, qm);
		check(!dnsmsg_answers(qm, m), "a query answers nothing");
		dnsmsg_free(qm);
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		why = NULL;
		check(dnsmsg_tsig_verify(m, &keys[i], prior, sizeof(prior), 0, &why) == MOAT_EPROTO &&
		      why != NULL, "a TSIG record from the input never verifies");
		check(dnsmsg_tsig_verify(m, &keys[i], NULL, 0, 0, &why) == MOAT_EPROTO,
		      "a TSIG record from the input never verifies (as a request)");
	}
}

/* Sign the accepted, unsigned input and check it verifies, then tamper. */
static void sign_round_trip(const uint8_t *data, size_t size, size_t k)
{
	uint8_t *buf = malloc(size + 600), mac[DNSMSG_MAC_MAX];
	size_t len = size, mac_len, flip;
	struct dnsmsg *m = NULL;
	const char *why = NULL;

	check(buf != NULL, "malloc");
	memcpy(buf, data, size);
	if (dnsmsg_tsig_sign(buf, size + 600, &len, &keys[k], 1700000000, NULL, 0, mac,
			     &mac_len) < 0)
		goto out; /* ARCOUNT already 65535 */
	check(parse_copy(buf, len, &m) == 0, "a signed message parses");
	check(dnsmsg_tsig_verify(m, &keys[k], NULL, 0, 1700000100, &why) == 0, "it verifies");
	check(dnsmsg_tsig_error(m) == 0, "with no TSIG error");
	dnsmsg_free(m);
	/* flip one bit of the signed part (not the ID, which TSIG carries) */
	flip = 2 + (size_t)data[size - 1] % (size - 2);
	buf[flip] ^= 0x01;
	if (parse_copy(buf, len, &m) == 0)
		check(dnsmsg_tsig_verify(m, &keys[k], NULL, 0, 1700000100, &why) == MOAT_EPROTO,
		      "a changed byte breaks the MAC");
	dnsmsg_free(m);
out:
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnsmsg *m = NULL, *m2 = NULL;
	uint8_t *longer;

	if (size > MAX_INPUT)
		return 0;
	if (parse_copy(data, size, &m) < 0)
		return 0;
	check(size >= 12, "a header at least");
	check(parse_copy(data, size - 1, &m2) == MOAT_EPROTO, "the last byte is needed");
	longer = malloc(size + 1);
	check(longer != NULL, "malloc");
	memcpy(longer, data, size);
	longer[size] = 0;
	check(parse_copy(longer, size + 1, &m2) == MOAT_EPROTO, "a byte more is refused");
	free(longer);
	accessors(m);
	if (dnsmsg_tsig_error(m) == 0 && !dnsmsg_has_tsig(m))
		sign_round_trip(data, size, size % 3);
	dnsmsg_free(m);
	return 0;
}
