/*
 * admin.h - the daemon's admin socket: <data>/admin.sock, a Unix stream
 * socket (mode 0600, so only the daemon's user and root can use it) that
 * `moat ban` and `moat status` talk to.
 *
 * Protocol (docs/internals/admin.md): the client sends one JSON object and
 * a newline, the daemon answers one JSON object and a newline and closes.
 *   {"cmd":"status"}
 *   {"cmd":"ban-list"}
 *   {"cmd":"ban-add","address":"192.0.2.7","for":3600,"reason":"..."}
 *   {"cmd":"ban-remove","address":"192.0.2.7"}
 * Answers carry "ok": true and the command's fields, or "ok": false and
 * "error": a sentence for the operator. Requests are bounded (64 KiB) and
 * a client that does not finish its request within 5 s is dropped.
 *
 * Ownership: one admin server per daemon, created and freed on the control
 * loop. Thread: control thread only.
 */
#ifndef MOAT_ADMIN_H
#define MOAT_ADMIN_H

#include <jansson.h>
#include <uv.h>

struct admin;
struct conf;

/* What the daemon lets the socket see and do, supplied by cli_run.c. */
struct admin_ops {
	void *arg;
	/* The running configuration (for never_ban, trusted_proxies, the sites). */
	const struct conf *(*conf)(void *arg);
	/* Bans changed through the socket: write the file now (before the
	 * answer goes out) and close the banned clients' connections.
	 * Returns 0 or MOAT_EIO. */
	int (*bans_changed)(void *arg);
	/* Connections open per worker (n entries into out, returns n). */
	size_t (*worker_conns)(void *arg, uint64_t *out, size_t max);
	/* Members added to the status answer (certificates, ddns); the
	 * caller takes the object. May be NULL. */
	json_t *(*more_status)(void *arg);
};

/* <data>/admin.sock; heap string. */
char *admin_socket_path(const char *data);

/* Listen on <data>/admin.sock (an old socket file left by a killed daemon
 * is replaced; the caller holds the data directory's lock, so no live
 * daemon owns it). Returns NULL after logging why (a path too long for a
 * Unix socket, a bind error, an old path that is not a socket). The
 * socket file is bound with mode 0600 (no wider window), and clients whose
 * uid (SO_PEERCRED) is neither the daemon's nor root are refused. ops is
 * copied; ops->arg must outlive the server. After uv_listen itself fails
 * the half-made server is freed by a close callback, so keep running the
 * loop once as after admin_stop. */
struct admin *admin_start(uv_loop_t *loop, const char *data, const struct admin_ops *ops);

/* Close the socket and its clients, remove the socket file, free. NULL is
 * a no-op. The loop must run once more for the handles to close. */
void admin_stop(struct admin *a);

#endif
