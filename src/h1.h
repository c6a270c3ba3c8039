/*
 * h1.h - moat's strict HTTP/1.1 message parser (RFC 9112).
 *
 * The parser never allocates and never copies: every slice points into the
 * caller's buffer, which must stay unchanged while the message is in use.
 * A head is parsed in one call once it is complete; callers re-call with more
 * bytes after MOAT_EAGAIN (the head limit bounds the rework).
 * Thread: pure functions; safe from any thread.
 *
 * Error mapping used by the proxy:
 *   MOAT_EPROTO   -> 400 (request) / 502 (response), close
 *   MOAT_EUNSUP   -> 501 (unknown or unsupported transfer coding, CONNECT)
 *   MOAT_EVERSION -> 505
 *   MOAT_ETOOBIG  -> 431 (head over the limit or more than H1_MAX_HEADERS)
 * On any error m->why names the rule that was broken (static string).
 */
#ifndef MOAT_H1_H
#define MOAT_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define H1_MAX_HEADERS 100

struct h1_slice {
	const char *p;
	size_t n;
};

struct h1_header {
	struct h1_slice name;
	struct h1_slice value; /* optional whitespace trimmed both sides */
};

enum h1_method {
	H1_M_OTHER = 0,
	H1_M_GET,
	H1_M_HEAD,
	H1_M_POST,
	H1_M_PUT,
	H1_M_DELETE,
	H1_M_OPTIONS,
	H1_M_PATCH,
	H1_M_TRACE,
	H1_M_CONNECT,
};

enum h1_framing {
	H1_BODY_NONE = 0,
	H1_BODY_LENGTH,      /* content_length bytes follow */
	H1_BODY_CHUNKED,
	H1_BODY_UNTIL_CLOSE, /* responses only: body ends when upstream closes */
};

/* flags */
#define H1_F_CLOSE            0x01u /* Connection: close, or HTTP/1.0 without keep-alive */
#define H1_F_UPGRADE          0x02u /* request: Connection: upgrade + Upgrade; response: 101 */
#define H1_F_EXPECT_CONTINUE  0x04u /* Expect: 100-continue */
#define H1_F_EXPECT_OTHER     0x08u /* any other Expect value: answer 417 */
#define H1_F_ABSOLUTE_FORM    0x10u /* request-target was absolute-form */
#define H1_F_ASTERISK_FORM    0x20u /* OPTIONS * */

struct h1_msg {
	/* request line (requests only) */
	struct h1_slice method;
	enum h1_method m;
	struct h1_slice target;    /* raw request-target */
	struct h1_slice path;      /* path and query: target minus scheme://authority */
	struct h1_slice authority; /* absolute-form authority, else empty */
	/* status line (responses only) */
	int status;
	struct h1_slice reason;

	int minor; /* HTTP/1.<minor>: 0 or 1 */
	unsigned nheaders;
	bool conn_names;         /* Connection names a field besides keep-alive, upgrade */

	enum h1_framing framing;
	uint64_t content_length; /* valid when framing == H1_BODY_LENGTH */
	unsigned flags;          /* H1_F_* */
	struct h1_slice host;    /* the single Host header value (raw, trimmed) or empty */
	struct h1_slice upgrade; /* Upgrade header value or empty */
	size_t head_len;         /* bytes of the head including the final CRLFCRLF */
	const char *why;         /* on error: which rule was broken */
	/* last: the parser clears everything before it, and only the used
	 * entries of this (3 KiB) array are ever read */
	struct h1_header headers[H1_MAX_HEADERS];
};

/*
 * Parse a request head from buf[0..len).
 * Returns 0 when a complete, valid head was parsed (m->head_len set);
 * MOAT_EAGAIN when more bytes are needed and len < max_head; otherwise a
 * negative error listed above. Rules (docs/internals/h1.md): CRLF only; no
 * bare CR/LF, NUL or other controls; no obs-fold; header names are tokens
 * with no whitespace before ':'; exactly one Host on HTTP/1.1 and it must
 * equal an absolute-form authority; Content-Length is digits only and
 * appears once; Transfer-Encoding appears once, never with Content-Length,
 * never on HTTP/1.0, and is exactly "chunked" (unknown codings -> EUNSUP).
 */
int h1_parse_request(const char *buf, size_t len, size_t max_head, struct h1_msg *m);

/*
 * Parse a response head (from an upstream). req_method is the method of the
 * request it answers (HEAD and 1xx/204/304 carry no body).
 * Same return convention as h1_parse_request.
 */
int h1_parse_response(const char *buf, size_t len, size_t max_head,
		      enum h1_method req_method, struct h1_msg *m);

/* Case-insensitive comparison of s with n bytes of a lowercase name. */
bool h1_slice_ieq_n(struct h1_slice s, const char *lower, size_t n);

/* The same with a NUL-terminated lowercase name; inline so that the length
 * of a literal name is known when compiling and most calls end at the
 * length check. */
static inline bool h1_slice_ieq(struct h1_slice s, const char *lower)
{
	size_t n = strlen(lower);

	return s.n == n && h1_slice_ieq_n(s, lower, n);
}

/* True if a header of that name is hop-by-hop (RFC 9110 7.6.1) or is named
 * by one of the message's Connection headers. */
bool h1_is_hop_by_hop(const struct h1_msg *m, struct h1_slice name);

/*
 * Chunked transfer-coding decoder (RFC 9112 7.1), decoding in place.
 * Chunk sizes are 1-16 hex digits (no sign, no 0x); extensions are parsed and
 * dropped; trailer fields are validated like header fields and dropped, at
 * most H1_MAX_TRAILER_BYTES in all.
 */
#define H1_MAX_TRAILER_BYTES 8192
#define H1_MAX_CHUNK_LINE 1024

struct h1_chunked {
	int state;
	uint64_t remaining;   /* bytes left in the current chunk */
	unsigned digits;
	size_t line_bytes;    /* bytes in the current size line or trailer */
	size_t trailer_bytes;
};

void h1_chunked_init(struct h1_chunked *c);

/*
 * Decode from buf[0..len). Decoded body bytes are moved to buf[0..*out).
 * *consumed is how many input bytes were used; when *done becomes true the
 * last chunk and trailers are complete and buf[*consumed..len) belongs to the
 * next message. Returns 0 or MOAT_EPROTO (m->why is not available: the
 * decoder's reason is returned through *why when why is not NULL).
 */
int h1_chunked_decode(struct h1_chunked *c, char *buf, size_t len,
		      size_t *consumed, size_t *out, bool *done, const char **why);

#endif
