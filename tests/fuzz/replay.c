/*
 * replay.c - run a libFuzzer target over a committed corpus without libFuzzer,
 * so the normal test run (and the sanitizer build) replays every input.
 * Usage: fuzz_<parser>_replay DIR. Fails if DIR is missing or holds no input:
 * a corpus that silently vanished must not look like a pass.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path, const char *name)
{
	struct stat st;
	FILE *f = NULL;
	uint8_t *buf = NULL;
	int rc = -1;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || name[0] == '.') {
		rc = 0;
		goto out;
	}
	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		goto out;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		fprintf(stderr, "replay: %s: short read\n", path);
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
	rc = 1;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	DIR *d;
	struct dirent *de;
	char path[4096];
	unsigned long n = 0;
	int rc, status = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		de = readdir(d);
		if (de == NULL)
			break;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name) >= sizeof(path))
			goto out;
		rc = replay_file(path, de->d_name);
		if (rc < 0)
			goto out;
		n += (unsigned long)rc;
	}
	printf("replayed %lu inputs from %s\n", n, argv[1]);
	if (n == 0)
		fprintf(stderr, "replay: %s holds no inputs\n", argv[1]);
	else
		status = 0;
out:
	closedir(d);
	return status;
}
