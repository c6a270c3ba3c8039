/*
 * test_log.c - the access log: every line is one valid JSON object holding
 * exactly the record's values (strings escaped, non-ASCII bytes replaced,
 * NULL as null), "off" writes nothing, reopening switches the target, a
 * failed open keeps the old one, and a huge path still gives one valid line.
 * Lines are read back from files in one mkdtemp directory (removed at the
 * end) and parsed with jansson. One cmocka test per table row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LINE_MAX_BYTES 4096 /* log.c's line buffer */
#define NKEYS 11

static char *tmpdir;
static int nfiles;

static int ntests;
static struct CMUnitTest tests[64];

static int close_log(void **state)
{
	log_access_close();
	return 0;
}

static void add(const char *name, void (*fn)(void **), const void *row)
{
	assert_true(ntests < (int)(sizeof(tests) / sizeof(tests[0])));
	tests[ntests].name = name;
	tests[ntests].test_func = fn;
	tests[ntests].setup_func = NULL;
	tests[ntests].teardown_func = close_log;
	tests[ntests].initial_state = (void *)(uintptr_t)row;
	ntests++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	tmpdir = xstrdup("/tmp/moat-test-log-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		free(tmpdir);
		tmpdir = NULL;
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	log_access_close();
	if (tmpdir != NULL)
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	return 0;
}

/* A fresh file name in tmpdir; caller frees. */
static char *new_path(void)
{
	return xasprintf("%s/access-%d.log", tmpdir, nfiles++);
}

/* The whole file (empty if missing), NUL-terminated; caller frees. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;
	size_t n = 0;

	if (f == NULL || fstat(fileno(f), &st) != 0) {
		if (f != NULL)
			fclose(f);
		*len = 0;
		return xstrdup("");
	}
	buf = xmalloc((size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Split text into lines, each of which must end in '\n'. Returns the count;
 * lines[i] point into text (the '\n' replaced by NUL). */
static size_t split_lines(char *text, size_t len, char **lines, size_t max)
{
	size_t n = 0;
	char *p = text, *nl;

	while (p < text + len) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		if (nl == NULL)
			fail_msg("last line has no newline: \"%.80s\"", p);
		assert_true(n < max);
		*nl = '\0';
		assert_true((size_t)(nl - p) + 1 <= LINE_MAX_BYTES);
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

/* One line as a JSON object with exactly the access-log keys. */
static json_t *parse_line(const char *line)
{
	static const char *const keys[NKEYS] = {
		"time", "client", "host", "method", "path", "status", "bytes_in",
		"bytes_out", "duration_ms", "upstream", "tls",
	};
	json_error_t err;
	json_t *o;
	size_t i;

	o = json_loads(line, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (o == NULL)
		fail_msg("not valid JSON (%s at column %d): %.200s", err.text, err.column, line);
	assert_true(json_is_object(o));
	for (i = 0; i < NKEYS; i++) {
		if (json_object_get(o, keys[i]) == NULL)
			fail_msg("key \"%s\" missing in %.200s", keys[i], line);
	}
	assert_int_equal(json_object_size(o), NKEYS);
	return o;
}

/* want NULL: the value must be JSON null; else exactly want[0..n). */
static void check_str(json_t *o, const char *key, const char *want, size_t n)
{
	json_t *v = json_object_get(o, key);

	if (want == NULL) {
		if (!json_is_null(v))
			fail_msg("\"%s\" should be null", key);
		return;
	}
	if (!json_is_string(v))
		fail_msg("\"%s\" should be a string", key);
	if (memchr(want, '\0', n) == NULL) {
		assert_string_equal(json_string_value(v), want);
	} else {
		assert_int_equal(json_string_length(v), n);
		assert_memory_equal(json_string_value(v), want, n);
	}
}

static void check_int(json_t *o, const char *key, long long want)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		fail_msg("\"%s\" should be an integer", key);
	assert_int_equal(json_integer_value(v), want);
}

/* "2024-05-01T12:34:56.789Z", within a minute of now. */
static void check_time(json_t *o)
{
	const char *t = json_string_value(json_object_get(o, "time"));
	struct tm tm = {0};
	const char *rest;
	time_t at;

	assert_non_null(t);
	assert_int_equal(strlen(t), 24);
	rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	assert_true(rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' && rest[2] >= '0' &&
		    rest[2] <= '9' && rest[3] >= '0' && rest[3] <= '9');
	assert_string_equal(rest + 4, "Z");
	at = timegm(&tm);
	assert_true(llabs((long long)(at - time(NULL))) < 60);
}

/* ---- one record, one line ------------------------------------------------ */

struct bytes {
	const char *p;
	size_t n;
};

#define B(lit) { lit, sizeof(lit) - 1 }
#define NUL_B { NULL, 0 }

struct row {
	const char *name;
	/* the record */
	const char *client, *host;
	struct bytes method, path;
	int status;
	uint64_t in, out;
	const char *upstream, *tls;
	/* what the line must hold */
	const char *want_client, *want_host;
	struct bytes want_method, want_path;
	const char *want_upstream, *want_tls;
	const char *raw; /* NULL or text the line must contain verbatim */
};

static const struct row rows[] = {
	{ "plain request",
	  "192.0.2.7", "app.example", B("GET"), B("/a?b=1"), 200, 120, 2048,
	  "127.0.0.1:9000", "TLSv1.3",
	  "192.0.2.7", "app.example", B("GET"), B("/a?b=1"), "127.0.0.1:9000", "TLSv1.3",
	  "\"client\":\"192.0.2.7\",\"host\":\"app.example\",\"method\":\"GET\"" },
	{ "quotes and backslashes escaped",
	  "2001:db8::1", "app.example", B("GET"), B("/a\"b\\c\"\\"), 404, 0, 1,
	  "[::1]:9000", NULL,
	  "2001:db8::1", "app.example", B("GET"), B("/a\"b\\c\"\\"), "[::1]:9000", NULL,
	  "\"path\":\"/a\\\"b\\\\c\\\"\\\\\"" },
	{ "control bytes escaped as \\u00XX",
	  "192.0.2.7", "app.example", B("GET"), B("/\x01\t\n\r\x1b[31m\x1f\x7f"), 400, 7, 9,
	  NULL, NULL,
	  "192.0.2.7", "app.example", B("GET"), B("/\x01\t\n\r\x1b[31m\x1f\x7f"), NULL, NULL,
	  "\"/\\u0001\\u0009\\u000a\\u000d\\u001b[31m\\u001f\\u007f\"" },
	{ "NUL byte inside the path length",
	  "192.0.2.7", "app.example", B("GET"), B("/a\0b"), 400, 0, 0, NULL, NULL,
	  "192.0.2.7", "app.example", B("GET"), B("/a\0b"), NULL, NULL, "\"/a\\u0000b\"" },
	{ "non-ASCII bytes replaced",
	  "192.0.2.7", "h\xc3\xa9.example", B("GET"), B("/caf\xc3\xa9/\xff\x80"), 200, 0, 0,
	  "up\xe2\x80\x8b:80", "TLSv1.2",
	  "192.0.2.7", "h\?\?.example", B("GET"), B("/caf\?\?/\?\?"), "up\?\?\?:80", "TLSv1.2", NULL },
	{ "NULL host, upstream and tls are null",
	  "192.0.2.7", NULL, B("GET"), B("/"), 400, 18, 120, NULL, NULL,
	  "192.0.2.7", NULL, B("GET"), B("/"), NULL, NULL,
	  "\"host\":null," },
	{ "lengths are honoured, not NULs",
	  "192.0.2.7", "app.example", { "GETTING", 3 }, { "/abcdef", 3 }, 200, 0, 0, NULL, NULL,
	  "192.0.2.7", "app.example", B("GET"), B("/ab"), NULL, NULL, NULL },
	{ "empty method and path",
	  "-", "app.example", B(""), B(""), 408, 0, 0, NULL, NULL,
	  "-", "app.example", B(""), B(""), NULL, NULL, "\"method\":\"\",\"path\":\"\"" },
	{ "large counters",
	  "192.0.2.7", "app.example", B("PUT"), B("/big"), 201, 1ull << 40, (1ull << 53) + 1,
	  "127.0.0.1:9000", "TLSv1.3",
	  "192.0.2.7", "app.example", B("PUT"), B("/big"), "127.0.0.1:9000", "TLSv1.3",
	  "\"bytes_in\":1099511627776,\"bytes_out\":9007199254740993," },
};

static void log_row(const struct row *r, uint64_t start_ms)
{
	struct access_rec rec = {
		.client = r->client,
		.host = r->host,
		.method = r->method.p,
		.method_len = r->method.n,
		.path = r->path.p,
		.path_len = r->path.n,
		.status = r->status,
		.bytes_in = r->in,
		.bytes_out = r->out,
		.start_ms = start_ms,
		.upstream = r->upstream,
		.tls = r->tls,
	};

	log_access(&rec);
}

static void check_row(const char *line, const struct row *r)
{
	json_t *o = parse_line(line);

	check_time(o);
	check_str(o, "client", r->want_client, strlen(r->want_client));
	check_str(o, "host", r->want_host, r->want_host ? strlen(r->want_host) : 0);
	check_str(o, "method", r->want_method.p, r->want_method.n);
	check_str(o, "path", r->want_path.p, r->want_path.n);
	check_int(o, "status", r->status);
	check_int(o, "bytes_in", (long long)r->in);
	check_int(o, "bytes_out", (long long)r->out);
	check_str(o, "upstream", r->want_upstream,
		  r->want_upstream ? strlen(r->want_upstream) : 0);
	check_str(o, "tls", r->want_tls, r->want_tls ? strlen(r->want_tls) : 0);
	if (r->raw != NULL && strstr(line, r->raw) == NULL)
		fail_msg("line lacks %s: %s", r->raw, line);
	json_decref(o);
}

static void t_row(void **state)
{
	const struct row *r = *state;
	char *path = new_path(), *text, *lines[4];
	size_t len;
	json_t *o;

	assert_int_equal(log_access_open(path), 0);
	/* started 1.5 s ago: duration_ms is measured from start_ms */
	log_row(r, moat_now_ms() - 1500);
	text = slurp(path, &len);
	assert_int_equal(split_lines(text, len, lines, 4), 1);
	check_row(lines[0], r);
	o = parse_line(lines[0]);
	assert_in_range(json_integer_value(json_object_get(o, "duration_ms")), 1500, 61500);
	json_decref(o);
	free(text);
	free(path);
}

/* ---- targets --------------------------------------------------------------- */

static const struct row *plain = &rows[0];

static size_t count_lines(const char *path)
{
	char *text, *lines[64];
	size_t len, n, i;

	text = slurp(path, &len);
	n = split_lines(text, len, lines, 64);
	for (i = 0; i < n; i++)
		json_decref(parse_line(lines[i]));
	free(text);
	return n;
}

static void t_off(void **state)
{
	char *path = new_path();

	assert_int_equal(log_access_open(path), 0);
	log_row(plain, moat_now_ms());
	assert_int_equal(log_access_open("off"), 0);
	log_row(plain, moat_now_ms());
	log_row(plain, moat_now_ms());
	assert_int_equal(count_lines(path), 1);
	/* and back on: appended after the first line */
	assert_int_equal(log_access_open(path), 0);
	log_row(plain, moat_now_ms());
	assert_int_equal(count_lines(path), 2);
	free(path);
}

static void t_reopen(void **state)
{
	char *a = new_path(), *b = new_path(), *c = new_path();

	assert_int_equal(log_access_open(a), 0);
	log_row(plain, moat_now_ms());
	assert_int_equal(log_access_open(b), 0);
	log_row(plain, moat_now_ms());
	log_row(plain, moat_now_ms());
	assert_int_equal(count_lines(a), 1);
	assert_int_equal(count_lines(b), 2);
	/* a third swap closes the first file; the second keeps its lines */
	assert_int_equal(log_access_open(c), 0);
	log_row(plain, moat_now_ms());
	assert_int_equal(count_lines(a), 1);
	assert_int_equal(count_lines(b), 2);
	assert_int_equal(count_lines(c), 1);
	free(a);
	free(b);
	free(c);
}

static void t_open_fails(void **state)
{
	char *a = new_path(), *bad = xasprintf("%s/no-such-dir/access.log", tmpdir);

	assert_int_equal(log_access_open(a), 0);
	assert_int_equal(log_access_open(bad), MOAT_EIO);
	log_row(plain, moat_now_ms());
	assert_int_equal(count_lines(a), 1);
	free(bad);
	free(a);
}

static void t_appends(void **state)
{
	char *path = new_path(), *text, *lines[4];
	struct stat st;
	size_t len;
	int fd;

	/* an existing file is appended to, not truncated */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{}\n", 3), 3);
	close(fd);
	assert_int_equal(log_access_open(path), 0);
	log_row(plain, moat_now_ms());
	text = slurp(path, &len);
	assert_int_equal(split_lines(text, len, lines, 4), 2);
	assert_string_equal(lines[0], "{}");
	check_row(lines[1], plain);
	free(text);
	free(path);

	/* a new file is created no wider than 0640 */
	path = new_path();
	assert_int_equal(log_access_open(path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777 & ~0640u, 0);
	free(path);
}

static void t_stdout(void **state)
{
	char *path = new_path(), *text, *lines[4];
	int fd, saved;
	size_t len;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
	assert_int_equal(log_access_open("stdout"), 0);
	log_row(plain, moat_now_ms());
	assert_int_equal(log_access_open("off"), 0);
	assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	close(fd);
	text = slurp(path, &len);
	assert_int_equal(split_lines(text, len, lines, 4), 1);
	check_row(lines[0], plain);
	free(text);
	free(path);
}

/* ---- a 10 KB path still gives one valid line --------------------------------- */

struct long_row {
	const char *name;
	char fill;      /* the path is '/' and then this byte */
	char want;      /* what each byte reads back as */
};

/*
 * Regression: the path used to be cut at 2048 input bytes, but an escaped
 * byte takes 2 ('"', '\\') or 6 (controls) output bytes, so a 2 KB target of
 * '"' (which h1 allows) filled the line and cut the fields after it, leaving
 * invalid JSON. The escaped path is now bounded instead.
 */
static const struct long_row long_rows[] = {
	{ "10 KB path of plain bytes", 'a', 'a' },
	{ "10 KB path of non-ASCII bytes", '\xff', '?' },
	{ "10 KB path of quotes", '"', '"' },
	{ "10 KB path of backslashes", '\\', '\\' },
	{ "10 KB path of control bytes", '\x01', '\x01' },
};

static void t_long_path(void **state)
{
	const struct long_row *r = *state;
	size_t plen = 10 * 1024, len, i, got;
	char *path = new_path(), *p = xmalloc(plen), *text, *lines[4];
	struct access_rec rec = {
		.client = "192.0.2.7", .host = "app.example", .method = "GET", .method_len = 3,
		.status = 414, .bytes_in = 10300, .bytes_out = 99,
		.upstream = "127.0.0.1:9000", .tls = "TLSv1.3",
	};
	const char *v;
	json_t *o;

	p[0] = '/';
	memset(p + 1, r->fill, plen - 1);
	rec.path = p;
	rec.path_len = plen;
	rec.start_ms = moat_now_ms();
	assert_int_equal(log_access_open(path), 0);
	log_access(&rec);
	text = slurp(path, &len);
	assert_int_equal(split_lines(text, len, lines, 4), 1);
	o = parse_line(lines[0]);
	/* the path may be cut, but what is there is the start of it */
	v = json_string_value(json_object_get(o, "path"));
	assert_non_null(v);
	got = json_string_length(json_object_get(o, "path"));
	assert_in_range(got, 256, plen);
	assert_int_equal(v[0], '/');
	for (i = 1; i < got; i++) {
		if (v[i] != r->want)
			fail_msg("path byte %zu is 0x%02x, want 0x%02x", i, (unsigned char)v[i],
				 (unsigned char)r->want);
	}
	/* and every field after it survived */
	check_int(o, "status", 414);
	check_int(o, "bytes_in", 10300);
	check_int(o, "bytes_out", 99);
	check_str(o, "upstream", "127.0.0.1:9000", 14);
	check_str(o, "tls", "TLSv1.3", 7);
	json_decref(o);
	free(text);
	free(p);
	free(path);
}

/* ---- writers on several threads never interleave ------------------------- */

#define NTHREADS 4
#define PER_THREAD 200

static void *writer(void *arg)
{
	struct access_rec rec = {
		.client = "192.0.2.7", .host = "app.example", .method = "POST", .method_len = 4,
		.path = arg, .path_len = strlen(arg), .status = 200,
		.upstream = "127.0.0.1:9000", .tls = "TLSv1.3",
	};
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		rec.bytes_in = (uint64_t)i;
		rec.start_ms = moat_now_ms();
		log_access(&rec);
	}
	return NULL;
}

static void t_threads(void **state)
{
	char *path = new_path(), *text, **lines, *paths[NTHREADS];
	pthread_t th[NTHREADS];
	unsigned seen[NTHREADS] = {0};
	size_t len, n, i;
	int t;

	assert_int_equal(log_access_open(path), 0);
	for (t = 0; t < NTHREADS; t++) {
		/* long lines make torn writes likely if they can happen */
		paths[t] = xmalloc(1501);
		paths[t][0] = '/';
		memset(paths[t] + 1, 'a' + t, 1499);
		paths[t][1500] = '\0';
		assert_int_equal(pthread_create(&th[t], NULL, writer, paths[t]), 0);
	}
	for (t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	text = slurp(path, &len);
	lines = xcalloc(NTHREADS * PER_THREAD + 1, sizeof(*lines));
	n = split_lines(text, len, lines, NTHREADS * PER_THREAD + 1);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	for (i = 0; i < n; i++) {
		json_t *o = parse_line(lines[i]);
		const char *p = json_string_value(json_object_get(o, "path"));

		assert_non_null(p);
		assert_int_equal(strlen(p), 1500);
		t = p[1] - 'a';
		assert_in_range(t, 0, NTHREADS - 1);
		/* each thread's lines arrive in its own order */
		check_int(o, "bytes_in", seen[t]);
		seen[t]++;
		json_decref(o);
	}
	for (t = 0; t < NTHREADS; t++)
		free(paths[t]);
	free(lines);
	free(text);
	free(path);
}

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		add(rows[i].name, t_row, &rows[i]);
	add("off writes nothing", t_off, NULL);
	add("reopening switches the target", t_reopen, NULL);
	add("a failed open keeps the old target", t_open_fails, NULL);
	add("appends to an existing file, creates 0640", t_appends, NULL);
	add("stdout", t_stdout, NULL);
	for (i = 0; i < sizeof(long_rows) / sizeof(long_rows[0]); i++)
		add(long_rows[i].name, t_long_path, &long_rows[i]);
	add("threads never interleave lines", t_threads, NULL);
	return _cmocka_run_group_tests("log", tests, (size_t)ntests, group_setup,
				       group_teardown);
}
