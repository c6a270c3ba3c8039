/*
 * cli.h - the subcommands behind main.c. Each takes the arguments after its
 * name and returns the process exit code (0 ok, 1 failure, 2 usage).
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_ca(int argc, char **argv);
int cli_ban(int argc, char **argv);
int cli_status(int argc, char **argv);
void cli_usage(void);

/* Shared option parsing: "-c FILE" / "--config FILE" / "--config=FILE" and
 * "-h"/"--help". Returns 0, 1 when help was asked, or 2 on a usage error
 * (printed). *config stays NULL when not given. */
int cli_parse_config_opt(const char *cmd, int argc, char **argv, const char **config);

#endif
