/*
 * dnsmsg.h - the few DNS messages moat sends for ACME DNS-01: queries
 * (RFC 1035, with an RFC 6891 OPT record), dynamic UPDATEs (RFC 2136)
 * signed with TSIG (RFC 8945), and a bounded parser for the answers.
 * No I/O here: acme_dns.c sends them and receives the answers.
 *
 * Answers are hostile input: the parser checks every length against the
 * message, follows a compression pointer only backwards (so it cannot
 * loop), caps names at 255 bytes and refuses records that run past the end.
 * Names are given as text without escapes ("_acme-challenge.example.org",
 * trailing dot optional) and compared case-insensitively.
 * Thread: every function is safe from any thread.
 */
#ifndef MOAT_DNSMSG_H
#define MOAT_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define DNSMSG_REQ_MAX 2048     /* buffer size that holds any request built here */
#define DNSMSG_UDP_PAYLOAD 1232 /* EDNS payload size advertised in queries */
#define DNSMSG_MAX 65535        /* largest message (TCP length prefix) */
#define DNSMSG_MAC_MAX 64       /* HMAC-SHA512 */
#define DNSMSG_TXT_MAX 1020     /* longest TXT value set (four strings) */
#define DNSMSG_FUDGE 300        /* TSIG clock skew allowed, seconds */

enum {
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_OPT = 41,
	DNS_TYPE_TSIG = 250,
};

enum {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_NOTAUTH = 9,
	DNS_RCODE_BADSIG = 16, /* TSIG error field values */
	DNS_RCODE_BADKEY = 17,
	DNS_RCODE_BADTIME = 18,
};

/* A TSIG key; every pointer is the caller's and must outlive the call. */
struct dnsmsg_key {
	const char *name;             /* "moat." */
	enum conf_tsig_alg alg;
	const unsigned char *secret;
	size_t secret_len;            /* > 0 */
};

/* A parsed, validated message (a private copy of the bytes). */
struct dnsmsg;

/* A fresh random message ID (RAND_bytes). Returns 0 or MOAT_ETLS. */
int dnsmsg_random_id(uint16_t *id);

/*
 * Build a recursion-desired query for name/type, class IN, with an OPT
 * record advertising DNSMSG_UDP_PAYLOAD, into buf[cap]; *len is its length.
 * Returns 0, MOAT_EINVAL (bad name) or MOAT_ETOOBIG (cap too small).
 */
int dnsmsg_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
		       uint16_t type, size_t *len);

/*
 * Build an UPDATE of zone that adds (add) or deletes (!add: class NONE,
 * exactly this record) the TXT record name/txt, with ttl when adding.
 * txt is 1..DNSMSG_TXT_MAX bytes, cut into 255-byte strings. Returns as
 * dnsmsg_build_query. Other TXT values at name are left alone.
 */
int dnsmsg_build_update(uint8_t *buf, size_t cap, uint16_t id, const char *zone,
			const char *name, const char *txt, uint32_t ttl, bool add,
			size_t *len);

/*
 * Sign the message buf[*len] in place: append a TSIG record for key k,
 * time signed now (seconds since the epoch), fudge DNSMSG_FUDGE, and count
 * it in ARCOUNT. prior/prior_len is the request MAC when signing an answer
 * (NULL, 0 for a request). The MAC goes to mac[DNSMSG_MAC_MAX], its length
 * to *mac_len (keep it to verify the answer). Returns 0, MOAT_EINVAL,
 * MOAT_ETOOBIG or MOAT_ETLS.
 */
int dnsmsg_tsig_sign(uint8_t *buf, size_t cap, size_t *len, const struct dnsmsg_key *k,
		     uint64_t now, const uint8_t *prior, size_t prior_len,
		     uint8_t *mac, size_t *mac_len);

/*
 * Parse buf[len] (not retained). Returns 0 with *out (caller frees with
 * dnsmsg_free) or MOAT_EPROTO for anything malformed: short header, more
 * than one question, a name or record past the end, a forward or looping
 * compression pointer, a name over 255 bytes, a second OPT, a TSIG record
 * that is not the last one.
 */
int dnsmsg_parse(const uint8_t *buf, size_t len, struct dnsmsg **out);

/* NULL is a no-op. */
void dnsmsg_free(struct dnsmsg *m);

uint16_t dnsmsg_id(const struct dnsmsg *m);

/* The RCODE, extended by the OPT record's upper bits when there is one. */
unsigned dnsmsg_rcode(const struct dnsmsg *m);

/* "NOERROR", "NOTAUTH", "BADSIG"... (RCODEs and TSIG errors share one
 * number space); "unknown" for others. Static, never NULL. */
const char *dnsmsg_rcode_name(unsigned rcode);

bool dnsmsg_is_truncated(const struct dnsmsg *m);

/* Whether reply is an answer to req: QR set, same ID and opcode, and the
 * same question (a reply without one is accepted only with an error RCODE,
 * which can never be taken for success). */
bool dnsmsg_answers(const struct dnsmsg *reply, const struct dnsmsg *req);

/* Whether the answer section holds the record name IN TXT value (its
 * strings concatenated). CNAMEs are not followed: the record is updated
 * at name itself, where a CNAME could not live beside it. */
bool dnsmsg_has_txt(const struct dnsmsg *m, const char *name, const char *value);

/* Whether the answer section holds an SOA record owned by name: name is a
 * zone apex. */
bool dnsmsg_has_soa(const struct dnsmsg *m, const char *name);

/* Whether the message ends with a TSIG record. */
bool dnsmsg_has_tsig(const struct dnsmsg *m);

/* The TSIG error field of the message's TSIG record; 0 without one. */
unsigned dnsmsg_tsig_error(const struct dnsmsg *m);

/*
 * Verify m's TSIG record with key k: same key name and algorithm, no TSIG
 * error, a full-length MAC over prior (the request MAC, for an answer) +
 * the message without its TSIG record + the TSIG variables, and time
 * signed within fudge of now. Returns 0, or MOAT_EPROTO with *why a static
 * reason ("the answer is not signed", "the answer's MAC does not match"...).
 */
int dnsmsg_tsig_verify(const struct dnsmsg *m, const struct dnsmsg_key *k,
		       const uint8_t *prior, size_t prior_len, uint64_t now,
		       const char **why);

#endif
