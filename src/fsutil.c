/*
 * fsutil.c - see fsutil.h.
 *
 * Errors are logged here, where errno is still meaningful, so callers only
 * have to pass the MOAT_E* code up.
 */
#include "fsutil.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Wipe before freeing: fs_read_file buffers may hold private keys. */
static void wipe_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	explicit_bzero(buf, len);
	free(buf);
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The rename is only durable once the directory entry itself reaches the
 * disk; without this a power cut can bring back the old file (or none).
 */
static int fsync_dir(const char *path)
{
	char *dir = fs_dirname(path);
	int fd, rc = -1, e;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	rc = fsync(fd);
	/* Some filesystems (certain FUSE and network ones) cannot sync a
	 * directory at all; the rename has still happened. */
	if (rc < 0 && (errno == EINVAL || errno == ENOTSUP))
		rc = 0;
	e = errno;
	close(fd);
	errno = e;
out:
	free(dir);
	return rc;
}

int fs_rename_durable(const char *from, const char *to)
{
	if (rename(from, to) < 0 || fsync_dir(to) < 0) {
		log_error("fs_rename_durable: %s -> %s: %s", from, to, strerror(errno));
		return MOAT_EIO;
	}
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char *tmp = NULL;
	const char *step;
	uint32_t rnd = 0;
	int fd = -1, rc = MOAT_EIO, e;

	/* A random suffix keeps two writers of the same path (or a stale temp
	 * file left by a crash) from ever sharing a temp file. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)moat_now_ms() ^ (uint32_t)(uintptr_t)&rnd;
	tmp = xasprintf("%s.tmp.%ld.%08x", path, (long)getpid(), (unsigned)rnd);

	step = "creating the temp file";
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	/* open() applies the umask; fchmod gives exactly the requested mode
	 * (a 0644 certificate stays readable under umask 077). */
	step = "chmod";
	if (fchmod(fd, mode) < 0)
		goto fail_unlink;
	step = "write";
	if (write_all(fd, data, len) < 0)
		goto fail_unlink;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail_unlink;
	step = "close";
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto fail_unlink;
	step = "rename";
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	step = "directory fsync";
	if (fsync_dir(path) < 0)
		goto fail;
	rc = 0;
	goto out;

fail_unlink:
	e = errno;
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlink(tmp);
	errno = e;
fail:
	log_error("%s: %s: %s failed: %s", __func__, path, step, strerror(errno));
out:
	free(tmp);
	return rc;
}

/* Create one directory 0700; an existing one is fine. */
static int mkdir_one(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0) {
		/* mkdir applies the umask, which may have removed owner bits. */
		if (chmod(dir, 0700) < 0)
			return -1;
		return 0;
	}
	if (errno != EEXIST)
		return -1;
	if (stat(dir, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int fs_mkdir_private(const char *path)
{
	struct stat st;
	char *p = xstrdup(path);
	size_t n = strlen(p);
	char *s;
	int rc = MOAT_EIO;

	if (n == 0) {
		log_error("%s: empty directory path", __func__);
		goto out;
	}
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	/* A misconfigured "data: /" run as root must not chmod the root. */
	if (strcmp(p, "/") == 0) {
		log_error("%s: refusing to make / private", __func__);
		goto out;
	}

	/* Parents first; they keep whatever mode they already have (e.g.
	 * /var/lib), only the ones created here are 0700. */
	for (s = strchr(p + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		if (s[-1] == '/')
			continue;
		*s = '\0';
		if (mkdir_one(p) < 0) {
			log_error("%s: mkdir %s: %s", __func__, p, strerror(errno));
			goto out;
		}
		*s = '/';
	}
	if (mkdir_one(p) < 0 || stat(p, &st) < 0) {
		log_error("%s: mkdir %s: %s", __func__, p, strerror(errno));
		goto out;
	}
	if ((st.st_mode & 077) != 0 && chmod(p, 0700) < 0) {
		log_error("%s: chmod 0700 %s: %s", __func__, p, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(p);
	return rc;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t cap, n = 0;
	int fd, rc = MOAT_EIO;

	*out = NULL;
	if (len != NULL)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s: open %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		log_error("%s: stat %s: %s", __func__, path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("%s: %s: not a regular file", __func__, path);
		goto out_close;
	}
	if ((uintmax_t)st.st_size > max) {
		log_error("%s: %s: %jd bytes, limit is %zu", __func__, path,
			  (intmax_t)st.st_size, max);
		rc = MOAT_ETOOBIG;
		goto out_close;
	}

	/*
	 * Size the buffer from fstat, but keep reading to EOF: the file may
	 * have grown since. Growth stays bounded by max, and the old buffer
	 * is wiped rather than realloc'd so no copy of a secret is left.
	 */
	cap = (size_t)st.st_size;
	buf = xmalloc(cap + 1);
	for (;;) {
		ssize_t r;

		if (n == cap) {
			size_t ncap;
			char *nbuf;

			if (cap >= max) {
				char probe;

				r = read(fd, &probe, 1);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					goto read_error;
				if (r == 0)
					break;
				log_error("%s: %s: larger than %zu bytes",
					  __func__, path, max);
				rc = MOAT_ETOOBIG;
				goto out_close;
			}
			ncap = cap < max / 2 ? cap * 2 + 256 : max;
			if (ncap > max)
				ncap = max;
			nbuf = xmalloc(ncap + 1);
			memcpy(nbuf, buf, n);
			wipe_free(buf, cap + 1);
			buf = nbuf;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto read_error;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	if (len != NULL)
		*len = n;
	rc = 0;
	goto out_close;

read_error:
	log_error("%s: read %s: %s", __func__, path, strerror(errno));
out_close:
	close(fd);
	if (buf != NULL)
		wipe_free(buf, cap + 1);
out:
	return rc;
}

char *fs_resolve(const char *base_dir, const char *p)
{
	size_t n;

	if (p[0] == '/' || base_dir == NULL || base_dir[0] == '\0')
		return xstrdup(p);
	n = strlen(base_dir);
	if (base_dir[n - 1] == '/')
		return xasprintf("%s%s", base_dir, p);
	return xasprintf("%s/%s", base_dir, p);
}

/* POSIX dirname(3) semantics, without modifying the argument. */
char *fs_dirname(const char *path)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	if (n == 0)
		return xstrdup(".");
	while (n > 1 && path[n - 1] == '/')
		n--;
	return xstrndup(path, n);
}
