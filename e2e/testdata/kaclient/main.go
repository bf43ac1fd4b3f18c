// Command kaclient is a test client: it connects to the socket named by its
// first argument, sends each further argument (or each stdin line) as one
// request line, and prints each response line. When the daemon closes the
// connection it prints "CLOSED" and exits 3. Its build-time variant changes
// the binary's contents, and so its hash, without changing its behaviour.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

var variant = "0"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kaclient <socket> [request-line]...  (variant", variant+")")
		os.Exit(2)
	}
	conn, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kaclient:", err)
		os.Exit(1)
	}
	defer conn.Close()
	lines := os.Args[2:]
	if len(lines) == 0 {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kaclient:", err)
			os.Exit(1)
		}
		lines = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	r := bufio.NewReaderSize(conn, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, l := range lines {
		// A write may fail if the daemon closed after its last reply; the
		// read below then reports the closure.
		io.WriteString(conn, l+"\n")
		resp, err := r.ReadString('\n')
		if err != nil {
			out.WriteString("CLOSED\n")
			out.Flush()
			os.Exit(3)
		}
		out.WriteString(resp)
	}
	conn.(*net.UnixConn).CloseWrite()
	io.Copy(io.Discard, r)
}
