/*
 * cli_ban.c - `moat ban list | add ADDR | remove ADDR`: through the running
 * daemon's admin socket (admin.h), or, when no daemon runs on the data
 * directory, on <data>/bans.json under the data directory's lock
 * (banfile.h), with the same checks (banop.h).
 * Exit codes: 0 done, 1 failed, 2 usage error.
 */
#include "admincli.h"
#include "banfile.h"
#include "banop.h"
#include "cli.h"
#include "clidata.h"
#include "cliopt.h"
#include "conf.h"
#include "confval.h"
#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum sub { S_NONE, S_LIST, S_ADD, S_REMOVE, S_HELP };

static const char *const sub_names[] = {
	[S_LIST] = "list", [S_ADD] = "add", [S_REMOVE] = "remove", [S_HELP] = "help",
};

struct opts {
	struct cliopt_args a;    /* a.word: ADDR of add and remove */
	const char *dur, *reason;
	bool json;
	int64_t for_s;
};

static const struct cliopt options[] = {
	{"--for", NULL, CLIOPT_VALUE, 0, offsetof(struct opts, dur)},
	{"--reason", NULL, CLIOPT_VALUE, 0, offsetof(struct opts, reason)},
	{"--json", NULL, CLIOPT_FLAG, 0, offsetof(struct opts, json)},
};

static const struct cliopt_cmd cmd = {
	.name = "ban",
	.subs = sub_names,
	.nsubs = sizeof(sub_names) / sizeof(sub_names[0]),
	.positional = (1u << S_ADD) | (1u << S_REMOVE),
	.unknown_sub_hint = "; want list, add or remove",
	.opts = options,
	.nopts = sizeof(options) / sizeof(options[0]),
};

static void usage(unsigned s, FILE *to)
{
	static const char *const text[] = {
		[S_NONE] =
		"usage: moat ban COMMAND [options]\n\n"
		"Clients moat refuses at the door. Bans come from the sites' ban: rules and\n"
		"from this command; they persist in DATA/bans.json and expire on time.\n\n"
		"commands:\n"
		"  list                               the active bans\n"
		"  add ADDR [--for DUR] [--reason T]  ban a client (default for 1h)\n"
		"  remove ADDR                        lift a ban\n\n"
		"Every command takes -c FILE (the moat configuration; its data directory, and\n"
		"its never_ban and trusted_proxies) or --data DIR (default " CLIDATA_DEFAULT "),\n"
		"--json (print the answer as JSON) and --help.\n"
		"With a moat running on the data directory the change applies at once;\n"
		"otherwise bans.json is edited and the change applies when moat starts.\n",
		[S_LIST] =
		"usage: moat ban list [--json] [-c FILE | --data DIR]\n\n"
		"Print the active bans: ADDRESS (an IPv4 address or an IPv6 /64), UNTIL,\n"
		"REMAINING and REASON.\n",
		[S_ADD] =
		"usage: moat ban add ADDR [--for DUR] [--reason TEXT] [--json] [-c FILE | --data DIR]\n\n"
		"Ban ADDR (192.0.2.7, 2001:db8::7 or 2001:db8::/64; an IPv6 address bans its\n"
		"whole /64) for DUR (1s to 3650d, like the configuration's durations: 30m, 1h,\n"
		"7d; default 1h). A banned client's connections are closed and new ones are\n"
		"refused before the TLS handshake. Banning an address that is already banned\n"
		"replaces its ban.\n\n"
		"  --reason TEXT   shown by moat ban list (default \"" BANOP_REASON_DEFAULT "\";\n"
		"                  one line, at most 159 bytes)\n\n"
		"Addresses in never_ban (default 127.0.0.1 and ::1) and in trusted_proxies\n"
		"are refused: banning a proxy would shut out everyone behind it.\n",
		[S_REMOVE] =
		"usage: moat ban remove ADDR [--json] [-c FILE | --data DIR]\n\n"
		"Lift the ban on ADDR (as moat ban list prints it, or any address in the\n"
		"banned IPv6 /64).\n",
	};

	fputs(text[s], to);
}

/* Values judged without the daemon: a bad one is a usage error. */
static int check(struct opts *o)
{
	struct banop_exempt none = { 0 };
	struct ban b;
	uint64_t ms = (uint64_t)BANOP_FOR_DEFAULT * 1000;
	unsigned sub = o->a.sub;
	char *why = NULL;
	int rc = cliopt_check(&cmd, &o->a, o);

	if (rc != 0)
		return rc;
	if ((o->dur != NULL || o->reason != NULL) && sub != S_ADD)
		return cliopt_usage_error(&cmd, sub, "%s",
					  "--for and --reason apply to moat ban add only");
	if ((sub == S_ADD || sub == S_REMOVE) && o->a.word == NULL)
		return cliopt_usage_error(&cmd, sub, "%s needs an address (192.0.2.7, "
					  "2001:db8::7 or 2001:db8::/64)", sub_names[sub]);
	if (o->dur != NULL && (confval_duration(o->dur, &ms) < 0 || ms < 1000 ||
			       ms / 1000 > (uint64_t)BANOP_FOR_MAX))
		return cliopt_usage_error(&cmd, sub, "--for \"%s\" is not a duration from 1s to "
					  "3650d (like 30m, 1h, 7d)", o->dur);
	o->for_s = (int64_t)(ms / 1000);
	if (sub == S_ADD && banop_make(o->a.word, o->for_s, o->reason, 0, &none, &b, &why) < 0)
		goto bad;
	if (sub == S_REMOVE && banop_key(o->a.word, &b.key, &why) < 0)
		goto bad;
	return 0;
bad:
	cliopt_usage_error(&cmd, sub, "%s", why);
	free(why);
	return 2;
}

static json_t *request(const struct opts *o)
{
	json_t *req = json_object();

	json_object_set_new(req, "cmd", json_string(o->a.sub == S_LIST ? "ban-list" :
						    o->a.sub == S_ADD ? "ban-add" : "ban-remove"));
	if (o->a.word != NULL)
		json_object_set_new(req, "address", json_string(o->a.word));
	if (o->a.sub == S_ADD)
		json_object_set_new(req, "for", json_integer((json_int_t)o->for_s));
	if (o->reason != NULL)
		json_object_set_new(req, "reason", json_string(o->reason));
	return req;
}

/* ---- without a daemon ------------------------------------------------------ */

static size_t find(const struct ban *b, size_t n, const struct cidr *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i].key.bits == key->bits && ipaddr_equal(&b[i].key.a, &key->a))
			break;
	return i;
}

/* Apply o to b[0..*n) (room for one more); the answer the daemon would
 * give, or NULL after printing why. */
static json_t *edit(const struct opts *o, const struct conf *c, struct ban *b, size_t *n,
		    int64_t now)
{
	struct banop_exempt ex = banop_exempt_of(c);
	struct ban nb;
	char *why = NULL, text[NETADDR_TEXT];
	json_t *ans = json_pack("{s:b, s:b}", "ok", 1, "running", 0);
	size_t i;

	if (o->a.sub == S_LIST) {
		json_object_set_new(ans, "bans", banop_json_list(b, 0, *n, now));
	} else if (o->a.sub == S_ADD) {
		if (banop_make(o->a.word, o->for_s, o->reason, now, &ex, &nb, &why) < 0)
			goto fail;
		i = find(b, *n, &nb.key);
		if (i == *n)
			(*n)++;
		b[i] = nb;
		json_object_set_new(ans, "ban", banop_json(&nb, now));
	} else {
		banop_key(o->a.word, &nb.key, &why);
		cidr_format(&nb.key, text, sizeof(text));
		i = find(b, *n, &nb.key);
		if (i == *n) {
			why = xasprintf("%s is not banned", text);
			goto fail;
		}
		memmove(&b[i], &b[i + 1], (*n - i - 1) * sizeof(*b));
		(*n)--;
		json_object_set_new(ans, "address", json_string(text));
	}
	return ans;
fail:
	fprintf(stderr, "moat ban: %s\n", why);
	free(why);
	json_decref(ans);
	return NULL;
}

static int offline(const struct opts *o, const char *data, const struct conf *c, json_t **ans)
{
	struct ban *b = NULL;
	char *path = banfile_path(data), *why = NULL;
	int64_t now = time(NULL);
	size_t n = 0;
	int fd, rc = 1;

	fd = admincli_offline_lock("ban", data);
	if (fd == MOAT_ENOTFOUND)
		fprintf(stderr, "moat ban: %s does not exist; give moat's data directory with "
			"-c FILE or --data DIR\n", data);
	if (fd < 0)
		goto out;
	if (banfile_read(path, now, &b, &n, &why) < 0) {
		fprintf(stderr, "moat ban: %s\n", why);
		goto out;
	}
	b = xrealloc(b, (n + 1) * sizeof(*b));
	*ans = edit(o, c, b, &n, now);
	if (*ans == NULL)
		goto out;
	if (o->a.sub != S_LIST && banfile_write(path, b, n) < 0) {
		json_decref(*ans);
		*ans = NULL;
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(why);
	free(b);
	free(path);
	return rc;
}

/* ---- output ---------------------------------------------------------------- */

static void print_human(const struct opts *o, json_t *ans, const char *data)
{
	json_t *running = json_object_get(ans, "running");
	json_t *ban = json_object_get(ans, "ban"), *list = json_object_get(ans, "bans");
	bool offline = running != NULL && !json_is_true(running);
	char left[32];

	if (o->a.sub == S_LIST && offline)
		printf("no moat is running on %s; the bans in %s/%s:\n", data, data, BANFILE_NAME);
	if (o->a.sub == S_LIST && json_array_size(list) == 0)
		printf("no active bans\n");
	else if (o->a.sub == S_LIST)
		admincli_print_bans(stdout, list, "");
	if (o->a.sub == S_ADD)
		printf("banned %s for %s: %s\n",
		       json_string_value(json_object_get(ban, "address")),
		       admincli_duration(json_integer_value(json_object_get(ban, "remaining")),
					 left, sizeof(left)),
		       json_string_value(json_object_get(ban, "reason")));
	if (o->a.sub == S_REMOVE)
		printf("lifted the ban on %s\n", json_string_value(json_object_get(ans, "address")));
	if (o->a.sub != S_LIST && offline)
		printf("no moat is running on %s: the change is in %s/%s and applies when moat "
		       "starts\n", data, data, BANFILE_NAME);
}

static int run(const struct opts *o, const char *data, const struct conf *c)
{
	json_t *req = request(o), *ans = NULL;
	char *why = NULL, *s;
	int rc;

	rc = admincli_call(data, req, &ans, &why);
	json_decref(req);
	if (rc == MOAT_ENOTFOUND) {
		rc = offline(o, data, c, &ans);
		if (rc != 0)
			return rc;
	} else if (rc < 0) {
		fprintf(stderr, "moat ban: %s\n", why);
		free(why);
		return 1;
	}
	rc = json_is_true(json_object_get(ans, "ok")) ? 0 : 1;
	if (o->json) {
		s = json_dumps(ans, JSON_COMPACT);
		printf("%s\n", s != NULL ? s : "{}");
		free(s);
	} else if (rc != 0) {
		fprintf(stderr, "moat ban: %s\n",
			json_string_value(json_object_get(ans, "error")) != NULL ?
			json_string_value(json_object_get(ans, "error")) : "the moat refused");
	} else {
		print_human(o, ans, data);
	}
	json_decref(ans);
	return rc;
}

int cli_ban(int argc, char **argv)
{
	struct opts o;
	struct conf *c = NULL;
	char *data = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	rc = cliopt_parse(&cmd, argc, argv, &o.a, &o);
	if (rc == 0 && o.a.help) {
		usage(o.a.sub, stdout);
		return 0;
	}
	if (rc == 0 && o.a.sub == S_NONE) {
		usage(S_NONE, stderr);
		rc = 2;
	}
	if (rc == 0)
		rc = check(&o);
	if (rc != 0)
		return rc;
	data = clidata_dir(o.a.config, o.a.data, conf_load, &c);
	if (data == NULL)
		return 1;
	rc = run(&o, data, c);
	fflush(stdout);
	conf_free(c);
	free(data);
	return rc;
}
