/*
 * test_crlset.c - revoked sets from CRLs, and the rule that replacing a set
 * never un-revokes: an older, missing or same-version CRL keeps what is in
 * force; a newer one replaces it; a CA that left the configuration, or one
 * re-created with a new key, is not compared.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "crlset.h"
#include "util.h"
#include "x509util.h"

struct ca {
	EVP_PKEY *key;
	X509 *cert;
	unsigned long hash;
};

static void ca_make(struct ca *ca, const char *cn)
{
	int ok = 0;

	ca->key = x509_new_key();
	assert_non_null(ca->key);
	ca->cert = x509_new_ca(ca->key, cn, 30);
	assert_non_null(ca->cert);
	ca->hash = X509_NAME_hash_ex(X509_get_subject_name(ca->cert), NULL, NULL, &ok);
	assert_int_equal(ok, 1);
}

static void ca_free(struct ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
}

static long next_in = 86400; /* nextUpdate of the CRLs crl_make builds, seconds from now */

/* A CRL of ca revoking serials 1..n listed in revoked (0-terminated);
 * number: decimal crlNumber or NULL for none; age: thisUpdate seconds ago. */
static X509_CRL *crl_make(const struct ca *ca, const char *number, long age, const int *revoked)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *num = NULL;
	time_t now = time(NULL);
	int i;

	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)), 1);
	assert_non_null(X509_time_adj_ex(t, 0, -age, &now));
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	assert_non_null(X509_time_adj_ex(t, 0, next_in, &now));
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	if (number != NULL) {
		assert_true(BN_dec2bn(&bn, number) > 0);
		num = BN_to_ASN1_INTEGER(bn, NULL);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0), 1);
	}
	for (i = 0; revoked != NULL && revoked[i] != 0; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();

		assert_int_equal(ASN1_INTEGER_set(sn, revoked[i]), 1);
		assert_int_equal(X509_REVOKED_set_serialNumber(r, sn), 1);
		assert_non_null(X509_time_adj_ex(t, 0, 0, &now));
		assert_int_equal(X509_REVOKED_set_revocationDate(r, t), 1);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
		ASN1_INTEGER_free(sn);
	}
	assert_true(X509_CRL_sign(crl, ca->key, EVP_sha256()) > 0);
	ASN1_INTEGER_free(num);
	BN_free(bn);
	ASN1_TIME_free(t);
	return crl;
}

/* A finished set from one CRL per (ca, number, age, revoked) given. */
static struct crlset *set_of(const struct ca *ca, const char *number, long age, const int *rev)
{
	struct crlset *s = crlset_new();
	X509_CRL *crl = crl_make(ca, number, age, rev);

	assert_int_equal(crlset_add(s, crl, ca->cert), 0);
	X509_CRL_free(crl);
	return s;
}

static bool has(const struct crlset *s, const struct ca *ca, int serial)
{
	unsigned char b = (unsigned char)serial;

	return crlset_has(s, ca->hash, &b, 1);
}

static STACK_OF(X509) *trust(const struct ca *a, const struct ca *b)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	sk_X509_push(sk, a->cert);
	if (b != NULL)
		sk_X509_push(sk, b->cert);
	return sk;
}

/* replace old by a set built from new_*: what is revoked afterwards */
static struct crlset *replace(const struct crlset *old, struct crlset *s, STACK_OF(X509) *sk,
			      size_t want_carried)
{
	const char *cn = NULL;

	assert_int_equal(crlset_carry(s, old, sk, &cn), want_carried);
	if (want_carried > 0)
		assert_non_null(cn);
	crlset_finish(s);
	return s;
}

static void test_newer_replaces_older_keeps(void **state)
{
	static const int r12[] = { 1, 2, 0 }, r3[] = { 3, 0 };
	struct ca ca;
	STACK_OF(X509) *sk;
	struct crlset *old, *s;

	ca_make(&ca, "CA one");
	sk = trust(&ca, NULL);
	old = set_of(&ca, "5", 100, r12);
	crlset_finish(old);
	assert_true(has(old, &ca, 1) && has(old, &ca, 2) && !has(old, &ca, 3));
	assert_int_equal(crlset_count(old), 2);

	/* newer (6): replaces, also lifting 1 and 2 */
	s = replace(old, set_of(&ca, "6", 50, r3), sk, 0);
	assert_true(!has(s, &ca, 1) && !has(s, &ca, 2) && has(s, &ca, 3));
	crlset_free(s);
	/* older (4): keeps what is in force, adds nothing lost */
	s = replace(old, set_of(&ca, "4", 200, r3), sk, 1);
	assert_true(has(s, &ca, 1) && has(s, &ca, 2));
	crlset_free(s);
	/* same number, lost an entry: the union stays */
	s = replace(old, set_of(&ca, "5", 100, r3), sk, 0);
	assert_true(has(s, &ca, 1) && has(s, &ca, 2) && has(s, &ca, 3));
	crlset_free(s);
	/* missing from the file: carried */
	s = crlset_new();
	s = replace(old, s, sk, 1);
	assert_true(has(s, &ca, 1) && has(s, &ca, 2));
	crlset_free(s);
	crlset_free(old);
	sk_X509_free(sk);
	ca_free(&ca);
}

/* crlNumber is up to 20 octets: compared whole, not through 64 bits */
static void test_big_numbers_and_no_numbers(void **state)
{
	static const int r1[] = { 1, 0 }, none[] = { 0 };
	struct ca ca;
	STACK_OF(X509) *sk;
	struct crlset *old, *s;

	ca_make(&ca, "CA big");
	sk = trust(&ca, NULL);
	old = set_of(&ca, "340282366920938463463374607431768211457", 100, r1);
	crlset_finish(old);
	s = replace(old, set_of(&ca, "340282366920938463463374607431768211456", 10, none), sk, 1);
	assert_true(has(s, &ca, 1));
	crlset_free(s);
	s = replace(old, set_of(&ca, "340282366920938463463374607431768211458", 200, none), sk, 0);
	assert_false(has(s, &ca, 1));
	crlset_free(s);
	crlset_free(old);
	/* without crlNumber: thisUpdate decides, and a tie keeps the union */
	old = set_of(&ca, NULL, 100, r1);
	crlset_finish(old);
	s = replace(old, set_of(&ca, NULL, 200, none), sk, 1);
	assert_true(has(s, &ca, 1));
	crlset_free(s);
	s = replace(old, set_of(&ca, NULL, 100, none), sk, 0);
	assert_true(has(s, &ca, 1));
	crlset_free(s);
	s = replace(old, set_of(&ca, NULL, 10, none), sk, 0);
	assert_false(has(s, &ca, 1));
	crlset_free(s);
	crlset_free(old);
	sk_X509_free(sk);
	ca_free(&ca);
}

/* A CA that left the configuration takes its CRL along; a CA re-created
 * under the same name with a new key starts its numbers afresh. */
static void test_issuers_by_key(void **state)
{
	static const int r1[] = { 1, 0 }, r2[] = { 2, 0 }, none[] = { 0 };
	struct ca a, b, a2;
	STACK_OF(X509) *both, *only_a, *only_a2;
	struct crlset *old, *s;
	X509_CRL *crl;

	ca_make(&a, "CA a");
	ca_make(&b, "CA b");
	ca_make(&a2, "CA a");
	both = trust(&a, &b);
	only_a = trust(&a, NULL);
	only_a2 = trust(&a2, NULL);
	old = set_of(&a, "9", 100, r1);
	crl = crl_make(&b, "3", 100, r2);
	assert_int_equal(crlset_add(old, crl, b.cert), 0);
	X509_CRL_free(crl);
	crlset_finish(old);
	assert_true(has(old, &a, 1) && has(old, &b, 2));
	/* the file lost b's CRL: kept while b is trusted, dropped once it is not */
	s = replace(old, set_of(&a, "10", 50, none), both, 1);
	assert_true(has(s, &b, 2) && !has(s, &a, 1));
	crlset_free(s);
	s = replace(old, set_of(&a, "10", 50, none), only_a, 0);
	assert_false(has(s, &b, 2));
	crlset_free(s);
	/* re-keyed "CA a" with crlNumber 1: not older than the old key's 9 */
	s = replace(old, set_of(&a2, "1", 10, none), only_a2, 0);
	assert_false(has(s, &a2, 1));
	crlset_free(s);
	crlset_free(old);
	sk_X509_free(both);
	sk_X509_free(only_a);
	sk_X509_free(only_a2);
	ca_free(&a);
	ca_free(&b);
	ca_free(&a2);
}

static void test_next_update_and_serials(void **state)
{
	static const int r1[] = { 1, 0 };
	struct ca ca;
	struct crlset *s;
	unsigned char big[CRLSET_SERIAL_MAX + 1];

	ca_make(&ca, "CA n");
	s = set_of(&ca, "1", 10, r1);
	crlset_finish(s);
	assert_true(crlset_next_update(s) > time(NULL));
	memset(big, 1, sizeof(big));
	/* what cannot be looked up is never vouched for */
	assert_true(crlset_has(s, ca.hash, big, sizeof(big)));
	assert_true(crlset_has(s, ca.hash, big, 0));
	assert_false(crlset_has(s, ca.hash + 1, big, 1));
	crlset_free(s);
	crlset_free(NULL);
	ca_free(&ca);
}

/* How long a set may vouch comes from the CRLs in force only: a replaced
 * CRL's near nextUpdate, or that of a CA not trusted here, no longer
 * counts; a carried one does. */
static void test_next_update_of_versions_in_force(void **state)
{
	static const int none[] = { 0 };
	struct ca a, b, c;
	STACK_OF(X509) *ab;
	struct crlset *old, *s;
	X509_CRL *crl;
	time_t now = time(NULL);

	ca_make(&a, "CA a");
	ca_make(&b, "CA b");
	ca_make(&c, "CA c");
	ab = trust(&a, &b);
	next_in = 100;
	old = set_of(&a, "1", 100, none);
	crl = crl_make(&c, "1", 100, none);
	assert_int_equal(crlset_add(old, crl, c.cert), 0);
	X509_CRL_free(crl);
	next_in = 86400;
	crl = crl_make(&b, "1", 100, none);
	assert_int_equal(crlset_add(old, crl, b.cert), 0);
	X509_CRL_free(crl);
	crlset_finish(old);
	assert_true(crlset_next_update(old) <= now + 200);
	/* A's CRL replaced by a newer one, B's carried, C not trusted here */
	s = replace(old, set_of(&a, "2", 50, none), ab, 1);
	assert_true(crlset_next_update(s) > now + 80000);
	crlset_free(s);
	/* A missing: its near nextUpdate comes along with its revocations */
	s = replace(old, set_of(&b, "2", 50, none), ab, 1);
	assert_true(crlset_next_update(s) <= now + 200);
	crlset_free(s);
	crlset_free(old);
	sk_X509_free(ab);
	ca_free(&a);
	ca_free(&b);
	ca_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_newer_replaces_older_keeps),
		cmocka_unit_test(test_big_numbers_and_no_numbers),
		cmocka_unit_test(test_issuers_by_key),
		cmocka_unit_test(test_next_update_and_serials),
		cmocka_unit_test(test_next_update_of_versions_in_force),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
