/*
 * clidata.c - see clidata.h.
 */
#include "clidata.h"
#include "conf.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *clidata_dir(const char *config, const char *data, clidata_loader load,
		  struct conf **conf)
{
	struct conf *c;
	char *errs = NULL, *d;

	if (conf != NULL)
		*conf = NULL;
	if (config == NULL)
		return xstrdup(data != NULL ? data : CLIDATA_DEFAULT);
	c = load(config, &errs);
	if (c == NULL) {
		fputs(errs != NULL ? errs : "invalid configuration\n", stderr);
		if (errs != NULL && errs[0] != '\0' && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		free(errs);
		return NULL;
	}
	d = xstrdup(c->data);
	if (conf != NULL)
		*conf = c;
	else
		conf_free(c);
	return d;
}
