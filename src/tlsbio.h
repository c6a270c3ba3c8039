/*
 * tlsbio.h - the byte plumbing under a client connection: an output buffer
 * that collects what is to be written to the socket, and the BIO that
 * OpenSSL runs over.
 *
 * The BIO copies nothing into storage of its own. OpenSSL reads ciphertext
 * from a span the connection lends it (the bytes the socket just delivered,
 * or a leftover the connection saved), and it appends the records it
 * writes to the connection's output buffer. So an idle TLS connection holds
 * no BIO memory at all, and a response's head and body leave in one write.
 *
 * Ownership: struct tlsio and struct outbuf belong to the connection that
 * embeds them; the BIO only points at them and must not outlive them.
 * Thread: the owning worker only (the BIO method itself is shared and
 * immutable once made).
 */
#ifndef MOAT_TLSBIO_H
#define MOAT_TLSBIO_H

#include <openssl/bio.h>
#include <stddef.h>

struct outbuf {
	char *p;       /* heap, NULL when nothing is buffered and none is kept */
	size_t len;
	size_t cap;
};

struct tlsio {
	const char *rp;     /* ciphertext OpenSSL may read next (borrowed) */
	size_t rlen;
	struct outbuf *out; /* where written records go */
};

/* Append n bytes; the buffer grows as needed. Callers bound the total by
 * pausing their producers (conn_pending). Never fails (aborts on OOM). */
void outbuf_append(struct outbuf *o, const void *data, size_t n);

/* Room for n more bytes at o->p + o->len (returned); the caller writes
 * there and then adds what it wrote to o->len. */
char *outbuf_room(struct outbuf *o, size_t n);

/* Free the storage; o is empty afterwards. */
void outbuf_free(struct outbuf *o);

/* A BIO over io (read from io->rp, write to io->out). The caller hands it
 * to SSL_set_bio, which takes ownership. NULL when OpenSSL is out of
 * memory. Any thread. */
BIO *tlsbio_new(struct tlsio *io);

#endif
