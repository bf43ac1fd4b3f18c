package client_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/protocol"
)

// ExecRead attaches exactly one descriptor, on the given file, to the
// request line, which says exec_fd and carries the argv.
func TestExecReadSendsTheDescriptorWithTheLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	prog, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()

	type got struct {
		req  *protocol.Request
		fds  []int
		same bool
		err  error
	}
	done := make(chan got, 1)
	go func() {
		var g got
		defer func() { done <- g }()
		nc, err := ln.Accept()
		if err != nil {
			g.err = err
			return
		}
		defer nc.Close()
		uc := nc.(*net.UnixConn)
		buf, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4*8))
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if err != nil {
			g.err = err
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, _ := unix.ParseUnixRights(&m)
			g.fds = append(g.fds, fds...)
		}
		for _, fd := range g.fds {
			var a, b unix.Stat_t
			g.same = unix.Fstat(fd, &a) == nil && unix.Fstat(int(prog.Fd()), &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
			unix.Close(fd)
		}
		line, err := bufio.NewReader(bytes.NewReader(buf[:n])).ReadBytes('\n')
		if err != nil {
			g.err = err
			return
		}
		if g.req, g.err = protocol.DecodeRequest(line[:len(line)-1]); g.err != nil {
			return
		}
		v := "val"
		g.err = protocol.WriteResponse(nc, protocol.Success(g.req.ID, []protocol.Result{{Target: "k", Value: &v}}))
	}()

	c, err := client.Dial(context.Background(), client.WithSocket(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.ExecRead(context.Background(), prog, []string{"prog", "-x"}, "svc", []string{"k"}, false)
	if err != nil {
		t.Fatal(err)
	}
	g := <-done
	if g.err != nil {
		t.Fatal(g.err)
	}
	if len(g.fds) != 1 || !g.same {
		t.Fatalf("received %d descriptors (same file: %v); want exactly the program's", len(g.fds), g.same)
	}
	if !g.req.ExecFD || !slices.Equal(g.req.ExecArgv, []string{"prog", "-x"}) || g.req.Action != protocol.ActionRead {
		t.Fatalf("request %+v", g.req)
	}
	if res.Values["k"] != "val" {
		t.Fatalf("result %+v", res)
	}
}
