/*
 * test_revoke.c - CRL files as revlist_open reads them: full CRLs are
 * used; delta and partitioned CRLs, which leave revocations out, are
 * refused; a refresh that finds an older file keeps what is in force.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "revoke.h"
#include "util.h"
#include "x509util.h"

struct fx {
	char dir[64];
	char path[96];
	EVP_PKEY *key;
	X509 *ca;
	STACK_OF(X509) *issuers;
	unsigned long hash;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	int ok = 0;

	snprintf(f->dir, sizeof(f->dir), "/tmp/moat-test-revoke-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/crl.pem", f->dir);
	f->key = x509_new_key();
	f->ca = x509_new_ca(f->key, "revoke test CA", 30);
	f->issuers = sk_X509_new_null();
	sk_X509_push(f->issuers, f->ca);
	f->hash = X509_NAME_hash_ex(X509_get_subject_name(f->ca), NULL, NULL, &ok);
	*state = f;
	return f->key != NULL && f->ca != NULL && ok == 1 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	sk_X509_free(f->issuers);
	X509_free(f->ca);
	EVP_PKEY_free(f->key);
	free(f);
	return 0;
}

enum kind { FULL, DELTA, PARTITION, ONLY_CA, ONLY_USER };

/* Write a CRL numbered number revoking serial 5 (when revoke) to f->path. */
static void write_crl(struct fx *f, long number, bool revoke, enum kind kind)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ISSUING_DIST_POINT *idp = NULL;
	time_t now = time(NULL);
	char tmp[128];
	FILE *out;

	assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(f->ca)), 1);
	assert_non_null(X509_time_adj_ex(t, 0, -60 + number, &now));
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	assert_non_null(X509_time_adj_ex(t, 1, 0, &now));
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	assert_int_equal(ASN1_INTEGER_set(num, number), 1);
	assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0), 1);
	if (kind == DELTA)
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_delta_crl, num, 1, 0), 1);
	if (kind == PARTITION || kind == ONLY_CA || kind == ONLY_USER) {
		idp = ISSUING_DIST_POINT_new();
		if (kind == PARTITION) {
			idp->distpoint = DIST_POINT_NAME_new();
			idp->distpoint->type = 0;
			idp->distpoint->name.fullname = GENERAL_NAMES_new();
		}
		idp->onlyCA = kind == ONLY_CA;
		idp->onlyuser = kind == ONLY_USER;
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, idp,
						       1, 0), 1);
	}
	if (revoke) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();

		assert_int_equal(ASN1_INTEGER_set(sn, 5), 1);
		assert_int_equal(X509_REVOKED_set_serialNumber(r, sn), 1);
		assert_int_equal(X509_REVOKED_set_revocationDate(r, t), 1);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
		ASN1_INTEGER_free(sn);
	}
	assert_true(X509_CRL_sign(crl, f->key, EVP_sha256()) > 0);
	/* replaced by rename, as moat ca does: a new inode every time, so the
	 * change is seen even within one tick of the file clock */
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	out = fopen(tmp, "w");
	assert_non_null(out);
	assert_int_equal(PEM_write_X509_CRL(out, crl), 1);
	fclose(out);
	assert_int_equal(rename(tmp, f->path), 0);
	ISSUING_DIST_POINT_free(idp);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
}

static bool revoked5(struct fx *f, struct revlist *r)
{
	unsigned char five = 5;
	bool stale;

	return revlist_has(r, f->hash, &five, 1, &stale);
}

static void test_scoped_crls_refused(void **state)
{
	static const struct { enum kind kind; const char *what; } bad[] = {
		{ DELTA, "delta" }, { PARTITION, "partitioned" }, { ONLY_CA, "partitioned" },
	};
	struct fx *f = *state;
	struct revlist *r;
	char *why = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_crl(f, 2, true, bad[i].kind);
		r = revlist_open(f->path, f->issuers, &why);
		assert_null(r);
		if (strstr(why, bad[i].what) == NULL)
			fail_msg("case %zu: \"%s\" does not say %s", i, why, bad[i].what);
		free(why);
		why = NULL;
	}
	/* scoped to user certificates: complete for client certificates */
	write_crl(f, 2, true, ONLY_USER);
	r = revlist_open(f->path, f->issuers, &why);
	assert_non_null(r);
	assert_true(revoked5(f, r));
	revlist_unref(r);
}

/* A refresh that finds a delta CRL, or an older full one, keeps serial 5
 * revoked; a newer full one applies. */
static void test_refresh_never_unrevokes(void **state)
{
	struct fx *f = *state;
	struct revlist *r;
	char *why = NULL;

	write_crl(f, 2, true, FULL);
	r = revlist_open(f->path, f->issuers, &why);
	assert_non_null(r);
	assert_true(revoked5(f, r));
	write_crl(f, 3, false, DELTA);
	revoke_refresh();
	assert_true(revoked5(f, r));
	write_crl(f, 1, false, FULL);
	assert_int_equal(revoke_refresh(), 1);
	assert_true(revoked5(f, r));
	write_crl(f, 4, false, FULL);
	assert_int_equal(revoke_refresh(), 1);
	assert_false(revoked5(f, r));
	revlist_unref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scoped_crls_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_never_unrevokes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
