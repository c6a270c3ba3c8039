/*
 * dnsmsg.c - see dnsmsg.h. Wire format of RFC 1035 section 4, UPDATE
 * (RFC 2136 section 2) and TSIG (RFC 8945 section 4). No I/O: the
 * exchange with a server is acme_dns.c's.
 */
#include "dnsmsg.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util.h"

#define HDR 12            /* header bytes */
#define NAME_WIRE 255     /* longest name in wire form */
#define CLASS_IN 1
#define CLASS_NONE 254
#define CLASS_ANY 255
#define OPCODE_UPDATE 5
#define FLAG_QR 0x8000
#define FLAG_TC 0x0200
#define FLAG_RD 0x0100
#define MAX_PTRS 127      /* a name has at most 127 labels, so as many pointers */
#define TSIG_OTHER_MAX 64 /* BADTIME carries 6 bytes; nothing needs more */

enum { SEC_ANSWER = 1, SEC_AUTHORITY, SEC_ADDITIONAL };

struct rr {
	uint16_t start;   /* where the record begins (its owner name) */
	uint16_t type, cls;
	uint32_t ttl;
	uint16_t rdoff, rdlen;
	uint8_t section;
};

struct dnsmsg {
	uint8_t *buf;
	size_t len;
	struct rr *rr;
	size_t nrr;
	bool has_q;
	uint16_t qtype, qclass;
	int opt, tsig;    /* index into rr, or -1 */
};

/* An output buffer that remembers an overflow instead of failing each put. */
struct wbuf {
	uint8_t *p;
	size_t cap, len;
	bool over;
};

static void put(struct wbuf *w, const void *b, size_t n)
{
	if (w->over || n > w->cap - w->len) {
		w->over = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void put16(struct wbuf *w, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(w, b, 2);
}

static void put32(struct wbuf *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

static void put48(struct wbuf *w, uint64_t v)
{
	put16(w, (unsigned)(v >> 32) & 0xffff);
	put32(w, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/*
 * Text name to lowercase wire form in out[NAME_WIRE]. Labels of 1..63
 * printable bytes other than '.', '\' and space (no escapes: ACME names
 * are host names); trailing dot optional; "." is the root.
 */
static int name_wire(const char *text, uint8_t *out, size_t *outlen)
{
	size_t o = 0, i = 0, lab, k;
	unsigned char c;

	if (text == NULL || text[0] == '\0')
		return MOAT_EINVAL;
	if (strcmp(text, ".") == 0) {
		out[0] = 0;
		*outlen = 1;
		return 0;
	}
	while (text[i] != '\0') {
		for (lab = 0; text[i + lab] != '\0' && text[i + lab] != '.'; lab++)
			;
		if (lab == 0 || lab > 63 || o + 1 + lab + 1 > NAME_WIRE)
			return MOAT_EINVAL;
		out[o++] = (uint8_t)lab;
		for (k = 0; k < lab; k++) {
			c = (unsigned char)text[i + k];
			if (c <= ' ' || c >= 0x7f || c == '\\')
				return MOAT_EINVAL;
			out[o++] = lower(c);
		}
		i += lab;
		if (text[i] == '.')
			i++;
	}
	out[o++] = 0;
	*outlen = o;
	return 0;
}

/*
 * Read the possibly compressed name at *off of m[len] into lowercase wire
 * form out[NAME_WIRE]; *off moves past the name where it is written.
 * A pointer must point before the start of the run of labels it ends, so
 * every jump goes strictly backwards and no pointer chain can loop; the
 * header is no place for a name either.
 */
static int read_name(const uint8_t *m, size_t len, size_t *off, uint8_t *out, size_t *outlen)
{
	size_t p = *off, run = *off, o = 0, end = 0, target;
	unsigned ptrs = 0;
	uint8_t c, k;

	for (;;) {
		if (p >= len)
			return MOAT_EPROTO;
		c = m[p];
		if ((c & 0xc0) == 0xc0) {
			if (len - p < 2)
				return MOAT_EPROTO;
			target = (size_t)(c & 0x3f) << 8 | m[p + 1];
			if (ptrs == 0)
				end = p + 2;
			if (target >= run || target < HDR || ++ptrs > MAX_PTRS)
				return MOAT_EPROTO;
			run = target;
			p = target;
			continue;
		}
		if (c & 0xc0) /* 0x40 and 0x80: extended and reserved label types */
			return MOAT_EPROTO;
		if (c > len - p - 1 || o + 1 + c > NAME_WIRE)
			return MOAT_EPROTO;
		out[o++] = c;
		if (c == 0)
			break;
		for (k = 0; k < c; k++)
			out[o++] = lower(m[p + 1 + k]);
		p += 1 + (size_t)c;
	}
	*off = ptrs == 0 ? p + 1 : end;
	*outlen = o;
	return 0;
}

static bool name_at_eq(const struct dnsmsg *m, size_t off, const uint8_t *w, size_t wlen)
{
	uint8_t n[NAME_WIRE];
	size_t nlen;

	if (read_name(m->buf, m->len, &off, n, &nlen) < 0)
		return false;
	return nlen == wlen && memcmp(n, w, wlen) == 0;
}

int dnsmsg_random_id(uint16_t *id)
{
	uint8_t b[2];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return MOAT_ETLS;
	*id = get16(b);
	return 0;
}

static void put_header(struct wbuf *w, uint16_t id, unsigned flags, unsigned qd,
		       unsigned an, unsigned ns, unsigned ar)
{
	put16(w, id);
	put16(w, flags);
	put16(w, qd);
	put16(w, an);
	put16(w, ns);
	put16(w, ar);
}

int dnsmsg_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
		       uint16_t type, size_t *len)
{
	struct wbuf w = { buf, cap, 0, false };
	uint8_t n[NAME_WIRE];
	size_t nlen;

	if (name_wire(name, n, &nlen) < 0)
		return MOAT_EINVAL;
	put_header(&w, id, FLAG_RD, 1, 0, 0, 1);
	put(&w, n, nlen);
	put16(&w, type);
	put16(&w, CLASS_IN);
	/* OPT (RFC 6891): root owner, class = our UDP payload size */
	put(&w, "", 1);
	put16(&w, DNS_TYPE_OPT);
	put16(&w, DNSMSG_UDP_PAYLOAD);
	put32(&w, 0);
	put16(&w, 0);
	if (w.over)
		return MOAT_ETOOBIG;
	*len = w.len;
	return 0;
}

int dnsmsg_build_update(uint8_t *buf, size_t cap, uint16_t id, const char *zone,
			const char *name, const char *txt, uint32_t ttl, bool add,
			size_t *len)
{
	struct wbuf w = { buf, cap, 0, false };
	uint8_t z[NAME_WIRE], n[NAME_WIRE];
	size_t zlen, nlen, tlen = txt != NULL ? strlen(txt) : 0, i, chunk;

	if (name_wire(zone, z, &zlen) < 0 || name_wire(name, n, &nlen) < 0 ||
	    tlen == 0 || tlen > DNSMSG_TXT_MAX)
		return MOAT_EINVAL;
	/* the zone section (RFC 2136 2.3) and one update RR (2.5.1, 2.5.4) */
	put_header(&w, id, OPCODE_UPDATE << 11, 1, 0, 1, 0);
	put(&w, z, zlen);
	put16(&w, DNS_TYPE_SOA);
	put16(&w, CLASS_IN);
	put(&w, n, nlen);
	put16(&w, DNS_TYPE_TXT);
	put16(&w, add ? CLASS_IN : CLASS_NONE);
	put32(&w, add ? ttl : 0);
	put16(&w, (unsigned)(tlen + (tlen + 254) / 255));
	for (i = 0; i < tlen; i += chunk) {
		chunk = tlen - i > 255 ? 255 : tlen - i;
		put(&w, (uint8_t[]){ (uint8_t)chunk }, 1);
		put(&w, txt + i, chunk);
	}
	if (w.over)
		return MOAT_ETOOBIG;
	*len = w.len;
	return 0;
}

int dnsmsg_parse(const uint8_t *buf, size_t len, struct dnsmsg **out)
{
	struct dnsmsg *m = NULL;
	uint8_t name[NAME_WIRE];
	size_t off = HDR, nlen, total, an, ns, i;
	struct rr *r;
	int rc = MOAT_EPROTO;

	*out = NULL;
	if (len < HDR || len > DNSMSG_MAX || get16(buf + 4) > 1)
		return MOAT_EPROTO;
	an = get16(buf + 6);
	ns = get16(buf + 8);
	total = an + ns + get16(buf + 10);
	/* A question takes 5 bytes at least and a record 11: refuse counts
	 * the message cannot hold before allocating for them. */
	if (get16(buf + 4) * 5 + total * 11 > len - HDR)
		return MOAT_EPROTO;
	m = xcalloc(1, sizeof(*m));
	m->buf = xmalloc(len);
	memcpy(m->buf, buf, len);
	m->len = len;
	m->rr = xcalloc(total, sizeof(*m->rr));
	m->opt = m->tsig = -1;
	if (get16(buf + 4) == 1) {
		if (read_name(buf, len, &off, name, &nlen) < 0 || len - off < 4)
			goto out;
		m->qtype = get16(buf + off);
		m->qclass = get16(buf + off + 2);
		m->has_q = true;
		off += 4;
	}
	for (i = 0; i < total; i++) {
		r = &m->rr[i];
		r->start = (uint16_t)off;
		if (read_name(buf, len, &off, name, &nlen) < 0 || len - off < 10)
			goto out;
		r->type = get16(buf + off);
		r->cls = get16(buf + off + 2);
		r->ttl = get32(buf + off + 4);
		r->rdlen = get16(buf + off + 8);
		off += 10;
		if (r->rdlen > len - off)
			goto out;
		r->rdoff = (uint16_t)off;
		off += r->rdlen;
		r->section = i < an ? SEC_ANSWER : i < an + ns ? SEC_AUTHORITY : SEC_ADDITIONAL;
		if (r->type == DNS_TYPE_OPT) {
			if (r->section != SEC_ADDITIONAL || m->opt >= 0 || nlen != 1)
				goto out;
			m->opt = (int)i;
		}
		if (r->type == DNS_TYPE_TSIG) {
			if (r->section != SEC_ADDITIONAL || i != total - 1)
				goto out;
			m->tsig = (int)i;
		}
	}
	if (off != len) /* bytes after the last record: someone else's message */
		goto out;
	m->nrr = total;
	*out = m;
	m = NULL;
	rc = 0;
out:
	dnsmsg_free(m);
	return rc;
}

void dnsmsg_free(struct dnsmsg *m)
{
	if (m == NULL)
		return;
	free(m->rr);
	free(m->buf);
	free(m);
}

uint16_t dnsmsg_id(const struct dnsmsg *m)
{
	return get16(m->buf);
}

unsigned dnsmsg_rcode(const struct dnsmsg *m)
{
	unsigned rc = m->buf[3] & 0x0f;

	if (m->opt >= 0)
		rc |= (m->rr[m->opt].ttl >> 24) << 4;
	return rc;
}

const char *dnsmsg_rcode_name(unsigned rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
		"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI",
		"unknown", "unknown", "unknown", "unknown", "BADSIG", "BADKEY",
		"BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC", "BADCOOKIE",
	};

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "unknown";
}

bool dnsmsg_is_truncated(const struct dnsmsg *m)
{
	return (get16(m->buf + 2) & FLAG_TC) != 0;
}

bool dnsmsg_answers(const struct dnsmsg *reply, const struct dnsmsg *req)
{
	unsigned rf = get16(reply->buf + 2), qf = get16(req->buf + 2);
	uint8_t qn[NAME_WIRE];
	size_t off = HDR, qlen;

	if (!(rf & FLAG_QR) || dnsmsg_id(reply) != dnsmsg_id(req) ||
	    ((rf >> 11) & 0xf) != ((qf >> 11) & 0xf))
		return false;
	if (!reply->has_q)
		return dnsmsg_rcode(reply) != DNS_RCODE_NOERROR;
	if (!req->has_q || reply->qtype != req->qtype || reply->qclass != req->qclass ||
	    read_name(req->buf, req->len, &off, qn, &qlen) < 0)
		return false;
	return name_at_eq(reply, HDR, qn, qlen);
}

/* Whether r's TXT strings, concatenated, are value[vlen]. */
static bool txt_equals(const struct dnsmsg *m, const struct rr *r, const char *v, size_t vlen)
{
	size_t p = r->rdoff, end = (size_t)r->rdoff + r->rdlen, vi = 0, l;

	if (r->rdlen == 0)
		return false;
	while (p < end) {
		l = m->buf[p];
		if (l > end - p - 1 || l > vlen - vi || memcmp(m->buf + p + 1, v + vi, l) != 0)
			return false;
		vi += l;
		p += 1 + l;
	}
	return vi == vlen;
}

/* The first answer record of type owned by name[nlen], or NULL. */
static const struct rr *find_answer(const struct dnsmsg *m, uint16_t type, const uint8_t *name,
				    size_t nlen, size_t from)
{
	size_t i;

	for (i = from; i < m->nrr; i++) {
		if (m->rr[i].section == SEC_ANSWER && m->rr[i].type == type &&
		    m->rr[i].cls == CLASS_IN && name_at_eq(m, m->rr[i].start, name, nlen))
			return &m->rr[i];
	}
	return NULL;
}

bool dnsmsg_has_txt(const struct dnsmsg *m, const char *name, const char *value)
{
	uint8_t n[NAME_WIRE];
	size_t nlen, vlen = strlen(value), i;
	const struct rr *r;

	if (name_wire(name, n, &nlen) < 0)
		return false;
	for (i = 0; i < m->nrr; i = (size_t)(r - m->rr) + 1) {
		r = find_answer(m, DNS_TYPE_TXT, n, nlen, i);
		if (r == NULL)
			return false;
		if (txt_equals(m, r, value, vlen))
			return true;
	}
	return false;
}

bool dnsmsg_has_soa(const struct dnsmsg *m, const char *name)
{
	uint8_t n[NAME_WIRE];
	size_t nlen;

	if (name_wire(name, n, &nlen) < 0)
		return false;
	return find_answer(m, DNS_TYPE_SOA, n, nlen, 0) != NULL;
}

/* ---- TSIG ---- */

struct tsig_rd {
	uint8_t key[NAME_WIRE], alg[NAME_WIRE];
	size_t key_len, alg_len;
	uint64_t time;
	unsigned fudge, orig_id, error;
	const uint8_t *mac, *other;
	size_t mac_len, other_len;
};

/* The fields of m's TSIG record; MOAT_EPROTO when absent or malformed. */
static int tsig_fields(const struct dnsmsg *m, struct tsig_rd *t)
{
	const struct rr *r;
	size_t p, end;

	if (m->tsig < 0)
		return MOAT_EPROTO;
	r = &m->rr[m->tsig];
	p = r->start;
	end = (size_t)r->rdoff + r->rdlen;
	if (read_name(m->buf, m->len, &p, t->key, &t->key_len) < 0 || r->cls != CLASS_ANY)
		return MOAT_EPROTO;
	p = r->rdoff;
	if (read_name(m->buf, m->len, &p, t->alg, &t->alg_len) < 0 || p > end || end - p < 10)
		return MOAT_EPROTO;
	t->time = (uint64_t)get16(m->buf + p) << 32 | get32(m->buf + p + 2);
	t->fudge = get16(m->buf + p + 6);
	t->mac_len = get16(m->buf + p + 8);
	p += 10;
	if (t->mac_len > end - p || end - p - t->mac_len < 6)
		return MOAT_EPROTO;
	t->mac = m->buf + p;
	p += t->mac_len;
	t->orig_id = get16(m->buf + p);
	t->error = get16(m->buf + p + 2);
	t->other_len = get16(m->buf + p + 4);
	p += 6;
	if (t->other_len != end - p || t->other_len > TSIG_OTHER_MAX)
		return MOAT_EPROTO;
	t->other = m->buf + p;
	return 0;
}

bool dnsmsg_has_tsig(const struct dnsmsg *m)
{
	return m->tsig >= 0;
}

unsigned dnsmsg_tsig_error(const struct dnsmsg *m)
{
	struct tsig_rd t;

	return tsig_fields(m, &t) < 0 ? 0 : t.error;
}

static const char *alg_name(enum conf_tsig_alg a)
{
	return a == CONF_TSIG_SHA512 ? "hmac-sha512." : a == CONF_TSIG_SHA1 ? "hmac-sha1." :
	       "hmac-sha256.";
}

static const char *alg_digest(enum conf_tsig_alg a)
{
	return a == CONF_TSIG_SHA512 ? "SHA512" : a == CONF_TSIG_SHA1 ? "SHA1" : "SHA256";
}

static size_t alg_size(enum conf_tsig_alg a)
{
	return a == CONF_TSIG_SHA512 ? 64 : a == CONF_TSIG_SHA1 ? 20 : 32;
}

/* The TSIG variables (RFC 8945 4.3.3) in canonical form. */
static void put_vars(struct wbuf *w, const struct tsig_rd *t)
{
	put(w, t->key, t->key_len);
	put16(w, CLASS_ANY);
	put32(w, 0);
	put(w, t->alg, t->alg_len);
	put48(w, t->time);
	put16(w, t->fudge);
	put16(w, t->error);
	put16(w, (unsigned)t->other_len);
	put(w, t->other, t->other_len);
}

/*
 * HMAC of: the prior MAC with its length (answers only), hdr (the header as
 * it was signed), body, the variables of t; into out[DNSMSG_MAC_MAX].
 */
static int tsig_mac(const struct dnsmsg_key *k, const uint8_t *prior, size_t prior_len,
		    const uint8_t *hdr, const uint8_t *body, size_t body_len,
		    const struct tsig_rd *t, uint8_t *out, size_t *out_len)
{
	uint8_t vars[2 * NAME_WIRE + 32 + TSIG_OTHER_MAX], pl[2] = {
		(uint8_t)(prior_len >> 8), (uint8_t)prior_len };
	struct wbuf w = { vars, sizeof(vars), 0, false };
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int rc = MOAT_ETLS;

	put_vars(&w, t);
	if (mac == NULL || w.over)
		goto out;
	ctx = EVP_MAC_CTX_new(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)alg_digest(k->alg), 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_MAC_init(ctx, k->secret, k->secret_len, params) != 1)
		goto out;
	if (prior != NULL &&
	    (EVP_MAC_update(ctx, pl, 2) != 1 || EVP_MAC_update(ctx, prior, prior_len) != 1))
		goto out;
	if (EVP_MAC_update(ctx, hdr, HDR) != 1 || EVP_MAC_update(ctx, body, body_len) != 1 ||
	    EVP_MAC_update(ctx, vars, w.len) != 1 ||
	    EVP_MAC_final(ctx, out, out_len, DNSMSG_MAC_MAX) != 1)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* Our side of the variables: key and algorithm names from k. */
static int key_vars(const struct dnsmsg_key *k, struct tsig_rd *t)
{
	memset(t, 0, sizeof(*t));
	if (k->secret == NULL || k->secret_len == 0 ||
	    name_wire(k->name, t->key, &t->key_len) < 0 ||
	    name_wire(alg_name(k->alg), t->alg, &t->alg_len) < 0)
		return MOAT_EINVAL;
	return 0;
}

int dnsmsg_tsig_sign(uint8_t *buf, size_t cap, size_t *len, const struct dnsmsg_key *k,
		     uint64_t now, const uint8_t *prior, size_t prior_len,
		     uint8_t *mac, size_t *mac_len)
{
	struct wbuf w = { buf, cap, *len, false };
	struct tsig_rd t;
	unsigned arcount;
	int rc;

	if (*len < HDR || *len > cap)
		return MOAT_EINVAL;
	rc = key_vars(k, &t);
	if (rc < 0)
		return rc;
	t.time = now;
	t.fudge = DNSMSG_FUDGE;
	rc = tsig_mac(k, prior, prior_len, buf, buf + HDR, *len - HDR, &t, mac, mac_len);
	if (rc < 0)
		return rc;
	put(&w, t.key, t.key_len);
	put16(&w, DNS_TYPE_TSIG);
	put16(&w, CLASS_ANY);
	put32(&w, 0);
	put16(&w, (unsigned)(t.alg_len + 16 + *mac_len));
	put(&w, t.alg, t.alg_len);
	put48(&w, now);
	put16(&w, DNSMSG_FUDGE);
	put16(&w, (unsigned)*mac_len);
	put(&w, mac, *mac_len);
	put16(&w, get16(buf));   /* original ID */
	put16(&w, 0);            /* error */
	put16(&w, 0);            /* other len */
	if (w.over || get16(buf + 10) == 0xffff)
		return MOAT_ETOOBIG;
	arcount = get16(buf + 10) + 1u;
	buf[10] = (uint8_t)(arcount >> 8);
	buf[11] = (uint8_t)arcount;
	*len = w.len;
	return 0;
}

int dnsmsg_tsig_verify(const struct dnsmsg *m, const struct dnsmsg_key *k,
		       const uint8_t *prior, size_t prior_len, uint64_t now,
		       const char **why)
{
	struct tsig_rd ours, t;
	uint8_t hdr[HDR], mac[DNSMSG_MAC_MAX];
	size_t mac_len;
	uint64_t skew;

	*why = "the key is unusable";
	if (key_vars(k, &ours) < 0)
		return MOAT_EPROTO;
	*why = "the answer is not signed";
	if (m->tsig < 0)
		return MOAT_EPROTO;
	*why = "the answer's TSIG record is malformed";
	if (tsig_fields(m, &t) < 0)
		return MOAT_EPROTO;
	*why = "the answer is signed with another key";
	if (t.key_len != ours.key_len || memcmp(t.key, ours.key, t.key_len) != 0)
		return MOAT_EPROTO;
	*why = "the answer is signed with another algorithm";
	if (t.alg_len != ours.alg_len || memcmp(t.alg, ours.alg, t.alg_len) != 0)
		return MOAT_EPROTO;
	*why = "the server reported a TSIG error";
	if (t.error != 0)
		return MOAT_EPROTO;
	*why = "the answer's MAC is truncated";
	if (t.mac_len != alg_size(k->alg))
		return MOAT_EPROTO;
	/* the header as signed: the original ID, ARCOUNT without the TSIG */
	memcpy(hdr, m->buf, HDR);
	hdr[0] = (uint8_t)(t.orig_id >> 8);
	hdr[1] = (uint8_t)t.orig_id;
	hdr[10] = (uint8_t)((get16(m->buf + 10) - 1u) >> 8);
	hdr[11] = (uint8_t)(get16(m->buf + 10) - 1u);
	*why = "the answer's MAC cannot be computed";
	if (tsig_mac(k, prior, prior_len, hdr, m->buf + HDR, m->rr[m->tsig].start - (size_t)HDR,
		     &t, mac, &mac_len) < 0)
		return MOAT_EPROTO;
	*why = "the answer's MAC does not match (a different secret?)";
	if (mac_len != t.mac_len || CRYPTO_memcmp(mac, t.mac, mac_len) != 0)
		return MOAT_EPROTO;
	skew = now > t.time ? now - t.time : t.time - now;
	*why = "the answer's time signed is outside its fudge (is the clock right?)";
	if (skew > t.fudge)
		return MOAT_EPROTO;
	*why = NULL;
	return 0;
}
