/*
 * conf.h - YAML configuration -> immutable snapshot.
 *
 * A struct conf is built once by conf_load()/conf_parse()/conf_demo() on the
 * control thread and never changed afterwards, except for the _Atomic
 * runtime counters in struct conf_site / conf_upstream (round-robin position
 * and passive failure marks), which any worker may update.
 * Ownership: the caller of conf_load owns the result and frees it with
 * conf_free() once no worker references it (see worker.c generations).
 * Relative paths in the file are resolved against the file's directory.
 */
#ifndef MOAT_CONF_H
#define MOAT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "clientip.h"
#include "guard_limit.h"
#include "netaddr.h"

struct conf_addr {
	char *text;                 /* "127.0.0.1:8443", "[::1]:8443" */
	struct sockaddr_storage sa;
	socklen_t salen;
	bool proxy_protocol;        /* connections start with a PROXY header (trusted peers only) */
};

struct conf_upstream {
	char *url;      /* as written: "http://127.0.0.1:9000" */
	char *hostport; /* Host header for the upstream and pool key: "127.0.0.1:9000" */
	struct conf_addr addr; /* resolved at load time */
	_Atomic uint64_t down_until_ms; /* runtime: passive failure mark (moat_now_ms) */
};

enum conf_tls {
	CONF_TLS_INTERNAL = 0, /* moat's internal CA issues and renews the certificate */
	CONF_TLS_FILES,        /* operator-provided cert + key files */
	CONF_TLS_ACME,         /* an ACME CA issues it; moat renews it (confacme.c) */
};

/* Which ACME challenge a site's certificate is validated with. */
enum conf_chal {
	CONF_CHAL_AUTO = 0,  /* TLS-ALPN-01 or HTTP-01 (by listener); DNS-01 for wildcards */
	CONF_CHAL_HTTP,      /* tls: { acme: http } */
	CONF_CHAL_TLSALPN,   /* tls: { acme: tls-alpn } */
	CONF_CHAL_DNS,       /* tls: { acme: dns } (needs acme.dns) */
};

enum conf_dns_provider {
	CONF_DNS_NONE = 0,
	CONF_DNS_DUCKDNS,  /* DuckDNS's HTTP API */
	CONF_DNS_RFC2136,  /* TSIG-signed dynamic updates (RFC 2136, RFC 8945) */
};

enum conf_tsig_alg {
	CONF_TSIG_SHA256 = 0, /* hmac-sha256, the default */
	CONF_TSIG_SHA512,     /* hmac-sha512 */
	CONF_TSIG_SHA1,       /* hmac-sha1 (older servers) */
};

/* acme.dns: how DNS-01 TXT records are set and cleared. */
struct conf_dns {
	enum conf_dns_provider provider;
	/* duckdns */
	char *token;          /* secret */
	char *url;            /* update endpoint (default https://www.duckdns.org/update) */
	char *domain;         /* DuckDNS subdomain to write to (default: from the name) */
	/* rfc2136 */
	struct conf_addr server;  /* primary name server taking updates */
	char *zone;           /* zone to update, with trailing dot; NULL: found by SOA query */
	char *key_name;       /* TSIG key name, lowercase, with trailing dot */
	unsigned char *key;   /* TSIG secret (decoded base64), secret */
	size_t key_len;
	enum conf_tsig_alg alg;
	/* both */
	struct conf_addr resolver; /* where to look for the TXT record before asking the
				    * CA (rfc2136 default: server; duckdns: none, salen 0) */
	uint32_t ttl;              /* TXT record TTL, seconds (default 60) */
	uint32_t propagation_ms;   /* give up waiting for the record after (default 2m) */
	uint32_t settle_ms;        /* fixed wait when there is no resolver (default 30s) */
};

/* The acme: section. Present or not, ACME sites use it (with defaults). */
struct conf_acme {
	char *email;          /* NULL: no contact */
	char *directory;      /* default Let's Encrypt production */
	char *ca_roots;       /* absolute PEM file of extra roots for the CA's API, or NULL */
	struct conf_dns dns;
	uint64_t renew_before_ms; /* 0: when a third of the lifetime remains */
};

/* ddns.duckdns: keep DuckDNS names pointed at this network's address. */
struct conf_ddns {
	bool on;
	char **domains;       /* DuckDNS subdomains ("example" for example.duckdns.org) */
	size_t ndomains;
	char *token;          /* secret */
	char *url;            /* update endpoint (default https://www.duckdns.org/update) */
	char *ca_roots;       /* extra roots for url (tests), absolute, or NULL */
	uint32_t every_ms;    /* update interval (default 5m) */
};

enum conf_clients {
	CONF_CLIENTS_OFF = 0,  /* no certificate is asked for */
	CONF_CLIENTS_OPTIONAL, /* asked for; verified and passed upstream when given */
	CONF_CLIENTS_REQUIRED, /* asked for; needed for every path not in public */
};

struct pathpat;

/* A site's `limit` (match NULL: every request) or one of its path_limits. */
struct conf_limit {
	struct pathpat *match;
	struct rate rate;
	uint64_t id;       /* limit_rule_id: budgets survive a reload that keeps the rule */
	char *text;        /* "20/s burst 40" as written, for logs */
};

/* One entry of a site's `ban` list (confabuse.c). */
struct conf_ban {
	struct pathpat **match; /* requests the rule watches (any of them) */
	size_t nmatch;
	uint64_t status[10];    /* bit s%64 of word s/64: answers that count as failures */
	uint32_t after;         /* failures ... */
	uint64_t window_ms;     /* ... within this window ban the client ... */
	uint64_t for_ms;        /* ... for this long */
	uint64_t id;            /* rule identity for the failure counters */
	char *text;             /* "POST /api/auth/login", for the ban's reason */
};

struct conf_site {
	char *host;        /* canonical lowercase name, may start with "*." */
	int line, col;     /* where the site was declared (1-based) */
	struct conf_upstream *up;
	size_t nup;
	_Atomic unsigned rr; /* runtime: round-robin position */
	enum conf_tls tls;
	enum conf_chal chal; /* CONF_TLS_ACME only */
	char *cert_file;   /* absolute; CONF_TLS_FILES only */
	char *key_file;
	bool is_default;   /* answer unknown SNI / Host with this site */
	bool redirect;     /* http listener: 308 to https (default true) */
	bool hsts;         /* Strict-Transport-Security on https (default true) */
	uint32_t hsts_max_age; /* seconds, default 31536000 */
	bool welcome;      /* built-in welcome page instead of upstreams (demo) */
	/* who may enter (confaccess.c) */
	enum conf_clients clients;
	bool client_ca_moat; /* client_ca: moat (the default): moat's own client CA */
	char *client_ca;   /* absolute PEM file of trusted CA certificates, or NULL (off) */
	char *crl_file;    /* absolute PEM file of CRLs, or NULL */
	struct pathpat **pub; /* public: entries that need no certificate */
	size_t npub;
	/* abuse control (confabuse.c) */
	struct conf_limit *limits; /* [0] is `limit` when set, then path_limits */
	size_t nlimits;
	struct conf_ban *bans;
	size_t nbans;
};

struct conf_timeouts {
	uint32_t header_ms;   /* whole request head must arrive within (default 10s) */
	uint32_t idle_ms;     /* keep-alive idle, client side (default 60s) */
	uint32_t connect_ms;  /* upstream connect (default 5s) */
	uint32_t response_ms; /* upstream response head, and idle gaps while streaming (default 60s) */
	uint32_t drain_ms;    /* graceful stop: in-flight requests may finish within (default 10s) */
	uint32_t upstream_idle_ms; /* pooled idle upstream connection lifetime (default 30s) */
	uint32_t write_ms;    /* a client that takes none of what is queued for it this long is dropped (default 30s) */
	uint32_t body_ms;     /* a request body's grace before min_body_rate applies (default 10s) */
};

struct conf {
	char *file;        /* path as given, or "(built-in demo)" */
	char *data;        /* absolute data directory */
	struct conf_addr *http;  /* empty when http: off */
	size_t nhttp;
	struct conf_addr *https;
	size_t nhttps;
	unsigned workers;  /* >= 1; default: number of online CPUs */
	char *access_log;  /* "stdout", "off" or an absolute path */
	struct conf_timeouts t;
	size_t max_header_bytes; /* request head limit (default 32 KiB) -> 431 */
	uint64_t max_body_bytes; /* 0 = unlimited -> 413 */
	uint64_t min_body_rate;  /* bytes/s a request body must average after timeouts.body; 0: off */
	uint32_t conns_per_client; /* open connections per client address (default 256) */
	uint32_t conns_total;      /* open client connections in all (default: from the fd limit) */
	size_t ban_table;          /* bans held at most (default BANS_DEFAULT_CAP) */
	struct cidr *trusted;      /* trusted_proxies */
	size_t ntrusted;
	struct cidr *never_ban;    /* default 127.0.0.1, ::1 */
	size_t nnever_ban;
	enum clientip_header ip_header; /* client_ip_header */
	struct conf_acme acme;
	struct conf_ddns ddns;
	struct conf_site *sites;
	size_t nsites;
	const struct conf_site *default_site; /* NULL unless a site has default: true */
};

/*
 * Load and validate a YAML file. On success returns the snapshot and sets
 * *errs to NULL. On failure returns NULL and sets *errs to a heap string
 * (caller frees) with one line per error, each "file:line:col: message"
 * naming the offending text and what would be valid. Every error in the
 * file is reported, not just the first. Unknown keys are errors.
 * Resolves listen and upstream addresses (may block on DNS: control thread).
 */
struct conf *conf_load(const char *path, char **errs);

/* As conf_load, except that moat's own client CA need not exist yet: for
 * `moat ca -c FILE`, which creates and repairs it. */
struct conf *conf_load_for_ca(const char *path, char **errs);

/* As conf_load, from memory; name is used in messages and dir for relative paths. */
struct conf *conf_parse(const char *name, const char *dir, const char *text,
			size_t len, char **errs);

/* The built-in demo: https on localhost:8443, http on localhost:8080,
 * the welcome page for every name, data in data_dir (absolute). */
struct conf *conf_demo(const char *data_dir);

/* NULL is a no-op. */
void conf_free(struct conf *c);

/* Site for a canonical host name: exact match first, then a "*." wildcard
 * matching exactly one leading label, then the default site; NULL if none. */
const struct conf_site *conf_find_site(const struct conf *c, const char *host);

#endif
