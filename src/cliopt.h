/*
 * cliopt.h - the argument syntax shared by `moat ca`, `moat ban` and
 * `moat status`: an optional subcommand word ("moat ca issue"), at most one
 * positional after it ("issue NAME"), options before or after either, from
 * a table ("--days 30", "--days=30", "-c FILE"), "--" to end the options,
 * and "help SUB" meaning "SUB --help". Every command has -c/--config FILE,
 * --data DIR and -h/--help built in (struct cliopt_args); its table lists
 * the rest.
 *
 * Usage errors are printed here, to stderr, as
 *   moat CMD: <message>; try "moat CMD [SUB] --help"
 * and the functions that print one return 2, the CLI's usage exit code
 * (cli.h); 0 means carry on.
 *
 * Ownership: the command description and argv are borrowed. Values of
 * CLIOPT_VALUE options, the positional and --config/--data point into argv,
 * so argv must outlive the results. A CLIOPT_SECRET value is copied to the
 * heap (the caller's: cliopt_free wipes and frees it) and its bytes in argv
 * are wiped at once, so other users see it in ps for a shorter time.
 * Thread: the CLI's main thread; no state is kept between calls.
 */
#ifndef MOAT_CLIOPT_H
#define MOAT_CLIOPT_H

#include <stdbool.h>
#include <stddef.h>

/* What a table option stores at its offset in the caller's options struct. */
enum cliopt_kind {
	CLIOPT_FLAG,   /* bool, set to true; "--flag=x" is refused */
	CLIOPT_VALUE,  /* const char *, into argv */
	CLIOPT_SECRET, /* char *, a heap copy; the argv bytes are wiped */
};

struct cliopt {
	const char *name;      /* "--days"; also read as "--days=VALUE" */
	const char *alt;       /* another spelling ("-c"), matched whole; or NULL */
	enum cliopt_kind kind;
	unsigned subs;         /* (1u << sub) for each subcommand it applies to; 0: all */
	size_t off;            /* offsetof the field in the caller's options struct */
};

struct cliopt_cmd {
	const char *name;              /* "ca", as in "moat ca: ..." */
	const char *const *subs;       /* subcommand names by number; [0] (none) unused;
					* one named "help" makes "help SUB" work */
	unsigned nsubs;                /* entries in subs; 0: no subcommands, no positional */
	unsigned positional;           /* (1u << sub) for each that takes one positional */
	const char *unknown_sub_hint;  /* appended to "unknown command \"X\"", or NULL */
	const struct cliopt *opts;
	size_t nopts;
};

/* What every command has; zero it before cliopt_parse. */
struct cliopt_args {
	unsigned sub;       /* number in cmd->subs; 0: none given */
	const char *word;   /* the positional, or NULL */
	const char *config; /* -c FILE, --config FILE */
	const char *data;   /* --data DIR */
	bool help;          /* --help, -h or "help [SUB]"; after cliopt_parse returned 0,
			     * sub is never the "help" one (a bare "help" leaves 0) */
};

/*
 * Read argv (the arguments after "moat CMD") into *args and, for the
 * options of cmd->opts, into the struct at opts. The last of a repeated
 * option wins. Stops at the first usage error. Returns 0 or 2 (printed).
 * *opts may hold CLIOPT_SECRET copies either way: cliopt_free it.
 */
int cliopt_parse(const struct cliopt_cmd *cmd, int argc, char **argv, struct cliopt_args *args,
		 void *opts);

/*
 * After cliopt_parse, unless help was asked: refuses a table option given
 * to a subcommand it does not apply to, then -c together with --data.
 * Returns 0 or 2 (printed).
 */
int cliopt_check(const struct cliopt_cmd *cmd, const struct cliopt_args *args,
		 const void *opts);

/* Prints "moat CMD: <fmt...>; try ..." to stderr and returns 2. sub as in
 * struct cliopt_args (0, or "help", give the command's own --help). */
int cliopt_usage_error(const struct cliopt_cmd *cmd, unsigned sub, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Wipes and frees the CLIOPT_SECRET copies in the struct at opts and sets
 * them to NULL. NULL opts is a no-op. */
void cliopt_free(const struct cliopt_cmd *cmd, void *opts);

#endif
