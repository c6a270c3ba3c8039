/*
 * main.c - CLI dispatch only.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "help";

	if (strcmp(cmd, "run") == 0)
		return cli_run(argc - 2, argv + 2);
	if (strcmp(cmd, "check") == 0)
		return cli_check(argc - 2, argv + 2);
	if (strcmp(cmd, "ca") == 0)
		return cli_ca(argc - 2, argv + 2);
	if (strcmp(cmd, "ban") == 0)
		return cli_ban(argc - 2, argv + 2);
	if (strcmp(cmd, "status") == 0)
		return cli_status(argc - 2, argv + 2);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("moat %s\n", MOAT_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		cli_usage();
		return 0;
	}
	fprintf(stderr, "moat: unknown command \"%s\"; try \"moat help\"\n", cmd);
	return 2;
}
