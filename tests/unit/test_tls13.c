/*
 * test_tls13.c - moat's TLS 1.3 record layer: both ends of a connection
 * are built with tls13_new (the reader of one is keyed like the writer of
 * the other), so every record one seals the other must open, and every
 * rule of RFC 8446 5 and 4.6.3 is checked from the receiving side.
 * Interoperability with real clients is tested in integration/test_tls13.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tls13.h"
#include "util.h"

static const uint16_t suites[] = { 0x1301, 0x1302, 0x1303 };

struct pair {
	struct tls13 *server; /* reads c0, writes s0 */
	struct tls13 *client; /* reads s0, writes c0 */
};

static size_t hash_len(uint16_t suite)
{
	return suite == 0x1302 ? 48 : 32;
}

static void make_pair(struct pair *p, uint16_t suite)
{
	struct tls13_secrets a, b;
	size_t i, n = hash_len(suite);

	memset(&a, 0, sizeof(a));
	for (i = 0; i < n; i++) {
		a.client[i] = (unsigned char)(i * 7 + 1);
		a.server[i] = (unsigned char)(i * 13 + 5);
	}
	a.client_len = a.server_len = n;
	memcpy(b.client, a.server, n);
	memcpy(b.server, a.client, n);
	b.client_len = b.server_len = n;
	p->server = tls13_new(suite, &a, 0);
	p->client = tls13_new(suite, &b, 0);
	assert_non_null(p->server);
	assert_non_null(p->client);
}

static void free_pair(struct pair *p)
{
	tls13_free(p->server);
	tls13_free(p->client);
}

/* Opens the first record of o (which must be complete) into a fresh
 * buffer; returns tls13_open's result and drops the record from o. */
static int open_first(struct tls13 *t, struct outbuf *o, char *dst, unsigned char *type,
		      size_t *n, unsigned char *alert)
{
	size_t size = tls13_record_size(o->p, o->len);
	int rc;

	assert_true(size > 0);
	rc = tls13_open(t, o->p, size, dst, type, n, alert);
	memmove(o->p, o->p + size, o->len - size);
	o->len -= size;
	return rc;
}

static void test_round_trip_every_suite(void **state)
{
	static char big[40000], dst[16384 + 256];
	struct outbuf o = { 0 };
	unsigned char type, alert;
	size_t k, n, got = 0;
	struct pair p;

	for (k = 0; k < sizeof(big); k++)
		big[k] = (char)(k * 31);
	for (k = 0; k < sizeof(suites) / sizeof(suites[0]); k++) {
		make_pair(&p, suites[k]);
		assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "hello", 5, &o), 0);
		assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), 0);
		assert_int_equal(type, TLS13_APPDATA);
		assert_int_equal(n, 5);
		assert_memory_equal(dst, "hello", 5);
		/* 40000 bytes: three records of at most 2^14, in order */
		assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, big, sizeof(big), &o), 0);
		for (got = 0; o.len > 0; got += n) {
			assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), 0);
			assert_true(n <= 16384);
			assert_memory_equal(dst, big + got, n);
		}
		assert_int_equal(got, sizeof(big));
		free_pair(&p);
	}
	outbuf_free(&o);
}

static void test_record_size(void **state)
{
	static const char hdr[] = { 23, 3, 3, 0x00, 0x20 };
	static const char huge[] = { 23, 3, 3, 0x7f, 0xff };
	char rec[5 + 0x20] = { 23, 3, 3, 0x00, 0x20 };

	assert_int_equal(tls13_record_size(hdr, 3), 0);
	assert_int_equal(tls13_record_size(hdr, 5), 0);
	assert_int_equal(tls13_record_size(rec, sizeof(rec) - 1), 0);
	assert_int_equal(tls13_record_size(rec, sizeof(rec)), sizeof(rec));
	/* an announced length over 2^14 + 256 is refused at the header */
	assert_int_equal(tls13_record_size(huge, 5), 5);
}

static void test_tampering_is_refused(void **state)
{
	char dst[64];
	struct outbuf o = { 0 };
	unsigned char type, alert = 0;
	struct pair p;
	size_t n, at;

	/* a flipped bit anywhere in the record, header included (it is the
	 * additional data), fails authentication */
	for (at = 1; at < 5 + 6 + 16; at++) {
		if (at == 3 || at == 4)
			continue; /* the length: then it is another record size */
		make_pair(&p, 0x1301);
		assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "hello", 5, &o), 0);
		o.p[at] ^= 0x04;
		assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), MOAT_ETLS);
		assert_int_equal(alert, TLS13_A_BAD_RECORD_MAC);
		free_pair(&p);
	}
	outbuf_free(&o);
}

static void test_replay_and_reorder_are_refused(void **state)
{
	char dst[64], first[64];
	struct outbuf o = { 0 };
	unsigned char type, alert = 0;
	struct pair p;
	size_t n, size;

	make_pair(&p, 0x1303);
	assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "one", 3, &o), 0);
	size = tls13_record_size(o.p, o.len);
	memcpy(first, o.p, size);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), 0);
	/* the same record again: the sequence number moved on */
	assert_int_equal(tls13_open(p.client, first, size, dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_BAD_RECORD_MAC);
	free_pair(&p);
	outbuf_free(&o);
}

static void test_inner_plaintext_rules(void **state)
{
	static const char zeros[4] = { 0 };
	static const char padded[] = { 'a', 'b', 'c', TLS13_APPDATA, 0 };
	char dst[64];
	struct outbuf o = { 0 };
	unsigned char type, alert = 0;
	struct pair p;
	size_t n;

	make_pair(&p, 0x1302);
	/* zero padding after the content type is stripped */
	assert_int_equal(tls13_seal(p.server, 0, padded, sizeof(padded), &o), 0);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), 0);
	assert_int_equal(type, TLS13_APPDATA);
	assert_int_equal(n, 3);
	assert_memory_equal(dst, "abc", 3);
	/* nothing but zeros: no content type at all */
	assert_int_equal(tls13_seal(p.server, 0, zeros, sizeof(zeros), &o), 0);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_UNEXPECTED_MESSAGE);
	free_pair(&p);

	make_pair(&p, 0x1302);
	/* an unknown content type */
	assert_int_equal(tls13_seal(p.server, 0x42, "x", 1, &o), 0);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_UNEXPECTED_MESSAGE);
	free_pair(&p);

	make_pair(&p, 0x1302);
	/* an empty alert or handshake fragment; empty application data is fine */
	assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "", 0, &o), 0);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), 0);
	assert_int_equal(n, 0);
	assert_int_equal(tls13_seal(p.server, TLS13_ALERT, "", 0, &o), 0);
	assert_int_equal(open_first(p.client, &o, dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_UNEXPECTED_MESSAGE);
	free_pair(&p);
	outbuf_free(&o);
}

static void test_outer_record_rules(void **state)
{
	char rec[5 + 32] = { 21, 3, 3, 0, 32 };
	char huge[5] = { 23, 3, 3, 0x41, 0x01 }; /* 2^14 + 257 */
	char shorty[5 + 16] = { 23, 3, 3, 0, 16 }; /* a tag and no content type */
	char dst[64];
	unsigned char type, alert = 0;
	struct pair p;
	size_t n;

	make_pair(&p, 0x1301);
	/* a plaintext alert after the handshake */
	assert_int_equal(tls13_open(p.client, rec, sizeof(rec), dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_UNEXPECTED_MESSAGE);
	assert_int_equal(tls13_open(p.client, huge, 5, dst, &type, &n, &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_RECORD_OVERFLOW);
	assert_int_equal(tls13_open(p.client, shorty, sizeof(shorty), dst, &type, &n, &alert),
			 MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_BAD_RECORD_MAC);
	free_pair(&p);
}

/* The client asks for a KeyUpdate: the server moves its read key at once;
 * its own KeyUpdate goes before its next application data, under the old
 * write key, which moves right after. Many requests get one answer. */
static void test_key_update_requested(void **state)
{
	static const unsigned char ku_req[] = { 24, 0, 0, 1, 1 };
	char dst[64];
	struct outbuf o = { 0 }, answer = { 0 };
	unsigned char type, alert = 0;
	struct pair p;
	size_t n, k;

	for (k = 0; k < sizeof(suites) / sizeof(suites[0]); k++) {
		make_pair(&p, suites[k]);
		assert_int_equal(tls13_seal(p.client, TLS13_HANDSHAKE, ku_req, sizeof(ku_req), &o), 0);
		assert_int_equal(open_first(p.server, &o, dst, &type, &n, &alert), 0);
		assert_int_equal(type, TLS13_HANDSHAKE);
		assert_int_equal(tls13_post_handshake(p.server, (unsigned char *)dst, n, &alert), 0);
		/* nothing is sent until there is application data */
		assert_int_equal(answer.len, 0);
		assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "after", 5, &answer), 0);
		/* first the answer: KeyUpdate(update_not_requested), old key */
		assert_int_equal(open_first(p.client, &answer, dst, &type, &n, &alert), 0);
		assert_int_equal(type, TLS13_HANDSHAKE);
		assert_int_equal(n, 5);
		assert_int_equal((unsigned char)dst[0], 24);
		assert_int_equal(dst[4], 0);
		assert_int_equal(tls13_post_handshake(p.client, (unsigned char *)dst, n, &alert), 0);
		/* then the data, under the next key, which the client follows */
		assert_int_equal(open_first(p.client, &answer, dst, &type, &n, &alert), 0);
		assert_int_equal(type, TLS13_APPDATA);
		assert_memory_equal(dst, "after", 5);
		assert_int_equal(answer.len, 0);
		/* only one answer was owed */
		assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "again", 5, &answer), 0);
		assert_int_equal(open_first(p.client, &answer, dst, &type, &n, &alert), 0);
		assert_int_equal(type, TLS13_APPDATA);
		/* and the server reads with the next key: the client, which has
		 * not moved its own write key, is no longer understood */
		assert_int_equal(tls13_seal(p.client, TLS13_APPDATA, "stale", 5, &o), 0);
		assert_int_equal(open_first(p.server, &o, dst, &type, &n, &alert), MOAT_ETLS);
		assert_int_equal(alert, TLS13_A_BAD_RECORD_MAC);
		free_pair(&p);
	}
	outbuf_free(&o);
	outbuf_free(&answer);
}

/* Requests for a KeyUpdate in a row make one answer; more than 32 KeyUpdates
 * without application data in between are refused (each costs a key
 * derivation; a flood must not cost memory or CPU without end). */
static void test_key_update_flood(void **state)
{
	static const unsigned char ku_req[] = { 24, 0, 0, 1, 1 };
	struct outbuf o = { 0 };
	unsigned char alert = 0;
	struct pair p;
	int i;

	make_pair(&p, 0x1301);
	for (i = 0; i < 32; i++)
		assert_int_equal(tls13_post_handshake(p.server, ku_req, sizeof(ku_req), &alert), 0);
	assert_int_equal(tls13_post_handshake(p.server, ku_req, sizeof(ku_req), &alert), MOAT_ETLS);
	assert_int_equal(alert, TLS13_A_UNEXPECTED_MESSAGE);
	/* one KeyUpdate owed, not 32 */
	assert_int_equal(tls13_seal(p.server, TLS13_APPDATA, "x", 1, &o), 0);
	/* a KeyUpdate record (5-byte message) and the data record */
	assert_int_equal(o.len, (5 + 5 + 1 + 16) + (5 + 1 + 1 + 16));
	free_pair(&p);
	outbuf_free(&o);
}

static void test_post_handshake_rules(void **state)
{
	static const struct {
		unsigned char msg[8];
		size_t len;
		unsigned char alert;
	} bad[] = {
		{ { 24, 0, 0, 1, 2 }, 5, TLS13_A_ILLEGAL_PARAMETER },     /* request_update 2 */
		{ { 24, 0, 0, 2, 0, 0 }, 6, TLS13_A_DECODE_ERROR },        /* body of 2 */
		{ { 24, 0, 0, 1, 0, 24, 0 }, 7, TLS13_A_UNEXPECTED_MESSAGE }, /* bytes after it */
		{ { 24, 0, 0 }, 3, TLS13_A_UNEXPECTED_MESSAGE },           /* split header */
		{ { 24, 0, 0, 1 }, 4, TLS13_A_UNEXPECTED_MESSAGE },        /* split body */
		{ { 4, 0, 0, 1, 0 }, 5, TLS13_A_UNEXPECTED_MESSAGE },      /* NewSessionTicket */
		{ { 13, 0, 0, 1, 0 }, 5, TLS13_A_UNEXPECTED_MESSAGE },     /* CertificateRequest */
	};
	struct outbuf o = { 0 };
	unsigned char alert;
	struct pair p;
	size_t k;

	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		make_pair(&p, 0x1301);
		alert = 0;
		assert_int_equal(tls13_post_handshake(p.server, bad[k].msg, bad[k].len, &alert),
				 MOAT_ETLS);
		assert_int_equal(alert, bad[k].alert);
		free_pair(&p);
	}
	outbuf_free(&o);
}

static void test_unknown_suite_and_secret_length(void **state)
{
	struct tls13_secrets s;

	memset(&s, 0, sizeof(s));
	s.client_len = s.server_len = 32;
	assert_null(tls13_new(0x1304, &s, 0)); /* AES-128-CCM: not offered */
	assert_null(tls13_new(0x1302, &s, 0)); /* SHA-384 suite wants 48 bytes */
	tls13_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_suite),
		cmocka_unit_test(test_record_size),
		cmocka_unit_test(test_tampering_is_refused),
		cmocka_unit_test(test_replay_and_reorder_are_refused),
		cmocka_unit_test(test_inner_plaintext_rules),
		cmocka_unit_test(test_outer_record_rules),
		cmocka_unit_test(test_key_update_requested),
		cmocka_unit_test(test_key_update_flood),
		cmocka_unit_test(test_post_handshake_rules),
		cmocka_unit_test(test_unknown_suite_and_secret_length),
	};

	return cmocka_run_group_tests_name("tls13", tests, NULL, NULL);
}
