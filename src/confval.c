/*
 * confval.c - see confval.h.
 */
#include "confval.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "util.h"

/* Longest DNS name and label (RFC 1035). */
#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63

/* Parse leading decimal digits of s into *v; *end points after them.
 * Returns 0, MOAT_EINVAL when there are none, MOAT_ETOOBIG on overflow. */
static int digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;
	int rc = 0;

	if (!isdigit((unsigned char)*p)) {
		rc = MOAT_EINVAL;
		goto out;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (x > (UINT64_MAX - d) / 10) {
			rc = MOAT_ETOOBIG;
			goto out;
		}
		x = x * 10 + d;
	}
	*v = x;
	*end = p;
out:
	return rc;
}

int confval_uint(const char *s, uint64_t max, uint64_t *v)
{
	const char *end;
	uint64_t x;
	int rc;

	rc = digits(s, &x, &end);
	if (rc < 0)
		goto out;
	if (*end != '\0') {
		rc = MOAT_EINVAL;
		goto out;
	}
	if (x > max) {
		rc = MOAT_ETOOBIG;
		goto out;
	}
	*v = x;
out:
	return rc;
}

static const struct unit {
	const char *name;
	uint64_t mult;
} duration_units[] = {
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 60 * 60 * 1000 },
	{ "d", 24 * 60 * 60 * 1000 },
}, size_units[] = {
	{ "", 1 },
	{ "k", 1024 },
	{ "kib", 1024 },
	{ "m", 1024 * 1024 },
	{ "mib", 1024 * 1024 },
	{ "g", 1024 * 1024 * 1024 },
	{ "gib", 1024 * 1024 * 1024 },
};

static int scaled(const char *s, const struct unit *units, size_t nunits,
		  bool fold_case, uint64_t *out)
{
	const char *end;
	uint64_t x;
	size_t i;
	int rc;

	rc = digits(s, &x, &end);
	if (rc < 0)
		goto out;
	rc = MOAT_EINVAL;
	for (i = 0; i < nunits; i++) {
		bool eq = fold_case ? strcasecmp(end, units[i].name) == 0 :
				      strcmp(end, units[i].name) == 0;

		if (!eq)
			continue;
		if (x > UINT64_MAX / units[i].mult) {
			rc = MOAT_ETOOBIG;
			goto out;
		}
		*out = x * units[i].mult;
		rc = 0;
		break;
	}
out:
	return rc;
}

int confval_duration(const char *s, uint64_t *ms)
{
	return scaled(s, duration_units,
		      sizeof(duration_units) / sizeof(duration_units[0]), false, ms);
}

int confval_size(const char *s, uint64_t *bytes)
{
	return scaled(s, size_units, sizeof(size_units) / sizeof(size_units[0]),
		      true, bytes);
}

int confval_bool(const char *s, bool *v)
{
	int rc = 0;

	if (strcmp(s, "true") == 0)
		*v = true;
	else if (strcmp(s, "false") == 0)
		*v = false;
	else
		rc = MOAT_EINVAL;
	return rc;
}

static bool is_label_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

/* Check the dot-separated labels of a lowercase name. */
static int check_labels(const char *in, const char *name, char **why)
{
	const char *p = name;
	size_t len, i;
	int rc = MOAT_EINVAL;

	for (;;) {
		len = strcspn(p, ".");
		for (i = 0; i < len; i++) {
			if (p[i] == '*') {
				*why = xasprintf("site name \"%s\" has a \"*\" that is not the "
						 "whole first label; a wildcard looks like "
						 "\"*.example.org\"", in);
				goto out;
			}
			if (!is_label_char(p[i])) {
				*why = xasprintf("site name \"%s\" contains '%c'; a name may "
						 "only contain letters, digits, '-', '_' and "
						 "dots", in, p[i]);
				goto out;
			}
		}
		if (len == 0 || len > LABEL_MAX_LEN) {
			*why = xasprintf("site name \"%s\" has an %s label; each dot-separated "
					 "part must be 1-%d characters", in,
					 len == 0 ? "empty" : "overlong", LABEL_MAX_LEN);
			goto out;
		}
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	rc = 0;
out:
	return rc;
}

/* IPv6 literal with or without brackets -> "[canonical]". */
static int site_v6(const char *in, char **out, char **why)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a;
	size_t n = strlen(in);
	char *bare = NULL;
	int rc = 0;

	if (in[0] == '[' && n >= 2 && in[n - 1] == ']')
		bare = xstrndup(in + 1, n - 2);
	else
		bare = xstrdup(in);
	if (inet_pton(AF_INET6, bare, &a) != 1) {
		*why = xasprintf("site name \"%s\" is not a valid IPv6 address or DNS name",
				 in);
		rc = MOAT_EINVAL;
		goto out;
	}
	inet_ntop(AF_INET6, &a, buf, sizeof(buf));
	*out = xasprintf("[%s]", buf);
out:
	free(bare);
	return rc;
}

int confval_site_name(const char *in, char **out, char **why)
{
	char *name = NULL;
	const char *labels;
	size_t n, i;
	int rc = 0;

	if (strchr(in, ':') != NULL) {
		rc = site_v6(in, out, why);
		goto out;
	}
	n = strlen(in);
	/* "app.example.org." is the same name written fully qualified. */
	if (n > 1 && in[n - 1] == '.')
		n--;
	if (n == 0) {
		*why = xstrdup("a site name must not be empty; expected a name like "
			       "\"app.example.org\"");
		rc = MOAT_EINVAL;
		goto out;
	}
	if (n > NAME_MAX_LEN) {
		*why = xasprintf("site name \"%.40s...\" is longer than %d characters", in,
				 NAME_MAX_LEN);
		rc = MOAT_EINVAL;
		goto out;
	}
	name = xstrndup(in, n);
	for (i = 0; i < n; i++)
		name[i] = (char)tolower((unsigned char)name[i]);
	labels = name;
	if (strncmp(name, "*.", 2) == 0)
		labels = name + 2;
	rc = check_labels(in, labels, why);
	if (rc < 0)
		goto out;
	*out = name;
	name = NULL;
out:
	free(name);
	return rc;
}

void confval_addr_set_text(struct conf_addr *a)
{
	char buf[INET6_ADDRSTRLEN];

	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
		a->text = xasprintf("[%s]:%u", buf, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa;

		inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
		a->text = xasprintf("%s:%u", buf, ntohs(s4->sin_port));
	}
}

static unsigned addr_port(const struct conf_addr *a)
{
	if (a->sa.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

static bool addr_is_any(const struct conf_addr *a)
{
	if (a->sa.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
	return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

bool confval_addr_is_same(const struct conf_addr *a, const struct conf_addr *b)
{
	if (a->sa.ss_family != b->sa.ss_family || addr_port(a) != addr_port(b))
		return false;
	if (a->sa.ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr,
			      &((const struct sockaddr_in6 *)&b->sa)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)&b->sa)->sin_addr.s_addr;
}

bool confval_addr_overlaps(const struct conf_addr *a, const struct conf_addr *b)
{
	if (addr_port(a) != addr_port(b))
		return false;
	if (confval_addr_is_same(a, b))
		return true;
	/* [::] is dual-stack (worker.c binds it with IPV6_V6ONLY off), so it
	 * takes the port on every address; 0.0.0.0 on every IPv4 address.
	 * With SO_REUSEPORT the kernel would accept both binds and split
	 * clients between them at random, so this must be caught here. */
	if (a->sa.ss_family == AF_INET6 && addr_is_any(a))
		return true;
	if (b->sa.ss_family == AF_INET6 && addr_is_any(b))
		return true;
	if (a->sa.ss_family == AF_INET && b->sa.ss_family == AF_INET)
		return addr_is_any(a) || addr_is_any(b);
	return false;
}

static void push_addr(struct conf_addr **addrs, size_t *n,
		      const struct sockaddr *sa, socklen_t len)
{
	struct conf_addr *a;

	*addrs = xrealloc(*addrs, (*n + 1) * sizeof(**addrs));
	a = &(*addrs)[*n];
	memset(a, 0, sizeof(*a));
	memcpy(&a->sa, sa, len);
	a->salen = len;
	confval_addr_set_text(a);
	(*n)++;
}

/*
 * Can this host bind the address at all? "localhost" lists ::1 even where
 * IPv6 is disabled; listening there would fail at startup for an address
 * the operator never named explicitly, so such entries are dropped.
 */
static bool can_bind(const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_storage ss;
	bool ok = true;
	int fd, r;

	memcpy(&ss, sa, len);
	if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	else
		((struct sockaddr_in *)&ss)->sin_port = 0;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ok = errno != EAFNOSUPPORT;
		goto out;
	}
	r = bind(fd, (struct sockaddr *)&ss, len);
	if (r < 0)
		ok = errno != EADDRNOTAVAIL;
	close(fd);
out:
	return ok;
}

static int parse_port(const char *s, unsigned *port)
{
	uint64_t v;
	int rc;

	rc = confval_uint(s, 65535, &v);
	if (rc == 0 && v == 0)
		rc = MOAT_EINVAL;
	if (rc == 0)
		*port = (unsigned)v;
	return rc;
}

/* RFC 6761: "localhost" and names under it are the loopback addresses,
 * whatever a resolver (or a missing /etc/hosts) would say. */
static bool is_localhost(const char *host)
{
	size_t n = strlen(host);

	return strcasecmp(host, "localhost") == 0 ||
	       (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0);
}

/* Appends the bindable, not yet listed addresses of list to addrs. */
static void add_bindable(const struct addrinfo *list, size_t first, struct conf_addr **addrs,
			 size_t *n)
{
	const struct addrinfo *ai;
	struct conf_addr tmp;
	size_t i;

	for (ai = list; ai != NULL; ai = ai->ai_next) {
		bool dup = false;

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memset(&tmp, 0, sizeof(tmp));
		memcpy(&tmp.sa, ai->ai_addr, ai->ai_addrlen);
		for (i = first; i < *n && !dup; i++)
			dup = confval_addr_is_same(&(*addrs)[i], &tmp);
		if (dup || !can_bind(ai->ai_addr, ai->ai_addrlen))
			continue;
		push_addr(addrs, n, ai->ai_addr, ai->ai_addrlen);
	}
}

static int listen_name(const char *s, const char *host, const char *port,
		       struct conf_addr **addrs, size_t *n, char **why)
{
	struct addrinfo hints, *res = NULL, *v6 = NULL;
	size_t first = *n;
	int rc = 0, g;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (is_localhost(host)) {
		hints.ai_flags |= AI_NUMERICHOST;
		g = getaddrinfo("127.0.0.1", port, &hints, &res);
		if (g == 0 && getaddrinfo("::1", port, &hints, &v6) != 0)
			v6 = NULL;
	} else {
		g = getaddrinfo(host, port, &hints, &res);
	}
	if (g != 0) {
		*why = xasprintf("cannot resolve listen host \"%s\" in \"%s\": %s; expected an "
				 "IP address or a resolvable name", host, s, gai_strerror(g));
		rc = MOAT_EINVAL;
		goto out;
	}
	add_bindable(res, first, addrs, n);
	add_bindable(v6, first, addrs, n);
	if (*n == first) {
		*why = xasprintf("listen host \"%s\" in \"%s\" has no address this machine can "
				 "listen on", host, s);
		rc = MOAT_EINVAL;
	}
out:
	if (res != NULL)
		freeaddrinfo(res);
	if (v6 != NULL)
		freeaddrinfo(v6);
	return rc;
}

int confval_listen(const char *s, struct conf_addr **addrs, size_t *n,
		   char **why)
{
	static const char *const hint =
		"expected \"HOST:PORT\", \":PORT\" or \"[IPv6]:PORT\", like \"127.0.0.1:8443\"";
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	char *host = NULL;
	const char *colon, *portstr;
	unsigned port = 0;
	int rc = MOAT_EINVAL;

	memset(&s6, 0, sizeof(s6));
	memset(&s4, 0, sizeof(s4));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		host = xstrndup(s + 1, (size_t)(rb - s - 1));
		portstr = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			goto bad;
		host = xstrndup(s, (size_t)(colon - s));
		portstr = colon + 1;
		if (strchr(host, ':') != NULL) {
			*why = xasprintf("listen address \"%s\": an IPv6 address needs "
					 "brackets, like \"[::1]:8443\"", s);
			goto out;
		}
	}
	if (parse_port(portstr, &port) < 0) {
		*why = xasprintf("listen address \"%s\" has port \"%s\"; expected a port "
				 "1-65535", s, portstr);
		goto out;
	}
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, host, &s6.sin6_addr) != 1) {
			*why = xasprintf("listen address \"%s\": \"%s\" is not an IPv6 address",
					 s, host);
			goto out;
		}
	} else if (host[0] == '\0') {
		s6.sin6_addr = in6addr_any;
	} else if (inet_pton(AF_INET, host, &s4.sin_addr) != 1) {
		rc = listen_name(s, host, portstr, addrs, n, why);
		goto out;
	}
	if (s[0] == '[' || host[0] == '\0') {
		s6.sin6_family = AF_INET6;
		s6.sin6_port = htons((uint16_t)port);
		push_addr(addrs, n, (struct sockaddr *)&s6, sizeof(s6));
	} else {
		s4.sin_family = AF_INET;
		s4.sin_port = htons((uint16_t)port);
		push_addr(addrs, n, (struct sockaddr *)&s4, sizeof(s4));
	}
	rc = 0;
	goto out;
bad:
	*why = xasprintf("\"%s\" is not a valid listen address; %s", s, hint);
out:
	free(host);
	return rc;
}

static bool is_host_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/* Split the authority of an http:// URL into host (brackets kept for
 * IPv6) and port; rest points at what follows the authority. */
static int split_authority(const char *s, const char *auth, char **host,
			   unsigned *port, const char **rest, char **why)
{
	const char *p = auth, *hend;
	int rc = MOAT_EINVAL;

	if (*p == '[') {
		hend = strchr(p, ']');
		if (hend == NULL) {
			*why = xasprintf("upstream \"%s\" has an unterminated \"[\"; an IPv6 "
					 "upstream looks like \"http://[::1]:9000\"", s);
			goto out;
		}
		hend++;
	} else {
		hend = p;
		while (is_host_char(*hend))
			hend++;
	}
	*rest = hend;
	*port = 80;
	if (*hend == ':') {
		const char *pend = hend + 1;
		char *ps;
		int r;

		while (isdigit((unsigned char)*pend))
			pend++;
		ps = xstrndup(hend + 1, (size_t)(pend - hend - 1));
		r = parse_port(ps, port);
		free(ps);
		if (r < 0) {
			*why = xasprintf("upstream \"%s\" has an invalid port; expected "
					 "1-65535, like \"http://127.0.0.1:9000\"", s);
			goto out;
		}
		*rest = pend;
	}
	if (hend == p) {
		*why = xasprintf("upstream \"%s\" has no host; expected a URL like "
				 "\"http://127.0.0.1:9000\"", s);
		goto out;
	}
	if (**rest == '@') {
		*why = xasprintf("upstream \"%s\" contains user information; only "
				 "\"http://HOST:PORT\" is supported", s);
		goto out;
	}
	*host = xstrndup(p, (size_t)(hend - p));
	rc = 0;
out:
	return rc;
}

static int check_url_rest(const char *s, const char *rest, char **why)
{
	int rc = MOAT_EINVAL;

	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		rc = 0;
	} else if (rest[0] == '/') {
		*why = xasprintf("upstream \"%s\" has the path \"%s\"; path prefixes are not "
				 "supported yet, use \"http://HOST:PORT\"", s, rest);
	} else {
		*why = xasprintf("upstream \"%s\" has unexpected \"%s\" after the host; "
				 "expected \"http://HOST:PORT\", like \"http://127.0.0.1:9000\"",
				 s, rest);
	}
	return rc;
}

static int resolve_first(const char *s, const char *host, unsigned port,
			 struct conf_addr *addr, char **why)
{
	struct addrinfo hints, *res = NULL, *ai;
	char *bare = NULL, portstr[8];
	size_t n = strlen(host);
	int rc = MOAT_EINVAL, g;

	/* apps behind "localhost" nearly always listen on IPv4 127.0.0.1 */
	if (host[0] == '[')
		bare = xstrndup(host + 1, n - 2);
	else if (is_localhost(host))
		bare = xstrdup("127.0.0.1");
	else
		bare = xstrdup(host);
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (host[0] == '[')
		hints.ai_flags |= AI_NUMERICHOST;
	g = getaddrinfo(bare, portstr, &hints, &res);
	if (g != 0) {
		*why = xasprintf("cannot resolve upstream host \"%s\" in \"%s\": %s", bare, s,
				 gai_strerror(g));
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	}
	if (ai == NULL) {
		*why = xasprintf("upstream host \"%s\" in \"%s\" has no IPv4 or IPv6 address",
				 bare, s);
		goto out;
	}
	memset(addr, 0, sizeof(*addr));
	memcpy(&addr->sa, ai->ai_addr, ai->ai_addrlen);
	addr->salen = ai->ai_addrlen;
	confval_addr_set_text(addr);
	rc = 0;
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(bare);
	return rc;
}

int confval_upstream(const char *s, struct conf_upstream *up, char **why)
{
	static const char scheme[] = "http://";
	struct conf_addr addr;
	const char *rest;
	char *host = NULL;
	unsigned port = 0;
	size_t i;
	int rc = MOAT_EINVAL;

	if (strncasecmp(s, "https://", 8) == 0) {
		*why = xasprintf("upstream \"%s\": only http:// upstreams are supported; moat "
				 "terminates TLS and talks plain HTTP to the app, like "
				 "\"http://127.0.0.1:9000\"", s);
		goto out;
	}
	if (strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
		*why = xasprintf("upstream \"%s\" must be an http:// URL like "
				 "\"http://127.0.0.1:9000\"", s);
		goto out;
	}
	rc = split_authority(s, s + sizeof(scheme) - 1, &host, &port, &rest, why);
	if (rc < 0)
		goto out;
	rc = check_url_rest(s, rest, why);
	if (rc < 0)
		goto out;
	rc = resolve_first(s, host, port, &addr, why);
	if (rc < 0)
		goto out;
	for (i = 0; host[i] != '\0'; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	up->url = xstrdup(s);
	up->hostport = xasprintf("%s:%u", host, port);
	up->addr = addr;
out:
	free(host);
	return rc;
}

/* ---- paths ---------------------------------------------------------------- */

/* Remove "." segments, repeated and trailing slashes from an absolute path
 * so that messages and `moat check` show "/etc/moat/data", not
 * "/etc/moat/./data". ".." is kept: it may cross a symlink. */
static char *clean_path(char *p)
{
	char *r = p, *w = p;

	while (*r != '\0') {
		bool dot = r[1] == '.' && (r[2] == '/' || r[2] == '\0');

		if (r[0] == '/' && (r[1] == '/' || dot)) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	if (w > p + 1 && w[-1] == '/')
		w--;
	if (w == p)
		*w++ = '/';
	*w = '\0';
	return p;
}

char *confval_path(const char *dir, const char *p)
{
	return clean_path(fs_resolve(dir, p));
}

char *confval_abs_dir(const char *dir)
{
	char *cwd, *out;

	if (dir == NULL || dir[0] == '\0')
		dir = ".";
	if (dir[0] == '/')
		return clean_path(xstrdup(dir));
	cwd = getcwd(NULL, 0);
	if (cwd == NULL)
		return xstrdup(dir);
	out = confval_path(cwd, dir);
	free(cwd);
	return out;
}


int confval_check_readable(const char *what, const char *path, char **why)
{
	struct stat st;
	int fd, rc = 0;

	*why = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = xasprintf("cannot read %s file \"%s\": %s", what, path, strerror(errno));
		return MOAT_EIO;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		*why = xasprintf("%s file \"%s\" is not a regular file", what, path);
		rc = MOAT_EINVAL;
	}
	close(fd);
	return rc;
}
