/*
 * admin.c - see admin.h; the protocol is in docs/internals/admin.md.
 *
 * Who may connect: the socket file is created with mode 0600 inside the
 * 0700 data directory, and each client's credentials (SO_PEERCRED) must
 * also be the daemon's uid or root, so a mistake in either layer alone
 * does not open the socket to other users.
 * Bounds: at most ADMIN_CLIENTS_MAX clients at once, each with one request
 * buffer of ADMIN_REQ_MAX bytes, ADMIN_DEADLINE_MS to send its request and
 * ADMIN_WRITE_MS to take the answer.
 */
#include "admin.h"
#include "banop.h"
#include "conf.h"
#include "guard_ban.h"
#include "guard_limit.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_SOCK_NAME "admin.sock"
#define ADMIN_REQ_MAX (64 * 1024)
#define ADMIN_DEADLINE_MS 5000
#define ADMIN_WRITE_MS 30000     /* a full ban list can be megabytes */
#define ADMIN_CLIENTS_MAX 16
#define STATUS_BANS_MAX 50       /* the newest; `moat ban list` shows them all */
#define STATUS_LIMITED_MAX 50
#define STATUS_LIMITED_WINDOW_MS (10 * 60 * 1000)
#define STATUS_TOP_MAX 20
#define STATUS_WORKERS_MAX 1024

struct client;

struct admin {
	uv_loop_t *loop;
	uv_pipe_t server;
	char *path;
	struct admin_ops ops;
	struct client *clients;  /* open or closing */
	uint64_t started_ms;
	bool stopping, server_open;
};

struct client {
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wr;
	struct admin *a;
	struct client *next, **pprev;
	char *buf;               /* ADMIN_REQ_MAX bytes */
	size_t len;
	char *answer;
	unsigned long uid;
	int handles;             /* initialised handles not yet closed */
	bool answered, closing;
};

char *admin_socket_path(const char *data)
{
	return xasprintf("%s/%s", data, ADMIN_SOCK_NAME);
}

/* ---- lifetime ------------------------------------------------------------- */

static void maybe_free(struct admin *a)
{
	if (!a->stopping || a->server_open || a->clients != NULL)
		return;
	free(a->path);
	free(a);
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	struct admin *a = c->a;

	if (--c->handles > 0)
		return;
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	free(c->buf);
	free(c->answer);
	free(c);
	maybe_free(a);
}

static void client_close(struct client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
	uv_close((uv_handle_t *)&c->pipe, on_client_handle_closed);
}

static void on_server_closed(uv_handle_t *h)
{
	struct admin *a = h->data;

	a->server_open = false;
	maybe_free(a);
}

/* ---- requests ------------------------------------------------------------- */

static json_t *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	if (j == NULL) /* msg is not UTF-8: it quoted the request */
		j = json_pack("{s:b, s:s}", "ok", 0, "error", "bad request");
	return j;
}

static json_t *ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

/* Typos in field names ("duration" for "for") must not pass silently. */
static const char *unknown_key(json_t *req, const char *const *allowed)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(req, k, v) {
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; i++)
			;
		if (allowed[i] == NULL)
			return k;
	}
	return NULL;
}

static struct banop_exempt exempt(struct admin *a)
{
	return banop_exempt_of(a->ops.conf != NULL ? a->ops.conf(a->ops.arg) : NULL);
}

static json_t *saved(struct admin *a, const char *what)
{
	if (a->ops.bans_changed != NULL && a->ops.bans_changed(a->ops.arg) < 0)
		return fail("%s in the running moat, but the ban file could not be written (see "
			    "moat's log): the change will not survive a restart", what);
	return NULL;
}

static json_t *cmd_ban_add(struct admin *a, struct client *c, json_t *req)
{
	static const char *const keys[] = { "cmd", "address", "for", "reason", NULL };
	json_t *addr = json_object_get(req, "address"), *dur = json_object_get(req, "for");
	json_t *reason = json_object_get(req, "reason"), *err, *ans;
	struct banop_exempt ex = exempt(a);
	struct ban b;
	char *why = NULL, until[32];
	int64_t now = time(NULL), for_s = BANOP_FOR_DEFAULT;
	struct tm tm;

	if (unknown_key(req, keys) != NULL)
		return fail("ban-add takes address, for and reason, not \"%s\"", unknown_key(req, keys));
	if (!json_is_string(addr))
		return fail("ban-add needs \"address\": a string");
	if (dur != NULL && !json_is_integer(dur))
		return fail("\"for\" is a number of seconds");
	if (reason != NULL && !json_is_string(reason))
		return fail("\"reason\" is a string");
	if (dur != NULL)
		for_s = (int64_t)json_integer_value(dur);
	if (banop_make(json_string_value(addr), for_s,
		       reason != NULL ? json_string_value(reason) : NULL, now, &ex, &b, &why) < 0) {
		ans = fail("%s", why);
		free(why);
		return ans;
	}
	bans_add(&b);
	gmtime_r(&(time_t){ (time_t)b.until }, &tm);
	strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
	log_info("admin: uid %lu banned %s until %s: %s", c->uid, json_string_value(addr), until,
		 b.reason);
	err = saved(a, "banned");
	if (err != NULL)
		return err;
	ans = ok();
	json_object_set_new(ans, "ban", banop_json(&b, now));
	return ans;
}

static json_t *cmd_ban_remove(struct admin *a, struct client *c, json_t *req)
{
	static const char *const keys[] = { "cmd", "address", NULL };
	json_t *addr = json_object_get(req, "address"), *err, *ans;
	struct cidr key;
	char *why = NULL, text[NETADDR_TEXT];

	if (unknown_key(req, keys) != NULL)
		return fail("ban-remove takes address, not \"%s\"", unknown_key(req, keys));
	if (!json_is_string(addr))
		return fail("ban-remove needs \"address\": a string");
	if (banop_key(json_string_value(addr), &key, &why) < 0) {
		ans = fail("%s", why);
		free(why);
		return ans;
	}
	cidr_format(&key, text, sizeof(text));
	if (bans_remove(&key) < 0)
		return fail("%s is not banned", text);
	log_info("admin: uid %lu lifted the ban on %s", c->uid, text);
	err = saved(a, "the ban was lifted");
	if (err != NULL)
		return err;
	ans = ok();
	json_object_set_new(ans, "address", json_string(text));
	return ans;
}

static json_t *cmd_ban_list(struct admin *a, struct client *c, json_t *req)
{
	int64_t now = time(NULL);
	size_t n = 0;
	struct ban *b = bans_list(now, &n);
	json_t *ans = ok();

	json_object_set_new(ans, "bans", banop_json_list(b, 0, n, now));
	free(b);
	return ans;
}

static json_t *status_bans(int64_t now)
{
	size_t n = 0;
	struct ban *b = bans_list(now, &n);
	json_t *j;

	j = json_pack("{s:I, s:I, s:o}", "count", (json_int_t)n, "evicted",
		      (json_int_t)bans_evicted(), "list",
		      banop_json_list(b, n > STATUS_BANS_MAX ? n - STATUS_BANS_MAX : 0, n, now));
	free(b);
	return j;
}

static json_t *status_limited(uint64_t now_ms)
{
	struct limited_client l[STATUS_LIMITED_MAX];
	char text[NETADDR_TEXT];
	json_t *arr = json_array();
	size_t n, i;

	n = limit_limited(l, STATUS_LIMITED_MAX, now_ms, STATUS_LIMITED_WINDOW_MS);
	for (i = 0; i < n && i < STATUS_LIMITED_MAX; i++)
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "address",
			cidr_format(&l[i].key, text, sizeof(text)), "refused",
			(json_int_t)l[i].refused, "last_ago",
			(json_int_t)(now_ms > l[i].last_ms ? (now_ms - l[i].last_ms) / 1000 : 0)));
	return arr;
}

static json_t *status_conns(struct admin *a)
{
	struct conn_count top[STATUS_TOP_MAX];
	uint64_t *w = xcalloc(STATUS_WORKERS_MAX, sizeof(*w));
	char text[NETADDR_TEXT];
	json_t *workers = json_array(), *tops = json_array();
	size_t n = 0, i;

	if (a->ops.worker_conns != NULL)
		n = a->ops.worker_conns(a->ops.arg, w, STATUS_WORKERS_MAX);
	for (i = 0; i < n && i < STATUS_WORKERS_MAX; i++)
		json_array_append_new(workers, json_integer((json_int_t)w[i]));
	n = conncap_top(top, STATUS_TOP_MAX);
	for (i = 0; i < n && i < STATUS_TOP_MAX; i++)
		json_array_append_new(tops, json_pack("{s:s, s:i}", "address",
			ipaddr_format(&top[i].addr, text, sizeof(text)), "open", (int)top[i].n));
	free(w);
	return json_pack("{s:I, s:o, s:o}", "total", (json_int_t)conncap_total(), "workers",
			 workers, "top", tops);
}

static json_t *cmd_status(struct admin *a, struct client *c, json_t *req)
{
	uint64_t now_ms = moat_now_ms();
	json_t *ans = ok(), *den = json_object();
	int r;

	for (r = 0; r < DENY_N; r++)
		json_object_set_new(den, deny_name((enum deny_reason)r),
				    json_integer((json_int_t)deny_total((enum deny_reason)r)));
	json_object_set_new(ans, "running", json_true());
	json_object_set_new(ans, "pid", json_integer((json_int_t)getpid()));
	json_object_set_new(ans, "uptime", json_integer((json_int_t)((now_ms - a->started_ms) / 1000)));
	json_object_set_new(ans, "bans", status_bans(time(NULL)));
	json_object_set_new(ans, "limited", status_limited(now_ms));
	json_object_set_new(ans, "connections", status_conns(a));
	json_object_set_new(ans, "denials", den);
	if (a->ops.more_status != NULL) {
		json_t *more = a->ops.more_status(a->ops.arg);

		json_object_update(ans, more);
		json_decref(more);
	}
	return ans;
}

static const struct {
	const char *name;
	json_t *(*fn)(struct admin *a, struct client *c, json_t *req);
} commands[] = {
	{ "status", cmd_status },
	{ "ban-list", cmd_ban_list },
	{ "ban-add", cmd_ban_add },
	{ "ban-remove", cmd_ban_remove },
};

static json_t *handle(struct client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *cmd, *ans = NULL;
	size_t i;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL)
		return fail("the request is not JSON (column %d: %s)", jerr.column, jerr.text);
	cmd = json_object_get(req, "cmd");
	if (!json_is_string(cmd)) {
		ans = fail("the request needs \"cmd\": status, ban-list, ban-add or ban-remove");
		goto out;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]) && ans == NULL; i++)
		if (strcmp(commands[i].name, json_string_value(cmd)) == 0)
			ans = commands[i].fn(c->a, c, req);
	if (ans == NULL)
		ans = fail("unknown command \"%s\"; want status, ban-list, ban-add or ban-remove",
			   json_string_value(cmd));
out:
	json_decref(req);
	return ans;
}

/* ---- the connection ------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
	struct client *c = t->data;

	if (!c->answered)
		log_warn("admin: a client (uid %lu) sent no complete request within %d s; dropped",
			 c->uid, ADMIN_DEADLINE_MS / 1000);
	client_close(c);
}

static void on_written(uv_write_t *wr, int status)
{
	client_close(wr->data);
}

/* Takes ownership of ans. */
static void answer(struct client *c, json_t *ans)
{
	uv_buf_t buf;
	char *s;

	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	s = json_dumps(ans, JSON_COMPACT);
	json_decref(ans);
	if (s == NULL)
		abort(); /* OOM only */
	c->answer = xasprintf("%s\n", s);
	free(s);
	uv_timer_start(&c->timer, on_timeout, ADMIN_WRITE_MS, 0);
	buf = uv_buf_init(c->answer, (unsigned)strlen(c->answer));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0)
		client_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct client *c = h->data;

	*buf = uv_buf_init(c->buf + c->len, (unsigned)(ADMIN_REQ_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = s->data;
	char *nl;
	size_t end;

	if (c->answered || c->closing || nread == 0)
		return;
	if (nread < 0) {
		/* EOF ends a request sent without its newline ("printf ... | nc -U"). */
		if (nread == UV_EOF && c->len > 0)
			answer(c, handle(c, c->buf, c->len));
		else
			client_close(c);
		return;
	}
	nl = memchr(c->buf + c->len, '\n', (size_t)nread);
	c->len += (size_t)nread;
	if (nl != NULL) {
		end = (size_t)(nl - c->buf);
		if (end > 0 && c->buf[end - 1] == '\r')
			end--;
		answer(c, handle(c, c->buf, end));
	} else if (c->len >= ADMIN_REQ_MAX) {
		answer(c, fail("the request is longer than %d bytes", ADMIN_REQ_MAX));
	}
}

/* The daemon's own user or root; everything else is refused even if the
 * socket file's mode were wrong. */
static bool peer_allowed(struct client *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	c->uid = (unsigned long)cr.uid;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void on_connection(uv_stream_t *server, int status)
{
	struct admin *a = server->data;
	struct client *c, *k;
	size_t n = 0;

	if (a->stopping)
		return;
	if (status < 0) {
		log_warn("admin: accept: %s", uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->a = a;
	uv_pipe_init(a->loop, &c->pipe, 0);
	uv_timer_init(a->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->handles = 2;
	c->next = a->clients;
	c->pprev = &a->clients;
	if (a->clients != NULL)
		a->clients->pprev = &c->next;
	a->clients = c;
	for (k = a->clients; k != NULL; k = k->next)
		n += !k->closing;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, ADMIN_DEADLINE_MS, 0);
	if (!peer_allowed(c)) {
		log_warn("admin: refused a client with uid %lu", c->uid);
		answer(c, geteuid() == 0 ? fail("only root may use this socket") :
			  fail("only uid %lu and root may use this socket",
			       (unsigned long)geteuid()));
	} else if (n > ADMIN_CLIENTS_MAX) {
		answer(c, fail("busy: %d admin clients already; try again", ADMIN_CLIENTS_MAX));
	} else {
		c->buf = xmalloc(ADMIN_REQ_MAX);
		if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
			client_close(c);
	}
}

/* ---- the listening socket ------------------------------------------------- */

/* Bound and listening, with mode 0600 from the start: on Linux the socket
 * file takes the mode of the socket's inode, so fchmod before bind leaves
 * no window in which it is wider (and needs no process-wide umask). */
static int listen_socket(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	const char *step;
	int fd, e;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Left by a daemon that was killed; the caller holds the data lock. */
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		log_error("admin: %s exists and is not a socket; remove it and start again", path);
		return -1;
	}
	if (lstat(path, &st) == 0 && unlink(path) < 0) {
		log_error("admin: cannot remove the old socket %s: %s", path, strerror(errno));
		return -1;
	}
	step = "socket";
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	step = "fchmod";
	if (fchmod(fd, 0600) < 0)
		goto fail_close;
	step = "bind";
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail_close;
	step = "stat";
	if (lstat(path, &st) < 0)
		goto fail_unlink;
	if ((st.st_mode & 0077) != 0) {
		log_error("admin: %s came out with mode %04o, not 0600; not listening",
			  path, (unsigned)(st.st_mode & 07777));
		unlink(path);
		close(fd);
		return -1;
	}
	step = "listen";
	if (listen(fd, ADMIN_CLIENTS_MAX) < 0)
		goto fail_unlink;
	return fd;

fail_unlink:
	e = errno;
	unlink(path);
	errno = e;
fail_close:
	e = errno;
	close(fd);
	errno = e;
fail:
	log_error("admin: %s %s: %s", step, path, strerror(errno));
	return -1;
}

struct admin *admin_start(uv_loop_t *loop, const char *data, const struct admin_ops *ops)
{
	struct admin *a = xcalloc(1, sizeof(*a));
	size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
	int fd, rc;

	a->loop = loop;
	a->ops = *ops;
	a->path = admin_socket_path(data);
	a->started_ms = moat_now_ms();
	if (strlen(a->path) > max) {
		log_error("admin: the socket path %s is %zu bytes, but a Unix socket path holds at "
			  "most %zu: use a data directory with a shorter path",
			  a->path, strlen(a->path), max);
		goto fail;
	}
	fd = listen_socket(a->path);
	if (fd < 0)
		goto fail;
	uv_pipe_init(loop, &a->server, 0);
	a->server.data = a;
	a->server_open = true;
	rc = uv_pipe_open(&a->server, fd);
	if (rc < 0)
		close(fd); /* not the handle's yet */
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->server, ADMIN_CLIENTS_MAX, on_connection);
	if (rc < 0) {
		log_error("admin: listen on %s: %s", a->path, uv_strerror(rc));
		/* a goes in the close callback (the loop must run once more) */
		unlink(a->path);
		a->stopping = true;
		uv_close((uv_handle_t *)&a->server, on_server_closed);
		return NULL;
	}
	log_info("admin socket on %s", a->path);
	return a;
fail:
	free(a->path);
	free(a);
	return NULL;
}

void admin_stop(struct admin *a)
{
	struct client *c;

	if (a == NULL)
		return;
	a->stopping = true;
	for (c = a->clients; c != NULL; c = c->next)
		client_close(c);
	unlink(a->path);
	uv_close((uv_handle_t *)&a->server, on_server_closed);
}
