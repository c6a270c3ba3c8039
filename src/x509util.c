/*
 * x509util.c - see x509util.h.
 */
#include "x509util.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

void x509_error(const char *fn, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_error("%s: %s (OpenSSL: %s)", fn, what,
		  reason != NULL ? reason : "no reason given");
	ERR_clear_error();
}

void x509_format_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int x509_asn1_to_time(const ASN1_TIME *at, time_t *out)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(at, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

time_t x509_epoch(const ASN1_TIME *at)
{
	time_t t = 0;

	if (at == NULL || x509_asn1_to_time(at, &t) < 0)
		return 0;
	return t;
}

int x509_file_exists(const char *path, bool *exists)
{
	struct stat st;

	*exists = false;
	if (stat(path, &st) == 0) {
		*exists = true;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	log_error("%s: %s: %s", __func__, path, strerror(errno));
	return MOAT_EIO;
}

/* Encrypted keys are not ours; fail instead of prompting on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/*
 * Parse errors stay on the OpenSSL error queue for the caller, who decides
 * whether they are fatal (a CA) or a reason to reissue (a leaf). The file
 * buffer is wiped either way: it may have held a key.
 */
static int load_pem(const char *path, bool is_key, void **out)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = fs_read_file(path, X509_PEM_MAX, &pem, &len);
	if (rc < 0)
		goto out;
	rc = MOAT_ETLS;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		goto out;
	if (is_key)
		*out = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	else
		*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (*out == NULL)
		goto out;
	rc = 0;
out:
	BIO_free(bio);
	if (pem != NULL) {
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	return rc;
}

int x509_load_key(const char *path, EVP_PKEY **out)
{
	void *p;
	int rc = load_pem(path, true, &p);

	*out = p;
	return rc;
}

int x509_load_cert(const char *path, X509 **out)
{
	void *p;
	int rc = load_pem(path, false, &p);

	*out = p;
	return rc;
}

/*
 * A memory BIO grows with BUF_MEM_grow_clean, so the only copy of a key's
 * PEM left to wipe is the final buffer.
 */
static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, X509 *issuer)
{
	BIO *bio;
	char *data = NULL;
	long n;
	int rc = MOAT_ETLS, ok;

	bio = BIO_new(BIO_s_mem());
	if (bio == NULL) {
		x509_error(__func__, "%s: BIO_new", path);
		return MOAT_ETLS;
	}
	if (key != NULL)
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1;
	else
		ok = PEM_write_bio_X509(bio, cert) == 1 &&
		     (issuer == NULL || PEM_write_bio_X509(bio, issuer) == 1);
	if (!ok) {
		x509_error(__func__, "%s: encoding the %s", path,
			   key != NULL ? "private key" : "certificate");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	rc = fs_write_atomic(path, data, (size_t)n, key != NULL ? 0600 : 0644);
out:
	n = BIO_get_mem_data(bio, &data);
	if (key != NULL && n > 0)
		OPENSSL_cleanse(data, (size_t)n);
	BIO_free(bio);
	return rc;
}

int x509_write_key(const char *path, EVP_PKEY *key)
{
	return write_pem(path, key, NULL, NULL);
}

int x509_write_certs(const char *path, X509 *cert, X509 *issuer)
{
	return write_pem(path, NULL, cert, issuer);
}

EVP_PKEY *x509_new_key(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (key == NULL)
		x509_error(__func__, "generating an ECDSA P-256 key");
	return key;
}

int x509_set_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	int rc = MOAT_ETLS;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		x509_error(__func__, "RAND_bytes");
		goto out;
	}
	b[0] &= 0x7f;
	b[sizeof(b) - 1] |= 0x01;
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
		x509_error(__func__, "setting the serial number");
		goto out;
	}
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

int x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc = MOAT_ETLS;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
		x509_error(__func__, "adding %s = %s", OBJ_nid2sn(nid), value);
		goto out;
	}
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	return rc;
}

X509 *x509_new_cert(EVP_PKEY *key, time_t not_before, time_t not_after)
{
	X509 *x = X509_new();

	if (x == NULL)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &not_before) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &not_after) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (x509_set_serial(x) < 0)
		goto out_free;
	return x;
fail:
	x509_error(__func__, "building a certificate");
out_free:
	X509_free(x);
	return NULL;
}

X509 *x509_new_ca(EVP_PKEY *key, const char *cn, int days)
{
	X509_NAME *name;
	X509 *x;
	time_t now = time(NULL);

	x = x509_new_cert(key, now - X509_CLOCK_SKEW, now + (time_t)days * X509_DAY);
	if (x == NULL)
		return NULL;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
				       (const unsigned char *)"moat", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1) {
		x509_error(__func__, "setting the CA name \"%s\"", cn);
		goto fail;
	}
	if (x509_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    x509_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    x509_add_ext(x, x, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		x509_error(__func__, "self-signing the CA certificate");
		goto fail;
	}
	return x;
fail:
	X509_free(x);
	return NULL;
}

X509 *x509_new_client(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key, int days)
{
	time_t now = time(NULL);
	X509 *x = x509_new_cert(key, now - X509_CLOCK_SKEW, now + (time_t)days * X509_DAY);

	if (x == NULL)
		return NULL;
	if (X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
				       MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1) {
		x509_error(__func__, "setting the names of \"%s\"", cn);
		goto fail;
	}
	if (x509_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    x509_add_ext(x, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    x509_add_ext(x, ca, NID_ext_key_usage, "clientAuth") < 0 ||
	    x509_add_ext(x, ca, NID_subject_key_identifier, "hash") < 0 ||
	    x509_add_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0)
		goto fail;
	if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
		x509_error(__func__, "signing the certificate for \"%s\"", cn);
		goto fail;
	}
	return x;
fail:
	X509_free(x);
	return NULL;
}

char *x509_serial_hex(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	char *out = NULL;

	if (hex == NULL) {
		x509_error(__func__, "formatting a serial number");
		goto out;
	}
	/* BN_bn2hex prints whole bytes in uppercase except for zero ("0"). */
	out = strcmp(hex, "0") == 0 ? xstrdup("00") : xstrdup(hex);
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return out;
}

int x509_sha256_hex(X509 *x, char out[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0, i;

	out[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &len) != 1 || len != sizeof(md)) {
		x509_error(__func__, "hashing a certificate");
		return MOAT_ETLS;
	}
	for (i = 0; i < len; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 0x0f];
	}
	out[2 * len] = '\0';
	return 0;
}
