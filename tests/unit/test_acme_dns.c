/*
 * test_acme_dns.c - DNS-01 providers.
 *
 * Three rigs: pure checks (which DuckDNS domain holds a name, bad names);
 * a scripted DNS server on a thread that misbehaves on purpose (answers
 * with the wrong ID, truncates, stays silent, signs with the wrong key);
 * and a real BIND named, authoritative for example.test with
 * allow-update for three TSIG keys (one per algorithm), started in the
 * foreground on a free port and checked independently with dig.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "acme_dns.h"
#include "dnsmsg.h"
#include "testfs.h"
#include "util.h"

#define VALUE "gfj9Xq...Rg85nM_challenge-value-of-43-chars"

/* ---- helpers ---- */

static void set_addr(struct conf_addr *a, int port, char *text, size_t cap)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

	memset(a, 0, sizeof(*a));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->salen = sizeof(*sin);
	snprintf(text, cap, "127.0.0.1:%d", port);
	a->text = text;
}

/* A port free for both UDP and TCP on 127.0.0.1 (at the time of asking). */
static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(u, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(u, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	if (bind(t, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		port = -1;
	close(u);
	close(t);
	return port;
}

static void assert_has(const char *s, const char *want)
{
	if (s == NULL || strstr(s, want) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", s ? s : "(null)", want);
}

static struct conf_dns rfc2136_conf(const struct conf_addr *server, const char *key_name,
				    enum conf_tsig_alg alg, unsigned char *key, size_t key_len)
{
	struct conf_dns d;

	memset(&d, 0, sizeof(d));
	d.provider = CONF_DNS_RFC2136;
	d.server = *server;
	d.key_name = (char *)key_name;
	d.alg = alg;
	d.key = key;
	d.key_len = key_len;
	d.ttl = 60;
	d.propagation_ms = 5000;
	d.settle_ms = 0;
	return d;
}

/* ---- pure checks ---- */

static void test_duckdns_domain(void **state)
{
	static const char *const ok[][2] = {
		{ "example.duckdns.org", "example" },
		{ "*.example.duckdns.org", "example" },
		{ "*.home.example.duckdns.org", "example" },
		{ "home.Example.DuckDNS.org.", "example" },
	};
	static const char *const bad[] = {
		"duckdns.org", "*.duckdns.org", "example.org", "example.duckdns.org.evil",
		"xduckdns.org", "a..duckdns.org", "*.", "",
	};
	struct conf_dns d = { .provider = CONF_DNS_DUCKDNS };
	char *dom = NULL, *err = NULL;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(acme_dns_duckdns_domain(&d, ok[i][0], &dom, &err), 0);
		assert_string_equal(dom, ok[i][1]);
		free(dom);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (acme_dns_duckdns_domain(&d, bad[i], &dom, &err) != MOAT_ECONFIG)
			fail_msg("\"%s\" gave a DuckDNS domain \"%s\"", bad[i], dom);
		assert_null(dom);
		assert_has(err, "acme.dns.domain");
		free(err);
		err = NULL;
	}
	/* acme.dns.domain wins over the name */
	d.domain = "mine";
	assert_int_equal(acme_dns_duckdns_domain(&d, "www.example.org", &dom, &err), 0);
	assert_string_equal(dom, "mine");
	free(dom);
}

static void test_bad_input(void **state)
{
	struct conf_dns d = { .provider = CONF_DNS_RFC2136 };
	char *err = NULL;

	assert_int_equal(acme_dns_set(&d, NULL, "a b.example.org", VALUE, NULL, &err), MOAT_EINVAL);
	assert_has(err, "a b.example.org");
	free(err);
	assert_int_equal(acme_dns_wait(&d, "*.*.example.org", VALUE, NULL, &err), MOAT_EINVAL);
	free(err);
	d.provider = CONF_DNS_NONE;
	assert_int_equal(acme_dns_set(&d, NULL, "example.org", VALUE, NULL, &err), MOAT_ECONFIG);
	assert_has(err, "acme.dns");
	free(err);
	/* duckdns without a domain for the name: refused before any request */
	d.provider = CONF_DNS_DUCKDNS;
	d.url = "http://127.0.0.1:1/update";
	d.token = "t";
	assert_int_equal(acme_dns_set(&d, NULL, "www.example.org", VALUE, NULL, &err),
			 MOAT_ECONFIG);
	assert_has(err, "set acme.dns.domain");
	free(err);
	/* duckdns with nowhere to look sleeps settle, and a stop cuts it short */
	{
		_Atomic bool stop = true;
		uint64_t t = moat_now_ms();

		d.settle_ms = 60000;
		assert_int_equal(acme_dns_wait(&d, "www.example.org", VALUE, &stop, &err), MOAT_EIO);
		assert_has(err, "stopped");
		free(err);
		assert_true(moat_now_ms() - t < 1000);
		d.settle_ms = 50;
		assert_int_equal(acme_dns_wait(&d, "www.example.org", VALUE, NULL, &err), 0);
	}
}

/* ---- a scripted server ---- */

enum fake_mode { FAKE_SILENT, FAKE_TRUNC, FAKE_UNSIGNED, FAKE_BADMAC, FAKE_GOODMAC };

struct fake {
	int udp, tcp, port;
	char text[32];
	struct conf_addr addr;
	enum fake_mode mode;
	struct dnsmsg_key key;
	_Atomic bool quit;
	_Atomic unsigned udp_seen, tcp_seen;
	pthread_t th;
};

static unsigned char fake_secret[32] = "fake secret of thirty-two bytes";

/* The answer to req: header and question copied, QR and AA set; a TXT
 * answer with VALUE for queries; TSIG per mode for updates. */
static size_t fake_answer(struct fake *f, const uint8_t *req, size_t n, uint8_t *out, bool full)
{
	const struct dnsmsg_key wrong = { f->key.name, f->key.alg, (const unsigned char *)"x", 1 };
	size_t q = 12, len, ml;
	uint8_t mac[DNSMSG_MAC_MAX];
	bool update = (req[2] >> 3 & 0xf) == 5;

	while (q < n && req[q] != 0)
		q += 1u + req[q];
	q += 5;
	memcpy(out, req, q);
	out[2] |= 0x84;
	out[3] = 0;
	memset(out + 6, 0, 6);
	len = q;
	if (!update && full) {
		out[7] = 1;
		memcpy(out + len, "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00", 11);
		out[len + 11] = (uint8_t)(strlen(VALUE) + 1);
		out[len + 12] = (uint8_t)strlen(VALUE);
		memcpy(out + len + 13, VALUE, strlen(VALUE));
		len += 13 + strlen(VALUE);
	}
	if (!update && !full)
		out[2] |= 0x02; /* TC */
	if (update && f->mode != FAKE_UNSIGNED) {
		ml = f->key.alg == CONF_TSIG_SHA512 ? 64 : f->key.alg == CONF_TSIG_SHA1 ? 20 : 32;
		assert_int_equal(dnsmsg_tsig_sign(out, 4096, &len,
						  f->mode == FAKE_BADMAC ? &wrong : &f->key,
						  (uint64_t)time(NULL), req + n - 6 - ml, ml, mac, &ml), 0);
	}
	return len;
}

static void fake_tcp(struct fake *f)
{
	uint8_t in[4096], out[4096 + 2];
	struct timeval tv = { 2, 0 };
	size_t len;
	ssize_t got = 0, k;
	int c = accept(f->tcp, NULL, NULL);

	if (c < 0)
		return;
	f->tcp_seen++;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < 2 || got < 2 + (in[0] << 8 | in[1])) {
		k = recv(c, in + got, sizeof(in) - (size_t)got, 0);
		if (k <= 0)
			goto out;
		got += k;
	}
	len = fake_answer(f, in + 2, (size_t)got - 2, out + 2, true);
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	if (send(c, out, len + 2, MSG_NOSIGNAL) < 0)
		goto out;
out:
	close(c);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[2] = { { f->udp, POLLIN, 0 }, { f->tcp, POLLIN, 0 } };
	struct sockaddr_storage from;
	socklen_t fl;
	uint8_t in[4096], out[4096];
	ssize_t n;
	size_t len;

	while (!f->quit) {
		if (poll(p, 2, 50) <= 0)
			continue;
		if (p[1].revents & POLLIN)
			fake_tcp(f);
		if (!(p[0].revents & POLLIN))
			continue;
		fl = sizeof(from);
		n = recvfrom(f->udp, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
		if (n < 12)
			continue;
		f->udp_seen++;
		if (f->mode == FAKE_SILENT)
			continue;
		if (f->mode == FAKE_TRUNC) {
			/* first a full answer to another ID, which must be dropped */
			len = fake_answer(f, in, (size_t)n, out, true);
			out[1] ^= 0xff;
			sendto(f->udp, out, len, 0, (struct sockaddr *)&from, fl);
		}
		len = fake_answer(f, in, (size_t)n, out, f->mode != FAKE_TRUNC);
		sendto(f->udp, out, len, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->udp = socket(AF_INET, SOCK_DGRAM, 0);
	f->tcp = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(f->udp, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(f->udp, (struct sockaddr *)&sin, &sl) < 0 ||
	    bind(f->tcp, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(f->tcp, 4) < 0)
		return -1;
	f->port = ntohs(sin.sin_port);
	set_addr(&f->addr, f->port, f->text, sizeof(f->text));
	f->key = (struct dnsmsg_key){ "moat.", CONF_TSIG_SHA256, fake_secret, sizeof(fake_secret) };
	if (pthread_create(&f->th, NULL, fake_main, f) != 0)
		return -1;
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;

	f->quit = true;
	pthread_join(f->th, NULL);
	close(f->udp);
	close(f->tcp);
	free(f);
	return 0;
}

/* A wrong-ID answer is dropped, a truncated one sends us to TCP. */
static void test_fake_truncated(void **state)
{
	struct fake *f = *state;
	struct conf_dns d = rfc2136_conf(&f->addr, "moat.", CONF_TSIG_SHA256, fake_secret, 32);
	char other[32], *err = NULL;

	f->udp_seen = f->tcp_seen = 0;
	f->mode = FAKE_TRUNC;
	d.resolver = f->addr;
	set_addr(&d.server, 9, other, sizeof(other)); /* the resolver is asked, not this */
	assert_int_equal(acme_dns_wait(&d, "*.x.example.test", VALUE, NULL, &err), 0);
	assert_null(err);
	assert_int_equal(f->udp_seen, 1);
	assert_int_equal(f->tcp_seen, 1);
	/* another value is never seen: the wait ends with a message */
	d.propagation_ms = 1200;
	assert_int_equal(acme_dns_wait(&d, "x.example.test", "other", NULL, &err), MOAT_EIO);
	assert_has(err, "_acme-challenge.x.example.test");
	assert_has(err, f->text);
	free(err);
}

/* Silence: resends after a second, then gives up naming record and server. */
static void test_fake_silent(void **state)
{
	struct fake *f = *state;
	struct conf_dns d = rfc2136_conf(&f->addr, "moat.", CONF_TSIG_SHA256, fake_secret, 32);
	uint64_t t = moat_now_ms();
	char *err = NULL;

	f->udp_seen = 0;
	f->mode = FAKE_SILENT;
	d.propagation_ms = 2500;
	assert_int_equal(acme_dns_wait(&d, "x.example.test", VALUE, NULL, &err), MOAT_EIO);
	assert_has(err, "_acme-challenge.x.example.test");
	assert_has(err, f->text);
	assert_has(err, "no answer");
	free(err);
	assert_true(f->udp_seen >= 2);
	assert_true(moat_now_ms() - t < 6000);
}

static void *stop_later(void *arg)
{
	usleep(300 * 1000);
	*(_Atomic bool *)arg = true;
	return NULL;
}

static void test_fake_stop(void **state)
{
	struct fake *f = *state;
	struct conf_dns d = rfc2136_conf(&f->addr, "moat.", CONF_TSIG_SHA256, fake_secret, 32);
	_Atomic bool stop = false;
	uint64_t t = moat_now_ms();
	pthread_t th;
	char *err = NULL;

	f->mode = FAKE_SILENT;
	d.propagation_ms = 60000;
	assert_int_equal(pthread_create(&th, NULL, stop_later, &stop), 0);
	assert_int_equal(acme_dns_wait(&d, "x.example.test", VALUE, &stop, &err), MOAT_EIO);
	pthread_join(th, NULL);
	assert_has(err, "stopped");
	free(err);
	assert_true(moat_now_ms() - t < 2000);
}

/* The answer to an UPDATE counts only when signed with our key over our MAC. */
static void test_fake_update_signature(void **state)
{
	struct fake *f = *state;
	struct conf_dns d = rfc2136_conf(&f->addr, "moat.", CONF_TSIG_SHA256, fake_secret, 32);
	char *err = NULL;

	d.zone = "example.test.";
	f->mode = FAKE_UNSIGNED;
	assert_int_equal(acme_dns_set(&d, NULL, "x.example.test", VALUE, NULL, &err), MOAT_EPROTO);
	assert_has(err, "not signed");
	free(err);
	f->mode = FAKE_BADMAC;
	assert_int_equal(acme_dns_clear(&d, NULL, "x.example.test", VALUE, NULL, &err),
			 MOAT_EPROTO);
	assert_has(err, "does not match");
	assert_has(err, f->text);
	free(err);
	f->mode = FAKE_GOODMAC;
	assert_int_equal(acme_dns_set(&d, NULL, "x.example.test", VALUE, NULL, &err), 0);
	assert_null(err);
	f->key.alg = d.alg = CONF_TSIG_SHA512;
	assert_int_equal(acme_dns_set(&d, NULL, "x.example.test", VALUE, NULL, &err), 0);
	f->key.alg = CONF_TSIG_SHA256;
}

static void test_refused(void **state)
{
	struct conf_addr a;
	char text[32], *err = NULL;
	struct conf_dns d;

	set_addr(&a, free_port(), text, sizeof(text));
	d = rfc2136_conf(&a, "moat.", CONF_TSIG_SHA256, fake_secret, 32);
	assert_int_equal(acme_dns_set(&d, NULL, "x.example.test", VALUE, NULL, &err), MOAT_EIO);
	assert_has(err, "connection refused");
	assert_has(err, text);
	free(err);
}

/* ---- a real named ---- */

static const char *const key_names[3] = { "moat", "moat512", "moat1" };
static const char *const key_fqdn[3] = { "moat.", "moat512.", "moat1." };
static const char *const alg_names[3] = { "hmac-sha256", "hmac-sha512", "hmac-sha1" };
static const enum conf_tsig_alg algs[3] = { CONF_TSIG_SHA256, CONF_TSIG_SHA512, CONF_TSIG_SHA1 };

static struct {
	pid_t pid;
	int port;
	char dir[64], text[32];
	struct conf_addr addr;
	unsigned char keys[3][32];
} ns = { .pid = -1 };

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* What cmd prints on stdout (at most cap - 1 bytes). */
static int run(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	if (p == NULL)
		return -1;
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	return pclose(p);
}

/* dig's +short answer for the TXT records at name: the independent view. */
static void dig_txt(const char *name, char *out, size_t cap)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "dig @127.0.0.1 -p %d +short +time=2 +tries=2 TXT %s",
		 ns.port, name);
	assert_int_equal(run(cmd, out, cap), 0);
}

static void named_stop(void)
{
	int st, i;

	if (ns.pid <= 0)
		return;
	kill(ns.pid, SIGTERM);
	for (i = 0; i < 50 && waitpid(ns.pid, &st, WNOHANG) == 0; i++)
		usleep(100 * 1000);
	if (i == 50) {
		kill(ns.pid, SIGKILL);
		waitpid(ns.pid, &st, 0);
	}
	ns.pid = -1;
}

static int named_try(void)
{
	char conf[4096], b64[3][64], cmd[160], out[256];
	size_t o;
	int i, st, fd;

	ns.port = free_port();
	if (ns.port < 0)
		return -1;
	o = (size_t)snprintf(conf, sizeof(conf),
		"options {\n directory \"%s\";\n pid-file \"%s/named.pid\";\n"
		" listen-on port %d { 127.0.0.1; };\n listen-on-v6 { none; };\n"
		" recursion no;\n dnssec-validation no;\n notify no;\n"
		" session-keyfile \"%s/session.key\";\n managed-keys-directory \"%s\";\n};\n"
		"controls { };\n", ns.dir, ns.dir, ns.port, ns.dir, ns.dir);
	for (i = 0; i < 3; i++) {
		EVP_EncodeBlock((unsigned char *)b64[i], ns.keys[i], 32);
		o += (size_t)snprintf(conf + o, sizeof(conf) - o,
				      "key \"%s\" { algorithm %s; secret \"%s\"; };\n",
				      key_names[i], alg_names[i], b64[i]);
	}
	snprintf(conf + o, sizeof(conf) - o, "zone \"example.test\" { type primary; file "
		 "\"%s/example.test.db\"; allow-update { key moat; key moat512; key moat1; }; };\n",
		 ns.dir);
	if (write_file(ns.dir, "named.conf", conf) < 0)
		return -1;
	set_addr(&ns.addr, ns.port, ns.text, sizeof(ns.text));
	snprintf(cmd, sizeof(cmd), "%s/named.conf", ns.dir);
	snprintf(conf, sizeof(conf), "%s/named.log", ns.dir);
	ns.pid = fork();
	if (ns.pid == 0) {
		/* dies with the test, whatever kills the test */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(conf, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execl("/usr/sbin/named", "named", "-g", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (ns.pid < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "dig @127.0.0.1 -p %d +short +time=1 +tries=1 SOA example.test",
		 ns.port);
	for (i = 0; i < 150; i++) {
		if (waitpid(ns.pid, &st, WNOHANG) == ns.pid) {
			ns.pid = -1;
			return -1;
		}
		if (run(cmd, out, sizeof(out)) == 0 && strncmp(out, "ns.example.test.", 16) == 0)
			return 0;
		usleep(100 * 1000);
	}
	named_stop();
	return -1;
}

static int named_setup(void **state)
{
	char log[4096];
	int i, k;

	strcpy(ns.dir, "/tmp/moat-named-XXXXXX");
	if (mkdtemp(ns.dir) == NULL)
		return -1;
	for (k = 0; k < 3; k++)
		for (i = 0; i < 32; i++)
			ns.keys[k][i] = (unsigned char)((k + 1) * 37 + i * 11);
	if (write_file(ns.dir, "example.test.db",
		       "$TTL 60\n@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60\n"
		       "@ IN NS ns.example.test.\nns IN A 127.0.0.1\nx IN A 127.0.0.1\n") < 0)
		return -1;
	atexit(named_stop);
	for (i = 0; i < 3; i++)
		if (named_try() == 0)
			return 0;
	snprintf(log, sizeof(log), "cat %s/named.log >&2", ns.dir);
	if (system(log) != 0)
		fprintf(stderr, "named did not start and left no log\n");
	return -1;
}

static int named_teardown(void **state)
{
	named_stop();
	testfs_rm_tree(ns.dir);
	return 0;
}

static struct conf_dns named_conf(int k)
{
	return rfc2136_conf(&ns.addr, key_fqdn[k], algs[k], ns.keys[k], 32);
}

/* rc is a call's result and err its message: read err only after the call. */
static void expect_ok(int rc, char **err, const char *what)
{
	if (rc != 0)
		fail_msg("%s: %s: %s", what, moat_strerror(rc), *err ? *err : "(no message)");
	assert_null(*err);
}

/* set -> wait sees it -> dig sees it -> clear -> dig does not -> wait fails */
static void roundtrip(int k, char *zone, const char *ident, const char *value)
{
	struct conf_dns d = named_conf(k);
	const char *base = strncmp(ident, "*.", 2) == 0 ? ident + 2 : ident;
	char out[1024], want[128], rec[256], *err = NULL;

	d.zone = zone;
	snprintf(rec, sizeof(rec), "_acme-challenge.%s", base);
	snprintf(want, sizeof(want), "\"%s\"", value);
	expect_ok(acme_dns_set(&d, NULL, ident, value, NULL, &err), &err, "set");
	expect_ok(acme_dns_wait(&d, ident, value, NULL, &err), &err, "wait");
	dig_txt(rec, out, sizeof(out));
	assert_has(out, want);
	expect_ok(acme_dns_clear(&d, NULL, ident, value, NULL, &err), &err, "clear");
	dig_txt(rec, out, sizeof(out));
	if (strstr(out, want) != NULL)
		fail_msg("%s still holds %s after clear: %s", rec, want, out);
	d.propagation_ms = 1500;
	assert_int_equal(acme_dns_wait(&d, ident, value, NULL, &err), MOAT_EIO);
	assert_has(err, rec);
	assert_has(err, ns.text);
	free(err);
}

static void test_named_sha256(void **state)
{
	roundtrip(0, NULL, "x.example.test", "sha256-value-found-the-zone-by-soa-queries");
}

static void test_named_sha512(void **state)
{
	roundtrip(1, "example.test.", "*.y.example.test", "sha512-value-for-a-wildcard");
}

static void test_named_sha1(void **state)
{
	roundtrip(2, NULL, "z.example.test", "sha1-value");
}

/* A wildcard and its base name hold their two values at once. */
static void test_named_wildcard_and_base(void **state)
{
	struct conf_dns d = named_conf(0);
	char out[1024], *err = NULL;

	expect_ok(acme_dns_set(&d, NULL, "*.w.example.test", "value-wild", NULL, &err), &err, "set");
	expect_ok(acme_dns_set(&d, NULL, "w.example.test", "value-base", NULL, &err), &err, "set");
	dig_txt("_acme-challenge.w.example.test", out, sizeof(out));
	assert_has(out, "\"value-wild\"");
	assert_has(out, "\"value-base\"");
	expect_ok(acme_dns_clear(&d, NULL, "*.w.example.test", "value-wild", NULL, &err), &err,
		  "clear");
	dig_txt("_acme-challenge.w.example.test", out, sizeof(out));
	assert_null(strstr(out, "value-wild"));
	assert_has(out, "\"value-base\"");
	expect_ok(acme_dns_clear(&d, NULL, "w.example.test", "value-base", NULL, &err), &err, "clear");
	dig_txt("_acme-challenge.w.example.test", out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_named_refusals(void **state)
{
	struct conf_dns d = named_conf(0);
	char out[256], *err = NULL;

	/* key moat with another key's secret */
	d.key = ns.keys[1];
	assert_int_equal(acme_dns_set(&d, NULL, "v.example.test", "never", NULL, &err), MOAT_EPROTO);
	assert_has(err, "NOTAUTH");
	assert_has(err, "BADSIG");
	assert_has(err, ns.text);
	free(err);
	dig_txt("_acme-challenge.v.example.test", out, sizeof(out));
	assert_string_equal(out, "");
	/* a key named nowhere in named.conf */
	d = named_conf(0);
	d.key_name = "nosuch.";
	assert_int_equal(acme_dns_set(&d, NULL, "v.example.test", "never", NULL, &err), MOAT_EPROTO);
	assert_has(err, "BADKEY");
	free(err);
	/* a name in no zone the server has */
	d = named_conf(0);
	assert_int_equal(acme_dns_set(&d, NULL, "x.other.test", "never", NULL, &err), MOAT_EPROTO);
	assert_has(err, "acme.dns.zone");
	free(err);
}

static int run_named_tests(void)
{
	const struct CMUnitTest named[] = {
		cmocka_unit_test(test_named_sha256),
		cmocka_unit_test(test_named_sha512),
		cmocka_unit_test(test_named_sha1),
		cmocka_unit_test(test_named_wildcard_and_base),
		cmocka_unit_test(test_named_refusals),
	};

	return cmocka_run_group_tests_name("named", named, named_setup, named_teardown);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_duckdns_domain),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_refused),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_fake_truncated),
		cmocka_unit_test(test_fake_silent),
		cmocka_unit_test(test_fake_stop),
		cmocka_unit_test(test_fake_update_signature),
	};
	int rc = 0;

	rc |= cmocka_run_group_tests_name("pure", pure, NULL, NULL);
	rc |= cmocka_run_group_tests_name("fake", fake, fake_setup, fake_teardown);
	rc |= run_named_tests();
	return rc;
}
