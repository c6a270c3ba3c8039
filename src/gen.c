/*
 * gen.c - see gen.h.
 */
#include "gen.h"
#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <stdlib.h>

static _Atomic uint64_t next_id = 1;

struct gen *gen_new(struct conf *c)
{
	struct gen *g = NULL;

	if (fs_mkdir_private(c->data) != 0) {
		log_error("cannot create the data directory %s", c->data);
		goto fail;
	}
	g = xcalloc(1, sizeof(*g));
	atomic_init(&g->refs, 1);
	g->id = atomic_fetch_add(&next_id, 1);
	g->conf = c;
	g->tls = tls_sites_new(c);
	if (g->tls == NULL) {
		free(g);
		goto fail;
	}
	return g;
fail:
	conf_free(c);
	return NULL;
}

struct gen *gen_ref(struct gen *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

void gen_unref(struct gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	tls_sites_free(g->tls);
	conf_free(g->conf);
	free(g);
}
