/*
 * pathpat.c - see pathpat.h.
 *
 * Patterns must be written in canonical form: what the operator reads in
 * the file is then exactly what requests are compared with, and a pattern
 * like "/a/../b" or "/%7euser" never silently means something else.
 */
#include "pathpat.h"
#include "uri.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum seg_kind { SEG_LIT = 0, SEG_ONE, SEG_REST };

struct seg {
	enum seg_kind kind;
	const char *p;   /* into canon */
	size_t n;
};

struct pathpat {
	char *text;      /* "GET,HEAD /x" as written back */
	char *canon;     /* the canonical pattern */
	char *methods[PATHPAT_MAX_METHODS];
	size_t nmethods; /* 0: any method */
	struct seg seg[PATHPAT_MAX_SEGMENTS];
	size_t nseg;
};

/* RFC 9110 5.6.2 tchar */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool has_lower(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			return true;
	return false;
}

static int parse_methods(struct pathpat *pp, const char *s, size_t n, const char *text,
			 char **why)
{
	const char *p = s, *end = s + n, *comma;
	size_t len, i;

	if (n == 1 && s[0] == '*')
		return 0; /* any method */
	while (p <= end) {
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		len = (size_t)(comma - p);
		for (i = 0; i < len && is_tchar((unsigned char)p[i]) && p[i] != '*'; i++)
			;
		if (len == 0 || i < len) {
			*why = xasprintf("\"%s\": \"%.*s\" is not a method; write methods like "
					 "GET or GET,HEAD (or * for any method) before the path",
					 text, (int)len, p);
			return MOAT_EINVAL;
		}
		if (has_lower(p, len)) {
			*why = xasprintf("\"%s\": methods are case-sensitive and \"%.*s\" would "
					 "never match a browser's request; write it in capitals",
					 text, (int)len, p);
			return MOAT_EINVAL;
		}
		if (pp->nmethods == PATHPAT_MAX_METHODS) {
			*why = xasprintf("\"%s\": at most %d methods per entry", text,
					 PATHPAT_MAX_METHODS);
			return MOAT_EINVAL;
		}
		pp->methods[pp->nmethods++] = xstrndup(p, len);
		p = comma + 1;
	}
	return 0;
}

/* Split canon into segments; "*" and a final "**" become wildcards. */
static int parse_segments(struct pathpat *pp, const char *text, char **why)
{
	const char *p = pp->canon + 1, *slash;
	struct seg *sg;
	size_t n;

	for (;;) {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (pp->nseg == PATHPAT_MAX_SEGMENTS) {
			*why = xasprintf("\"%s\": a pattern has at most %d segments", text,
					 PATHPAT_MAX_SEGMENTS);
			return MOAT_EINVAL;
		}
		sg = &pp->seg[pp->nseg++];
		sg->p = p;
		sg->n = n;
		if (n == 1 && p[0] == '*') {
			sg->kind = SEG_ONE;
		} else if (n == 2 && p[0] == '*' && p[1] == '*') {
			if (slash != NULL) {
				*why = xasprintf("\"%s\": ** matches the rest of the path, so it can "
						 "only be the last segment", text);
				return MOAT_EINVAL;
			}
			sg->kind = SEG_REST;
		} else if (memchr(p, '*', n) != NULL) {
			*why = xasprintf("\"%s\": * stands for one whole segment (/a/*/b) and ** for "
					 "the rest of the path (/a/**); \"%.*s\" mixes it with other "
					 "characters", text, (int)n, p);
			return MOAT_EINVAL;
		}
		if (slash == NULL)
			return 0;
		p = slash + 1;
	}
}

static int parse_pattern(struct pathpat *pp, const char *s, size_t n, const char *text,
			 char **why)
{
	size_t clen;

	if (n == 0 || s[0] != '/') {
		*why = xasprintf("\"%s\": the path pattern must start with /, like "
				 "\"GET /share/**\"", text);
		return MOAT_EINVAL;
	}
	if (memchr(s, '?', n) != NULL) {
		*why = xasprintf("\"%s\": patterns match the path only; remove the query (from ?)",
				 text);
		return MOAT_EINVAL;
	}
	pp->canon = xmalloc(n + 1);
	if (uri_normalize_target(s, n, pp->canon, n + 1, &clen) != 0) {
		*why = xasprintf("\"%s\": the path contains a character or escape that moat "
				 "refuses in requests (%%2F, %%5C, %%00, backslash, encoded dot "
				 "segments, spaces, non-ASCII)", text);
		return MOAT_EINVAL;
	}
	if (clen != n || memcmp(s, pp->canon, n) != 0) {
		*why = xasprintf("\"%s\": write the path in canonical form, \"%s\" (requests are "
				 "compared after the same normalisation)", text, pp->canon);
		return MOAT_EINVAL;
	}
	return parse_segments(pp, text, why);
}

struct pathpat *pathpat_parse(const char *text, char **why)
{
	struct pathpat *pp = xcalloc(1, sizeof(*pp));
	const char *sp, *pat;
	size_t mlen;

	*why = NULL;
	sp = strchr(text, ' ');
	if (sp == NULL) {
		*why = xasprintf("\"%s\": expected METHODS and a path pattern, like "
				 "\"GET /share/**\" or \"GET,HEAD /api/assets/*/thumbnail\"", text);
		goto fail;
	}
	mlen = (size_t)(sp - text);
	for (pat = sp; *pat == ' '; pat++)
		;
	if (strchr(pat, ' ') != NULL || strchr(pat, '\t') != NULL) {
		*why = xasprintf("\"%s\": one entry is METHODS and one path pattern; put each "
				 "pattern in its own list item", text);
		goto fail;
	}
	if (parse_methods(pp, text, mlen, text, why) < 0 ||
	    parse_pattern(pp, pat, strlen(pat), text, why) < 0)
		goto fail;
	pp->text = xasprintf("%.*s %s", (int)mlen, text, pp->canon);
	return pp;
fail:
	pathpat_free(pp);
	return NULL;
}

void pathpat_free(struct pathpat *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nmethods; i++)
		free(p->methods[i]);
	free(p->canon);
	free(p->text);
	free(p);
}

static bool method_ok(const struct pathpat *p, const char *method, size_t mlen, bool loose)
{
	size_t i;

	if (p->nmethods == 0)
		return true;
	for (i = 0; i < p->nmethods; i++)
		if (strlen(p->methods[i]) == mlen &&
		    (loose ? strncasecmp(p->methods[i], method, mlen) :
			     memcmp(p->methods[i], method, mlen)) == 0)
			return true;
	return false;
}

static bool match(const struct pathpat *p, const char *method, size_t mlen, const char *path,
		  size_t plen, bool loose)
{
	const char *q = memchr(path, '?', plen);
	const char *end = q != NULL ? q : path + plen, *pos, *slash;
	size_t i, n;

	if (!method_ok(p, method, mlen, loose) || path == end || path[0] != '/')
		return false;
	pos = path + 1;
	for (i = 0; i < p->nseg; i++) {
		const struct seg *sg = &p->seg[i];

		if (sg->kind == SEG_REST)
			return true;
		slash = memchr(pos, '/', (size_t)(end - pos));
		n = (size_t)((slash != NULL ? slash : end) - pos);
		if (sg->kind == SEG_ONE ? n == 0 :
		    (n != sg->n || (loose ? strncasecmp(pos, sg->p, n) : memcmp(pos, sg->p, n)) != 0))
			return false;
		if (i + 1 == p->nseg)
			return slash == NULL || (loose && slash + 1 == end);
		if (slash == NULL)
			return false;
		pos = slash + 1;
	}
	return false;
}

bool pathpat_match(const struct pathpat *p, const char *method, size_t mlen,
		   const char *path, size_t plen)
{
	return match(p, method, mlen, path, plen, false);
}

bool pathpat_match_loose(const struct pathpat *p, const char *method, size_t mlen,
			 const char *path, size_t plen)
{
	return match(p, method, mlen, path, plen, true);
}

const char *pathpat_text(const struct pathpat *p)
{
	return p->text;
}
