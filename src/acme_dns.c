/*
 * acme_dns.c - see acme_dns.h. The first half talks DNS to a server (one
 * exchange: UDP with resends, TCP when the answer is truncated); the second
 * half is the providers.
 */
#include "acme_dns.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dnsmsg.h"
#include "duckdns.h"
#include "log.h"
#include "util.h"

#define EXCHANGE_MS 10000 /* one question to one server: 1+2+4 s of UDP, then the rest */
#define POLL_MS 1000      /* acme_dns_wait asks this often */
#define QUERY_MS 5000     /* ... and gives each answer this long */
#define CHALLENGE "_acme-challenge."

/* ---- one exchange ---- */

enum { WAIT_READY = 1, WAIT_TIMEOUT = 0, WAIT_STOPPED = -1, WAIT_FAILED = -2 };

struct xchg {
	const uint8_t *req;
	size_t reqlen;
	const struct dnsmsg *q;      /* req, parsed: what an answer must match */
	uint64_t start, deadline;    /* moat_now_ms() */
	const _Atomic bool *stop;
	uint8_t *buf;                /* DNSMSG_MAX bytes */
	unsigned dropped;            /* datagrams that answered something else */
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char **err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*err = xstrdup(msg);
	return MOAT_EIO;
}

/* Wait for ev on fd until until (ms), in slices short enough to see stop. */
static int wait_fd(int fd, short ev, uint64_t until, const _Atomic bool *stop)
{
	struct pollfd p;
	uint64_t now;
	int n;

	for (;;) {
		if (stop != NULL && atomic_load(stop))
			return WAIT_STOPPED;
		now = moat_now_ms();
		if (now >= until)
			return WAIT_TIMEOUT;
		p.fd = fd;
		p.events = ev;
		p.revents = 0;
		n = poll(&p, 1, until - now > 100 ? 100 : (int)(until - now));
		if (n > 0)
			return WAIT_READY;
		if (n < 0 && errno != EINTR)
			return WAIT_FAILED;
	}
}

static int wait_failed(const struct xchg *x, int w, char **err)
{
	if (w == WAIT_STOPPED)
		return fail(err, "stopped");
	if (w == WAIT_FAILED)
		return fail(err, "poll: %s", strerror(errno));
	return fail(err, "no answer within %llu ms%s",
		    (unsigned long long)(x->deadline - x->start),
		    x->dropped ? " (answers that did not match the question were dropped)" : "");
}

/* A failed send or recv; a refusal is the ICMP port unreachable that a
 * connected UDP socket reports. */
static int sock_fail(char **err, const char *call)
{
	if (errno == ECONNREFUSED)
		return fail(err, "connection refused (no DNS server listens there)");
	return fail(err, "%s: %s", call, strerror(errno));
}

/* Returns 0 with *reply, 1 when the answer is truncated (ask over TCP),
 * MOAT_EIO with *err. */
static int udp_exchange(struct xchg *x, const struct sockaddr *sa, socklen_t salen,
			struct dnsmsg **reply, char **err)
{
	struct dnsmsg *r = NULL;
	uint64_t until, wait_ms = 1000;
	ssize_t n;
	int fd, w, rc = MOAT_EIO;

	fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, "socket: %s", strerror(errno));
	/* connected: the kernel drops datagrams from anyone but the server
	 * and reports an ICMP port unreachable as ECONNREFUSED */
	if (connect(fd, sa, salen) < 0) {
		rc = fail(err, "connect: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		if (send(fd, x->req, x->reqlen, 0) < 0 && errno != EAGAIN && errno != EINTR) {
			rc = sock_fail(err, "send");
			goto out;
		}
		until = moat_now_ms() + wait_ms;
		if (until > x->deadline)
			until = x->deadline;
		for (;;) {
			w = wait_fd(fd, POLLIN, until, x->stop);
			if (w == WAIT_TIMEOUT && until < x->deadline)
				break; /* send again */
			if (w != WAIT_READY) {
				rc = wait_failed(x, w, err);
				goto out;
			}
			n = recv(fd, x->buf, DNSMSG_MAX, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				rc = sock_fail(err, "recv");
				goto out;
			}
			if (dnsmsg_parse(x->buf, (size_t)n, &r) < 0 || !dnsmsg_answers(r, x->q)) {
				dnsmsg_free(r);
				r = NULL;
				x->dropped++;
				continue;
			}
			rc = dnsmsg_is_truncated(r) ? 1 : 0;
			if (rc == 1)
				dnsmsg_free(r);
			else
				*reply = r;
			goto out;
		}
		wait_ms *= 2;
	}
out:
	close(fd);
	return rc;
}

/* Send or receive all n bytes on a non-blocking stream. */
static int io_all(struct xchg *x, int fd, bool wr, uint8_t *p, size_t n, char **err)
{
	ssize_t k;
	int w;

	while (n > 0) {
		k = wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k == 0)
			return fail(err, "the server closed the TCP connection");
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail(err, "TCP: %s", strerror(errno));
		w = wait_fd(fd, wr ? POLLOUT : POLLIN, x->deadline, x->stop);
		if (w != WAIT_READY)
			return wait_failed(x, w, err);
	}
	return 0;
}

static int tcp_exchange(struct xchg *x, const struct sockaddr *sa, socklen_t salen,
			struct dnsmsg **reply, char **err)
{
	uint8_t out[2 + DNSMSG_REQ_MAX], lenb[2];
	struct dnsmsg *r = NULL;
	socklen_t sl = sizeof(int);
	int fd, w, soerr = 0, rc;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, "socket: %s", strerror(errno));
	if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
		rc = fail(err, "TCP connect: %s", strerror(errno));
		goto out;
	}
	w = wait_fd(fd, POLLOUT, x->deadline, x->stop);
	if (w != WAIT_READY) {
		rc = wait_failed(x, w, err);
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
		rc = fail(err, "TCP connect: %s", strerror(soerr ? soerr : errno));
		goto out;
	}
	out[0] = (uint8_t)(x->reqlen >> 8);
	out[1] = (uint8_t)x->reqlen;
	memcpy(out + 2, x->req, x->reqlen);
	rc = io_all(x, fd, true, out, x->reqlen + 2, err);
	if (rc == 0)
		rc = io_all(x, fd, false, lenb, 2, err);
	if (rc == 0)
		rc = io_all(x, fd, false, x->buf, get16(lenb), err);
	if (rc < 0)
		goto out;
	if (dnsmsg_parse(x->buf, get16(lenb), &r) < 0 || !dnsmsg_answers(r, x->q)) {
		dnsmsg_free(r);
		rc = fail(err, "the TCP answer is malformed or answers another question");
		goto out;
	}
	*reply = r;
out:
	close(fd);
	return rc;
}

/*
 * Send req[reqlen] (built by dnsmsg) to to over UDP, resending after 1, 2,
 * 4... seconds, and wait for a datagram that answers it (others are
 * dropped); when that answer is truncated, ask again over TCP. All of it
 * ends by timeout_ms, or early when *stop turns true. Returns 0 with
 * *reply (caller frees), or MOAT_EIO with *err (heap) not naming the server.
 */
static int exchange(const struct conf_addr *to, const uint8_t *req, size_t reqlen,
		    unsigned timeout_ms, const _Atomic bool *stop, struct dnsmsg **reply,
		    char **err)
{
	const struct sockaddr *sa = (const struct sockaddr *)&to->sa;
	struct xchg x;
	struct dnsmsg *q = NULL;
	int rc;

	*reply = NULL;
	*err = NULL;
	if (reqlen > DNSMSG_REQ_MAX || dnsmsg_parse(req, reqlen, &q) < 0)
		return fail(err, "the request is malformed");
	memset(&x, 0, sizeof(x));
	x.req = req;
	x.reqlen = reqlen;
	x.q = q;
	x.start = moat_now_ms();
	x.deadline = x.start + timeout_ms;
	x.stop = stop;
	x.buf = xmalloc(DNSMSG_MAX);
	rc = udp_exchange(&x, sa, to->salen, reply, err);
	if (rc == 1) {
		log_info("acme_dns: the answer from %s is truncated; asking again over TCP",
			 to->text);
		rc = tcp_exchange(&x, sa, to->salen, reply, err);
	}
	free(x.buf);
	dnsmsg_free(q);
	return rc;
}

/* ---- providers ---- */

/* Sleep ms in short slices; MOAT_EIO as soon as *stop turns true. */
static int nap(uint64_t ms, const _Atomic bool *stop)
{
	uint64_t end = moat_now_ms() + ms, now, left;
	struct timespec ts;

	for (;;) {
		if (stop != NULL && atomic_load(stop))
			return MOAT_EIO;
		now = moat_now_ms();
		if (now >= end)
			return 0;
		left = end - now > 100 ? 100 : end - now;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

/* ident without "*.", if it is a host name (labels of letters, digits, '-'
 * and '_', trailing dot allowed) short enough to carry the challenge label. */
static const char *base_name(const char *ident)
{
	const char *b = ident != NULL && strncmp(ident, "*.", 2) == 0 ? ident + 2 : ident;
	size_t i, lab = 0;

	if (b == NULL || b[0] == '\0' || strlen(b) > 253 - strlen(CHALLENGE))
		return NULL;
	for (i = 0; b[i] != '\0'; i++) {
		if (b[i] == '.') {
			if (lab == 0)
				return NULL;
			lab = 0;
			continue;
		}
		if (!(b[i] == '-' || b[i] == '_' || (b[i] >= '0' && b[i] <= '9') ||
		      ((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'z')) || ++lab > 63)
			return NULL;
	}
	return b;
}

/* "_acme-challenge.<base name>" (heap), or NULL with *err. */
static char *record_name(const char *ident, char **err)
{
	const char *b = base_name(ident);

	if (b == NULL) {
		*err = xasprintf("\"%s\" is not a name DNS-01 can validate",
				 ident != NULL ? ident : "(null)");
		return NULL;
	}
	return xasprintf(CHALLENGE "%s", b);
}

/* One unsigned question (name, type) to to. As exchange. */
static int query(const struct conf_addr *to, const char *name, uint16_t type,
		 unsigned timeout_ms, const _Atomic bool *stop, struct dnsmsg **reply,
		 char **err)
{
	uint8_t req[DNSMSG_REQ_MAX];
	size_t len;
	uint16_t id;

	*reply = NULL;
	if (dnsmsg_random_id(&id) < 0 ||
	    dnsmsg_build_query(req, sizeof(req), id, name, type, &len) < 0) {
		*err = xstrdup("cannot build the query");
		return MOAT_EIO;
	}
	return exchange(to, req, len, timeout_ms, stop, reply, err);
}

/* The zone that holds name at d->server: the closest of name and its
 * parents that has an SOA record. *zone is heap (caller frees). */
static int find_zone(const struct conf_dns *d, const char *name, const _Atomic bool *stop,
		     char **zone, char **err)
{
	const char *cand = name, *dot;
	struct dnsmsg *reply = NULL;
	char *xerr = NULL;
	int rc;

	for (;;) {
		rc = query(&d->server, cand, DNS_TYPE_SOA, EXCHANGE_MS, stop, &reply, &xerr);
		if (rc < 0) {
			*err = xasprintf("looking for the zone of %s at %s: %s", name,
					 d->server.text, xerr);
			goto out;
		}
		if (dnsmsg_has_soa(reply, cand)) {
			*zone = xstrdup(cand);
			goto out;
		}
		dnsmsg_free(reply);
		reply = NULL;
		dot = strchr(cand, '.');
		if (dot == NULL || dot[1] == '\0')
			break;
		cand = dot + 1;
	}
	*err = xasprintf("%s knows no zone holding %s (no SOA record at it or any parent); "
			 "set acme.dns.zone", d->server.text, name);
	rc = MOAT_EPROTO;
out:
	dnsmsg_free(reply);
	free(xerr);
	return rc;
}

/* What a TSIG error means for the operator. */
static const char *tsig_hint(unsigned error)
{
	switch (error) {
	case DNS_RCODE_BADSIG:
		return "the server does not accept our signature: check acme.dns.key_secret "
		       "and acme.dns.algorithm";
	case DNS_RCODE_BADKEY:
		return "the server knows no such key: check acme.dns.key_name and "
		       "acme.dns.algorithm";
	case DNS_RCODE_BADTIME:
		return "the server's clock and ours differ by more than 5 minutes";
	default:
		return "see the server's log";
	}
}

/* Add (add) or delete value at _acme-challenge.<ident> with a signed UPDATE. */
static int rfc2136_update(const struct conf_dns *d, const char *ident, const char *value,
			  bool add, const _Atomic bool *stop, char **err)
{
	const struct dnsmsg_key k = { d->key_name, d->alg, d->key, d->key_len };
	const char *what = add ? "adding" : "deleting", *why = NULL;
	uint8_t req[DNSMSG_REQ_MAX], mac[DNSMSG_MAC_MAX];
	char *name = NULL, *zone = NULL, *xerr = NULL;
	struct dnsmsg *reply = NULL;
	size_t len, mac_len;
	unsigned rcode, terr;
	uint16_t id;
	int rc = MOAT_EINVAL, vrc;

	name = record_name(ident, err);
	if (name == NULL)
		goto out;
	rc = 0;
	if (d->zone != NULL)
		zone = xstrdup(d->zone);
	else
		rc = find_zone(d, name, stop, &zone, err);
	if (rc < 0)
		goto out;
	rc = dnsmsg_random_id(&id);
	if (rc == 0)
		rc = dnsmsg_build_update(req, sizeof(req), id, zone, name, value, d->ttl, add, &len);
	if (rc == 0)
		rc = dnsmsg_tsig_sign(req, sizeof(req), &len, &k, (uint64_t)time(NULL), NULL, 0,
				      mac, &mac_len);
	if (rc < 0) {
		*err = xasprintf("%s TXT %s in zone %s: cannot build the update (%s)", what, name,
				 zone, moat_strerror(rc));
		goto out;
	}
	rc = exchange(&d->server, req, len, EXCHANGE_MS, stop, &reply, &xerr);
	if (rc < 0) {
		*err = xasprintf("%s TXT %s in zone %s at %s: %s", what, name, zone,
				 d->server.text, xerr);
		goto out;
	}
	rc = MOAT_EPROTO;
	rcode = dnsmsg_rcode(reply);
	terr = dnsmsg_tsig_error(reply);
	vrc = dnsmsg_tsig_verify(reply, &k, mac, mac_len, (uint64_t)time(NULL), &why);
	/* a refusal is reported whether it is signed or not: it can only
	 * ever stop us, never make us believe in a record that is not there */
	if (rcode != DNS_RCODE_NOERROR || terr != 0) {
		*err = xasprintf("%s TXT %s in zone %s at %s: refused with %s%s%s%s%s", what, name,
				 zone, d->server.text, dnsmsg_rcode_name(rcode),
				 terr ? ", TSIG error " : "", terr ? dnsmsg_rcode_name(terr) : "",
				 terr ? ": " : "", terr ? tsig_hint(terr) : "");
		goto out;
	}
	if (vrc < 0) {
		*err = xasprintf("%s TXT %s in zone %s at %s: the answer cannot be trusted: %s",
				 what, name, zone, d->server.text, why);
		goto out;
	}
	log_info("acme_dns: %s TXT %s in zone %s at %s: done", what, name, zone, d->server.text);
	rc = 0;
out:
	dnsmsg_free(reply);
	free(xerr);
	free(zone);
	free(name);
	return rc;
}

int acme_dns_duckdns_domain(const struct conf_dns *d, const char *ident, char **domain,
			    char **err)
{
	static const char suffix[] = ".duckdns.org";
	const size_t slen = sizeof(suffix) - 1;
	const char *b = base_name(ident);
	size_t n, start, i;
	char *out;

	*domain = NULL;
	if (d->domain != NULL) {
		*domain = xstrdup(d->domain);
		return 0;
	}
	n = b != NULL ? strlen(b) : 0;
	if (n > 0 && b[n - 1] == '.')
		n--;
	if (n <= slen || strncasecmp(b + n - slen, suffix, slen) != 0 || b[n - slen - 1] == '.') {
		*err = xasprintf("%s is not a name under duckdns.org, so moat cannot tell which "
				 "DuckDNS domain holds its challenge; set acme.dns.domain to the "
				 "DuckDNS subdomain (\"example\" for example.duckdns.org)",
				 ident != NULL ? ident : "(null)");
		return MOAT_ECONFIG;
	}
	n -= slen;
	for (start = n; start > 0 && b[start - 1] != '.'; start--)
		;
	out = xstrndup(b + start, n - start);
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] | 0x20);
	*domain = out;
	return 0;
}

static int duck(const struct conf_dns *d, const char *ca_roots, const char *ident,
		const char *value, enum duckdns_op op, const _Atomic bool *stop, char **err)
{
	struct duckdns_answer a;
	char *domain = NULL, *xerr = NULL;
	int rc;

	rc = acme_dns_duckdns_domain(d, ident, &domain, err);
	if (rc < 0)
		return rc;
	rc = duckdns_call(d->url, ca_roots, d->token, domain, op, value, stop, &a, &xerr);
	if (rc < 0)
		*err = xasprintf("%s the TXT record of %s.duckdns.org (for %s): %s",
				 op == DUCKDNS_TXT_SET ? "setting" : "clearing", domain, ident,
				 xerr != NULL ? xerr : moat_strerror(rc));
	else
		log_info("acme_dns: %s the TXT record of %s.duckdns.org (for %s): done",
			 op == DUCKDNS_TXT_SET ? "set" : "cleared", domain, ident);
	free(xerr);
	free(domain);
	return rc;
}

static int provider_missing(char **err)
{
	*err = xstrdup("DNS-01 needs acme.dns with a provider (duckdns or rfc2136)");
	return MOAT_ECONFIG;
}

int acme_dns_set(const struct conf_dns *d, const char *ca_roots, const char *ident,
		 const char *value, const _Atomic bool *stop, char **err)
{
	*err = NULL;
	if (d->provider == CONF_DNS_RFC2136)
		return rfc2136_update(d, ident, value, true, stop, err);
	if (d->provider == CONF_DNS_DUCKDNS)
		return duck(d, ca_roots, ident, value, DUCKDNS_TXT_SET, stop, err);
	return provider_missing(err);
}

int acme_dns_clear(const struct conf_dns *d, const char *ca_roots, const char *ident,
		   const char *value, const _Atomic bool *stop, char **err)
{
	*err = NULL;
	if (d->provider == CONF_DNS_RFC2136)
		return rfc2136_update(d, ident, value, false, stop, err);
	if (d->provider == CONF_DNS_DUCKDNS)
		return duck(d, ca_roots, ident, NULL, DUCKDNS_TXT_CLEAR, stop, err);
	return provider_missing(err);
}

int acme_dns_wait(const struct conf_dns *d, const char *ident, const char *value,
		  const _Atomic bool *stop, char **err)
{
	const struct conf_addr *at = d->resolver.salen != 0 ? &d->resolver :
				     d->provider == CONF_DNS_RFC2136 ? &d->server : NULL;
	uint64_t start = moat_now_ms(), deadline = start + d->propagation_ms, now, left;
	char *name, *xerr = NULL, *last = NULL;
	struct dnsmsg *reply = NULL;
	int rc = MOAT_EINVAL;

	*err = NULL;
	name = record_name(ident, err);
	if (name == NULL)
		goto out;
	if (at == NULL) {
		/* nowhere to look: give DuckDNS's servers the time they need */
		rc = nap(d->settle_ms, stop);
		if (rc < 0)
			*err = xasprintf("stopped while waiting for TXT %s", name);
		goto out;
	}
	for (;;) {
		now = moat_now_ms();
		left = now < deadline ? deadline - now : 0;
		rc = query(at, name, DNS_TYPE_TXT, left > QUERY_MS ? QUERY_MS : (unsigned)left + 1,
			   stop, &reply, &xerr);
		if (rc == 0 && dnsmsg_has_txt(reply, name, value))
			goto out;
		free(last);
		last = rc == 0 ? xasprintf("%s without the value", dnsmsg_rcode_name(dnsmsg_rcode(reply)))
			       : xstrdup(xerr);
		dnsmsg_free(reply);
		reply = NULL;
		free(xerr);
		xerr = NULL;
		rc = MOAT_EIO;
		if (moat_now_ms() + POLL_MS >= deadline || nap(POLL_MS, stop) < 0)
			break;
	}
	if (stop != NULL && atomic_load(stop))
		*err = xasprintf("stopped while waiting for TXT %s at %s", name, at->text);
	else
		*err = xasprintf("TXT %s with the challenge value is not visible at %s after %llu s "
				 "(last answer: %s); raise acme.dns.propagation if the servers are "
				 "slow", name, at->text,
				 (unsigned long long)((moat_now_ms() - start + 500) / 1000), last);
out:
	dnsmsg_free(reply);
	free(xerr);
	free(last);
	free(name);
	return rc;
}
