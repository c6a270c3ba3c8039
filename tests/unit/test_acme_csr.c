/*
 * test_acme_csr.c - ACME keys, CSR, TLS-ALPN-01 certificate, DNS-01 value,
 * ARI identifier, certificate times and chain check. Checked against
 * independent implementations: the openssl CLI (CSR self-signature, key
 * file, extension printout), /usr/bin/python3 with the cryptography package
 * (CSR and certificate contents, ARI identifiers from its own parse of the
 * certificate), and published vectors (RFC 9773's ARI example, FIPS 180's
 * SHA-256("abc")).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "acme_csr.h"
#include "jws.h"
#include "testfs.h"
#include "util.h"
#include "x509util.h"

static const char py_script[] =
	"import sys, base64, hashlib, calendar\n"
	"from cryptography import x509\n"
	"from cryptography.x509.oid import NameOID\n"
	"from cryptography.hazmat.primitives import hashes, serialization\n"
	"from cryptography.hazmat.primitives.asymmetric import ec\n"
	"def b64e(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
	"def pub(k): return k.public_bytes(serialization.Encoding.DER,\n"
	"    serialization.PublicFormat.SubjectPublicKeyInfo)\n"
	"def pem_pub(p): return pub(serialization.load_pem_public_key(open(p, 'rb').read()))\n"
	"mode = sys.argv[1]\n"
	"if mode == 'sha':\n"
	"    print(b64e(hashlib.sha256(sys.argv[2].encode()).digest()))\n"
	"elif mode == 'ari':\n"
	"    c = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())\n"
	"    aki = c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)\n"
	"    n = c.serial_number\n"
	"    print(b64e(aki.value.key_identifier) + '.' +\n"
	"          b64e(n.to_bytes(n.bit_length() // 8 + 1, 'big')))\n"
	"elif mode == 'csr':\n"
	"    csr = x509.load_der_x509_csr(open(sys.argv[2], 'rb').read())\n"
	"    assert csr.is_signature_valid\n"
	"    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)\n"
	"    assert pub(csr.public_key()) == pem_pub(sys.argv[3])\n"
	"    lines = open(sys.argv[4]).read().split('\\n')\n"
	"    cn, crit, names = lines[0], lines[1] == '1', lines[2:]\n"
	"    got = [(a.oid, a.value) for a in csr.subject]\n"
	"    assert got == ([(NameOID.COMMON_NAME, cn)] if cn else []), got\n"
	"    assert len(csr.extensions) == 1, list(csr.extensions)\n"
	"    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)\n"
	"    assert san.critical == crit, san\n"
	"    assert list(san.value) == [x509.DNSName(n) for n in names], list(san.value)\n"
	"    print('OK')\n"
	"elif mode == 'alpn':\n"
	"    c = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())\n"
	"    name, ka, now = sys.argv[4], sys.argv[5], int(sys.argv[6])\n"
	"    assert c.version == x509.Version.v3\n"
	"    e = c.extensions.get_extension_for_oid(x509.ObjectIdentifier('1.3.6.1.5.5.7.1.31'))\n"
	"    assert e.critical, e\n"
	"    want = b'\\x04\\x20' + hashlib.sha256(ka.encode()).digest()\n"
	"    assert e.value.value == want, e.value.value.hex()\n"
	"    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName)\n"
	"    assert list(san.value) == [x509.DNSName(name)], list(san.value)\n"
	"    oids = sorted(x.oid.dotted_string for x in c.extensions)\n"
	"    assert oids == ['1.3.6.1.5.5.7.1.31', '2.5.29.17'], oids\n"
	"    assert c.issuer == c.subject\n"
	"    assert isinstance(c.signature_hash_algorithm, hashes.SHA256)\n"
	"    c.public_key().verify(c.signature, c.tbs_certificate_bytes,\n"
	"                          ec.ECDSA(hashes.SHA256()))\n"
	"    assert pub(c.public_key()) == pem_pub(sys.argv[3])\n"
	"    assert isinstance(c.public_key().curve, ec.SECP256R1)\n"
	"    nb = calendar.timegm(c.not_valid_before.utctimetuple())\n"
	"    na = calendar.timegm(c.not_valid_after.utctimetuple())\n"
	"    assert abs(nb - (now - 3600)) <= 60, (nb, now)\n"
	"    assert abs(na - (now + 7 * 86400)) <= 60, (na, now)\n"
	"    assert c.serial_number.bit_length() > 64, c.serial_number\n"
	"    print('OK')\n";

/* A temp dir and the files the tests (re)write in it, in turn. */
static int setup(void **state)
{
	*state = testfs_checker_new("acme-csr", py_script);
	return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	testfs_checker_free(*state);
	return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" not found in:\n%s", needle, hay);
}

static void write_pub(const char *p, EVP_PKEY *key)
{
	BIO *bio = BIO_new_file(p, "w");

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
	BIO_free(bio);
}

static void write_cert(const char *p, X509 *x)
{
	assert_int_equal(x509_write_certs(p, x, NULL), 0);
}

static void key_new_save_load(void **state)
{
	struct testfs_checker *c = *state;
	char *kp = c->file, *why = (char *)"unset", *pem, *out, group[64];
	EVP_PKEY *k = acme_key_new(), *back;

	assert_non_null(k);
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group), NULL), 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(acme_key_save(kp, k), 0);
	testfs_assert_mode(kp, 0600);
	pem = testfs_slurp(kp);
	assert_int_equal(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28), 0); /* PKCS#8 */
	free(pem);
	out = testfs_run("openssl pkey -in %s -noout -text 2>&1", kp);
	assert_contains(out, "ASN1 OID: prime256v1");
	free(out);
	back = acme_key_load(kp, &why);
	assert_non_null(back);
	assert_null(why);
	assert_int_equal(EVP_PKEY_eq(back, k), 1);
	EVP_PKEY_free(back);
	EVP_PKEY_free(k);
}

static void assert_load_fails(const char *p, const char *reason)
{
	char *why = NULL;

	assert_null(acme_key_load(p, &why));
	assert_non_null(why);
	assert_contains(why, p);
	assert_contains(why, reason);
	free(why);
}

static void key_load_errors(void **state)
{
	struct testfs_checker *c = *state;
	char missing[128], *out;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");

	snprintf(missing, sizeof(missing), "%s/missing.key", c->dir);
	assert_load_fails(missing, "No such file");
	assert_load_fails(c->dir, "not a regular file");
	testfs_write(c->file, "hello\n", 6);
	assert_load_fails(c->file, "no unencrypted PEM private key");
	assert_int_equal(x509_write_key(c->file, k), 0);
	assert_load_fails(c->file, "secp384r1");
	assert_load_fails(c->file, "must be ECDSA P-256");
	out = testfs_run("openssl genpkey -algorithm ED25519 -out %s 2>&1", c->file);
	free(out);
	assert_load_fails(c->file, "ED25519");
	out = testfs_run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
		  "-aes256 -pass pass:secret -out %s 2>&1", c->file);
	free(out);
	assert_load_fails(c->file, "no unencrypted PEM private key");
	EVP_PKEY_free(k);
}

/* Have openssl and python check the CSR for names; cn "" = empty subject. */
static void check_csr(struct testfs_checker *c, const char *const *names, size_t n, const char *cn,
		      int crit)
{
	EVP_PKEY *k = acme_key_new();
	char *b64 = acme_csr_b64url(k, names, n);
	char *expect = xasprintf("%s\n%d", cn, crit), *tmp, *out, *sans;
	unsigned char *der;
	size_t len, i;

	assert_non_null(b64);
	assert_null(strchr(b64, '='));
	assert_int_equal(jws_b64url_decode(b64, &der, &len), 0);
	testfs_write(c->file, der, len);
	write_pub(c->pub, k);
	sans = xstrdup("");
	for (i = 0; i < n; i++) {
		tmp = xasprintf("%s\n%s", expect, names[i]);
		free(expect);
		expect = tmp;
		tmp = xasprintf("%s%sDNS:%s", sans, i > 0 ? ", " : "", names[i]);
		free(sans);
		sans = tmp;
	}
	testfs_write(c->expect, expect, strlen(expect));
	out = testfs_run("openssl req -inform DER -in %s -verify -noout -text 2>&1", c->file);
	assert_contains(out, "verify OK");
	assert_contains(out, sans);
	assert_contains(out, "ecdsa-with-SHA256");
	free(out);
	out = testfs_run("/usr/bin/python3 %s csr %s %s %s 2>&1", c->script, c->file, c->pub, c->expect);
	if (strcmp(out, "OK\n") != 0)
		fail_msg("python rejected the CSR:\n%s", out);
	free(out);
	free(sans);
	free(expect);
	free(der);
	free(b64);
	EVP_PKEY_free(k);
}

static void csr_names(void **state)
{
	static const char *const names[] = {"home.example.org", "*.home.example.org",
					    "www.example.net"};
	static const char *const one[] = {"a.example"};

	/* A first name over 64 bytes cannot be a CN: empty subject, critical SAN. */
	static const char *const longer[] = {
		"a-very-long-label-that-goes-on-and-on.another-long-label.example.org",
		"short.example.org"};

	check_csr(*state, names, 3, "home.example.org", 0);
	check_csr(*state, one, 1, "a.example", 0);
	assert_true(strlen(longer[0]) > 64);
	check_csr(*state, longer, 2, "", 1);
}

/* The checks must be able to fail: a CSR for other names is refused. */
static void csr_checker_can_fail(void **state)
{
	struct testfs_checker *c = *state;
	static const char *const names[] = {"a.example", "b.example"};
	EVP_PKEY *k = acme_key_new();
	char *b64 = acme_csr_b64url(k, names, 2), *out;
	unsigned char *der;
	size_t len;

	assert_int_equal(jws_b64url_decode(b64, &der, &len), 0);
	testfs_write(c->file, der, len);
	write_pub(c->pub, k);
	testfs_write(c->expect, "a.example\n0\na.example", 21);
	out = testfs_run("/usr/bin/python3 %s csr %s %s %s 2>&1", c->script, c->file, c->pub, c->expect);
	assert_string_not_equal(out, "OK\n");
	free(out);
	der[len - 10] ^= 0x01; /* inside the signature */
	testfs_write(c->file, der, len);
	out = testfs_run("openssl req -inform DER -in %s -verify -noout 2>&1", c->file);
	assert_null(strstr(out, "verify OK"));
	free(out);
	free(der);
	free(b64);
	EVP_PKEY_free(k);
}

static void csr_rejects(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char longname[ACME_DNS_NAME_MAX + 2];
	const char *bad[] = {"", "a b.example", "a\xff.example", "a\n.example", longname};
	const char *one[1];
	size_t i;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(acme_csr_b64url(k, bad, 0));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		one[0] = bad[i];
		assert_null(acme_csr_b64url(k, one, 1));
	}
	EVP_PKEY_free(k);
}

static void alpn_cert(void **state)
{
	struct testfs_checker *c = *state;
	static const char ka[] = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA."
				 "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
	char *out;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	time_t now = time(NULL);

	assert_int_equal(acme_alpn_cert("home.example.org", ka, &x, &key), 0);
	assert_int_equal(X509_check_private_key(x, key), 1);
	write_cert(c->file, x);
	write_pub(c->pub, key);
	out = testfs_run("/usr/bin/python3 %s alpn %s %s home.example.org '%s' %lld 2>&1", c->script,
		  c->file, c->pub, ka, (long long)now);
	if (strcmp(out, "OK\n") != 0)
		fail_msg("python rejected the ALPN certificate:\n%s", out);
	free(out);
	/* Same key authorization, another name: the checker must object. */
	out = testfs_run("/usr/bin/python3 %s alpn %s %s other.example.org '%s' %lld 2>&1",
		  c->script, c->file, c->pub, ka, (long long)now);
	assert_string_not_equal(out, "OK\n");
	free(out);
	out = testfs_run("/usr/bin/python3 %s alpn %s %s home.example.org 'x%s' %lld 2>&1",
		  c->script, c->file, c->pub, ka, (long long)now);
	assert_string_not_equal(out, "OK\n");
	free(out);
	out = testfs_run("openssl x509 -in %s -noout -text 2>&1", c->file);
	assert_contains(out, "1.3.6.1.5.5.7.1.31: critical");
	assert_contains(out, "DNS:home.example.org\n");
	free(out);
	X509_free(x);
	EVP_PKEY_free(key);
	assert_int_equal(acme_alpn_cert("bad name", ka, &x, &key), MOAT_EINVAL);
	assert_null(x);
	assert_null(key);
	assert_int_equal(acme_alpn_cert("a.example", "", &x, &key), MOAT_EINVAL);
}

static void dns01_value(void **state)
{
	struct testfs_checker *c = *state;
	static const char ka[] = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0."
				 "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
	char *v = acme_dns01_value("abc"), *out, *want;

	/* FIPS 180-2 B.1: SHA-256("abc") = ba7816bf...f20015ad */
	assert_string_equal(v, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
	free(v);
	v = acme_dns01_value(ka);
	out = testfs_run("/usr/bin/python3 %s sha '%s' 2>&1", c->script, ka);
	want = xasprintf("%s\n", v);
	assert_string_equal(out, want);
	assert_null(acme_dns01_value(""));
	free(want);
	free(out);
	free(v);
}

/* A certificate with the given AKI keyIdentifier (none if NULL) and serial,
 * as it comes back from a file (DER round trip). */
static X509 *ari_cert(const unsigned char *aki, size_t aki_len, BIGNUM *serial)
{
	EVP_PKEY *k = acme_key_new();
	X509 *x = x509_new_cert(k, 1700000000, 1800000000), *back;
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	assert_non_null(x);
	assert_non_null(BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)));
	if (aki != NULL) {
		akid->keyid = ASN1_OCTET_STRING_new();
		assert_int_equal(ASN1_OCTET_STRING_set(akid->keyid, aki, (int)aki_len), 1);
		assert_int_equal(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
						   X509V3_ADD_DEFAULT), 1);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	p = der;
	back = d2i_X509(NULL, &p, len);
	assert_non_null(back);
	OPENSSL_free(der);
	AUTHORITY_KEYID_free(akid);
	X509_free(x);
	EVP_PKEY_free(k);
	return back;
}

static void assert_ari(X509 *x, const char *want)
{
	char *id = acme_ari_cert_id(x);

	assert_non_null(id);
	assert_string_equal(id, want);
	free(id);
}

/* RFC 9773 section 4.1: keyIdentifier 69:88:5B:...:C8:D4, serial 0x87654321. */
static void ari_rfc9773(void **state)
{
	static const unsigned char aki[] = {0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40,
					    0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0,
					    0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4};
	BIGNUM *bn = NULL;
	X509 *x;

	assert_int_not_equal(BN_hex2bn(&bn, "87654321"), 0);
	x = ari_cert(aki, sizeof(aki), bn);
	assert_ari(x, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	X509_free(x);
	/* Negative serials (old CAs): DER two's complement, -1 = FF, -129 = FF 7F. */
	BN_set_word(bn, 1);
	BN_set_negative(bn, 1);
	x = ari_cert(aki, sizeof(aki), bn);
	assert_ari(x, "aYhba4dGQEHhs3uEe6CuLN4ByNQ._w");
	X509_free(x);
	BN_set_word(bn, 129);
	BN_set_negative(bn, 1);
	x = ari_cert(aki, sizeof(aki), bn);
	assert_ari(x, "aYhba4dGQEHhs3uEe6CuLN4ByNQ._38");
	X509_free(x);
	BN_free(bn);
}

/* Python derives the identifier from its own parse of the certificate. */
static void ari_vs_python(void **state)
{
	struct testfs_checker *c = *state;
	static const char *const serials[] = {
		"01", "7F", "80", "FF00", "8000000000000000000000000000000000000001",
		"7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
	};
	char *out, *want;
	unsigned char aki[20];
	BIGNUM *bn = NULL;
	X509 *x;
	size_t i;

	for (i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
		assert_int_equal(RAND_bytes(aki, sizeof(aki)), 1);
		aki[0] = (unsigned char)(i == 0 ? 0x00 : 0xff); /* padding-sensitive bytes */
		assert_int_not_equal(BN_hex2bn(&bn, serials[i]), 0);
		x = ari_cert(aki, sizeof(aki) - i, bn);
		write_cert(c->file, x);
		out = testfs_run("/usr/bin/python3 %s ari %s 2>&1", c->script, c->file);
		want = acme_ari_cert_id(x);
		assert_non_null(want);
		want = xrealloc(want, strlen(want) + 2);
		strcat(want, "\n");
		if (strcmp(out, want) != 0)
			fail_msg("serial %s: python %s, we %s", serials[i], out, want);
		free(want);
		free(out);
		X509_free(x);
		BN_free(bn);
		bn = NULL;
	}
}

static void ari_without_aki(void **state)
{
	BIGNUM *bn = BN_new();
	X509 *x, *cert = NULL;
	EVP_PKEY *key = NULL;

	BN_set_word(bn, 5);
	x = ari_cert(NULL, 0, bn);
	assert_null(acme_ari_cert_id(x));
	X509_free(x);
	assert_int_equal(acme_alpn_cert("a.example", "t.k", &cert, &key), 0);
	assert_null(acme_ari_cert_id(cert));
	X509_free(cert);
	EVP_PKEY_free(key);
	BN_free(bn);
}

static void cert_times(void **state)
{
	EVP_PKEY *k = acme_key_new();
	/* 2023-11-14 22:13:20 UTC (UTCTime) and 2052-05-23 (GeneralizedTime) */
	X509 *x = x509_new_cert(k, 1700000000, 2600000000LL);
	long long nb = -1, na = -1;

	assert_int_equal(acme_cert_times(x, &nb, &na), 0);
	assert_int_equal(nb, 1700000000LL);
	assert_int_equal(na, 2600000000LL);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* One PEM block; caller frees. */
static char *pem_block(const char *name, const char *header, const void *data, long len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	assert_true(PEM_write_bio(bio, name, header, data, len) > 0);
	n = BIO_get_mem_data(bio, &p);
	out = xstrndup(p, (size_t)n);
	BIO_free(bio);
	return out;
}

static void assert_chain_fails(const char *pem, size_t len, EVP_PKEY *key, const char *reason)
{
	char *why = NULL;

	assert_int_equal(acme_chain_check(pem, len, key, &why), MOAT_EPROTO);
	assert_non_null(why);
	assert_contains(why, reason);
	free(why);
}

static void assert_chain_ok(const char *pem, size_t len, EVP_PKEY *key)
{
	char *why = NULL;

	if (acme_chain_check(pem, len, key, &why) != 0)
		fail_msg("chain refused: %s", why);
	assert_null(why);
}

static void chain_check(void **state)
{
	struct testfs_checker *c = *state;
	EVP_PKEY *ca_key = acme_key_new(), *key = acme_key_new(), *other = acme_key_new();
	X509 *ca = x509_new_ca(ca_key, "test CA", 30);
	X509 *leaf = x509_new_client(key, "leaf", ca, ca_key, 10);
	char *pem, *buf, *blk, *cut;
	unsigned char *der = NULL;
	int dlen;
	size_t len;

	assert_int_equal(x509_write_certs(c->file, leaf, ca), 0);
	assert_int_equal(fs_read_file(c->file, 1 << 16, &pem, &len), 0);
	assert_chain_ok(pem, len, key);
	cut = strstr(pem, "-----END CERTIFICATE-----\n") + 26;
	assert_chain_ok(pem, (size_t)(cut - pem), key); /* leaf alone, no NUL */
	buf = xasprintf("Leaf:\n%.*sIssuer:\n%s\ntrailer\n", (int)(cut - pem), pem, cut);
	assert_chain_ok(buf, strlen(buf), key);
	free(buf);
	assert_chain_fails(pem, len, other, "not for our certificate key");
	assert_chain_fails(cut, strlen(cut), key, "not for our certificate key");
	assert_chain_fails("", 0, key, "0 bytes");
	assert_chain_fails("hello\n", 6, key, "no certificate");
	assert_chain_fails(pem, len - 40, key, "PEM block 2 does not parse");
	buf = xstrdup(pem);
	buf[40] = '!';
	assert_chain_fails(buf, len, key, "PEM block 1 does not parse");
	free(buf);
	blk = pem_block("CERTIFICATE", "", "garbage", 7);
	assert_chain_fails(blk, strlen(blk), key, "certificate 1 does not parse");
	free(blk);
	/* A valid certificate followed by stray bytes inside one block. */
	dlen = i2d_X509(leaf, &der);
	der = OPENSSL_realloc(der, (size_t)dlen + 1);
	der[dlen] = 0;
	blk = pem_block("CERTIFICATE", "", der, dlen + 1);
	assert_chain_fails(blk, strlen(blk), key, "certificate 1 does not parse");
	free(blk);
	blk = pem_block("CERTIFICATE", "Comment: hi\n", der, dlen);
	assert_chain_fails(blk, strlen(blk), key, "PEM block 1 has headers");
	free(blk);
	blk = pem_block("PRIVATE KEY", "", der, dlen);
	buf = xasprintf("%s%s", pem, blk);
	assert_chain_fails(buf, strlen(buf), key, "PEM block 3 is not a CERTIFICATE");
	free(buf);
	free(blk);
	OPENSSL_free(der);
	free(pem);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_new_save_load),
		cmocka_unit_test(key_load_errors),
		cmocka_unit_test(csr_names),
		cmocka_unit_test(csr_checker_can_fail),
		cmocka_unit_test(csr_rejects),
		cmocka_unit_test(alpn_cert),
		cmocka_unit_test(dns01_value),
		cmocka_unit_test(ari_rfc9773),
		cmocka_unit_test(ari_vs_python),
		cmocka_unit_test(ari_without_aki),
		cmocka_unit_test(cert_times),
		cmocka_unit_test(chain_check),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
