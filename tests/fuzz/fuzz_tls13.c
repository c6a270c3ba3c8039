/*
 * fuzz_tls13.c - libFuzzer target for moat's TLS 1.3 record layer, seen
 * from the server: what a client can make it read.
 *
 * The first input byte picks the suite. The rest is read as a sequence of
 * chunks "kind, length (1 byte), bytes". Kind 0 hands the bytes to the
 * server as raw record bytes (an attacker who does not hold the keys: they
 * must never be accepted, since no record authenticates without them).
 * Other kinds are the inner content type of a record that a client holding
 * the keys seals and the server then opens and, for handshake records,
 * processes as post-handshake messages (an attacker who completed the
 * handshake: any plaintext at all). Properties checked for every input:
 *   - raw bytes are never accepted as a record;
 *   - a sealed record that the server accepts opens to exactly the type and
 *     content that were sealed, never longer than 2^14;
 *   - after a refused record the server is not used again (as conn.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls13.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_tls13: property violated: %s\n", what);
		abort();
	}
}

static const uint16_t suites[] = { 0x1301, 0x1302, 0x1303 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dst[16384 + 256 + 64];
	struct tls13_secrets a, b;
	struct tls13 *server, *client;
	struct outbuf rec = { 0 };
	unsigned char type, alert;
	uint16_t suite;
	size_t hl, i, n, len, k;
	bool dead = false;

	if (size < 1)
		return 0;
	suite = suites[data[0] % 3];
	hl = suite == 0x1302 ? 48 : 32;
	memset(&a, 0, sizeof(a));
	for (i = 0; i < hl; i++) {
		a.client[i] = (unsigned char)(i + 1);
		a.server[i] = (unsigned char)(0x80 + i);
	}
	a.client_len = a.server_len = hl;
	memcpy(b.client, a.server, hl);
	memcpy(b.server, a.client, hl);
	b.client_len = b.server_len = hl;
	server = tls13_new(suite, &a, 0);
	client = tls13_new(suite, &b, 0);
	check(server != NULL && client != NULL, "tls13_new");
	for (k = 1; k + 2 <= size && !dead; k += 2 + len) {
		unsigned char kind = data[k];
		const uint8_t *p = data + k + 2;

		len = data[k + 1];
		if (k + 2 + len > size)
			len = size - k - 2;
		rec.len = 0;
		if (kind == 0) {
			outbuf_append(&rec, p, len);
			n = tls13_record_size(rec.p, rec.len);
			if (n > 0) {
				check(tls13_open(server, rec.p, n, dst, &type, &n, &alert) != 0,
				      "raw bytes accepted as a record");
				dead = true;
			}
			continue;
		}
		check(tls13_seal(client, kind, p, len, &rec) == 0, "seal");
		n = tls13_record_size(rec.p, rec.len);
		check(n == rec.len, "one sealed record");
		if (tls13_open(server, rec.p, n, dst, &type, &n, &alert) != 0) {
			dead = true;
			continue;
		}
		check(n <= 16384, "content over 2^14");
		/* the sealed type byte ends the inner plaintext, so padding
		 * rules never eat content */
		check(type == kind && n == len && (len == 0 || memcmp(dst, p, len) == 0),
		      "opened record differs from the sealed one");
		if (type == TLS13_HANDSHAKE) {
			if (tls13_post_handshake(server, (unsigned char *)dst, n, &alert) != 0)
				dead = true;
		}
	}
	outbuf_free(&rec);
	tls13_free(server);
	tls13_free(client);
	return 0;
}
