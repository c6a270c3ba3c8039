/*
 * netaddr.c - see netaddr.h.
 *
 * Text goes through inet_pton, but only after moat has refused everything
 * inet_pton or a later reader might take in more than one way: only hex
 * digits, dots and colons reach it (no zone "%eth0", no port, no spaces),
 * and glibc's inet_pton already refuses the octal-looking "010.0.0.1" and
 * the short forms "10.1" that inet_aton would take.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* A v6 text is at most 45 characters ("ffff:...:ffff:255.255.255.255"). */
#define ADDR_TEXT_MAX 45

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void set_v4(struct ipaddr *a, const uint8_t v4[4])
{
	memcpy(a->b, v4_prefix, sizeof(v4_prefix));
	memcpy(a->b + 12, v4, 4);
}

static bool is_addr_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == '.' || c == ':';
}

/* s[0..n) with no brackets: a dotted quad or (with a colon) a v6 text. */
static int parse_plain(const char *s, size_t n, struct ipaddr *out)
{
	char text[ADDR_TEXT_MAX + 1];
	uint8_t v4[4];
	size_t i;

	if (n == 0 || n > ADDR_TEXT_MAX)
		return MOAT_EINVAL;
	for (i = 0; i < n; i++)
		if (!is_addr_char((unsigned char)s[i]))
			return MOAT_EINVAL;
	memcpy(text, s, n);
	text[n] = '\0';
	if (memchr(text, ':', n) != NULL)
		return inet_pton(AF_INET6, text, out->b) == 1 ? 0 : MOAT_EINVAL;
	if (inet_pton(AF_INET, text, v4) != 1)
		return MOAT_EINVAL;
	set_v4(out, v4);
	return 0;
}

int ipaddr_parse(const char *s, size_t n, struct ipaddr *out)
{
	if (n >= 2 && s[0] == '[') {
		/* brackets only around v6 syntax: "[192.0.2.1]" is refused */
		if (s[n - 1] != ']' || memchr(s + 1, ':', n - 2) == NULL)
			return MOAT_EINVAL;
		return parse_plain(s + 1, n - 2, out);
	}
	return parse_plain(s, n, out);
}

int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL)
		return MOAT_EINVAL;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		set_v4(out, (const uint8_t *)&sin->sin_addr.s_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out->b, sin6->sin6_addr.s6_addr, 16);
		return 0;
	}
	return MOAT_EINVAL;
}

bool ipaddr_is_v4(const struct ipaddr *a)
{
	return memcmp(a->b, v4_prefix, sizeof(v4_prefix)) == 0;
}

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

char *ipaddr_format(const struct ipaddr *a, char *buf, size_t cap)
{
	const char *r;

	if (cap == 0)
		return buf;
	if (ipaddr_is_v4(a))
		r = inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)cap);
	else
		r = inet_ntop(AF_INET6, a->b, buf, (socklen_t)cap);
	if (r == NULL)
		buf[0] = '\0';
	return buf;
}

/* Clear every bit of a below the first bits. */
static void mask_host(struct ipaddr *a, unsigned bits)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		if (bits >= 8 * (i + 1))
			continue;
		if (bits <= 8 * i)
			a->b[i] = 0;
		else
			a->b[i] &= (uint8_t)(0xffu << (8 * (i + 1) - bits));
	}
}

struct cidr ipaddr_key(const struct ipaddr *a)
{
	struct cidr c;

	c.a = *a;
	c.bits = 128;
	if (!ipaddr_is_v4(a)) {
		c.bits = 64;
		mask_host(&c.a, 64);
	}
	return c;
}

/* "0".."max" in decimal, no sign, no leading zero. */
static int parse_prefix_len(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return MOAT_EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return MOAT_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return MOAT_EINVAL;
	*out = v;
	return 0;
}

/*
 * The family of a prefix is the one its text is written in: "10.0.0.0/8"
 * counts 8 of IPv4's 32 bits, "::ffff:10.0.0.0/104" counts 104 of 128 (and
 * is the same set of addresses).
 */
int cidr_parse(const char *s, struct cidr *out, const char **why)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	struct ipaddr a, masked;
	bool v6_text;
	unsigned len;

	*why = NULL;
	if (s[0] == '[' || parse_plain(s, alen, &a) != 0) {
		*why = "not an IP address or prefix; write one like 192.0.2.1, 10.0.0.0/8, "
		       "2001:db8::1 or 2001:db8::/32";
		return MOAT_EINVAL;
	}
	v6_text = memchr(s, ':', alen) != NULL;
	if (slash == NULL) {
		out->a = a;
		out->bits = 128;
		return 0;
	}
	if (parse_prefix_len(slash + 1, v6_text ? 128 : 32, &len) != 0) {
		*why = v6_text ? "the prefix length after / must be a number from 0 to 128"
			       : "the prefix length after / must be a number from 0 to 32 for IPv4";
		return MOAT_EINVAL;
	}
	if (!v6_text)
		len += 96;
	masked = a;
	mask_host(&masked, len);
	if (!ipaddr_equal(&masked, &a)) {
		*why = "host bits are set below the prefix length; write the network address "
		       "(10.0.0.0/8, not 10.0.0.1/8)";
		return MOAT_EINVAL;
	}
	out->a = a;
	out->bits = (uint8_t)len;
	return 0;
}

char *cidr_format(const struct cidr *c, char *buf, size_t cap)
{
	char addr[NETADDR_TEXT];
	bool v4 = ipaddr_is_v4(&c->a) && c->bits >= 96;
	unsigned len = v4 ? c->bits - 96u : c->bits;
	int r;

	if (cap == 0)
		return buf;
	ipaddr_format(&c->a, addr, sizeof(addr));
	if (c->bits == 128)
		r = snprintf(buf, cap, "%s", addr);
	else
		r = snprintf(buf, cap, "%s/%u", addr, len);
	if (r < 0)
		buf[0] = '\0';
	return buf;
}

bool cidr_contains(const struct cidr *c, const struct ipaddr *a)
{
	unsigned full = c->bits / 8, rest = c->bits % 8;
	uint8_t m;

	if (c->bits > 128)
		return false;
	if (memcmp(c->a.b, a->b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	m = (uint8_t)(0xffu << (8 - rest));
	return (c->a.b[full] & m) == (a->b[full] & m);
}

bool cidr_list_contains(const struct cidr *l, size_t n, const struct ipaddr *a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (cidr_contains(&l[i], a))
			return true;
	return false;
}

/*
 * SipHash-2-4 (Aumasson and Bernstein) over the 17 bytes of the key, with
 * the 64-bit seed spread over SipHash's 128-bit key. The shared tables are
 * filled with addresses a client chooses, so the hash is keyed: without the
 * seed nobody can aim many addresses at one bucket.
 */
static inline uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

struct sip {
	uint64_t v0, v1, v2, v3;
};

static void sip_round(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl(s->v2, 32);
}

static void sip_block(struct sip *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

static uint64_t load_le64(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n)
{
	struct sip s = {
		k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
		k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull,
	};
	size_t off;

	for (off = 0; off + 8 <= n; off += 8)
		sip_block(&s, load_le64(p + off, 8));
	sip_block(&s, load_le64(p + off, n - off) | (uint64_t)(n & 0xff) << 56);
	s.v2 ^= 0xff;
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t cidr_hash(const struct cidr *c, uint64_t seed)
{
	uint8_t msg[17];

	memcpy(msg, c->a.b, 16);
	msg[16] = c->bits;
	/* the second key half is the seed through a fixed odd multiplier */
	return siphash24(seed, seed * 0x9e3779b97f4a7c15ull + 1, msg, sizeof(msg));
}
