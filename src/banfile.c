/*
 * banfile.c - see banfile.h.
 *
 * The file is moat's own, but an operator may edit it by hand while no
 * daemon runs, so the reader names the entry and the field that is wrong.
 * The writer puts one ban per line, which keeps a diff of two versions or
 * a grep for an address readable.
 */
#include "banfile.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BANFILE_MAX ((size_t)256 << 20) /* far above a full default table (~20 MB) */
#define BANFILE_VERSION 1

char *banfile_path(const char *data)
{
	return xasprintf("%s/%s", data, BANFILE_NAME);
}

char *banfile_lock_path(const char *data)
{
	return xasprintf("%s/%s", data, BANFILE_LOCK_NAME);
}

/* ---- reading ---------------------------------------------------------------- */

/* A file entry's "address": a client key as cidr_format writes it, or a
 * single address (hand-written), which stands for its key. */
static int parse_key(const char *s, struct cidr *out, const char **why)
{
	struct cidr c, k;

	if (cidr_parse(s, &c, why) < 0)
		return MOAT_EINVAL;
	k = ipaddr_key(&c.a);
	if (c.bits == 128 || (k.bits == c.bits && ipaddr_equal(&k.a, &c.a))) {
		*out = k;
		return 0;
	}
	*why = "not a client key (an IPv4 address, or an IPv6 address or /64 prefix)";
	return MOAT_EINVAL;
}

static int get_time(json_t *e, const char *field, int64_t *out)
{
	json_t *v = json_object_get(e, field);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return MOAT_EINVAL;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* One entry; *why is a static text naming the field. */
static int parse_entry(json_t *e, struct ban *b, const char **why)
{
	json_t *addr = json_object_get(e, "address"), *reason = json_object_get(e, "reason");

	memset(b, 0, sizeof(*b));
	if (!json_is_object(e)) {
		*why = "not an object";
		return MOAT_EINVAL;
	}
	if (!json_is_string(addr)) {
		*why = "\"address\" is missing or not a string";
		return MOAT_EINVAL;
	}
	if (parse_key(json_string_value(addr), &b->key, why) < 0)
		return MOAT_EINVAL;
	if (get_time(e, "since", &b->since) < 0 || get_time(e, "until", &b->until) < 0) {
		*why = "\"since\" and \"until\" must be unix times (whole seconds)";
		return MOAT_EINVAL;
	}
	if (b->until <= b->since) {
		*why = "\"until\" is not after \"since\"";
		return MOAT_EINVAL;
	}
	if (reason != NULL && !json_is_string(reason)) {
		*why = "\"reason\" is not a string";
		return MOAT_EINVAL;
	}
	if (reason != NULL)
		snprintf(b->reason, sizeof(b->reason), "%s", json_string_value(reason));
	return 0;
}

static int parse_doc(const char *path, json_t *doc, int64_t now, struct ban **out, size_t *n,
		     char **why)
{
	json_t *ver = json_object_get(doc, "version"), *list = json_object_get(doc, "bans");
	struct ban *b = NULL;
	const char *what = NULL;
	size_t i, k = 0;

	if (!json_is_object(doc) || !json_is_integer(ver) || !json_is_array(list)) {
		*why = xasprintf("%s: not a moat ban file: want {\"version\": %d, \"bans\": [...]}",
				 path, BANFILE_VERSION);
		return MOAT_EINVAL;
	}
	if (json_integer_value(ver) != BANFILE_VERSION) {
		*why = xasprintf("%s: version %lld; this moat reads version %d", path,
				 (long long)json_integer_value(ver), BANFILE_VERSION);
		return MOAT_EINVAL;
	}
	b = xcalloc(json_array_size(list) + 1, sizeof(*b));
	for (i = 0; i < json_array_size(list); i++) {
		if (parse_entry(json_array_get(list, i), &b[k], &what) < 0) {
			*why = xasprintf("%s: bans[%zu]: %s", path, i, what);
			free(b);
			return MOAT_EINVAL;
		}
		if (b[k].until > now)
			k++;
	}
	*out = b;
	*n = k;
	return 0;
}

int banfile_read(const char *path, int64_t now, struct ban **out, size_t *n, char **why)
{
	json_error_t jerr;
	json_t *doc = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*why = NULL;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		*out = xcalloc(1, sizeof(**out));
		return 0;
	}
	rc = fs_read_file(path, BANFILE_MAX, &text, &len);
	if (rc < 0) {
		*why = xasprintf("%s: cannot be read (%s)", path,
				 rc == MOAT_ETOOBIG ? "larger than 256 MiB" : "see above");
		rc = MOAT_EIO;
		goto out;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		*why = xasprintf("%s:%d:%d: malformed JSON: %s", path, jerr.line, jerr.column,
				 jerr.text);
		rc = MOAT_EINVAL;
		goto out;
	}
	rc = parse_doc(path, doc, now, out, n, why);
out:
	json_decref(doc);
	free(text);
	return rc;
}

/* ---- writing ---------------------------------------------------------------- */

/* jansson refuses strings that are not UTF-8; a reason is built from
 * configuration text and request methods, so replace what is not ASCII
 * rather than lose the whole ban. */
static json_t *reason_string(const char *s)
{
	json_t *j = json_string(s);
	char *copy;
	size_t i;

	if (j != NULL)
		return j;
	copy = xstrdup(s);
	for (i = 0; copy[i] != '\0'; i++)
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static char *entry_text(const struct ban *b)
{
	char addr[NETADDR_TEXT];
	json_t *e;
	char *s;

	e = json_pack("{s:s, s:I, s:I, s:o}", "address", cidr_format(&b->key, addr, sizeof(addr)),
		      "since", (json_int_t)b->since, "until", (json_int_t)b->until,
		      "reason", reason_string(b->reason));
	if (e == NULL)
		abort(); /* only on OOM: the inputs are all valid */
	s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(e);
	if (s == NULL)
		abort();
	return s;
}

/* A daemon that runs as its own user must still own the file root wrote
 * with `moat ban` while it was stopped. */
static void give_to_dir_owner(const char *path, int fd)
{
	struct stat st;
	char *dir;
	int rc;

	if (geteuid() != 0)
		return;
	dir = fs_dirname(path);
	rc = stat(dir, &st);
	free(dir);
	if (rc < 0 || st.st_uid == 0)
		return;
	rc = fd >= 0 ? fchown(fd, st.st_uid, st.st_gid) : chown(path, st.st_uid, st.st_gid);
	if (rc < 0)
		log_warn("%s: chown %s to the data directory's owner: %s", __func__, path,
			 strerror(errno));
}

int banfile_write(const char *path, const struct ban *b, size_t n)
{
	char *buf, *line;
	size_t len, cap = 64, i, l;
	int rc;

	buf = xmalloc(cap);
	len = (size_t)snprintf(buf, cap, "{\"version\":%d,\"bans\":[", BANFILE_VERSION);
	for (i = 0; i < n; i++) {
		line = entry_text(&b[i]);
		l = strlen(line);
		/* ",\n" before the entry and "\n]}\n" after the last one */
		while (len + l + 8 > cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		memcpy(buf + len, i == 0 ? "\n" : ",\n", i == 0 ? 1 : 2);
		len += i == 0 ? 1 : 2;
		memcpy(buf + len, line, l);
		len += l;
		free(line);
	}
	memcpy(buf + len, n > 0 ? "\n]}\n" : "]}\n", n > 0 ? 4 : 3);
	len += n > 0 ? 4 : 3;
	rc = fs_write_atomic(path, buf, len, 0600);
	free(buf);
	if (rc < 0)
		return MOAT_EIO;
	give_to_dir_owner(path, -1);
	return 0;
}

/* ---- the data directory's lock ---------------------------------------------- */

static void write_pid(int fd)
{
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());

	/* Only for messages: a failure here does not weaken the lock. */
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("%s: cannot record the pid in the lock file: %s", __func__,
			 strerror(errno));
}

int banfile_lock(const char *data)
{
	char *path = banfile_lock_path(data);
	int fd, rc = MOAT_EIO;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_error("%s: open %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		rc = errno == EWOULDBLOCK ? MOAT_EEXIST : MOAT_EIO;
		if (rc == MOAT_EIO)
			log_error("%s: flock %s: %s", __func__, path, strerror(errno));
		close(fd);
		goto out;
	}
	give_to_dir_owner(path, fd);
	write_pid(fd);
	rc = fd;
out:
	free(path);
	return rc;
}

long banfile_lock_holder(const char *data)
{
	char *path = banfile_lock_path(data), buf[32];
	ssize_t r = -1;
	long pid = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (r > 0) {
		buf[r] = '\0';
		pid = strtol(buf, NULL, 10);
	}
	free(path);
	return pid > 0 ? pid : 0;
}
