/*
 * cli_status.c - `moat status`: what the running daemon is refusing and to
 * whom (bans, rate-limited clients, open connections, denials), asked over
 * the admin socket (admin.h). With no daemon on the data directory it says
 * so, shows the bans waiting in bans.json, and exits 3.
 * Exit codes: 0 running, 1 failed, 2 usage error, 3 not running.
 */
#include "admincli.h"
#include "banfile.h"
#include "banop.h"
#include "castore.h"
#include "cli.h"
#include "clidata.h"
#include "cliopt.h"
#include "conf.h"
#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_NOT_RUNNING 3
#define OFFLINE_BANS_MAX 50 /* as the daemon's status: the newest */

struct opts {
	struct cliopt_args a;
	bool json;
};

static const struct cliopt options[] = {
	{"--json", NULL, CLIOPT_FLAG, 0, offsetof(struct opts, json)},
};

/* No subcommands and no positional. */
static const struct cliopt_cmd cmd = {
	.name = "status",
	.opts = options,
	.nopts = sizeof(options) / sizeof(options[0]),
};

static void usage(FILE *to)
{
	fputs("usage: moat status [--json] [-c FILE | --data DIR]\n\n"
	      "Ask the moat running on the data directory (of the configuration FILE, or\n"
	      "DIR; default " CLIDATA_DEFAULT ") what it is refusing and to whom: open\n"
	      "connections (per worker, and the clients with the most), active bans (the\n"
	      "newest 50; moat ban list shows all), clients refused by a rate limit in\n"
	      "the last 10 minutes, and denials since start by reason (rate, ban,\n"
	      "conn-cap, timeout).\n\n"
	      "  --json   print the moat's answer as JSON\n\n"
	      "Exit status: 0 moat is running, 1 error, 2 usage error, 3 no moat is running\n"
	      "on the data directory (the bans waiting in its bans.json are shown).\n", to);
}

/* ---- a running moat ---------------------------------------------------------- */

static int64_t int_of(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

static void print_conns(json_t *c)
{
	json_t *w = json_object_get(c, "workers"), *top = json_object_get(c, "top"), *e;
	size_t i;

	printf("connections: %lld open", (long long)int_of(c, "total"));
	if (json_array_size(w) > 0) {
		printf(" (per worker:");
		json_array_foreach(w, i, e)
			printf(" %lld", (long long)json_integer_value(e));
		printf(")");
	}
	printf("\n");
	if (json_array_size(top) > 0)
		printf("  %-39s  %s\n", "CLIENT", "OPEN");
	json_array_foreach(top, i, e)
		printf("  %-39s  %lld\n", json_string_value(json_object_get(e, "address")),
		       (long long)int_of(e, "open"));
}

static void print_bans(json_t *b)
{
	json_t *list = json_object_get(b, "list");
	int64_t count = int_of(b, "count");

	printf("bans: %lld active", (long long)count);
	if (int_of(b, "evicted") > 0)
		printf(" (%lld evicted from the full table since start)",
		       (long long)int_of(b, "evicted"));
	printf("\n");
	if (json_array_size(list) > 0)
		admincli_print_bans(stdout, list, "  ");
	if ((size_t)count > json_array_size(list))
		printf("  (the newest %zu; moat ban list shows all)\n", json_array_size(list));
}

static void print_limited(json_t *l)
{
	char ago[32];
	json_t *e;
	size_t i;

	if (json_array_size(l) == 0) {
		printf("rate-limited clients in the last 10 minutes: none\n");
		return;
	}
	printf("rate-limited clients in the last 10 minutes:\n");
	printf("  %-39s  %-8s  %s\n", "CLIENT", "REFUSED", "LAST");
	json_array_foreach(l, i, e)
		printf("  %-39s  %-8lld  %s ago\n", json_string_value(json_object_get(e, "address")),
		       (long long)int_of(e, "refused"),
		       admincli_duration(int_of(e, "last_ago"), ago, sizeof(ago)));
}

static const char *str_of(json_t *o, const char *k, const char *none)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v != NULL ? v : none;
}

/* One line per site's certificate; ACME ones with their schedule, and a
 * warning when fewer than 7 days remain. */
static void print_certs(json_t *list)
{
	json_t *e;
	size_t i;

	if (json_array_size(list) == 0)
		return;
	printf("certificates:\n");
	printf("  %-28s  %-8s  %-20s  %-20s  %s\n", "NAME", "SOURCE", "NOT AFTER", "NEXT RENEWAL",
	       "STATE");
	json_array_foreach(list, i, e) {
		printf("  %-28s  %-8s  %-20s  %-20s  %s%s\n", str_of(e, "site", "?"),
		       str_of(e, "source", "?"), str_of(e, "not_after", "-"),
		       str_of(e, "next_renewal", "-"), str_of(e, "state", "valid"),
		       json_is_true(json_object_get(e, "placeholder")) ?
		       " (serving an internal-CA certificate until then)" : "");
		printf("      issuer %s", str_of(e, "issuer", "-"));
		if (json_is_string(json_object_get(e, "challenge")))
			printf(", challenge %s", str_of(e, "challenge", ""));
		printf("\n");
		if (json_is_true(json_object_get(e, "expiring_soon")))
			printf("      WARNING: expires in %lld days\n", (long long)int_of(e, "days_left"));
		if (json_is_string(json_object_get(e, "last_error")))
			printf("      last error: %s%s%s\n", str_of(e, "last_error", ""),
			       json_is_string(json_object_get(e, "next_attempt")) ? "; next attempt " : "",
			       str_of(e, "next_attempt", ""));
	}
}

static void print_ddns(json_t *d)
{
	json_t *doms = json_object_get(d, "domains"), *v;
	size_t i;

	char when[40] = "never";

	if (!json_is_true(json_object_get(d, "on")))
		return;
	printf("dynamic DNS (DuckDNS):");
	json_array_foreach(doms, i, v)
		printf(" %s", json_string_value(v) != NULL ? json_string_value(v) : "?");
	if (json_is_integer(json_object_get(d, "last_success")))
		castore_iso8601((time_t)int_of(d, "last_success"), when, sizeof(when));
	printf("; last success %s", when);
	if (str_of(d, "ipv4", "")[0] != '\0')
		printf(", address %s", str_of(d, "ipv4", ""));
	if (json_is_string(json_object_get(d, "last_error")))
		printf("; last error: %s", str_of(d, "last_error", ""));
	printf("\n");
}

static void print_running(json_t *ans, const char *data)
{
	json_t *den = json_object_get(ans, "denials"), *v;
	const char *k, *sep = "";
	char up[32];

	printf("moat is running on %s: pid %lld, up %s\n\n", data, (long long)int_of(ans, "pid"),
	       admincli_duration(int_of(ans, "uptime"), up, sizeof(up)));
	print_conns(json_object_get(ans, "connections"));
	print_bans(json_object_get(ans, "bans"));
	print_limited(json_object_get(ans, "limited"));
	print_certs(json_object_get(ans, "certificates"));
	print_ddns(json_object_get(ans, "ddns"));
	printf("denials since start:");
	json_object_foreach(den, k, v) {
		printf("%s %s %lld", sep, k, (long long)json_integer_value(v));
		sep = ",";
	}
	printf("\n");
}

/* ---- no moat running --------------------------------------------------------- */

/* The answer a daemon would give about its bans, from the file. */
static json_t *offline_answer(const char *data, int *rc)
{
	struct ban *b = NULL;
	char *path = banfile_path(data), *why = NULL;
	int64_t now = time(NULL);
	size_t n = 0;
	json_t *ans = NULL;
	int fd;

	*rc = 1;
	fd = admincli_offline_lock("status", data);
	if (fd == MOAT_ENOTFOUND) {
		*rc = EXIT_NOT_RUNNING;
		ans = json_pack("{s:b, s:b, s:s, s:s}", "ok", 1, "running", 0, "data", data,
				"note", "the data directory does not exist");
		goto out;
	}
	if (fd < 0)
		goto out;
	if (banfile_read(path, now, &b, &n, &why) < 0) {
		fprintf(stderr, "moat status: no moat is running on %s, and %s\n", data, why);
		goto out;
	}
	*rc = EXIT_NOT_RUNNING;
	ans = json_pack("{s:b, s:b, s:s, s:{s:I, s:o}}", "ok", 1, "running", 0, "data", data,
			"bans", "count", (json_int_t)n, "list",
			banop_json_list(b, n > OFFLINE_BANS_MAX ? n - OFFLINE_BANS_MAX : 0, n, now));
out:
	if (fd >= 0)
		close(fd);
	free(why);
	free(b);
	free(path);
	return ans;
}

static void print_offline(json_t *ans, const char *data)
{
	json_t *bans = json_object_get(ans, "bans"), *list = json_object_get(bans, "list");
	int64_t count = int_of(bans, "count");

	printf("no moat is running on %s", data);
	if (json_object_get(ans, "note") != NULL)
		printf(" (%s)", json_string_value(json_object_get(ans, "note")));
	printf("\n");
	if (bans == NULL)
		return;
	if (count == 0) {
		printf("no bans waiting in %s/%s\n", data, BANFILE_NAME);
		return;
	}
	printf("bans waiting in %s/%s (applied when moat starts): %lld\n", data, BANFILE_NAME,
	       (long long)count);
	if (json_array_size(list) > 0)
		admincli_print_bans(stdout, list, "  ");
	if ((size_t)count > json_array_size(list))
		printf("  (the newest %zu; moat ban list shows all)\n", json_array_size(list));
}

static int run(const struct opts *o, const char *data)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *ans = NULL;
	const char *err;
	char *why = NULL, *s;
	int rc;

	rc = admincli_call(data, req, &ans, &why);
	json_decref(req);
	if (rc == MOAT_ENOTFOUND) {
		ans = offline_answer(data, &rc);
	} else if (rc < 0) {
		fprintf(stderr, "moat status: %s\n", why);
		free(why);
		return 1;
	} else if (!json_is_true(json_object_get(ans, "ok"))) {
		err = json_string_value(json_object_get(ans, "error"));
		fprintf(stderr, "moat status: %s\n", err != NULL ? err : "the moat refused");
		rc = 1;
	}
	if (ans != NULL && o->json) {
		s = json_dumps(ans, JSON_COMPACT);
		printf("%s\n", s != NULL ? s : "{}");
		free(s);
	} else if (ans != NULL && rc == 0) {
		print_running(ans, data);
	} else if (ans != NULL && rc == EXIT_NOT_RUNNING) {
		print_offline(ans, data);
	}
	json_decref(ans);
	return rc;
}

int cli_status(int argc, char **argv)
{
	struct opts o;
	char *data;
	int rc;

	memset(&o, 0, sizeof(o));
	rc = cliopt_parse(&cmd, argc, argv, &o.a, &o);
	/* -c with --data is refused even with --help */
	if (rc == 0)
		rc = cliopt_check(&cmd, &o.a, &o);
	if (rc == 0 && o.a.help) {
		usage(stdout);
		return 0;
	}
	if (rc != 0)
		return rc;
	data = clidata_dir(o.a.config, o.a.data, conf_load, NULL);
	if (data == NULL)
		return 1;
	rc = run(&o, data);
	fflush(stdout);
	free(data);
	return rc;
}
