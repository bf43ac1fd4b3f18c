// cvm: a verified client that hands its connection to a re-exec of itself
// with LD_PRELOAD, after sharing its address space with a helper process
// (clone(CLONE_VM) without CLONE_THREAD) that outlives the exec, so any pin
// on the old address space stays readable.
//
//	cvm <socket> <request-line>
//
// connects, sends {"action":"check"} and prints the reply, starts the
// helper, then execs itself as "cvm fd <n> <request-line> <helper-pid>" with
// LD_PRELOAD=libc.so.6 added to its environment, which sends the line on
// the inherited connection and prints the reply ("CLOSED" and exit 3 when
// the daemon closes instead), then kills the helper.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static int exchange(int fd, const char *line) {
	char buf[65536];
	size_t n = strlen(line), got = 0;
	if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1) return 3;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0) break;
		got += r;
		if (memchr(buf, '\n', got)) break;
	}
	if (got == 0) { puts("CLOSED"); fflush(stdout); return 3; }
	fwrite(buf, 1, got, stdout);
	fflush(stdout);
	return 0;
}

// helper only keeps the shared address space alive; it leaves once its
// parent is gone, should the exec'd program fail to kill it.
static int helper(void *arg) {
	pid_t parent = *(pid_t *)arg;
	while (getppid() == parent) usleep(100000);
	_exit(0);
}

int main(int argc, char **argv) {
	if (argc == 5 && strcmp(argv[1], "fd") == 0) {
		int rc = exchange(atoi(argv[2]), argv[3]);
		kill(atoi(argv[4]), SIGKILL);
		return rc;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: cvm <socket> <request-line>\n");
		return 2;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("cvm: connect"); return 1; }
	if (exchange(fd, "{\"type\":\"REQUEST\",\"action\":\"check\"}")) return 3;

	static char stack[64 << 10];
	static pid_t self;
	self = getpid();
	pid_t h = clone(helper, stack + sizeof stack, CLONE_VM | SIGCHLD, &self);
	if (h < 0) { perror("cvm: clone"); return 1; }

	size_t n = 0;
	while (environ[n]) n++;
	char **env = calloc(n + 2, sizeof *env);
	memcpy(env, environ, n * sizeof *env);
	env[n] = "LD_PRELOAD=libc.so.6";
	char fdarg[16], harg[16];
	snprintf(fdarg, sizeof fdarg, "%d", fd);
	snprintf(harg, sizeof harg, "%d", h);
	char *args[] = {argv[0], "fd", fdarg, argv[2], harg, NULL};
	execve("/proc/self/exe", args, env);
	perror("cvm: execve");
	return 1;
}
