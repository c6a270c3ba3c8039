/*
 * worker.c - see worker.h.
 *
 * libuv 1.44 has no SO_REUSEPORT flag, so each listening socket is made by
 * hand on the control thread (where a bind error can still stop the start),
 * then adopted by its worker with uv_tcp_open. The kernel spreads incoming
 * connections over the workers' sockets.
 */
#include "worker.h"
#include "conf.h"
#include "conn.h"
#include "gen.h"
#include "guard.h"
#include "guard_ban.h"
#include "log.h"
#include "proxy.h"
#include "revoke.h"
#include "util.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct worker *workers;
static unsigned nworkers;

#define CERT_CHECK_MS 1000 /* open connections' certificates are re-judged this often */
/* The generation the workers were last handed (control thread only; a
 * reference is held). Reload compares against it: workers[k].gen belongs
 * to worker k, which swaps and may free it at any time. */
static struct gen *running;
static uv_async_t *stopped_async;
static atomic_uint nstopped;

static int make_listen_socket(const struct conf_addr *a)
{
	int fd, one = 1, v6only;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;

		/* "[::]" serves IPv4 too; a specific v6 address only itself, so
		 * that 127.0.0.1 and ::1 can both be bound on one port. */
		v6only = !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
			goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 || listen(fd, 511) < 0)
		goto fail;
	return fd;
fail:
	log_error("cannot listen on %s: %s", a->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * SO_REUSEPORT would let a second moat (or anything else that sets it) share
 * a port with a running one and silently split its traffic. A plain bind
 * first proves the address is free; the real sockets follow at once.
 */
static int probe_free(const struct conf_addr *a)
{
	int fd, one = 1, rc = 0;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0; /* the real socket() will report it */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 && errno == EADDRINUSE) {
		log_error("cannot listen on %s: another program is already listening there "
			  "(is moat already running?)", a->text);
		rc = MOAT_EIO;
	}
	close(fd);
	return rc;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;

	if (status < 0 || l->w->stopping)
		return;
	conn_accept(l->w, server, l->tls, l->proxy_protocol);
}

static void close_listeners(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nlisteners; i++) {
		if (!w->listeners[i].closed) {
			w->listeners[i].closed = true;
			uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
		}
	}
}

static void finish_if_idle(struct worker *w)
{
	if (!w->stopping || w->nconns > 0 || uv_is_closing((uv_handle_t *)&w->wake))
		return;
	if (w->drain_timer_on) {
		uv_timer_stop(&w->drain_timer);
		w->drain_timer_on = false;
	}
	uv_close((uv_handle_t *)&w->drain_timer, NULL);
	uv_close((uv_handle_t *)&w->cert_timer, NULL);
	uv_close((uv_handle_t *)&w->flush, NULL);
	uv_close((uv_handle_t *)&w->wake, NULL);
	pool_close(w->pool);
	w->pool = NULL;
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct conn *c, *next;

	w->drain_timer_on = false;
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		conn_abort(c);
	}
}

static void begin_stop(struct worker *w)
{
	struct conn *c, *next;

	w->stopping = true;
	close_listeners(w);
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		conn_drain(c);
	}
	if (w->nconns > 0) {
		uv_timer_start(&w->drain_timer, on_drain_timeout, w->gen->conf->t.drain_ms, 0);
		w->drain_timer_on = true;
	}
	finish_if_idle(w);
}

/* Connections that were let in by a certificate that is now revoked,
 * expired or no longer vouched for by a current CRL close at once, whatever
 * they are doing (a tunnel has no next request to deny). */
static void check_certs(struct worker *w)
{
	struct conn *c, *next;

	w->rev_epoch = revoke_epoch();
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		conn_check_cert(c);
	}
}

/* A client banned a moment ago loses the connections it has open, whatever
 * they are doing. */
static void check_bans(struct worker *w)
{
	struct conn *c, *next;

	w->ban_epoch = bans_epoch();
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->closed && guard_conn_banned(c))
			conn_reset(c);
	}
}

/* Certificates expire and CRLs go out of date without any event. */
static void on_cert_timer(uv_timer_t *t)
{
	check_certs(t->data);
}

static void on_wake(uv_async_t *a)
{
	struct worker *w = a->data;
	struct gen *g = atomic_exchange(&w->next_gen, NULL);

	if (g != NULL) {
		gen_unref(w->gen);
		w->gen = g;
	}
	if (revoke_epoch() != w->rev_epoch)
		check_certs(w);
	if (bans_epoch() != w->ban_epoch)
		check_bans(w);
	if (atomic_load(&w->stop_requested) && !w->stopping)
		begin_stop(w);
	if (atomic_load(&w->stop_now) && w->drain_timer_on) {
		uv_timer_stop(&w->drain_timer);
		on_drain_timeout(&w->drain_timer);
	}
}

static void on_flush(uv_prepare_t *p)
{
	conn_flush_all(p->data);
}

static void worker_main(void *arg)
{
	struct worker *w = arg;
	size_t i;
	int rc = 0;

	for (i = 0; i < w->nlisteners && rc == 0; i++) {
		struct listener *l = &w->listeners[i];

		l->w = w;
		l->tcp.data = l;
		uv_tcp_init(&w->loop, &l->tcp);
		rc = uv_tcp_open(&l->tcp, l->fd);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (rc != 0)
			log_error("worker %u: cannot listen: %s", w->id, uv_strerror(rc));
	}
	w->start_rc = rc;
	uv_sem_post(&w->started);
	if (rc != 0) {
		atomic_store(&w->stop_requested, true);
		begin_stop(w);
	}
	uv_run(&w->loop, UV_RUN_DEFAULT);
	while (w->nbufs > 0)
		free(w->bufs[--w->nbufs]);
	atomic_fetch_add(&nstopped, 1);
	if (stopped_async != NULL)
		uv_async_send(stopped_async);
}

bool workers_all_stopped(void)
{
	return atomic_load(&nstopped) == nworkers;
}

static size_t count_listeners(const struct conf *c)
{
	return c->nhttp + c->nhttps;
}

int workers_start(struct gen *g, uv_async_t *stopped)
{
	const struct conf *c = g->conf;
	size_t nl = count_listeners(c), i, j;
	unsigned k;
	int rc = 0;

	for (j = 0; j < c->nhttps; j++)
		if (probe_free(&c->https[j]) != 0)
			rc = MOAT_EIO;
	for (j = 0; j < c->nhttp; j++)
		if (probe_free(&c->http[j]) != 0)
			rc = MOAT_EIO;
	if (rc != 0)
		return rc;
	nworkers = c->workers;
	running = gen_ref(g);
	stopped_async = stopped;
	atomic_store(&nstopped, 0);
	workers = xcalloc(nworkers, sizeof(*workers));
	for (k = 0; k < nworkers; k++) {
		struct worker *w = &workers[k];

		w->id = k;
		w->rev_epoch = revoke_epoch();
		w->ban_epoch = bans_epoch();
		w->gen = gen_ref(g);
		w->listeners = xcalloc(nl, sizeof(*w->listeners));
		w->nlisteners = nl;
		for (i = 0; i < nl; i++)
			w->listeners[i].fd = -1;
		for (i = 0, j = 0; j < c->nhttps; j++, i++) {
			w->listeners[i].tls = true;
			w->listeners[i].proxy_protocol = c->https[j].proxy_protocol;
			w->listeners[i].fd = make_listen_socket(&c->https[j]);
			if (w->listeners[i].fd < 0)
				rc = MOAT_EIO;
		}
		for (j = 0; j < c->nhttp; j++, i++) {
			w->listeners[i].proxy_protocol = c->http[j].proxy_protocol;
			w->listeners[i].fd = make_listen_socket(&c->http[j]);
			if (w->listeners[i].fd < 0)
				rc = MOAT_EIO;
		}
		if (rc != 0)
			break;
	}
	if (rc != 0)
		goto fail_sockets;
	for (k = 0; k < nworkers; k++) {
		struct worker *w = &workers[k];

		uv_loop_init(&w->loop);
		w->wake.data = w;
		uv_async_init(&w->loop, &w->wake, on_wake);
		w->drain_timer.data = w;
		uv_timer_init(&w->loop, &w->drain_timer);
		w->cert_timer.data = w;
		uv_timer_init(&w->loop, &w->cert_timer);
		uv_timer_start(&w->cert_timer, on_cert_timer, CERT_CHECK_MS, CERT_CHECK_MS);
		uv_unref((uv_handle_t *)&w->cert_timer);
		/* Runs before every poll: what this turn queued for clients leaves
		 * in one write per connection. Unreferenced, so it never keeps a
		 * stopping loop alive. */
		w->flush.data = w;
		uv_prepare_init(&w->loop, &w->flush);
		uv_prepare_start(&w->flush, on_flush);
		uv_unref((uv_handle_t *)&w->flush);
		w->pool = pool_new(w);
		uv_sem_init(&w->started, 0);
		uv_thread_create(&w->thread, worker_main, w);
	}
	for (k = 0; k < nworkers; k++) {
		uv_sem_wait(&workers[k].started);
		if (workers[k].start_rc != 0)
			rc = MOAT_EIO;
	}
	if (rc != 0) {
		workers_stop(true);
		workers_join();
	}
	return rc;

fail_sockets:
	for (k = 0; k < nworkers; k++) {
		for (i = 0; i < workers[k].nlisteners; i++)
			if (workers[k].listeners[i].fd >= 0)
				close(workers[k].listeners[i].fd);
		free(workers[k].listeners);
		gen_unref(workers[k].gen);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
	gen_unref(running);
	running = NULL;
	return rc;
}

static bool same_addrs(const struct conf_addr *a, size_t na, const struct conf_addr *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i].text, b[i].text) != 0 || a[i].proxy_protocol != b[i].proxy_protocol)
			return false;
	return true;
}

int workers_check_reload(const struct conf *c)
{
	const struct conf *old = running->conf;

	if (c->workers != nworkers || !same_addrs(old->https, old->nhttps, c->https, c->nhttps) ||
	    !same_addrs(old->http, old->nhttp, c->http, c->nhttp)) {
		log_error("reload refused: listen addresses, their proxy_protocol and workers can only "
			  "change with a restart");
		return MOAT_ECONFIG;
	}
	return 0;
}

int workers_reload(struct gen *g)
{
	unsigned k;

	if (workers_check_reload(g->conf) != 0)
		return MOAT_ECONFIG;
	gen_unref(running);
	running = gen_ref(g);
	for (k = 0; k < nworkers; k++) {
		struct gen *prev = atomic_exchange(&workers[k].next_gen, gen_ref(g));

		gen_unref(prev);
		uv_async_send(&workers[k].wake);
	}
	return 0;
}

void workers_poke(void)
{
	unsigned k;

	for (k = 0; k < nworkers; k++)
		uv_async_send(&workers[k].wake);
}

void workers_stop(bool now)
{
	unsigned k;

	for (k = 0; k < nworkers; k++) {
		atomic_store(&workers[k].stop_now, now);
		atomic_store(&workers[k].stop_requested, true);
		uv_async_send(&workers[k].wake);
	}
}

size_t workers_conns(uint64_t *out, size_t max)
{
	size_t k;

	for (k = 0; k < nworkers && k < max; k++)
		out[k] = atomic_load(&workers[k].nconns);
	return k;
}

void workers_join(void)
{
	unsigned k;

	for (k = 0; k < nworkers; k++) {
		struct worker *w = &workers[k];

		uv_thread_join(&w->thread);
		uv_loop_close(&w->loop);
		uv_sem_destroy(&w->started);
		gen_unref(atomic_exchange(&w->next_gen, NULL));
		gen_unref(w->gen);
		free(w->listeners);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
	gen_unref(running);
	running = NULL;
	stopped_async = NULL;
}

void worker_conn_add(struct worker *w, struct conn *c)
{
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
}

void worker_conn_remove(struct worker *w, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	finish_if_idle(w);
}

char *worker_buf_get(struct worker *w)
{
	if (w->nbufs > 0)
		return w->bufs[--w->nbufs];
	return xmalloc(WORKER_BUF);
}

void worker_buf_put(struct worker *w, char *buf)
{
	if (buf == NULL)
		return;
	if (w->nbufs < WORKER_BUF_CACHE) {
		w->bufs[w->nbufs++] = buf;
		return;
	}
	free(buf);
}
