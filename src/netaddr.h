/*
 * netaddr.h - IP addresses and prefixes as moat compares them: every
 * address is 16 bytes (IPv4 as the v4-mapped ::ffff:a.b.c.d), so one
 * comparison serves both families. A client is keyed by its address for
 * IPv4 and by its /64 for IPv6 (one home or one host usually owns a whole
 * /64, and rotating inside it must not buy a fresh budget or evade a ban).
 * Thread: pure functions.
 */
#ifndef MOAT_NETADDR_H
#define MOAT_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_TEXT 48 /* longest printable address or prefix, with its NUL */

struct ipaddr {
	uint8_t b[16];
};

struct cidr {
	struct ipaddr a; /* host bits cleared */
	uint8_t bits;    /* prefix length out of 128 (an IPv4 /24 is 120) */
};

/* "192.0.2.1", "2001:db8::1" or "[2001:db8::1]" (n bytes, no NUL needed);
 * an IPv4-mapped IPv6 text is taken as IPv4. No port, no zone, no spaces.
 * Returns 0 or MOAT_EINVAL. */
int ipaddr_parse(const char *s, size_t n, struct ipaddr *out);

/* From a socket address (AF_INET or AF_INET6); MOAT_EINVAL for others. */
int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out);

bool ipaddr_is_v4(const struct ipaddr *a);
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);

/* Printable form ("192.0.2.1", "2001:db8::1") into buf[cap >= NETADDR_TEXT];
 * returns buf. */
char *ipaddr_format(const struct ipaddr *a, char *buf, size_t cap);

/* The client key: the address itself for IPv4, its /64 for IPv6. */
struct cidr ipaddr_key(const struct ipaddr *a);

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128); s is
 * NUL-terminated, without brackets. The length counts in the family the
 * address is written in: "::ffff:10.0.0.0/104" is "10.0.0.0/8".
 * Host bits set below the prefix are an error ("10.0.0.1/8": the operator
 * probably meant something else), as is a prefix beyond the family's
 * length. Returns 0, or MOAT_EINVAL with *why set to a static message
 * saying what is wrong. */
int cidr_parse(const char *s, struct cidr *out, const char **why);

/* Printable form: "192.0.2.1" for a single IPv4 address, "10.0.0.0/8",
 * "2001:db8::/64"; into buf[cap >= NETADDR_TEXT]; returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t cap);

bool cidr_contains(const struct cidr *c, const struct ipaddr *a);

/* Is a in any of l[0..n)? */
bool cidr_list_contains(const struct cidr *l, size_t n, const struct ipaddr *a);

/* A well-mixed hash of a key (for the shared tables). */
uint64_t cidr_hash(const struct cidr *c, uint64_t seed);

#endif
