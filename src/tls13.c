/*
 * tls13.c - see tls13.h.
 *
 * Record protection (RFC 8446 5.2-5.3): the nonce is the traffic IV XORed
 * with the 64-bit sequence number, the additional data is the 5-byte
 * record header, and the protected content is the content, one byte of
 * content type and (here, never sent; when received, stripped) zero
 * padding, followed by a 16-byte tag. Keys come from the traffic secret by
 * HKDF-Expand-Label (7.1); with outputs no longer than the hash, HKDF-Expand
 * is a single HMAC.
 */
#include "tls13.h"
#include "util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <uv.h>

#define MAX_PLAIN 16384                /* 2^14 */
#define MAX_CIPHER (MAX_PLAIN + 256)   /* 2^14 + 256 */
#define HEADER 5
#define TAG 16
#define IV_LEN 12
#define KEY_UPDATE 24
/* KeyUpdates a client may send without application data in between: each
 * costs a key derivation, and a client has no reason to send many. */
#define MAX_KEY_UPDATES 32

enum suite_id { AES128_GCM, AES256_GCM, CHACHA20, NSUITES };

struct suite {
	uint16_t protocol_id; /* as on the wire: 0x1301... */
	const char *cipher;   /* fetched once, see fetch_all */
	size_t key_len;
	size_t hash_len;      /* SHA-256 or SHA-384 */
};

static const struct suite suites[NSUITES] = {
	[AES128_GCM] = { 0x1301, "AES-128-GCM", 16, 32 },
	[AES256_GCM] = { 0x1302, "AES-256-GCM", 32, 48 },
	[CHACHA20] = { 0x1303, "ChaCha20-Poly1305", 32, 32 },
};

static EVP_CIPHER *ciphers[NSUITES];
static EVP_MD *sha256, *sha384;
static uv_once_t fetch_once = UV_ONCE_INIT;

/* Explicit fetches: an implicit one would look the algorithm up again for
 * every connection (for HMAC() it is most of the cost). */
static void fetch_all(void)
{
	size_t i;

	for (i = 0; i < NSUITES; i++)
		ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
}

struct direction {
	EVP_CIPHER_CTX *ctx;
	unsigned char secret[TLS13_MAX_SECRET];
	unsigned char iv[IV_LEN];
	uint64_t seq;
	int enc;                 /* 1 protect, 0 open */
};

struct tls13 {
	const struct suite *s;
	struct direction rd;     /* client to server */
	struct direction wr;     /* server to client */
	bool owe_update;         /* the client asked for a KeyUpdate in return */
	unsigned updates;        /* KeyUpdates since the client's last data */
};

/* HMAC (RFC 2104) with a key no longer than the hash, over the fetched
 * digest; out receives s->hash_len bytes. */
static int hmac(const struct suite *s, const unsigned char *key, const unsigned char *msg,
		size_t n, unsigned char *out)
{
	size_t block = s->hash_len == 48 ? 128 : 64, i;
	const EVP_MD *md = s->hash_len == 48 ? sha384 : sha256;
	unsigned char pad[128], inner[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = MOAT_ETLS;

	if (ctx == NULL || md == NULL)
		goto out;
	memset(pad, 0x36, block);
	for (i = 0; i < s->hash_len; i++)
		pad[i] ^= key[i];
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, block) != 1 ||
	    EVP_DigestUpdate(ctx, msg, n) != 1 || EVP_DigestFinal_ex(ctx, inner, NULL) != 1)
		goto out;
	memset(pad, 0x5c, block);
	for (i = 0; i < s->hash_len; i++)
		pad[i] ^= key[i];
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, block) != 1 ||
	    EVP_DigestUpdate(ctx, inner, s->hash_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* HKDF-Expand-Label(secret, label, "", len), len <= hash length */
static int expand_label(const struct suite *s, const unsigned char *secret, const char *label,
			unsigned char *out, size_t len)
{
	unsigned char info[2 + 1 + 6 + 16 + 1 + 1];
	unsigned char t[EVP_MAX_MD_SIZE];
	size_t llen = strlen(label), n = 0;
	int rc = MOAT_ETLS;

	if (len > s->hash_len || llen > 16)
		goto out;
	info[n++] = (unsigned char)(len >> 8);
	info[n++] = (unsigned char)len;
	info[n++] = (unsigned char)(6 + llen);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, llen);
	n += llen;
	info[n++] = 0;    /* empty context */
	info[n++] = 0x01; /* T(1) */
	if (hmac(s, secret, info, n, t) != 0)
		goto out;
	memcpy(out, t, len);
	rc = 0;
out:
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
}

/* Key and IV from d->secret; the context keeps its cipher. */
static int install(const struct suite *s, struct direction *d)
{
	unsigned char key[32];
	int rc = MOAT_ETLS;

	if (expand_label(s, d->secret, "key", key, s->key_len) != 0 ||
	    expand_label(s, d->secret, "iv", d->iv, IV_LEN) != 0)
		goto out;
	if (EVP_CipherInit_ex(d->ctx, NULL, NULL, key, NULL, d->enc) != 1)
		goto out;
	d->seq = 0;
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

static int open_direction(const struct suite *s, EVP_CIPHER *cipher, struct direction *d,
			  const unsigned char *secret, int enc)
{
	d->enc = enc;
	memcpy(d->secret, secret, s->hash_len);
	d->ctx = EVP_CIPHER_CTX_new();
	if (d->ctx == NULL || EVP_CipherInit_ex(d->ctx, cipher, NULL, NULL, NULL, enc) != 1)
		return MOAT_ETLS;
	return install(s, d);
}

/* RFC 8446 7.2: the next generation of a traffic secret */
static int update(const struct suite *s, struct direction *d)
{
	unsigned char next[TLS13_MAX_SECRET];
	int rc;

	rc = expand_label(s, d->secret, "traffic upd", next, s->hash_len);
	if (rc == 0) {
		memcpy(d->secret, next, s->hash_len);
		rc = install(s, d);
	}
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

static void nonce(const struct direction *d, unsigned char *n)
{
	size_t i;

	memcpy(n, d->iv, IV_LEN);
	for (i = 0; i < 8; i++)
		n[IV_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

size_t tls13_record_size(const char *buf, size_t len)
{
	const unsigned char *b = (const unsigned char *)buf;
	size_t n;

	if (len < HEADER)
		return 0;
	n = ((size_t)b[3] << 8) | b[4];
	if (n > MAX_CIPHER)
		return HEADER; /* refused by tls13_open from the header alone */
	return len >= HEADER + n ? HEADER + n : 0;
}

struct tls13 *tls13_take_over(SSL *ssl, const struct tls13_secrets *sec,
			      const char *last_flight, size_t last_len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	uint64_t written = 0;
	size_t off = 0, n;

	if (SSL_version(ssl) != TLS1_3_VERSION || c == NULL || SSL_has_pending(ssl) ||
	    SSL_pending(ssl) > 0)
		return NULL;
	/* Every record of the flight that completed the handshake (the
	 * tickets) is under the server's application key already. */
	while (off < last_len) {
		n = tls13_record_size(last_flight + off, last_len - off);
		if (n <= HEADER || (unsigned char)last_flight[off] != TLS13_APPDATA)
			return NULL;
		written++;
		off += n;
	}
	/* the tickets are the only records expected there */
	if (written > SSL_get_num_tickets(ssl))
		return NULL;
	return tls13_new(SSL_CIPHER_get_protocol_id(c), sec, written);
}

struct tls13 *tls13_new(uint16_t suite, const struct tls13_secrets *sec, uint64_t wr_seq)
{
	const struct suite *s = NULL;
	struct tls13 *t;
	size_t i;

	uv_once(&fetch_once, fetch_all);
	for (i = 0; i < NSUITES; i++)
		if (suites[i].protocol_id == suite && ciphers[i] != NULL)
			s = &suites[i];
	if (s == NULL || sec->client_len != s->hash_len || sec->server_len != s->hash_len)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->s = s;
	if (open_direction(s, ciphers[s - suites], &t->rd, sec->client, 0) != 0 ||
	    open_direction(s, ciphers[s - suites], &t->wr, sec->server, 1) != 0) {
		tls13_free(t);
		return NULL;
	}
	t->wr.seq = wr_seq;
	return t;
}

void tls13_free(struct tls13 *t)
{
	if (t == NULL)
		return;
	EVP_CIPHER_CTX_free(t->rd.ctx);
	EVP_CIPHER_CTX_free(t->wr.ctx);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

int tls13_seal(struct tls13 *t, unsigned char type, const void *data, size_t len,
	       struct outbuf *out)
{
	static const unsigned char ours[] = { KEY_UPDATE, 0, 0, 1, 0 }; /* not requested */
	const unsigned char *p = data;
	unsigned char n[IV_LEN];
	unsigned char *r;
	size_t k;
	int l;

	/* The KeyUpdate a client asked for goes before the next application
	 * data, under the old key; then the write key moves (4.6.3). However
	 * many requests came, one answer is owed. */
	if (t->owe_update && type == TLS13_APPDATA) {
		t->owe_update = false;
		if (tls13_seal(t, TLS13_HANDSHAKE, ours, sizeof(ours), out) != 0 ||
		    update(t->s, &t->wr) != 0)
			return MOAT_ETLS;
	}
	do {
		k = len < MAX_PLAIN ? len : MAX_PLAIN;
		if (t->wr.seq == UINT64_MAX)
			return MOAT_ETLS;
		r = (unsigned char *)outbuf_room(out, HEADER + k + 1 + TAG);
		r[0] = TLS13_APPDATA;
		r[1] = 0x03;
		r[2] = 0x03;
		r[3] = (unsigned char)((k + 1 + TAG) >> 8);
		r[4] = (unsigned char)(k + 1 + TAG);
		nonce(&t->wr, n);
		if (EVP_EncryptInit_ex(t->wr.ctx, NULL, NULL, NULL, n) != 1 ||
		    EVP_EncryptUpdate(t->wr.ctx, NULL, &l, r, HEADER) != 1 ||
		    (k > 0 && EVP_EncryptUpdate(t->wr.ctx, r + HEADER, &l, p, (int)k) != 1) ||
		    EVP_EncryptUpdate(t->wr.ctx, r + HEADER + k, &l, &type, 1) != 1 ||
		    EVP_EncryptFinal_ex(t->wr.ctx, r + HEADER + k + 1, &l) != 1 ||
		    EVP_CIPHER_CTX_ctrl(t->wr.ctx, EVP_CTRL_AEAD_GET_TAG, TAG,
					r + HEADER + k + 1) != 1)
			return MOAT_ETLS;
		out->len += HEADER + k + 1 + TAG;
		t->wr.seq++;
		p += k;
		len -= k;
	} while (len > 0);
	return 0;
}

static int fail(unsigned char *alert, unsigned char what)
{
	*alert = what;
	return MOAT_ETLS;
}

int tls13_open(struct tls13 *t, const char *buf, size_t size, char *dst, unsigned char *type,
	       size_t *n, unsigned char *alert)
{
	const unsigned char *b = (const unsigned char *)buf;
	unsigned char *d = (unsigned char *)dst;
	unsigned char nc[IV_LEN];
	size_t len, p;
	int l;

	/* after the handshake only protected records may come (5, 5.2) */
	if (b[0] != TLS13_APPDATA)
		return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
	len = ((size_t)b[3] << 8) | b[4];
	if (len > MAX_CIPHER)
		return fail(alert, TLS13_A_RECORD_OVERFLOW);
	if (len < 1 + TAG || size != HEADER + len || t->rd.seq == UINT64_MAX)
		return fail(alert, TLS13_A_BAD_RECORD_MAC);
	nonce(&t->rd, nc);
	if (EVP_DecryptInit_ex(t->rd.ctx, NULL, NULL, NULL, nc) != 1 ||
	    EVP_DecryptUpdate(t->rd.ctx, NULL, &l, b, HEADER) != 1 ||
	    EVP_DecryptUpdate(t->rd.ctx, d, &l, b + HEADER, (int)(len - TAG)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->rd.ctx, EVP_CTRL_AEAD_SET_TAG, TAG,
				(void *)(b + HEADER + len - TAG)) != 1 ||
	    EVP_DecryptFinal_ex(t->rd.ctx, d + len - TAG, &l) != 1)
		return fail(alert, TLS13_A_BAD_RECORD_MAC);
	t->rd.seq++;
	/* the content type is the last non-zero byte (5.4) */
	for (p = len - TAG; p > 0 && d[p - 1] == 0; p--)
		;
	if (p == 0)
		return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
	*type = d[p - 1];
	*n = p - 1;
	if (*n > MAX_PLAIN)
		return fail(alert, TLS13_A_RECORD_OVERFLOW);
	if (*type != TLS13_APPDATA && *type != TLS13_ALERT && *type != TLS13_HANDSHAKE)
		return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
	/* zero-length fragments are only allowed for application data */
	if (*n == 0 && *type != TLS13_APPDATA)
		return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
	if (*type == TLS13_APPDATA && *n > 0)
		t->updates = 0;
	return 0;
}

int tls13_post_handshake(struct tls13 *t, const unsigned char *msg, size_t len,
			 unsigned char *alert)
{
	size_t body;

	while (len > 0) {
		/* a message split across records is refused: the only one a
		 * client may send here is 5 bytes long */
		if (len < 4)
			return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
		body = ((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3];
		if (4 + body > len)
			return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
		if (msg[0] != KEY_UPDATE)
			return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
		if (body != 1)
			return fail(alert, TLS13_A_DECODE_ERROR);
		if (msg[4] > 1)
			return fail(alert, TLS13_A_ILLEGAL_PARAMETER);
		/* the key changes after this message: nothing may follow it in
		 * the same record (5.1) */
		if (len != 5)
			return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
		if (++t->updates > MAX_KEY_UPDATES)
			return fail(alert, TLS13_A_UNEXPECTED_MESSAGE);
		if (update(t->s, &t->rd) != 0)
			return fail(alert, TLS13_A_INTERNAL_ERROR);
		if (msg[4] == 1)
			t->owe_update = true; /* answered by tls13_seal */
		msg += 5;
		len -= 5;
	}
	return 0;
}
