/*
 * test_acme_chal.c - the store of pending ACME challenges (validation,
 * replacement, withdrawal, bounds, the path and ALPN parsers, concurrent
 * use), and TLS-ALPN-01 end to end through tls.c: real handshakes between
 * an OpenSSL client and tls_sites_new's server over a memory BIO pair, for
 * a configuration of `tls: internal` sites in a mkdtemp directory.
 * HTTP-01 answers and conn.c's close after a challenge handshake are
 * exercised against pebble by the ACME integration tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testfs.h"

#include "acme_chal.h"
#include "conf.h"
#include "pki.h"
#include "tls.h"
#include "util.h"

/* ---- helpers ---------------------------------------------------------- */

/* A self-signed P-256 certificate for name: a TLS-ALPN-01 certificate's
 * shape without its acmeIdentifier extension, which tls.c never reads. */
static void make_cert(const char *name, X509 **cert, EVP_PKEY **key)
{
	static long serial = 1;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	char *san = xasprintf("DNS:%s", name);
	X509_EXTENSION *ext;
	X509_NAME *n;
	X509V3_CTX v3;

	assert_non_null(k);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
						    (const unsigned char *)"moat tls-alpn-01 test",
						    -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	free(san);
	*cert = x;
	*key = k;
}

/* Another reference to each, for a put that takes ownership. */
static void up_refs(X509 *cert, EVP_PKEY *key)
{
	assert_int_equal(X509_up_ref(cert), 1);
	assert_int_equal(EVP_PKEY_up_ref(key), 1);
}

static void expect_keyauth(const char *host, const char *token, const char *want)
{
	char out[ACME_CHAL_KEYAUTH_MAX + 1];

	if (!acme_chal_http_get(host, token, out, sizeof(out)))
		fail_msg("(%s, %s): no key authorization, want \"%s\"", host, token, want);
	assert_string_equal(out, want);
}

static void expect_no_keyauth(const char *host, const char *token)
{
	char out[ACME_CHAL_KEYAUTH_MAX + 1];

	if (acme_chal_http_get(host, token, out, sizeof(out)))
		fail_msg("(%s, %s): got \"%s\", want none", host, token, out);
	assert_string_equal(out, "");
}

static int clear_store(void **state)
{
	acme_chal_clear();
	return 0;
}

/* ---- HTTP-01 store ---------------------------------------------------- */

static void http_put_get_replace_del(void **state)
{
	char small[8];

	expect_no_keyauth("a.test", "tok");
	assert_int_equal(acme_chal_http_put("a.test", "tok", "tok.thumb"), 0);
	expect_keyauth("a.test", "tok", "tok.thumb");
	/* keyed by both host and token */
	expect_no_keyauth("b.test", "tok");
	expect_no_keyauth("a.test", "tok2");
	expect_no_keyauth("a.test", "TOK");
	assert_int_equal(acme_chal_http_put("b.test", "tok", "tok.other"), 0);
	assert_int_equal(acme_chal_http_put("a.test", "tok2", "tok2.thumb"), 0);
	expect_keyauth("b.test", "tok", "tok.other");
	expect_keyauth("a.test", "tok2", "tok2.thumb");
	/* replaced, not duplicated */
	assert_int_equal(acme_chal_http_put("a.test", "tok", "tok.new-thumb_"), 0);
	expect_keyauth("a.test", "tok", "tok.new-thumb_");
	acme_chal_http_del("a.test", "tok");
	expect_no_keyauth("a.test", "tok");
	expect_keyauth("a.test", "tok2", "tok2.thumb");
	expect_keyauth("b.test", "tok", "tok.other");
	/* withdrawing what is not there, twice, or with NULLs is harmless */
	acme_chal_http_del("a.test", "tok");
	acme_chal_http_del("nope.test", "tok2");
	acme_chal_http_del(NULL, "tok2");
	acme_chal_http_del("a.test", NULL);
	expect_keyauth("a.test", "tok2", "tok2.thumb");
	/* does not fit: false, and an empty string rather than a truncation */
	assert_false(acme_chal_http_get("a.test", "tok2", small, sizeof(small)));
	assert_string_equal(small, "");
	assert_false(acme_chal_http_get("a.test", "tok2", small, 0));
	/* exactly fits: "tok2.thumb" is 10 bytes plus the NUL */
	{
		char exact[11];

		assert_true(acme_chal_http_get("a.test", "tok2", exact, sizeof(exact)));
		assert_string_equal(exact, "tok2.thumb");
		assert_false(acme_chal_http_get("a.test", "tok2", exact, sizeof(exact) - 1));
	}
	assert_false(acme_chal_http_get(NULL, "tok2", small, sizeof(small)));
	acme_chal_clear();
	expect_no_keyauth("a.test", "tok2");
	expect_no_keyauth("b.test", "tok");
}

static void http_put_rejects_malformed(void **state)
{
	char tok128[ACME_CHAL_TOKEN_MAX + 2], ka[ACME_CHAL_KEYAUTH_MAX + 2], host[300];

	memset(tok128, 'A', sizeof(tok128));
	tok128[ACME_CHAL_TOKEN_MAX] = '\0';
	memset(ka, 'k', sizeof(ka));
	ka[ACME_CHAL_KEYAUTH_MAX] = '\0';
	memset(host, 'h', sizeof(host));
	host[ACME_CHAL_HOST_MAX] = '\0';

	/* the longest of each is fine */
	assert_int_equal(acme_chal_http_put(host, tok128, ka), 0);
	expect_keyauth(host, tok128, ka);
	/* one more byte of each is not */
	host[ACME_CHAL_HOST_MAX] = 'h';
	host[ACME_CHAL_HOST_MAX + 1] = '\0';
	assert_int_equal(acme_chal_http_put(host, "t", "t.k"), MOAT_EINVAL);
	tok128[ACME_CHAL_TOKEN_MAX] = 'A';
	tok128[ACME_CHAL_TOKEN_MAX + 1] = '\0';
	assert_int_equal(acme_chal_http_put("a.test", tok128, "t.k"), MOAT_EINVAL);
	ka[ACME_CHAL_KEYAUTH_MAX] = 'k';
	ka[ACME_CHAL_KEYAUTH_MAX + 1] = '\0';
	assert_int_equal(acme_chal_http_put("a.test", "t", ka), MOAT_EINVAL);

	assert_int_equal(acme_chal_http_put(NULL, "t", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", NULL, "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "t", NULL), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("", "t", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "t", ""), MOAT_EINVAL);
	/* not canonical, or a wildcard */
	assert_int_equal(acme_chal_http_put("A.test", "t", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("*.a.test", "t", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a test", "t", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test/x", "t", "t.k"), MOAT_EINVAL);
	/* a token is base64url: no padding, no '.', '/', '+', '%' */
	assert_int_equal(acme_chal_http_put("a.test", "ab=", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "a.b", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "a/b", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "a+b", "t.k"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "a%2e", "t.k"), MOAT_EINVAL);
	/* a key authorization is base64url and '.', nothing that could be
	 * markup or split a line */
	assert_int_equal(acme_chal_http_put("a.test", "t", "t.k\r\n"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "t", "t.<b>"), MOAT_EINVAL);
	assert_int_equal(acme_chal_http_put("a.test", "t", "t k"), MOAT_EINVAL);
	expect_no_keyauth("a.test", "t");
	/* IP identifiers as uri_canon_host writes them */
	assert_int_equal(acme_chal_http_put("192.0.2.1", "t", "t.k"), 0);
	assert_int_equal(acme_chal_http_put("[2001:db8::1]", "t", "t.k"), 0);
	expect_keyauth("[2001:db8::1]", "t", "t.k");
}

static void http_store_is_bounded(void **state)
{
	char token[32];
	int i;

	for (i = 0; i < ACME_CHAL_MAX; i++) {
		snprintf(token, sizeof(token), "tok%d", i);
		assert_int_equal(acme_chal_http_put("a.test", token, "ka.x"), 0);
	}
	assert_int_equal(acme_chal_http_put("a.test", "one-more", "ka.x"), MOAT_ENOMEM);
	assert_int_equal(acme_chal_http_put("b.test", "tok0", "ka.x"), MOAT_ENOMEM);
	expect_no_keyauth("a.test", "one-more");
	/* replacing one that is there needs no room */
	assert_int_equal(acme_chal_http_put("a.test", "tok7", "ka.replaced"), 0);
	expect_keyauth("a.test", "tok7", "ka.replaced");
	/* every one is still found (the table is not a ring) */
	for (i = 0; i < ACME_CHAL_MAX; i++) {
		snprintf(token, sizeof(token), "tok%d", i);
		expect_keyauth("a.test", token, i == 7 ? "ka.replaced" : "ka.x");
	}
	/* withdrawing one makes room for exactly one */
	acme_chal_http_del("a.test", "tok100");
	assert_int_equal(acme_chal_http_put("a.test", "one-more", "ka.y"), 0);
	assert_int_equal(acme_chal_http_put("a.test", "two-more", "ka.y"), MOAT_ENOMEM);
	expect_keyauth("a.test", "one-more", "ka.y");
	expect_no_keyauth("a.test", "tok100");
	expect_keyauth("a.test", "tok255", "ka.x");
	acme_chal_clear();
	assert_int_equal(acme_chal_http_put("a.test", "two-more", "ka.y"), 0);
}

static void http_token_of_path(void **state)
{
	char path[300];
	const char *tok;

	tok = acme_chal_http_token("/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0");
	assert_non_null(tok);
	assert_string_equal(tok, "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0");
	assert_string_equal(acme_chal_http_token("/.well-known/acme-challenge/a-_9Z"), "a-_9Z");

	/* anything else under the prefix, or elsewhere, is not a token */
	assert_null(acme_chal_http_token(NULL));
	assert_null(acme_chal_http_token(""));
	assert_null(acme_chal_http_token("/"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/abc?x=1"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/abc?"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/abc/"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/abc/def"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/ab.c"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/ab%2Fc"));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge/ab=="));
	assert_null(acme_chal_http_token("/.well-known/acme-challenge//abc"));
	assert_null(acme_chal_http_token("/.Well-Known/acme-challenge/abc"));
	assert_null(acme_chal_http_token("/x/.well-known/acme-challenge/abc"));
	assert_null(acme_chal_http_token(".well-known/acme-challenge/abc"));
	assert_null(acme_chal_http_token("*"));

	/* 1..ACME_CHAL_TOKEN_MAX characters */
	snprintf(path, sizeof(path), "%s", ACME_CHAL_PREFIX);
	memset(path + strlen(path), 'x', ACME_CHAL_TOKEN_MAX);
	path[sizeof(ACME_CHAL_PREFIX) - 1 + ACME_CHAL_TOKEN_MAX] = '\0';
	assert_non_null(acme_chal_http_token(path));
	strcat(path, "x");
	assert_null(acme_chal_http_token(path));
}

static void alpn_list_parser(void **state)
{
	static const unsigned char only[] = "\x0a" "acme-tls/1";
	static const unsigned char last[] = "\x02" "h2" "\x08" "http/1.1" "\x0a" "acme-tls/1";
	static const unsigned char first[] = "\x0a" "acme-tls/1" "\x08" "http/1.1";
	static const unsigned char normal[] = "\x02" "h2" "\x08" "http/1.1";
	static const unsigned char prefix[] = "\x09" "acme-tls/";
	static const unsigned char longer[] = "\x0b" "acme-tls/12";
	static const unsigned char upper[] = "\x0a" "ACME-TLS/1";
	static const unsigned char cut[] = "\x0a" "acme-tls/";   /* length says 10, 9 follow */
	static const unsigned char zero[] = "\x00" "\x0a" "acme-tls/1";
	static const unsigned char hidden[] = "\x0b" "xacme-tls/1";

	assert_true(acme_chal_has_alpn(only, sizeof(only) - 1));
	assert_true(acme_chal_has_alpn(last, sizeof(last) - 1));
	assert_true(acme_chal_has_alpn(first, sizeof(first) - 1));
	assert_false(acme_chal_has_alpn(normal, sizeof(normal) - 1));
	assert_false(acme_chal_has_alpn(prefix, sizeof(prefix) - 1));
	assert_false(acme_chal_has_alpn(longer, sizeof(longer) - 1));
	assert_false(acme_chal_has_alpn(upper, sizeof(upper) - 1));
	assert_false(acme_chal_has_alpn(cut, sizeof(cut) - 1));
	assert_false(acme_chal_has_alpn(zero, sizeof(zero) - 1));
	assert_false(acme_chal_has_alpn(hidden, sizeof(hidden) - 1));
	assert_false(acme_chal_has_alpn(only, 0));
	assert_false(acme_chal_has_alpn(only, sizeof(only) - 2));
}

/* ---- TLS-ALPN-01 store ------------------------------------------------ */

static void alpn_put_ctx_del(void **state)
{
	X509 *cert, *cert2, *got;
	EVP_PKEY *key, *key2;
	SSL_CTX *ctx, *ctx2;

	make_cert("a.test", &cert, &key);
	make_cert("a.test", &cert2, &key2);
	assert_null(acme_chal_alpn_ctx("a.test"));
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("a.test", cert, key), 0);
	ctx = acme_chal_alpn_ctx("a.test");
	assert_non_null(ctx);
	assert_int_equal(X509_cmp(SSL_CTX_get0_certificate(ctx), cert), 0);
	assert_null(acme_chal_alpn_ctx("b.test"));
	assert_null(acme_chal_alpn_ctx("A.test"));
	assert_null(acme_chal_alpn_ctx(NULL));

	/* replaced: new lookups get the new certificate, and the context a
	 * handshake already holds stays whole */
	up_refs(cert2, key2);
	assert_int_equal(acme_chal_alpn_put("a.test", cert2, key2), 0);
	ctx2 = acme_chal_alpn_ctx("a.test");
	assert_non_null(ctx2);
	assert_ptr_not_equal(ctx, ctx2);
	assert_int_equal(X509_cmp(SSL_CTX_get0_certificate(ctx2), cert2), 0);
	got = SSL_CTX_get0_certificate(ctx);
	assert_int_equal(X509_cmp(got, cert), 0);

	/* withdrawn: gone for new lookups, held ones still usable */
	acme_chal_alpn_del("a.test");
	assert_null(acme_chal_alpn_ctx("a.test"));
	assert_int_equal(X509_cmp(SSL_CTX_get0_certificate(ctx2), cert2), 0);
	acme_chal_alpn_del("a.test");
	acme_chal_alpn_del(NULL);
	SSL_CTX_free(ctx);
	SSL_CTX_free(ctx2);

	/* several hosts side by side; clear drops them all */
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("a.test", cert, key), 0);
	up_refs(cert2, key2);
	assert_int_equal(acme_chal_alpn_put("b.test", cert2, key2), 0);
	ctx = acme_chal_alpn_ctx("b.test");
	assert_non_null(ctx);
	assert_int_equal(X509_cmp(SSL_CTX_get0_certificate(ctx), cert2), 0);
	SSL_CTX_free(ctx);
	acme_chal_clear();
	assert_null(acme_chal_alpn_ctx("a.test"));
	assert_null(acme_chal_alpn_ctx("b.test"));

	X509_free(cert);
	EVP_PKEY_free(key);
	X509_free(cert2);
	EVP_PKEY_free(key2);
}

/* Ownership passes on failure too: LeakSanitizer (the _san flavour)
 * reports the pair if a failing put kept it. */
static void alpn_put_failures_free(void **state)
{
	X509 *cert, *other;
	EVP_PKEY *key, *okey;

	make_cert("a.test", &cert, &key);
	make_cert("b.test", &other, &okey);
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("*.a.test", cert, key), MOAT_EINVAL);
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("A.TEST", cert, key), MOAT_EINVAL);
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("", cert, key), MOAT_EINVAL);
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put(NULL, cert, key), MOAT_EINVAL);
	assert_int_equal(X509_up_ref(cert), 1);
	assert_int_equal(acme_chal_alpn_put("a.test", cert, NULL), MOAT_EINVAL);
	assert_int_equal(EVP_PKEY_up_ref(key), 1);
	assert_int_equal(acme_chal_alpn_put("a.test", NULL, key), MOAT_EINVAL);
	/* a key that is not the certificate's */
	up_refs(cert, okey);
	assert_int_equal(acme_chal_alpn_put("a.test", cert, okey), MOAT_ETLS);
	assert_null(acme_chal_alpn_ctx("a.test"));
	assert_null(acme_chal_alpn_ctx("*.a.test"));
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	X509_free(other);
	EVP_PKEY_free(okey);
}

static void alpn_store_is_bounded(void **state)
{
	X509 *cert;
	EVP_PKEY *key;
	SSL_CTX *ctx;
	char host[32];
	int i;

	make_cert("a.test", &cert, &key);
	for (i = 0; i < ACME_CHAL_MAX; i++) {
		snprintf(host, sizeof(host), "h%d.test", i);
		up_refs(cert, key);
		assert_int_equal(acme_chal_alpn_put(host, cert, key), 0);
	}
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("one-more.test", cert, key), MOAT_ENOMEM);
	assert_null(acme_chal_alpn_ctx("one-more.test"));
	/* replacing needs no room */
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("h3.test", cert, key), 0);
	for (i = 0; i < ACME_CHAL_MAX; i++) {
		snprintf(host, sizeof(host), "h%d.test", i);
		ctx = acme_chal_alpn_ctx(host);
		if (ctx == NULL)
			fail_msg("%s: no context after filling the table", host);
		SSL_CTX_free(ctx);
	}
	acme_chal_alpn_del("h0.test");
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("one-more.test", cert, key), 0);
	up_refs(cert, key);
	assert_int_equal(acme_chal_alpn_put("two-more.test", cert, key), MOAT_ENOMEM);
	ctx = acme_chal_alpn_ctx("h255.test"); /* moved into h0's slot */
	assert_non_null(ctx);
	SSL_CTX_free(ctx);
	/* the two kinds have separate bounds */
	assert_int_equal(acme_chal_http_put("a.test", "t", "t.k"), 0);
	acme_chal_clear();
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* The ACME thread publishing and withdrawing while workers look up: under
 * ASan a context freed under a holder, or a torn entry, shows. */
struct race {
	X509 *cert;
	EVP_PKEY *key;
	int rounds;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	char token[16];
	int i;

	for (i = 0; i < r->rounds; i++) {
		snprintf(token, sizeof(token), "t%d", i % 7);
		assert_int_equal(acme_chal_http_put("a.test", token, "t.k"), 0);
		up_refs(r->cert, r->key);
		assert_int_equal(acme_chal_alpn_put(i % 2 ? "a.test" : "b.test", r->cert, r->key), 0);
		if (i % 3 == 0) {
			acme_chal_alpn_del("a.test");
			acme_chal_http_del("a.test", token);
		}
	}
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	char out[ACME_CHAL_KEYAUTH_MAX + 1];
	SSL_CTX *ctx;
	SSL *ssl;
	int i;

	for (i = 0; i < r->rounds * 4; i++) {
		ctx = acme_chal_alpn_ctx(i % 2 ? "a.test" : "b.test");
		if (ctx != NULL) {
			/* use it as a handshake would, after the store let go */
			ssl = SSL_new(ctx);
			assert_non_null(ssl);
			assert_non_null(SSL_get_certificate(ssl));
			SSL_free(ssl);
			SSL_CTX_free(ctx);
		}
		if (acme_chal_http_get("a.test", "t3", out, sizeof(out)))
			assert_string_equal(out, "t.k");
	}
	return NULL;
}

static void concurrent_use(void **state)
{
	struct race r = { .rounds = 400 };
	pthread_t w, rd[3];
	int i;

	make_cert("a.test", &r.cert, &r.key);
	assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&rd[i], NULL, race_reader, &r), 0);
	assert_int_equal(pthread_join(w, NULL), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_join(rd[i], NULL), 0);
	acme_chal_clear();
	X509_free(r.cert);
	EVP_PKEY_free(r.key);
}

/* ---- TLS-ALPN-01 through tls.c ---------------------------------------- */

struct fixture {
	char *dir;
	struct conf *conf;
	struct tls_sites *tls;
	X509 *chal_cert;   /* the challenge certificate for a.test */
	EVP_PKEY *chal_key;
};

static struct fixture fx;

static int tls_setup(void **state)
{
	char *data, *ca, *yaml, *errs = NULL;

	fx.dir = xstrdup("/tmp/moat-test-acme-chal-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	data = xasprintf("%s/data", fx.dir);
	if (mkdir(data, 0700) != 0)
		return -1;
	/* clients: required needs a client CA: the internal one will do */
	if (pki_ensure_ca(data) != 0)
		return -1;
	ca = xasprintf("%s/internal-ca.pem", data);
	yaml = xasprintf("data: %s\n"
			 "sites:\n"
			 "  a.test:\n"
			 "    to: http://127.0.0.1:9000\n"
			 "    tls: internal\n"
			 "    default: true\n"
			 "  b.test:\n"
			 "    to: http://127.0.0.1:9000\n"
			 "    tls: internal\n"
			 "  req.test:\n"
			 "    to: http://127.0.0.1:9000\n"
			 "    tls: internal\n"
			 "    clients: required\n"
			 "    client_ca: %s\n"
			 "  \"*.wild.test\":\n"
			 "    to: http://127.0.0.1:9000\n"
			 "    tls: internal\n",
			 data, ca);
	fx.conf = conf_parse("moat.yaml", fx.dir, yaml, strlen(yaml), &errs);
	if (fx.conf == NULL) {
		fprintf(stderr, "config failed to load:\n%s\n--- errors:\n%s", yaml, errs);
		free(errs);
		return -1;
	}
	free(yaml);
	free(ca);
	free(data);
	fx.tls = tls_sites_new(fx.conf);
	if (fx.tls == NULL)
		return -1;
	make_cert("a.test", &fx.chal_cert, &fx.chal_key);
	return 0;
}

static int tls_teardown(void **state)
{
	acme_chal_clear();
	tls_sites_free(fx.tls);
	conf_free(fx.conf);
	X509_free(fx.chal_cert);
	EVP_PKEY_free(fx.chal_key);
	if (fx.dir != NULL)
		testfs_rm_tree(fx.dir);
	free(fx.dir);
	memset(&fx, 0, sizeof(fx));
	return 0;
}

/* Publish fx's challenge certificate for host. */
static void publish(const char *host)
{
	up_refs(fx.chal_cert, fx.chal_key);
	assert_int_equal(acme_chal_alpn_put(host, fx.chal_cert, fx.chal_key), 0);
}

/* What a client made of one handshake. */
struct hs {
	bool ok;              /* both ends finished */
	int alert;            /* alert the client received, -1: none */
	X509 *peer;           /* server certificate the client saw (freed by hs_done) */
	char alpn[32];        /* protocol the client was told, "" for none */
	char server_alpn[32]; /* ... and that the server selected */
	const struct conf_site *site; /* tls_site_of on the server */
	int cert_requests;    /* times the server asked for a client certificate */
	bool reused;          /* resumed a session */
	int version;          /* negotiated protocol version */
	SSL_SESSION *sess;    /* the client's session afterwards (freed by hs_done) */
};

/* Options for one handshake; zero values are OpenSSL's client defaults. */
struct hs_opts {
	const char *sni;
	const unsigned char *alpn; /* wire format, NULL: no ALPN extension */
	size_t alpn_len;
	int max_version;
	const char *groups;     /* e.g. "P-521:P-256" to draw a HelloRetryRequest */
	SSL_SESSION *resume;
};

static int client_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	struct hs *h = SSL_get_app_data(ssl);

	h->cert_requests++;
	return 0; /* none */
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	struct hs *h = SSL_get_app_data(ssl);

	if ((where & SSL_CB_READ_ALERT) != 0)
		h->alert = ret & 0xff;
}

static bool wants_io(SSL *ssl, int rc)
{
	int err = SSL_get_error(ssl, rc);

	return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

static void copy_alpn(const SSL *ssl, char *out, size_t cap)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	snprintf(out, cap, "%.*s", (int)n, p != NULL ? (const char *)p : "");
}

static void run_handshake(const struct hs_opts *o, struct hs *h)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *cl, *sv;
	BIO *cb, *sb;
	int i, rc = 0, rs = 0;
	char buf[64];

	memset(h, 0, sizeof(*h));
	h->alert = -1;
	assert_non_null(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_client_cert_cb(cctx, client_cert_cb);
	SSL_CTX_set_info_callback(cctx, info_cb);
	if (o->max_version != 0)
		assert_int_equal(SSL_CTX_set_max_proto_version(cctx, o->max_version), 1);
	if (o->groups != NULL)
		assert_int_equal(SSL_CTX_set1_groups_list(cctx, o->groups), 1);
	cl = SSL_new(cctx);
	sv = tls_sites_new_ssl(fx.tls);
	assert_non_null(cl);
	assert_non_null(sv);
	SSL_set_app_data(cl, h);
	if (o->sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(cl, o->sni), 1);
	if (o->alpn != NULL)
		assert_int_equal(SSL_set_alpn_protos(cl, o->alpn, (unsigned)o->alpn_len), 0);
	if (o->resume != NULL)
		assert_int_equal(SSL_set_session(cl, o->resume), 1);
	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(cl, cb, cb);
	SSL_set_bio(sv, sb, sb);
	SSL_set_connect_state(cl);

	for (i = 0; i < 50; i++) {
		ERR_clear_error();
		rc = SSL_do_handshake(cl);
		if (rc != 1 && !wants_io(cl, rc))
			break;
		ERR_clear_error();
		rs = SSL_do_handshake(sv);
		if (rs != 1 && !wants_io(sv, rs)) {
			ERR_clear_error();
			SSL_do_handshake(cl); /* reads the server's alert */
			break;
		}
		if (rc == 1 && rs == 1)
			break;
	}
	h->ok = rc == 1 && rs == 1;
	if (h->ok) {
		/* the client reads what followed the handshake (tickets) */
		ERR_clear_error();
		assert_true(SSL_read(cl, buf, sizeof(buf)) <= 0);
		h->peer = SSL_get1_peer_certificate(cl);
		copy_alpn(cl, h->alpn, sizeof(h->alpn));
		copy_alpn(sv, h->server_alpn, sizeof(h->server_alpn));
		h->site = tls_site_of(sv);
		h->reused = SSL_session_reused(cl) == 1;
		h->version = SSL_version(cl);
		h->sess = SSL_get1_session(cl);
		/* a client freed without close_notify marks its session
		 * unresumable */
		SSL_shutdown(cl);
	}
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
}

static void hs_done(struct hs *h)
{
	X509_free(h->peer);
	SSL_SESSION_free(h->sess);
	h->peer = NULL;
	h->sess = NULL;
}

static const unsigned char ALPN_ACME[] = "\x0a" "acme-tls/1";
static const unsigned char ALPN_WEB[] = "\x02" "h2" "\x08" "http/1.1";
static const unsigned char ALPN_BOTH[] = "\x08" "http/1.1" "\x0a" "acme-tls/1";

static const struct conf_site *site_named(const char *host)
{
	size_t i;

	for (i = 0; i < fx.conf->nsites; i++)
		if (strcmp(fx.conf->sites[i].host, host) == 0)
			return &fx.conf->sites[i];
	fail_msg("no site %s", host);
	return NULL;
}

static void expect_site_cert(const struct hs *h, const char *host)
{
	if (!h->ok)
		fail_msg("handshake for %s failed (alert %d)", host, h->alert);
	assert_non_null(h->peer);
	assert_int_not_equal(X509_cmp(h->peer, fx.chal_cert), 0);
	if (X509_check_host(h->peer, host, 0, 0, NULL) != 1)
		fail_msg("the certificate does not name %s", host);
	assert_string_equal(h->alpn, "http/1.1");
	assert_string_equal(h->server_alpn, "http/1.1");
}

static void expect_challenge(const struct hs *h, const char *host)
{
	if (!h->ok)
		fail_msg("challenge handshake for %s failed (alert %d)", host, h->alert);
	assert_non_null(h->peer);
	assert_int_equal(X509_cmp(h->peer, fx.chal_cert), 0);
	assert_string_equal(h->alpn, "acme-tls/1");
	assert_string_equal(h->server_alpn, "acme-tls/1");
	assert_int_equal(h->cert_requests, 0);
	assert_false(h->reused);
}

static void expect_refused(const struct hs *h, const char *what)
{
	if (h->ok)
		fail_msg("%s: the handshake succeeded (ALPN \"%s\")", what, h->alpn);
	if (h->alert != SSL_AD_NO_APPLICATION_PROTOCOL)
		fail_msg("%s: alert %d, want no_application_protocol (%d)", what, h->alert,
			 SSL_AD_NO_APPLICATION_PROTOCOL);
}

static void tls_alpn_challenge(void **state)
{
	struct hs_opts o = { .sni = "a.test", .alpn = ALPN_ACME, .alpn_len = sizeof(ALPN_ACME) - 1 };
	struct hs_opts web = { .sni = "a.test", .alpn = ALPN_WEB, .alpn_len = sizeof(ALPN_WEB) - 1 };
	struct hs h;

	/* nothing pending: refused, never the site's certificate */
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 with no challenge pending");
	hs_done(&h);

	publish("a.test");
	run_handshake(&o, &h);
	expect_challenge(&h, "a.test");
	assert_int_equal(h.version, TLS1_3_VERSION);
	assert_ptr_equal(h.site, site_named("a.test"));
	hs_done(&h);

	/* the site's own handshakes are not touched by a pending challenge */
	run_handshake(&web, &h);
	expect_site_cert(&h, "a.test");
	assert_ptr_equal(h.site, site_named("a.test"));
	hs_done(&h);
	web.alpn = NULL;
	run_handshake(&web, &h);
	assert_true(h.ok);
	assert_int_not_equal(X509_cmp(h.peer, fx.chal_cert), 0);
	assert_string_equal(h.alpn, "");
	hs_done(&h);

	/* names are matched canonically, like a site's */
	o.sni = "A.Test";
	run_handshake(&o, &h);
	expect_challenge(&h, "a.test");
	hs_done(&h);
	o.sni = "a.test";

	/* TLS 1.2 too (RFC 8737 4: 1.2 or higher) */
	o.max_version = TLS1_2_VERSION;
	run_handshake(&o, &h);
	expect_challenge(&h, "a.test");
	assert_int_equal(h.version, TLS1_2_VERSION);
	hs_done(&h);
	o.max_version = 0;

	/* offered beside http/1.1: the challenge still wins */
	o.alpn = ALPN_BOTH;
	o.alpn_len = sizeof(ALPN_BOTH) - 1;
	run_handshake(&o, &h);
	expect_challenge(&h, "a.test");
	hs_done(&h);

	/* a second ClientHello (HelloRetryRequest) reaches the challenge
	 * context's own hello callback */
	o.alpn = ALPN_ACME;
	o.alpn_len = sizeof(ALPN_ACME) - 1;
	o.groups = "P-521:P-256";
	run_handshake(&o, &h);
	expect_challenge(&h, "a.test");
	hs_done(&h);
	web.alpn = ALPN_WEB;
	web.groups = "P-521:P-256";
	run_handshake(&web, &h);
	expect_site_cert(&h, "a.test");
	hs_done(&h);
	o.groups = NULL;

	/* withdrawn: refused again */
	acme_chal_alpn_del("a.test");
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 after the challenge was withdrawn");
	hs_done(&h);
	o.alpn = ALPN_BOTH;
	o.alpn_len = sizeof(ALPN_BOTH) - 1;
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 and http/1.1 with no challenge pending");
	hs_done(&h);
	acme_chal_clear();
}

static void tls_alpn_only_for_its_name(void **state)
{
	struct hs_opts o = { .sni = "b.test", .alpn = ALPN_ACME, .alpn_len = sizeof(ALPN_ACME) - 1 };
	struct hs h;

	publish("a.test");
	/* another site's name */
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 for b.test with a challenge for a.test");
	hs_done(&h);
	/* no SNI: the default site (a.test) is never assumed */
	o.sni = NULL;
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 without SNI");
	hs_done(&h);
	/* a name only a wildcard site answers is never validated this way,
	 * even with a certificate published for it */
	publish("x.wild.test");
	o.sni = "x.wild.test";
	run_handshake(&o, &h);
	expect_refused(&h, "acme-tls/1 for a name of a \"*.\" site");
	hs_done(&h);
	/* an unknown name falls to the default site, which is no wildcard: a
	 * challenge published for it is answered */
	publish("other.test");
	o.sni = "other.test";
	run_handshake(&o, &h);
	expect_challenge(&h, "other.test");
	hs_done(&h);
	acme_chal_clear();
}

/* clients: required asks every handshake for a certificate, but never a
 * CA's validator. */
static void tls_alpn_no_client_cert_request(void **state)
{
	struct hs_opts o = { .sni = "req.test", .alpn = ALPN_ACME,
			     .alpn_len = sizeof(ALPN_ACME) - 1 };
	struct hs_opts web = { .sni = "req.test", .alpn = ALPN_WEB,
			       .alpn_len = sizeof(ALPN_WEB) - 1 };
	struct hs h;

	run_handshake(&web, &h);
	expect_site_cert(&h, "req.test");
	assert_int_equal(h.cert_requests, 1);
	hs_done(&h);
	publish("req.test");
	run_handshake(&o, &h);
	expect_challenge(&h, "req.test");
	assert_ptr_equal(h.site, site_named("req.test"));
	hs_done(&h);
	/* after a HelloRetryRequest the SSL has been on no site's context,
	 * and in TLS 1.2 */
	o.groups = "P-521:P-256";
	run_handshake(&o, &h);
	expect_challenge(&h, "req.test");
	hs_done(&h);
	o.groups = NULL;
	o.max_version = TLS1_2_VERSION;
	run_handshake(&o, &h);
	expect_challenge(&h, "req.test");
	hs_done(&h);
	acme_chal_clear();
}

/* A ticket from a site's handshake is never resumed by a challenge
 * handshake (which would show no certificate), and a challenge handshake
 * hands out no ticket. */
static void tls_alpn_no_resumption(void **state)
{
	struct hs_opts web = { .sni = "a.test", .alpn = ALPN_WEB, .alpn_len = sizeof(ALPN_WEB) - 1 };
	struct hs_opts o = { .sni = "a.test", .alpn = ALPN_ACME, .alpn_len = sizeof(ALPN_ACME) - 1 };
	SSL_SESSION *site_sess;
	struct hs h;
	int v;

	for (v = 0; v < 2; v++) {
		web.max_version = o.max_version = v == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
		web.resume = o.resume = NULL;
		run_handshake(&web, &h);
		expect_site_cert(&h, "a.test");
		assert_non_null(h.sess);
		assert_int_equal(SSL_SESSION_is_resumable(h.sess), 1);
		site_sess = h.sess;
		h.sess = NULL;
		hs_done(&h);
		/* the ticket works for the site ... */
		web.resume = site_sess;
		run_handshake(&web, &h);
		assert_true(h.ok);
		assert_true(h.reused);
		hs_done(&h);
		/* ... but not for a challenge */
		publish("a.test");
		o.resume = site_sess;
		run_handshake(&o, &h);
		expect_challenge(&h, "a.test");
		assert_non_null(h.sess);
		assert_int_equal(SSL_SESSION_is_resumable(h.sess), 0);
		hs_done(&h);
		/* ... nor does it let a challenge-less acme-tls/1 through */
		acme_chal_alpn_del("a.test");
		run_handshake(&o, &h);
		expect_refused(&h, "acme-tls/1 resuming a site's session");
		hs_done(&h);
		SSL_SESSION_free(site_sess);
	}
	acme_chal_clear();
}

int main(void)
{
	const struct CMUnitTest store[] = {
		cmocka_unit_test_teardown(http_put_get_replace_del, clear_store),
		cmocka_unit_test_teardown(http_put_rejects_malformed, clear_store),
		cmocka_unit_test_teardown(http_store_is_bounded, clear_store),
		cmocka_unit_test(http_token_of_path),
		cmocka_unit_test(alpn_list_parser),
		cmocka_unit_test_teardown(alpn_put_ctx_del, clear_store),
		cmocka_unit_test_teardown(alpn_put_failures_free, clear_store),
		cmocka_unit_test_teardown(alpn_store_is_bounded, clear_store),
		cmocka_unit_test_teardown(concurrent_use, clear_store),
	};
	const struct CMUnitTest tls[] = {
		cmocka_unit_test_teardown(tls_alpn_challenge, clear_store),
		cmocka_unit_test_teardown(tls_alpn_only_for_its_name, clear_store),
		cmocka_unit_test_teardown(tls_alpn_no_client_cert_request, clear_store),
		cmocka_unit_test_teardown(tls_alpn_no_resumption, clear_store),
	};
	int rc;

	rc = cmocka_run_group_tests_name("store", store, NULL, NULL);
	rc += cmocka_run_group_tests_name("tls", tls, tls_setup, tls_teardown);
	return rc;
}
