/*
 * cli_ca.c - `moat ca ...`: argument parsing and output for the client CA
 * (the work is in ca.c and p12.c). Results go to stdout, errors to stderr.
 * Exit codes: 0 done, 1 failed (logged), 2 usage error.
 */
#include "ca.h"
#include "cli.h"
#include "clidata.h"
#include "cliopt.h"
#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "p12.h"
#include "util.h"
#include "x509util.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

enum sub { S_NONE, S_INIT, S_ISSUE, S_LIST, S_REVOKE, S_EXPORT, S_HELP };

static const char *const sub_names[] = {
	[S_INIT] = "init", [S_ISSUE] = "issue", [S_LIST] = "list",
	[S_REVOKE] = "revoke", [S_EXPORT] = "export", [S_HELP] = "help",
};

#define ISSUE (1u << S_ISSUE)

struct opts {
	struct cliopt_args a; /* a.word: the positional NAME */
	const char *ca_name, *days, *p12, *password_file, *out, *serial;
	char *password;       /* --password: a copy, wiped by cliopt_free */
	bool legacy, force;
};

#define O(f) offsetof(struct opts, f)
static const struct cliopt options[] = {
	{"--name", NULL, CLIOPT_VALUE, 1u << S_INIT, O(ca_name)},
	{"--days", NULL, CLIOPT_VALUE, ISSUE, O(days)},
	{"--p12", NULL, CLIOPT_VALUE, ISSUE, O(p12)},
	{"--password", NULL, CLIOPT_SECRET, ISSUE, O(password)},
	{"--password-file", NULL, CLIOPT_VALUE, ISSUE, O(password_file)},
	{"--legacy", NULL, CLIOPT_FLAG, ISSUE, O(legacy)},
	{"--force", NULL, CLIOPT_FLAG, ISSUE, O(force)},
	{"--out", NULL, CLIOPT_VALUE, ISSUE, O(out)},
	{"--serial", NULL, CLIOPT_VALUE, 1u << S_REVOKE, O(serial)},
};

static const struct cliopt_cmd cmd = {
	.name = "ca",
	.subs = sub_names,
	.nsubs = sizeof(sub_names) / sizeof(sub_names[0]),
	.positional = ISSUE | (1u << S_REVOKE),
	.opts = options,
	.nopts = sizeof(options) / sizeof(options[0]),
};

static void usage(unsigned s, FILE *to)
{
	static const char *const text[] = {
		[S_NONE] =
		"usage: moat ca COMMAND [options]\n\n"
		"moat's client-certificate CA: devices holding one of its certificates can\n"
		"reach the sites that ask for one.\n\n"
		"commands:\n"
		"  init [--name NAME]         create the CA (once)\n"
		"  issue NAME [options]       issue a client certificate (and a .p12 bundle)\n"
		"  list                       every certificate issued, with its status\n"
		"  revoke NAME [--serial HEX] revoke NAME's certificates (takes effect at once)\n"
		"  export                     print the CA certificate (PEM)\n\n"
		"Every command takes -c FILE (use the data directory of that moat config) or\n"
		"--data DIR (default " CLIDATA_DEFAULT "), and --help. See docs/client-ca.md.\n",
		[S_INIT] =
		"usage: moat ca init [--name NAME] [-c FILE | --data DIR]\n\n"
		"Create the client CA in DATA/client-ca: an ECDSA P-256 key, a certificate\n"
		"valid for 10 years (CN=NAME, O=moat; default NAME: \"moat client CA (<host>)\",\n"
		"at most 64 characters), an empty CRL and an empty index. An existing CA is\n"
		"never replaced.\n",
		[S_ISSUE] =
		"usage: moat ca issue NAME [--days N] [--out DIR] [--force]\n"
		"                     [--p12 FILE [--password PW | --password-file F] [--legacy]]\n"
		"                     [-c FILE | --data DIR]\n\n"
		"Issue a client certificate with CN=NAME (1-64 characters of A-Z a-z 0-9 . _ @ -)\n"
		"valid for N days (1-3650, default 825). Writes NAME.pem and NAME.key to DIR\n"
		"(default DATA/client-ca/clients). NAME may hold one active certificate;\n"
		"--force issues another anyway.\n\n"
		"  --p12 FILE           also write a PKCS#12 bundle (certificate, key, CA) for\n"
		"                       phones and browsers: AES-256, PBKDF2-SHA256, MAC SHA-256\n"
		"  --password PW        its password (visible to other users in ps: prefer\n"
		"  --password-file F    the first line of F); default: a generated one, shown once\n"
		"  --legacy             3DES and SHA-1 instead, for older Android releases\n",
		[S_LIST] =
		"usage: moat ca list [-c FILE | --data DIR]\n\n"
		"Print every certificate issued: NAME, SERIAL, NOT-AFTER and STATUS\n"
		"(active, revoked or expired).\n",
		[S_REVOKE] =
		"usage: moat ca revoke NAME [--serial HEX] [-c FILE | --data DIR]\n\n"
		"Revoke every certificate of NAME that is not revoked yet, or only the one\n"
		"with serial HEX, and write a new CRL. A running moat applies it within a\n"
		"second.\n",
		[S_EXPORT] =
		"usage: moat ca export [-c FILE | --data DIR]\n\n"
		"Print the CA certificate (PEM) on stdout.\n",
	};

	fputs(text[s], to);
}

/* Options that do not apply to the subcommand, and combinations. */
static int check(const struct opts *o)
{
	unsigned sub = o->a.sub;
	int rc = cliopt_check(&cmd, &o->a, o);

	if (rc != 0)
		return rc;
	if ((sub == S_ISSUE || sub == S_REVOKE) && o->a.word == NULL)
		return cliopt_usage_error(&cmd, sub, "%s needs a NAME", sub_names[sub]);
	if (sub == S_ISSUE && o->p12 == NULL &&
	    (o->password != NULL || o->password_file != NULL || o->legacy))
		return cliopt_usage_error(&cmd, sub, "%s",
					  "--password, --password-file and --legacy need --p12 FILE");
	if (o->password != NULL && o->password_file != NULL)
		return cliopt_usage_error(&cmd, sub, "%s",
					  "give --password or --password-file, not both");
	if (o->password != NULL && o->password[0] == '\0')
		return cliopt_usage_error(&cmd, sub, "%s", "--password is empty");
	return 0;
}

static int do_init(const struct opts *o, const char *data)
{
	X509 *cert = NULL;
	char cn[4 * X509_CN_MAX + 1] = "", until[64];
	time_t na = 0;

	if (ca_init(data, o->ca_name, &cert) < 0)
		return 1;
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	if (x509_asn1_to_time(X509_get0_notAfter(cert), &na) < 0)
		na = 0;
	x509_format_time(na, until, sizeof(until));
	printf("created client CA \"%s\" in %s/%s, valid until %s\n"
	       "  certificate: %s/%s/ca.pem\n"
	       "  key:         %s/%s/ca.key (back it up; never share it)\n"
	       "next: moat ca issue NAME --p12 NAME.p12\n",
	       cn, data, CA_DIR_NAME, until, data, CA_DIR_NAME, data, CA_DIR_NAME);
	X509_free(cert);
	return 0;
}

static int parse_days(const struct opts *o, int *days)
{
	char *end;
	long v;

	*days = CA_CLIENT_DAYS;
	if (o->days == NULL)
		return 0;
	v = strtol(o->days, &end, 10);
	if (end == o->days || *end != '\0' || v < 1 || v > CA_CLIENT_DAYS_MAX)
		return cliopt_usage_error(&cmd, o->a.sub,
					  "--days \"%s\" is not a number of days from 1 to 3650",
					  o->days);
	*days = (int)v;
	return 0;
}

static int do_issue(const struct opts *o, const char *data, const char *password, int days)
{
	struct ca *ca = NULL;
	struct ca_issued res;
	char gen[P12_GEN_LEN + 1] = "", until[64];
	char *p12_dir = NULL;
	int rc = 1;

	memset(&res, 0, sizeof(res));
	if (ca_open(data, true, &ca) < 0)
		goto out;
	/* before anything is issued: a refused bundle path leaves no certificate */
	if (o->p12 != NULL) {
		p12_dir = fs_dirname(o->p12);
		if (ca_check_out_dir(ca, p12_dir) < 0)
			goto out;
		if (access(p12_dir, W_OK) != 0) {
			log_error("cannot write the bundle %s into %s: %s; nothing was issued",
				  o->p12, p12_dir, strerror(errno));
			goto out;
		}
	}
	if (ca_issue(ca, o->a.word, days, o->force, o->out, &res) < 0)
		goto out;
	x509_format_time(res.not_after, until, sizeof(until));
	printf("issued client certificate \"%s\": serial %s, valid until %s\n"
	       "  certificate: %s\n  key:         %s\n",
	       o->a.word, res.serial, until, res.cert_path, res.key_path);
	if (o->p12 != NULL) {
		if (password == NULL && p12_generate_password(gen, sizeof(gen)) < 0)
			goto out;
		if (p12_write(o->p12, res.key, res.cert, ca_cert(ca), o->a.word,
			      password != NULL ? password : gen,
			      o->legacy ? P12_LEGACY : P12_MODERN) < 0) {
			log_error("the certificate was issued, but the bundle was not written; "
				  "fix the above and issue again with --force (then revoke serial %s)",
				  res.serial);
			goto out;
		}
		printf("  bundle:      %s (PKCS#12, %s)\n", o->p12,
		       o->legacy ? "legacy 3DES/SHA-1" : "AES-256/SHA-256");
		if (password == NULL)
			printf("bundle password (shown only once, it is not stored anywhere): %s\n",
			       gen);
	}
	rc = 0;
out:
	fflush(stdout);
	free(p12_dir);
	OPENSSL_cleanse(gen, sizeof(gen));
	ca_issued_free(&res);
	ca_close(ca);
	return rc;
}

static int do_list(const char *data)
{
	struct ca *ca = NULL;
	struct ca_entry *e = NULL;
	static const char *const status[] = {
		[CA_ACTIVE] = "active", [CA_REVOKED] = "revoked", [CA_EXPIRED] = "expired",
	};
	char until[64];
	size_t n = 0, i, wname = 4, wserial = 6;

	if (ca_open(data, false, &ca) < 0)
		return 1;
	ca_list(ca, time(NULL), &e, &n);
	if (n == 0)
		printf("no client certificates were issued yet; issue one with: moat ca issue NAME\n");
	for (i = 0; i < n; i++) {
		if (strlen(e[i].name) > wname)
			wname = strlen(e[i].name);
		if (strlen(e[i].serial) > wserial)
			wserial = strlen(e[i].serial);
	}
	if (n > 0)
		printf("%-*s  %-*s  %-23s  %s\n", (int)wname, "NAME", (int)wserial, "SERIAL",
		       "NOT-AFTER", "STATUS");
	for (i = 0; i < n; i++) {
		x509_format_time(e[i].not_after, until, sizeof(until));
		printf("%-*s  %-*s  %-23s  %s\n", (int)wname, e[i].name, (int)wserial,
		       e[i].serial, until, status[e[i].status]);
	}
	free(e);
	ca_close(ca);
	return 0;
}

static int do_revoke(const struct opts *o, const char *data)
{
	struct ca *ca = NULL;
	char (*serials)[CA_SERIAL_HEX_MAX + 1] = NULL;
	size_t n = 0, i;
	int rc = 1;

	if (ca_open(data, true, &ca) < 0)
		goto out;
	if (ca_revoke(ca, o->a.word, o->serial, &serials, &n) < 0)
		goto out;
	for (i = 0; i < n; i++)
		printf("revoked \"%s\" serial %s\n", o->a.word, serials[i]);
	printf("wrote %s (CRL number %ld); a running moat applies it within a second\n",
	       ca_crl_path(ca), ca_crl_number(ca));
	rc = 0;
out:
	free(serials);
	ca_close(ca);
	return rc;
}

static int do_export(const char *data)
{
	char *pem = NULL;
	size_t len = 0;

	if (ca_export(data, &pem, &len) < 0)
		return 1;
	fwrite(pem, 1, len, stdout);
	free(pem);
	return 0;
}

/* Checks that need no CA: bad arguments are usage errors (2), not failures. */
static int check_values(const struct opts *o, int *days)
{
	if (o->a.word != NULL && ca_check_name(o->a.word) < 0)
		return 2;
	if (o->ca_name != NULL && ca_check_cn(o->ca_name) < 0)
		return 2;
	if (o->serial != NULL && ca_check_serial(o->serial) < 0)
		return 2;
	return parse_days(o, days);
}

int cli_ca(int argc, char **argv)
{
	struct opts o;
	char *data = NULL, *pwfile = NULL;
	int rc, days = CA_CLIENT_DAYS;

	memset(&o, 0, sizeof(o));
	rc = cliopt_parse(&cmd, argc, argv, &o.a, &o);
	if (rc == 0 && o.a.help) {
		usage(o.a.sub, stdout);
		goto out;
	}
	if (rc == 0 && o.a.sub == S_NONE) {
		usage(S_NONE, stderr);
		rc = 2;
	}
	if (rc == 0)
		rc = check(&o);
	if (rc == 0)
		rc = check_values(&o, &days);
	if (rc != 0)
		goto out;
	rc = 1;
	/* Before anything is issued: a bad password file must not leave a
	 * certificate behind. */
	if (o.password_file != NULL && p12_read_password_file(o.password_file, &pwfile) < 0)
		goto out;
	data = clidata_dir(o.a.config, o.a.data, conf_load_for_ca, NULL);
	if (data == NULL)
		goto out;
	switch (o.a.sub) {
	case S_INIT:
		rc = do_init(&o, data);
		break;
	case S_ISSUE:
		rc = do_issue(&o, data, pwfile != NULL ? pwfile : o.password, days);
		break;
	case S_LIST:
		rc = do_list(data);
		break;
	case S_REVOKE:
		rc = do_revoke(&o, data);
		break;
	default:
		rc = do_export(data);
		break;
	}
out:
	p12_password_free(pwfile);
	cliopt_free(&cmd, &o);
	free(data);
	return rc;
}
