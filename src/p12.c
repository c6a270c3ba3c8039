/*
 * p12.c - see p12.h.
 */
#include "p12.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

_Static_assert(sizeof(P12_ALPHABET) - 1 == 32, "5 bits per character");

int p12_write(const char *path, EVP_PKEY *key, X509 *cert, X509 *ca,
	      const char *friendly, const char *password, enum p12_kind kind)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	PKCS12 *p12 = NULL;
	unsigned char *der = NULL;
	bool modern = kind == P12_MODERN;
	int nid = modern ? NID_aes_256_cbc : NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
	int iter = modern ? P12_MODERN_ITER : P12_LEGACY_ITER;
	int len = 0, rc = MOAT_ETLS;

	/* The stack borrows ca: it is freed with sk_X509_free, not pop_free. */
	if (chain == NULL || (ca != NULL && sk_X509_push(chain, ca) <= 0))
		goto fail;
	/* mac_iter -1: no MAC yet, so it can be set with the digest we want
	 * (PKCS12_create_ex would use its default, SHA-1 in OpenSSL 3.0). */
	p12 = PKCS12_create_ex(password, friendly, key, cert, chain, nid, nid, iter, -1, 0,
			       NULL, NULL);
	if (p12 == NULL ||
	    PKCS12_set_mac(p12, password, -1, NULL, 0, iter,
			   modern ? EVP_sha256() : EVP_sha1()) != 1)
		goto fail;
	len = i2d_PKCS12(p12, &der);
	if (len <= 0)
		goto fail;
	rc = fs_write_atomic(path, der, (size_t)len, 0600);
	goto out;
fail:
	x509_error(__func__, "%s: building the PKCS#12 bundle", path);
out:
	/* Encrypted, but the bundle is as good as the key to anyone who
	 * learns the password: leave no copy behind. */
	if (der != NULL) {
		OPENSSL_cleanse(der, (size_t)len);
		OPENSSL_free(der);
	}
	PKCS12_free(p12);
	sk_X509_free(chain);
	return rc;
}

int p12_generate_password(char *buf, size_t size)
{
	unsigned char rnd[P12_GEN_GROUPS * 4];
	size_t i, o = 0;
	int rc = MOAT_ETLS;

	if (size < P12_GEN_LEN + 1) {
		log_error("%s: buffer of %zu bytes, need %d", __func__, size, P12_GEN_LEN + 1);
		return MOAT_EINVAL;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		x509_error(__func__, "RAND_bytes");
		goto out;
	}
	/* 256 is a multiple of 32: the low five bits of a byte are uniform. */
	for (i = 0; i < sizeof(rnd); i++) {
		if (i > 0 && i % 4 == 0)
			buf[o++] = '-';
		buf[o++] = P12_ALPHABET[rnd[i] & 31];
	}
	buf[o] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return rc;
}

int p12_read_password_file(const char *path, char **out)
{
	char *buf = NULL, *nl;
	size_t len = 0, n;
	int rc;

	*out = NULL;
	rc = fs_read_file(path, P12_PASSWORD_FILE_MAX, &buf, &len);
	if (rc < 0)
		goto out;
	nl = memchr(buf, '\n', len);
	n = nl != NULL ? (size_t)(nl - buf) : len;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	rc = MOAT_EINVAL;
	if (n == 0) {
		log_error("%s: %s: the first line is empty; put the password on it", __func__,
			  path);
		goto out;
	}
	if (memchr(buf, '\0', n) != NULL) {
		log_error("%s: %s: the first line contains a NUL byte", __func__, path);
		goto out;
	}
	*out = xstrndup(buf, n);
	rc = 0;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return rc;
}

void p12_password_free(char *pw)
{
	if (pw == NULL)
		return;
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
}
