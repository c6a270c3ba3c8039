/*
 * cli_ca.c - `moat ca ...`: argument parsing and output for the client CA
 * (the work is in ca.c and p12.c). Results go to stdout, errors to stderr.
 * Exit codes: 0 done, 1 failed (logged), 2 usage error.
 */
#include "ca.h"
#include "cli.h"
#include "clidata.h"
#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "p12.h"
#include "util.h"
#include "x509util.h"

#include <errno.h>
#include <stdarg.h>
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

/* Which subcommands an option applies to. */
#define ALL ((1u << S_INIT) | (1u << S_ISSUE) | (1u << S_LIST) | (1u << S_REVOKE) | \
	     (1u << S_EXPORT) | (1u << S_HELP) | (1u << S_NONE))
#define ISSUE (1u << S_ISSUE)

struct opts {
	enum sub sub;
	const char *name;     /* the positional NAME */
	const char *config, *data, *ca_name, *days, *p12, *password_file, *out, *serial;
	char *password;       /* --password, copied so the copy can be wiped */
	bool legacy, force, help;
};

struct opt {
	const char *name, *alt;
	bool arg;
	unsigned subs;
	size_t off;           /* of the const char * or bool in struct opts */
};

#define O(f) offsetof(struct opts, f)
static const struct opt options[] = {
	{"--config", "-c", true, ALL, O(config)},
	{"--data", NULL, true, ALL, O(data)},
	{"--help", "-h", false, ALL, O(help)},
	{"--name", NULL, true, 1u << S_INIT, O(ca_name)},
	{"--days", NULL, true, ISSUE, O(days)},
	{"--p12", NULL, true, ISSUE, O(p12)},
	{"--password", NULL, true, ISSUE, O(password)},
	{"--password-file", NULL, true, ISSUE, O(password_file)},
	{"--legacy", NULL, false, ISSUE, O(legacy)},
	{"--force", NULL, false, ISSUE, O(force)},
	{"--out", NULL, true, ISSUE, O(out)},
	{"--serial", NULL, true, 1u << S_REVOKE, O(serial)},
};

static void usage(enum sub s, FILE *to)
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

	fputs(text[s == S_HELP ? S_NONE : s], to);
}

static int usage_error(const struct opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const struct opts *o, const char *fmt, ...)
{
	const char *sub = o->sub != S_NONE && o->sub != S_HELP ? sub_names[o->sub] : NULL;
	va_list ap;

	fputs("moat ca: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; try \"moat ca%s%s --help\"\n", sub ? " " : "", sub ? sub : "");
	return 2;
}

static void set_option(struct opts *o, const struct opt *d, const char *value)
{
	char *p = (char *)o + d->off;

	if (!d->arg) {
		*(bool *)p = true;
	} else if (d->off == O(password)) {
		p12_password_free(o->password);
		o->password = xstrdup(value);
	} else {
		*(const char **)p = value;
	}
}

/* Options may come before or after the subcommand and NAME. */
static int parse(int argc, char **argv, struct opts *o)
{
	const struct opt *d;
	bool dashdash = false;
	int i;
	size_t k;

	for (i = 0; i < argc; i++) {
		char *a = argv[i], *eq, *value;
		size_t len;

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (dashdash || a[0] != '-' || a[1] == '\0') {
			if (o->sub == S_NONE || (o->sub == S_HELP && !o->help)) {
				/* "moat ca help issue" is "moat ca issue --help". */
				if (o->sub == S_HELP)
					o->help = true;
				o->sub = S_NONE;
				for (k = S_INIT; k <= S_HELP; k++)
					if (strcmp(a, sub_names[k]) == 0)
						o->sub = (enum sub)k;
				if (o->sub == S_NONE)
					return usage_error(o, "unknown command \"%s\"", a);
			} else if (o->name == NULL && (o->sub == S_ISSUE || o->sub == S_REVOKE)) {
				o->name = a;
			} else {
				return usage_error(o, "unexpected argument \"%s\"", a);
			}
			continue;
		}
		eq = strchr(a, '=');
		len = eq != NULL && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
		for (d = NULL, k = 0; k < sizeof(options) / sizeof(options[0]) && d == NULL; k++)
			if ((strlen(options[k].name) == len && strncmp(a, options[k].name, len) == 0) ||
			    (options[k].alt != NULL && strcmp(a, options[k].alt) == 0))
				d = &options[k];
		if (d == NULL)
			return usage_error(o, "unknown option \"%s\"", a);
		if (!d->arg && len != strlen(a))
			return usage_error(o, "%s takes no value", d->name);
		value = len != strlen(a) ? eq + 1 : NULL;
		if (d->arg && value == NULL) {
			if (i + 1 >= argc)
				return usage_error(o, "%s needs a value", d->name);
			value = argv[++i];
		}
		set_option(o, d, value);
		/* Shrink the window in which other users can read it in ps. */
		if (d->off == O(password))
			OPENSSL_cleanse(value, strlen(value));
	}
	return 0;
}

/* Options that do not apply to the subcommand, and combinations. */
static int check(const struct opts *o)
{
	size_t k;

	for (k = 0; k < sizeof(options) / sizeof(options[0]); k++) {
		const char *p = (const char *)o + options[k].off;
		bool given = options[k].arg ? *(const char *const *)p != NULL : *(const bool *)p;

		if (given && !(options[k].subs & (1u << o->sub)))
			return usage_error(o, "%s does not apply to this command", options[k].name);
	}
	if (o->config != NULL && o->data != NULL)
		return usage_error(o, "%s", "give -c FILE or --data DIR, not both");
	if ((o->sub == S_ISSUE || o->sub == S_REVOKE) && o->name == NULL)
		return usage_error(o, "%s needs a NAME", sub_names[o->sub]);
	if (o->sub == S_ISSUE && o->p12 == NULL &&
	    (o->password != NULL || o->password_file != NULL || o->legacy))
		return usage_error(o, "%s", "--password, --password-file and --legacy need --p12 FILE");
	if (o->password != NULL && o->password_file != NULL)
		return usage_error(o, "%s", "give --password or --password-file, not both");
	if (o->password != NULL && o->password[0] == '\0')
		return usage_error(o, "%s", "--password is empty");
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
		return usage_error(o, "--days \"%s\" is not a number of days from 1 to 3650",
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
	if (ca_issue(ca, o->name, days, o->force, o->out, &res) < 0)
		goto out;
	x509_format_time(res.not_after, until, sizeof(until));
	printf("issued client certificate \"%s\": serial %s, valid until %s\n"
	       "  certificate: %s\n  key:         %s\n",
	       o->name, res.serial, until, res.cert_path, res.key_path);
	if (o->p12 != NULL) {
		if (password == NULL && p12_generate_password(gen, sizeof(gen)) < 0)
			goto out;
		if (p12_write(o->p12, res.key, res.cert, ca_cert(ca), o->name,
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
	if (ca_revoke(ca, o->name, o->serial, &serials, &n) < 0)
		goto out;
	for (i = 0; i < n; i++)
		printf("revoked \"%s\" serial %s\n", o->name, serials[i]);
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
	if (o->name != NULL && ca_check_name(o->name) < 0)
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
	rc = parse(argc, argv, &o);
	if (rc == 0 && (o.help || o.sub == S_HELP)) {
		usage(o.sub, stdout);
		goto out;
	}
	if (rc == 0 && o.sub == S_NONE) {
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
	data = clidata_dir(o.config, o.data, conf_load_for_ca, NULL);
	if (data == NULL)
		goto out;
	switch (o.sub) {
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
	p12_password_free(o.password);
	free(data);
	return rc;
}
