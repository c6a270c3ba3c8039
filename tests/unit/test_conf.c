/*
 * test_conf.c - the configuration loader: the full example, defaults, every
 * kind of error with its exact file:line:col, several errors at once, ${VAR}
 * expansion, site lookup, the `moat check` table and the value parsers.
 * Each test gets its own mkdtemp directory (the config's directory), with
 * certs/files.pem and certs/files.key in it; removed in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "confprint.h"
#include "confval.h"
#include "fsutil.h"
#include "pathpat.h"
#include "util.h"

/* A valid sites section to append to configs that test something else. */
#define SITES "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static int setup(void **state)
{
	char *dir = xstrdup("/tmp/moat-test-conf-XXXXXX"), *certs;

	if (mkdtemp(dir) == NULL) {
		free(dir);
		return -1;
	}
	certs = xasprintf("%s/certs", dir);
	mkdir(certs, 0700);
	free(certs);
	write_file(dir, "certs/files.pem", "cert\n");
	write_file(dir, "certs/files.key", "key\n");
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char *dir = *state;

	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

/* Parse text as "moat.yaml" in dir; a failure prints the errors. */
static struct conf *parse_ok(const char *dir, const char *text)
{
	char *errs = NULL;
	struct conf *c = conf_parse("moat.yaml", dir, text, strlen(text), &errs);

	if (c == NULL)
		fail_msg("config failed to load:\n%s\n--- errors:\n%s", text, errs);
	assert_null(errs);
	return c;
}

/* Parse text that must fail; returns the error text (caller frees). */
static char *parse_err(const char *dir, const char *text)
{
	char *errs = NULL;
	struct conf *c = conf_parse("moat.yaml", dir, text, strlen(text), &errs);

	if (c != NULL) {
		conf_free(c);
		fail_msg("config loaded but should have failed:\n%s", text);
	}
	assert_non_null(errs);
	return errs;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void assert_has_prefix(const char *got, const char *want, const char *what)
{
	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("%s:\n  want prefix: %s\n  got:         %s", what, want, got);
}

static void assert_contains(const char *got, const char *want, const char *what)
{
	if (strstr(got, want) == NULL)
		fail_msg("%s:\n  want substring: %s\n  got: %s", what, want, got);
}

/* ---- the example from the issue ------------------------------------- */

static const char example[] =
	"data: ./moat-data\n"
	"listen:\n"
	"  http: \"127.0.0.1:8080\"\n"
	"  https: \"127.0.0.1:8443\"\n"
	"workers: 2\n"
	"access_log: stdout\n"
	"timeouts: { header: 10s, idle: 60s, connect: 5s, response: 60s, drain: 10s, "
	"upstream_idle: 30s }\n"
	"limits: { header_size: 32KiB, body_size: 0 }\n"
	"sites:\n"
	"  app.localhost:\n"
	"    to: http://127.0.0.1:9000\n"
	"    tls: internal\n"
	"    default: true\n"
	"    redirect: true\n"
	"    hsts: true\n"
	"  files.localhost:\n"
	"    to: [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002/\"]\n"
	"    tls: { cert: certs/files.pem, key: certs/files.key }\n"
	"    redirect: false\n"
	"    hsts: 180d\n";

static void test_example(void **state)
{
	const char *dir = *state;
	struct conf *c = parse_ok(dir, example);
	const struct conf_site *a, *f;
	char *want;

	assert_string_equal(c->file, "moat.yaml");
	want = xasprintf("%s/moat-data", dir);
	assert_string_equal(c->data, want);
	free(want);
	assert_int_equal(c->nhttp, 1);
	assert_string_equal(c->http[0].text, "127.0.0.1:8080");
	assert_int_equal(c->http[0].sa.ss_family, AF_INET);
	assert_int_equal(c->nhttps, 1);
	assert_string_equal(c->https[0].text, "127.0.0.1:8443");
	assert_int_equal(c->workers, 2);
	assert_string_equal(c->access_log, "stdout");
	assert_int_equal(c->t.header_ms, 10000);
	assert_int_equal(c->t.idle_ms, 60000);
	assert_int_equal(c->t.connect_ms, 5000);
	assert_int_equal(c->t.response_ms, 60000);
	assert_int_equal(c->t.drain_ms, 10000);
	assert_int_equal(c->t.upstream_idle_ms, 30000);
	assert_int_equal(c->max_header_bytes, 32 * 1024);
	assert_int_equal(c->max_body_bytes, 0);
	assert_int_equal(c->nsites, 2);

	a = &c->sites[0];
	assert_string_equal(a->host, "app.localhost");
	assert_int_equal(a->line, 10);
	assert_int_equal(a->col, 3);
	assert_int_equal(a->nup, 1);
	assert_string_equal(a->up[0].url, "http://127.0.0.1:9000");
	assert_string_equal(a->up[0].hostport, "127.0.0.1:9000");
	assert_string_equal(a->up[0].addr.text, "127.0.0.1:9000");
	assert_int_equal(a->tls, CONF_TLS_INTERNAL);
	assert_null(a->cert_file);
	assert_true(a->is_default);
	assert_true(a->redirect);
	assert_true(a->hsts);
	assert_int_equal(a->hsts_max_age, 31536000);
	assert_false(a->welcome);
	assert_ptr_equal(c->default_site, a);

	f = &c->sites[1];
	assert_string_equal(f->host, "files.localhost");
	assert_int_equal(f->nup, 2);
	assert_string_equal(f->up[0].url, "http://127.0.0.1:9001");
	assert_string_equal(f->up[1].url, "http://127.0.0.1:9002/");
	assert_string_equal(f->up[1].hostport, "127.0.0.1:9002");
	assert_int_equal(f->tls, CONF_TLS_FILES);
	want = xasprintf("%s/certs/files.pem", dir);
	assert_string_equal(f->cert_file, want);
	free(want);
	want = xasprintf("%s/certs/files.key", dir);
	assert_string_equal(f->key_file, want);
	free(want);
	assert_false(f->is_default);
	assert_false(f->redirect);
	assert_true(f->hsts);
	assert_int_equal(f->hsts_max_age, 180u * 86400u);
	conf_free(c);
}

static void test_defaults(void **state)
{
	struct conf *c = parse_ok(*state, SITES);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const struct conf_site *s;

	assert_string_equal(c->data, "/var/lib/moat");
	assert_int_equal(c->nhttp, 1);
	assert_string_equal(c->http[0].text, "[::]:80");
	assert_int_equal(c->nhttps, 1);
	assert_string_equal(c->https[0].text, "[::]:443");
	assert_int_equal(c->workers, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
	assert_string_equal(c->access_log, "stdout");
	assert_int_equal(c->t.header_ms, 10000);
	assert_int_equal(c->t.idle_ms, 60000);
	assert_int_equal(c->t.connect_ms, 5000);
	assert_int_equal(c->t.response_ms, 60000);
	assert_int_equal(c->t.drain_ms, 10000);
	assert_int_equal(c->t.upstream_idle_ms, 30000);
	assert_int_equal(c->max_header_bytes, 32768);
	assert_int_equal(c->max_body_bytes, 0);
	assert_null(c->default_site);
	s = &c->sites[0];
	assert_int_equal(s->tls, CONF_TLS_INTERNAL);
	assert_false(s->is_default);
	assert_true(s->redirect);
	assert_true(s->hsts);
	assert_int_equal(s->hsts_max_age, 31536000);
	conf_free(c);
}

/* ---- accepted values -------------------------------------------------- */

static void test_values(void **state)
{
	const char *dir = *state;
	struct conf *c;
	char *want;

	c = parse_ok(dir, "workers: auto\nlimits: { header_size: 1KiB, body_size: 10M }\n"
		     "timeouts: { header: 500ms, idle: 5m, connect: 1h, drain: 1d }\n"
		     "listen: { http: off, https: [\"127.0.0.1:8443\", \"[::1]:8443\"] }\n"
		     "access_log: logs/access.log\ndata: /srv/moat\n" SITES);
	assert_true(c->workers >= 1 && c->workers <= 256);
	assert_int_equal(c->max_header_bytes, 1024);
	assert_int_equal(c->max_body_bytes, 10 * 1024 * 1024);
	assert_int_equal(c->t.header_ms, 500);
	assert_int_equal(c->t.idle_ms, 300000);
	assert_int_equal(c->t.connect_ms, 3600000);
	assert_int_equal(c->t.drain_ms, 86400000);
	assert_int_equal(c->nhttp, 0);
	assert_int_equal(c->nhttps, 2);
	assert_string_equal(c->https[0].text, "127.0.0.1:8443");
	assert_string_equal(c->https[1].text, "[::1]:8443");
	assert_int_equal(c->https[1].sa.ss_family, AF_INET6);
	want = xasprintf("%s/logs/access.log", dir);
	assert_string_equal(c->access_log, want);
	free(want);
	assert_string_equal(c->data, "/srv/moat");
	conf_free(c);

	/* Site names are canonicalised; upstream hosts lowercased, port 80
	 * by default. */
	c = parse_ok(dir, "sites:\n"
		     "  App.Example.ORG.: { to: HTTP://LocalHost:8080/, hsts: false }\n"
		     "  \"*.home.example.org\": { to: \"http://127.0.0.1\", default: false, tls: internal }\n"
		     "  \"::1\": { to: \"http://[::1]:9000\" }\n"
		     "  127.0.0.1: { to: [\"http://127.0.0.1:1\"], redirect: false }\n");
	assert_int_equal(c->nsites, 4);
	assert_string_equal(c->sites[0].host, "app.example.org");
	assert_string_equal(c->sites[0].up[0].hostport, "localhost:8080");
	assert_false(c->sites[0].hsts);
	assert_int_equal(c->sites[0].hsts_max_age, 0);
	assert_string_equal(c->sites[1].host, "*.home.example.org");
	assert_string_equal(c->sites[1].up[0].hostport, "127.0.0.1:80");
	assert_string_equal(c->sites[1].up[0].addr.text, "127.0.0.1:80");
	assert_string_equal(c->sites[2].host, "[::1]");
	assert_string_equal(c->sites[2].up[0].hostport, "[::1]:9000");
	assert_string_equal(c->sites[2].up[0].addr.text, "[::1]:9000");
	assert_string_equal(c->sites[3].host, "127.0.0.1");
	assert_false(c->sites[3].redirect);
	/* tls: auto (the default): ACME for public names, the internal CA for
	 * addresses */
	assert_int_equal(c->sites[0].tls, CONF_TLS_ACME);
	assert_int_equal(c->sites[0].chal, CONF_CHAL_AUTO);
	assert_int_equal(c->sites[1].tls, CONF_TLS_INTERNAL);
	assert_int_equal(c->sites[2].tls, CONF_TLS_INTERNAL);
	assert_int_equal(c->sites[3].tls, CONF_TLS_INTERNAL);
	conf_free(c);

	/* A name resolves to one listener per distinct address. */
	c = parse_ok(dir, "listen: { https: \"localhost:8443\", http: \"localhost:8080\" }\n" SITES);
	assert_true(c->nhttps >= 1);
	assert_true(strcmp(c->https[0].text, "127.0.0.1:8443") == 0 ||
		    strcmp(c->https[0].text, "[::1]:8443") == 0);
	if (c->nhttps == 2)
		assert_string_not_equal(c->https[0].text, c->https[1].text);
	conf_free(c);
}

static void test_env(void **state)
{
	const char *dir = *state;
	struct conf *c;
	char *errs;

	setenv("MOAT_TEST_PORT", "9123", 1);
	setenv("MOAT_TEST_HOST", "Env.Localhost", 1);
	setenv("MOAT_TEST_WORKERS", "3", 1);
	unsetenv("MOAT_TEST_UNSET");
	c = parse_ok(dir, "workers: ${MOAT_TEST_WORKERS}\nsites:\n"
		     "  ${MOAT_TEST_HOST}:\n    to: \"http://127.0.0.1:${MOAT_TEST_PORT}\"\n");
	assert_int_equal(c->workers, 3);
	assert_string_equal(c->sites[0].host, "env.localhost");
	assert_string_equal(c->sites[0].up[0].url, "http://127.0.0.1:9123");
	assert_string_equal(c->sites[0].up[0].hostport, "127.0.0.1:9123");
	conf_free(c);

	errs = parse_err(dir, "data: /x/${MOAT_TEST_UNSET}/y\n" SITES);
	assert_string_equal(errs, "moat.yaml:1:7: environment variable \"MOAT_TEST_UNSET\" is "
			    "not set (used in \"/x/${MOAT_TEST_UNSET}/y\")\n");
	free(errs);
	unsetenv("MOAT_TEST_PORT");
	unsetenv("MOAT_TEST_HOST");
	unsetenv("MOAT_TEST_WORKERS");
}

/* ---- errors ----------------------------------------------------------- */

struct err_case {
	const char *name;
	const char *yaml;
	const char *want;  /* the whole output, or its prefix if `prefix` */
	bool prefix;
};

static const struct err_case err_cases[] = {
	{ "unknown site key",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    tsl: internal\n",
	  "moat.yaml:4:5: unknown key \"tsl\" in site \"app.localhost\"; valid keys: to, tls, "
	  "default, redirect, hsts, clients, client_ca, crl, public, limit, path_limits, ban\n", false },
	{ "clients value",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: yes\n",
	  "moat.yaml:4:14: \"yes\" is not valid for clients in site \"app.localhost\"; expected "
	  "off, optional or required\n", false },
	{ "public without clients",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    public: [\"GET /x\"]\n",
	  "moat.yaml:4:5: public in site \"app.localhost\" lists what needs no client certificate, "
	  "which only means something with clients: required\n", false },
	{ "client_ca without clients",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    client_ca: certs/files.pem\n",
	  "moat.yaml:4:5: client_ca in site \"app.localhost\" has no effect without clients: "
	  "required or optional; add one, or remove client_ca\n", false },
	{ "crl without clients",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    crl: certs/files.pem\n",
	  "moat.yaml:4:5: crl in site \"app.localhost\" has no effect without clients: required "
	  "or optional\n", false },
	{ "public with optional",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: optional\n"
	  "    client_ca: certs/files.pem\n    public: [\"GET /x\"]\n",
	  "moat.yaml:6:5: public in site \"app.localhost\" has no effect with clients: optional, "
	  "which denies nobody; use clients: required\n", false },
	{ "bad public entry",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: required\n"
	  "    client_ca: certs/files.pem\n    public:\n      - GET /share/**\n      - get /x\n",
	  "moat.yaml:8:9: public in site \"app.localhost\": \"get /x\": methods are "
	  "case-sensitive and \"get\" would never match a browser's request; write it in "
	  "capitals\n", false },
	{ "duplicate public entry",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: required\n"
	  "    client_ca: certs/files.pem\n    public: [\"GET /x\", \"GET  /x\"]\n",
	  "moat.yaml:6:24: public in site \"app.localhost\": \"GET  /x\" is listed twice\n", false },
	{ "public as a mapping",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: required\n"
	  "    client_ca: certs/files.pem\n    public: { a: b }\n",
	  "moat.yaml:6:13: public in site \"app.localhost\" must be a list of entries like", true },
	{ "missing client CA file",
	  "sites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n    clients: required\n"
	  "    client_ca: nope.pem\n",
	  "moat.yaml:5:16: cannot read client CA file \"", true },
	{ "missing moat client CA",
	  "data: nodata\nsites:\n  app.localhost:\n    to: http://127.0.0.1:9000\n"
	  "    clients: required\n",
	  "moat.yaml:5:14: site \"app.localhost\" accepts certificates from moat's client CA, "
	  "but cannot read client CA file \"", true },
	{ "unknown top-level key",
	  "listn: x\n" SITES,
	  "moat.yaml:1:1: unknown key \"listn\" at the top level; valid keys: data, listen, "
	  "workers, access_log, timeouts, limits, sites, trusted_proxies, never_ban, client_ip_header, acme, ddns\n", false },
	{ "unknown listen key",
	  "listen:\n  htps: \":443\"\n" SITES,
	  "moat.yaml:2:3: unknown key \"htps\" in listen; valid keys: http, https\n", false },
	{ "unknown timeouts key",
	  "timeouts: { read: 5s }\n" SITES,
	  "moat.yaml:1:13: unknown key \"read\" in timeouts; valid keys: header, idle, connect, "
	  "response, drain, upstream_idle, write, body\n", false },
	{ "unknown limits key",
	  "limits:\n  body: 1M\n" SITES,
	  "moat.yaml:2:3: unknown key \"body\" in limits; valid keys: header_size, body_size, min_body_rate, connections_per_client, connections, bans\n", false },
	{ "bad rate",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    limit: 20 per second\n",
	  "moat.yaml:4:12: \"20 per second\" is not a valid rate for limit in site \"a.localhost\"; expected a rate like \"20/s\", \"20/s burst 40\" or \"5/m\" (count per s, m, h or d, then optionally burst N), counts up to 1000000\n", false },
	{ "rate burst zero",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    limit: \"20/s burst 0\"\n",
	  "moat.yaml:4:12: \"20/s burst 0\" is not a valid rate for limit in site \"a.localhost\"; expected a rate like \"20/s\", \"20/s burst 40\" or \"5/m\" (count per s, m, h or d, then optionally burst N), counts up to 1000000\n", false },
	{ "path limit without limit",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    path_limits: [ { match: \"POST /up\" } ]\n",
	  "moat.yaml:4:20: each entry of path_limits in site \"a.localhost\" needs both match and limit, like { match: \"POST /api/upload/**\", limit: \"2/s\" }\n", false },
	{ "path limit bad pattern",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    path_limits: [ { match: \"post /up\", limit: 2/s } ]\n",
	  "moat.yaml:4:29: match: \"post /up\": methods are case-sensitive and \"post\" would never match a browser's request; write it in capitals\n", false },
	{ "ban without match",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    ban: [ { status: 401 } ]\n",
	  "moat.yaml:4:12: a ban rule of site \"a.localhost\" needs match: the requests to watch, like { match: \"POST /api/auth/login\", status: [401, 403], after: \"5 in 10m\", for: 1h }\n", false },
	{ "ban bad after",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    ban: [ { match: \"POST /login\", after: \"5 per 10m\" } ]\n",
	  "moat.yaml:4:43: \"5 per 10m\" is not a valid after; expected \"N in DURATION\" like \"5 in 10m\", N from 1 to 100 and the window from 1s to 3650d\n", false },
	{ "ban bad status",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    ban: [ { match: \"POST /login\", status: [401, 700] } ]\n",
	  "moat.yaml:4:50: \"700\" is not an HTTP status; expected a number from 100 to 599 like 401\n", false },
	{ "ban bad for",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    ban: [ { match: \"POST /login\", for: forever } ]\n",
	  "moat.yaml:4:41: \"forever\" is not a valid ban duration; expected 1s to 3650d, like \"1h\"\n", false },
	{ "ban unknown key",
	  "sites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n    ban: [ { match: \"POST /login\", fore: 1h } ]\n",
	  "moat.yaml:4:36: unknown key \"fore\" in a ban rule of site \"a.localhost\"; valid keys: match, status, after, for\n", false },
	{ "trusted host bits",
	  "trusted_proxies: [ 10.0.0.1/8 ]\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:1:20: \"10.0.0.1/8\" in trusted_proxies is not an address or prefix: host bits are set below the prefix length; write the network address (10.0.0.0/8, not 10.0.0.1/8)\n", false },
	{ "never_ban garbage",
	  "never_ban: [ \"home\" ]\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:1:14: \"home\" in never_ban is not an address or prefix: not an IP address or prefix; write one like 192.0.2.1, 10.0.0.0/8, 2001:db8::1 or 2001:db8::/32\n", false },
	{ "ip header without trusted",
	  "client_ip_header: forwarded\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:1:1: client_ip_header has no effect without trusted_proxies: moat believes the header only from the proxies listed there\n", false },
	{ "ip header unknown",
	  "trusted_proxies: [127.0.0.5]\nclient_ip_header: x-real-ip\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:2:19: \"x-real-ip\" is not a valid client_ip_header; expected x-forwarded-for or forwarded (the header your trusted proxy sets)\n", false },
	{ "proxy protocol without trusted",
	  "listen:\n  https: { address: \"127.0.0.1:8443\", proxy_protocol: true }\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:2:55: proxy_protocol: true needs trusted_proxies: moat takes a PROXY header only from the addresses listed there, so list your load balancer or relay, like trusted_proxies: [ 10.0.0.5 ]\n", false },
	{ "listener without address",
	  "trusted_proxies: [127.0.0.5]\nlisten:\n  https: [ { proxy_protocol: true } ]\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:3:12: a listener in listen.https needs address, like { address: \"127.0.0.1:8443\", proxy_protocol: true }\n", false },
	{ "connections zero",
	  "limits: { connections_per_client: 0 }\nsites:\n  a.localhost:\n    to: http://127.0.0.1:9000\n",
	  "moat.yaml:1:35: \"0\" is not a valid limits.connections_per_client; expected a whole number from 1 to 1000000\n", false },
	{ "unknown tls key",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", tls: { crt: x, cert: certs/files.pem, "
	  "key: certs/files.key } }\n",
	  "moat.yaml:2:43: unknown key \"crt\" in tls of site \"a.b\"; valid keys: cert, key, acme\n", false },
	{ "duplicate key",
	  "workers: 2\nworkers: 3\n" SITES,
	  "moat.yaml:2:1: duplicate key \"workers\" at the top level; it was already given at "
	  "line 1\n", false },
	{ "duplicate site key",
	  SITES "    to: http://127.0.0.1:9001\n",
	  "moat.yaml:4:5: duplicate key \"to\" in site \"app.localhost\"; it was already given "
	  "at line 3\n", false },
	{ "worker count",
	  "workers:  9x\n" SITES,
	  "moat.yaml:1:11: \"9x\" is not a valid worker count; expected an integer 1-256 or "
	  "\"auto\"\n", false },
	{ "zero workers",
	  "workers: 0\n" SITES,
	  "moat.yaml:1:10: \"0\" is not a valid worker count; expected an integer 1-256 or "
	  "\"auto\"\n", false },
	{ "too many workers",
	  "workers: 257\n" SITES,
	  "moat.yaml:1:10: \"257\" is not a valid worker count; expected an integer 1-256 or "
	  "\"auto\"\n", false },
	{ "workers as a list",
	  "workers: [1]\n" SITES,
	  "moat.yaml:1:10: workers must be a single value like 2 or \"auto\", not a list\n", false },
	{ "ftp upstream",
	  "sites:\n  app.localhost:\n    to:\n      - http://127.0.0.1:9000\n      - ftp://x\n",
	  "moat.yaml:5:9: upstream \"ftp://x\" must be an http:// URL like "
	  "\"http://127.0.0.1:9000\"\n", false },
	{ "https upstream",
	  "sites:\n  app.localhost: { to: \"https://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:24: upstream \"https://127.0.0.1:9000\": only http:// upstreams are "
	  "supported; moat terminates TLS and talks plain HTTP to the app, like "
	  "\"http://127.0.0.1:9000\"\n", false },
	{ "upstream path",
	  "sites:\n  app.localhost: { to: \"http://127.0.0.1:9000/api\" }\n",
	  "moat.yaml:2:24: upstream \"http://127.0.0.1:9000/api\" has the path \"/api\"; path "
	  "prefixes are not supported yet, use \"http://HOST:PORT\"\n", false },
	{ "upstream port",
	  "sites:\n  app.localhost: { to: \"http://127.0.0.1:70000\" }\n",
	  "moat.yaml:2:24: upstream \"http://127.0.0.1:70000\" has an invalid port; expected "
	  "1-65535, like \"http://127.0.0.1:9000\"\n", false },
	{ "upstream userinfo",
	  "sites:\n  app.localhost: { to: \"http://me@127.0.0.1:9000\" }\n",
	  "moat.yaml:2:24: upstream \"http://me@127.0.0.1:9000\" contains user information; only "
	  "\"http://HOST:PORT\" is supported\n", false },
	{ "upstream without scheme",
	  "sites:\n  app.localhost: { to: \"127.0.0.1:9000\" }\n",
	  "moat.yaml:2:24: upstream \"127.0.0.1:9000\" must be an http:// URL like "
	  "\"http://127.0.0.1:9000\"\n", false },
	{ "upstream host does not resolve",
	  "sites:\n  app.localhost: { to: \"http://no-such-host.invalid:9000\" }\n",
	  "moat.yaml:2:24: cannot resolve upstream host \"no-such-host.invalid\" in "
	  "\"http://no-such-host.invalid:9000\": ", true },
	{ "no upstream",
	  "sites:\n  app.localhost:\n    tls: internal\n",
	  "moat.yaml:2:3: site \"app.localhost\" has no upstream; add to: "
	  "http://127.0.0.1:9000\n", false },
	{ "empty site",
	  "sites:\n  app.localhost:\n",
	  "moat.yaml:2:3: site \"app.localhost\" has no upstream; add to: "
	  "http://127.0.0.1:9000\n", false },
	{ "empty upstream list",
	  "sites:\n  app.localhost: { to: [] }\n",
	  "moat.yaml:2:24: \"to\" in site \"app.localhost\" is an empty list; give at least one "
	  "upstream like \"http://127.0.0.1:9000\"\n", false },
	{ "site is not a mapping",
	  "sites:\n  app.localhost: http://127.0.0.1:9000\n",
	  "moat.yaml:2:18: site \"app.localhost\" must be a mapping like { to: "
	  "\"http://127.0.0.1:9000\" }, not \"http://127.0.0.1:9000\"\n", false },
	{ "no sites",
	  "workers: 2\n",
	  "moat.yaml:1:1: at least one site is required; add a \"sites:\" section like "
	  "\"sites: { app.example.org: { to: http://127.0.0.1:9000 } }\"\n", false },
	{ "empty sites",
	  "workers: 2\nsites: {}\n",
	  "moat.yaml:2:8: at least one site is required, like \"sites: { app.example.org: "
	  "{ to: http://127.0.0.1:9000 } }\"\n", false },
	{ "sites as a list",
	  "sites:\n  - app.localhost\n",
	  "moat.yaml:2:3: sites must be a mapping of host names to settings, like "
	  "\"app.example.org: { to: http://127.0.0.1:9000 }\", not a list\n", false },
	{ "empty file",
	  "# nothing\n",
	  "moat.yaml:1:1: the configuration is empty; at least one site is required, like "
	  "\"sites: { app.example.org: { to: http://127.0.0.1:9000 } }\"\n", false },
	{ "top level is a list",
	  "- a\n",
	  "moat.yaml:1:1: the configuration must be a mapping like \"sites: { app.example.org: "
	  "{ to: http://127.0.0.1:9000 } }\", not a list\n", false },
	{ "second document",
	  SITES "---\nworkers: 2\n",
	  "moat.yaml:4:1: a second YAML document; the configuration must be one document\n", false },
	{ "syntax error",
	  "sites:\n  app.localhost: { to: [\"http://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:49: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
	  "sequence at line 2)\n", false },
	{ "tab indentation",
	  "sites:\n\tapp.localhost: { to: \"http://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:1: invalid YAML: found character that cannot start any token (while "
	  "scanning for the next token at line 2); indent with spaces, not tabs\n", false },
	{ "invalid UTF-8",
	  "data: \"\xff\"\n" SITES,
	  "moat.yaml:1:8: invalid YAML: invalid leading UTF-8 octet (byte 0xFF)\n", false },
	{ "undefined alias",
	  "sites:\n  app.localhost: { to: *up }\n",
	  "moat.yaml:2:24: invalid YAML: found undefined alias\n", false },
	{ "bad site name",
	  "sites:\n  \"app/x\": { to: \"http://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:3: site name \"app/x\" contains '/'; a name may only contain letters, "
	  "digits, '-', '_' and dots\n", false },
	{ "misplaced wildcard",
	  "sites:\n  \"a.*.b\": { to: \"http://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:3: site name \"a.*.b\" has a \"*\" that is not the whole first label; a "
	  "wildcard looks like \"*.example.org\"\n", false },
	{ "empty label",
	  "sites:\n  a..b: { to: \"http://127.0.0.1:9000\" }\n",
	  "moat.yaml:2:3: site name \"a..b\" has an empty label; each dot-separated part must be "
	  "1-63 characters\n", false },
	{ "duplicate site",
	  SITES "  App.Localhost.:\n    to: http://127.0.0.1:9001\n",
	  "moat.yaml:4:3: duplicate site \"App.Localhost.\"; it was already declared at line 2 "
	  "(names are compared in lowercase, without a trailing dot)\n", false },
	{ "two default sites",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", default: true }\n"
	  "  c.d: { to: \"http://127.0.0.1:1\", default: true }\n",
	  "moat.yaml:3:45: site \"c.d\" is marked default, but so is the site at line 2; at most "
	  "one site may be default\n", false },
	{ "bad boolean",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", redirect: yes }\n",
	  "moat.yaml:2:46: \"yes\" is not valid for \"redirect\" in site \"a.b\"; expected true or "
	  "false\n", false },
	{ "bad hsts",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", hsts: always }\n",
	  "moat.yaml:2:42: \"always\" is not valid for hsts in site \"a.b\"; expected true, false "
	  "or a max-age duration like \"180d\"\n", false },
	{ "hsts below one second",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", hsts: 10ms }\n",
	  "moat.yaml:2:42: \"10ms\" is too short for hsts in site \"a.b\"; expected at least 1s\n", false },
	{ "bad tls",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", tls: letsencrypt }\n",
	  "moat.yaml:2:41: \"letsencrypt\" is not a valid tls setting for site \"a.b\"; expected "
	  "auto, internal, acme, { acme: dns } or { cert: FILE, key: FILE }\n", false },
	{ "wildcard without dns",
	  "sites:\n  \"*.home.example.org\": { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:2:3: site \"*.home.example.org\" needs a DNS-01 challenge (wildcard certificates can only be validated by DNS), but acme.dns is not set; add acme: { dns: { provider: duckdns, token: \"${DUCKDNS_TOKEN}\" } } (or rfc2136), or use tls: internal\n", false },
	{ "wildcard with http-01",
	  "acme: { dns: { provider: duckdns, token: t } }\nsites:\n  \"*.x.duckdns.org\": { to: \"http://127.0.0.1:1\", tls: { acme: http } }\n",
	  "moat.yaml:3:3: site \"*.x.duckdns.org\" is a wildcard; its certificate can only be validated by DNS-01: use tls: { acme: dns }\n", false },
	{ "duckdns for a name elsewhere",
	  "acme: { dns: { provider: duckdns, token: t } }\nsites:\n  \"*.home.example.org\": { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:3:3: site \"*.home.example.org\" would be validated through DuckDNS, but it is not a duckdns.org name; set acme.dns.domain to the DuckDNS subdomain its _acme-challenge name points to (CNAME)\n", false },
	{ "unknown challenge",
	  "sites:\n  a.example.org: { to: \"http://127.0.0.1:1\", tls: { acme: smoke } }\n",
	  "moat.yaml:2:59: \"smoke\" is not an ACME challenge for site \"a.example.org\"; expected auto, http, tls-alpn or dns\n", false },
	{ "acme and files",
	  "sites:\n  a.example.org: { to: \"http://127.0.0.1:1\", tls: { acme: http, cert: c.pem } }\n",
	  "moat.yaml:2:51: tls of site \"a.example.org\" has both acme and cert/key; choose one: { acme: dns } or { cert: FILE, key: FILE }\n", false },
	{ "acme on an address",
	  "sites:\n  127.0.0.1: { to: \"http://127.0.0.1:1\", tls: acme }\n",
	  "moat.yaml:2:3: site \"127.0.0.1\" is an IP address; ACME certificates here are for names only; use tls: internal\n", false },
	{ "unknown dns provider",
	  "acme: { dns: { provider: route53 } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:26: \"route53\" is not a DNS provider moat knows; expected duckdns or rfc2136\n", false },
	{ "duckdns without token",
	  "acme: { dns: { provider: duckdns } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:14: acme.dns with provider duckdns needs token: \"${DUCKDNS_TOKEN}\" (shown at the top of duckdns.org when signed in)\n", false },
	{ "rfc2136 key of duckdns",
	  "acme: { dns: { provider: rfc2136, server: \"127.0.0.1:53\", key_name: k, key_secret: \"c2VjcmV0c2VjcmV0c2VjcmV0\", token: t } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:112: acme.dns.token belongs to provider duckdns, not rfc2136\n", false },
	{ "rfc2136 without secret",
	  "acme: { dns: { provider: rfc2136, server: \"127.0.0.1:53\", key_name: k } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:14: acme.dns with provider rfc2136 needs server, key_name and key_secret; \"key_secret\" is missing\n", false },
	{ "rfc2136 bad secret",
	  "acme: { dns: { provider: rfc2136, server: \"127.0.0.1:53\", key_name: k, key_secret: \"c2Vj\" } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:84: acme.dns.key_secret must be the base64 secret of a TSIG key (at least 16 bytes), as printed by \"tsig-keygen -a hmac-sha256 moat\"\n", false },
	{ "rfc2136 bad server",
	  "acme: { dns: { provider: rfc2136, server: \"127.0.0.1:dns\", key_name: k, key_secret: \"c2VjcmV0c2VjcmV0c2VjcmV0\" } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:43: \"127.0.0.1:dns\" is not a usable address for acme.dns.server; expected \"HOST:PORT\" or \"[IPv6]:PORT\" of a DNS server, like \"127.0.0.1:53\"\n", false },
	{ "acme directory over http",
	  "acme: { directory: \"http://ca.example.org/dir\" }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:20: acme.directory \"http://ca.example.org/dir\": plain http is allowed only to a loopback address; use https://\n", false },
	{ "acme bad email",
	  "acme: { email: \"me at home\" }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:16: \"me at home\" is not an email address for acme.email; expected something like me@example.org\n", false },
	{ "acme renew_before too short",
	  "acme: { renew_before: 10s }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:23: \"10s\" is too short for acme.renew_before; expected at least 60s\n", false },
	{ "ddns empty domains",
	  "ddns: { duckdns: { domains: [], token: t } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:29: ddns.duckdns.domains has 0 entries; expected 1 to 32\n", false },
	{ "ddns bad domain",
	  "ddns: { duckdns: { domains: [ \"my home\" ], token: t } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:31: \"my home\" is not a DuckDNS subdomain; expected a label like \"example\" (for example.duckdns.org)\n", false },
	{ "ddns every zero",
	  "ddns: { duckdns: { domains: [ x ], token: t, every: 0s } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:53: \"0s\" is too short for ddns.duckdns.every; expected at least 1s\n", false },
	{ "ddns without token",
	  "ddns: { duckdns: { domains: [ x ] } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:18: ddns.duckdns needs token: \"${DUCKDNS_TOKEN}\"\n", false },
	{ "ddns url not loopback http",
	  "ddns: { duckdns: { domains: [ x ], token: t, url: \"http://duck.example.org/update\" } }\nsites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n",
	  "moat.yaml:1:51: ddns.duckdns.url \"http://duck.example.org/update\": plain http is allowed only to a loopback address; use https://\n", false },
	{ "tls without key",
	  "sites:\n  a.b: { to: \"http://127.0.0.1:1\", tls: { cert: certs/files.pem } }\n",
	  "moat.yaml:2:41: tls of site \"a.b\" needs both \"cert\" and \"key\"; \"key\" is "
	  "missing\n", false },
	{ "unreadable certificate",
	  "sites:\n  a.b:\n    to: \"http://127.0.0.1:1\"\n"
	  "    tls: { cert: certs/nope.pem, key: certs/files.key }\n",
	  "moat.yaml:4:18: cannot read certificate file \"", true },
	{ "bad duration",
	  "timeouts:\n  header: 10x\n" SITES,
	  "moat.yaml:2:11: \"10x\" is not a valid duration for timeouts.header; expected a whole "
	  "number with a unit ms, s, m, h or d, like \"10s\"\n", false },
	{ "duration without unit",
	  "timeouts:\n  idle: 60\n" SITES,
	  "moat.yaml:2:9: \"60\" is not a valid duration for timeouts.idle; expected a whole "
	  "number with a unit ms, s, m, h or d, like \"10s\"\n", false },
	{ "zero duration",
	  "timeouts:\n  drain: 0s\n" SITES,
	  "moat.yaml:2:10: \"0s\" is too short for timeouts.drain; expected at least 1ms\n", false },
	{ "duration over uint32 ms",
	  "timeouts:\n  connect: 50d\n" SITES,
	  "moat.yaml:2:12: \"50d\" is too long for timeouts.connect; the maximum is 4294967295ms "
	  "(about 49d)\n", false },
	{ "bad size",
	  "limits:\n  body_size: 10MB\n" SITES,
	  "moat.yaml:2:14: \"10MB\" is not a valid size for limits.body_size; expected a number of "
	  "bytes, optionally with K, KiB, M, MiB, G or GiB, like \"32KiB\"\n", false },
	{ "header size out of range",
	  "limits:\n  header_size: 65KiB\n" SITES,
	  "moat.yaml:2:16: limits.header_size \"65KiB\" is out of range; expected 1KiB to 64KiB\n", false },
	{ "bad listen address",
	  "listen:\n  https: \"8443\"\n" SITES,
	  "moat.yaml:2:10: \"8443\" is not a valid listen address; expected \"HOST:PORT\", "
	  "\":PORT\" or \"[IPv6]:PORT\", like \"127.0.0.1:8443\"\n", false },
	{ "listen port zero",
	  "listen:\n  https: \"127.0.0.1:0\"\n" SITES,
	  "moat.yaml:2:10: listen address \"127.0.0.1:0\" has port \"0\"; expected a port "
	  "1-65535\n", false },
	{ "unbracketed IPv6 listen",
	  "listen:\n  https: \"::1:8443\"\n" SITES,
	  "moat.yaml:2:10: listen address \"::1:8443\": an IPv6 address needs brackets, like "
	  "\"[::1]:8443\"\n", false },
	{ "listen address twice",
	  "listen:\n  https: [\"127.0.0.1:8443\", \"127.0.0.1:8443\"]\n" SITES,
	  "moat.yaml:2:29: listen address \"127.0.0.1:8443\" for https is already used for https "
	  "at line 2; each address and port can be used only once\n", false },
	{ "same address for http and https",
	  "listen:\n  http: \"127.0.0.1:8443\"\n  https: \"127.0.0.1:8443\"\n" SITES,
	  "moat.yaml:3:10: listen address \"127.0.0.1:8443\" for https is already used for http "
	  "at line 2; each address and port can be used only once\n", false },
	{ "listen overlaps a wildcard",
	  "listen:\n  http: [\":80\", \"127.0.0.1:80\"]\n" SITES,
	  "moat.yaml:2:17: listen address \"127.0.0.1:80\" for http overlaps \"[::]:80\" for "
	  "http at line 2, which includes it; each address and port can be used only once\n", false },
	{ "https off",
	  "listen:\n  https: \"off\"\n" SITES,
	  "moat.yaml:2:10: \"off\" is not a valid listen address; expected \"HOST:PORT\", "
	  "\":PORT\" or \"[IPv6]:PORT\", like \"127.0.0.1:8443\"\n", false },
	{ "empty listen list",
	  "listen:\n  http: []\n" SITES,
	  "moat.yaml:2:9: listen.http is an empty list; give at least one address, or write "
	  "http: off\n", false },
	{ "unset variable",
	  "access_log: ${MOAT_TEST_NOPE}\n" SITES,
	  "moat.yaml:1:13: environment variable \"MOAT_TEST_NOPE\" is not set (used in "
	  "\"${MOAT_TEST_NOPE}\")\n", false },
	{ "bad variable name",
	  "access_log: \"${1X}\"\n" SITES,
	  "moat.yaml:1:13: \"${1X}\" is not a valid variable reference; a name is letters, digits "
	  "and '_', like ${APP_PORT}\n", false },
	{ "unterminated variable",
	  "access_log: \"${HOME\"\n" SITES,
	  "moat.yaml:1:13: unterminated \"${\" in \"${HOME\"; a variable is written ${NAME}\n", false },
	{ "empty data",
	  "data: \"\"\n" SITES,
	  "moat.yaml:1:7: data must not be empty; expected a directory like \"/var/lib/moat\"\n", false },
	{ "timeouts not a mapping",
	  "timeouts: 10s\n" SITES,
	  "moat.yaml:1:11: timeouts must be a mapping like { header: 10s, idle: 60s }, not "
	  "\"10s\"\n", false },
};

static void test_errors(void **state)
{
	size_t i, failed = 0;

	unsetenv("MOAT_TEST_NOPE");
	/* Every case is checked and every mismatch printed before failing,
	 * so one run shows all the differences. */
	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *e = &err_cases[i];
		char *errs = parse_err(*state, e->yaml);
		bool ok;

		if (e->prefix)
			ok = strncmp(errs, e->want, strlen(e->want)) == 0;
		else
			ok = strcmp(errs, e->want) == 0;
		if (!ok || count_lines(errs) != 1) {
			print_error("case \"%s\":\n  want: %s%s  got:  %s", e->name, e->want,
				    e->prefix ? "...\n" : "", errs);
			failed++;
		}
		free(errs);
	}
	assert_int_equal(failed, 0);
}

/* Rules that differ only in status or for, and equal entries, never share
 * failure counters or budgets. */
static void test_rule_ids_distinct(void **state)
{
	const struct conf_site *s;
	struct conf *c = parse_ok(*state,
		"sites:\n"
		"  app.localhost:\n"
		"    to: http://127.0.0.1:9000\n"
		"    path_limits: [ { match: \"POST /x\", limit: 2/m }, { match: \"POST /x\", limit: 2/m } ]\n"
		"    ban:\n"
		"      - { match: POST /login, status: 401 }\n"
		"      - { match: POST /login, status: 429 }\n"
		"      - { match: POST /login, status: 429, for: 1d }\n");

	s = &c->sites[0];
	assert_true(s->limits[0].id != s->limits[1].id);
	assert_true(s->bans[0].id != s->bans[1].id);
	assert_true(s->bans[1].id != s->bans[2].id);
	conf_free(c);
}

/* The abuse-control keys land where the runtime reads them. */
static void test_abuse_values(void **state)
{
	const char *dir = *state;
	char text[NETADDR_TEXT];
	const struct conf_site *s;
	struct ipaddr a;
	struct conf *c;

	c = parse_ok(dir,
		"trusted_proxies: [ 127.0.0.5, \"10.0.0.0/8\" ]\n"
		"never_ban: [ 192.168.0.0/16 ]\n"
		"client_ip_header: Forwarded\n"
		"listen:\n"
		"  https: [ \"127.0.0.1:8443\", { address: \"127.0.0.1:9443\", proxy_protocol: true } ]\n"
		"limits: { connections_per_client: 16, connections: 1000, bans: 50, min_body_rate: 2KiB }\n"
		"timeouts: { write: 5s, body: 3s }\n"
		"sites:\n"
		"  app.localhost:\n"
		"    to: http://127.0.0.1:9000\n"
		"    limit: 20/s burst 40\n"
		"    path_limits: [ { match: \"POST /api/upload/**\", limit: 2/m } ]\n"
		"    ban:\n"
		"      - match: [ \"POST /api/auth/login\", \"POST /login\" ]\n"
		"        status: [401]\n"
		"        after: 3 in 2m\n"
		"        for: 2h\n"
		"      - match: POST /other\n");
	assert_int_equal(c->ntrusted, 2);
	assert_string_equal(cidr_format(&c->trusted[1], text, sizeof(text)), "10.0.0.0/8");
	assert_int_equal(c->nnever_ban, 1);
	assert_int_equal(ipaddr_parse("127.0.0.1", 9, &a), 0);
	assert_false(cidr_list_contains(c->never_ban, c->nnever_ban, &a)); /* replaced */
	assert_int_equal(c->ip_header, CLIENTIP_FORWARDED);
	assert_int_equal(c->nhttps, 2);
	assert_false(c->https[0].proxy_protocol);
	assert_true(c->https[1].proxy_protocol);
	assert_int_equal(c->conns_per_client, 16);
	assert_int_equal(c->conns_total, 1000);
	assert_int_equal(c->ban_table, 50);
	assert_int_equal(c->min_body_rate, 2048);
	assert_int_equal(c->t.write_ms, 5000);
	assert_int_equal(c->t.body_ms, 3000);
	s = &c->sites[0];
	assert_int_equal(s->nlimits, 2);
	assert_null(s->limits[0].match);
	assert_int_equal(s->limits[0].rate.count, 20);
	assert_int_equal(s->limits[0].rate.burst, 40);
	assert_string_equal(pathpat_text(s->limits[1].match), "POST /api/upload/**");
	assert_int_equal(s->limits[1].rate.period_ms, 60000);
	assert_true(s->limits[0].id != s->limits[1].id);
	assert_int_equal(s->nbans, 2);
	assert_int_equal(s->bans[0].nmatch, 2);
	assert_int_equal(s->bans[0].after, 3);
	assert_int_equal(s->bans[0].window_ms, 120000);
	assert_int_equal(s->bans[0].for_ms, 7200000);
	assert_true(s->bans[0].status[401 / 64] & (1ull << (401 % 64)));
	assert_false(s->bans[0].status[403 / 64] & (1ull << (403 % 64)));
	assert_string_equal(s->bans[0].text, "POST /api/auth/login, POST /login");
	/* the second rule's defaults: 401 and 403, 5 in 10m, for 1h */
	assert_true(s->bans[1].status[403 / 64] & (1ull << (403 % 64)));
	assert_int_equal(s->bans[1].after, 5);
	assert_int_equal(s->bans[1].window_ms, 600000);
	assert_int_equal(s->bans[1].for_ms, 3600000);
	conf_free(c);
	/* defaults: loopback never banned, 256 per client, 1 KiB/s bodies */
	c = parse_ok(dir, SITES);
	assert_int_equal(c->nnever_ban, 2);
	assert_true(cidr_list_contains(c->never_ban, c->nnever_ban, &a));
	assert_int_equal(ipaddr_parse("::1", 3, &a), 0);
	assert_true(cidr_list_contains(c->never_ban, c->nnever_ban, &a));
	assert_int_equal(c->ntrusted, 0);
	assert_int_equal(c->conns_per_client, 256);
	assert_int_equal(c->min_body_rate, 1024);
	assert_int_equal(c->t.write_ms, 30000);
	assert_int_equal(c->sites[0].nlimits, 0);
	conf_free(c);
}

/* The message for an unreadable file names the absolute path and errno. */
static void test_cert_error_text(void **state)
{
	const char *dir = *state;
	char *errs, *want;

	errs = parse_err(dir, "sites:\n  a.b:\n    to: \"http://127.0.0.1:1\"\n"
			 "    tls: { cert: certs/nope.pem, key: certs }\n");
	want = xasprintf("moat.yaml:4:18: cannot read certificate file \"%s/certs/nope.pem\": "
			 "No such file or directory\n"
			 "moat.yaml:4:39: key file \"%s/certs\" is not a regular file\n", dir, dir);
	assert_string_equal(errs, want);
	free(want);
	free(errs);
}

static void test_multiple_errors(void **state)
{
	char *errs;

	/* Reported sorted by position, though found in a different order
	 * (the listen overlap is only checked after the whole walk). */
	errs = parse_err(*state,
			 "workers: many\n"
			 "listen: { http: \":8443\", https: \":8443\" }\n"
			 "timeouts: { idle: forever }\n"
			 "sites:\n"
			 "  app.localhost:\n"
			 "    to: ftp://x\n"
			 "    tsl: internal\n"
			 "  other.localhost: { hsts: no }\n");
	assert_string_equal(errs,
		"moat.yaml:1:10: \"many\" is not a valid worker count; expected an integer 1-256 or "
		"\"auto\"\n"
		"moat.yaml:2:33: listen address \"[::]:8443\" for https is already used for http at "
		"line 2; each address and port can be used only once\n"
		"moat.yaml:3:19: \"forever\" is not a valid duration for timeouts.idle; expected a "
		"whole number with a unit ms, s, m, h or d, like \"10s\"\n"
		"moat.yaml:6:9: upstream \"ftp://x\" must be an http:// URL like "
		"\"http://127.0.0.1:9000\"\n"
		"moat.yaml:7:5: unknown key \"tsl\" in site \"app.localhost\"; valid keys: to, tls, "
		"default, redirect, hsts, clients, client_ca, crl, public, limit, path_limits, ban\n"
		"moat.yaml:8:3: site \"other.localhost\" has no upstream; add to: "
		"http://127.0.0.1:9000\n"
		"moat.yaml:8:28: \"no\" is not valid for hsts in site \"other.localhost\"; expected "
		"true, false or a max-age duration like \"180d\"\n");
	free(errs);
}

/* A file that is not a moat config at all must not produce megabytes. */
static void test_error_cap(void **state)
{
	char *text = xstrdup(""), *t, *errs;
	int i;

	for (i = 0; i < 150; i++) {
		t = xasprintf("%sk%d: 1\n", text, i);
		free(text);
		text = t;
	}
	errs = parse_err(*state, text);
	assert_int_equal(count_lines(errs), 101);
	assert_contains(errs, "moat.yaml: 51 more errors not shown\n", "error cap");
	free(errs);
	free(text);
}

/* "to" takes 1 to 64 upstreams. */
static void test_upstream_count(void **state)
{
	char *text = xstrdup("sites:\n  app.localhost:\n    to:\n"), *t, *errs;
	struct conf *c;
	int i;

	for (i = 0; i < 64; i++) {
		t = xasprintf("%s      - http://127.0.0.1:%d\n", text, 9000 + i);
		free(text);
		text = t;
	}
	c = parse_ok(*state, text);
	assert_int_equal(c->sites[0].nup, 64);
	assert_string_equal(c->sites[0].up[63].hostport, "127.0.0.1:9063");
	conf_free(c);
	t = xasprintf("%s      - http://127.0.0.1:1\n", text);
	free(text);
	text = t;
	errs = parse_err(*state, text);
	assert_string_equal(errs, "moat.yaml:4:7: site \"app.localhost\" has 65 upstreams; at most "
			    "64 are allowed\n");
	free(errs);
	free(text);
}

/* ---- files ------------------------------------------------------------ */

static void test_load(void **state)
{
	const char *dir = *state;
	char *path, *errs = NULL, *want;
	struct conf *c;

	write_file(dir, "moat.yaml", "data: ./state/\naccess_log: ../logs/a.log\n" SITES);
	path = xasprintf("%s/moat.yaml", dir);
	c = conf_load(path, &errs);
	if (c == NULL)
		fail_msg("conf_load: %s", errs);
	assert_null(errs);
	assert_string_equal(c->file, path);
	want = xasprintf("%s/state", dir);
	assert_string_equal(c->data, want);
	free(want);
	want = xasprintf("%s/../logs/a.log", dir);
	assert_string_equal(c->access_log, want);
	free(want);
	conf_free(c);
	free(path);

	write_file(dir, "bad.yaml", "workers: x\n" SITES);
	path = xasprintf("%s/bad.yaml", dir);
	assert_null(conf_load(path, &errs));
	want = xasprintf("%s:1:10: \"x\" is not a valid worker count; expected an integer 1-256 "
			 "or \"auto\"\n", path);
	assert_string_equal(errs, want);
	free(want);
	free(errs);
	free(path);

	path = xasprintf("%s/missing.yaml", dir);
	assert_null(conf_load(path, &errs));
	want = xasprintf("%s: cannot read the configuration: No such file or directory\n", path);
	assert_string_equal(errs, want);
	free(want);
	free(errs);
	free(path);
}

/* A relative directory is made absolute against the working directory. */
static void test_relative_dir(void **state)
{
	char *cwd = getcwd(NULL, 0), *want;
	struct conf *c = parse_ok(".", "data: ./d\n" SITES);

	want = xasprintf("%s/d", cwd);
	assert_string_equal(c->data, want);
	free(want);
	free(cwd);
	conf_free(c);
}

/* ---- lookup, demo, table ------------------------------------------------ */

/* The acme and ddns sections as moat uses them: paths absolute, names
 * canonical, the TSIG secret decoded, defaults where nothing was said. */
static void test_acme_values(void **state)
{
	const char *dir = *state;
	struct conf *c = parse_ok(dir,
		"acme:\n"
		"  email: me@example.org\n"
		"  directory: https://127.0.0.1:14000/dir\n"
		"  ca_roots: certs/files.pem\n"
		"  renew_before: 30d\n"
		"  dns: { provider: rfc2136, server: \"127.0.0.1:5353\", key_name: Moat,\n"
		"         key_secret: \"c2VjcmV0c2VjcmV0c2VjcmV0\", algorithm: HMAC-SHA512,\n"
		"         zone: Example.TEST, ttl: 30, propagation: 45s }\n"
		"ddns:\n"
		"  duckdns: { domains: [ example, Other.duckdns.org ], token: \"tok\", every: 1s }\n"
		"sites:\n"
		"  a.example.test: { to: \"http://127.0.0.1:1\", tls: acme }\n"
		"  b.example.test: { to: \"http://127.0.0.1:1\", tls: { acme: tls-alpn } }\n"
		"  \"*.w.example.org\": { to: \"http://127.0.0.1:1\" }\n"
		"  nas.lan: { to: \"http://127.0.0.1:1\" }\n"
		"  files.example.org: { to: \"http://127.0.0.1:1\", tls: { cert: certs/files.pem, key: certs/files.key } }\n");
	char *roots = xasprintf("%s/certs/files.pem", dir);

	assert_string_equal(c->acme.email, "me@example.org");
	assert_string_equal(c->acme.directory, "https://127.0.0.1:14000/dir");
	assert_string_equal(c->acme.ca_roots, roots);
	assert_int_equal(c->acme.renew_before_ms, 30ull * 86400 * 1000);
	assert_int_equal(c->acme.dns.provider, CONF_DNS_RFC2136);
	assert_string_equal(c->acme.dns.server.text, "127.0.0.1:5353");
	assert_string_equal(c->acme.dns.key_name, "moat.");
	assert_string_equal(c->acme.dns.zone, "example.test.");
	assert_int_equal(c->acme.dns.key_len, 18);
	assert_memory_equal(c->acme.dns.key, "secretsecretsecret", 18);
	assert_int_equal(c->acme.dns.alg, CONF_TSIG_SHA512);
	assert_int_equal(c->acme.dns.ttl, 30);
	assert_int_equal(c->acme.dns.propagation_ms, 45000);
	assert_int_equal(c->acme.dns.resolver.salen, 0);
	assert_true(c->ddns.on);
	assert_int_equal(c->ddns.ndomains, 2);
	assert_string_equal(c->ddns.domains[0], "example");
	assert_string_equal(c->ddns.domains[1], "other");
	assert_string_equal(c->ddns.token, "tok");
	assert_string_equal(c->ddns.url, "https://www.duckdns.org/update");
	assert_int_equal(c->ddns.every_ms, 1000);
	assert_int_equal(c->sites[0].tls, CONF_TLS_ACME);
	assert_int_equal(c->sites[0].chal, CONF_CHAL_AUTO);
	assert_int_equal(c->sites[1].chal, CONF_CHAL_TLSALPN);
	assert_int_equal(c->sites[2].tls, CONF_TLS_ACME);
	assert_int_equal(c->sites[3].tls, CONF_TLS_INTERNAL);
	assert_int_equal(c->sites[4].tls, CONF_TLS_FILES);
	free(roots);
	conf_free(c);

	/* without the sections: Let's Encrypt, no DNS provider, no ddns */
	c = parse_ok(dir, "sites:\n  a.localhost: { to: \"http://127.0.0.1:1\" }\n");
	assert_string_equal(c->acme.directory, "https://acme-v02.api.letsencrypt.org/directory");
	assert_null(c->acme.email);
	assert_int_equal(c->acme.dns.provider, CONF_DNS_NONE);
	assert_false(c->ddns.on);
	conf_free(c);
}

static void test_find_site(void **state)
{
	struct conf *c = parse_ok(*state,
		"sites:\n"
		"  app.example.org: { to: \"http://127.0.0.1:1\" }\n"
		"  \"*.example.org\": { to: \"http://127.0.0.1:2\", tls: internal }\n"
		"  fallback.example.net: { to: \"http://127.0.0.1:3\", default: true }\n");
	static const struct {
		const char *host;
		const char *want;
	} cases[] = {
		{ "app.example.org", "app.example.org" },
		{ "www.example.org", "*.example.org" },
		{ "a.b.example.org", "fallback.example.net" },  /* one label only */
		{ "example.org", "fallback.example.net" },
		{ "fallback.example.net", "fallback.example.net" },
		{ "localhost", "fallback.example.net" },
		{ NULL, "fallback.example.net" },
	};
	const struct conf_site *s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = conf_find_site(c, cases[i].host);
		assert_non_null(s);
		assert_string_equal(s->host, cases[i].want);
	}
	conf_free(c);

	c = parse_ok(*state, SITES);
	assert_null(conf_find_site(c, "other.localhost"));
	assert_string_equal(conf_find_site(c, "app.localhost")->host, "app.localhost");
	conf_free(c);
}

static void test_demo(void **state)
{
	struct conf *c = conf_demo("/tmp/moat-demo-data");
	const struct conf_site *s;
	size_t i;

	assert_string_equal(c->file, "(built-in demo)");
	assert_string_equal(c->data, "/tmp/moat-demo-data");
	assert_true(c->nhttps >= 1 && c->nhttps <= 2);
	assert_true(c->nhttp >= 1 && c->nhttp <= 2);
	for (i = 0; i < c->nhttps; i++)
		assert_true(strcmp(c->https[i].text, "127.0.0.1:8443") == 0 ||
			    strcmp(c->https[i].text, "[::1]:8443") == 0);
	for (i = 0; i < c->nhttp; i++)
		assert_true(strcmp(c->http[i].text, "127.0.0.1:8080") == 0 ||
			    strcmp(c->http[i].text, "[::1]:8080") == 0);
	assert_true(c->workers >= 1);
	assert_string_equal(c->access_log, "stdout");
	assert_int_equal(c->t.header_ms, 10000);
	assert_int_equal(c->max_header_bytes, 32768);
	assert_int_equal(c->nsites, 1);
	s = &c->sites[0];
	assert_string_equal(s->host, "localhost");
	assert_true(s->welcome);
	assert_true(s->is_default);
	assert_int_equal(s->tls, CONF_TLS_INTERNAL);
	assert_true(s->redirect);
	assert_true(s->hsts);
	assert_int_equal(s->nup, 0);
	assert_ptr_equal(c->default_site, s);
	assert_ptr_equal(conf_find_site(c, "anything.example"), s);
	conf_free(c);
	conf_free(NULL);
}

/* A tmpfile rather than open_memstream: GCC's -Wdangling-pointer
 * misreads the latter's pointer-to-local at -O2. */
static char *table_of(const struct conf *c)
{
	FILE *f = tmpfile();
	char *buf;
	long n;

	assert_non_null(f);
	confprint_table(c, f);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Column offset of word in the line starting at line. */
static long col_of(const char *line, const char *word)
{
	const char *end = strchr(line, '\n'), *p = strstr(line, word);

	if (p == NULL || (end != NULL && p > end))
		fail_msg("\"%s\" not found in line: %.*s", word,
			 (int)(end ? end - line : (long)strlen(line)), line);
	return p - line;
}

/* A client policy with moat's own CA, and with a CA file and CRL. */
static void test_access(void **state)
{
	const char *dir = *state;
	char *path, *errs, *want, *out;
	struct conf *c;

	path = xasprintf("%s/data/client-ca", dir);
	assert_int_equal(fs_mkdir_private(path), 0);
	free(path);
	write_file(dir, "data/client-ca/ca.pem", "ca\n");
	write_file(dir, "data/client-ca/crl.pem", "crl\n");
	c = parse_ok(dir, "data: data\nsites:\n  photos.localhost:\n"
		     "    to: http://127.0.0.1:9000\n    clients: required\n"
		     "    public:\n      - GET /share/**\n      - \"GET,HEAD /a/*/t\"\n"
		     "  open.localhost: { to: \"http://127.0.0.1:9001\" }\n"
		     "  files.localhost:\n    to: http://127.0.0.1:9002\n    clients: optional\n"
		     "    client_ca: certs/files.pem\n    crl: certs/files.key\n");
	assert_int_equal(c->sites[0].clients, CONF_CLIENTS_REQUIRED);
	assert_true(c->sites[0].client_ca_moat);
	want = xasprintf("%s/data/client-ca/ca.pem", dir);
	assert_string_equal(c->sites[0].client_ca, want);
	free(want);
	want = xasprintf("%s/data/client-ca/crl.pem", dir);
	assert_string_equal(c->sites[0].crl_file, want);
	free(want);
	assert_int_equal(c->sites[0].npub, 2);
	assert_string_equal(pathpat_text(c->sites[0].pub[1]), "GET,HEAD /a/*/t");
	assert_int_equal(c->sites[1].clients, CONF_CLIENTS_OFF);
	assert_null(c->sites[1].client_ca);
	assert_int_equal(c->sites[1].npub, 0);
	assert_int_equal(c->sites[2].clients, CONF_CLIENTS_OPTIONAL);
	assert_false(c->sites[2].client_ca_moat);
	want = xasprintf("%s/certs/files.key", dir);
	assert_string_equal(c->sites[2].crl_file, want);
	free(want);
	out = table_of(c);
	assert_contains(out, "photos.localhost  internal CA  http://127.0.0.1:9000  client "
			"certificate holders (2 public paths), https only (http redirects)\n",
			"required row");
	assert_contains(out, "anyone (client certificates optional), https only", "optional row");
	want = xasprintf("\nphotos.localhost: client certificates required, from moat's client "
			 "CA %s/data/client-ca/ca.pem, revocation list %s/data/client-ca/crl.pem\n"
			 "  public, no certificate needed:\n    GET /share/**\n    GET,HEAD /a/*/t\n"
			 "  certificate needed: every other method and path (otherwise 403)\n",
			 dir, dir);
	assert_contains(out, want, "required policy");
	free(want);
	assert_contains(out, "\nfiles.localhost: client certificates optional, from the CA in ",
			"optional policy");
	assert_null(strstr(out, "\nopen.localhost:"));
	free(out);
	conf_free(c);

	/* moat's CA has its own CRL: another one would be ignored */
	errs = parse_err(dir, "data: data\nsites:\n  photos.localhost:\n"
			 "    to: http://127.0.0.1:9000\n    clients: required\n"
			 "    crl: certs/files.pem\n");
	want = xasprintf("moat.yaml:6:5: crl in site \"photos.localhost\": moat's own client CA "
			 "keeps its revocation list in %s/data/client-ca/crl.pem (moat ca revoke); "
			 "crl is for client_ca: FILE\n", dir);
	assert_string_equal(errs, want);
	free(want);
	free(errs);

	/* the CA without its CRL is refused: revocations would be lost */
	path = xasprintf("%s/data/client-ca/crl.pem", dir);
	assert_int_equal(unlink(path), 0);
	free(path);
	errs = parse_err(dir, "data: data\nsites:\n  photos.localhost:\n"
			 "    to: http://127.0.0.1:9000\n    clients: required\n");
	assert_non_null(strstr(errs, "moat.yaml:5:14: site \"photos.localhost\": moat's client "
			       "CA has no readable revocation list: cannot read CRL file"));
	free(errs);
}

static void test_print_table(void **state)
{
	const char *dir = *state;
	struct conf *c = parse_ok(dir, example);
	char *out = table_of(c), *want;
	const char *head, *row1, *row2;

	assert_has_prefix(out, "listeners: https 127.0.0.1:8443; http 127.0.0.1:8080 "
			  "(redirects to https; plain http for files.localhost)\n"
			  "workers: 2   data: ", "listener lines");
	head = strstr(out, "SITE ");
	assert_non_null(head);
	row1 = strchr(head, '\n') + 1;
	row2 = strchr(row1, '\n') + 1;
	assert_has_prefix(row1, "app.localhost (default)  internal CA ", "row 1");
	assert_has_prefix(row2, "files.localhost ", "row 2");
	want = xasprintf("files: %s/certs/files.pem", dir);
	assert_contains(row2, want, "row 2 certificate");
	free(want);
	assert_contains(row1, "http://127.0.0.1:9000", "row 1 upstream");
	assert_contains(row1, "anyone, https only (http redirects)\n", "row 1 exposure");
	assert_contains(row2, "http://127.0.0.1:9001, http://127.0.0.1:9002/", "row 2 upstreams");
	assert_contains(row2, "anyone, https and plain http\n", "row 2 exposure");
	/* Columns line up. */
	assert_int_equal(col_of(head, "CERTIFICATE"), col_of(row1, "internal CA"));
	assert_int_equal(col_of(head, "CERTIFICATE"), col_of(row2, "files: "));
	assert_int_equal(col_of(head, "UPSTREAMS"), col_of(row1, "http://127.0.0.1:9000"));
	assert_int_equal(col_of(head, "UPSTREAMS"), col_of(row2, "http://127.0.0.1:9001"));
	assert_int_equal(col_of(head, "EXPOSED TO"), col_of(row1, "anyone"));
	assert_int_equal(col_of(head, "EXPOSED TO"), col_of(row2, "anyone"));
	free(out);
	conf_free(c);

	c = conf_demo("/tmp/moat-demo-data");
	out = table_of(c);
	assert_contains(out, "(redirects to https)\n", "demo listeners");
	assert_contains(out, "workers: ", "demo workers");
	assert_contains(out, "data: /tmp/moat-demo-data   access log: stdout\n", "demo data");
	assert_contains(out, "\nlocalhost (default)  internal CA  welcome page  "
			"anyone, https only (http redirects)\n", "demo row");
	free(out);
	conf_free(c);

	c = parse_ok(dir, "listen: { http: off }\n" SITES);
	out = table_of(c);
	assert_has_prefix(out, "listeners: https [::]:443; http off\n", "http off");
	assert_contains(out, "anyone, https only\n", "http off exposure");
	free(out);
	conf_free(c);
}

/* ---- value parsers ------------------------------------------------------ */

static void test_parsers(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t ms;
	} durations[] = {
		{ "500ms", 0, 500 }, { "10s", 0, 10000 }, { "5m", 0, 300000 },
		{ "2h", 0, 7200000 }, { "180d", 0, 15552000000ull }, { "0s", 0, 0 },
		{ "10", MOAT_EINVAL, 0 }, { "10S", MOAT_EINVAL, 0 }, { "1.5s", MOAT_EINVAL, 0 },
		{ "-1s", MOAT_EINVAL, 0 }, { " 1s", MOAT_EINVAL, 0 }, { "", MOAT_EINVAL, 0 },
		{ "99999999999999999999s", MOAT_ETOOBIG, 0 },
		{ "999999999999999999d", MOAT_ETOOBIG, 0 },
	};
	static const struct {
		const char *in;
		int rc;
		uint64_t bytes;
	} sizes[] = {
		{ "0", 0, 0 }, { "32768", 0, 32768 }, { "32K", 0, 32768 }, { "32KiB", 0, 32768 },
		{ "32k", 0, 32768 }, { "1M", 0, 1048576 }, { "1MiB", 0, 1048576 },
		{ "2G", 0, 2147483648ull }, { "2gib", 0, 2147483648ull },
		{ "1KB", MOAT_EINVAL, 0 }, { "K", MOAT_EINVAL, 0 }, { "1 K", MOAT_EINVAL, 0 },
		{ "99999999999G", MOAT_ETOOBIG, 0 },
	};
	static const struct {
		const char *in;
		const char *out; /* NULL: invalid */
	} names[] = {
		{ "app.localhost", "app.localhost" }, { "App.LocalHost.", "app.localhost" },
		{ "*.Example.org", "*.example.org" }, { "my_app-1.lan", "my_app-1.lan" },
		{ "127.0.0.1", "127.0.0.1" }, { "::1", "[::1]" }, { "[2001:DB8::1]", "[2001:db8::1]" },
		{ "localhost", "localhost" },
		{ "", NULL }, { ".", NULL }, { "a..b", NULL }, { ".a", NULL }, { "*", NULL },
		{ "*.", NULL }, { "a.*", NULL }, { "*a.b", NULL }, { "a b", NULL }, { "a:b", NULL },
		{ "ä.b", NULL }, { "a.b..", NULL },
	};
	size_t i;
	uint64_t v;
	bool b;

	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		v = 0;
		if (confval_duration(durations[i].in, &v) != durations[i].rc)
			fail_msg("duration \"%s\": want rc %d, got %d", durations[i].in,
				 durations[i].rc, confval_duration(durations[i].in, &v));
		if (durations[i].rc == 0)
			assert_int_equal(v, durations[i].ms);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		v = 0;
		if (confval_size(sizes[i].in, &v) != sizes[i].rc)
			fail_msg("size \"%s\": want rc %d, got %d", sizes[i].in, sizes[i].rc,
				 confval_size(sizes[i].in, &v));
		if (sizes[i].rc == 0)
			assert_int_equal(v, sizes[i].bytes);
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *out = NULL, *why = NULL;
		int rc = confval_site_name(names[i].in, &out, &why);

		if (names[i].out == NULL) {
			if (rc == 0)
				fail_msg("site name \"%s\": want an error, got \"%s\"", names[i].in, out);
			assert_non_null(why);
		} else {
			if (rc != 0)
				fail_msg("site name \"%s\": want \"%s\", got error %s", names[i].in,
					 names[i].out, why);
			assert_string_equal(out, names[i].out);
		}
		free(out);
		free(why);
	}
	assert_int_equal(confval_bool("true", &b), 0);
	assert_true(b);
	assert_int_equal(confval_bool("false", &b), 0);
	assert_false(b);
	assert_int_equal(confval_bool("yes", &b), MOAT_EINVAL);
	assert_int_equal(confval_uint("256", 256, &v), 0);
	assert_int_equal(v, 256);
	assert_int_equal(confval_uint("257", 256, &v), MOAT_ETOOBIG);
	assert_int_equal(confval_uint("2x", 256, &v), MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_error_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiple_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abuse_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_ids_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_site, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acme_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_table, setup, teardown),
		cmocka_unit_test(test_parsers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
