/*
 * pathpat.h - the entries of a site's `public:` list: "METHODS PATTERN",
 * like "GET /share/STAR2" or "GET,HEAD /api/assets/STAR/thumbnail", where
 * STAR stands for "*" and STAR2 for "**" (C comments cannot hold them
 * after a slash), matched against a request's method and its canonical
 * path (uri_normalize_target, query excluded).
 *
 * METHODS is a comma-separated list of method tokens (methods are
 * case-sensitive, RFC 9110 9.1) or "*" for any method. PATTERN starts with
 * "/"; a segment that is exactly STAR matches one non-empty segment, a last
 * segment STAR2 matches whatever follows the slash before it (so
 * "/share/STAR2" matches "/share/" and everything below it, not "/share").
 * Every other segment matches itself, compared after the same
 * canonicalisation the request path gets.
 *
 * Ownership: pathpat_parse returns a heap object freed with pathpat_free.
 * Thread: parse on the control thread; match from any thread (read-only).
 */
#ifndef MOAT_PATHPAT_H
#define MOAT_PATHPAT_H

#include <stdbool.h>
#include <stddef.h>

#define PATHPAT_MAX_METHODS 16
#define PATHPAT_MAX_SEGMENTS 64

struct pathpat;

/* Parse one entry. Returns the compiled entry, or NULL with *why set to a
 * heap message (caller frees) that quotes the text and says what would be
 * valid. */
struct pathpat *pathpat_parse(const char *text, char **why);

/* NULL is a no-op. */
void pathpat_free(struct pathpat *p);

/* Does the request match? method is the request's method token; path is
 * canonical (from uri_normalize_target) and may still carry the query,
 * which is ignored. */
bool pathpat_match(const struct pathpat *p, const char *method, size_t mlen,
		   const char *path, size_t plen);

/*
 * As pathpat_match, but also matching the spellings many upstream routers
 * treat as the same request (Express, Nest: case-insensitive paths and an
 * optional trailing slash; frameworks that fold the method): method and
 * literal segments compared case-insensitively, and one slash after the
 * last segment allowed. For the rules that count requests against a
 * client (rate limits, ban rules), where matching too much is the safe
 * side; never for public:, where it would be the unsafe one.
 */
bool pathpat_match_loose(const struct pathpat *p, const char *method, size_t mlen,
			 const char *path, size_t plen);

/* The entry as moat writes it back ("GET,HEAD /api/assets/STAR/thumbnail"
 * with the canonical pattern); valid while p lives. */
const char *pathpat_text(const struct pathpat *p);

#endif
