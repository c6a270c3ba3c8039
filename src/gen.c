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

/* The configuration outlives any one generation when certificates are
 * renewed without a reload, so it carries its own count. */
struct conf_ref {
	_Atomic int refs;
	struct conf *conf;
};

static _Atomic uint64_t next_id = 1;

static void cref_unref(struct conf_ref *cr)
{
	if (atomic_fetch_sub(&cr->refs, 1) != 1)
		return;
	conf_free(cr->conf);
	free(cr);
}

static struct gen *build(struct conf_ref *cr)
{
	struct gen *g = xcalloc(1, sizeof(*g));

	atomic_init(&g->refs, 1);
	g->id = atomic_fetch_add(&next_id, 1);
	g->cref = cr;
	g->conf = cr->conf;
	g->tls = tls_sites_new(cr->conf);
	if (g->tls == NULL) {
		free(g);
		cref_unref(cr);
		return NULL;
	}
	return g;
}

struct gen *gen_new(struct conf *c)
{
	struct conf_ref *cr;

	if (fs_mkdir_private(c->data) != 0) {
		log_error("cannot create the data directory %s", c->data);
		conf_free(c);
		return NULL;
	}
	cr = xcalloc(1, sizeof(*cr));
	atomic_init(&cr->refs, 1);
	cr->conf = c;
	return build(cr);
}

struct gen *gen_renew(struct gen *old)
{
	atomic_fetch_add(&old->cref->refs, 1);
	return build(old->cref);
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
	cref_unref(g->cref);
	free(g);
}
