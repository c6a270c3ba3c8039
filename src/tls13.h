/*
 * tls13.h - the TLS 1.3 record layer (RFC 8446 section 5) that carries a
 * client connection once OpenSSL has finished its handshake.
 *
 * Why: an OpenSSL SSL object costs about 11 KB for as long as the
 * connection lives, most of it handshake and record-layer machinery an
 * established connection never uses again. After a TLS 1.3 handshake the
 * connection needs only the two traffic secrets, their keys and IVs and
 * two sequence numbers; conn.c hands over to this module and frees the SSL
 * object. A connection that cannot be handed over (TLS 1.2, or anything
 * unexpected) simply stays with OpenSSL.
 *
 * What it implements: AEAD record protection and the padding rules (5.2-
 * 5.4), alerts (6), and the one post-handshake message a client may send
 * to a server that did not ask for a certificate, KeyUpdate (4.6.3), with
 * the traffic-secret update of 7.2. Everything else after the handshake is
 * a fatal unexpected_message.
 *
 * Ownership: tls13_take_over returns a struct the caller frees with
 * tls13_free (keys are wiped). Thread: the owning worker only.
 */
#ifndef MOAT_TLS13_H
#define MOAT_TLS13_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlsbio.h"

#define TLS13_MAX_SECRET 48

/* Application traffic secrets, filled in by the keylog callback (tls.c)
 * while OpenSSL runs the handshake. */
struct tls13_secrets {
	unsigned char client[TLS13_MAX_SECRET];
	unsigned char server[TLS13_MAX_SECRET];
	size_t client_len, server_len;
};

struct tls13;

/* Content types (RFC 8446 5.1) */
#define TLS13_ALERT 21
#define TLS13_HANDSHAKE 22
#define TLS13_APPDATA 23

/* Alert descriptions used here (RFC 8446 6) */
#define TLS13_A_CLOSE_NOTIFY 0
#define TLS13_A_UNEXPECTED_MESSAGE 10
#define TLS13_A_BAD_RECORD_MAC 20
#define TLS13_A_RECORD_OVERFLOW 22
#define TLS13_A_DECODE_ERROR 50
#define TLS13_A_ILLEGAL_PARAMETER 47
#define TLS13_A_INTERNAL_ERROR 80

/*
 * Take over ssl's connection, whose handshake just completed. last_flight
 * holds the bytes OpenSSL wrote in the call that completed it (the
 * NewSessionTicket records, already under the application key): their
 * count is the server's next sequence number. Returns NULL, leaving the
 * connection to OpenSSL, when it is not TLS 1.3 with a known suite and
 * both secrets, or when OpenSSL still holds unread record bytes.
 */
struct tls13 *tls13_take_over(SSL *ssl, const struct tls13_secrets *sec,
			      const char *last_flight, size_t last_len);

/* The record layer for suite (0x1301 AES-128-GCM, 0x1302 AES-256-GCM,
 * 0x1303 ChaCha20-Poly1305) reading with sec->client, writing with
 * sec->server from sequence number wr_seq. NULL for an unknown suite or
 * secrets of the wrong length. (tls13_take_over's last step; the unit
 * tests build both ends of a connection with it.) */
struct tls13 *tls13_new(uint16_t suite, const struct tls13_secrets *sec, uint64_t wr_seq);

/* Wipes the keys; NULL is a no-op. */
void tls13_free(struct tls13 *t);

/* Protect len bytes of content type type as records (at most 2^14 bytes
 * each) appended to out, after a KeyUpdate the client asked for (see
 * tls13_post_handshake). Returns 0, or MOAT_ETLS when the cipher failed
 * or the sequence number is exhausted (the connection must close). */
int tls13_seal(struct tls13 *t, unsigned char type, const void *data, size_t len,
	       struct outbuf *out);

/* Bytes of the first record in buf[0..len) when it is complete, else 0. */
size_t tls13_record_size(const char *buf, size_t len);

/*
 * Open the complete record at buf (size from tls13_record_size) into dst,
 * which needs room for the record's size. On success returns 0 with the
 * inner content type in *type and the content length in *n. On failure
 * returns MOAT_ETLS with the alert to send in *alert.
 */
int tls13_open(struct tls13 *t, const char *buf, size_t size, char *dst, unsigned char *type,
	       size_t *n, unsigned char *alert);

/*
 * Handle the handshake messages of one record (post-handshake: KeyUpdate
 * only). A KeyUpdate that asks for one in return makes the next
 * application-data tls13_seal send moat's KeyUpdate first (one however many
 * were asked for). More than 32 KeyUpdates without application data in
 * between are refused. Returns 0, or MOAT_ETLS with *alert set.
 */
int tls13_post_handshake(struct tls13 *t, const unsigned char *msg, size_t len,
			 unsigned char *alert);

#endif
