/*
 * fuzz_pathpat.c - libFuzzer target for public: entries matched against
 * request targets. Input: the entry on the first line, the method on the
 * second, the raw request target after that. The target goes through the
 * proxy's normalisation first, exactly as in proxy.c; then pathpat_match
 * must agree with a deliberately different reference matcher below (split
 * both into segment arrays and compare), for every input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pathpat.h"
#include "uri.h"
#include "util.h"

#define MAX_INPUT 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_pathpat: property violated: %s\n", what);
		abort();
	}
}

/* n bytes (not NUL-terminated) as a string; strndup would scan past them. */
static char *dupn(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	check(s != NULL, "malloc");
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Split s[0..n) after its leading '/' at every '/'; count in *nseg. */
static char **split(const char *s, size_t n, size_t *nseg)
{
	char **seg = calloc(n + 2, sizeof(*seg));
	size_t i, start = 1;

	check(seg != NULL, "calloc");
	*nseg = 0;
	for (i = 1; i <= n; i++) {
		if (i == n || s[i] == '/') {
			seg[*nseg] = dupn(s + start, i - start);
			(*nseg)++;
			start = i + 1;
		}
	}
	return seg;
}

static void free_split(char **seg, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(seg[i]);
	free(seg);
}

static bool ref_method(const char *methods, size_t len, const char *m, size_t mlen)
{
	const char *p = methods, *end = methods + len, *comma;

	if (len == 1 && methods[0] == '*')
		return true;
	while (p < end) {
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		if ((size_t)(comma - p) == mlen && memcmp(p, m, mlen) == 0)
			return true;
		p = comma + 1;
	}
	return false;
}

static bool ref_match(const char *entry, const char *m, size_t mlen, const char *path,
		      size_t plen)
{
	const char *sp = strchr(entry, ' '), *q = memchr(path, '?', plen);
	size_t np, nq, i;
	char **ps, **qs;
	bool ok = true;

	if (!ref_method(entry, (size_t)(sp - entry), m, mlen))
		return false;
	if (q != NULL)
		plen = (size_t)(q - path);
	ps = split(sp + 1, strlen(sp + 1), &np);
	qs = split(path, plen, &nq);
	for (i = 0; i < np && ok; i++) {
		if (strcmp(ps[i], "**") == 0) {
			/* the rest matches, provided a slash led to it */
			ok = i < nq;
			break;
		}
		if (i >= nq)
			ok = false;
		else if (strcmp(ps[i], "*") == 0)
			ok = qs[i][0] != '\0';
		else
			ok = strcmp(ps[i], qs[i]) == 0;
	}
	if (ok && i == np)
		ok = np == nq;
	free_split(ps, np);
	free_split(qs, nq);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *nl1, *nl2;
	char *entry, *method, *target, *path, *why = NULL;
	struct pathpat *pp;
	size_t tlen, plen;
	bool got, want;

	if (size > MAX_INPUT)
		return 0;
	nl1 = memchr(in, '\n', size);
	if (nl1 == NULL)
		return 0;
	nl2 = memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - in));
	if (nl2 == NULL)
		return 0;
	entry = dupn(in, (size_t)(nl1 - in));
	method = dupn(nl1 + 1, (size_t)(nl2 - nl1 - 1));
	tlen = size - (size_t)(nl2 + 1 - in);
	target = malloc(tlen ? tlen : 1);
	path = malloc(tlen + 1);
	check(entry && method && target && path, "malloc");
	if (tlen > 0)
		memcpy(target, nl2 + 1, tlen);
	pp = strlen(entry) == (size_t)(nl1 - in) ? pathpat_parse(entry, &why) : NULL;
	if (pp != NULL && uri_normalize_target(target, tlen, path, tlen + 1, &plen) == 0) {
		got = pathpat_match(pp, method, strlen(method), path, plen);
		want = ref_match(pathpat_text(pp), method, strlen(method), path, plen);
		check(got == want, "pathpat_match disagrees with the reference matcher");
	}
	pathpat_free(pp);
	free(why);
	free(path);
	free(target);
	free(method);
	free(entry);
	return 0;
}
