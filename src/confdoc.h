/*
 * confdoc.h - the configuration file as a YAML document: parsed as exactly
 * one document (syntax errors placed at file:line:col), problems collected
 * rather than stopping at the first, scalars read as text after ${VAR}
 * expansion from the environment, and a mapping's keys checked against a
 * fixed list.
 * conf.c owns the schema (which keys exist where and what they mean) and
 * confval.c the parsers of single strings; this module owns how a node
 * becomes text and how errors are recorded and reported.
 * Ownership: a struct confdoc owns the libyaml document, the expanded
 * strings and the messages; the nodes and texts it hands out are borrowed
 * and valid until confdoc_free.
 * Thread: control thread.
 */
#ifndef MOAT_CONFDOC_H
#define MOAT_CONFDOC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

struct confdoc_err {
	int line, col;  /* 1-based; 0 when the error has no position */
	size_t seq;     /* keeps equal positions in discovery order */
	char *msg;
};

/* One parse: the document, the errors found so far, expanded scalars. */
struct confdoc {
	const char *name;        /* file name for messages (not owned) */
	yaml_document_t doc;
	bool loaded;
	size_t nnodes;
	char **sval;             /* expanded text per scalar node, lazily */
	unsigned char *sstate;
	struct confdoc_err *errs;
	size_t nerrs;
	size_t dropped;          /* errors past the cap, counted only */
};

/* A key/value pair picked out of a mapping by confdoc_fields. */
struct confdoc_field {
	yaml_node_t *key;
	yaml_node_t *val;
};

/* Start an empty parse; name is borrowed and must outlive x. */
void confdoc_init(struct confdoc *x, const char *name);

/* Parse text[0..len) as exactly one YAML document. Returns its root node
 * (valid until confdoc_free), or NULL after recording a syntax error,
 * an empty document or a second document. */
yaml_node_t *confdoc_load(struct confdoc *x, const char *text, size_t len);

/* Free the document, expanded strings and errors. */
void confdoc_free(struct confdoc *x);

/* Record an error at a node's position (no position when n is NULL). */
void confdoc_err(struct confdoc *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void confdoc_err_pos(struct confdoc *x, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void confdoc_verr(struct confdoc *x, const yaml_node_t *n, const char *fmt,
		  va_list ap) __attribute__((format(printf, 3, 0)));

bool confdoc_has_errors(const struct confdoc *x);

/* All errors sorted by position, each "file:line:col: message\n" (or
 * "file: message\n" without a position); heap string, caller frees. */
char *confdoc_errors(struct confdoc *x);

/* Node by libyaml index (from pairs and items). */
yaml_node_t *confdoc_node(struct confdoc *x, int i);

/* The text of a scalar node after ${VAR} expansion from the environment;
 * NULL when expansion failed (reported once per node: unset variable,
 * malformed reference, NUL byte). Valid until confdoc_free. */
const char *confdoc_text(struct confdoc *x, const yaml_node_t *n);

/* As confdoc_text, but first reports "<what> must be a single value like
 * <example>" and returns NULL when n is a list or a mapping. */
const char *confdoc_scalar(struct confdoc *x, const yaml_node_t *n,
			   const char *what, const char *example);

/* How to name a node in a message: its quoted text, "a list" or
 * "a mapping". Heap string, caller frees. */
char *confdoc_describe(struct confdoc *x, const yaml_node_t *n);

/* Plain empty, "~" or "null": the value of "key:" with nothing after it. */
bool confdoc_is_null(const yaml_node_t *n);

/*
 * Match the keys of a mapping against keys[nkeys]: out[i] gets the pair for
 * keys[i] or stays zeroed. Unknown and duplicate keys are reported with
 * `where` ("in site \"a\""), listing the valid keys. Returns false if map
 * is not a mapping (reported as "<what> must be a mapping like <example>").
 */
bool confdoc_fields(struct confdoc *x, const yaml_node_t *map,
		    const char *what, const char *where, const char *example,
		    const char *const *keys, size_t nkeys, struct confdoc_field *out);

/* A duration scalar ("10s") between min_ms and max_ms into *ms; false
 * after reporting why not (what names the setting in the message). */
bool confdoc_duration(struct confdoc *x, const yaml_node_t *n, const char *what,
		      uint64_t min_ms, uint64_t max_ms, uint64_t *ms);

#endif
