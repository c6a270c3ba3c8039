/*
 * tlsbio.c - see tlsbio.h.
 */
#include "tlsbio.h"
#include "util.h"

#include <string.h>
#include <uv.h>

#define OUTBUF_MIN 4096

static BIO_METHOD *method;
static uv_once_t method_once = UV_ONCE_INIT;

char *outbuf_room(struct outbuf *o, size_t n)
{
	size_t cap = o->cap;

	if (o->len + n > cap) {
		if (cap < OUTBUF_MIN)
			cap = OUTBUF_MIN;
		while (cap < o->len + n)
			cap *= 2;
		o->p = xrealloc(o->p, cap);
		o->cap = cap;
	}
	return o->p + o->len;
}

void outbuf_append(struct outbuf *o, const void *data, size_t n)
{
	if (n == 0)
		return;
	memcpy(outbuf_room(o, n), data, n);
	o->len += n;
}

void outbuf_free(struct outbuf *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

static int bio_write(BIO *b, const char *data, size_t n, size_t *written)
{
	struct tlsio *io = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	outbuf_append(io->out, data, n);
	*written = n;
	return 1;
}

/* An empty span means "not yet", never end of stream: the connection sees
 * the socket's EOF itself. */
static int bio_read(BIO *b, char *data, size_t n, size_t *got)
{
	struct tlsio *io = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (io->rlen == 0) {
		BIO_set_retry_read(b);
		*got = 0;
		return 0;
	}
	if (n > io->rlen)
		n = io->rlen;
	memcpy(data, io->rp, n);
	io->rp += n;
	io->rlen -= n;
	*got = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tlsio *io = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)io->rlen;
	case BIO_CTRL_WPENDING:
		return 0;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void make_method(void)
{
	method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moat connection");
	if (method == NULL)
		return;
	BIO_meth_set_write_ex(method, bio_write);
	BIO_meth_set_read_ex(method, bio_read);
	BIO_meth_set_ctrl(method, bio_ctrl);
	BIO_meth_set_create(method, bio_create);
}

BIO *tlsbio_new(struct tlsio *io)
{
	BIO *b;

	uv_once(&method_once, make_method);
	if (method == NULL)
		return NULL;
	b = BIO_new(method);
	if (b != NULL)
		BIO_set_data(b, io);
	return b;
}
