/*
 * ca.c - see ca.h; file formats in castore.c, the user's view in
 * docs/client-ca.md.
 *
 * Order of writes, so that a crash at any point leaves something safe:
 *   init    key, CRL, index, certificate (ca.pem existing means "done")
 *   issue   index first (a certificate that exists is always revocable),
 *           then the key and certificate files
 *   revoke  CRL first, then index (never un-revokes)
 */
#include "ca.h"
#include "castore.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct ca {
	char *dir, *cert_path, *key_path, *crl_path, *index_path;
	int lock_fd;
	X509 *cert;
	EVP_PKEY *key;              /* NULL unless opened for writing */
	struct castore_index idx;
	struct castore_revoked *extra; /* revoked by crl.pem, unknown to the index */
	size_t nextra;
	long crl_file_number;       /* crlNumber of crl.pem, 0 when unusable */
	bool crl_stale;             /* crl.pem disagrees with the index */
	bool idx_dirty;             /* the index learned revocations from crl.pem */
};

static struct ca *ca_new(const char *datadir)
{
	struct ca *ca = xcalloc(1, sizeof(*ca));

	ca->dir = xasprintf("%s/%s", datadir, CA_DIR_NAME);
	ca->cert_path = xasprintf("%s/ca.pem", ca->dir);
	ca->key_path = xasprintf("%s/ca.key", ca->dir);
	ca->crl_path = xasprintf("%s/crl.pem", ca->dir);
	ca->index_path = xasprintf("%s/index.json", ca->dir);
	ca->lock_fd = -1;
	return ca;
}

void ca_close(struct ca *ca)
{
	if (ca == NULL)
		return;
	if (ca->lock_fd >= 0)
		close(ca->lock_fd); /* releases the flock */
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	castore_index_free(&ca->idx);
	free(ca->extra);
	free(ca->index_path);
	free(ca->crl_path);
	free(ca->key_path);
	free(ca->cert_path);
	free(ca->dir);
	free(ca);
}

X509 *ca_cert(const struct ca *ca)
{
	return ca->cert;
}

const char *ca_crl_path(const struct ca *ca)
{
	return ca->crl_path;
}

long ca_crl_number(const struct ca *ca)
{
	return ca->idx.crl_number;
}

int ca_check_name(const char *name)
{
	const char *why = castore_name_problem(name);

	if (why == NULL)
		return 0;
	log_error("%s: \"%s\" cannot be a certificate name: %s (it becomes a file "
		  "name: 1-64 characters of A-Z a-z 0-9 . _ @ -, not starting with . or -)",
		  __func__, name, why);
	return MOAT_EINVAL;
}

/* Held until ca_close: two concurrent `moat ca issue` must not both read
 * the index and each write back a copy lacking the other's certificate. */
static int take_lock(struct ca *ca)
{
	char *path = xasprintf("%s/lock", ca->dir);
	int rc = MOAT_EIO;

	ca->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ca->lock_fd < 0) {
		log_error("%s: %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	while (flock(ca->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			log_error("%s: flock %s: %s", __func__, path, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	free(path);
	return rc;
}

int ca_check_cn(const char *cn)
{
	long chars = castore_utf8_chars(cn);

	if (chars >= 1 && chars <= X509_CN_MAX)
		return 0;
	log_error("%s: the CA name \"%s\" is not valid: it must be 1-64 characters of "
		  "UTF-8 text without control characters", __func__, cn);
	return MOAT_EINVAL;
}

int ca_check_serial(const char *serial)
{
	char norm[CA_SERIAL_HEX_MAX + 1];

	if (castore_serial_norm(serial, norm) == 0)
		return 0;
	log_error("%s: \"%s\" is not a serial number: 1-40 hex digits, as moat ca list "
		  "prints them", __func__, serial);
	return MOAT_EINVAL;
}

static int ca_name(const char *cn, char out[4 * X509_CN_MAX + 1])
{
	char host[256];

	if (cn == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "unknown host");
		host[sizeof(host) - 1] = '\0';
		/* 17 characters of frame leave 47 for the host name. */
		snprintf(out, 4 * X509_CN_MAX + 1, "moat client CA (%.47s)", host);
		return 0;
	}
	if (ca_check_cn(cn) < 0)
		return MOAT_EINVAL;
	snprintf(out, 4 * X509_CN_MAX + 1, "%s", cn);
	return 0;
}

/* Write the CRL from the index under the next number; the caller saves the
 * index afterwards, which then carries that number. */
static int write_crl(struct ca *ca)
{
	long number = ca->idx.crl_number > ca->crl_file_number ? ca->idx.crl_number :
								  ca->crl_file_number;
	int rc;

	number++;
	rc = castore_crl_write(ca->crl_path, ca->cert, ca->key, number, &ca->idx,
			       ca->extra, ca->nextra);
	if (rc < 0)
		return rc;
	ca->idx.crl_number = number;
	ca->crl_file_number = number;
	ca->crl_stale = false;
	return 0;
}

/* The CRL init writes: number 1 (or none), nothing revoked; or no file. */
static bool crl_is_blank(const char *path)
{
	ASN1_INTEGER *num = NULL;
	X509_CRL *crl = NULL;
	bool blank = false;
	FILE *f = fopen(path, "r");
	long n = 0;

	if (f == NULL)
		return errno == ENOENT;
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	if (crl == NULL)
		goto out;
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	if (num != NULL)
		n = ASN1_INTEGER_get(num);
	blank = n <= 1 && sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0;
out:
	ERR_clear_error();
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	return blank;
}

/* Link path to a fresh "<path>.interrupted-<time>[.N]" (never replacing an
 * earlier one); *aside is its name (heap). */
static int set_aside(const char *path, char **aside)
{
	long long t = (long long)time(NULL);
	int i;

	for (i = 0; i < 100; i++) {
		*aside = i == 0 ? xasprintf("%s.interrupted-%lld", path, t) :
			 xasprintf("%s.interrupted-%lld.%d", path, t, i);
		if (link(path, *aside) == 0)
			return 0;
		if (errno != EEXIST)
			break;
		free(*aside);
		*aside = NULL;
	}
	log_error("ca_init: cannot set %s aside: %s", path, strerror(errno));
	return MOAT_EIO;
}

/* No client files were ever written into the default directory. */
static bool clients_empty(const char *dir)
{
	char *path = xasprintf("%s/clients", dir);
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty;

	free(path);
	if (d == NULL)
		return errno == ENOENT;
	empty = true;
	for (e = readdir(d); e != NULL && empty; e = readdir(d))
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/*
 * init writes the key, the CRL, the index and the certificate last, and a
 * CA exists once ca.pem does. A key without a certificate, with an index
 * that lists nothing (or none), a CRL that revokes nothing and was never
 * rewritten (or none) and no client files is what a crash during init
 * leaves: nothing was issued with that key, so init may start over. Any
 * trace of use and it is an error for a person to look at.
 */
static bool interrupted_init(const struct ca *ca)
{
	struct castore_index idx;
	bool have_index, empty;

	if (!crl_is_blank(ca->crl_path) || !clients_empty(ca->dir) ||
	    x509_file_exists(ca->index_path, &have_index) < 0)
		return false;
	if (!have_index)
		return true;
	memset(&idx, 0, sizeof(idx));
	if (castore_index_load(ca->index_path, &idx) < 0)
		return false;
	empty = idx.n == 0 && idx.crl_number <= 1;
	castore_index_free(&idx);
	return empty;
}

int ca_init(const char *datadir, const char *cn, X509 **cert)
{
	char *aside = NULL;
	struct ca *ca = ca_new(datadir);
	char name[4 * X509_CN_MAX + 1];
	bool have_cert, have_key;
	int rc, wrote = 0; /* 1 key, 2 and CRL, 3 and index */

	if (cert != NULL)
		*cert = NULL;
	rc = ca_name(cn, name);
	if (rc < 0)
		goto out;
	rc = fs_mkdir_private(ca->dir);
	if (rc < 0)
		goto out;
	rc = take_lock(ca);
	if (rc < 0)
		goto out;
	rc = x509_file_exists(ca->cert_path, &have_cert);
	if (rc == 0)
		rc = x509_file_exists(ca->key_path, &have_key);
	if (rc < 0)
		goto out;
	if (have_key && !have_cert && interrupted_init(ca)) {
		/* kept aside, not overwritten: a person may still want it */
		rc = set_aside(ca->key_path, &aside);
		if (rc < 0)
			goto out;
		if (unlink(ca->key_path) < 0) {
			log_error("%s: setting %s aside as %s: %s", __func__, ca->key_path, aside,
				  strerror(errno));
			rc = MOAT_EIO;
			goto out;
		}
		log_info("%s: %s has a key but no certificate and was never used: an earlier "
			 "init was interrupted; starting over (the old key is now %s)", __func__,
			 ca->dir, aside);
		have_key = false;
	}
	if (have_cert || have_key) {
		log_error("%s: a client CA already exists in %s (%s is there); moat never "
			  "replaces it, since every certificate it issued depends on it. To "
			  "start over, move %s away first", __func__, ca->dir,
			  have_cert ? "ca.pem" : "ca.key", ca->dir);
		rc = MOAT_EEXIST;
		goto out;
	}
	rc = MOAT_ETLS;
	ca->key = x509_new_key();
	if (ca->key == NULL)
		goto out;
	ca->cert = x509_new_ca(ca->key, name, CA_DAYS);
	if (ca->cert == NULL)
		goto out;
	rc = x509_write_key(ca->key_path, ca->key);
	wrote += rc == 0;
	if (rc == 0)
		rc = write_crl(ca);
	wrote += rc == 0;
	if (rc == 0)
		rc = castore_index_save(ca->index_path, &ca->idx);
	wrote += rc == 0;
	if (rc == 0)
		rc = x509_write_certs(ca->cert_path, ca->cert, NULL);
	if (rc < 0)
		goto out;
	if (cert != NULL && X509_up_ref(ca->cert) == 1)
		*cert = ca->cert;
out:
	/* Nothing was signed with a key whose certificate never landed:
	 * removing the pieces lets a later `moat ca init` simply retry. */
	if (rc < 0 && wrote >= 1)
		unlink(ca->key_path);
	if (rc < 0 && wrote >= 2)
		unlink(ca->crl_path);
	if (rc < 0 && wrote >= 3)
		unlink(ca->index_path);
	free(aside);
	ca_close(ca);
	return rc;
}

static int load_ca_files(struct ca *ca, bool write)
{
	bool exists;
	int rc;

	rc = x509_file_exists(ca->cert_path, &exists);
	if (rc < 0)
		return rc;
	if (!exists) {
		log_error("ca_open: there is no client CA in %s (%s is missing); create "
			  "one with: moat ca init", ca->dir, ca->cert_path);
		return MOAT_ENOTFOUND;
	}
	rc = x509_load_cert(ca->cert_path, &ca->cert);
	if (rc == MOAT_ETLS)
		x509_error("ca_open", "%s: not a PEM certificate; restore it from a backup",
			   ca->cert_path);
	if (rc < 0 || !write)
		return rc;
	rc = x509_load_key(ca->key_path, &ca->key);
	if (rc == MOAT_ETLS)
		x509_error("ca_open", "%s: not an unencrypted PEM private key; restore it "
			   "from a backup", ca->key_path);
	if (rc < 0)
		return rc;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		x509_error("ca_open", "%s does not belong to %s; restore the matching pair "
			   "from a backup", ca->key_path, ca->cert_path);
		return MOAT_ETLS;
	}
	return 0;
}

/* See castore_reconcile; only a writer logs, because only a writer fixes. */
static void reconcile(struct ca *ca, bool write)
{
	struct castore_crl crl;
	const char *why;
	size_t i, before = ca->nextra;

	if (castore_crl_read(ca->crl_path, ca->cert, &crl, &why) < 0) {
		if (write)
			log_warn("%s: %s; rewriting it from %s", ca->crl_path, why,
				 ca->index_path);
		ca->crl_stale = true;
		return;
	}
	ca->crl_file_number = crl.number;
	castore_reconcile(&ca->idx, &crl, &ca->extra, &ca->nextra, &ca->crl_stale,
			  &ca->idx_dirty);
	for (i = before; write && i < ca->nextra; i++)
		log_warn("%s revokes serial %s, which %s does not list; it stays revoked",
			 ca->crl_path, ca->extra[i].serial, ca->index_path);
	if (write && ca->crl_stale)
		log_warn("%s lacks revocations that %s records; rewriting it", ca->crl_path,
			 ca->index_path);
	castore_crl_free(&crl);
}

int ca_open(const char *datadir, bool write, struct ca **out)
{
	struct ca *ca = ca_new(datadir);
	int rc;

	*out = NULL;
	/* The CA files never change once created; the index must be read
	 * under the lock. */
	rc = load_ca_files(ca, write);
	if (rc == 0 && write)
		rc = take_lock(ca);
	if (rc == 0)
		rc = castore_index_load(ca->index_path, &ca->idx);
	if (rc < 0)
		goto out;
	reconcile(ca, write);
	if (write && ca->crl_stale) {
		rc = write_crl(ca);
		ca->idx_dirty = true;
	}
	if (rc == 0 && write && ca->idx_dirty)
		rc = castore_index_save(ca->index_path, &ca->idx);
	if (rc < 0)
		goto out;
	*out = ca;
	ca = NULL;
out:
	ca_close(ca);
	return rc;
}

/* Is dir the same directory as other (which may not exist)? */
static bool same_dir(const struct stat *dir, const char *other)
{
	struct stat st;

	return stat(other, &st) == 0 && st.st_dev == dir->st_dev && st.st_ino == dir->st_ino;
}

int ca_check_out_dir(const struct ca *ca, const char *dir)
{
	char *data = fs_dirname(ca->dir), *certs = xasprintf("%s/certs", data);
	struct stat st;
	int rc = 0;

	if (stat(dir, &st) == 0 &&
	    (same_dir(&st, ca->dir) || same_dir(&st, data) || same_dir(&st, certs))) {
		log_error("ca_issue: %s is one of moat's own state directories, where the new "
			  "files could replace a CA's; choose another directory (the default is "
			  "%s/clients)", dir, ca->dir);
		rc = MOAT_EINVAL;
	}
	free(certs);
	free(data);
	return rc;
}

/* A user-chosen directory keeps its mode (it may be "."); ours is 0700. */
static int make_out_dir(const struct ca *ca, const char *dir)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return fs_mkdir_private(dir);
	if (!S_ISDIR(st.st_mode)) {
		log_error("ca_issue: %s is not a directory", dir);
		return MOAT_EIO;
	}
	return ca_check_out_dir(ca, dir);
}

/* A certificate this name already uses, or NULL. */
static const struct ca_entry *active_named(const struct ca *ca, const char *name,
					   time_t now)
{
	size_t i;

	for (i = 0; i < ca->idx.n; i++) {
		const struct ca_entry *e = &ca->idx.e[i];

		if (e->status == CA_ACTIVE && e->not_after > now && strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

int ca_issue(struct ca *ca, const char *name, int days, bool force,
	     const char *out_dir, struct ca_issued *res)
{
	const struct ca_entry *old;
	char *dir = NULL, until[64];
	time_t now = time(NULL), ca_na = 0;
	struct ca_entry entry;
	bool recorded = false;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&entry, 0, sizeof(entry));
	rc = ca_check_name(name);
	if (rc < 0)
		goto out;
	rc = MOAT_EINVAL;
	if (days < 1 || days > CA_CLIENT_DAYS_MAX) {
		log_error("%s: %d days is not a valid lifetime: use 1-%d", __func__, days,
			  CA_CLIENT_DAYS_MAX);
		goto out;
	}
	if (ca->key == NULL) {
		log_error("%s: the CA was opened read-only", __func__);
		goto out;
	}
	if (x509_asn1_to_time(X509_get0_notAfter(ca->cert), &ca_na) < 0 ||
	    now + (time_t)days * X509_DAY > ca_na) {
		x509_format_time(ca_na, until, sizeof(until));
		log_error("%s: a certificate valid for %d days would outlive the CA in %s "
			  "(valid until %s); choose fewer --days", __func__, days, ca->dir, until);
		goto out;
	}
	old = active_named(ca, name, now);
	if (old != NULL && !force) {
		x509_format_time(old->not_after, until, sizeof(until));
		log_error("%s: \"%s\" already has an active certificate (serial %s, valid "
			  "until %s); use --force to issue a second one, or revoke the old "
			  "one first: moat ca revoke %s", __func__, name, old->serial, until, name);
		rc = MOAT_EEXIST;
		goto out;
	}
	dir = out_dir != NULL ? xstrdup(out_dir) : xasprintf("%s/clients", ca->dir);
	rc = make_out_dir(ca, dir);
	if (rc < 0)
		goto out;
	rc = MOAT_ETLS;
	res->key = x509_new_key();
	if (res->key == NULL)
		goto out;
	res->cert = x509_new_client(res->key, name, ca->cert, ca->key, days);
	if (res->cert == NULL)
		goto out;
	rc = castore_entry_from_cert(&entry, name, res->cert);
	if (rc < 0)
		goto out;
	*castore_index_add(&ca->idx) = entry;
	rc = castore_index_save(ca->index_path, &ca->idx);
	if (rc < 0)
		goto out;
	recorded = true;
	res->cert_path = xasprintf("%s/%s.pem", dir, name);
	res->key_path = xasprintf("%s/%s.key", dir, name);
	rc = x509_write_key(res->key_path, res->key);
	if (rc == 0)
		rc = x509_write_certs(res->cert_path, res->cert, NULL);
	if (rc < 0)
		goto out;
	memcpy(res->serial, entry.serial, sizeof(res->serial));
	res->not_after = entry.not_after;
out:
	if (rc < 0 && recorded) {
		/* The key never reached the disk, so the certificate is useless:
		 * take it out of the index again. */
		unlink(res->key_path);
		ca->idx.n--;
		if (castore_index_save(ca->index_path, &ca->idx) < 0)
			log_error("%s: %s lists serial %s, whose key was not saved; revoke it: "
				  "moat ca revoke %s --serial %s", __func__, ca->index_path,
				  entry.serial, name, entry.serial);
	}
	if (rc < 0)
		ca_issued_free(res);
	free(dir);
	return rc;
}

void ca_issued_free(struct ca_issued *res)
{
	if (res == NULL)
		return;
	EVP_PKEY_free(res->key);
	X509_free(res->cert);
	free(res->cert_path);
	free(res->key_path);
	memset(res, 0, sizeof(*res));
}

void ca_list(const struct ca *ca, time_t now, struct ca_entry **out, size_t *n)
{
	size_t i;

	*out = NULL;
	*n = ca->idx.n;
	if (ca->idx.n == 0)
		return;
	*out = xcalloc(ca->idx.n, sizeof(**out));
	for (i = 0; i < ca->idx.n; i++) {
		(*out)[i] = ca->idx.e[i];
		if ((*out)[i].status == CA_ACTIVE && (*out)[i].not_after <= now)
			(*out)[i].status = CA_EXPIRED;
	}
}

/* Which entries to revoke; MOAT_ENOTFOUND (logged) when there are none. */
static int pick(struct ca *ca, const char *name, const char *serial, bool *mark)
{
	char want[CA_SERIAL_HEX_MAX + 1];
	size_t i, named = 0, picked = 0;
	long k;

	if (serial != NULL) {
		if (castore_serial_norm(serial, want) < 0) {
			log_error("ca_revoke: \"%s\" is not a serial number (1-40 hex digits, "
				  "as moat ca list prints them)", serial);
			return MOAT_EINVAL;
		}
		k = castore_index_find(&ca->idx, want);
		if (k < 0 || strcmp(ca->idx.e[k].name, name) != 0) {
			log_error("ca_revoke: no certificate named \"%s\" has serial %s%s%s%s; "
				  "see moat ca list", name, want, k < 0 ? "" : " (it belongs to \"",
				  k < 0 ? "" : ca->idx.e[k].name, k < 0 ? "" : "\")");
			return MOAT_ENOTFOUND;
		}
		if (ca->idx.e[k].status == CA_REVOKED) {
			log_error("ca_revoke: serial %s of \"%s\" is already revoked; see moat "
				  "ca list", want, name);
			return MOAT_ENOTFOUND;
		}
		mark[k] = true;
		return 0;
	}
	for (i = 0; i < ca->idx.n; i++) {
		if (strcmp(ca->idx.e[i].name, name) != 0)
			continue;
		named++;
		if (ca->idx.e[i].status != CA_REVOKED) {
			mark[i] = true;
			picked++;
		}
	}
	if (named == 0) {
		log_error("ca_revoke: no certificate named \"%s\" was issued; see moat ca list",
			  name);
		return MOAT_ENOTFOUND;
	}
	if (picked == 0) {
		log_error("ca_revoke: every certificate named \"%s\" is already revoked; see "
			  "moat ca list", name);
		return MOAT_ENOTFOUND;
	}
	return 0;
}

int ca_revoke(struct ca *ca, const char *name, const char *serial,
	      char (**serials)[CA_SERIAL_HEX_MAX + 1], size_t *n)
{
	bool *mark = NULL;
	time_t now = time(NULL);
	size_t i, count = 0;
	int rc;

	*serials = NULL;
	*n = 0;
	rc = ca_check_name(name);
	if (rc < 0)
		return rc;
	if (ca->key == NULL) {
		log_error("%s: the CA was opened read-only", __func__);
		return MOAT_EINVAL;
	}
	mark = xcalloc(ca->idx.n + 1, sizeof(*mark));
	rc = pick(ca, name, serial, mark);
	if (rc < 0)
		goto out;
	for (i = 0; i < ca->idx.n; i++) {
		if (!mark[i])
			continue;
		ca->idx.e[i].status = CA_REVOKED;
		ca->idx.e[i].revoked_at = now;
		count++;
	}
	/* CRL first: once it is on disk the revocation holds, whatever
	 * happens to the index write (ca_open reconciles the two). */
	rc = write_crl(ca);
	if (rc < 0) {
		for (i = 0; i < ca->idx.n; i++)
			if (mark[i]) {
				ca->idx.e[i].status = CA_ACTIVE;
				ca->idx.e[i].revoked_at = 0;
			}
		goto out;
	}
	rc = castore_index_save(ca->index_path, &ca->idx);
	if (rc < 0) {
		log_error("%s: the CRL already revokes the certificate(s), but %s was not "
			  "updated; the next moat ca command records it", __func__,
			  ca->index_path);
		goto out;
	}
	*serials = xcalloc(count, sizeof(**serials));
	for (i = 0; i < ca->idx.n; i++)
		if (mark[i])
			memcpy((*serials)[(*n)++], ca->idx.e[i].serial, CA_SERIAL_HEX_MAX + 1);
out:
	free(mark);
	return rc;
}

int ca_export(const char *datadir, char **pem, size_t *len)
{
	char *path = xasprintf("%s/%s/ca.pem", datadir, CA_DIR_NAME);
	X509 *x = NULL;
	bool exists;
	int rc;

	*pem = NULL;
	*len = 0;
	rc = x509_file_exists(path, &exists);
	if (rc < 0)
		goto out;
	if (!exists) {
		log_error("%s: there is no client CA in %s/%s (%s is missing); create one "
			  "with: moat ca init", __func__, datadir, CA_DIR_NAME, path);
		rc = MOAT_ENOTFOUND;
		goto out;
	}
	rc = x509_load_cert(path, &x);
	if (rc == MOAT_ETLS)
		x509_error(__func__, "%s: not a PEM certificate; restore it from a backup",
			   path);
	if (rc < 0)
		goto out;
	rc = fs_read_file(path, X509_PEM_MAX, pem, len);
out:
	X509_free(x);
	free(path);
	return rc;
}
