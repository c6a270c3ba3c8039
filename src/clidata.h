/*
 * clidata.h - which data directory a CLI command works on: the data: of
 * the configuration given with -c FILE, else --data DIR, else the default.
 * Shared by `moat ca`, `moat ban` and `moat status`.
 * Thread: main thread of a CLI command (may block on DNS via conf_load).
 */
#ifndef MOAT_CLIDATA_H
#define MOAT_CLIDATA_H

struct conf;

#define CLIDATA_DEFAULT "/var/lib/moat"

/* How a command loads its configuration (conf_load or conf_load_for_ca). */
typedef struct conf *(*clidata_loader)(const char *path, char **errs);

/*
 * The data directory as a heap string (caller frees), or NULL after the
 * configuration's errors were printed to stderr. config and data are the
 * -c and --data values (NULL when absent; at most one is set). With config
 * and conf not NULL, the loaded snapshot goes to *conf (caller frees with
 * conf_free); otherwise it is freed here. *conf is NULL without config.
 */
char *clidata_dir(const char *config, const char *data, clidata_loader load,
		  struct conf **conf);

#endif
