/*
 * log.c - see log.h.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define FIELD_PATH_MAX 2048 /* escaped bytes of the path in an access line */
#define FIELD_MAX 300       /* any other string field */

/* -1: off. Readers load it once per line; the old fd is closed only after a
 * grace period (reload is rare and lines are short), see log_access_open. */
static _Atomic int access_fd = STDOUT_FILENO;
static int retired_fd = -1;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
	char line[LINE_MAX_BYTES];
	int n, m;

	n = snprintf(line, sizeof(line), "moat: %s: ", level);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	write_all(STDERR_FILENO, line, (size_t)n);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("error", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("warn", fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("info", fmt, ap);
	va_end(ap);
}

void log_tls_error(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_error("%s: %s", what, buf);
	}
}

int log_access_open(const char *target)
{
	int fd, old;

	if (strcmp(target, "off") == 0) {
		fd = -1;
	} else if (strcmp(target, "stdout") == 0) {
		fd = STDOUT_FILENO;
	} else {
		fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			log_error("cannot open access log %s: %s", target, strerror(errno));
			return MOAT_EIO;
		}
	}
	pthread_mutex_lock(&open_lock);
	old = atomic_exchange(&access_fd, fd);
	/* A worker may still be writing to old: keep it open until the next
	 * swap, which is at least one reload later. */
	if (retired_fd > STDERR_FILENO)
		close(retired_fd);
	retired_fd = old;
	pthread_mutex_unlock(&open_lock);
	return 0;
}

void log_access_close(void)
{
	int old;

	pthread_mutex_lock(&open_lock);
	old = atomic_exchange(&access_fd, -1);
	if (old > STDERR_FILENO)
		close(old);
	if (retired_fd > STDERR_FILENO)
		close(retired_fd);
	retired_fd = -1;
	pthread_mutex_unlock(&open_lock);
}

/* Appends a JSON string (quoted), at most about max_out bytes of it.
 * Control bytes are \u-escaped; bytes that are not ASCII are replaced with
 * '?' so the line is valid UTF-8 whatever a client sent. */
static size_t put_str(char *out, size_t cap, size_t n, const char *s, size_t len,
		      size_t max_out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = n;

	if (s == NULL) {
		if (n + 4 < cap) {
			memcpy(out + n, "null", 4);
			n += 4;
		}
		return n;
	}
	if (n + 1 < cap)
		out[n++] = '"';
	/* max_out bounds the escaped size, so later fields always fit */
	for (i = 0; i < len && n + 8 < cap && n - start < max_out; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(out + n, "\\u00", 4);
			n += 4;
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else if (c >= 0x80) {
			out[n++] = '?';
		} else {
			out[n++] = (char)c;
		}
	}
	if (n + 1 < cap)
		out[n++] = '"';
	return n;
}

/* snprintf that never moves n past cap, so later appends stay in bounds. */
static size_t putf(char *out, size_t cap, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t putf(char *out, size_t cap, size_t n, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (n >= cap)
		return cap;
	va_start(ap, fmt);
	w = vsnprintf(out + n, cap - n, fmt, ap);
	va_end(ap);
	if (w < 0)
		return n;
	return n + (size_t)w >= cap ? cap - 1 : n + (size_t)w;
}

void log_access(const struct access_rec *r)
{
	char line[LINE_MAX_BYTES];
	struct timeval tv;
	struct tm tm;
	size_t n = 0, cap = sizeof(line) - 2;
	uint64_t dur = moat_now_ms() - r->start_ms;
	int fd = atomic_load(&access_fd);

	if (fd < 0)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = putf(line, cap, n, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"client\":",
			      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			      tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
	n = put_str(line, cap, n, r->client, r->client ? strlen(r->client) : 0, FIELD_MAX);
	n = putf(line, cap, n, ",\"host\":");
	n = put_str(line, cap, n, r->host, r->host ? strlen(r->host) : 0, FIELD_MAX);
	n = putf(line, cap, n, ",\"method\":");
	n = put_str(line, cap, n, r->method, r->method_len, FIELD_MAX);
	n = putf(line, cap, n, ",\"path\":");
	n = put_str(line, cap, n, r->path, r->path_len, FIELD_PATH_MAX);
	n = putf(line, cap, n,
			      ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%llu,\"upstream\":",
			      r->status, (unsigned long long)r->bytes_in,
			      (unsigned long long)r->bytes_out, (unsigned long long)dur);
	n = put_str(line, cap, n, r->upstream, r->upstream ? strlen(r->upstream) : 0, FIELD_MAX);
	n = putf(line, cap, n, ",\"tls\":");
	n = put_str(line, cap, n, r->tls, r->tls ? strlen(r->tls) : 0, FIELD_MAX);
	if (r->access != NULL) {
		n = putf(line, cap, n, ",\"access\":");
		n = put_str(line, cap, n, r->access, strlen(r->access), FIELD_MAX);
		n = putf(line, cap, n, ",\"cert\":");
		n = put_str(line, cap, n, r->cert, r->cert ? strlen(r->cert) : 0, FIELD_MAX);
	}
	if (r->deny != NULL) {
		n = putf(line, cap, n, ",\"deny\":");
		n = put_str(line, cap, n, r->deny, strlen(r->deny), FIELD_MAX);
	}
	if (r->unlogged > 0)
		n = putf(line, cap, n, ",\"unlogged\":%llu", (unsigned long long)r->unlogged);
	if (n > cap)
		n = cap;
	line[n++] = '}';
	line[n++] = '\n';
	write_all(fd, line, n);
}
