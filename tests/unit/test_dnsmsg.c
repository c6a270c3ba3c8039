/*
 * test_dnsmsg.c - the DNS wire format: requests checked byte for byte
 * against vectors written out by hand from RFC 1035, 2136 and 8945, TSIG
 * MACs against an HMAC computed here over hand-assembled input, and the
 * parser against hostile answers (compression loops, pointers and lengths
 * past the end, counts the message cannot hold, truncated TSIG records).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dnsmsg.h"
#include "util.h"

static void hex(char *out, size_t cap, const uint8_t *b, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02x ", b[i]);
	out[o] = '\0';
}

static void bytes_eq(const uint8_t *got, size_t glen, const uint8_t *want, size_t wlen)
{
	char g[2048], w[2048];

	if (glen == wlen && memcmp(got, want, wlen) == 0)
		return;
	hex(g, sizeof(g), got, glen);
	hex(w, sizeof(w), want, wlen);
	fail_msg("bytes differ\n got  (%zu): %s\n want (%zu): %s", glen, g, wlen, w);
}

/* "A.b" TXT, ID 0x1234: header (RD, one question, one additional), the
 * question, then OPT with payload 1232 (0x04d0). */
static const uint8_t query_ab[] = {
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x10, 0x00, 0x01,
	0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void test_query_bytes(void **state)
{
	uint8_t buf[DNSMSG_REQ_MAX];
	size_t len = 0;

	assert_int_equal(dnsmsg_build_query(buf, sizeof(buf), 0x1234, "A.b", DNS_TYPE_TXT, &len), 0);
	bytes_eq(buf, len, query_ab, sizeof(query_ab));
	/* the trailing dot changes nothing; one byte short of room does */
	assert_int_equal(dnsmsg_build_query(buf, sizeof(buf), 0x1234, "a.b.", DNS_TYPE_TXT, &len), 0);
	bytes_eq(buf, len, query_ab, sizeof(query_ab));
	assert_int_equal(dnsmsg_build_query(buf, sizeof(query_ab) - 1, 0x1234, "a.b", DNS_TYPE_TXT,
					    &len), MOAT_ETOOBIG);
}

static void test_update_bytes(void **state)
{
	static const uint8_t add[] = {
		0xab, 0xcd, 0x28, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x01, 'b', 0x00, 0x00, 0x06, 0x00, 0x01,                    /* zone b. SOA IN */
		0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x10, 0x00, 0x01,          /* a.b. TXT IN */
		0x00, 0x00, 0x00, 0x3c, 0x00, 0x03, 0x02, 'x', 'y',          /* ttl 60, "xy" */
	};
	uint8_t buf[DNSMSG_REQ_MAX], del[sizeof(add)];
	char txt[301];
	size_t len = 0;

	assert_int_equal(dnsmsg_build_update(buf, sizeof(buf), 0xabcd, "b.", "a.B", "xy", 60, true,
					     &len), 0);
	bytes_eq(buf, len, add, sizeof(add));
	/* delete exactly this record: class NONE (254), TTL 0 (RFC 2136 2.5.4) */
	memcpy(del, add, sizeof(add));
	del[26] = 0x00;
	del[27] = 0xfe;
	memset(del + 28, 0, 4);
	assert_int_equal(dnsmsg_build_update(buf, sizeof(buf), 0xabcd, "b", "a.b", "xy", 60, false,
					     &len), 0);
	bytes_eq(buf, len, del, sizeof(del));
	/* 300 bytes: a 255-byte string and a 45-byte one, rdlength 302 */
	memset(txt, 'v', 300);
	txt[300] = '\0';
	assert_int_equal(dnsmsg_build_update(buf, sizeof(buf), 1, "b", "a.b", txt, 60, true, &len), 0);
	assert_int_equal(len, 34 + 302);
	assert_int_equal(buf[32] << 8 | buf[33], 302);
	assert_int_equal(buf[34], 255);
	assert_int_equal(buf[34 + 256], 45);
	/* no empty or oversized value */
	assert_int_equal(dnsmsg_build_update(buf, sizeof(buf), 1, "b", "a.b", "", 60, true, &len),
			 MOAT_EINVAL);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", "a..b", ".a", "a b", "a\\.b", "a\x01" "b",
		"0123456789012345678901234567890123456789012345678901234567890123.x",
	};
	char longname[300];
	uint8_t buf[DNSMSG_REQ_MAX];
	size_t len, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dnsmsg_build_query(buf, sizeof(buf), 1, bad[i], DNS_TYPE_TXT, &len) != MOAT_EINVAL)
			fail_msg("name \"%s\" was accepted", bad[i]);
	/* 127 labels "a." are 254 bytes of wire name with the root: fine; 128 are not */
	for (i = 0; i < 127; i++)
		memcpy(longname + 2 * i, "a.", 2);
	longname[254] = '\0';
	assert_int_equal(dnsmsg_build_query(buf, sizeof(buf), 1, longname, DNS_TYPE_TXT, &len), 0);
	memcpy(longname + 254, "a", 2);
	assert_int_equal(dnsmsg_build_query(buf, sizeof(buf), 1, longname, DNS_TYPE_TXT, &len),
			 MOAT_EINVAL);
	assert_int_equal(dnsmsg_build_query(buf, sizeof(buf), 1, ".", DNS_TYPE_SOA, &len), 0);
	assert_int_equal(len, 12 + 1 + 4 + 11);
}

/* The TSIG variables of RFC 8945 4.3.3 for key moat. and algorithm alg,
 * written out by hand, after the message, and the HMAC of it all. */
static size_t expected_mac(const EVP_MD *md, const char *alg, const uint8_t *prior,
			   size_t prior_len, const uint8_t *msg, size_t len, uint64_t t,
			   const uint8_t *secret, size_t slen, uint8_t *mac)
{
	uint8_t in[512];
	unsigned mlen = 0;
	size_t o = 0, al = strlen(alg);

	if (prior != NULL) {
		in[o++] = (uint8_t)(prior_len >> 8);
		in[o++] = (uint8_t)prior_len;
		memcpy(in + o, prior, prior_len);
		o += prior_len;
	}
	memcpy(in + o, msg, len);
	o += len;
	memcpy(in + o, "\x04moat\x00\x00\xff\x00\x00\x00\x00", 12);
	o += 12;
	in[o++] = (uint8_t)al;
	memcpy(in + o, alg, al + 1); /* with the root label's 0 */
	o += al + 1;
	in[o++] = (uint8_t)(t >> 40);
	in[o++] = (uint8_t)(t >> 32);
	in[o++] = (uint8_t)(t >> 24);
	in[o++] = (uint8_t)(t >> 16);
	in[o++] = (uint8_t)(t >> 8);
	in[o++] = (uint8_t)t;
	memcpy(in + o, "\x01\x2c\x00\x00\x00\x00", 6); /* fudge 300, error 0, other 0 */
	o += 6;
	assert_non_null(HMAC(md, secret, (int)slen, in, o, mac, &mlen));
	return mlen;
}

static const uint8_t secret[] = "0123456789abcdef";
static const uint64_t t0 = 0x654321000ull;

static void sign_one(enum conf_tsig_alg alg, const EVP_MD *md, const char *alg_name)
{
	const struct dnsmsg_key k = { "Moat", alg, secret, 16 };
	uint8_t buf[DNSMSG_REQ_MAX], mac[DNSMSG_MAC_MAX], want_mac[EVP_MAX_MD_SIZE], want[256];
	size_t len = sizeof(query_ab), mac_len = 0, wl = 0, al = strlen(alg_name), ml;

	memcpy(buf, query_ab, len);
	assert_int_equal(dnsmsg_tsig_sign(buf, sizeof(buf), &len, &k, t0, NULL, 0, mac, &mac_len), 0);
	ml = expected_mac(md, alg_name, NULL, 0, query_ab, sizeof(query_ab), t0, secret, 16,
			  want_mac);
	bytes_eq(mac, mac_len, want_mac, ml);
	/* the message with ARCOUNT 2, then the TSIG record */
	memcpy(want, query_ab, sizeof(query_ab));
	want[11] = 2;
	wl = sizeof(query_ab);
	memcpy(want + wl, "\x04moat\x00\x00\xfa\x00\xff\x00\x00\x00\x00", 14);
	wl += 14;
	want[wl++] = 0;
	want[wl++] = (uint8_t)(al + 2 + 16 + ml);
	want[wl++] = (uint8_t)al;
	memcpy(want + wl, alg_name, al + 1);
	wl += al + 1;
	memcpy(want + wl, "\x00\x06\x54\x32\x10\x00\x01\x2c\x00", 9);
	wl += 9;
	want[wl++] = (uint8_t)ml;
	memcpy(want + wl, want_mac, ml);
	wl += ml;
	memcpy(want + wl, "\x12\x34\x00\x00\x00\x00", 6);
	wl += 6;
	bytes_eq(buf, len, want, wl);
}

static void test_tsig_sign_vectors(void **state)
{
	sign_one(CONF_TSIG_SHA256, EVP_sha256(), "hmac-sha256");
	sign_one(CONF_TSIG_SHA512, EVP_sha512(), "hmac-sha512");
	sign_one(CONF_TSIG_SHA1, EVP_sha1(), "hmac-sha1");
}

/* The answer to query_ab (QR set), signed over the request MAC. */
static size_t signed_answer(uint8_t *buf, const struct dnsmsg_key *k, uint64_t t,
			    uint8_t *req_mac, size_t *req_mac_len)
{
	uint8_t req[DNSMSG_REQ_MAX], mac[DNSMSG_MAC_MAX];
	size_t len = sizeof(query_ab), mac_len;

	memcpy(req, query_ab, len);
	assert_int_equal(dnsmsg_tsig_sign(req, sizeof(req), &len, k, t, NULL, 0, req_mac,
					  req_mac_len), 0);
	memcpy(buf, query_ab, sizeof(query_ab));
	buf[2] |= 0x80;
	len = sizeof(query_ab);
	assert_int_equal(dnsmsg_tsig_sign(buf, DNSMSG_REQ_MAX, &len, k, t, req_mac, *req_mac_len,
					  mac, &mac_len), 0);
	return len;
}

static void verify_fails(const uint8_t *buf, size_t len, const struct dnsmsg_key *k,
			 const uint8_t *prior, size_t plen, uint64_t now, const char *want)
{
	struct dnsmsg *m = NULL;
	const char *why = NULL;

	assert_int_equal(dnsmsg_parse(buf, len, &m), 0);
	assert_int_equal(dnsmsg_tsig_verify(m, k, prior, plen, now, &why), MOAT_EPROTO);
	if (why == NULL || strstr(why, want) == NULL)
		fail_msg("verify failed with \"%s\", want \"%s\"", why ? why : "(null)", want);
	dnsmsg_free(m);
}

static void test_tsig_verify(void **state)
{
	const struct dnsmsg_key k = { "moat.", CONF_TSIG_SHA256, secret, 16 };
	const struct dnsmsg_key other_secret = { "moat.", CONF_TSIG_SHA256, (const uint8_t *)"x", 1 };
	const struct dnsmsg_key other_name = { "moat2.", CONF_TSIG_SHA256, secret, 16 };
	const struct dnsmsg_key other_alg = { "moat.", CONF_TSIG_SHA512, secret, 16 };
	uint8_t buf[DNSMSG_REQ_MAX], req_mac[DNSMSG_MAC_MAX], want_mac[EVP_MAX_MD_SIZE];
	uint8_t plain[sizeof(query_ab)];
	size_t len, req_mac_len, ml;
	struct dnsmsg *m = NULL;
	const char *why = "unset";

	len = signed_answer(buf, &k, t0, req_mac, &req_mac_len);
	/* the answer's MAC covers the request MAC, independently computed */
	memcpy(plain, query_ab, sizeof(plain));
	plain[2] |= 0x80;
	ml = expected_mac(EVP_sha256(), "hmac-sha256", req_mac, req_mac_len, plain, sizeof(plain),
			  t0, secret, 16, want_mac);
	bytes_eq(buf + len - 6 - ml, ml, want_mac, ml);
	assert_int_equal(dnsmsg_parse(buf, len, &m), 0);
	assert_int_equal(dnsmsg_tsig_verify(m, &k, req_mac, req_mac_len, t0 + 300, &why), 0);
	assert_null(why);
	assert_int_equal(dnsmsg_tsig_error(m), 0);
	dnsmsg_free(m);

	verify_fails(buf, len, &k, req_mac, req_mac_len, t0 + 301, "fudge");
	verify_fails(buf, len, &k, req_mac, req_mac_len, t0 - 301, "fudge");
	verify_fails(buf, len, &other_secret, req_mac, req_mac_len, t0, "does not match");
	verify_fails(buf, len, &other_name, req_mac, req_mac_len, t0, "another key");
	verify_fails(buf, len, &other_alg, req_mac, req_mac_len, t0, "another algorithm");
	verify_fails(buf, len, &k, NULL, 0, t0, "does not match");
	req_mac[0] ^= 1;
	verify_fails(buf, len, &k, req_mac, req_mac_len, t0, "does not match");
	req_mac[0] ^= 1;
	/* a flipped bit anywhere in the signed part */
	buf[3] ^= 0x01;
	verify_fails(buf, len, &k, req_mac, req_mac_len, t0, "does not match");
	buf[3] ^= 0x01;
	/* a rewritten ID is fine: the MAC covers the original ID */
	buf[0] = 0x99;
	assert_int_equal(dnsmsg_parse(buf, len, &m), 0);
	assert_int_equal(dnsmsg_tsig_verify(m, &k, req_mac, req_mac_len, t0, &why), 0);
	dnsmsg_free(m);
	/* unsigned: the same answer without its TSIG record */
	verify_fails(plain, sizeof(plain), &k, req_mac, req_mac_len, t0, "not signed");
}

/* A server's refusal: error BADSIG (16), no MAC (RFC 8945 5.3.2). */
static void test_tsig_error_and_truncation(void **state)
{
	const struct dnsmsg_key k = { "moat.", CONF_TSIG_SHA256, secret, 16 };
	uint8_t buf[DNSMSG_REQ_MAX];
	size_t o = sizeof(query_ab), rdl;
	struct dnsmsg *m = NULL;

	memcpy(buf, query_ab, o);
	buf[2] |= 0x80;
	buf[3] = 9; /* NOTAUTH */
	buf[11] = 2;
	memcpy(buf + o, "\x04moat\x00\x00\xfa\x00\xff\x00\x00\x00\x00", 14);
	o += 14;
	rdl = o;
	o += 2;
	memcpy(buf + o, "\x0bhmac-sha256\x00\x00\x00\x65\x43\x21\x00\x01\x2c\x00\x00"
	       "\x12\x34\x00\x10\x00\x00", 13 + 16);
	o += 13 + 16;
	buf[rdl] = 0;
	buf[rdl + 1] = (uint8_t)(o - rdl - 2);
	assert_int_equal(dnsmsg_parse(buf, o, &m), 0);
	assert_int_equal(dnsmsg_rcode(m), DNS_RCODE_NOTAUTH);
	assert_int_equal(dnsmsg_tsig_error(m), DNS_RCODE_BADSIG);
	assert_string_equal(dnsmsg_rcode_name(dnsmsg_tsig_error(m)), "BADSIG");
	dnsmsg_free(m);
	verify_fails(buf, o, &k, NULL, 0, t0, "TSIG error");
	/* cut short by a byte: the record runs past the end */
	assert_int_equal(dnsmsg_parse(buf, o - 1, &m), MOAT_EPROTO);
	assert_null(m);
	/* rdata that stops inside the fixed fields: parses, never verifies */
	buf[rdl + 1] = 13 + 8;
	assert_int_equal(dnsmsg_parse(buf, o - 8, &m), 0);
	assert_int_equal(dnsmsg_tsig_error(m), 0);
	dnsmsg_free(m);
	verify_fails(buf, o - 8, &k, NULL, 0, t0, "malformed");
	/* a MAC size larger than the rdata */
	buf[rdl + 1] = (uint8_t)(o - rdl - 2);
	buf[rdl + 2 + 13 + 9] = 0x40;
	verify_fails(buf, o, &k, NULL, 0, t0, "malformed");
}

/* Parse must fail, and leave *out NULL. */
static void refused(const uint8_t *b, size_t n, const char *what)
{
	struct dnsmsg *m = (struct dnsmsg *)1;
	int rc = dnsmsg_parse(b, n, &m);

	if (rc != MOAT_EPROTO || m != NULL)
		fail_msg("%s: parse returned %d (%s), want MOAT_EPROTO", what, rc, moat_strerror(rc));
}

static void test_hostile(void **state)
{
	/* header: ID 1, QR, counts filled in per case */
	uint8_t b[600];
	struct dnsmsg *m = NULL;
	size_t i, o;

	memset(b, 0, sizeof(b));
	b[1] = 1;
	b[2] = 0x80;
	refused(b, 11, "short header");
	/* one question whose name points at itself: a loop */
	b[5] = 1;
	memcpy(b + 12, "\xc0\x0c\x00\x10\x00\x01", 6);
	refused(b, 18, "pointer to itself");
	/* a label, then a pointer back to that label: also a loop */
	memcpy(b + 12, "\x01" "a\xc0\x0c\x00\x10\x00\x01", 8);
	refused(b, 20, "pointer to its own run");
	/* pointers into the header, forward, and cut in half */
	memcpy(b + 12, "\xc0\x05\x00\x10\x00\x01", 6);
	refused(b, 18, "pointer into the header");
	/* a forward pointer to a name that is otherwise fine: the answer's */
	b[7] = 1;
	memcpy(b + 12, "\xc0\x12\x00\x10\x00\x01\x01" "a\x00\x00\x10\x00\x01\x00\x00\x00\x00"
	       "\x00\x00", 19);
	refused(b, 31, "forward pointer");
	b[12] = 0x01;
	b[13] = 'a';
	b[14] = 0x00;
	memcpy(b + 15, "\x00\x10\x00\x01\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00", 16);
	assert_int_equal(dnsmsg_parse(b, 31, &m), 0); /* the same, pointing backwards */
	dnsmsg_free(m);
	b[7] = 0;
	memcpy(b + 12, "\x01" "a\x01" "b\xc0", 5);
	refused(b, 17, "pointer past the end");
	memcpy(b + 12, "\x09" "abcd", 5);
	refused(b, 17, "label past the end");
	memcpy(b + 12, "\x41" "ab\x00\x00\x10\x00\x01", 8);
	refused(b, 20, "extended label type");
	/* 128 labels: 257 bytes of name */
	for (i = 0; i < 128; i++)
		memcpy(b + 12 + 2 * i, "\x01" "a", 2);
	memcpy(b + 12 + 256, "\x00\x00\x10\x00\x01", 5);
	refused(b, 12 + 261, "name over 255 bytes");
	/* 100 labels (200 bytes), then an answer of 30 labels + a pointer to them */
	for (i = 0; i < 100; i++)
		memcpy(b + 12 + 2 * i, "\x01" "a", 2);
	o = 12 + 200;
	memcpy(b + o, "\x00\x00\x10\x00\x01", 5);
	o += 5;
	b[7] = 1;
	for (i = 0; i < 30; i++)
		memcpy(b + o + 2 * i, "\x01" "b", 2);
	o += 60;
	memcpy(b + o, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00", 12);
	refused(b, o + 12, "name over 255 bytes through a pointer");
	/* counts the message cannot hold: no allocation for 65535 records */
	memset(b + 4, 0, 8);
	b[6] = 0xff;
	b[7] = 0xff;
	refused(b, 12, "answer count past the end");
	b[5] = 2;
	b[6] = b[7] = 0;
	refused(b, 12 + 10, "two questions");
}

static void test_hostile_records(void **state)
{
	/* a valid answer: query_ab's question, one TXT answer at a pointer */
	uint8_t b[128];
	size_t n = 21;
	struct dnsmsg *m = NULL;

	memcpy(b, query_ab, n);
	b[2] = 0x81;
	b[7] = 1;
	b[11] = 0;
	memcpy(b + n, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x03\x02xy", 15);
	n += 15;
	assert_int_equal(dnsmsg_parse(b, n, &m), 0);
	dnsmsg_free(m);
	refused(b, n - 1, "rdata past the end");
	b[n] = 0;
	refused(b, n + 1, "a byte after the last record");
	/* an OPT in the answer section; two OPTs; a TSIG that is not last */
	b[24] = 41;
	refused(b, n, "OPT as an answer");
	b[24] = 16;
	b[7] = 0;
	b[11] = 3;
	memcpy(b + n, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 11);
	memcpy(b + n + 11, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 11);
	refused(b, n + 22, "two OPT records");
	b[n + 2] = 250; /* the TSIG type on the first OPT */
	refused(b, n + 22, "TSIG before another record");
}

static struct dnsmsg *parsed(const uint8_t *b, size_t n)
{
	struct dnsmsg *m = NULL;

	assert_int_equal(dnsmsg_parse(b, n, &m), 0);
	return m;
}

static void test_answers_and_txt(void **state)
{
	uint8_t b[256];
	size_t n = 21, a;
	struct dnsmsg *q = parsed(query_ab, sizeof(query_ab)), *m;

	/* answer: a.b TXT "xy" "z" (owner spelt A.B), a.b TXT "other",
	 * authority: a.b TXT "in-authority", then OPT with extended RCODE bits */
	memcpy(b, query_ab, n);
	b[2] = 0x81;
	b[3] = 0x80;
	b[7] = 2;
	b[9] = 1;
	b[11] = 1;
	memcpy(b + n, "\x01" "A\x01" "B\x00\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x05\x02xy\x01z", 20);
	n += 20;
	memcpy(b + n, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x06\x05other", 18);
	n += 18;
	memcpy(b + n, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x0d\x0cin-authority", 25);
	n += 25;
	a = n;
	memcpy(b + n, "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 11);
	n += 11;
	m = parsed(b, n);
	assert_true(dnsmsg_answers(m, q));
	assert_true(dnsmsg_has_txt(m, "a.b", "xyz"));
	assert_true(dnsmsg_has_txt(m, "A.b.", "other"));
	assert_false(dnsmsg_has_txt(m, "a.b", "xy"));
	assert_false(dnsmsg_has_txt(m, "a.b", "xyzz"));
	assert_false(dnsmsg_has_txt(m, "a.b", "in-authority"));
	assert_false(dnsmsg_has_txt(m, "b", "xyz"));
	assert_false(dnsmsg_has_soa(m, "a.b"));
	assert_int_equal(dnsmsg_rcode(m), 0);
	assert_false(dnsmsg_is_truncated(m));
	dnsmsg_free(m);
	/* extended RCODE: OPT TTL's top byte 1 -> 16 + header RCODE */
	b[a + 5] = 1;
	m = parsed(b, n);
	assert_int_equal(dnsmsg_rcode(m), 16);
	dnsmsg_free(m);
	b[a + 5] = 0;
	/* a TXT string whose length runs past its rdata is no match */
	b[36] = 0x09;
	m = parsed(b, n);
	assert_false(dnsmsg_has_txt(m, "a.b", "xyz"));
	dnsmsg_free(m);
	b[36] = 0x02;
	/* not an answer: QR clear, another ID, another question */
	b[2] = 0x01;
	m = parsed(b, n);
	assert_false(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	b[2] = 0x81;
	b[1] ^= 1;
	m = parsed(b, n);
	assert_false(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	b[1] ^= 1;
	b[13] = 'c';
	m = parsed(b, n);
	assert_false(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	b[13] = 'A'; /* case does not matter */
	m = parsed(b, n);
	assert_true(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	b[18] = 0x06;
	m = parsed(b, n);
	assert_false(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	/* no question: only an error can answer */
	memcpy(b, "\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00", 12);
	m = parsed(b, 12);
	assert_false(dnsmsg_answers(m, q));
	dnsmsg_free(m);
	b[3] = 0x85;
	m = parsed(b, 12);
	assert_true(dnsmsg_answers(m, q));
	assert_string_equal(dnsmsg_rcode_name(dnsmsg_rcode(m)), "REFUSED");
	dnsmsg_free(m);
	dnsmsg_free(q);
}

static void test_soa(void **state)
{
	uint8_t b[128];
	size_t n = 21;
	struct dnsmsg *m;

	memcpy(b, query_ab, n);
	b[2] = 0x84;
	b[7] = 1;
	b[11] = 0;
	b[18] = 6;
	/* a.b SOA: mname root, rname root, five numbers */
	memcpy(b + n, "\xc0\x0c\x00\x06\x00\x01\x00\x00\x00\x3c\x00\x16\x00\x00", 14);
	n += 14;
	memset(b + n, 0, 20);
	n += 20;
	m = parsed(b, n);
	assert_true(dnsmsg_has_soa(m, "a.b"));
	assert_false(dnsmsg_has_soa(m, "b"));
	dnsmsg_free(m);
}

static void test_random_id(void **state)
{
	uint16_t a = 0, b = 0;
	int i, same = 0;

	for (i = 0; i < 8; i++) {
		assert_int_equal(dnsmsg_random_id(&a), 0);
		assert_int_equal(dnsmsg_random_id(&b), 0);
		same += a == b;
	}
	assert_true(same < 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_bytes),
		cmocka_unit_test(test_update_bytes),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_tsig_sign_vectors),
		cmocka_unit_test(test_tsig_verify),
		cmocka_unit_test(test_tsig_error_and_truncation),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_hostile_records),
		cmocka_unit_test(test_answers_and_txt),
		cmocka_unit_test(test_soa),
		cmocka_unit_test(test_random_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
