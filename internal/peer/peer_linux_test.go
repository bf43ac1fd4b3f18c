package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperSrc is a real client process: it connects to the socket named by its
// first argument and stays alive until the test closes the connection.
const helperSrc = `package main

import (
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	var b [1]byte
	c.Read(b[:])
}
`

// Built once by TestMain and only read afterwards.
var (
	helperBin, helperHash string
	helperErr             error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "peer-helper-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperErr = buildHelper(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildHelper(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go toolchain not in PATH, needed to build the helper client: %w", err)
	}
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(helperSrc), 0o600); err != nil {
		return err
	}
	bin := filepath.Join(dir, "helper")
	cmd := exec.Command(goBin, "build", "-o", bin, src)
	cmd.Dir = dir
	// Static, so the tamper tests have an image without a loader.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build helper: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	helperBin, helperHash = bin, hex.EncodeToString(sum[:])
	return nil
}

// linkHelper gives a test its own path for the helper (a hard link, so no
// file is written) that it may rename over or delete.
func linkHelper(t *testing.T) string {
	t.Helper()
	if helperErr != nil {
		t.Fatalf("helper client unavailable: %v", helperErr)
	}
	p := filepath.Join(t.TempDir(), "client")
	if err := os.Link(helperBin, p); err != nil {
		t.Fatalf("link helper into test dir (temp dirs must share a filesystem): %v", err)
	}
	return p
}

type child struct {
	cmd    *exec.Cmd
	conn   *net.UnixConn
	sock   string
	stderr *bytes.Buffer
	waited bool
}

// startChild runs exe in dir with the socket path and extra args, and returns
// the server side of the connection it makes.
func startChild(t *testing.T, exe, dir string, extra ...string) *child {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := &child{stderr: new(bytes.Buffer), sock: sock}
	c.cmd = exec.Command(exe, append([]string{sock}, extra...)...)
	c.cmd.Dir = dir
	c.cmd.Stderr = c.stderr
	// A freshly written copy can fail to exec with ETXTBSY while a child
	// forked concurrently by another test still holds its write descriptor
	// (until that child's exec closes it), so that one error is retried.
	for try := 0; ; try++ {
		err := c.cmd.Start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || try == 100 {
			t.Fatalf("start helper: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
		c.cmd = exec.Command(c.cmd.Path, c.cmd.Args[1:]...)
		c.cmd.Dir = dir
		c.cmd.Stderr = c.stderr
	}
	t.Cleanup(func() {
		if c.conn != nil {
			c.conn.Close()
		}
		if !c.waited {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	// Only a guard against hanging forever if the helper never dials.
	ln.SetDeadline(time.Now().Add(time.Minute))
	c.conn, err = ln.AcceptUnix()
	if err != nil {
		t.Fatalf("helper did not connect: %v (stderr: %s)", err, c.stderr)
	}
	return c
}

// exit makes the helper return from main and reaps it.
func (c *child) exit(t *testing.T) {
	t.Helper()
	c.conn.Close()
	err := c.cmd.Wait()
	c.waited = true
	if err != nil {
		t.Fatalf("helper exited with %v (stderr: %s)", err, c.stderr)
	}
}

func peerOf(t *testing.T, c net.Conn) *Peer {
	t.Helper()
	p, err := FromConn(c)
	if err != nil {
		t.Fatalf("FromConn: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func exeHash(t *testing.T, p *Peer) string {
	t.Helper()
	f, err := p.OpenExe()
	if err != nil {
		t.Fatalf("OpenExe: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// kernelHasPeerPIDFD reports whether uname says Linux 6.5 or newer.
func kernelHasPeerPIDFD(t *testing.T) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 5
}

func TestFromConnSelf(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	p := peerOf(t, server)
	if p.PID != os.Getpid() || p.UID != uint32(os.Getuid()) || p.GID != uint32(os.Getgid()) {
		t.Errorf("peer = pid %d uid %d gid %d, want pid %d uid %d gid %d",
			p.PID, p.UID, p.GID, os.Getpid(), os.Getuid(), os.Getgid())
	}
	if want := kernelHasPeerPIDFD(t); p.HasPeerPIDFD() != want {
		t.Errorf("HasPeerPIDFD = %v on this kernel, want %v", p.HasPeerPIDFD(), want)
	}
	if err := p.Alive(); err != nil {
		t.Errorf("Alive on our own process: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exeHash(t, p), fileHash(t, self); got != want {
		t.Errorf("OpenExe hash = %s, want hash of %s = %s", got, self, want)
	}
	if link, err := p.ExeLink(); err != nil || link != self {
		t.Errorf("ExeLink = %q, %v; want %q", link, err, self)
	}
	if got, want := p.ExePath(), "/proc/"+strconv.Itoa(os.Getpid())+"/exe"; got != want {
		t.Errorf("ExePath = %q, want %q", got, want)
	}
}

func TestFromConnRejectsNonUnix(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	p, err := FromConn(a)
	if err == nil {
		p.Close()
		t.Fatal("FromConn accepted an in-memory pipe; only kernel-credentialed Unix sockets may be")
	}
	if !strings.Contains(err.Error(), "not a Unix socket") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestChildIdentityAndDescribe(t *testing.T) {
	t.Parallel()
	exe := linkHelper(t)
	cwd, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, exe, cwd, "--marker", "with space")
	p := peerOf(t, c.conn)

	if p.PID != c.cmd.Process.Pid {
		t.Errorf("PID = %d, want the child's %d", p.PID, c.cmd.Process.Pid)
	}
	if p.UID != uint32(os.Getuid()) {
		t.Errorf("UID = %d, want %d", p.UID, os.Getuid())
	}
	if got := exeHash(t, p); got != helperHash {
		t.Errorf("OpenExe hash = %s, want helper's %s", got, helperHash)
	}
	if link, err := p.ExeLink(); err != nil || link != exe {
		t.Errorf("ExeLink = %q, %v; want %q", link, err, exe)
	}

	info := p.Describe()
	wantCmd := []string{exe, c.sock, "--marker", "with space"}
	if !slices.Equal(info.CommandLine, wantCmd) {
		t.Errorf("CommandLine = %q, want %q", info.CommandLine, wantCmd)
	}
	if info.Cwd != cwd {
		t.Errorf("Cwd = %q, want %q", info.Cwd, cwd)
	}
	if info.PPID != os.Getpid() {
		t.Errorf("PPID = %d, want the test's pid %d", info.PPID, os.Getpid())
	}
	self, _ := os.Executable()
	if info.ParentPath != self {
		t.Errorf("ParentPath = %q, want %q", info.ParentPath, self)
	}
	c.exit(t)
}

func TestOpenExeSurvivesReplacedPath(t *testing.T) {
	t.Parallel()
	exe := linkHelper(t)
	c := startChild(t, exe, t.TempDir())
	p := peerOf(t, c.conn)

	other := filepath.Join(filepath.Dir(exe), "other")
	if err := os.WriteFile(other, []byte("#!/bin/sh\necho not the helper\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, exe); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, exe) == helperHash {
		t.Fatal("test setup: path still holds the helper")
	}
	if got := exeHash(t, p); got != helperHash {
		t.Errorf("after rename over the path, OpenExe hash = %s, want the running image's %s", got, helperHash)
	}
	if link, err := p.ExeLink(); err != nil || link != exe {
		t.Errorf("ExeLink = %q, %v; want %q with \" (deleted)\" stripped", link, err, exe)
	}
	c.exit(t)
}

func TestOpenExeSurvivesDeletedFile(t *testing.T) {
	t.Parallel()
	if helperErr != nil {
		t.Fatalf("helper client unavailable: %v", helperErr)
	}
	// A copy, not a link: its inode must lose its last name.
	data, err := os.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "client")
	if err := os.WriteFile(exe, data, 0o700); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, exe, t.TempDir())
	p := peerOf(t, c.conn)
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	f, err := p.OpenExe()
	if err != nil {
		t.Fatalf("OpenExe of a deleted image: %v", err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 0 {
		t.Errorf("opened image has %d links, want 0 (the deleted inode itself)", st.Nlink)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != helperHash {
		t.Errorf("deleted image hash = %s, want %s", got, helperHash)
	}
	if link, err := p.ExeLink(); err != nil || link != exe {
		t.Errorf("ExeLink = %q, %v; want %q", link, err, exe)
	}
	c.exit(t)
}

func TestGoneAfterExit(t *testing.T) {
	t.Parallel()
	c := startChild(t, linkHelper(t), t.TempDir())
	p := peerOf(t, c.conn)
	if err := p.Alive(); err != nil {
		t.Fatalf("Alive while the child runs: %v", err)
	}
	c.exit(t)

	if err := p.Alive(); !errors.Is(err, ErrGone) {
		t.Errorf("Alive after exit = %v, want ErrGone", err)
	}
	if f, err := p.OpenExe(); !errors.Is(err, ErrGone) {
		if f != nil {
			f.Close()
		}
		t.Errorf("OpenExe after exit = %v, want ErrGone", err)
	}
	if _, err := p.ExeLink(); !errors.Is(err, ErrGone) {
		t.Errorf("ExeLink after exit = %v, want ErrGone", err)
	}
	if info := p.Describe(); info.CommandLine != nil || info.Cwd != "" || info.PPID != 0 {
		t.Errorf("Describe after exit = %+v, want empty", info)
	}
}

func TestPidfdOpenFallback(t *testing.T) {
	t.Parallel()
	c := startChild(t, linkHelper(t), t.TempDir())
	p, err := fromConn(c.conn, false)
	if err != nil {
		t.Fatalf("fromConn without SO_PEERPIDFD: %v", err)
	}
	defer p.Close()
	if p.HasPeerPIDFD() {
		t.Error("HasPeerPIDFD = true for a pidfd opened from the pid")
	}
	if p.PID != c.cmd.Process.Pid {
		t.Errorf("PID = %d, want %d", p.PID, c.cmd.Process.Pid)
	}
	if got := exeHash(t, p); got != helperHash {
		t.Errorf("OpenExe hash = %s, want %s", got, helperHash)
	}
	c.exit(t)
	if err := p.Alive(); !errors.Is(err, ErrGone) {
		t.Errorf("Alive after exit = %v, want ErrGone", err)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	t.Parallel()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	p, err := FromConn(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := p.Alive(); err == nil || errors.Is(err, ErrGone) {
		t.Errorf("Alive after Close = %v, want a closed-handle error (the process is not gone)", err)
	}
}

func unixPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return conns[0], conns[1], nil
}

func TestNoPIDIsRejected(t *testing.T) {
	t.Parallel()
	p, err := newPeer(&unix.Ucred{Pid: 0, Uid: 1000}, -1, unix.ENOPROTOOPT)
	if err == nil {
		p.Close()
		t.Fatal("a peer without a visible pid was accepted")
	}
	if !strings.Contains(err.Error(), "pid namespace") {
		t.Errorf("error %q does not explain the namespace problem", err)
	}
}

func TestParsePPID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stat string
		want int
	}{
		{"123 (sh) S 45 123 123 0", 45},
		{"123 (we ird) name) R 7 1 1", 7},
		{"123 ()) S 9 1", 9},
		{"123 (x) S", 0},
		{"123 (x) S notanumber", 0},
		{"no parens", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := parsePPID([]byte(tt.stat)); got != tt.want {
			t.Errorf("parsePPID(%q) = %d, want %d", tt.stat, got, tt.want)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"a\x00b c\x00", []string{"a", "b c"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"setproctitle style", []string{"setproctitle style"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := splitCmdline([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
