// client: the smallest keychain-auth client, for attack tests that need a
// small binary (so an attack fits in one clock tick).
//
//	client <socket> <request-line>
//
// connects, sends the line, prints the reply line and exits 0; it exits 3
// when the daemon closes without a reply. Built with -DVARIANT=n for a
// different hash and -DPAD to make it larger.
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT 0
#endif

#ifdef PAD
static volatile char pad[16384] = {1};
#endif

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: client <socket> <request-line> (variant %d)\n", VARIANT);
		return 2;
	}
#ifdef PAD
	pad[0]++;
#endif
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("client: connect");
		return 1;
	}
	size_t n = strlen(argv[2]);
	if (write(fd, argv[2], n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
		perror("client: write");
		return 1;
	}
	char buf[65536];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0)
			break;
		got += r;
		if (memchr(buf, '\n', got) || got == sizeof buf - 1)
			break;
	}
	if (got == 0) {
		puts("CLOSED");
		return 3;
	}
	fwrite(buf, 1, got, stdout);
	return 0;
}
