/*
 * admincli.c - see admincli.h.
 */
#include "admin.h"
#include "admincli.h"
#include "banfile.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX ((size_t)256 << 20) /* a full ban list of a big table */
#define CALL_TIMEOUT_S 30

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Up to the first newline (or EOF), at most ANSWER_MAX bytes; heap, or
 * NULL with errno set. */
static char *read_line(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap);
	bool done = false;
	ssize_t r = 0;
	int e;

	while (!done) {
		if (n == cap && cap >= ANSWER_MAX) {
			errno = EMSGSIZE;
			r = -1;
			break;
		}
		if (n == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done = memchr(buf + n, '\n', (size_t)r) != NULL;
		n += (size_t)r;
	}
	if (r < 0) {
		e = errno;
		free(buf);
		errno = e;
		return NULL;
	}
	*len = n;
	return buf;
}

static int connect_to(const char *path, int *out, char **why)
{
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = CALL_TIMEOUT_S };
	int fd, e;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	/* No moat can listen there either (admin_start refuses it). */
	if (strlen(path) >= sizeof(sa.sun_path))
		return MOAT_ENOTFOUND;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why = xasprintf("socket: %s", strerror(errno));
		return MOAT_EIO;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return MOAT_ENOTFOUND;
		*why = xasprintf("cannot connect to %s: %s%s", path, strerror(e),
				 e == EACCES ? " (run this as moat's user or as root)" : "");
		return MOAT_EIO;
	}
	*out = fd;
	return 0;
}

int admincli_call(const char *data, json_t *req, json_t **ans, char **why)
{
	char *path = admin_socket_path(data), *text = NULL, *line = NULL;
	json_error_t jerr;
	size_t len = 0;
	int fd = -1, rc, se;

	*ans = NULL;
	*why = NULL;
	rc = connect_to(path, &fd, why);
	if (rc < 0)
		goto out;
	rc = MOAT_EIO;
	text = json_dumps(req, JSON_COMPACT);
	line = xasprintf("%s\n", text != NULL ? text : "{}");
	/* A daemon that refuses the client answers before reading: the
	 * answer may be waiting although the send failed. */
	se = send_all(fd, line, strlen(line)) < 0 ? errno : 0;
	free(text);
	text = read_line(fd, &len);
	if (text == NULL || len == 0) {
		*why = xasprintf("no answer from the moat on %s%s%s", path,
				 text == NULL || se != 0 ? ": " : "",
				 se != 0 ? strerror(se) : text == NULL ? strerror(errno) : "");
		goto out;
	}
	*ans = json_loadb(text, len, JSON_DISABLE_EOF_CHECK, &jerr);
	if (*ans == NULL) {
		*why = xasprintf("the moat on %s answered something that is not JSON: %s", path,
				 jerr.text);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(line);
	free(text);
	free(path);
	return rc;
}

int admincli_offline_lock(const char *cmd, const char *data)
{
	struct stat st;
	char *sock;
	long pid;
	int fd;

	if (stat(data, &st) < 0 && errno == ENOENT)
		return MOAT_ENOTFOUND;
	fd = banfile_lock(data);
	if (fd != MOAT_EEXIST)
		return fd;
	pid = banfile_lock_holder(data);
	sock = admin_socket_path(data);
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		fprintf(stderr, "moat %s: a moat (pid %ld) runs on %s, but it cannot have an admin "
			"socket: %s is longer than a Unix socket path may be (%zu bytes); move the "
			"data directory to a shorter path\n", cmd, pid, data, sock,
			sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
		free(sock);
		return MOAT_EEXIST;
	}
	if (pid > 0)
		fprintf(stderr, "moat %s: a moat (pid %ld) holds %s/%s, but nothing answers on %s; "
			"if it is still starting, try again; if it hangs, stop it\n",
			cmd, pid, data, BANFILE_LOCK_NAME, sock);
	else
		fprintf(stderr, "moat %s: another process holds %s/%s, but nothing answers on %s; "
			"try again in a moment\n", cmd, data, BANFILE_LOCK_NAME, sock);
	free(sock);
	return MOAT_EEXIST;
}

/* "2h" rather than "2h 0m". */
static char *two_units(char *buf, size_t cap, int64_t big, const char *bu, int64_t small,
		       const char *su)
{
	if (small == 0)
		snprintf(buf, cap, "%lld%s", (long long)big, bu);
	else
		snprintf(buf, cap, "%lld%s %lld%s", (long long)big, bu, (long long)small, su);
	return buf;
}

char *admincli_duration(int64_t s, char *buf, size_t cap)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		return two_units(buf, cap, s, "s", 0, "");
	if (s < 3600)
		return two_units(buf, cap, s / 60, "m", s % 60, "s");
	if (s < 86400)
		return two_units(buf, cap, s / 3600, "h", s % 3600 / 60, "m");
	return two_units(buf, cap, s / 86400, "d", s % 86400 / 3600, "h");
}

static int64_t int_of(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *str_of(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "?";
}

/* "2026-01-01 00:00:00 UTC", or the bare number when the time has no
 * calendar date (gmtime_r fails past year 2^31) or does not fit. */
static char *utc_time(int64_t s, char *buf, size_t cap)
{
	time_t t = (time_t)s;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "unix time %lld", (long long)s);
	return buf;
}

/* A reason as the daemon sent it; one from a ban file that an older moat
 * loaded unchecked may hold control characters, which must not reach the
 * terminal. Heap, caller frees. */
static char *printable(const char *s)
{
	char *p = xstrdup(s);
	size_t i;

	for (i = 0; p[i] != '\0'; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] == 0x7f)
			p[i] = '?';
	return p;
}

void admincli_print_bans(FILE *f, json_t *list, const char *indent)
{
	char until[48], left[32], *reason;
	size_t i, w = 7;
	json_t *b;

	json_array_foreach(list, i, b)
		if (strlen(str_of(b, "address")) > w)
			w = strlen(str_of(b, "address"));
	fprintf(f, "%s%-*s  %-23s  %-9s  %s\n", indent, (int)w, "ADDRESS", "UNTIL", "REMAINING",
		"REASON");
	json_array_foreach(list, i, b) {
		reason = printable(str_of(b, "reason"));
		fprintf(f, "%s%-*s  %-23s  %-9s  %s\n", indent, (int)w, str_of(b, "address"),
			utc_time(int_of(b, "until"), until, sizeof(until)),
			admincli_duration(int_of(b, "remaining"), left, sizeof(left)), reason);
		free(reason);
	}
}
