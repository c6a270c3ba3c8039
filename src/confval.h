/*
 * confval.h - the value layer of the configuration: YAML nodes read as
 * checked values, with every problem recorded at its file:line:col.
 * conf.c owns the schema (which keys exist where and what they mean); this
 * module owns how one node becomes text (${VAR} expansion), how a mapping's
 * keys are checked, how errors are collected, and the parsers for single
 * strings: durations, sizes, counts, booleans, site names, listen addresses
 * and upstream URLs.
 * The string parsers only judge one string, so they are easy to test and
 * fuzz. Those that can fail for several reasons set *why to a heap message
 * (caller frees) that quotes the offending text and says what would be valid.
 * Thread: control thread (the address parsers may block on DNS).
 */
#ifndef MOAT_CONFVAL_H
#define MOAT_CONFVAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "conf.h"

/* "500ms", "10s", "5m", "1h", "7d" -> milliseconds. Zero is returned as 0
 * (callers decide whether it is allowed). Returns 0, MOAT_EINVAL for a
 * malformed value, MOAT_ETOOBIG when it does not fit in 64 bits. */
int confval_duration(const char *s, uint64_t *ms);

/* "32768", "32K", "32KiB", "1M", "1MiB", "2G", "2GiB" (suffix
 * case-insensitive; K and KiB both mean 1024) -> bytes.
 * Returns 0, MOAT_EINVAL or MOAT_ETOOBIG. */
int confval_size(const char *s, uint64_t *bytes);

/* Decimal digits only, value <= max. Returns 0, MOAT_EINVAL or MOAT_ETOOBIG. */
int confval_uint(const char *s, uint64_t max, uint64_t *v);

/* "true" / "false". Returns 0 or MOAT_EINVAL. */
int confval_bool(const char *s, bool *v);

/*
 * Canonical site name: lowercase, trailing dot stripped, labels of
 * [a-z0-9-_], optional "*." as the whole first label; IPv4 literals as is,
 * IPv6 literals ("::1" or "[::1]") as "[::1]" (the form uri_canon_host
 * gives for Host headers). On success *out is a heap string.
 * Returns 0 or MOAT_EINVAL with *why set.
 */
int confval_site_name(const char *in, char **out, char **why);

/*
 * A listen address: "HOST:PORT", ":PORT" (all addresses: [::] dual-stack),
 * "[v6]:PORT", or "NAME:PORT" (resolved; one entry per distinct address the
 * host can bind). Appends to the heap array *addrs / *n (caller frees each
 * text and the array). Returns 0 or MOAT_EINVAL with *why set.
 */
int confval_listen(const char *s, struct conf_addr **addrs, size_t *n,
		   char **why);

/*
 * An upstream URL "http://HOST[:PORT][/]". Fills url, hostport and the
 * first resolved address of *up (heap strings; caller frees).
 * Returns 0 or MOAT_EINVAL with *why set; *up is untouched on failure.
 */
int confval_upstream(const char *s, struct conf_upstream *up, char **why);

/* Same socket address (family, address and port)? */
bool confval_addr_is_same(const struct conf_addr *a, const struct conf_addr *b);

/* Would binding both collide: same port and the same or a wildcard address? */
bool confval_addr_overlaps(const struct conf_addr *a, const struct conf_addr *b);

/* Set a->text to the printable form "127.0.0.1:80" / "[::1]:80" (heap). */
void confval_addr_set_text(struct conf_addr *a);

/* ---- YAML documents and positioned errors -------------------------------- */

struct confval_err {
	int line, col;  /* 1-based; 0 when the error has no position */
	size_t seq;     /* keeps equal positions in discovery order */
	char *msg;
};

/* One parse: the document, the errors found so far, expanded scalars. */
struct confval_doc {
	const char *name;        /* file name for messages (not owned) */
	yaml_document_t doc;
	bool loaded;
	size_t nnodes;
	char **sval;             /* expanded text per scalar node, lazily */
	unsigned char *sstate;
	struct confval_err *errs;
	size_t nerrs;
	size_t dropped;          /* errors past the cap, counted only */
};

/* A key/value pair picked out of a mapping by confval_fields. */
struct confval_field {
	yaml_node_t *key;
	yaml_node_t *val;
};

/* Start an empty parse; name is borrowed and must outlive x. */
void confval_doc_init(struct confval_doc *x, const char *name);

/* Parse text[0..len) as exactly one YAML document. Returns its root node
 * (valid until confval_doc_free), or NULL after recording a syntax error,
 * an empty document or a second document. */
yaml_node_t *confval_doc_load(struct confval_doc *x, const char *text, size_t len);

/* Free the document, expanded strings and errors. */
void confval_doc_free(struct confval_doc *x);

/* Record an error at a node's position (no position when n is NULL). */
void confval_err(struct confval_doc *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void confval_err_pos(struct confval_doc *x, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void confval_verr(struct confval_doc *x, const yaml_node_t *n, const char *fmt,
		  va_list ap) __attribute__((format(printf, 3, 0)));

bool confval_has_errors(const struct confval_doc *x);

/* All errors sorted by position, each "file:line:col: message\n" (or
 * "file: message\n" without a position); heap string, caller frees. */
char *confval_errors(struct confval_doc *x);

/* Node by libyaml index (from pairs and items). */
yaml_node_t *confval_node(struct confval_doc *x, int i);

/* The text of a scalar node after ${VAR} expansion from the environment;
 * NULL when expansion failed (reported once per node: unset variable,
 * malformed reference, NUL byte). Valid until confval_doc_free. */
const char *confval_text(struct confval_doc *x, const yaml_node_t *n);

/* As confval_text, but first reports "<what> must be a single value like
 * <example>" and returns NULL when n is a list or a mapping. */
const char *confval_scalar(struct confval_doc *x, const yaml_node_t *n,
			   const char *what, const char *example);

/* How to name a node in a message: its quoted text, "a list" or
 * "a mapping". Heap string, caller frees. */
char *confval_describe(struct confval_doc *x, const yaml_node_t *n);

/* Plain empty, "~" or "null": the value of "key:" with nothing after it. */
bool confval_is_null(const yaml_node_t *n);

/*
 * Match the keys of a mapping against keys[nkeys]: out[i] gets the pair for
 * keys[i] or stays zeroed. Unknown and duplicate keys are reported with
 * `where` ("in site \"a\""), listing the valid keys. Returns false if map
 * is not a mapping (reported as "<what> must be a mapping like <example>").
 */
bool confval_fields(struct confval_doc *x, const yaml_node_t *map,
		    const char *what, const char *where, const char *example,
		    const char *const *keys, size_t nkeys, struct confval_field *out);

/* ---- paths ---------------------------------------------------------------- */

/* dir/p for a relative p, else p; "." segments and doubled slashes removed.
 * Heap string. */
char *confval_path(const char *dir, const char *p);

/* dir made absolute against the working directory ("." when NULL or
 * empty). Heap string. */
char *confval_abs_dir(const char *dir);

#endif
