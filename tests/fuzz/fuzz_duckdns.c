/*
 * fuzz_duckdns.c - libFuzzer target for the parser of DuckDNS's answers
 * (duckdns_parse), the one thing DuckDNS - or whatever answers at the
 * configured URL - controls. Besides "does not crash", for every input:
 *   - the result is one of the documented codes;
 *   - an accepted address answer reports printable addresses that fit, and
 *     a TXT answer none;
 *   - an answer longer than DUCKDNS_MAX_ANSWER is refused as too big;
 *   - the parser reads only the given bytes (a fresh heap copy of exact
 *     size, so ASan sees an overread).
 * The first input byte picks the operation; the rest is the answer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdns.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_duckdns: property violated: %s\n", what);
		abort();
	}
}

static bool printable(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		return false;
	while (n-- > 0)
		if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum duckdns_op op;
	struct duckdns_answer a;
	char *body;
	int rc;

	if (size == 0)
		return 0;
	op = (enum duckdns_op)(data[0] % 3);
	body = xmalloc(size - 1 > 0 ? size - 1 : 1);
	memcpy(body, data + 1, size - 1);
	rc = duckdns_parse(op, body, size - 1, &a);
	check(rc == 0 || rc == MOAT_EINVAL || rc == MOAT_ETOOBIG || rc == MOAT_EPROTO,
	      "an undocumented return code");
	if (size - 1 > DUCKDNS_MAX_ANSWER)
		check(rc == MOAT_ETOOBIG, "an oversized answer was not refused as too big");
	if (rc == 0) {
		check(printable(a.ipv4, sizeof(a.ipv4)) || a.ipv4[0] == '\0', "ipv4 not printable");
		check(printable(a.ipv6, sizeof(a.ipv6)) || a.ipv6[0] == '\0', "ipv6 not printable");
		if (op != DUCKDNS_ADDRESS)
			check(a.ipv4[0] == '\0' && a.ipv6[0] == '\0', "a TXT answer reported addresses");
	}
	free(body);
	return 0;
}
