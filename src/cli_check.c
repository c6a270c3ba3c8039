/*
 * cli_check.c - `moat check -c FILE`: validate a configuration without
 * touching anything, and show what each site exposes to whom.
 */
#include "cli.h"
#include "clientcert.h"
#include "conf.h"
#include "confprint.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
	printf("usage: moat check -c FILE\n\n"
	       "Validate FILE without starting anything. Prints every error as\n"
	       "FILE:LINE:COL with what would be valid and exits 1, or prints a table\n"
	       "of the sites (host, certificate, upstreams, who can reach it) and exits 0.\n"
	       "Certificate and key files are loaded and matched, client CA and CRL files\n"
	       "are loaded and checked; the internal CA is not created (moat run does that).\n");
}

static void print_errors(const char *errs)
{
	fputs(errs, stderr);
	if (errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
		fputc('\n', stderr);
}

int cli_check(int argc, char **argv)
{
	const char *file = NULL;
	struct conf *c;
	char *errs = NULL, *why = NULL;
	int rc, bad = 0;
	size_t i;

	rc = cli_parse_config_opt("check", argc, argv, &file);
	if (rc == 1) {
		usage();
		return 0;
	}
	if (rc != 0)
		return 2;
	if (file == NULL) {
		fprintf(stderr, "moat check: which file? usage: moat check -c FILE\n");
		return 2;
	}
	c = conf_load(file, &errs);
	if (c == NULL) {
		print_errors(errs ? errs : "invalid configuration\n");
		free(errs);
		return 1;
	}
	for (i = 0; i < c->nsites; i++) {
		const struct conf_site *s = &c->sites[i];
		struct client_trust *t;

		if (s->clients != CONF_CLIENTS_OFF) {
			t = client_trust_new(s, &why);
			if (t == NULL) {
				fprintf(stderr, "%s:%d:%d: site \"%s\": %s\n", c->file, s->line,
					s->col, s->host, why);
				free(why);
				why = NULL;
				bad++;
			}
			client_trust_free(t);
		}
		if (s->tls != CONF_TLS_FILES)
			continue;
		if (tls_check_pair(s->cert_file, s->key_file, &why) != 0) {
			fprintf(stderr, "%s:%d:%d: site \"%s\": %s\n", c->file, s->line, s->col,
				s->host, why);
			free(why);
			why = NULL;
			bad++;
		}
	}
	if (bad == 0)
		confprint_table(c, stdout);
	conf_free(c);
	return bad ? 1 : 0;
}
