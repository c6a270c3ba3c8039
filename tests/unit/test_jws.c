/*
 * test_jws.c - base64url, JWK, thumbprint, key authorization and ES256 JWS.
 * Checked against independent implementations, not against jws.c itself:
 * RFC 4648 / RFC 7517 vectors, OpenSSL's own base64 encoder, and
 * /usr/bin/python3 with the cryptography package, which recomputes the JWK
 * and thumbprint and verifies every JWS (header fields, payload, r||s
 * signature) with its own ECDSA code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "jws.h"
#include "testfs.h"
#include "util.h"

/* RFC 7517 appendix A.1 / A.2: the example P-256 key, d/x/y in hex. */
static const char rfc7517_d[] =
	"f3bd0c07a81fb932781ed52752f60cc89a6be5e51934fe01938ddb55d8f77801";
static const char rfc7517_x[] =
	"30a0424cd21c2944838a2d75c92b37e76ea20d9f00893a3b4eee8a3c0aafec3e";
static const char rfc7517_y[] =
	"e04b65e92456d9888b52b379bdfbd51ee869ef1f0fc65b6659695b6cce081723";
static const char rfc7517_jwk[] =
	"{\"crv\":\"P-256\",\"kty\":\"EC\","
	"\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
	"\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}";

/* python3 helpers: argv[1] is the mode. */
static const char py_script[] =
	"import sys, json, base64, hashlib\n"
	"from cryptography.hazmat.primitives import hashes, serialization\n"
	"from cryptography.hazmat.primitives.asymmetric import ec\n"
	"from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature\n"
	"from cryptography.exceptions import InvalidSignature\n"
	"def b64e(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
	"def b64d(s):\n"
	"    if any(c in s for c in '=+/'): raise ValueError('not base64url: ' + s)\n"
	"    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))\n"
	"def jwk_of(pub):\n"
	"    n = pub.public_numbers()\n"
	"    return {'crv': 'P-256', 'kty': 'EC', 'x': b64e(n.x.to_bytes(32, 'big')),\n"
	"            'y': b64e(n.y.to_bytes(32, 'big'))}\n"
	"pub = serialization.load_pem_public_key(open(sys.argv[2], 'rb').read())\n"
	"assert isinstance(pub.curve, ec.SECP256R1), pub.curve.name\n"
	"if sys.argv[1] == 'thumb':\n"
	"    j = json.dumps(jwk_of(pub), sort_keys=True, separators=(',', ':'))\n"
	"    print(j)\n"
	"    print(b64e(hashlib.sha256(j.encode()).digest()))\n"
	"    sys.exit(0)\n"
	"jws = json.loads(open(sys.argv[3]).read())\n"
	"kid, nonce, url, payload = open(sys.argv[4]).read().split('\\n', 3)\n"
	"assert list(jws) == ['protected', 'payload', 'signature'], list(jws)\n"
	"hdr = json.loads(b64d(jws['protected']))\n"
	"assert hdr['alg'] == 'ES256', hdr\n"
	"assert hdr['nonce'] == nonce, hdr\n"
	"assert hdr['url'] == url, hdr\n"
	"if kid:\n"
	"    assert hdr.get('kid') == kid and 'jwk' not in hdr, hdr\n"
	"else:\n"
	"    assert hdr.get('jwk') == jwk_of(pub) and 'kid' not in hdr, hdr\n"
	"assert set(hdr) <= {'alg', 'nonce', 'url', 'kid', 'jwk'}, hdr\n"
	"assert b64d(jws['payload']) == payload.encode(), jws['payload']\n"
	"sig = b64d(jws['signature'])\n"
	"assert len(sig) == 64, len(sig)\n"
	"der = encode_dss_signature(int.from_bytes(sig[:32], 'big'),\n"
	"                           int.from_bytes(sig[32:], 'big'))\n"
	"try:\n"
	"    pub.verify(der, (jws['protected'] + '.' + jws['payload']).encode(),\n"
	"               ec.ECDSA(hashes.SHA256()))\n"
	"except InvalidSignature:\n"
	"    print('BAD signature')\n"
	"    sys.exit(1)\n"
	"print('OK')\n";

static int setup(void **state)
{
	*state = testfs_checker_new("jws", py_script);
	return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	testfs_checker_free(*state);
	return 0;
}

static void write_pub(struct testfs_checker *c, EVP_PKEY *key)
{
	BIO *bio = BIO_new_file(c->pub, "w");

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
	BIO_free(bio);
}

static BIGNUM *hex_bn(const char *hex)
{
	BIGNUM *bn = NULL;

	assert_int_not_equal(BN_hex2bn(&bn, hex), 0);
	return bn;
}

static EVP_PKEY *rfc7517_key(void)
{
	BIGNUM *d = hex_bn(rfc7517_d), *x = hex_bn(rfc7517_x), *y = hex_bn(rfc7517_y);
	unsigned char pub[65];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;

	pub[0] = 0x04; /* uncompressed point */
	assert_int_equal(BN_bn2binpad(x, pub + 1, 32), 32);
	assert_int_equal(BN_bn2binpad(y, pub + 33, 32), 32);
	assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
							 "prime256v1", 0), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
							  pub, sizeof(pub)), 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_KEYPAIR, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pctx);
	BN_free(d);
	BN_free(x);
	BN_free(y);
	return key;
}

static EVP_PKEY *new_key(const char *curve)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);

	assert_non_null(k);
	return k;
}

/* Number of bytes of one public coordinate (32 unless it starts with 0). */
static int coord_bytes(EVP_PKEY *k, const char *param)
{
	BIGNUM *bn = NULL;
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = BN_num_bytes(bn);
	BN_free(bn);
	return n;
}

static void assert_b64(const char *in, size_t n, const char *want)
{
	char *got = jws_b64url(in, n);
	unsigned char *back = NULL;
	size_t blen = 0;

	assert_string_equal(got, want);
	assert_int_equal(jws_b64url_decode(want, &back, &blen), 0);
	assert_int_equal(blen, n);
	assert_memory_equal(back, in, n);
	free(back);
	free(got);
}

/* RFC 4648 section 10 (no padding in base64url). */
static void b64url_rfc4648(void **state)
{
	assert_b64("", 0, "");
	assert_b64("f", 1, "Zg");
	assert_b64("fo", 2, "Zm8");
	assert_b64("foo", 3, "Zm9v");
	assert_b64("foob", 4, "Zm9vYg");
	assert_b64("fooba", 5, "Zm9vYmE");
	assert_b64("foobar", 6, "Zm9vYmFy");
	/* The two characters that differ from base64: 62 is '-', 63 is '_'. */
	assert_b64("\xfb\xef\xbe", 3, "----");
	assert_b64("\xff\xff\xff", 3, "____");
	assert_b64("\xfb\xff", 2, "-_8");
}

/* Random inputs against OpenSSL's standard base64, alphabet translated. */
static void b64url_matches_openssl(void **state)
{
	unsigned char in[100], *back;
	char std[160], *got, *p;
	size_t n, blen;

	for (n = 0; n <= sizeof(in); n++) {
		assert_int_equal(RAND_bytes(in, (int)n), 1);
		EVP_EncodeBlock((unsigned char *)std, in, (int)n);
		for (p = std; *p != '\0'; p++) {
			if (*p == '+')
				*p = '-';
			else if (*p == '/')
				*p = '_';
			else if (*p == '=')
				*p = '\0';
		}
		got = jws_b64url(in, n);
		assert_string_equal(got, std);
		assert_int_equal(jws_b64url_decode(got, &back, &blen), 0);
		assert_int_equal(blen, n);
		assert_memory_equal(back, in, n);
		free(back);
		free(got);
	}
}

static void b64url_decode_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg==", "Zg=", "Z", "Zm9vY", "Zh", "Zm9=", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n",
		"Zm8_x",
	};
	unsigned char *out = (unsigned char *)"sentinel";
	size_t i, n = 99;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (jws_b64url_decode(bad[i], &out, &n) != MOAT_EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_null(out);
		assert_int_equal(n, 0);
	}
}

static void jwk_rfc7517(void **state)
{
	EVP_PKEY *k = rfc7517_key();
	char *jwk = jws_jwk(k);

	assert_non_null(jwk);
	assert_string_equal(jwk, rfc7517_jwk);
	free(jwk);
	EVP_PKEY_free(k);
}

/* jws_jwk and jws_thumbprint of k against python's own computation. */
static void check_thumbprint(struct testfs_checker *c, EVP_PKEY *k)
{
	char *out, *jwk = jws_jwk(k), *tp = jws_thumbprint(k), *want;

	assert_non_null(jwk);
	assert_non_null(tp);
	write_pub(c, k);
	out = testfs_run("/usr/bin/python3 %s thumb %s 2>&1", c->script, c->pub);
	want = xasprintf("%s\n%s\n", jwk, tp);
	if (strcmp(out, want) != 0)
		fail_msg("python says:\n%s\nwe say:\n%s", out, want);
	free(want);
	free(out);
	free(tp);
	free(jwk);
}

static void thumbprint_vs_python(void **state)
{
	struct testfs_checker *c = *state;
	EVP_PKEY *k = rfc7517_key();
	int i, zx = 0, zy = 0;

	check_thumbprint(c, k);
	EVP_PKEY_free(k);
	/* Coordinates with a leading zero byte must still be 32 bytes long;
	 * each coordinate has one chance in 256 per key, so search. */
	for (i = 0; i < 20000 && (!zx || !zy); i++) {
		k = new_key("P-256");
		if (!zx && coord_bytes(k, OSSL_PKEY_PARAM_EC_PUB_X) < 32) {
			check_thumbprint(c, k);
			zx = 1;
		} else if (!zy && coord_bytes(k, OSSL_PKEY_PARAM_EC_PUB_Y) < 32) {
			check_thumbprint(c, k);
			zy = 1;
		} else if (i == 0) {
			check_thumbprint(c, k);
		}
		EVP_PKEY_free(k);
	}
	assert_true(zx && zy);
}

static void key_authorization(void **state)
{
	static const char token[] = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
	struct testfs_checker *c = *state;
	EVP_PKEY *k = rfc7517_key();
	char *ka = jws_key_authorization(token, k);
	char *out, *want;

	assert_non_null(ka);
	write_pub(c, k);
	out = testfs_run("/usr/bin/python3 %s thumb %s 2>&1 | tail -n 1", c->script, c->pub);
	out[strcspn(out, "\n")] = '\0';
	assert_int_equal(strlen(out), 43); /* 32 bytes in unpadded base64url */
	want = xasprintf("%s.%s", token, out);
	assert_string_equal(ka, want);
	assert_null(jws_key_authorization("", k));
	assert_null(jws_key_authorization(NULL, k));
	free(want);
	free(out);
	free(ka);
	EVP_PKEY_free(k);
}

/* Ask python to verify jws as signed by k with the expected fields. */
static char *py_verify(struct testfs_checker *c, EVP_PKEY *k, const char *jws, const char *kid,
		       const char *nonce, const char *url, const char *payload)
{
	char *expect = xasprintf("%s\n%s\n%s\n%s", kid != NULL ? kid : "", nonce, url, payload);
	char *out;

	write_pub(c, k);
	testfs_write(c->file, jws, strlen(jws));
	testfs_write(c->expect, expect, strlen(expect));
	out = testfs_run("/usr/bin/python3 %s verify %s %s %s 2>&1", c->script, c->pub, c->file,
			c->expect);
	free(expect);
	return out;
}

static void assert_verifies(struct testfs_checker *c, EVP_PKEY *k, const char *kid, const char *nonce,
			    const char *url, const char *payload)
{
	char *jws = jws_sign(k, kid, nonce, url, payload), *out;

	assert_non_null(jws);
	out = py_verify(c, k, jws, kid, nonce, url, payload);
	if (strcmp(out, "OK\n") != 0)
		fail_msg("python rejected %s:\n%s", jws, out);
	free(out);
	free(jws);
}

static void sign_with_jwk(void **state)
{
	EVP_PKEY *k = new_key("P-256");

	assert_verifies(*state, k, NULL, "oFvnlFP1wIhRlYS2jTaXbA",
			"https://acme.example.org/acme/new-account",
			"{\"termsOfServiceAgreed\":true,\"contact\":[\"mailto:a@example.org\"]}");
	EVP_PKEY_free(k);
}

static void sign_with_kid(void **state)
{
	EVP_PKEY *k = rfc7517_key();

	assert_verifies(*state, k, "https://acme.example.org/acme/acct/evOfKhNU60wg",
			"Q_s3MWoqT05TrdkM2MTDcw", "https://acme.example.org/acme/new-order",
			"{\"identifiers\":[{\"type\":\"dns\",\"value\":\"*.home.example.org\"}]}");
	/* Server-supplied strings that need JSON escaping. */
	assert_verifies(*state, k, "https://a.example/acct/\"1\"\\", "n/o\"nce",
			"https://a.example/x?a=\"b\"\\c", "{}");
	EVP_PKEY_free(k);
}

/* POST-as-GET: the payload member is "" (python checks it decodes to b""). */
static void sign_post_as_get(void **state)
{
	struct testfs_checker *c = *state;
	EVP_PKEY *k = new_key("P-256");
	char *jws = jws_sign(k, "https://a.example/acct/1", "abc", "https://a.example/order/1", "");

	assert_non_null(jws);
	assert_non_null(strstr(jws, "\"payload\":\"\","));
	free(jws);
	assert_verifies(c, k, "https://a.example/acct/1", "abc", "https://a.example/order/1", "");
	EVP_PKEY_free(k);
}

/* Verify a JWS with OpenSSL's ECDSA (r||s rebuilt into DER by hand here);
 * *first_r / *first_s get the first byte of each half. */
static void ossl_verify(EVP_PKEY *k, const char *jws, int *first_r, int *first_s)
{
	json_t *j = json_loads(jws, 0, NULL);
	const char *prot = json_string_value(json_object_get(j, "protected"));
	const char *pay = json_string_value(json_object_get(j, "payload"));
	const char *sig = json_string_value(json_object_get(j, "signature"));
	char *input = xasprintf("%s.%s", prot, pay);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = ECDSA_SIG_new();
	unsigned char *raw, *der = NULL;
	size_t n;
	int dlen;

	assert_int_equal(jws_b64url_decode(sig, &raw, &n), 0);
	assert_int_equal(n, 64);
	assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL),
					BN_bin2bn(raw + 32, 32, NULL)), 1);
	dlen = i2d_ECDSA_SIG(es, &der);
	assert_true(dlen > 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	if (EVP_DigestVerify(md, der, (size_t)dlen, (unsigned char *)input,
			     strlen(input)) != 1)
		fail_msg("OpenSSL rejects the signature of %s", jws);
	*first_r = raw[0];
	*first_s = raw[32];
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	free(raw);
	free(input);
	json_decref(j);
}

/*
 * r and s are integers below the group order; one in 256 starts with a zero
 * byte and must be left-padded to 32. Sign until both cases have turned up,
 * verifying every signature, then have python verify one such signature too.
 */
static void sign_pads_r_and_s(void **state)
{
	struct testfs_checker *c = *state;
	EVP_PKEY *k = new_key("P-256");
	char *jws, *keep = NULL, *out;
	int i, r, s, short_r = 0, short_s = 0;

	for (i = 0; i < 20000 && !(short_r && short_s); i++) {
		jws = jws_sign(k, "k", "n", "u", "{}");
		assert_non_null(jws);
		ossl_verify(k, jws, &r, &s);
		short_r |= r == 0;
		short_s |= s == 0;
		if ((r == 0 || s == 0) && keep == NULL)
			keep = jws;
		else
			free(jws);
	}
	assert_true(short_r && short_s);
	out = py_verify(c, k, keep, "k", "n", "u", "{}");
	if (strcmp(out, "OK\n") != 0)
		fail_msg("python rejected %s:\n%s", keep, out);
	free(out);
	free(keep);
	EVP_PKEY_free(k);
}

/* The checker must be able to say no: a changed signature, url or key. */
static void verifier_rejects_tampering(void **state)
{
	struct testfs_checker *c = *state;
	EVP_PKEY *k = new_key("P-256"), *other = new_key("P-256");
	char *jws = jws_sign(k, NULL, "n1", "https://a.example/new-account", "{}");
	char *sig, *out;

	assert_non_null(jws);
	out = py_verify(c, k, jws, NULL, "n1", "https://a.example/new-order", "{}");
	assert_string_not_equal(out, "OK\n");
	free(out);
	out = py_verify(c, other, jws, "https://a.example/acct/1", "n1",
			"https://a.example/new-account", "{}");
	assert_string_not_equal(out, "OK\n");
	free(out);
	sig = strstr(jws, "\"signature\":\"") + 13;
	sig[5] = sig[5] == 'A' ? 'B' : 'A';
	out = py_verify(c, k, jws, NULL, "n1", "https://a.example/new-account", "{}");
	assert_string_equal(out, "BAD signature\n");
	free(out);
	free(jws);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
}

static void rejects_bad_input(void **state)
{
	EVP_PKEY *p384 = new_key("P-384"), *k = new_key("P-256");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	assert_non_null(rsa);
	assert_false(jws_key_is_p256(p384));
	assert_false(jws_key_is_p256(rsa));
	assert_false(jws_key_is_p256(NULL));
	assert_true(jws_key_is_p256(k));
	assert_null(jws_jwk(p384));
	assert_null(jws_jwk(rsa));
	assert_null(jws_thumbprint(p384));
	assert_null(jws_sign(p384, NULL, "n", "u", "{}"));
	assert_null(jws_sign(rsa, "kid", "n", "u", "{}"));
	assert_null(jws_sign(k, NULL, NULL, "u", "{}"));
	assert_null(jws_sign(k, NULL, "n", NULL, "{}"));
	assert_null(jws_sign(k, NULL, "n", "u", NULL));
	assert_null(jws_sign(k, NULL, "n", "https://a.example/\xff", "{}"));
	assert_null(jws_sign(k, "\xc3", "n", "u", "{}"));
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(k);
	EVP_PKEY_free(p384);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64url_rfc4648),
		cmocka_unit_test(b64url_matches_openssl),
		cmocka_unit_test(b64url_decode_rejects),
		cmocka_unit_test(jwk_rfc7517),
		cmocka_unit_test(thumbprint_vs_python),
		cmocka_unit_test(key_authorization),
		cmocka_unit_test(sign_with_jwk),
		cmocka_unit_test(sign_with_kid),
		cmocka_unit_test(sign_post_as_get),
		cmocka_unit_test(sign_pads_r_and_s),
		cmocka_unit_test(verifier_rejects_tampering),
		cmocka_unit_test(rejects_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
