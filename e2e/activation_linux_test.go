package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// activated starts the daemon as systemd-socket-activate would: the
// listening socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set to the daemon's
// own pid (the shell execs it, keeping its pid), and $NOTIFY_SOCKET pointing
// at a datagram socket the test reads.
func (e *env) activated(t *testing.T, ln *net.UnixListener, notify string) *daemon {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, kaBin, "start", "--backend", "file")
	cmd.Env = append(append([]string{}, e.vars...), "LISTEN_FDS=1", "LISTEN_FDNAMES=keychain-auth.socket", "NOTIFY_SOCKET="+notify)
	cmd.ExtraFiles = []*os.File{f}
	d := &daemon{e: e, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d
}

// notifySocket listens for sd_notify datagrams.
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ka-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// nextState waits for the next datagram on the notify socket.
func nextState(t *testing.T, c *net.UnixConn, d *daemon) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification from the daemon: %v\n%s", err, d.stderr)
	}
	return string(buf[:n])
}

func TestSocketActivationServesOnPassedSocketAndNotifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc", "--write", "svc")
	// What systemd's keychain-auth.socket creates: DirectoryMode=0700, SocketMode=0600.
	if err := os.MkdirAll(filepath.Dir(e.socket), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(e.socket, 0o600); err != nil {
		t.Fatal(err)
	}
	notify, notifyPath := notifySocket(t)

	d := e.activated(t, ln, notifyPath)
	t.Cleanup(d.stop)
	if st := nextState(t, notify, d); !strings.Contains(st, "READY=1") {
		t.Fatalf("first notification is %q, want READY=1", st)
	}
	// Served over the passed socket: the daemon made no socket of its own
	// (it would have found this path live and refused to start).
	wantStatus(t, e.one(client, req("write", "svc", []string{"k"}, "values", []string{"v1"})), protocol.StatusSuccess, "")
	if got := values(e.one(client, req("read", "svc", []string{"k"}))); got["k"] != "v1" {
		t.Fatalf("read over the activated socket: %v", got)
	}
	if !strings.Contains(d.stderr.String(), "socket_activated=true") {
		t.Errorf("the daemon does not log that it was socket-activated:\n%s", d.stderr)
	}

	d.cmd.Process.Signal(syscall.SIGTERM)
	if st := nextState(t, notify, d); st != "STOPPING=1" {
		t.Errorf("notification on SIGTERM is %q, want STOPPING=1", st)
	}
	if code := d.wait(); code != 0 {
		t.Fatalf("daemon exit %d\n%s", code, d.stderr)
	}
	// The socket belongs to the service manager: still there, still listening.
	if fi, err := os.Lstat(e.socket); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the daemon removed the socket it was passed (lstat: %v)", err)
	}
	c, err := net.Dial("unix", e.socket)
	if err != nil {
		t.Fatalf("the passed socket no longer accepts connections: %v", err)
	}
	c.Close()
	// A second activation on the same socket serves again, as systemd
	// would start the service at the next connection.
	d2 := e.activated(t, ln, notifyPath)
	t.Cleanup(d2.stop)
	if st := nextState(t, notify, d2); !strings.Contains(st, "READY=1") {
		t.Fatalf("second activation: %q", st)
	}
	if got := values(e.one(client, req("read", "svc", []string{"k"}))); got["k"] != "v1" {
		t.Fatalf("read after re-activation: %v", got)
	}
}

// A socket other users may connect to is refused, not served.
func TestSocketActivationRefusesWideSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Dir(e.socket), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(e.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	notify, notifyPath := notifySocket(t)
	d := e.activated(t, ln, notifyPath)
	if code := d.wait(); code != 1 {
		t.Fatalf("daemon exit %d, want 1\n%s", code, d.stderr)
	}
	if !strings.Contains(d.stderr.String(), "SocketMode=0600") {
		t.Errorf("the error does not say how to fix the unit:\n%s", d.stderr)
	}
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := notify.Read(make([]byte, 64)); n > 0 {
		t.Error("a daemon that refused to serve notified the service manager")
	}
	if _, err := os.Lstat(e.socket); err != nil {
		t.Errorf("the refused socket was removed: %v", err)
	}
}
