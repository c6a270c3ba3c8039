/*
 * util.h - return codes, abort-on-OOM allocation, small string helpers.
 *
 * Convention (docs/internals/errors.md): int functions return 0 on success and
 * a negative MOAT_E* code on failure; pointer functions return NULL.
 * The x* allocators never return NULL: they abort the process on OOM, so no
 * caller carries an untestable error path for small allocations.
 * All functions here are thread-safe.
 */
#ifndef MOAT_UTIL_H
#define MOAT_UTIL_H

#include <stddef.h>
#include <stdint.h>

enum {
	MOAT_OK = 0,
	MOAT_ENOMEM = -1,    /* a bounded buffer or table is full */
	MOAT_EINVAL = -2,    /* bad argument or malformed value */
	MOAT_EIO = -3,       /* a system call failed; errno was logged */
	MOAT_EPROTO = -4,    /* peer broke the protocol (HTTP: 400) */
	MOAT_ETOOBIG = -5,   /* input exceeds a configured limit (HTTP: 431/413) */
	MOAT_EAGAIN = -6,    /* need more input */
	MOAT_ECONFIG = -7,   /* configuration is invalid */
	MOAT_ETLS = -8,      /* OpenSSL reported an error */
	MOAT_EUNSUP = -9,    /* valid but unsupported (HTTP: 501) */
	MOAT_ENOTFOUND = -10,
	MOAT_EEXIST = -11,
	MOAT_EVERSION = -12, /* unsupported HTTP version (HTTP: 505) */
	MOAT_ELAST = -13
};

/* Human-readable name of a MOAT_E* code; never NULL. */
const char *moat_strerror(int code);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t moat_now_ms(void);

#endif
