/*
 * test_certstore.c - ACME certificates on disk: file names, the install
 * and what a crash at each step of it leaves (certstore_recover must end
 * with a matching pair, the old or the new one), and state.json.
 * Each test works in its own mkdtemp directory, removed in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certstore.h"
#include "fsutil.h"
#include "testfs.h"
#include "util.h"
#include "x509util.h"

#define HOST "a.example.test"

struct pair {
	EVP_PKEY *key;
	char *pem;     /* the certificate */
	char serial[80];
};

struct fx {
	char *dir;
	struct pair old, new;
};

static void make_pair(struct pair *p, long days)
{
	time_t now = time(NULL);
	X509 *x;
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *hex;
	long n;

	p->key = x509_new_key();
	x = x509_new_cert(p->key, now - 3600, now + days * 86400);
	assert_non_null(x);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)HOST, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, p->key, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	p->pem = xstrndup(data, (size_t)n);
	hex = x509_serial_hex(X509_get0_serialNumber(x));
	snprintf(p->serial, sizeof(p->serial), "%s", hex);
	free(hex);
	BIO_free(b);
	X509_free(x);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->dir = xstrdup("/tmp/moat-test-certstore-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	make_pair(&f->old, 90);
	make_pair(&f->new, 60);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	testfs_rm_tree(f->dir);
	EVP_PKEY_free(f->old.key);
	EVP_PKEY_free(f->new.key);
	free(f->old.pem);
	free(f->new.pem);
	free(f->dir);
	free(f);
	return 0;
}

static bool file_exists(const char *data, const char *name)
{
	char *p = certstore_path(data, HOST, name);
	struct stat st;
	bool yes = stat(p, &st) == 0;

	free(p);
	return yes;
}

static void write_named(const char *data, const char *name, const char *text)
{
	char *p = certstore_path(data, HOST, name);

	assert_int_equal(fs_write_atomic(p, text, strlen(text), 0600), 0);
	free(p);
}

static void write_key(const char *data, const char *name, EVP_PKEY *k)
{
	char *p = certstore_path(data, HOST, name);

	assert_int_equal(x509_write_key(p, k), 0);
	free(p);
}

/* The served pair matches and is the one with serial want. */
static void assert_served(const char *data, const char *want)
{
	char *c = certstore_path(data, HOST, "cert.pem"), *k = certstore_path(data, HOST, "key.pem");
	struct certstore_state st;
	X509 *x = NULL;
	EVP_PKEY *key = NULL;

	assert_int_equal(x509_load_cert(c, &x), 0);
	assert_int_equal(x509_load_key(k, &key), 0);
	assert_int_equal(X509_check_private_key(x, key), 1);
	assert_int_equal(certstore_load(data, HOST, &st), 0);
	assert_string_equal(st.serial, want);
	assert_false(file_exists(data, "cert.pem.next"));
	assert_false(file_exists(data, "key.pem.next"));
	X509_free(x);
	EVP_PKEY_free(key);
	free(c);
	free(k);
}

static void test_paths(void **state)
{
	char *p = certstore_path("/d", "*.home.example.org", "cert.pem");

	assert_string_equal(p, "/d/certs/_wildcard.home.example.org/cert.pem");
	free(p);
	p = certstore_path("/d", "a.example.org", NULL);
	assert_string_equal(p, "/d/certs/a.example.org");
	free(p);
}

static void test_install(void **state)
{
	struct fx *f = *state;
	char *k = certstore_path(f->dir, HOST, "key.pem");
	struct certstore_state st;
	struct stat sb;

	assert_false(certstore_has_cert(f->dir, HOST));
	assert_int_equal(certstore_install(f->dir, HOST, f->old.key, f->old.pem, strlen(f->old.pem)), 0);
	assert_true(certstore_has_cert(f->dir, HOST));
	assert_served(f->dir, f->old.serial);
	assert_int_equal(stat(k, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(certstore_load(f->dir, HOST, &st), 0);
	assert_true(st.not_after > time(NULL) + 89 * 86400);
	assert_true(st.not_before < time(NULL));
	assert_non_null(strstr(st.issuer, HOST));
	assert_int_equal(certstore_install(f->dir, HOST, f->new.key, f->new.pem, strlen(f->new.pem)), 0);
	assert_served(f->dir, f->new.serial);
	free(k);
}

/* A crash after both .next files were written: the new pair goes in. */
static void test_recover_both_next(void **state)
{
	struct fx *f = *state;

	assert_int_equal(certstore_install(f->dir, HOST, f->old.key, f->old.pem, strlen(f->old.pem)), 0);
	write_key(f->dir, "key.pem.next", f->new.key);
	write_named(f->dir, "cert.pem.next", f->new.pem);
	assert_int_equal(certstore_recover(f->dir, HOST), 0);
	assert_served(f->dir, f->new.serial);
}

/* A crash after the key was renamed: key.pem is new, cert.pem old. */
static void test_recover_key_renamed(void **state)
{
	struct fx *f = *state;

	assert_int_equal(certstore_install(f->dir, HOST, f->old.key, f->old.pem, strlen(f->old.pem)), 0);
	write_key(f->dir, "key.pem", f->new.key);
	write_named(f->dir, "cert.pem.next", f->new.pem);
	assert_int_equal(certstore_recover(f->dir, HOST), 0);
	assert_served(f->dir, f->new.serial);
}

/* A crash before the certificate was written: the old pair stays. */
static void test_recover_key_only(void **state)
{
	struct fx *f = *state;

	assert_int_equal(certstore_install(f->dir, HOST, f->old.key, f->old.pem, strlen(f->old.pem)), 0);
	write_key(f->dir, "key.pem.next", f->new.key);
	assert_int_equal(certstore_recover(f->dir, HOST), 0);
	assert_served(f->dir, f->old.serial);
}

/* A stray cert.pem.next that matches no key is dropped. */
static void test_recover_stray(void **state)
{
	struct fx *f = *state;

	assert_int_equal(certstore_install(f->dir, HOST, f->old.key, f->old.pem, strlen(f->old.pem)), 0);
	write_named(f->dir, "cert.pem.next", f->new.pem);
	assert_int_equal(certstore_recover(f->dir, HOST), 0);
	assert_served(f->dir, f->old.serial);
}

static void test_state(void **state)
{
	struct fx *f = *state;
	struct certstore_state st, back;

	assert_int_equal(certstore_load(f->dir, HOST, &st), 0);
	assert_int_equal(st.not_after, 0);
	assert_int_equal(st.failures, 0);
	st.failures = 3;
	st.next_attempt = 1800000000;
	st.renew_at = 1790000000;
	st.ari_start = 1780000000;
	st.ari_end = 1781000000;
	snprintf(st.last_error, sizeof(st.last_error), "connection refused \"quoted\"");
	snprintf(st.challenge, sizeof(st.challenge), "http-01");
	assert_int_equal(certstore_save(f->dir, HOST, &st), 0);
	assert_int_equal(certstore_load(f->dir, HOST, &back), 0);
	assert_int_equal(back.failures, 3);
	assert_int_equal(back.next_attempt, 1800000000);
	assert_int_equal(back.renew_at, 1790000000);
	assert_int_equal(back.ari_start, 1780000000);
	assert_int_equal(back.ari_end, 1781000000);
	assert_string_equal(back.last_error, "connection refused \"quoted\"");
	assert_string_equal(back.challenge, "http-01");
	/* an edited, broken file resets the schedule rather than stopping */
	write_named(f->dir, "state.json", "{ not json");
	assert_int_equal(certstore_load(f->dir, HOST, &back), 0);
	assert_int_equal(back.failures, 0);
	assert_string_equal(back.last_error, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_both_next, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_key_renamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_key_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_stray, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
