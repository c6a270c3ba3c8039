/*
 * pki.c - see pki.h; lifetimes and the renewal rule are explained in
 * docs/internals/pki.md.
 *
 * The CA is precious (users install it in their trust stores), so nothing
 * here ever replaces an existing CA file. Leaf files are derived data and are
 * simply reissued whenever anything about them is off.
 */
#include "pki.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CA_DAYS 3652           /* ten years, leap days included */
#define CLOCK_SKEW (5 * 60)    /* leaf notBefore backdating, seconds */
#define PEM_MAX (64 * 1024)    /* no file of ours comes close */
#define CN_MAX 64              /* ub-common-name (RFC 5280) */
#define DAY 86400

/* The name a leaf is issued for, parsed once. */
struct leaf_name {
	char text[256];        /* DNS name, or the IP address without brackets */
	unsigned char ip[16];  /* binary address when iplen != 0 */
	int iplen;             /* 0 (DNS), 4 or 16 */
};

static void tls_error(const char *fn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Log what failed with the newest OpenSSL reason, then clear the queue so a
 * stale entry never gets attributed to a later, unrelated failure.
 */
static void tls_error(const char *fn, const char *fmt, ...)
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

static void format_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static int asn1_to_time(const ASN1_TIME *at, time_t *out)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(at, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* Sets *exists; only a definite ENOENT counts as absent. */
static int file_exists(const char *path, bool *exists)
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
 * Reads the first private key (is_key) or certificate of a PEM file.
 * Parse errors are left on the OpenSSL error queue for the caller, who
 * decides whether they are fatal (CA) or a reason to reissue (leaf).
 * The file buffer is wiped either way: it may have held a key.
 */
static int load_pem(const char *path, bool is_key, void **out)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = fs_read_file(path, PEM_MAX, &pem, &len);
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

static int load_key(const char *path, EVP_PKEY **out)
{
	void *p;
	int rc = load_pem(path, true, &p);

	*out = p;
	return rc;
}

static int load_cert(const char *path, X509 **out)
{
	void *p;
	int rc = load_pem(path, false, &p);

	*out = p;
	return rc;
}

/*
 * Encodes a key (key != NULL, file 0600) or cert then issuer when not NULL
 * (the chain a TLS server sends, file 0644) as PEM and writes it atomically.
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
		tls_error(__func__, "%s: BIO_new", path);
		return MOAT_ETLS;
	}
	if (key != NULL)
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1;
	else
		ok = PEM_write_bio_X509(bio, cert) == 1 &&
		     (issuer == NULL || PEM_write_bio_X509(bio, issuer) == 1);
	if (!ok) {
		tls_error(__func__, "%s: encoding the %s", path, key ? "private key" : "certificate");
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

static int write_key(const char *path, EVP_PKEY *key)
{
	return write_pem(path, key, NULL, NULL);
}

static int write_certs(const char *path, X509 *cert, X509 *issuer)
{
	return write_pem(path, NULL, cert, issuer);
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (key == NULL)
		tls_error(__func__, "generating an ECDSA P-256 key");
	return key;
}

/*
 * 128 random bits, top bit cleared so the DER INTEGER is positive without
 * a padding byte, lowest bit set so it can never be zero (RFC 5280 4.1.2.2).
 */
static int set_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	int rc = MOAT_ETLS;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		tls_error(__func__, "RAND_bytes");
		goto out;
	}
	b[0] &= 0x7f;
	b[sizeof(b) - 1] |= 0x01;
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
		tls_error(__func__, "setting the serial number");
		goto out;
	}
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc = MOAT_ETLS;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
		tls_error(__func__, "adding %s = %s", OBJ_nid2sn(nid), value);
		goto out;
	}
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	return rc;
}

/* Fields every certificate of ours shares; subject and issuer come later. */
static X509 *new_cert(EVP_PKEY *key, time_t not_before, time_t not_after)
{
	X509 *x = X509_new();

	if (x == NULL)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &not_before) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &not_after) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (set_serial(x) < 0)
		goto out_free;
	return x;
fail:
	tls_error(__func__, "building a certificate");
out_free:
	X509_free(x);
	return NULL;
}

static X509 *make_ca_cert(EVP_PKEY *key)
{
	char host[256], cn[CN_MAX + 1];
	X509_NAME *name;
	X509 *x;
	time_t now = time(NULL);

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown host");
	host[sizeof(host) - 1] = '\0';
	/* 19 characters of frame leave 45 for the host name within ub-common-name. */
	snprintf(cn, sizeof(cn), "moat internal CA (%.45s)", host);

	x = new_cert(key, now - CLOCK_SKEW, now + (time_t)CA_DAYS * DAY);
	if (x == NULL)
		return NULL;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
				       (const unsigned char *)"moat", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1) {
		tls_error(__func__, "setting the CA name \"%s\"", cn);
		goto fail;
	}
	if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		tls_error(__func__, "self-signing the CA certificate");
		goto fail;
	}
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Key first: a crash in between leaves a key without a cert, which
 * pki_ensure_ca reports; the reverse would publish an unusable root. */
static int create_ca(const char *cert_path, const char *key_path)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char until[64];
	int rc = MOAT_ETLS;
	time_t na;

	key = new_key();
	if (key == NULL)
		goto out;
	cert = make_ca_cert(key);
	if (cert == NULL)
		goto out;
	rc = write_key(key_path, key);
	if (rc < 0)
		goto out;
	rc = write_certs(cert_path, cert, NULL);
	if (rc < 0) {
		/* Nothing was ever signed with this key: removing it keeps a
		 * failed first start (disk full) from turning into the
		 * "only one CA file" error on every later start. */
		unlink(key_path);
		goto out;
	}
	if (asn1_to_time(X509_get0_notAfter(cert), &na) < 0)
		na = 0;
	format_time(na, until, sizeof(until));
	log_info("created internal CA %s, valid until %s", cert_path, until);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* Load the CA pair and make sure it can be used; every failure names the
 * file and says how to get out of it, since moat will not fix it alone. */
static int load_ca(const char *cert_path, const char *key_path, X509 **certp,
		   EVP_PKEY **keyp)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int rc;

	rc = load_cert(cert_path, &cert);
	if (rc == MOAT_ETLS)
		tls_error(__func__, "%s: not a PEM certificate; restore it from a backup, "
			  "or delete it and %s to create a new CA", cert_path, key_path);
	if (rc < 0)
		goto out;
	rc = load_key(key_path, &key);
	if (rc == MOAT_ETLS)
		tls_error(__func__, "%s: not an unencrypted PEM private key; restore it "
			  "from a backup, or delete it and %s to create a new CA",
			  key_path, cert_path);
	if (rc < 0)
		goto out;
	rc = MOAT_ETLS;
	if (X509_check_private_key(cert, key) != 1) {
		tls_error(__func__, "%s does not belong to %s; restore the matching pair, "
			  "or delete both to create a new CA", key_path, cert_path);
		goto out;
	}
	if (X509_check_ca(cert) < 1) {
		log_error("%s: %s is not a CA certificate", __func__, cert_path);
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(cert), NULL) <= 0) {
		log_error("%s: %s has expired; delete it and %s to create a new "
			  "CA (and trust the new one)", __func__, cert_path, key_path);
		goto out;
	}
	*certp = cert;
	*keyp = key;
	cert = NULL;
	key = NULL;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int pki_ensure_ca(const char *datadir)
{
	char *cert_path = xasprintf("%s/internal-ca.pem", datadir);
	char *key_path = xasprintf("%s/internal-ca.key", datadir);
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	bool have_cert, have_key;
	int rc;

	rc = file_exists(cert_path, &have_cert);
	if (rc < 0)
		goto out;
	rc = file_exists(key_path, &have_key);
	if (rc < 0)
		goto out;
	if (have_cert && have_key) {
		rc = load_ca(cert_path, key_path, &cert, &key);
		goto out;
	}
	if (have_cert || have_key) {
		const char *present = have_cert ? cert_path : key_path;
		const char *absent = have_cert ? key_path : cert_path;

		log_error("%s: %s exists but %s is missing; restore it from a "
			  "backup, or delete %s too to create a new CA", __func__,
			  present, absent, present);
		rc = MOAT_EIO;
		goto out;
	}
	rc = create_ca(cert_path, key_path);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	free(key_path);
	free(cert_path);
	return rc;
}

/*
 * Accept "name.example", "*.name.example", an IPv4 literal, or an IPv6
 * literal with or without brackets. The host also becomes a file name, so
 * anything that could climb out of certs/ ("/", a leading ".") is refused.
 */
static int parse_host(const char *host, struct leaf_name *ln)
{
	size_t n = strlen(host);
	size_t i;

	memset(ln, 0, sizeof(*ln));
	if (n == 0 || n >= sizeof(ln->text))
		goto bad;
	if (host[0] == '[' && host[n - 1] == ']' && n > 2) {
		memcpy(ln->text, host + 1, n - 2);
		if (inet_pton(AF_INET6, ln->text, ln->ip) != 1)
			goto bad;
		ln->iplen = 16;
		return 0;
	}
	memcpy(ln->text, host, n);
	if (inet_pton(AF_INET, host, ln->ip) == 1) {
		ln->iplen = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, ln->ip) == 1) {
		ln->iplen = 16;
		return 0;
	}
	if (n > 253)
		goto bad;
	for (i = 0; i < n; i++) {
		char c = host[i];

		if (c == '*') {
			/* Only a whole leftmost label: "*.example". */
			if (i != 0 || host[1] != '.' || n < 3)
				goto bad;
		} else if (c == '.') {
			if (i == 0 || host[i - 1] == '.' || i == n - 1)
				goto bad;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			goto bad;
		}
	}
	return 0;
bad:
	log_error("pki_ensure_leaf: \"%s\" is not a host name or IP address "
		  "a certificate can be issued for", host);
	return MOAT_EINVAL;
}

static int add_san(X509 *x, const struct leaf_name *ln, int critical)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_STRING *value = NULL;
	int rc = MOAT_ETLS;

	if (gens == NULL || gen == NULL)
		goto fail;
	if (ln->iplen != 0) {
		value = ASN1_OCTET_STRING_new();
		if (value == NULL || ASN1_OCTET_STRING_set(value, ln->ip, ln->iplen) != 1)
			goto fail;
		GENERAL_NAME_set0_value(gen, GEN_IPADD, value);
	} else {
		value = ASN1_IA5STRING_new();
		if (value == NULL || ASN1_STRING_set(value, ln->text, -1) != 1)
			goto fail;
		GENERAL_NAME_set0_value(gen, GEN_DNS, value);
	}
	value = NULL; /* owned by gen */
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		goto fail;
	gen = NULL; /* owned by gens */
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical,
			      X509V3_ADD_DEFAULT) != 1)
		goto fail;
	rc = 0;
	goto out;
fail:
	tls_error(__func__, "adding subjectAltName %s", ln->text);
out:
	ASN1_STRING_free(value);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return rc;
}

static bool san_matches(X509 *x, const struct leaf_name *ln)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t tlen = strlen(ln->text);
	bool found = false;
	int i;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s;
		int type;

		s = GENERAL_NAME_get0_value(gen, &type);
		if (ln->iplen != 0 && type == GEN_IPADD)
			found = ASN1_STRING_length(s) == ln->iplen &&
				memcmp(ASN1_STRING_get0_data(s), ln->ip, (size_t)ln->iplen) == 0;
		else if (ln->iplen == 0 && type == GEN_DNS)
			found = (size_t)ASN1_STRING_length(s) == tlen &&
				strncasecmp((const char *)ASN1_STRING_get0_data(s),
					    ln->text, tlen) == 0;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static X509 *make_leaf(const struct leaf_name *ln, EVP_PKEY *key, X509 *ca,
		       EVP_PKEY *ca_key)
{
	time_t now = time(NULL);
	bool has_cn = strlen(ln->text) <= CN_MAX;
	X509 *x;

	x = new_cert(key, now - CLOCK_SKEW, now + (time_t)PKI_LEAF_DAYS * DAY);
	if (x == NULL)
		return NULL;
	/* A DNS name longer than ub-common-name cannot be a CN; the subject
	 * is then empty and RFC 5280 4.2.1.6 wants the SAN critical. */
	if (has_cn && X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
						 NID_commonName, MBSTRING_UTF8,
						 (const unsigned char *)ln->text,
						 -1, -1, 0) != 1) {
		tls_error(__func__, "setting the subject of %s", ln->text);
		goto fail;
	}
	if (X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1) {
		tls_error(__func__, "setting the issuer of %s", ln->text);
		goto fail;
	}
	if (add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, ca, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, ca, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_san(x, ln, !has_cn) < 0)
		goto fail;
	if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
		tls_error(__func__, "signing the certificate for %s", ln->text);
		goto fail;
	}
	return x;
fail:
	X509_free(x);
	return NULL;
}

/*
 * Why the leaf on disk cannot be kept, or NULL when it can (then
 * *not_after is its expiry). Problems here are expected (first start,
 * renewal), so they are reasons to reissue, not errors.
 */
static const char *leaf_problem(const char *cert_path, const char *key_path,
				const struct leaf_name *ln, X509 *ca,
				time_t *not_after)
{
	const char *why = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	bool have_cert, have_key;
	time_t nb, na, now = time(NULL);

	if (file_exists(cert_path, &have_cert) < 0 ||
	    file_exists(key_path, &have_key) < 0 || !have_cert || !have_key) {
		why = "missing";
		goto out;
	}
	if (load_cert(cert_path, &leaf) < 0) {
		why = "certificate unreadable or corrupt";
		goto out;
	}
	if (load_key(key_path, &key) < 0) {
		why = "key unreadable or corrupt";
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		why = "key does not match the certificate";
		goto out;
	}
	if (X509_verify(leaf, X509_get0_pubkey(ca)) != 1) {
		why = "not signed by the current internal CA";
		goto out;
	}
	if (!san_matches(leaf, ln)) {
		why = "subjectAltName does not match";
		goto out;
	}
	if (asn1_to_time(X509_get0_notBefore(leaf), &nb) < 0 ||
	    asn1_to_time(X509_get0_notAfter(leaf), &na) < 0 || na <= nb) {
		why = "validity period unreadable";
		goto out;
	}
	/* The clock went back past notBefore: clients would reject it too. */
	if (now < nb) {
		why = "not valid yet";
		goto out;
	}
	if (now > na - (na - nb) / 3) {
		why = "less than a third of its lifetime left";
		goto out;
	}
	*not_after = na;
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(leaf);
	return why;
}

/* The file name of a host: "*" cannot be typed comfortably in a shell. */
static char *leaf_file_name(const char *host)
{
	char *name = xstrdup(host);
	char *p;

	for (p = name; *p != '\0'; p++)
		if (*p == '*')
			*p = '_';
	return name;
}

int pki_ensure_leaf(const char *datadir, const char *host, char **cert_path,
		    char **key_path, time_t *not_after)
{
	struct leaf_name ln;
	char *ca_cert_path = xasprintf("%s/internal-ca.pem", datadir);
	char *ca_key_path = xasprintf("%s/internal-ca.key", datadir);
	char *dir = xasprintf("%s/certs", datadir);
	char *name = NULL, *cpath = NULL, *kpath = NULL;
	X509 *ca = NULL, *leaf = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	const char *why;
	char until[64];
	time_t na = 0;
	int rc;

	*cert_path = NULL;
	*key_path = NULL;
	rc = parse_host(host, &ln);
	if (rc < 0)
		goto out;
	rc = load_ca(ca_cert_path, ca_key_path, &ca, &ca_key);
	if (rc < 0)
		goto out;
	rc = fs_mkdir_private(dir);
	if (rc < 0)
		goto out;
	name = leaf_file_name(host);
	cpath = xasprintf("%s/%s.pem", dir, name);
	kpath = xasprintf("%s/%s.key", dir, name);

	why = leaf_problem(cpath, kpath, &ln, ca, &na);
	if (why == NULL)
		goto done;

	rc = MOAT_ETLS;
	key = new_key();
	if (key == NULL)
		goto out;
	leaf = make_leaf(&ln, key, ca, ca_key);
	if (leaf == NULL)
		goto out;
	if (asn1_to_time(X509_get0_notAfter(leaf), &na) < 0) {
		tls_error(__func__, "reading back the expiry of %s", host);
		goto out;
	}
	/* Key first: a crash before the cert lands leaves a mismatched pair,
	 * which the next call detects and reissues. */
	rc = write_key(kpath, key);
	if (rc < 0)
		goto out;
	rc = write_certs(cpath, leaf, ca);
	if (rc < 0)
		goto out;
	format_time(na, until, sizeof(until));
	log_info("issued internal certificate for %s, valid until %s (reason: %s)",
		 host, until, why);
done:
	*cert_path = cpath;
	*key_path = kpath;
	*not_after = na;
	cpath = NULL;
	kpath = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(leaf);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	free(kpath);
	free(cpath);
	free(name);
	free(dir);
	free(ca_key_path);
	free(ca_cert_path);
	return rc;
}
