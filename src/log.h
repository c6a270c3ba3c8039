/*
 * log.h - the error log (human lines on stderr) and the access log (one JSON
 * object per request).
 *
 * Error log lines read "moat: <level>: <message>". They are written with one
 * write(2) each, so lines from different threads never interleave.
 * The access log target is process-wide and swapped on reload; writers from
 * any worker thread are serialised by the kernel's O_APPEND semantics (one
 * write per line). Thread: every function is safe from any thread.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stddef.h>
#include <stdint.h>

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log the current OpenSSL error queue (and clear it) after a message. */
void log_tls_error(const char *what);

struct access_rec {
	const char *client;   /* printable address */
	const char *host;     /* canonical host, or NULL */
	const char *method;
	size_t method_len;
	const char *path;
	size_t path_len;
	int status;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t start_ms;    /* moat_now_ms() at request start */
	const char *upstream; /* "127.0.0.1:9000" or NULL */
	const char *tls;      /* "TLSv1.3" or NULL for plain http */
	const char *access;   /* client policy decision ("allow:public", ...) or NULL */
	const char *cert;     /* client certificate's name, or NULL */
	const char *deny;     /* abuse control's refusal ("rate", "ban", "conn-cap",
			       * "timeout"; deny_name) or NULL */
	uint64_t unlogged;    /* refusals like this one not logged one by one before it */
};

/*
 * Open the access log target: "stdout", "off" or an absolute file path
 * (created 0640, appended). Replaces the previous target only on success.
 * Returns 0 or MOAT_EIO (logged). Control thread.
 */
int log_access_open(const char *target);

/* Write one JSON line; strings are escaped, invalid bytes replaced. */
void log_access(const struct access_rec *r);

/* Close the access log (at exit). */
void log_access_close(void);

#endif
