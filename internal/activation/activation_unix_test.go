//go:build unix

package activation

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string, pid int) Env {
	return Env{Getenv: func(k string) string { return m[k] }, PID: pid}
}

func TestListenersIgnoresOtherProcesses(t *testing.T) {
	for name, m := range map[string]map[string]string{
		"unset":        {},
		"other pid":    {EnvListenFDs: "1", EnvListenPID: "1"},
		"no pid":       {EnvListenFDs: "1"},
		"bad pid text": {EnvListenFDs: "1", EnvListenPID: "x"},
	} {
		got, err := Listeners(env(m, 4242))
		if err != nil || len(got) != 0 {
			t.Errorf("%s: got %d listeners, err %v; want none", name, len(got), err)
		}
	}
}

func TestListenersRejectsBadCount(t *testing.T) {
	for _, n := range []string{"-1", "x", "65"} {
		if _, err := Listeners(env(map[string]string{EnvListenFDs: n, EnvListenPID: "7"}, 7)); err == nil {
			t.Errorf("LISTEN_FDS=%s accepted", n)
		}
	}
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "act")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fdOf returns a duplicate descriptor of c's socket, owned by the test.
func fdOf(t *testing.T, c interface{ File() (*os.File, error) }) int {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestListenerAcceptsListeningUnixStream(t *testing.T) {
	path := filepath.Join(shortDir(t), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, err := listener(fdOf(t, ln), "x")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept on the adopted socket: %v", err)
	}
	c.Close()
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing the adopted listener removed the socket: %v", err)
	}
}

func TestListenerRefusesOtherSockets(t *testing.T) {
	dir := shortDir(t)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	gram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "g"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer gram.Close()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fdDir, _ := syscall.Dup(int(f.Fd()))
	for name, fd := range map[string]int{
		"tcp":       fdOf(t, tcp.(*net.TCPListener)),
		"unixgram":  fdOf(t, gram),
		"directory": fdDir,
	} {
		l, err := listener(fd, name)
		if !errors.Is(err, ErrNotListening) {
			t.Errorf("%s: got %v, %v; want ErrNotListening", name, l, err)
		}
		syscall.Close(fd)
	}
}

func TestNotify(t *testing.T) {
	path := filepath.Join(shortDir(t), "n")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	getenv := func(k string) string {
		if k == EnvNotifySocket {
			return path
		}
		return ""
	}
	sent, err := Notify(getenv, "READY=1")
	if err != nil || !sent {
		t.Fatalf("Notify: sent=%v err=%v", sent, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	if sent, err := Notify(func(string) string { return "" }, "READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: sent=%v err=%v", sent, err)
	}
	if _, err := Notify(func(string) string { return "relative" }, "READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

func TestPick(t *testing.T) {
	dir := shortDir(t)
	mk := func(n string) *net.UnixListener {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, n), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := mk("a"), mk("b")
	defer a.Close()
	defer b.Close()
	got, err := Pick([]Passed{{a, "other"}, {b, "keychain-auth.socket"}}, "keychain-auth.socket")
	if err != nil || got != b {
		t.Fatalf("Pick: %v %v", got, err)
	}
	if _, err := Pick([]Passed{{mk("c"), "x"}, {mk("d"), "y"}}, "keychain-auth.socket"); err == nil {
		t.Fatal("Pick chose among unnamed sockets")
	}
}
