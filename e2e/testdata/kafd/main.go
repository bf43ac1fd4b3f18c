// Command kafd is a test client for what happens to a verified connection
// when its process execs another program.
//
//	kafd <socket> exec <program> <request-line>
//
// connects, sends a check request and prints the reply, then clears
// close-on-exec on the connected socket and execs <program> as
// "<program> fd <n> <request-line>", handing it the connection.
//
//	kafd fd <n> <request-line>...
//
// uses the inherited descriptor n: sends each line and prints each reply,
// or prints "CLOSED" and exits 3 when the daemon closes the connection.
//
//	kafd <socket> stdin
//
// connects and then sends each line read from stdin as soon as it arrives,
// printing each reply at once, so a test can act between two requests.
//
//	kafd <socket> nodump <request-line>...
//
// makes itself non-dumpable (PR_SET_DUMPABLE 0, as a process protecting
// itself from same-user ptrace would), then connects and sends each line.
//
// Its build-time variant changes the binary's hash, not its behaviour.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

var variant = "0"

func main() {
	if len(os.Args) >= 5 && os.Args[2] == "exec" {
		connectThenExec(os.Args[1], os.Args[3], os.Args[4])
	}
	if len(os.Args) >= 3 && os.Args[2] == "nodump" {
		if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); e != 0 {
			fail(fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", e))
		}
		c, err := net.Dial("unix", os.Args[1])
		if err != nil {
			fail(err)
		}
		serve(c, bufio.NewScanner(strings.NewReader(strings.Join(os.Args[3:], "\n"))))
	}
	if len(os.Args) == 3 && os.Args[2] == "stdin" {
		interactive(os.Args[1])
	}
	if len(os.Args) >= 3 && os.Args[1] == "fd" {
		useInherited(os.Args[2], os.Args[3:])
	}
	fail(fmt.Errorf("usage: kafd <socket> exec <program> <line> | kafd fd <n> <line>... (variant %s)", variant))
}

func connectThenExec(socket, program, line string) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fail(err)
	}
	r := bufio.NewReader(c)
	io.WriteString(c, `{"type":"REQUEST","action":"check"}`+"\n")
	resp, err := r.ReadString('\n')
	if err != nil {
		fail(fmt.Errorf("no reply to check: %w", err))
	}
	os.Stdout.WriteString(resp)
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		fail(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); e != 0 {
		fail(fmt.Errorf("clear close-on-exec: %w", e))
	}
	err = syscall.Exec(program, []string{program, "fd", strconv.Itoa(fd), line}, os.Environ())
	fail(fmt.Errorf("exec %s: %w", program, err))
}

func interactive(socket string) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fail(err)
	}
	serve(c, bufio.NewScanner(os.Stdin))
}

func useInherited(n string, lines []string) {
	fd, err := strconv.Atoi(n)
	if err != nil {
		fail(err)
	}
	c, err := net.FileConn(os.NewFile(uintptr(fd), "inherited"))
	if err != nil {
		fail(err)
	}
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	serve(c, sc)
}

// serve sends each line and prints its reply; it exits 3 after printing
// "CLOSED" if the daemon closes the connection first.
func serve(c net.Conn, lines *bufio.Scanner) {
	lines.Buffer(nil, 2<<20)
	r := bufio.NewReader(c)
	for lines.Scan() {
		io.WriteString(c, lines.Text()+"\n")
		resp, err := r.ReadString('\n')
		if err != nil {
			os.Stdout.WriteString("CLOSED\n")
			os.Exit(3)
		}
		os.Stdout.WriteString(resp)
	}
	os.Exit(0)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kafd:", err)
	os.Exit(1)
}
