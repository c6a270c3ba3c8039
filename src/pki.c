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
#include "x509util.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CA_DAYS 3652           /* ten years, leap days included */

/* The name a leaf is issued for, parsed once. */
struct leaf_name {
	char text[256];        /* DNS name, or the IP address without brackets */
	unsigned char ip[16];  /* binary address when iplen != 0 */
	int iplen;             /* 0 (DNS), 4 or 16 */
};

static X509 *make_ca_cert(EVP_PKEY *key)
{
	char host[256], cn[X509_CN_MAX + 1];

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown host");
	host[sizeof(host) - 1] = '\0';
	/* 19 characters of frame leave 45 for the host name within ub-common-name. */
	snprintf(cn, sizeof(cn), "moat internal CA (%.45s)", host);
	return x509_new_ca(key, cn, CA_DAYS);
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

	key = x509_new_key();
	if (key == NULL)
		goto out;
	cert = make_ca_cert(key);
	if (cert == NULL)
		goto out;
	rc = x509_write_key(key_path, key);
	if (rc < 0)
		goto out;
	rc = x509_write_certs(cert_path, cert, NULL);
	if (rc < 0) {
		/* Nothing was ever signed with this key: removing it keeps a
		 * failed first start (disk full) from turning into the
		 * "only one CA file" error on every later start. */
		unlink(key_path);
		goto out;
	}
	if (x509_asn1_to_time(X509_get0_notAfter(cert), &na) < 0)
		na = 0;
	x509_format_time(na, until, sizeof(until));
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

	rc = x509_load_cert(cert_path, &cert);
	if (rc == MOAT_ETLS)
		x509_error(__func__, "%s: not a PEM certificate; restore it from a backup, "
			   "or delete it and %s to create a new CA", cert_path, key_path);
	if (rc < 0)
		goto out;
	rc = x509_load_key(key_path, &key);
	if (rc == MOAT_ETLS)
		x509_error(__func__, "%s: not an unencrypted PEM private key; restore it "
			   "from a backup, or delete it and %s to create a new CA",
			   key_path, cert_path);
	if (rc < 0)
		goto out;
	rc = MOAT_ETLS;
	if (X509_check_private_key(cert, key) != 1) {
		x509_error(__func__, "%s does not belong to %s; restore the matching pair, "
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

	rc = x509_file_exists(cert_path, &have_cert);
	if (rc < 0)
		goto out;
	rc = x509_file_exists(key_path, &have_key);
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
	x509_error(__func__, "adding subjectAltName %s", ln->text);
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
	bool has_cn = strlen(ln->text) <= X509_CN_MAX;
	X509 *x;

	x = x509_new_cert(key, now - X509_CLOCK_SKEW,
			  now + (time_t)PKI_LEAF_DAYS * X509_DAY);
	if (x == NULL)
		return NULL;
	/* A DNS name longer than ub-common-name cannot be a CN; the subject
	 * is then empty and RFC 5280 4.2.1.6 wants the SAN critical. */
	if (has_cn && X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
						 NID_commonName, MBSTRING_UTF8,
						 (const unsigned char *)ln->text,
						 -1, -1, 0) != 1) {
		x509_error(__func__, "setting the subject of %s", ln->text);
		goto fail;
	}
	if (X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1) {
		x509_error(__func__, "setting the issuer of %s", ln->text);
		goto fail;
	}
	if (x509_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    x509_add_ext(x, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    x509_add_ext(x, ca, NID_ext_key_usage, "serverAuth") < 0 ||
	    x509_add_ext(x, ca, NID_subject_key_identifier, "hash") < 0 ||
	    x509_add_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_san(x, ln, !has_cn) < 0)
		goto fail;
	if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
		x509_error(__func__, "signing the certificate for %s", ln->text);
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

	if (x509_file_exists(cert_path, &have_cert) < 0 ||
	    x509_file_exists(key_path, &have_key) < 0 || !have_cert || !have_key) {
		why = "missing";
		goto out;
	}
	if (x509_load_cert(cert_path, &leaf) < 0) {
		why = "certificate unreadable or corrupt";
		goto out;
	}
	if (x509_load_key(key_path, &key) < 0) {
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
	if (x509_asn1_to_time(X509_get0_notBefore(leaf), &nb) < 0 ||
	    x509_asn1_to_time(X509_get0_notAfter(leaf), &na) < 0 || na <= nb) {
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
	key = x509_new_key();
	if (key == NULL)
		goto out;
	leaf = make_leaf(&ln, key, ca, ca_key);
	if (leaf == NULL)
		goto out;
	if (x509_asn1_to_time(X509_get0_notAfter(leaf), &na) < 0) {
		x509_error(__func__, "reading back the expiry of %s", host);
		goto out;
	}
	/* Key first: a crash before the cert lands leaves a mismatched pair,
	 * which the next call detects and reissues. */
	rc = x509_write_key(kpath, key);
	if (rc < 0)
		goto out;
	rc = x509_write_certs(cpath, leaf, ca);
	if (rc < 0)
		goto out;
	x509_format_time(na, until, sizeof(until));
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
