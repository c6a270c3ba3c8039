/*
 * banfile.c - see banfile.h.
 *
 * The file is moat's own, but an operator may edit it by hand while no
 * daemon runs, so the reader names the entry and the field that is wrong.
 * It also holds a hand-edited entry to what moat itself would write (see
 * check_times and check_reason): `moat ban list` and `moat status` print
 * the times and reasons on a terminal, and the daemon keeps them for years.
 * The writer puts one ban per line, which keeps a diff of two versions or
 * a grep for an address readable.
 */
#include "banfile.h"
#include "banop.h"
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
/* How far a "since" may lie in the future, and "until" beyond the longest
 * ban, for a file written on a host (or before a step of this host's
 * clock) that ran a little ahead. */
#define BANFILE_SKEW_S 86400

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

	if (!json_is_integer(v))
		return MOAT_EINVAL;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/*
 * The times moat could have written: since not before 1970 and not in the
 * future, until after since and no further from now than the longest ban
 * (`moat ban add --for`, ban rules' `for`). since may be long past: a ban
 * made years ago may still run. Both get BANFILE_SKEW_S of slack, so a
 * small step back of the clock does not stop the daemon from starting.
 */
static int check_times(const struct ban *b, const char *path, size_t i, int64_t now, char **why)
{
	int64_t since_max = now + BANFILE_SKEW_S, until_max = now + BANOP_FOR_MAX + BANFILE_SKEW_S;

	if (b->since < 0)
		*why = xasprintf("%s: bans[%zu].since: %lld is before 1970 (unix times count seconds "
				 "from 1970-01-01 UTC); fix it or delete the entry", path, i,
				 (long long)b->since);
	else if (b->since > since_max)
		*why = xasprintf("%s: bans[%zu].since: %lld is more than a day after now (%lld): a ban "
				 "cannot start in the future; set it to at most %lld (check this "
				 "machine's clock too) or delete the entry", path, i,
				 (long long)b->since, (long long)now, (long long)since_max);
	else if (b->until <= b->since)
		*why = xasprintf("%s: bans[%zu].until: %lld is not after since (%lld): a ban ends "
				 "after it starts; fix the times or delete the entry", path, i,
				 (long long)b->until, (long long)b->since);
	else if (b->until > until_max)
		*why = xasprintf("%s: bans[%zu].until: %lld is more than 10 years after now (%lld), "
				 "longer than any ban moat makes; set it to at most %lld or delete "
				 "the entry", path, i, (long long)b->until, (long long)now,
				 (long long)until_max);
	else
		return 0;
	return MOAT_EINVAL;
}

/* The rule banop holds a new ban's reason to (one line of printable text,
 * at most BAN_REASON_MAX - 1 bytes), except that an empty or missing
 * reason is allowed. The message shows a control character by its code:
 * quoting it would send it to the terminal that prints the message. */
static int check_reason(json_t *reason, const char *path, size_t i, struct ban *b, char **why)
{
	const char *s = json_string_value(reason);
	size_t len = json_string_length(reason), k;

	if (len >= BAN_REASON_MAX) {
		*why = xasprintf("%s: bans[%zu].reason: %zu bytes, longer than moat keeps; shorten "
				 "it to at most %d bytes", path, i, len, BAN_REASON_MAX - 1);
		return MOAT_EINVAL;
	}
	for (k = 0; k < len; k++) {
		unsigned char ch = (unsigned char)s[k];

		if (ch < 0x20 || ch == 0x7f) {
			*why = xasprintf("%s: bans[%zu].reason: byte %zu is a control character "
					 "(0x%02x); a reason is one line of printable text: remove "
					 "it", path, i, k + 1, ch);
			return MOAT_EINVAL;
		}
	}
	memcpy(b->reason, s, len);
	b->reason[len] = '\0';
	return 0;
}

/* bans[i]: a static text naming the field. */
static int refuse(const char *path, size_t i, const char *what, char **why)
{
	*why = xasprintf("%s: bans[%zu]: %s", path, i, what);
	return MOAT_EINVAL;
}

/* Entry i; *why a heap message naming path, the entry and the field. */
static int parse_entry(json_t *e, const char *path, size_t i, int64_t now, struct ban *b,
		       char **why)
{
	json_t *addr = json_object_get(e, "address"), *reason = json_object_get(e, "reason");
	const char *what = NULL;

	memset(b, 0, sizeof(*b));
	if (!json_is_object(e))
		return refuse(path, i, "not an object", why);
	if (!json_is_string(addr))
		return refuse(path, i, "\"address\" is missing or not a string", why);
	if (parse_key(json_string_value(addr), &b->key, &what) < 0)
		return refuse(path, i, what, why);
	if (get_time(e, "since", &b->since) < 0 || get_time(e, "until", &b->until) < 0)
		return refuse(path, i, "\"since\" and \"until\" must be unix times (whole seconds)",
			      why);
	if (check_times(b, path, i, now, why) < 0)
		return MOAT_EINVAL;
	if (reason != NULL && !json_is_string(reason))
		return refuse(path, i, "\"reason\" is not a string", why);
	if (reason != NULL)
		return check_reason(reason, path, i, b, why);
	return 0;
}

static int parse_doc(const char *path, json_t *doc, int64_t now, struct ban **out, size_t *n,
		     char **why)
{
	json_t *ver = json_object_get(doc, "version"), *list = json_object_get(doc, "bans");
	struct ban *b = NULL;
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
		if (parse_entry(json_array_get(list, i), path, i, now, &b[k], why) < 0) {
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
	size_t len = 0, i;
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
		/* jansson quotes the bytes near the error: a stray control
		 * character would go to the terminal that prints this. */
		for (i = 0; jerr.text[i] != '\0'; i++)
			if ((unsigned char)jerr.text[i] < 0x20 || (unsigned char)jerr.text[i] == 0x7f)
				jerr.text[i] = '?';
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
