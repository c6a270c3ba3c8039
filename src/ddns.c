/*
 * ddns.c - see ddns.h.
 *
 * One thread per updater. It sleeps on a condition variable bound to
 * CLOCK_MONOTONIC (a wall-clock jump neither fires nor delays an update),
 * so ddns_stop wakes it at once; a request in flight is cut short through
 * the stop flag that httpc polls. The status fields are shared with
 * ddns_status under the mutex; the settings never change after start (a
 * reload with new settings replaces the whole updater).
 */
#include "ddns.h"

#include "conf.h"
#include "duckdns.h"
#include "log.h"
#include "util.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_URL "https://www.duckdns.org/update"
#define MIN_EVERY_MS 1000u

/* Waits after 1, 2, 3, ... consecutive failures; the last repeats. Each is
 * capped at `every`, so a failure never delays the next try beyond the
 * normal interval. */
static const uint32_t backoff_ms[] = {
	1 * 60000, 2 * 60000, 5 * 60000, 10 * 60000, 20 * 60000, 30 * 60000,
};

struct ddns {
	/* settings: written before the thread starts, read-only after */
	char **domains;
	size_t ndomains;
	char *list;       /* "a,b": what DuckDNS is sent and the logs name */
	char *token;      /* secret, wiped at stop */
	char *url;
	char *ca_roots;   /* or NULL */
	uint32_t every_ms;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* signalled by ddns_stop; CLOCK_MONOTONIC */
	_Atomic bool stop;

	/* under mu; times are Unix seconds, 0 for never */
	bool attempted;     /* an attempt has finished */
	bool ok;            /* the newest attempt succeeded */
	unsigned failures;  /* consecutive */
	int64_t last_attempt, last_success, last_error_at, next_attempt;
	char ipv4[64], ipv6[64];
	char *last_error;   /* heap or NULL; never holds the token */
};

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static bool same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *url_of(const struct conf_ddns *d)
{
	return d->url != NULL ? d->url : DEFAULT_URL;
}

static uint32_t every_of(const struct conf_ddns *d)
{
	return d->every_ms < MIN_EVERY_MS ? MIN_EVERY_MS : d->every_ms;
}

/* The updater g already runs with d's settings. */
static bool same_settings(const struct ddns *g, const struct conf_ddns *d)
{
	size_t i;

	if (g->ndomains != d->ndomains || g->every_ms != every_of(d) ||
	    !same_str(g->token, d->token) || !same_str(g->url, url_of(d)) ||
	    !same_str(g->ca_roots, d->ca_roots))
		return false;
	for (i = 0; i < g->ndomains; i++)
		if (!same_str(g->domains[i], d->domains[i]))
			return false;
	return true;
}

static void free_ddns(struct ddns *g)
{
	size_t i;

	for (i = 0; i < g->ndomains; i++)
		free(g->domains[i]);
	free(g->domains);
	free(g->list);
	if (g->token != NULL) {
		OPENSSL_cleanse(g->token, strlen(g->token));
		free(g->token);
	}
	free(g->url);
	free(g->ca_roots);
	free(g->last_error);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* "1 s", "90 s", "5 min" for a log line. */
static void say_delay(uint64_t ms, char *out, size_t cap)
{
	if (ms >= 120000 && ms % 60000 == 0)
		snprintf(out, cap, "%llu min", (unsigned long long)(ms / 60000));
	else
		snprintf(out, cap, "%llu s", (unsigned long long)((ms + 999) / 1000));
}

/* What DuckDNS reported, for a log line. */
static void say_addresses(const struct duckdns_answer *a, char *out, size_t cap)
{
	if (a->ipv4[0] != '\0' && a->ipv6[0] != '\0')
		snprintf(out, cap, "%s and %s", a->ipv4, a->ipv6);
	else if (a->ipv4[0] != '\0' || a->ipv6[0] != '\0')
		snprintf(out, cap, "%s", a->ipv4[0] != '\0' ? a->ipv4 : a->ipv6);
	else
		snprintf(out, cap, "no address (DuckDNS reported none)");
}

uint64_t ddns_retry_ms(unsigned failures, uint32_t every_ms)
{
	size_t n = sizeof(backoff_ms) / sizeof(backoff_ms[0]);
	uint32_t step;

	if (failures == 0)
		return every_ms;
	step = backoff_ms[failures > n ? n - 1 : failures - 1];
	return step < every_ms ? step : every_ms;
}

/* One update; returns how long to wait before the next (ms). */
static uint64_t attempt(struct ddns *g)
{
	struct duckdns_answer a;
	char *err = NULL, addrs[160], when[32];
	bool first;
	unsigned before, failures;
	int64_t now = (int64_t)time(NULL);
	uint64_t delay;
	int rc;

	pthread_mutex_lock(&g->mu);
	g->last_attempt = now;
	g->next_attempt = 0;
	pthread_mutex_unlock(&g->mu);

	rc = duckdns_call(g->url, g->ca_roots, g->token, g->list, DUCKDNS_ADDRESS, NULL,
			  &g->stop, &a, &err);
	if (rc < 0 && g->stop) {
		/* cut short by ddns_stop: not a failure worth reporting */
		free(err);
		return 0;
	}

	pthread_mutex_lock(&g->mu);
	first = g->last_success == 0;
	before = g->failures;
	g->attempted = true;
	if (rc == 0) {
		g->ok = true;
		g->failures = 0;
		g->last_success = now;
		memcpy(g->ipv4, a.ipv4, sizeof(g->ipv4));
		memcpy(g->ipv6, a.ipv6, sizeof(g->ipv6));
	} else {
		g->ok = false;
		g->failures++;
		free(g->last_error);
		g->last_error = xstrdup(err != NULL ? err : "DuckDNS update failed");
		g->last_error_at = now;
	}
	failures = g->failures;
	pthread_mutex_unlock(&g->mu);

	if (rc == 0) {
		say_addresses(&a, addrs, sizeof(addrs));
		if (before > 0)
			log_info("ddns: DuckDNS update of %s works again after %u failed attempt%s",
				 g->list, before, before == 1 ? "" : "s");
		if (a.updated)
			log_info("ddns: %s now points at %s", g->list, addrs);
		else if (first || before > 0)
			log_info("ddns: %s points at %s (no change)", g->list, addrs);
		delay = g->every_ms;
	} else {
		delay = ddns_retry_ms(failures, g->every_ms);
		say_delay(delay, when, sizeof(when));
		log_error("ddns: %s; attempt %u failed, next in %s",
			  err != NULL ? err : "DuckDNS update failed", failures, when);
	}
	free(err);
	return delay;
}

/* The absolute CLOCK_MONOTONIC time ms from now. */
static void deadline_in(uint64_t ms, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *run(void *arg)
{
	struct ddns *g = arg;
	struct timespec ts;
	uint64_t delay, due, now;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		pthread_mutex_unlock(&g->mu);
		delay = attempt(g);
		pthread_mutex_lock(&g->mu);
		due = moat_now_ms() + delay;
		g->next_attempt = (int64_t)time(NULL) + (int64_t)((delay + 999) / 1000);
		/* loop: a wakeup may be spurious */
		while (!g->stop) {
			now = moat_now_ms();
			if (now >= due)
				break;
			deadline_in(due - now, &ts);
			pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		}
	}
	g->next_attempt = 0;
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

struct ddns *ddns_start(const struct conf_ddns *d)
{
	struct ddns *g;
	pthread_condattr_t ca;
	sigset_t all, old;
	size_t i, len = 0;
	int rc;

	if (d == NULL || !d->on || d->ndomains == 0 || d->token == NULL)
		return NULL;
	g = xcalloc(1, sizeof(*g));
	g->ndomains = d->ndomains;
	g->domains = xcalloc(d->ndomains, sizeof(*g->domains));
	for (i = 0; i < d->ndomains; i++) {
		g->domains[i] = xstrdup(d->domains[i]);
		len += strlen(d->domains[i]) + 1;
	}
	g->list = xmalloc(len);
	g->list[0] = '\0';
	for (i = 0; i < d->ndomains; i++) {
		if (i > 0)
			strcat(g->list, ",");
		strcat(g->list, d->domains[i]);
	}
	g->token = xstrdup(d->token);
	g->url = xstrdup(url_of(d));
	g->ca_roots = dup_or_null(d->ca_roots);
	g->every_ms = every_of(d);
	atomic_init(&g->stop, false);
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);

	/* The thread takes no signals: they belong to the control loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&g->thread, NULL, run, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("ddns_start: cannot start the DuckDNS thread: %s; %s will not be updated",
			  strerror(rc), g->list);
		free_ddns(g);
		return NULL;
	}
	pthread_setname_np(g->thread, "moat-ddns");
	return g;
}

void ddns_stop(struct ddns *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	free_ddns(g);
}

void ddns_reconfigure(struct ddns **dp, const struct conf_ddns *d)
{
	if (*dp != NULL && d != NULL && d->on && same_settings(*dp, d))
		return;
	ddns_stop(*dp);
	*dp = ddns_start(d);
}

/* A message as JSON; one that is not UTF-8 still shows. */
static json_t *text_or_null(const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	j = json_string(s);
	return j != NULL ? j : json_string("(not UTF-8)");
}

static json_t *time_or_null(int64_t t)
{
	return t != 0 ? json_integer((json_int_t)t) : json_null();
}

json_t *ddns_status(struct ddns *g)
{
	json_t *j, *doms;
	size_t i;

	if (g == NULL)
		return json_pack("{s:b}", "on", 0);
	doms = json_array();
	for (i = 0; i < g->ndomains; i++)
		json_array_append_new(doms, json_string(g->domains[i]));
	pthread_mutex_lock(&g->mu);
	j = json_pack("{s:b, s:o, s:I, s:o, s:o, s:o, s:o, s:s, s:s, s:I, s:o, s:o}",
		      "on", 1, "domains", doms, "every", (json_int_t)(g->every_ms / 1000),
		      "ok", g->attempted ? json_boolean(g->ok) : json_null(),
		      "last_attempt", time_or_null(g->last_attempt),
		      "last_success", time_or_null(g->last_success),
		      "next_attempt", time_or_null(g->next_attempt),
		      "ipv4", g->ipv4, "ipv6", g->ipv6,
		      "failures", (json_int_t)g->failures,
		      "last_error", text_or_null(g->last_error),
		      "last_error_at", time_or_null(g->last_error_at));
	pthread_mutex_unlock(&g->mu);
	if (j == NULL)
		abort(); /* OOM only */
	return j;
}
