package peer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// listen makes a Unix socket in a short directory: t.TempDir under
// /var/folders can exceed the 104-byte sun_path.
func listen(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "kapeer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func TestFromConnSelf(t *testing.T) {
	l, path := listen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	p, err := FromConn(sc)
	if err != nil {
		t.Fatalf("FromConn: %v", err)
	}
	defer p.Close()
	if p.PID != os.Getpid() || p.UID != uint32(os.Getuid()) {
		t.Errorf("peer pid %d uid %d, want %d %d", p.PID, p.UID, os.Getpid(), os.Getuid())
	}
	if p.exec.tok.PIDVersion == 0 {
		t.Error("audit token has pidversion 0")
	}
	if err := p.Alive(); err != nil {
		t.Errorf("Alive: %v", err)
	}
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	link, err := p.ExeLink()
	if err != nil || link != self {
		t.Errorf("ExeLink = %q, %v; want %q", link, err, self)
	}
	f, err := p.OpenExe()
	if err != nil {
		t.Fatalf("OpenExe: %v", err)
	}
	h := sha256.New()
	io.Copy(h, f)
	f.Close()
	want, _ := os.ReadFile(self)
	if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Error("OpenExe opened another file than the test binary")
	}
	if err := p.PinExec(); err != nil {
		t.Errorf("PinExec: %v", err)
	}
	if execed, err := p.Execed(); execed || err != nil {
		t.Errorf("Execed = %v, %v", execed, err)
	}
	if tracer, _, err := p.TracedBy(); tracer != 0 || err != nil {
		t.Errorf("TracedBy = %d, %v", tracer, err)
	}
	reason, err := p.Tampered()
	if err != nil {
		t.Errorf("Tampered: %v", err)
	}
	if os.Getenv("DYLD_INSERT_LIBRARIES") == "" && reason != "" {
		t.Errorf("Tampered = %q for an untampered process", reason)
	}
	info := p.Describe()
	if len(info.CommandLine) == 0 || info.CommandLine[0] != os.Args[0] || info.PPID != os.Getppid() || info.Cwd == "" {
		t.Errorf("Describe = %+v", info)
	}
}

// TestPeerGone checks that a peer that exits is reported gone, and that
// its pid, even if reused, does not answer for it.
func TestPeerGone(t *testing.T) {
	nc, err := exec.LookPath("nc")
	if err != nil {
		// macOS ships nc in the base system.
		if os.Getenv("CI") == "true" {
			t.Fatalf("nc not found: %v", err)
		}
		t.Skip("SKIPPED: nc not found; the exited-peer test needs a process that connects")
	}
	l, path := listen(t)
	cmd := exec.Command(nc, "-U", path)
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	l.SetDeadline(time.Now().Add(10 * time.Second))
	sc, err := l.Accept()
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	defer sc.Close()
	p, err := FromConn(sc)
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("FromConn: %v", err)
	}
	defer p.Close()
	if p.PID != cmd.Process.Pid {
		t.Errorf("peer pid %d, want nc's %d", p.PID, cmd.Process.Pid)
	}
	if err := p.Alive(); err != nil {
		t.Errorf("Alive while nc runs: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := p.Alive(); !errors.Is(err, ErrGone) {
		t.Errorf("Alive after nc exited = %v, want ErrGone", err)
	}
	if _, err := p.OpenExe(); !errors.Is(err, ErrGone) {
		t.Errorf("OpenExe after nc exited = %v, want ErrGone", err)
	}
}
