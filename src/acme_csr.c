/*
 * acme_csr.c - see acme_csr.h.
 */
#include "acme_csr.h"
#include "jws.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31" /* id-pe-acmeIdentifier, RFC 8737 */
#define ALPN_CN "moat tls-alpn-01"
#define ALPN_BACKDATE 3600
#define ALPN_LIFETIME (7 * X509_DAY)

EVP_PKEY *acme_key_new(void)
{
	return x509_new_key();
}

int acme_key_save(const char *path, EVP_PKEY *key)
{
	/* PKCS#8 PEM through fs_write_atomic at 0600, encoded copy wiped. */
	return x509_write_key(path, key);
}

/* Newest OpenSSL reason, then an empty error queue. */
static const char *tls_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : "no reason given";
}

/* The key's kind for a message: "RSA", "EC secp384r1", ... */
static char *key_kind(EVP_PKEY *key)
{
	const char *type = EVP_PKEY_get0_type_name(key);
	char group[64];

	if (type == NULL)
		type = "unknown";
	if (EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) == 1)
		return xasprintf("%s %s", type, group);
	return xstrdup(type);
}

EVP_PKEY *acme_key_load(const char *path, char **why)
{
	EVP_PKEY *key = NULL;
	struct stat st;
	char *kind;
	int rc;

	*why = NULL;
	/* stat first so the message carries the exact reason; fs_read_file
	 * would only log it. */
	if (stat(path, &st) < 0) {
		*why = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = xasprintf("%s: not a regular file", path);
		return NULL;
	}
	rc = x509_load_key(path, &key);
	if (rc == MOAT_ETOOBIG) {
		*why = xasprintf("%s: larger than %d bytes, not a key file", path,
				 X509_PEM_MAX);
		return NULL;
	}
	if (rc == MOAT_ETLS) {
		*why = xasprintf("%s: no unencrypted PEM private key (OpenSSL: %s)", path,
				 tls_reason());
		return NULL;
	}
	if (rc < 0) {
		*why = xasprintf("%s: cannot be read (%s)", path, moat_strerror(rc));
		return NULL;
	}
	if (!jws_key_is_p256(key)) {
		kind = key_kind(key);
		*why = xasprintf("%s: a %s key; ACME keys must be ECDSA P-256", path, kind);
		free(kind);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* A dNSName goes into an IA5String; refuse what cannot be one, and control
 * characters that would garble a log line. Logged. */
static int check_name(const char *fn, const char *name)
{
	size_t len, i;

	if (name == NULL) {
		log_error("%s: missing name", fn);
		return MOAT_EINVAL;
	}
	len = strlen(name);
	if (len == 0 || len > ACME_DNS_NAME_MAX) {
		log_error("%s: a name of %zu bytes (want 1..%d)", fn, len, ACME_DNS_NAME_MAX);
		return MOAT_EINVAL;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f) {
			log_error("%s: byte %zu of a name is not printable ASCII", fn, i);
			return MOAT_EINVAL;
		}
	}
	return 0;
}

/* GeneralNames with one dNSName per name, or NULL. Caller frees. */
static GENERAL_NAMES *dns_names(const char *const *names, size_t n)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	ASN1_IA5STRING *ia5;
	GENERAL_NAME *gn;
	size_t i;

	if (gens == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		gn = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		if (gn == NULL || ia5 == NULL || ASN1_STRING_set(ia5, names[i], -1) != 1) {
			ASN1_IA5STRING_free(ia5);
			GENERAL_NAME_free(gn);
			goto fail;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
		if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
			GENERAL_NAME_free(gn);
			goto fail;
		}
	}
	return gens;
fail:
	GENERAL_NAMES_free(gens);
	return NULL;
}

static int sha256(const char *s, unsigned char md[32])
{
	unsigned int len = 0;

	if (EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
		x509_error(__func__, "SHA-256");
		return MOAT_ETLS;
	}
	return 0;
}

char *acme_csr_b64url(EVP_PKEY *key, const char *const *names, size_t n)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *gens = NULL;
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	char *out = NULL;
	bool cn;
	size_t i;
	int len;

	if (n == 0) {
		log_error("%s: no names", __func__);
		return NULL;
	}
	for (i = 0; i < n; i++)
		if (check_name(__func__, names[i]) < 0)
			return NULL;
	cn = strlen(names[0]) <= X509_CN_MAX;
	req = X509_REQ_new();
	gens = dns_names(names, n);
	exts = sk_X509_EXTENSION_new_null();
	if (req == NULL || gens == NULL || exts == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1)
		goto fail;
	if (cn && X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
					     MBSTRING_UTF8, (const unsigned char *)names[0],
					     -1, -1, 0) != 1)
		goto fail;
	/* With an empty subject the names live only in subjectAltName, which
	 * RFC 5280 4.2.1.6 then requires to be critical. */
	ext = X509V3_EXT_i2d(NID_subject_alt_name, !cn, gens);
	if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto fail;
	ext = NULL; /* the stack owns it */
	if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto fail;
	len = i2d_X509_REQ(req, &der);
	if (len <= 0)
		goto fail;
	out = jws_b64url(der, (size_t)len);
	goto out;
fail:
	x509_error(__func__, "building the CSR for %s (%zu names)", names[0], n);
out:
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(req);
	return out;
}

int acme_alpn_cert(const char *name, const char *key_authorization, X509 **cert,
		   EVP_PKEY **key)
{
	unsigned char value_der[2 + 32];
	ASN1_OCTET_STRING *value = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *gens = NULL;
	ASN1_OBJECT *oid = NULL;
	time_t now = time(NULL);
	EVP_PKEY *k = NULL;
	X509_NAME *subj;
	X509 *x = NULL;
	int rc;

	*cert = NULL;
	*key = NULL;
	rc = check_name(__func__, name);
	if (rc < 0)
		return rc;
	if (key_authorization == NULL || key_authorization[0] == '\0') {
		log_error("%s: empty key authorization", __func__);
		return MOAT_EINVAL;
	}
	rc = MOAT_ETLS;
	/* RFC 8737 section 3: extnValue is the DER of an OCTET STRING holding
	 * the 32-byte digest, i.e. tag 0x04, length 0x20, then the digest. */
	value_der[0] = V_ASN1_OCTET_STRING;
	value_der[1] = 32;
	if (sha256(key_authorization, value_der + 2) < 0)
		goto out;
	k = x509_new_key();
	if (k == NULL)
		goto out;
	x = x509_new_cert(k, now - ALPN_BACKDATE, now + ALPN_LIFETIME);
	if (x == NULL)
		goto out;
	subj = X509_get_subject_name(x);
	gens = dns_names(&name, 1);
	oid = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	value = ASN1_OCTET_STRING_new();
	/* The subject CN is deliberately not the name: the challenge wants
	 * the dNSName as the certificate's only identifier. */
	if (X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)ALPN_CN, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, subj) != 1 || gens == NULL ||
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
	    oid == NULL || value == NULL ||
	    ASN1_OCTET_STRING_set(value, value_der, sizeof(value_der)) != 1)
		goto fail;
	ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		goto fail;
	*cert = x;
	*key = k;
	x = NULL;
	k = NULL;
	rc = 0;
	goto out;
fail:
	x509_error(__func__, "building the TLS-ALPN-01 certificate for %s", name);
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(value);
	ASN1_OBJECT_free(oid);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

char *acme_dns01_value(const char *key_authorization)
{
	unsigned char md[32];

	if (key_authorization == NULL || key_authorization[0] == '\0') {
		log_error("%s: empty key authorization", __func__);
		return NULL;
	}
	if (sha256(key_authorization, md) < 0)
		return NULL;
	return jws_b64url(md, sizeof(md));
}

char *acme_ari_cert_id(X509 *leaf)
{
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(leaf);
	unsigned char *der = NULL;
	const unsigned char *p;
	char *aki_s = NULL, *serial_s = NULL, *id = NULL;
	int len, tag, xclass, ret;
	long clen = 0;

	if (akid == NULL || ASN1_STRING_length(akid) <= 0) {
		ERR_clear_error(); /* X509_check_purpose may have left a reason */
		return NULL;
	}
	/* RFC 9773 wants the INTEGER's content octets as encoded, sign byte
	 * included; re-encoding and skipping the header gives exactly that
	 * (also for the negative serials some old CAs issued). */
	len = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf), &der);
	if (len <= 0)
		goto fail;
	p = der;
	ret = ASN1_get_object(&p, &clen, &tag, &xclass, len);
	if ((ret & 0x80) != 0 || tag != V_ASN1_INTEGER || clen <= 0 ||
	    p + clen != der + len)
		goto fail;
	aki_s = jws_b64url(ASN1_STRING_get0_data(akid), (size_t)ASN1_STRING_length(akid));
	serial_s = jws_b64url(p, (size_t)clen);
	id = xasprintf("%s.%s", aki_s, serial_s);
	goto out;
fail:
	x509_error(__func__, "encoding the serial number");
out:
	free(serial_s);
	free(aki_s);
	OPENSSL_free(der);
	return id;
}

int acme_cert_times(X509 *x, long long *not_before, long long *not_after)
{
	time_t nb, na;

	*not_before = 0;
	*not_after = 0;
	if (x509_asn1_to_time(X509_get0_notBefore(x), &nb) < 0 ||
	    x509_asn1_to_time(X509_get0_notAfter(x), &na) < 0)
		return MOAT_EINVAL;
	*not_before = (long long)nb;
	*not_after = (long long)na;
	return 0;
}

int acme_chain_check(const char *pem, size_t len, EVP_PKEY *key, char **why)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	EVP_PKEY *leaf_key;
	X509 *leaf = NULL, *x;
	unsigned long e;
	BIO *bio = NULL;
	long dlen = 0;
	int count = 0, rc = MOAT_EPROTO;

	*why = NULL;
	if (len == 0 || len > INT_MAX) {
		*why = xasprintf("a certificate chain of %zu bytes", len);
		return MOAT_EPROTO;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		*why = xasprintf("BIO_new_mem_buf failed (OpenSSL: %s)", tls_reason());
		return MOAT_EPROTO;
	}
	ERR_clear_error(); /* the end of input is told apart by its reason */
	for (;;) {
		if (PEM_read_bio(bio, &name, &header, &data, &dlen) != 1) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				if (count > 0)
					break;
				*why = xstrdup("no certificate in the chain");
			} else {
				*why = xasprintf("PEM block %d does not parse (OpenSSL: %s)",
						 count + 1, tls_reason());
			}
			goto out;
		}
		count++;
		if (strcmp(name, PEM_STRING_X509) != 0) {
			*why = xasprintf("PEM block %d is not a CERTIFICATE", count);
			goto out;
		}
		if (header[0] != '\0') {
			*why = xasprintf("PEM block %d has headers", count);
			goto out;
		}
		p = data;
		x = d2i_X509(NULL, &p, dlen);
		if (x == NULL || p != data + dlen) {
			X509_free(x);
			*why = xasprintf("certificate %d does not parse (OpenSSL: %s)", count,
					 tls_reason());
			goto out;
		}
		if (leaf == NULL)
			leaf = x;
		else
			X509_free(x);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	leaf_key = X509_get0_pubkey(leaf);
	if (leaf_key == NULL || key == NULL || EVP_PKEY_eq(leaf_key, key) != 1) {
		*why = xstrdup("the leaf certificate is not for our certificate key");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	X509_free(leaf);
	BIO_free(bio);
	return rc;
}
