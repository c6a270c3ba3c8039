/*
 * jws.c - see jws.h.
 */
#include "jws.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#define P256_BYTES 32 /* one coordinate, one half of an ES256 signature */

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool jws_key_is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t len = 0;
	int nid;

	if (key == NULL || !EVP_PKEY_is_a(key, "EC"))
		return false;
	if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1)
		return false;
	/* Providers may report the SECG/X9.62 name or the NIST one. */
	nid = OBJ_sn2nid(group);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(group);
	return nid == NID_X9_62_prime256v1;
}

char *jws_b64url(const void *p, size_t n)
{
	const unsigned char *in = p;
	char *out, *o;
	size_t i;
	uint32_t v;

	if (n > (SIZE_MAX - 8) / 4 * 3)
		abort(); /* no caller hands us anything near this */
	out = xmalloc(n / 3 * 4 + 4);
	o = out;
	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
		*o++ = b64url_alphabet[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Strict on purpose: a value we decode (an ARI identifier, a test vector)
 * has exactly one valid spelling, so two spellings of the same bytes are
 * never both accepted.
 */
int jws_b64url_decode(const char *s, unsigned char **out, size_t *n)
{
	size_t len = strlen(s), i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	unsigned char *buf;
	int v;

	*out = NULL;
	*n = 0;
	if (len % 4 == 1)
		return MOAT_EINVAL;
	buf = xmalloc(len / 4 * 3 + 3);
	for (i = 0; i < len; i++) {
		v = b64url_value((unsigned char)s[i]);
		if (v < 0)
			goto bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* 2 or 4 bits are left over after a partial group; they must be 0. */
	if (acc != 0)
		goto bad;
	buf[o] = '\0';
	*out = buf;
	*n = o;
	return 0;
bad:
	free(buf);
	return MOAT_EINVAL;
}

char *jws_jwk(EVP_PKEY *key)
{
	unsigned char x[P256_BYTES], y[P256_BYTES];
	BIGNUM *bx = NULL, *by = NULL;
	char *xs = NULL, *ys = NULL, *jwk = NULL;

	if (!jws_key_is_p256(key)) {
		log_error("%s: not an ECDSA P-256 key", __func__);
		return NULL;
	}
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1 ||
	    BN_bn2binpad(bx, x, sizeof(x)) != (int)sizeof(x) ||
	    BN_bn2binpad(by, y, sizeof(y)) != (int)sizeof(y)) {
		x509_error(__func__, "reading the public point");
		goto out;
	}
	xs = jws_b64url(x, sizeof(x));
	ys = jws_b64url(y, sizeof(y));
	/* base64url needs no JSON escaping, and RFC 7638 wants exactly this
	 * member order and no whitespace, so no JSON library is involved. */
	jwk = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
out:
	free(xs);
	free(ys);
	BN_free(bx);
	BN_free(by);
	return jwk;
}

static int sha256(const void *p, size_t n, unsigned char md[32])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
		x509_error(__func__, "SHA-256");
		return MOAT_ETLS;
	}
	return 0;
}

char *jws_thumbprint(EVP_PKEY *key)
{
	unsigned char md[32];
	char *jwk = jws_jwk(key), *tp = NULL;

	if (jwk == NULL)
		return NULL;
	if (sha256(jwk, strlen(jwk), md) == 0)
		tp = jws_b64url(md, sizeof(md));
	free(jwk);
	return tp;
}

char *jws_key_authorization(const char *token, EVP_PKEY *account_key)
{
	char *tp, *ka;

	if (token == NULL || token[0] == '\0') {
		log_error("%s: empty challenge token", __func__);
		return NULL;
	}
	tp = jws_thumbprint(account_key);
	if (tp == NULL)
		return NULL;
	ka = xasprintf("%s.%s", token, tp);
	free(tp);
	return ka;
}

/* The protected header as compact JSON; jansson escapes url, nonce and kid,
 * which come from the server. NULL on failure (logged). */
static char *protected_header(EVP_PKEY *key, const char *kid, const char *nonce,
			      const char *url)
{
	json_t *h, *jwk_obj = NULL;
	char *jwk = NULL, *out = NULL;
	int bad;

	h = json_object();
	if (h == NULL)
		abort();
	bad = json_object_set_new(h, "alg", json_string("ES256")) != 0 ||
	      json_object_set_new(h, "nonce", json_string(nonce)) != 0 ||
	      json_object_set_new(h, "url", json_string(url)) != 0;
	if (bad) {
		log_error("%s: nonce or url is not valid UTF-8", __func__);
		goto out;
	}
	if (kid != NULL) {
		if (json_object_set_new(h, "kid", json_string(kid)) != 0) {
			log_error("%s: kid is not valid UTF-8", __func__);
			goto out;
		}
	} else {
		jwk = jws_jwk(key);
		if (jwk == NULL)
			goto out;
		jwk_obj = json_loads(jwk, 0, NULL);
		if (jwk_obj == NULL || json_object_set(h, "jwk", jwk_obj) != 0) {
			log_error("%s: building the jwk member", __func__);
			goto out;
		}
	}
	out = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	if (out == NULL)
		log_error("%s: json_dumps failed", __func__);
out:
	json_decref(jwk_obj);
	json_decref(h);
	free(jwk);
	return out;
}

/*
 * ES256 over input: OpenSSL produces a DER ECDSA-Sig-Value, JWS (RFC 7518
 * section 3.4) wants the two integers as fixed 32-byte big-endian halves.
 */
static char *es256(EVP_PKEY *key, const char *input)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *der = NULL, raw[2 * P256_BYTES];
	const unsigned char *p;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig = NULL;
	size_t len = 0;
	char *out = NULL;

	if (ctx == NULL ||
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)input,
			   strlen(input)) != 1)
		goto fail;
	der = xmalloc(len);
	if (EVP_DigestSign(ctx, der, &len, (const unsigned char *)input,
			   strlen(input)) != 1)
		goto fail;
	p = der;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (sig == NULL)
		goto fail;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, P256_BYTES) != P256_BYTES ||
	    BN_bn2binpad(s, raw + P256_BYTES, P256_BYTES) != P256_BYTES)
		goto fail;
	out = jws_b64url(raw, sizeof(raw));
	goto out;
fail:
	x509_error(__func__, "signing with the account key");
out:
	ECDSA_SIG_free(sig);
	free(der);
	EVP_MD_CTX_free(ctx);
	return out;
}

char *jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
	       const char *payload)
{
	char *header = NULL, *prot = NULL, *pay = NULL, *input = NULL, *sig = NULL;
	char *jws = NULL;

	if (nonce == NULL || url == NULL || payload == NULL) {
		log_error("%s: missing nonce, url or payload", __func__);
		return NULL;
	}
	if (!jws_key_is_p256(key)) {
		log_error("%s: the key is not an ECDSA P-256 key", __func__);
		return NULL;
	}
	header = protected_header(key, kid, nonce, url);
	if (header == NULL)
		goto out;
	prot = jws_b64url(header, strlen(header));
	/* POST-as-GET (RFC 8555 6.3): the payload member is "", not "e30". */
	pay = jws_b64url(payload, strlen(payload));
	input = xasprintf("%s.%s", prot, pay);
	sig = es256(key, input);
	if (sig == NULL)
		goto out;
	jws = xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
			prot, pay, sig);
out:
	free(sig);
	free(input);
	free(pay);
	free(prot);
	free(header);
	return jws;
}
