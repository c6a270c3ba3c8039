/*
 * confdoc.c - see confdoc.h.
 */
#include "confdoc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confval.h"
#include "util.h"

/* Past this many errors the rest are counted, not listed: the file is
 * probably not a moat config at all. */
#define MAX_ERRORS 100
/* Longest value quoted back in a message. */
#define QUOTE_MAX 60

enum { SCALAR_UNSEEN = 0, SCALAR_OK, SCALAR_BAD };

/* ---- errors -------------------------------------------------------------- */

__attribute__((format(printf, 4, 0)))
static void err_line(struct confdoc *x, int line, int col, const char *fmt,
		     va_list ap)
{
	struct confdoc_err *e;

	if (x->nerrs == MAX_ERRORS) {
		x->dropped++;
		return;
	}
	x->errs = xrealloc(x->errs, (x->nerrs + 1) * sizeof(*x->errs));
	e = &x->errs[x->nerrs];
	e->line = line;
	e->col = col;
	e->seq = x->nerrs;
	if (vasprintf(&e->msg, fmt, ap) < 0) {
		fprintf(stderr, "moat: out of memory formatting a config error\n");
		abort();
	}
	x->nerrs++;
}

void confdoc_verr(struct confdoc *x, const yaml_node_t *n, const char *fmt,
		  va_list ap)
{
	int line = 0, col = 0;

	if (n != NULL) {
		line = (int)n->start_mark.line + 1;
		col = (int)n->start_mark.column + 1;
	}
	err_line(x, line, col, fmt, ap);
}

void confdoc_err(struct confdoc *x, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	confdoc_verr(x, n, fmt, ap);
	va_end(ap);
}

void confdoc_err_pos(struct confdoc *x, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_line(x, line, col, fmt, ap);
	va_end(ap);
}

static int cmp_err(const void *a, const void *b)
{
	const struct confdoc_err *ea = a, *eb = b;

	if (ea->line != eb->line)
		return ea->line < eb->line ? -1 : 1;
	if (ea->col != eb->col)
		return ea->col < eb->col ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

char *confdoc_errors(struct confdoc *x)
{
	char *out = NULL;
	size_t len = 0, i;
	FILE *f;

	qsort(x->errs, x->nerrs, sizeof(*x->errs), cmp_err);
	f = open_memstream(&out, &len);
	if (f == NULL) {
		fprintf(stderr, "moat: out of memory collecting config errors\n");
		abort();
	}
	for (i = 0; i < x->nerrs; i++) {
		if (x->errs[i].line > 0)
			fprintf(f, "%s:%d:%d: %s\n", x->name, x->errs[i].line, x->errs[i].col,
				x->errs[i].msg);
		else
			fprintf(f, "%s: %s\n", x->name, x->errs[i].msg);
	}
	if (x->dropped > 0)
		fprintf(f, "%s: %zu more errors not shown\n", x->name, x->dropped);
	fclose(f);
	return out;
}

/* ---- the document -------------------------------------------------------- */

static void syntax_error(struct confdoc *x, const yaml_parser_t *p, const char *text,
			 size_t len)
{
	const char *problem = p->problem != NULL ? p->problem : "malformed document";
	size_t at = p->problem_mark.index, i;
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	char *context = xstrdup(""), *value = xstrdup("");

	if (p->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset only. */
		at = p->problem_offset;
		line = 1;
		col = 1;
		for (i = 0; i < at && i < len; i++) {
			col++;
			if (text[i] == '\n') {
				line++;
				col = 1;
			}
		}
		if (p->problem_value != -1) {
			free(value);
			value = xasprintf(" (byte 0x%02X)", (unsigned)p->problem_value);
		}
	}
	if (p->context != NULL) {
		free(context);
		context = xasprintf(" (%s at line %d)", p->context,
				    (int)p->context_mark.line + 1);
	}
	confdoc_err_pos(x, line, col, "invalid YAML: %s%s%s%s", problem, value, context,
			at < len && text[at] == '\t' ? "; indent with spaces, not tabs" : "");
	free(value);
	free(context);
}

void confdoc_init(struct confdoc *x, const char *name)
{
	memset(x, 0, sizeof(*x));
	x->name = name;
}

yaml_node_t *confdoc_load(struct confdoc *x, const char *text, size_t len)
{
	yaml_document_t extra;
	yaml_parser_t parser;
	yaml_node_t *root = NULL;

	if (!yaml_parser_initialize(&parser)) {
		fprintf(stderr, "moat: out of memory creating the YAML parser\n");
		abort();
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &x->doc)) {
		syntax_error(x, &parser, text, len);
		goto out;
	}
	x->loaded = true;
	x->nnodes = (size_t)(x->doc.nodes.top - x->doc.nodes.start);
	x->sval = xcalloc(x->nnodes, sizeof(*x->sval));
	x->sstate = xcalloc(x->nnodes, sizeof(*x->sstate));
	root = yaml_document_get_root_node(&x->doc);
	if (root == NULL || confdoc_is_null(root)) {
		confdoc_err_pos(x, 1, 1, "the configuration is empty; at least one site is "
				"required, like \"sites: { app.example.org: { to: "
				"http://127.0.0.1:9000 } }\"");
		root = NULL;
		goto out;
	}
	/* A second document would be silently ignored: refuse it. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(x, &parser, text, len);
		goto out;
	}
	if (yaml_document_get_root_node(&extra) != NULL)
		confdoc_err_pos(x, (int)extra.start_mark.line + 1,
				(int)extra.start_mark.column + 1,
				"a second YAML document; the configuration must be one document");
	yaml_document_delete(&extra);
out:
	yaml_parser_delete(&parser);
	return root;
}

void confdoc_free(struct confdoc *x)
{
	size_t i;

	for (i = 0; i < x->nnodes; i++)
		free(x->sval[i]);
	free(x->sval);
	free(x->sstate);
	for (i = 0; i < x->nerrs; i++)
		free(x->errs[i].msg);
	free(x->errs);
	if (x->loaded)
		yaml_document_delete(&x->doc);
	memset(x, 0, sizeof(*x));
}

bool confdoc_has_errors(const struct confdoc *x)
{
	return x->nerrs > 0 || x->dropped > 0;
}

/* ---- scalars and ${VAR} expansion ---------------------------------------- */

yaml_node_t *confdoc_node(struct confdoc *x, int i)
{
	return yaml_document_get_node(&x->doc, i);
}

static size_t node_index(struct confdoc *x, const yaml_node_t *n)
{
	return (size_t)(n - x->doc.nodes.start);
}

static bool is_var_start(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_var_char(char ch)
{
	return is_var_start(ch) || (ch >= '0' && ch <= '9');
}

/*
 * Expand every "${NAME}" in s from the environment. Every problem in the
 * scalar is reported; returns NULL if there was any.
 */
static char *expand(struct confdoc *x, const yaml_node_t *n, const char *s)
{
	char *out = NULL;
	size_t len = 0;
	const char *p = s;
	bool bad = false;
	FILE *f;

	f = open_memstream(&out, &len);
	if (f == NULL) {
		fprintf(stderr, "moat: out of memory expanding a config value\n");
		abort();
	}
	while (*p != '\0') {
		const char *open = strstr(p, "${"), *close, *val, *q;
		char *name;

		if (open == NULL) {
			fputs(p, f);
			break;
		}
		fwrite(p, 1, (size_t)(open - p), f);
		close = strchr(open + 2, '}');
		if (close == NULL) {
			confdoc_err(x, n, "unterminated \"${\" in \"%.*s\"; a variable is "
				    "written ${NAME}", QUOTE_MAX, s);
			bad = true;
			break;
		}
		name = xstrndup(open + 2, (size_t)(close - open - 2));
		for (q = name; is_var_char(*q); q++)
			;
		if (!is_var_start(name[0]) || *q != '\0') {
			confdoc_err(x, n, "\"${%s}\" is not a valid variable reference; a name "
				    "is letters, digits and '_', like ${APP_PORT}", name);
			bad = true;
		} else {
			val = getenv(name);
			if (val == NULL) {
				confdoc_err(x, n, "environment variable \"%s\" is not set "
					    "(used in \"%.*s\")", name, QUOTE_MAX, s);
				bad = true;
			} else {
				fputs(val, f);
			}
		}
		free(name);
		p = close + 1;
	}
	fclose(f);
	if (bad) {
		free(out);
		out = NULL;
	}
	return out;
}

const char *confdoc_text(struct confdoc *x, const yaml_node_t *n)
{
	size_t i = node_index(x, n);
	const char *raw = (const char *)n->data.scalar.value;

	if (x->sstate[i] == SCALAR_UNSEEN) {
		x->sstate[i] = SCALAR_BAD;
		if (strlen(raw) != n->data.scalar.length)
			confdoc_err(x, n, "value contains a NUL character");
		else if (strstr(raw, "${") == NULL)
			x->sstate[i] = SCALAR_OK;
		else
			x->sval[i] = expand(x, n, raw);
		if (x->sval[i] != NULL)
			x->sstate[i] = SCALAR_OK;
	}
	if (x->sstate[i] == SCALAR_BAD)
		return NULL;
	return x->sval[i] != NULL ? x->sval[i] : raw;
}

char *confdoc_describe(struct confdoc *x, const yaml_node_t *n)
{
	const char *t;

	if (n->type == YAML_SEQUENCE_NODE)
		return xstrdup("a list");
	if (n->type == YAML_MAPPING_NODE)
		return xstrdup("a mapping");
	t = confdoc_text(x, n);
	if (t == NULL)
		t = (const char *)n->data.scalar.value;
	if (strlen(t) > QUOTE_MAX)
		return xasprintf("\"%.*s...\"", QUOTE_MAX, t);
	return xasprintf("\"%s\"", t);
}

const char *confdoc_scalar(struct confdoc *x, const yaml_node_t *n, const char *what,
			  const char *example)
{
	const char *t = NULL;

	if (n->type != YAML_SCALAR_NODE) {
		confdoc_err(x, n, "%s must be a single value like %s, not %s", what, example,
			    n->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping");
		goto out;
	}
	t = confdoc_text(x, n);
out:
	return t;
}

bool confdoc_is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

/* ---- mappings ------------------------------------------------------------ */

static char *key_list(const char *const *keys, size_t nkeys)
{
	char *s = xstrdup(""), *t;
	size_t i;

	for (i = 0; i < nkeys; i++) {
		t = xasprintf("%s%s%s", s, i ? ", " : "", keys[i]);
		free(s);
		s = t;
	}
	return s;
}

bool confdoc_fields(struct confdoc *x, const yaml_node_t *map, const char *what,
		    const char *where, const char *example,
		    const char *const *keys, size_t nkeys, struct confdoc_field *out)
{
	yaml_node_pair_t *p;
	bool ok = false;
	size_t i;

	memset(out, 0, nkeys * sizeof(*out));
	if (map->type != YAML_MAPPING_NODE) {
		char *got = confdoc_describe(x, map);

		confdoc_err(x, map, "%s must be a mapping like %s, not %s", what, example, got);
		free(got);
		goto out;
	}
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = confdoc_node(x, p->key), *v = confdoc_node(x, p->value);
		const char *name;

		if (k->type != YAML_SCALAR_NODE) {
			confdoc_err(x, k, "a key %s must be a plain name, not %s", where,
				    k->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping");
			continue;
		}
		name = confdoc_text(x, k);
		if (name == NULL)
			continue;
		for (i = 0; i < nkeys && strcmp(name, keys[i]) != 0; i++)
			;
		if (i == nkeys) {
			char *valid = key_list(keys, nkeys);

			confdoc_err(x, k, "unknown key \"%s\" %s; valid keys: %s", name, where,
				    valid);
			free(valid);
		} else if (out[i].key != NULL) {
			confdoc_err(x, k,
				    "duplicate key \"%s\" %s; it was already given at line %d",
				    name, where, (int)out[i].key->start_mark.line + 1);
		} else {
			out[i].key = k;
			out[i].val = v;
		}
	}
	ok = true;
out:
	return ok;
}

bool confdoc_duration(struct confdoc *x, const yaml_node_t *n, const char *what,
		      uint64_t min_ms, uint64_t max_ms, uint64_t *ms)
{
	const char *t = confdoc_scalar(x, n, what, "\"10s\"");
	bool ok = false;
	int rc;

	if (t == NULL)
		goto out;
	rc = confval_duration(t, ms);
	if (rc == MOAT_EINVAL) {
		confdoc_err(x, n, "\"%s\" is not a valid duration for %s; expected a whole "
			    "number with a unit ms, s, m, h or d, like \"10s\"", t, what);
	} else if (rc < 0 || *ms > max_ms) {
		confdoc_err(x, n, "\"%s\" is too long for %s; the maximum is %llums (about %llud)",
			    t, what, (unsigned long long)max_ms,
			    (unsigned long long)(max_ms / 86400000u));
	} else if (*ms < min_ms) {
		confdoc_err(x, n, "\"%s\" is too short for %s; expected at least %llu%s", t, what,
			    (unsigned long long)(min_ms % 1000 ? min_ms : min_ms / 1000),
			    min_ms % 1000 ? "ms" : "s");
	} else {
		ok = true;
	}
out:
	return ok;
}
