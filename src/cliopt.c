/*
 * cliopt.c - argument parsing for `moat ca`, `moat ban` and `moat status`
 * (see cliopt.h).
 */
#include "cliopt.h"
#include "util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Looked up before the command's own table. */
static const struct cliopt builtin[] = {
	{"--config", "-c", CLIOPT_VALUE, 0, offsetof(struct cliopt_args, config)},
	{"--data", NULL, CLIOPT_VALUE, 0, offsetof(struct cliopt_args, data)},
	{"--help", "-h", CLIOPT_FLAG, 0, offsetof(struct cliopt_args, help)},
};

static bool is_help(const struct cliopt_cmd *cmd, unsigned sub)
{
	return sub != 0 && sub < cmd->nsubs && strcmp(cmd->subs[sub], "help") == 0;
}

int cliopt_usage_error(const struct cliopt_cmd *cmd, unsigned sub, const char *fmt, ...)
{
	const char *s = sub != 0 && !is_help(cmd, sub) ? cmd->subs[sub] : NULL;
	va_list ap;

	fprintf(stderr, "moat %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; try \"moat %s%s%s --help\"\n", cmd->name, s != NULL ? " " : "",
		s != NULL ? s : "");
	return 2;
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* a is an option word; len is how much of it names the option ("--x=v": 3). */
static const struct cliopt *find(const struct cliopt *t, size_t n, const char *a, size_t len)
{
	size_t k;

	for (k = 0; k < n; k++)
		if ((strlen(t[k].name) == len && strncmp(a, t[k].name, len) == 0) ||
		    (t[k].alt != NULL && strcmp(a, t[k].alt) == 0))
			return &t[k];
	return NULL;
}

static void set(const struct cliopt *d, void *base, char *value)
{
	char *p = (char *)base + d->off;

	switch (d->kind) {
	case CLIOPT_FLAG:
		*(bool *)p = true;
		break;
	case CLIOPT_VALUE:
		*(const char **)p = value;
		break;
	case CLIOPT_SECRET:
		wipe_free(*(char **)p);
		*(char **)p = xstrdup(value);
		/* Shrink the window in which other users can read it in ps. */
		OPENSSL_cleanse(value, strlen(value));
		break;
	}
}

/* argv[*i] starts with '-'; a value in the next word moves *i past it. */
static int option(const struct cliopt_cmd *cmd, int argc, char **argv, int *i,
		  struct cliopt_args *args, void *opts)
{
	char *a = argv[*i], *eq = strchr(a, '='), *value = NULL;
	size_t len = eq != NULL && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
	bool inline_value = len != strlen(a);
	const struct cliopt *d = find(builtin, sizeof(builtin) / sizeof(builtin[0]), a, len);
	void *base = args;

	if (d == NULL) {
		d = find(cmd->opts, cmd->nopts, a, len);
		base = opts;
	}
	if (d == NULL)
		return cliopt_usage_error(cmd, args->sub, "unknown option \"%s\"", a);
	if (d->kind == CLIOPT_FLAG && inline_value)
		return cliopt_usage_error(cmd, args->sub, "%s takes no value", d->name);
	if (inline_value) {
		value = eq + 1;
	} else if (d->kind != CLIOPT_FLAG) {
		if (*i + 1 >= argc)
			return cliopt_usage_error(cmd, args->sub, "%s needs a value", d->name);
		value = argv[++*i];
	}
	set(d, base, value);
	return 0;
}

/* The subcommand, or the positional after it. */
static int word(const struct cliopt_cmd *cmd, struct cliopt_args *args, const char *w)
{
	unsigned k;

	if (cmd->nsubs > 0 && (args->sub == 0 || (is_help(cmd, args->sub) && !args->help))) {
		/* "moat ca help issue" is "moat ca issue --help". */
		if (args->sub != 0)
			args->help = true;
		args->sub = 0;
		for (k = 1; k < cmd->nsubs && args->sub == 0; k++)
			if (strcmp(w, cmd->subs[k]) == 0)
				args->sub = k;
		if (args->sub == 0)
			return cliopt_usage_error(cmd, 0, "unknown command \"%s\"%s", w,
						  cmd->unknown_sub_hint != NULL ?
						  cmd->unknown_sub_hint : "");
		return 0;
	}
	if (args->word == NULL && (cmd->positional & (1u << args->sub))) {
		args->word = w;
		return 0;
	}
	return cliopt_usage_error(cmd, args->sub, "unexpected argument \"%s\"", w);
}

/* Options may come before or after the subcommand and its positional. */
int cliopt_parse(const struct cliopt_cmd *cmd, int argc, char **argv, struct cliopt_args *args,
		 void *opts)
{
	bool dashdash = false;
	int i, rc = 0;

	for (i = 0; i < argc && rc == 0; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0)
			dashdash = true;
		else if (dashdash || argv[i][0] != '-' || argv[i][1] == '\0')
			rc = word(cmd, args, argv[i]);
		else
			rc = option(cmd, argc, argv, &i, args, opts);
	}
	/* A bare "moat ca help" (or "help --help") asks for the command's usage. */
	if (rc == 0 && is_help(cmd, args->sub)) {
		args->help = true;
		args->sub = 0;
	}
	return rc;
}

int cliopt_check(const struct cliopt_cmd *cmd, const struct cliopt_args *args,
		 const void *opts)
{
	const struct cliopt *d;
	const char *p;
	bool given;
	size_t k;

	for (k = 0; k < cmd->nopts; k++) {
		d = &cmd->opts[k];
		p = (const char *)opts + d->off;
		given = d->kind == CLIOPT_FLAG ? *(const bool *)p : *(const char *const *)p != NULL;
		if (given && d->subs != 0 && !(d->subs & (1u << args->sub)))
			return cliopt_usage_error(cmd, args->sub, "%s does not apply to this command",
						  d->name);
	}
	if (args->config != NULL && args->data != NULL)
		return cliopt_usage_error(cmd, args->sub, "%s", "give -c FILE or --data DIR, not both");
	return 0;
}

void cliopt_free(const struct cliopt_cmd *cmd, void *opts)
{
	char **p;
	size_t k;

	if (opts == NULL)
		return;
	for (k = 0; k < cmd->nopts; k++) {
		if (cmd->opts[k].kind != CLIOPT_SECRET)
			continue;
		p = (char **)((char *)opts + cmd->opts[k].off);
		wipe_free(*p);
		*p = NULL;
	}
}
