/*
 * noresume.so - an LD_PRELOAD shim for wrk's TLS client (bench/README.md).
 *
 * wrk 4.1 makes one SSL object per connection slot and, on reconnect, calls
 * SSL_shutdown + SSL_clear on it and SSL_connect again. SSL_clear keeps the
 * session of a cleanly closed connection, so every reconnect after the first
 * resumes TLS 1.3 with the ticket the server sent: a "new connection per
 * request" run would measure resumptions, not full handshakes.
 *
 * Environment:
 *   NORESUME_DROP=1     forget the session before each handshake (full handshakes);
 *                       0 or unset: leave wrk's resumption alone, only count
 *   NORESUME_SNI=NAME   send NAME as SNI instead of the URL's host (wrk is
 *                       pointed at 127.0.0.1 and would send "127.0.0.1")
 *   NORESUME_OUT=FILE   at exit, write the handshake counts there:
 *                       "full N\nresumed N\ntls13 N\n"
 *
 * Every handshake is also held to TLS 1.3 (the client's minimum version).
 * Counting happens when SSL_connect returns 1, i.e. when the client's side of
 * the handshake completes; SSL_session_reused() then tells which kind it was.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

static atomic_ulong n_full, n_resumed, n_tls13;

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL) {
		fprintf(stderr, "noresume: cannot find %s: %s\n", name, dlerror());
		abort();
	}
	return f;
}

static int env_on(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && strcmp(v, "1") == 0;
}

long SSL_ctrl(SSL *s, int cmd, long larg, void *parg)
{
	static long (*real)(SSL *, int, long, void *);
	const char *sni = getenv("NORESUME_SNI");

	if (real == NULL)
		real = (long (*)(SSL *, int, long, void *))next("SSL_ctrl");
	if (cmd == SSL_CTRL_SET_TLSEXT_HOSTNAME && sni != NULL && sni[0] != '\0')
		parg = (void *)sni;
	return real(s, cmd, larg, parg);
}

int SSL_clear(SSL *s)
{
	static int (*real)(SSL *);
	int rc;

	if (real == NULL)
		real = (int (*)(SSL *))next("SSL_clear");
	rc = real(s);
	if (env_on("NORESUME_DROP"))
		SSL_set_session(s, NULL);
	return rc;
}

int SSL_connect(SSL *s)
{
	static int (*real)(SSL *);
	int rc;

	if (real == NULL)
		real = (int (*)(SSL *))next("SSL_connect");
	/* wrk calls SSL_connect again after each WANT_READ/WANT_WRITE; only the
	 * first call of a handshake may touch the session. */
	if (SSL_in_before(s)) {
		SSL_set_min_proto_version(s, TLS1_3_VERSION);
		if (env_on("NORESUME_DROP"))
			SSL_set_session(s, NULL);
	}
	rc = real(s);
	if (rc == 1) {
		if (SSL_session_reused(s))
			atomic_fetch_add(&n_resumed, 1);
		else
			atomic_fetch_add(&n_full, 1);
		if (SSL_version(s) == TLS1_3_VERSION)
			atomic_fetch_add(&n_tls13, 1);
	}
	return rc;
}

__attribute__((destructor)) static void write_counts(void)
{
	const char *path = getenv("NORESUME_OUT");
	FILE *f;

	if (path == NULL || path[0] == '\0')
		return;
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "full %lu\nresumed %lu\ntls13 %lu\n", atomic_load(&n_full),
		atomic_load(&n_resumed), atomic_load(&n_tls13));
	fclose(f);
}
