/*
 * castore.c - see castore.h. The index is the source of truth: the CRL is
 * always rebuilt from it whole, never patched.
 */
#include "castore.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define INDEX_VERSION 1

const char *castore_name_problem(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0)
		return "it is empty";
	if (n > CA_NAME_MAX)
		return "it is longer than 64 characters";
	if (name[0] == '.' || name[0] == '-')
		return "it starts with '.' or '-'";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(isascii(c) && isalnum(c)) && c != '.' && c != '_' && c != '@' &&
		    c != '-')
			return "only letters, digits and . _ @ - are allowed";
	}
	return NULL;
}

long castore_utf8_chars(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	long count = 0;

	while (*p != '\0') {
		int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
			    (*p & 0xf8) == 0xf0 ? 3 : -1;

		/* 0xc0/0xc1 only start overlong encodings of ASCII. */
		if (extra < 0 || *p < 0x20 || *p == 0x7f || *p == 0xc0 || *p == 0xc1)
			return -1;
		for (p++; extra > 0; extra--, p++)
			if ((*p & 0xc0) != 0x80)
				return -1;
		count++;
	}
	return count;
}

void castore_iso8601(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_iso8601(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) != 20)
		return MOAT_EINVAL;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return MOAT_EINVAL;
	*out = timegm(&tm);
	return 0;
}

int castore_serial_norm(const char *in, char out[CA_SERIAL_HEX_MAX + 1])
{
	size_t n = strlen(in), i;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = MOAT_EINVAL;

	out[0] = '\0';
	if (n == 0 || n > CA_SERIAL_HEX_MAX)
		goto out;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)in[i]))
			goto out;
	if (BN_hex2bn(&bn, in) != (int)n)
		goto out;
	hex = BN_bn2hex(bn);
	if (hex == NULL)
		goto out;
	/* BN_bn2hex prints whole bytes, except a lone "0" for zero. */
	snprintf(out, CA_SERIAL_HEX_MAX + 1, "%s", strcmp(hex, "0") == 0 ? "00" : hex);
	rc = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

static int sha256_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	return 1;
}

static int corrupt(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int corrupt(const char *path, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_error("castore_index_load: %s is corrupt: %s. moat never resets it (it is the "
		  "only list of the certificates issued, which revocation needs): restore "
		  "it from a backup, or repair it by hand (format: docs/client-ca.md)",
		  path, what);
	return MOAT_EINVAL;
}

static const char *get_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int load_entry(const char *path, size_t i, json_t *o, struct castore_index *idx)
{
	const char *name = get_str(o, "name"), *serial = get_str(o, "serial");
	const char *nb = get_str(o, "not_before"), *na = get_str(o, "not_after");
	const char *sha = get_str(o, "sha256"), *status = get_str(o, "status");
	const char *ra = get_str(o, "revoked_at");
	struct ca_entry *e;

	if (!json_is_object(o))
		return corrupt(path, "certs[%zu] is not an object", i);
	if (name == NULL || castore_name_problem(name) != NULL)
		return corrupt(path, "certs[%zu].name is missing or not a valid name", i);
	e = castore_index_add(idx);
	snprintf(e->name, sizeof(e->name), "%s", name);
	if (serial == NULL || castore_serial_norm(serial, e->serial) < 0)
		return corrupt(path, "certs[%zu].serial is missing or not 1-40 hex digits", i);
	if (nb == NULL || parse_iso8601(nb, &e->not_before) < 0 || na == NULL ||
	    parse_iso8601(na, &e->not_after) < 0)
		return corrupt(path, "certs[%zu].not_before/not_after are missing or not "
			       "YYYY-MM-DDTHH:MM:SSZ", i);
	if (sha == NULL || !sha256_ok(sha))
		return corrupt(path, "certs[%zu].sha256 is missing or not 64 lowercase hex "
			       "digits", i);
	memcpy(e->sha256, sha, 65);
	if (status != NULL && strcmp(status, "active") == 0) {
		e->status = CA_ACTIVE;
	} else if (status != NULL && strcmp(status, "revoked") == 0) {
		e->status = CA_REVOKED;
		if (ra == NULL || parse_iso8601(ra, &e->revoked_at) < 0)
			return corrupt(path, "certs[%zu] is revoked but revoked_at is missing "
				       "or not YYYY-MM-DDTHH:MM:SSZ", i);
	} else {
		return corrupt(path, "certs[%zu].status is not \"active\" or \"revoked\"", i);
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, so that a large index is checked in n log n, not n squared. */
static int check_unique(const char *path, const struct castore_index *idx)
{
	const char **s = xcalloc(idx->n + 1, sizeof(*s));
	size_t i;
	int rc = 0;

	for (i = 0; i < idx->n; i++)
		s[i] = idx->e[i].serial;
	qsort(s, idx->n, sizeof(*s), cmp_str);
	for (i = 1; i < idx->n && rc == 0; i++)
		if (strcmp(s[i - 1], s[i]) == 0)
			rc = corrupt(path, "serial %s appears twice", s[i]);
	free(s);
	return rc;
}

int castore_index_load(const char *path, struct castore_index *idx)
{
	char *buf = NULL;
	size_t len = 0, i;
	json_t *root = NULL, *v, *certs;
	json_error_t jerr;
	int rc;

	memset(idx, 0, sizeof(*idx));
	rc = fs_read_file(path, CASTORE_INDEX_MAX, &buf, &len);
	if (rc < 0)
		goto out;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		rc = corrupt(path, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		goto out;
	}
	rc = MOAT_EINVAL;
	v = json_object_get(root, "version");
	if (!json_is_object(root) || !json_is_integer(v)) {
		rc = corrupt(path, "not an object with a \"version\"");
		goto out;
	}
	if (json_integer_value(v) != INDEX_VERSION) {
		rc = corrupt(path, "version %lld, this moat reads version %d",
			     (long long)json_integer_value(v), INDEX_VERSION);
		goto out;
	}
	v = json_object_get(root, "crl_number");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 0x7fffffffLL) {
		rc = corrupt(path, "\"crl_number\" is missing or not a number >= 0");
		goto out;
	}
	idx->crl_number = (long)json_integer_value(v);
	certs = json_object_get(root, "certs");
	if (!json_is_array(certs)) {
		rc = corrupt(path, "\"certs\" is missing or not an array");
		goto out;
	}
	for (i = 0; i < json_array_size(certs); i++) {
		rc = load_entry(path, i, json_array_get(certs, i), idx);
		if (rc < 0)
			goto out;
	}
	rc = check_unique(path, idx);
out:
	if (rc < 0)
		castore_index_free(idx);
	json_decref(root);
	free(buf);
	return rc;
}

int castore_index_save(const char *path, const struct castore_index *idx)
{
	json_t *root = json_object(), *certs = json_array();
	char *text = NULL, t[32];
	size_t i;
	int rc;

	json_object_set_new(root, "version", json_integer(INDEX_VERSION));
	json_object_set_new(root, "crl_number", json_integer(idx->crl_number));
	for (i = 0; i < idx->n; i++) {
		const struct ca_entry *e = &idx->e[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(e->name));
		json_object_set_new(o, "serial", json_string(e->serial));
		castore_iso8601(e->not_before, t, sizeof(t));
		json_object_set_new(o, "not_before", json_string(t));
		castore_iso8601(e->not_after, t, sizeof(t));
		json_object_set_new(o, "not_after", json_string(t));
		json_object_set_new(o, "sha256", json_string(e->sha256));
		json_object_set_new(o, "status", json_string(e->status == CA_REVOKED ?
							     "revoked" : "active"));
		if (e->status == CA_REVOKED) {
			castore_iso8601(e->revoked_at, t, sizeof(t));
			json_object_set_new(o, "revoked_at", json_string(t));
		}
		json_array_append_new(certs, o);
	}
	json_object_set_new(root, "certs", certs);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text == NULL) {
		log_error("%s: %s: encoding the index failed", __func__, path);
		rc = MOAT_EIO;
		goto out;
	}
	/* json_dumps leaves out the final newline a text file should have. */
	i = strlen(text);
	text = xrealloc(text, i + 2);
	memcpy(text + i, "\n", 2);
	rc = fs_write_atomic(path, text, i + 1, 0600);
out:
	free(text);
	json_decref(root);
	return rc;
}

struct ca_entry *castore_index_add(struct castore_index *idx)
{
	if (idx->n == idx->cap) {
		idx->cap = idx->cap ? idx->cap * 2 : 16;
		idx->e = xrealloc(idx->e, idx->cap * sizeof(*idx->e));
	}
	memset(&idx->e[idx->n], 0, sizeof(idx->e[0]));
	return &idx->e[idx->n++];
}

int castore_entry_from_cert(struct ca_entry *e, const char *name, X509 *x)
{
	char *hex = x509_serial_hex(X509_get0_serialNumber(x));
	int rc = MOAT_ETLS;

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	if (hex == NULL || castore_serial_norm(hex, e->serial) < 0 ||
	    x509_sha256_hex(x, e->sha256) < 0 ||
	    x509_asn1_to_time(X509_get0_notBefore(x), &e->not_before) < 0 ||
	    x509_asn1_to_time(X509_get0_notAfter(x), &e->not_after) < 0) {
		x509_error(__func__, "reading back the certificate of \"%s\"", name);
		goto out;
	}
	e->status = CA_ACTIVE;
	rc = 0;
out:
	free(hex);
	return rc;
}

long castore_index_find(const struct castore_index *idx, const char *serial)
{
	size_t i;

	for (i = 0; i < idx->n; i++)
		if (strcmp(idx->e[i].serial, serial) == 0)
			return (long)i;
	return -1;
}

void castore_index_free(struct castore_index *idx)
{
	free(idx->e);
	memset(idx, 0, sizeof(*idx));
}

static int add_revoked(X509_CRL *crl, const char *serial, time_t when)
{
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = ASN1_TIME_set(NULL, when);
	BIGNUM *bn = NULL;
	int rc = MOAT_ETLS;

	if (r == NULL || t == NULL || BN_hex2bn(&bn, serial) == 0)
		goto out;
	sn = BN_to_ASN1_INTEGER(bn, NULL);
	if (sn == NULL || X509_REVOKED_set_serialNumber(r, sn) != 1 ||
	    X509_REVOKED_set_revocationDate(r, t) != 1 || X509_CRL_add0_revoked(crl, r) != 1)
		goto out;
	r = NULL; /* owned by crl */
	rc = 0;
out:
	X509_REVOKED_free(r);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(t);
	BN_free(bn);
	return rc;
}

/* crlNumber and authorityKeyIdentifier (the CA's subject key id), both
 * non-critical as RFC 5280 5.2.1 and 5.2.3 require. */
static int add_crl_exts(X509_CRL *crl, X509 *ca, long number)
{
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	int rc = MOAT_ETLS;

	if (num == NULL || akid == NULL || ski == NULL || ASN1_INTEGER_set(num, number) != 1)
		goto out;
	akid->keyid = ASN1_OCTET_STRING_dup(ski);
	if (akid->keyid == NULL ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1)
		goto out;
	rc = 0;
out:
	AUTHORITY_KEYID_free(akid);
	ASN1_INTEGER_free(num);
	return rc;
}

int castore_crl_write(const char *path, X509 *ca, EVP_PKEY *ca_key, long number,
		      const struct castore_index *idx,
		      const struct castore_revoked *extra, size_t nextra)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
	BIO *bio = NULL;
	char *data;
	long n;
	size_t i;
	int rc = MOAT_ETLS;

	if (crl == NULL || now == NULL || X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, now) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, X509_get0_notAfter(ca)) != 1)
		goto fail;
	for (i = 0; i < idx->n; i++)
		if (idx->e[i].status == CA_REVOKED &&
		    add_revoked(crl, idx->e[i].serial, idx->e[i].revoked_at) < 0)
			goto fail;
	for (i = 0; i < nextra; i++)
		if (add_revoked(crl, extra[i].serial, extra[i].when) < 0)
			goto fail;
	if (X509_CRL_sort(crl) != 1 || add_crl_exts(crl, ca, number) < 0 ||
	    X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0)
		goto fail;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_CRL(bio, crl) != 1)
		goto fail;
	n = BIO_get_mem_data(bio, &data);
	rc = fs_write_atomic(path, data, (size_t)n, 0644);
	goto out;
fail:
	x509_error(__func__, "%s: building the CRL", path);
out:
	BIO_free(bio);
	ASN1_TIME_free(now);
	X509_CRL_free(crl);
	return rc;
}

static int read_entries(X509_CRL *x, struct castore_crl *crl)
{
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(x);
	int i, count = rev != NULL ? sk_X509_REVOKED_num(rev) : 0;

	crl->r = count > 0 ? xcalloc((size_t)count, sizeof(*crl->r)) : NULL;
	for (i = 0; i < count; i++) {
		const X509_REVOKED *r = sk_X509_REVOKED_value(rev, i);
		struct castore_revoked *out = &crl->r[crl->n];
		char *hex = x509_serial_hex(X509_REVOKED_get0_serialNumber(r));
		int rc = hex != NULL ? castore_serial_norm(hex, out->serial) : MOAT_ETLS;

		free(hex);
		if (rc < 0 ||
		    x509_asn1_to_time(X509_REVOKED_get0_revocationDate(r), &out->when) < 0)
			return MOAT_EINVAL;
		crl->n++;
	}
	return 0;
}

int castore_crl_read(const char *path, X509 *ca, struct castore_crl *crl,
		     const char **why)
{
	X509_CRL *x = NULL;
	ASN1_INTEGER *num = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	size_t len = 0;
	bool exists;
	int rc = MOAT_EINVAL;

	memset(crl, 0, sizeof(*crl));
	*why = "it is missing";
	if (x509_file_exists(path, &exists) < 0 || !exists)
		goto out;
	*why = "it cannot be read";
	if (fs_read_file(path, CASTORE_INDEX_MAX, &pem, &len) < 0)
		goto out;
	*why = "it is not a PEM CRL";
	bio = BIO_new_mem_buf(pem, (int)len);
	x = bio != NULL ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
	if (x == NULL)
		goto out;
	*why = "it was not issued by this CA";
	if (X509_NAME_cmp(X509_CRL_get_issuer(x), X509_get_subject_name(ca)) != 0 ||
	    X509_CRL_verify(x, X509_get0_pubkey(ca)) != 1)
		goto out;
	*why = "its entries are unreadable";
	if (read_entries(x, crl) < 0)
		goto out;
	num = X509_CRL_get_ext_d2i(x, NID_crl_number, NULL, NULL);
	crl->number = num != NULL ? ASN1_INTEGER_get(num) : 0;
	if (crl->number < 0)
		crl->number = 0;
	*why = NULL;
	rc = 0;
out:
	if (rc < 0)
		castore_crl_free(crl);
	ERR_clear_error();
	ASN1_INTEGER_free(num);
	X509_CRL_free(x);
	BIO_free(bio);
	free(pem);
	return rc;
}

struct serial_ref {
	const char *serial;
	size_t i;
};

static int cmp_ref(const void *a, const void *b)
{
	return strcmp(((const struct serial_ref *)a)->serial, ((const struct serial_ref *)b)->serial);
}

/* Serials of n items (each `size` bytes, the serial string at offset
 * off), sorted, so that reconciling tens of thousands of entries stays
 * n log n. */
static struct serial_ref *sorted_refs(const void *items, size_t n, size_t size, size_t off)
{
	struct serial_ref *r = xcalloc(n + 1, sizeof(*r));
	size_t i;

	for (i = 0; i < n; i++) {
		r[i].serial = (const char *)items + i * size + off;
		r[i].i = i;
	}
	if (n > 0)
		qsort(r, n, sizeof(*r), cmp_ref);
	return r;
}

static const struct serial_ref *find_ref(const struct serial_ref *r, size_t n, const char *serial)
{
	struct serial_ref key = { serial, 0 };

	return n > 0 ? bsearch(&key, r, n, sizeof(key), cmp_ref) : NULL;
}

void castore_reconcile(struct castore_index *idx, const struct castore_crl *crl,
		       struct castore_revoked **extra, size_t *nextra, bool *crl_stale,
		       bool *idx_dirty)
{
	struct serial_ref *by_idx, *by_crl;
	const struct serial_ref *f;
	size_t i;

	if (crl->number < idx->crl_number) {
		*crl_stale = true;
	} else if (crl->number > idx->crl_number) {
		idx->crl_number = crl->number;
		*idx_dirty = true;
	}
	by_idx = sorted_refs(idx->e, idx->n, sizeof(*idx->e), offsetof(struct ca_entry, serial));
	by_crl = sorted_refs(crl->r, crl->n, sizeof(*crl->r),
			     offsetof(struct castore_revoked, serial));
	for (i = 0; i < crl->n; i++) {
		f = find_ref(by_idx, idx->n, crl->r[i].serial);
		if (f == NULL) {
			*extra = xrealloc(*extra, (*nextra + 1) * sizeof(**extra));
			(*extra)[(*nextra)++] = crl->r[i];
		} else if (idx->e[f->i].status != CA_REVOKED) {
			idx->e[f->i].status = CA_REVOKED;
			idx->e[f->i].revoked_at = crl->r[i].when;
			*idx_dirty = true;
		}
	}
	for (i = 0; i < idx->n && !*crl_stale; i++)
		if (idx->e[i].status == CA_REVOKED &&
		    find_ref(by_crl, crl->n, idx->e[i].serial) == NULL)
			*crl_stale = true;
	free(by_crl);
	free(by_idx);
}

void castore_crl_free(struct castore_crl *crl)
{
	free(crl->r);
	memset(crl, 0, sizeof(*crl));
}
