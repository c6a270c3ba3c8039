/*
 * test_pki.c - internal CA and leaf certificates, in a mkdtemp data dir.
 * Leaves are checked the way a TLS client would: X509_STORE verification
 * with the SSL server purpose and a host (or IP) check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fsutil.h"
#include "pki.h"
#include "testfs.h"
#include "util.h"

#define DAY 86400

struct paths {
	char *dir;
	char *ca_cert;
	char *ca_key;
};

static int setup(void **state)
{
	struct paths *p = xcalloc(1, sizeof(*p));

	p->dir = xstrdup("/tmp/moat-test-pki-XXXXXX");
	if (mkdtemp(p->dir) == NULL)
		return -1;
	p->ca_cert = xasprintf("%s/internal-ca.pem", p->dir);
	p->ca_key = xasprintf("%s/internal-ca.key", p->dir);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct paths *p = *state;

	testfs_rm_tree(p->dir);
	free(p->ca_key);
	free(p->ca_cert);
	free(p->dir);
	free(p);
	return 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* All certificates of a PEM file, in order. */
static STACK_OF(X509) *load_certs(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = BIO_new_file(path, "r");
	X509 *x;

	assert_non_null(bio);
	for (x = PEM_read_bio_X509(bio, NULL, NULL, NULL); x != NULL;
	     x = PEM_read_bio_X509(bio, NULL, NULL, NULL))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(bio);
	return sk;
}

static X509 *load_cert(const char *path)
{
	STACK_OF(X509) *sk = load_certs(path);
	X509 *x;

	assert_true(sk_X509_num(sk) >= 1);
	x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

static EVP_PKEY *load_key(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *k;

	assert_non_null(bio);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(k);
	BIO_free(bio);
	return k;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return timegm(&tm);
}

static void assert_near(long got, long want, long slack)
{
	if (got < want - slack || got > want + slack)
		fail_msg("%ld is not within %ld of %ld", got, slack, want);
}

/* Verify like a TLS client: chain to the CA, SSL server purpose, name. */
static void assert_verifies(const char *ca_path, X509 *leaf, const char *host,
			    const char *ip)
{
	X509 *ca = load_cert(ca_path);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	int ok;

	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
	param = X509_STORE_CTX_get0_param(ctx);
	if (host != NULL)
		assert_int_equal(X509_VERIFY_PARAM_set1_host(param, host, 0), 1);
	if (ip != NULL)
		assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(param, ip), 1);
	ok = X509_verify_cert(ctx);
	if (ok != 1)
		fail_msg("verify failed: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	if (host != NULL)
		assert_int_equal(X509_check_host(leaf, host, 0, 0, NULL), 1);
	if (ip != NULL)
		assert_int_equal(X509_check_ip_asc(leaf, ip, 0), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ca);
}

/* Issue a leaf for host and return the parsed leaf; paths optional. */
static X509 *issue(struct paths *p, const char *host, char **cert_out,
		   char **key_out, time_t *na_out)
{
	char *cp = NULL, *kp = NULL;
	time_t na = 0;
	X509 *leaf;

	assert_int_equal(pki_ensure_leaf(p->dir, host, &cp, &kp, &na), 0);
	assert_non_null(cp);
	assert_non_null(kp);
	leaf = load_cert(cp);
	assert_int_equal(na, asn1_time(X509_get0_notAfter(leaf)));
	if (cert_out != NULL)
		*cert_out = cp;
	else
		free(cp);
	if (key_out != NULL)
		*key_out = kp;
	else
		free(kp);
	if (na_out != NULL)
		*na_out = na;
	return leaf;
}

static void ca_created(void **state)
{
	struct paths *p = *state;
	X509 *ca;
	EVP_PKEY *key;
	ASN1_INTEGER *serial;
	BIGNUM *bn;
	char *pem, group[64], cn[128], o[64];
	int crit = -1;
	BASIC_CONSTRAINTS *bc;
	time_t now = time(NULL);

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	testfs_assert_mode(p->ca_key, 0600);
	testfs_assert_mode(p->ca_cert, 0644);
	pem = testfs_slurp(p->ca_key);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----")); /* PKCS#8 */
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);

	ca = load_cert(p->ca_cert);
	key = load_key(p->ca_key);
	assert_int_equal(X509_check_private_key(ca, key), 1);
	assert_int_equal(X509_verify(ca, key), 1);
	assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), NULL), 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);

	assert_int_equal(X509_check_ca(ca), 1);
	bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_pathlen(ca), 0);
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(X509_EXTENSION_get_critical(
		X509_get_ext(ca, X509_get_ext_by_NID(ca, NID_key_usage, -1))), 1);
	assert_non_null(X509_get0_subject_key_id(ca));

	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca),
					      NID_commonName, cn, sizeof(cn)) > 0);
	assert_memory_equal(cn, "moat internal CA (", 18);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca),
					      NID_organizationName, o, sizeof(o)) > 0);
	assert_string_equal(o, "moat");

	serial = X509_get_serialNumber(ca);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bits(bn) <= 127);
	assert_true(BN_num_bits(bn) > 64); /* random, not a counter */
	BN_free(bn);

	assert_near(asn1_time(X509_get0_notAfter(ca)), now + 3652L * DAY, 60);
	EVP_PKEY_free(key);
	X509_free(ca);
}

static void ca_kept_on_second_call(void **state)
{
	struct paths *p = *state;
	char *cert1, *key1, *cert2, *key2;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	cert1 = testfs_slurp(p->ca_cert);
	key1 = testfs_slurp(p->ca_key);
	assert_int_equal(pki_ensure_ca(p->dir), 0);
	cert2 = testfs_slurp(p->ca_cert);
	key2 = testfs_slurp(p->ca_key);
	assert_string_equal(cert1, cert2);
	assert_string_equal(key1, key2);
	free(key2);
	free(cert2);
	free(key1);
	free(cert1);
}

static void leaf_issued_and_verifies(void **state)
{
	struct paths *p = *state;
	char *cp, *kp, *want_cp, *want_kp, *certs, *bytes1, *bytes2;
	STACK_OF(X509) *chain;
	X509 *leaf, *leaf2, *ca;
	EVP_PKEY *key;
	BASIC_CONSTRAINTS *bc;
	int crit = -1;
	char cn[128];
	time_t na, now = time(NULL);

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "app.localhost", &cp, &kp, &na);
	want_cp = xasprintf("%s/certs/app.localhost.pem", p->dir);
	want_kp = xasprintf("%s/certs/app.localhost.key", p->dir);
	certs = xasprintf("%s/certs", p->dir);
	assert_string_equal(cp, want_cp);
	assert_string_equal(kp, want_kp);
	testfs_assert_mode(certs, 0700);
	testfs_assert_mode(cp, 0644);
	testfs_assert_mode(kp, 0600);

	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	assert_int_equal(X509_check_host(leaf, "other.localhost", 0, 0, NULL), 0);
	key = load_key(kp);
	assert_int_equal(X509_check_private_key(leaf, key), 1);
	EVP_PKEY_free(key);

	assert_true(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_check_ca(leaf), 0);
	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca, 0);
	BASIC_CONSTRAINTS_free(bc);
	assert_non_null(X509_get0_subject_key_id(leaf));
	assert_non_null(X509_get0_authority_key_id(leaf));
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf),
					      NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "app.localhost");
	assert_near(asn1_time(X509_get0_notBefore(leaf)), now - 300, 60);
	assert_near(na, now + PKI_LEAF_DAYS * DAY, 60);

	/* The chain file is leaf, then the CA itself. */
	chain = load_certs(cp);
	ca = load_cert(p->ca_cert);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), ca), 0);
	X509_free(ca);
	sk_X509_pop_free(chain, X509_free);

	/* A current leaf is kept as is. */
	bytes1 = testfs_slurp(cp);
	leaf2 = issue(p, "app.localhost", NULL, NULL, NULL);
	bytes2 = testfs_slurp(cp);
	assert_string_equal(bytes1, bytes2);

	X509_free(leaf2);
	free(bytes2);
	free(bytes1);
	free(certs);
	free(want_kp);
	free(want_cp);
	free(kp);
	free(cp);
	X509_free(leaf);
}

static void leaf_for_ip_addresses(void **state)
{
	struct paths *p = *state;
	char *cp, *want;
	X509 *leaf;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "127.0.0.1", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, NULL, "127.0.0.1");
	X509_free(leaf);

	leaf = issue(p, "[::1]", &cp, NULL, NULL);
	want = xasprintf("%s/certs/[::1].pem", p->dir);
	assert_string_equal(cp, want);
	assert_verifies(p->ca_cert, leaf, NULL, "::1");
	X509_free(leaf);
	free(want);
	free(cp);

	leaf = issue(p, "fd00::2", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, NULL, "fd00:0::2");
	X509_free(leaf);
}

static void leaf_wildcard(void **state)
{
	struct paths *p = *state;
	char *cp, *kp, *want;
	X509 *leaf;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "*.home.localhost", &cp, &kp, NULL);
	want = xasprintf("%s/certs/_.home.localhost.pem", p->dir);
	assert_string_equal(cp, want);
	free(want);
	want = xasprintf("%s/certs/_.home.localhost.key", p->dir);
	assert_string_equal(kp, want);
	assert_verifies(p->ca_cert, leaf, "lights.home.localhost", NULL);
	assert_int_equal(X509_check_host(leaf, "a.b.home.localhost", 0, 0, NULL), 0);
	X509_free(leaf);
	free(want);
	free(kp);
	free(cp);
}

/*
 * Sign a leaf for host with the current CA and the key already on disk,
 * valid from now+nb_off to now+na_off, and install it as host's chain.
 */
static void install_crafted_leaf(struct paths *p, const char *host,
				 const char *cert_path, const char *key_path,
				 long nb_off, long na_off)
{
	X509 *ca = load_cert(p->ca_cert);
	EVP_PKEY *ca_key = load_key(p->ca_key);
	EVP_PKEY *key = load_key(key_path);
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	time_t now = time(NULL);
	char *san = xasprintf("DNS:%s", host);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;

	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
		NID_commonName, MBSTRING_UTF8, (const unsigned char *)host, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca)), 1);
	assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), 0, nb_off, &now));
	assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 0, na_off, &now));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);

	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	assert_int_equal(PEM_write_bio_X509(bio, ca), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_int_equal(fs_write_atomic(cert_path, data, (size_t)n, 0644), 0);

	BIO_free(bio);
	free(san);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
}

static void leaf_renewed_in_last_third(void **state)
{
	struct paths *p = *state;
	char *cp, *kp, *before, *after;
	X509 *leaf;
	time_t na, now = time(NULL);

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "app.localhost", &cp, &kp, NULL);
	X509_free(leaf);

	/* 30-day life, 20 days left: more than a third, kept. */
	install_crafted_leaf(p, "app.localhost", cp, kp, -10L * DAY, 20L * DAY);
	before = testfs_slurp(cp);
	leaf = issue(p, "app.localhost", NULL, NULL, &na);
	after = testfs_slurp(cp);
	assert_string_equal(before, after);
	assert_near(na, now + 20L * DAY, 60);
	X509_free(leaf);
	free(after);
	free(before);

	/* 30-day life, 1 day left: reissued with a full lifetime. */
	install_crafted_leaf(p, "app.localhost", cp, kp, -29L * DAY, 1L * DAY);
	leaf = issue(p, "app.localhost", NULL, NULL, &na);
	assert_near(na, now + PKI_LEAF_DAYS * DAY, 60);
	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	X509_free(leaf);

	/* Expired outright. */
	install_crafted_leaf(p, "app.localhost", cp, kp, -40L * DAY, -10L * DAY);
	leaf = issue(p, "app.localhost", NULL, NULL, &na);
	assert_near(na, now + PKI_LEAF_DAYS * DAY, 60);
	X509_free(leaf);
	free(kp);
	free(cp);
}

static void leaf_reissued_when_wrong(void **state)
{
	struct paths *p = *state;
	char *cp, *kp, *ocp, *okp, *pem, *before;
	X509 *leaf;
	EVP_PKEY *other;
	BIO *bio;
	long n;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "app.localhost", &cp, &kp, NULL);
	X509_free(leaf);

	/* Key replaced by an unrelated one. */
	other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, other, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &pem);
	assert_int_equal(fs_write_atomic(kp, pem, (size_t)n, 0600), 0);
	BIO_free(bio);
	EVP_PKEY_free(other);
	before = testfs_slurp(cp);
	leaf = issue(p, "app.localhost", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	other = load_key(kp);
	assert_int_equal(X509_check_private_key(leaf, other), 1);
	EVP_PKEY_free(other);
	X509_free(leaf);
	pem = testfs_slurp(cp);
	assert_true(strcmp(before, pem) != 0);
	free(pem);
	free(before);

	/* Corrupt certificate, then a missing key. */
	assert_int_equal(fs_write_atomic(cp, "garbage", 7, 0644), 0);
	leaf = issue(p, "app.localhost", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	X509_free(leaf);
	assert_int_equal(unlink(kp), 0);
	leaf = issue(p, "app.localhost", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	X509_free(leaf);

	/* Valid files, but for another name. */
	ocp = xasprintf("%s/certs/other.localhost.pem", p->dir);
	okp = xasprintf("%s/certs/other.localhost.key", p->dir);
	pem = testfs_slurp(cp);
	assert_int_equal(fs_write_atomic(ocp, pem, strlen(pem), 0644), 0);
	free(pem);
	pem = testfs_slurp(kp);
	assert_int_equal(fs_write_atomic(okp, pem, strlen(pem), 0600), 0);
	free(pem);
	leaf = issue(p, "other.localhost", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, "other.localhost", NULL);
	X509_free(leaf);

	/* A new CA (the user deleted both files): every leaf is reissued. */
	assert_int_equal(unlink(p->ca_cert), 0);
	assert_int_equal(unlink(p->ca_key), 0);
	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "app.localhost", NULL, NULL, NULL);
	assert_verifies(p->ca_cert, leaf, "app.localhost", NULL);
	X509_free(leaf);

	free(okp);
	free(ocp);
	free(kp);
	free(cp);
}

static void ca_corrupt_is_an_error(void **state)
{
	struct paths *p = *state;
	char *cert, *key, *cert2, *key2, *other_dir, *other_key;
	char *cp = NULL, *kp = NULL;
	time_t na = 0;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	assert_int_equal(fs_write_atomic(p->ca_key, "garbage\n", 8, 0600), 0);
	cert = testfs_slurp(p->ca_cert);
	key = testfs_slurp(p->ca_key);
	assert_int_equal(pki_ensure_ca(p->dir), MOAT_ETLS);
	assert_int_equal(pki_ensure_leaf(p->dir, "app.localhost", &cp, &kp, &na),
			 MOAT_ETLS);
	assert_null(cp);
	assert_null(kp);
	cert2 = testfs_slurp(p->ca_cert);
	key2 = testfs_slurp(p->ca_key);
	assert_string_equal(cert, cert2);
	assert_string_equal(key, key2);
	free(key2);
	free(cert2);
	free(key);

	/* A valid key that belongs to another CA. */
	other_dir = xasprintf("%s/other", p->dir);
	other_key = xasprintf("%s/internal-ca.key", other_dir);
	assert_int_equal(fs_mkdir_private(other_dir), 0);
	assert_int_equal(pki_ensure_ca(other_dir), 0);
	key = testfs_slurp(other_key);
	assert_int_equal(fs_write_atomic(p->ca_key, key, strlen(key), 0600), 0);
	assert_int_equal(pki_ensure_ca(p->dir), MOAT_ETLS);
	key2 = testfs_slurp(p->ca_key);
	cert2 = testfs_slurp(p->ca_cert);
	assert_string_equal(key, key2);
	assert_string_equal(cert, cert2);
	free(cert2);
	free(key2);
	free(key);
	free(other_key);
	free(other_dir);
	free(cert);
}

static void ca_with_one_file_missing(void **state)
{
	struct paths *p = *state;
	char *key, *key2, *cert, *cert2;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	key = testfs_slurp(p->ca_key);
	cert = testfs_slurp(p->ca_cert);

	assert_int_equal(unlink(p->ca_cert), 0);
	assert_int_equal(pki_ensure_ca(p->dir), MOAT_EIO);
	assert_false(exists(p->ca_cert));
	key2 = testfs_slurp(p->ca_key);
	assert_string_equal(key, key2);
	free(key2);

	assert_int_equal(fs_write_atomic(p->ca_cert, cert, strlen(cert), 0644), 0);
	assert_int_equal(unlink(p->ca_key), 0);
	assert_int_equal(pki_ensure_ca(p->dir), MOAT_EIO);
	assert_false(exists(p->ca_key));
	cert2 = testfs_slurp(p->ca_cert);
	assert_string_equal(cert, cert2);
	free(cert2);
	free(cert);
	free(key);
}

static void leaf_bad_hosts(void **state)
{
	struct paths *p = *state;
	static const char *const bad[] = {
		"", "../evil", "a/b", ".", "..", "*.", "*", "foo*.bar", "a.*.b",
		"a..b", ".a", "a.", "host:443", "[1.2.3.4]", "sp ace",
	};
	char *cp, *kp;
	time_t na;
	size_t i;

	assert_int_equal(pki_ensure_ca(p->dir), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cp = kp = NULL;
		if (pki_ensure_leaf(p->dir, bad[i], &cp, &kp, &na) != MOAT_EINVAL)
			fail_msg("host \"%s\" was accepted", bad[i]);
		assert_null(cp);
		assert_null(kp);
	}
}

/* Write failures are reported, nothing is half-returned, nothing leaks. */
static void write_failures(void **state)
{
	struct paths *p = *state;
	char *missing = xasprintf("%s/missing", p->dir);
	char *blocker = xasprintf("%s/certs/app.localhost.pem/x", p->dir);
	char *cp = NULL, *kp = NULL;
	time_t na = 0;

	assert_int_equal(pki_ensure_ca(missing), MOAT_EIO);
	assert_false(exists(missing));

	/* A non-empty directory where the chain should go: rename fails. */
	assert_int_equal(pki_ensure_ca(p->dir), 0);
	assert_int_equal(fs_mkdir_private(blocker), 0);
	assert_int_equal(pki_ensure_leaf(p->dir, "app.localhost", &cp, &kp, &na),
			 MOAT_EIO);
	assert_null(cp);
	assert_null(kp);
	free(blocker);
	free(missing);
}

/* The real openssl CLI agrees (skipped when it is not installed). */
static void leaf_openssl_cli_verify(void **state)
{
	struct paths *p = *state;
	char *cp, *cmd;
	X509 *leaf;

	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	assert_int_equal(pki_ensure_ca(p->dir), 0);
	leaf = issue(p, "app.localhost", &cp, NULL, NULL);
	cmd = xasprintf("openssl verify -CAfile '%s' -purpose sslserver "
			"-verify_hostname app.localhost '%s' >/dev/null",
			p->ca_cert, cp);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(cp);
	X509_free(leaf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ca_created, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_kept_on_second_call, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_issued_and_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_for_ip_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_wildcard, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_renewed_in_last_third, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_reissued_when_wrong, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_corrupt_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_with_one_file_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_bad_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(write_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(leaf_openssl_cli_verify, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
