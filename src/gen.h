/*
 * gen.h - a configuration generation: the immutable config snapshot plus
 * what is built from it (TLS contexts). Reference-counted: the control
 * thread holds the current one, each worker holds the one it uses for new
 * connections, and each connection holds the one it started with, so a
 * reload never changes a connection's rules mid-flight.
 * Thread: gen_ref/gen_unref from any thread.
 */
#ifndef MOAT_GEN_H
#define MOAT_GEN_H

#include <stdatomic.h>
#include <stdint.h>

struct conf;
struct tls_sites;

struct conf_ref;

struct gen {
	_Atomic int refs;
	uint64_t id;
	struct conf_ref *cref; /* shared with generations renewed from this one */
	struct conf *conf;     /* cref's configuration */
	struct tls_sites *tls; /* owned */
};

/* Build a generation from a validated config (takes ownership of c, also
 * on failure). Issues internal certificates as needed. Returns NULL after
 * logging why. Refcount starts at 1. Control thread. */
struct gen *gen_new(struct conf *c);

/* A generation with the same configuration as old and freshly built TLS
 * contexts (internal certificates renewed as needed). NULL on failure
 * (logged); old is untouched either way. Control thread. */
struct gen *gen_renew(struct gen *old);

/* refcount +1; returns g. */
struct gen *gen_ref(struct gen *g);

/* refcount -1; frees at zero. NULL is a no-op. */
void gen_unref(struct gen *g);

#endif
