/*
 * test_ca.c - the client CA (ca.c, castore.c) and its PKCS#12 bundles
 * (p12.c), in a mkdtemp data dir. Certificates are checked the way a TLS
 * server checks a client: X509_STORE verification with the SSL client
 * purpose; CRLs with X509_CRL_verify against the CA key.
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
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "castore.h"
#include "fsutil.h"
#include "p12.h"
#include "testfs.h"
#include "util.h"
#include "x509util.h"

#define DAY 86400

struct paths {
	char *data, *dir, *cert, *key, *crl, *index;
};

static int setup(void **state)
{
	struct paths *p = xcalloc(1, sizeof(*p));

	p->data = xstrdup("/tmp/moat-test-ca-XXXXXX");
	if (mkdtemp(p->data) == NULL)
		return -1;
	p->dir = xasprintf("%s/client-ca", p->data);
	p->cert = xasprintf("%s/ca.pem", p->dir);
	p->key = xasprintf("%s/ca.key", p->dir);
	p->crl = xasprintf("%s/crl.pem", p->dir);
	p->index = xasprintf("%s/index.json", p->dir);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct paths *p = *state;

	testfs_rm_tree(p->data);
	free(p->index);
	free(p->crl);
	free(p->key);
	free(p->cert);
	free(p->dir);
	free(p->data);
	free(p);
	return 0;
}

static void spit(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(fs_write_atomic(path, text, strlen(text), mode), 0);
}

static X509 *load_cert(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *x;

	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	BIO_free(bio);
	return x;
}

static X509_CRL *load_crl(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509_CRL *c;

	assert_non_null(bio);
	c = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	assert_non_null(c);
	BIO_free(bio);
	return c;
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

static long crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	long v;

	assert_non_null(n);
	v = ASN1_INTEGER_get(n);
	ASN1_INTEGER_free(n);
	return v;
}

/* The CRL verifies with the CA key; returns whether it revokes serial. */
static bool crl_revokes(const struct paths *p, const char *serial, long *number)
{
	X509 *ca = load_cert(p->cert);
	X509_CRL *crl = load_crl(p->crl);
	X509_REVOKED *r = NULL;
	ASN1_INTEGER *sn;
	BIGNUM *bn = NULL;
	int found;

	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)), 0);
	assert_int_equal(ASN1_TIME_compare(X509_CRL_get0_nextUpdate(crl),
					   X509_get0_notAfter(ca)), 0);
	if (number != NULL)
		*number = crl_number(crl);
	assert_true(BN_hex2bn(&bn, serial) > 0);
	sn = BN_to_ASN1_INTEGER(bn, NULL);
	found = X509_CRL_get0_by_serial(crl, &r, sn);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	X509_CRL_free(crl);
	X509_free(ca);
	return found == 1;
}

static struct ca *open_ca(const struct paths *p, bool write)
{
	struct ca *ca = NULL;

	assert_int_equal(ca_open(p->data, write, &ca), 0);
	assert_non_null(ca);
	return ca;
}

static void issue(struct ca *ca, const char *name, bool force, struct ca_issued *res)
{
	int rc = ca_issue(ca, name, CA_CLIENT_DAYS, force, NULL, res);

	if (rc != 0)
		fail_msg("ca_issue(%s) = %d (%s)", name, rc, moat_strerror(rc));
}

static void init_creates_everything(void **state)
{
	struct paths *p = *state;
	X509 *ca, *ret = NULL;
	X509_CRL *crl;
	char cn[128], o[64], *idx, *clients;
	time_t now = time(NULL);

	assert_int_equal(ca_init(p->data, NULL, &ret), 0);
	assert_non_null(ret);
	testfs_assert_mode(p->dir, 0700);
	testfs_assert_mode(p->cert, 0644);
	testfs_assert_mode(p->key, 0600);
	testfs_assert_mode(p->crl, 0644);
	testfs_assert_mode(p->index, 0600);
	clients = xasprintf("%s/clients", p->dir);
	assert_int_equal(access(clients, F_OK), -1); /* made by the first issue */
	free(clients);

	ca = load_cert(p->cert);
	assert_int_equal(X509_cmp(ca, ret), 0);
	assert_int_equal(X509_check_ca(ca), 1);
	assert_int_equal(X509_get_pathlen(ca), 0);
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_non_null(X509_get0_subject_key_id(ca));
	assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName,
					      cn, sizeof(cn)) > 0);
	assert_memory_equal(cn, "moat client CA (", 16);
	assert_true(strlen(cn) <= 64);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca),
					      NID_organizationName, o, sizeof(o)) > 0);
	assert_string_equal(o, "moat");
	assert_near(asn1_time(X509_get0_notBefore(ca)), now - 300, 60);
	assert_near(asn1_time(X509_get0_notAfter(ca)), now + 3652L * DAY, 60);

	crl = load_crl(p->crl);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
	assert_null(X509_CRL_get_REVOKED(crl)); /* no entries at all */
	assert_int_equal(crl_number(crl), 1);
	X509_CRL_free(crl);

	idx = testfs_slurp(p->index);
	assert_non_null(strstr(idx, "\"version\": 1"));
	assert_non_null(strstr(idx, "\"crl_number\": 1"));
	assert_non_null(strstr(idx, "\"certs\": []"));
	free(idx);
	X509_free(ca);
	X509_free(ret);
}

static void init_names(void **state)
{
	struct paths *p = *state;
	/* 64 characters of two bytes each: within ub-common-name. */
	char long_ok[2 * 64 + 1] = "", too_long[66];
	X509 *ca = NULL;
	char cn[256];
	int i;

	for (i = 0; i < 64; i++)
		strcat(long_ok, "\xc3\xa9");
	memset(too_long, 'a', 65);
	too_long[65] = '\0';
	assert_int_equal(ca_init(p->data, too_long, NULL), MOAT_EINVAL);
	assert_int_equal(ca_init(p->data, "", NULL), MOAT_EINVAL);
	assert_int_equal(ca_init(p->data, "tab\there", NULL), MOAT_EINVAL);
	assert_int_equal(ca_init(p->data, "bad \xff utf-8", NULL), MOAT_EINVAL);
	assert_int_equal(access(p->cert, F_OK), -1);
	assert_int_equal(ca_init(p->data, long_ok, &ca), 0);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName,
					      cn, sizeof(cn)) > 0);
	assert_string_equal(cn, long_ok);
	X509_free(ca);
}

static void init_refuses_second(void **state)
{
	struct paths *p = *state;
	char *cert, *key, *cert2, *key2;
	struct ca *ca = NULL;
	struct ca_issued res;

	assert_int_equal(ca_init(p->data, "Home CA", NULL), 0);
	cert = testfs_slurp(p->cert);
	key = testfs_slurp(p->key);
	assert_int_equal(ca_init(p->data, "Other CA", NULL), MOAT_EEXIST);
	/* Half a CA that issued something (the certificate deleted) is not
	 * overwritten: its key signed a client certificate. */
	assert_int_equal(ca_open(p->data, true, &ca), 0);
	assert_int_equal(ca_issue(ca, "alice", 30, false, NULL, &res), 0);
	ca_issued_free(&res);
	ca_close(ca);
	assert_int_equal(unlink(p->cert), 0);
	assert_int_equal(ca_init(p->data, "Other CA", NULL), MOAT_EEXIST);
	key2 = testfs_slurp(p->key);
	assert_string_equal(key, key2);
	spit(p->cert, cert, 0644);
	cert2 = testfs_slurp(p->cert);
	assert_string_equal(cert, cert2);
	free(cert2);
	free(key2);
	free(key);
	free(cert);
}

/* A key without a certificate and nothing issued is an init that crashed
 * before its last write: init starts over. */
static void init_after_interrupted_init(void **state)
{
	struct paths *p = *state;
	char *key, *key2;

	assert_int_equal(ca_init(p->data, "Home CA", NULL), 0);
	key = testfs_slurp(p->key);
	assert_int_equal(unlink(p->cert), 0);
	assert_int_equal(ca_init(p->data, "Home CA", NULL), 0);
	key2 = testfs_slurp(p->key);
	assert_string_not_equal(key, key2);
	free(key2);
	free(key);
}

static void issue_client_cert(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued res;
	struct ca_entry *e;
	X509 *leaf, *root;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	BASIC_CONSTRAINTS *bc;
	BIGNUM *bn;
	char cn[128], *want, sha[65];
	int crit = -1;
	size_t n;
	time_t now = time(NULL);

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "alice@phone", false, &res);
	want = xasprintf("%s/clients/alice@phone.pem", p->dir);
	assert_string_equal(res.cert_path, want);
	free(want);
	want = xasprintf("%s/clients/alice@phone.key", p->dir);
	assert_string_equal(res.key_path, want);
	free(want);
	want = xasprintf("%s/clients", p->dir);
	testfs_assert_mode(want, 0700);
	free(want);
	testfs_assert_mode(res.cert_path, 0644);
	testfs_assert_mode(res.key_path, 0600);

	leaf = load_cert(res.cert_path);
	assert_int_equal(X509_cmp(leaf, res.cert), 0);
	assert_int_equal(X509_check_private_key(leaf, res.key), 1);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName,
					      cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "alice@phone");
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_EXTENSION_get_critical(
		X509_get_ext(leaf, X509_get_ext_by_NID(leaf, NID_key_usage, -1))), 1);
	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca, 0);
	BASIC_CONSTRAINTS_free(bc);
	root = load_cert(p->cert);
	assert_non_null(X509_get0_subject_key_id(leaf));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
					       X509_get0_subject_key_id(root)), 0);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	assert_false(BN_is_negative(bn));
	assert_true(BN_num_bits(bn) > 64 && BN_num_bits(bn) <= 127);
	BN_free(bn);
	assert_near(asn1_time(X509_get0_notBefore(leaf)), now - 300, 60);
	assert_near(asn1_time(X509_get0_notAfter(leaf)), now + 825L * DAY, 60);
	assert_near(res.not_after, now + 825L * DAY, 60);

	/* A TLS server checking a client certificate accepts it. */
	assert_int_equal(X509_STORE_add_cert(store, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), 1);
	if (X509_verify_cert(ctx) != 1)
		fail_msg("verify failed: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));

	/* The index records it, with the hash of the DER. */
	ca_list(ca, now, &e, &n);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].name, "alice@phone");
	assert_string_equal(e[0].serial, res.serial);
	assert_int_equal(e[0].status, CA_ACTIVE);
	assert_int_equal(e[0].not_after, res.not_after);
	assert_int_equal(x509_sha256_hex(leaf, sha), 0);
	assert_string_equal(e[0].sha256, sha);
	free(e);

	/* Out of range lifetimes and names are refused before anything. */
	ca_issued_free(&res);
	assert_int_equal(ca_issue(ca, "bob", 0, false, NULL, &res), MOAT_EINVAL);
	assert_int_equal(ca_issue(ca, "bob", 3651, false, NULL, &res), MOAT_EINVAL);
	assert_int_equal(ca_issue(ca, "../bob", 30, false, NULL, &res), MOAT_EINVAL);
	assert_null(res.cert);
	ca_close(ca);

	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(root);
	X509_free(leaf);
}

static void duplicate_name_and_force(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued a, b;
	struct ca_entry *e;
	size_t n;

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "alice", false, &a);
	assert_int_equal(ca_issue(ca, "alice", 30, false, NULL, &b), MOAT_EEXIST);
	assert_null(b.cert);
	ca_list(ca, time(NULL), &e, &n);
	assert_int_equal(n, 1);
	free(e);
	issue(ca, "alice", true, &b);
	assert_string_not_equal(a.serial, b.serial);
	ca_close(ca);

	/* Both are in the index on disk, for a fresh reader too. */
	ca = open_ca(p, false);
	ca_list(ca, time(NULL), &e, &n);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].serial, a.serial);
	assert_string_equal(e[1].serial, b.serial);
	free(e);
	ca_close(ca);
	ca_issued_free(&b);
	ca_issued_free(&a);
}

static void revoke_writes_crl(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued a1, a2, b;
	char (*serials)[CA_SERIAL_HEX_MAX + 1] = NULL;
	size_t n;
	long num = 0;

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "alice", false, &a1);
	issue(ca, "alice", true, &a2);
	issue(ca, "bob", false, &b);

	/* --serial must belong to the name. */
	assert_int_equal(ca_revoke(ca, "alice", b.serial, &serials, &n), MOAT_ENOTFOUND);
	assert_int_equal(ca_revoke(ca, "carol", NULL, &serials, &n), MOAT_ENOTFOUND);
	assert_int_equal(ca_revoke(ca, "alice", "xyz", &serials, &n), MOAT_EINVAL);
	assert_false(crl_revokes(p, a1.serial, &num));
	assert_int_equal(num, 1);

	assert_int_equal(ca_revoke(ca, "alice", a1.serial, &serials, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(serials[0], a1.serial);
	free(serials);
	assert_true(crl_revokes(p, a1.serial, &num));
	assert_int_equal(num, 2);
	assert_false(crl_revokes(p, a2.serial, NULL));

	/* Without --serial: every remaining one; then nothing is left. */
	assert_int_equal(ca_revoke(ca, "alice", NULL, &serials, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(serials[0], a2.serial);
	free(serials);
	assert_int_equal(ca_revoke(ca, "alice", NULL, &serials, &n), MOAT_ENOTFOUND);
	assert_int_equal(ca_revoke(ca, "alice", a1.serial, &serials, &n), MOAT_ENOTFOUND);
	assert_null(serials);
	assert_true(crl_revokes(p, a1.serial, &num));
	assert_true(crl_revokes(p, a2.serial, NULL));
	assert_false(crl_revokes(p, b.serial, NULL));
	assert_int_equal(num, 3);
	assert_int_equal(ca_crl_number(ca), 3);
	ca_close(ca);

	ca_issued_free(&b);
	ca_issued_free(&a2);
	ca_issued_free(&a1);
}

static void list_statuses(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued a, b, c;
	char (*serials)[CA_SERIAL_HEX_MAX + 1] = NULL;
	struct ca_entry *e;
	size_t n;
	time_t now = time(NULL);

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "active", false, &a);
	issue(ca, "revoked", false, &b);
	assert_int_equal(ca_issue(ca, "short", 30, false, NULL, &c), 0);
	assert_int_equal(ca_revoke(ca, "revoked", NULL, &serials, &n), 0);
	free(serials);
	ca_close(ca);

	ca = open_ca(p, false);
	ca_list(ca, now, &e, &n);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].status, CA_ACTIVE);
	assert_int_equal(e[1].status, CA_REVOKED);
	assert_near(e[1].revoked_at, now, 60);
	assert_int_equal(e[2].status, CA_ACTIVE);
	free(e);
	/* 31 days on the 30-day one expired; the revoked one stays revoked. */
	ca_list(ca, now + 31L * DAY, &e, &n);
	assert_int_equal(e[0].status, CA_ACTIVE);
	assert_int_equal(e[1].status, CA_REVOKED);
	assert_int_equal(e[2].status, CA_EXPIRED);
	free(e);
	ca_list(ca, now + 900L * DAY, &e, &n);
	assert_int_equal(e[0].status, CA_EXPIRED);
	assert_int_equal(e[1].status, CA_REVOKED);
	free(e);
	ca_close(ca);

	/* Today the 30-day one is still active: its name is taken. */
	ca_issued_free(&c);
	ca = open_ca(p, true);
	assert_int_equal(ca_issue(ca, "short", 30, false, NULL, &c), MOAT_EEXIST);
	ca_close(ca);
	ca_issued_free(&b);
	ca_issued_free(&a);
}

static void empty_ca_lists_nothing(void **state)
{
	struct paths *p = *state;
	struct ca *ca = NULL;
	struct ca_entry *e = (struct ca_entry *)1;
	size_t n = 99;

	assert_int_equal(ca_open(p->data, false, &ca), MOAT_ENOTFOUND);
	assert_null(ca);
	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, false);
	ca_list(ca, time(NULL), &e, &n);
	assert_int_equal(n, 0);
	assert_null(e);
	ca_close(ca);
}

/* tmpl with every '@' replaced by sha; heap string. */
static char *with_sha(const char *tmpl, const char *sha)
{
	char *out = xcalloc(strlen(tmpl) * 65 + 1, 1), *o = out;

	for (; *tmpl != '\0'; tmpl++) {
		if (*tmpl == '@') {
			strcpy(o, sha);
			o += strlen(sha);
		} else {
			*o++ = *tmpl;
		}
	}
	return out;
}

static void corrupt_index_rejected(void **state)
{
	struct paths *p = *state;
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{\"version\":2,\"crl_number\":1,\"certs\":[]}",
		"{\"version\":1,\"certs\":[]}",
		"{\"version\":1,\"crl_number\":-1,\"certs\":[]}",
		"{\"version\":1,\"crl_number\":1}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[1]}",
		"{\"version\":1,\"crl_number\":1,\"version\":1,\"certs\":[]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"../x\",\"serial\":\"0A\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"active\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0G\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"active\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0A\","
		"\"not_before\":\"yesterday\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"active\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0A\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"ABC\",\"status\":\"active\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0A\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"revoked\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0A\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"lost\"}]}",
		"{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\",\"serial\":\"0A\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"active\"},{\"name\":\"y\",\"serial\":\"0a\","
		"\"not_before\":\"2024-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
		"\"sha256\":\"@\",\"status\":\"active\"}]}",
	};
	static const char good_sha[] =
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct castore_index idx;
	struct ca *ca = NULL;
	struct ca_issued res;
	char *text, *after;
	size_t i;

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = with_sha(bad[i], good_sha);
		spit(p->index, text, 0600);
		if (ca_open(p->data, true, &ca) != MOAT_EINVAL)
			fail_msg("index #%zu accepted: %s", i, text);
		assert_null(ca);
		if (ca_open(p->data, false, &ca) != MOAT_EINVAL)
			fail_msg("index #%zu accepted read-only: %s", i, text);
		after = testfs_slurp(p->index);
		assert_string_equal(after, text);
		free(after);
		free(text);
	}
	/* A good form, for contrast: it loads. */
	text = with_sha("{\"version\":1,\"crl_number\":1,\"certs\":[{\"name\":\"x\","
			"\"serial\":\"0a\",\"not_before\":\"2024-01-01T00:00:00Z\","
			"\"not_after\":\"2026-01-01T00:00:00Z\",\"sha256\":\"@\","
			"\"status\":\"active\"}]}", good_sha);
	spit(p->index, text, 0600);
	assert_int_equal(castore_index_load(p->index, &idx), 0);
	assert_int_equal(idx.n, 1);
	assert_string_equal(idx.e[0].serial, "0A");
	castore_index_free(&idx);
	ca = open_ca(p, true);
	assert_int_equal(ca_issue(ca, "y", 30, false, NULL, &res), 0);
	ca_issued_free(&res);
	ca_close(ca);
	free(text);
}

/* Replace crl.pem with one (signed by the CA) revoking only serial. */
static void write_crl_of(const struct paths *p, const char *serial, long number)
{
	struct castore_index none = {0};
	struct castore_revoked r = {"", 1700000000};
	X509 *root = NULL;
	EVP_PKEY *key = NULL;

	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	assert_int_equal(x509_load_cert(p->cert, &root), 0);
	assert_int_equal(x509_load_key(p->key, &key), 0);
	assert_int_equal(castore_crl_write(p->crl, root, key, number, &none, &r, 1), 0);
	EVP_PKEY_free(key);
	X509_free(root);
}

/* A revoke that died between the CRL and the index write must not
 * un-revoke; an index revocation the CRL lacks gets a new CRL. */
static void crl_and_index_reconciled(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued a, b;
	char (*serials)[CA_SERIAL_HEX_MAX + 1] = NULL;
	char *old_index, *old_crl;
	struct ca_entry *e;
	size_t n;
	long num = 0;

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "a", false, &a);
	issue(ca, "b", false, &b);
	ca_close(ca);
	old_index = testfs_slurp(p->index);
	old_crl = testfs_slurp(p->crl);

	ca = open_ca(p, true);
	assert_int_equal(ca_revoke(ca, "a", NULL, &serials, &n), 0);
	free(serials);
	ca_close(ca);
	spit(p->index, old_index, 0600); /* "crash" before the index landed */

	ca = open_ca(p, false);
	ca_list(ca, time(NULL), &e, &n);
	assert_int_equal(e[0].status, CA_REVOKED);
	free(e);
	ca_close(ca);
	ca = open_ca(p, true); /* a writer records it in the index */
	ca_close(ca);
	free(old_index);
	old_index = testfs_slurp(p->index);
	assert_non_null(strstr(old_index, "\"revoked\""));
	assert_non_null(strstr(old_index, "\"crl_number\": 2"));

	/* Now the other way round: the CRL is an old one (or deleted). */
	spit(p->crl, old_crl, 0644);
	assert_false(crl_revokes(p, a.serial, NULL));
	ca = open_ca(p, true);
	ca_close(ca);
	assert_true(crl_revokes(p, a.serial, &num));
	assert_false(crl_revokes(p, b.serial, NULL));
	assert_int_equal(num, 3);
	assert_int_equal(unlink(p->crl), 0);
	ca = open_ca(p, true);
	ca_close(ca);
	assert_true(crl_revokes(p, a.serial, &num));
	assert_int_equal(num, 4);

	/* A CRL revoking a serial the index never heard of (an index restored
	 * from an old backup): the serial stays revoked in every later CRL. */
	write_crl_of(p, "0DEAD1", 10);
	ca = open_ca(p, true);
	ca_close(ca);
	assert_true(crl_revokes(p, "0DEAD1", &num));
	assert_true(crl_revokes(p, a.serial, NULL));
	assert_int_equal(num, 11);
	ca = open_ca(p, true);
	assert_int_equal(ca_revoke(ca, "b", NULL, &serials, &n), 0);
	free(serials);
	ca_close(ca);
	assert_true(crl_revokes(p, "0DEAD1", &num));
	assert_true(crl_revokes(p, b.serial, NULL));
	assert_int_equal(num, 12);

	free(old_crl);
	free(old_index);
	ca_issued_free(&b);
	ca_issued_free(&a);
}

static void name_validation(void **state)
{
	static const char *const good[] = {
		"a", "alice", "Alice.Phone", "bob@example.org", "x_y-z", "0", "a.",
		"1234567890123456789012345678901234567890123456789012345678901234",
	};
	static const char *const bad[] = {
		"", ".hidden", "-rf", "../x", "a/b", "a b", "caf\xc3\xa9", "a\\b", "a:b",
		"a\nb", "*", "..",
		"12345678901234567890123456789012345678901234567890123456789012345",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (ca_check_name(good[i]) != 0)
			fail_msg("\"%s\" refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ca_check_name(bad[i]) != MOAT_EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	assert_int_equal(ca_check_serial("0a1B"), 0);
	assert_int_equal(ca_check_serial("0x1B"), MOAT_EINVAL);
	assert_int_equal(ca_check_serial(""), MOAT_EINVAL);
	assert_int_equal(ca_check_serial("-1"), MOAT_EINVAL);
}

static void password_generator(void **state)
{
	enum { N = 400 };
	static char pw[N][P12_GEN_LEN + 1];
	unsigned counts[32] = {0};
	const char *alpha = P12_ALPHABET;
	size_t i, j;

	assert_int_equal(strlen(alpha), 32);
	assert_int_equal(P12_GEN_LEN, 29);
	for (i = 0; i < N; i++) {
		assert_int_equal(p12_generate_password(pw[i], sizeof(pw[i])), 0);
		assert_int_equal(strlen(pw[i]), P12_GEN_LEN);
		for (j = 0; j < P12_GEN_LEN; j++) {
			if (j % 5 == 4) {
				if (pw[i][j] != '-')
					fail_msg("%s: no '-' at %zu", pw[i], j);
				continue;
			}
			if (strchr(alpha, pw[i][j]) == NULL)
				fail_msg("%s: '%c' is not in the alphabet", pw[i], pw[i][j]);
			counts[strchr(alpha, pw[i][j]) - alpha]++;
		}
		for (j = 0; j < i; j++)
			if (strcmp(pw[i], pw[j]) == 0)
				fail_msg("password %zu repeats %zu: %s", i, j, pw[i]);
	}
	/* 9600 characters, 300 expected per symbol: every symbol is used and
	 * none is wildly over- or under-represented. */
	for (j = 0; j < 32; j++)
		if (counts[j] < 200 || counts[j] > 400)
			fail_msg("'%c' drawn %u times of 9600, expected about 300", alpha[j],
				 counts[j]);
	assert_int_equal(p12_generate_password(pw[0], P12_GEN_LEN), MOAT_EINVAL);
}

static void password_file(void **state)
{
	struct paths *p = *state;
	char *path = xasprintf("%s/pw", p->data), *pw = NULL, big[5000];
	static const char *const cases[][2] = {
		{"secret\n", "secret"}, {"secret\r\nsecond line\n", "secret"},
		{"no newline", "no newline"}, {"  spaces kept  \n", "  spaces kept  "},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spit(path, cases[i][0], 0600);
		assert_int_equal(p12_read_password_file(path, &pw), 0);
		assert_string_equal(pw, cases[i][1]);
		p12_password_free(pw);
	}
	spit(path, "\nsecond line\n", 0600);
	assert_int_equal(p12_read_password_file(path, &pw), MOAT_EINVAL);
	assert_null(pw);
	spit(path, "", 0600);
	assert_int_equal(p12_read_password_file(path, &pw), MOAT_EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	spit(path, big, 0600);
	assert_int_equal(p12_read_password_file(path, &pw), MOAT_ETOOBIG);
	assert_null(pw);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(p12_read_password_file(path, &pw), MOAT_EIO);
	free(path);
}

/* Both encodings open with the password (and only with it), carry the
 * friendly name, the key, the certificate and the CA. */
static void p12_bundles(void **state)
{
	struct paths *p = *state;
	struct ca *ca;
	struct ca_issued res;
	char *path = xasprintf("%s/a.p12", p->data), *der;
	size_t len;
	int kind;

	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	ca = open_ca(p, true);
	issue(ca, "phone", false, &res);
	for (kind = P12_MODERN; kind <= P12_LEGACY; kind++) {
		const unsigned char *q;
		PKCS12 *p12;
		EVP_PKEY *key = NULL;
		X509 *cert = NULL;
		STACK_OF(X509) *chain = NULL;
		int alias_len = 0;
		const unsigned char *alias;

		assert_int_equal(p12_write(path, res.key, res.cert, ca_cert(ca), "phone",
					   "pass word", (enum p12_kind)kind), 0);
		testfs_assert_mode(path, 0600);
		assert_int_equal(fs_read_file(path, 1 << 20, &der, &len), 0);
		q = (const unsigned char *)der;
		p12 = d2i_PKCS12(NULL, &q, (long)len);
		assert_non_null(p12);
		assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
		assert_int_equal(PKCS12_verify_mac(p12, "pass word", -1), 1);
		assert_int_equal(PKCS12_parse(p12, "pass word", &key, &cert, &chain), 1);
		assert_int_equal(X509_cmp(cert, res.cert), 0);
		assert_int_equal(EVP_PKEY_eq(key, res.key), 1);
		assert_int_equal(sk_X509_num(chain), 1);
		assert_int_equal(X509_cmp(sk_X509_value(chain, 0), ca_cert(ca)), 0);
		alias = X509_alias_get0(cert, &alias_len);
		assert_non_null(alias);
		assert_int_equal(alias_len, 5);
		assert_memory_equal(alias, "phone", 5);
		sk_X509_pop_free(chain, X509_free);
		X509_free(cert);
		EVP_PKEY_free(key);
		PKCS12_free(p12);
		free(der);
	}
	ca_close(ca);
	ca_issued_free(&res);
	free(path);
}

static void export_ca(void **state)
{
	struct paths *p = *state;
	char *pem = NULL, *file;
	size_t len = 0;

	assert_int_equal(ca_export(p->data, &pem, &len), MOAT_ENOTFOUND);
	assert_null(pem);
	assert_int_equal(ca_init(p->data, NULL, NULL), 0);
	assert_int_equal(ca_export(p->data, &pem, &len), 0);
	file = testfs_slurp(p->cert);
	assert_string_equal(pem, file);
	assert_int_equal(len, strlen(file));
	free(file);
	free(pem);
	spit(p->cert, "garbage\n", 0644);
	assert_int_equal(ca_export(p->data, &pem, &len), MOAT_ETLS);
	assert_null(pem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(init_creates_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(init_names, setup, teardown),
		cmocka_unit_test_setup_teardown(init_refuses_second, setup, teardown),
		cmocka_unit_test_setup_teardown(issue_client_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(duplicate_name_and_force, setup, teardown),
		cmocka_unit_test_setup_teardown(revoke_writes_crl, setup, teardown),
		cmocka_unit_test_setup_teardown(list_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_ca_lists_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_index_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(init_after_interrupted_init, setup, teardown),
		cmocka_unit_test_setup_teardown(crl_and_index_reconciled, setup, teardown),
		cmocka_unit_test_setup_teardown(name_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(password_generator, setup, teardown),
		cmocka_unit_test_setup_teardown(password_file, setup, teardown),
		cmocka_unit_test_setup_teardown(p12_bundles, setup, teardown),
		cmocka_unit_test_setup_teardown(export_ca, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
