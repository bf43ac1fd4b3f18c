package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/pipe"
	"golang.org/x/sys/windows"
)

// A child started with this variable dials the pipe it names, writes one
// byte, and exits when the server hangs up.
const helperEnv = "KEYCHAIN_AUTH_PEER_TEST_PIPE"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		c, err := pipe.Dial(context.Background(), name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		c.Write([]byte{1})
		io.Copy(io.Discard, c)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func sid(t *testing.T) string {
	t.Helper()
	s, err := pipe.ProcessSID(windows.CurrentProcess())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func listen(t *testing.T) (*pipe.Listener, string) {
	t.Helper()
	name := fmt.Sprintf(`%skeychain-auth-peer-test-%d-%d`, pipe.Prefix, os.Getpid(), time.Now().UnixNano())
	l, err := pipe.Listen(name, sid(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, name
}

func TestFromConnIdentifiesSelf(t *testing.T) {
	l, name := listen(t)
	go func() {
		c, err := pipe.Dial(t.Context(), name)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p, err := FromConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != os.Getpid() {
		t.Errorf("PID = %d, want %d", p.PID, os.Getpid())
	}
	if p.UID != uint32(os.Getuid()) {
		t.Errorf("UID = %#x, want the daemon's own %#x (same user SID)", p.UID, uint32(os.Getuid()))
	}
	self, _ := os.Executable()
	if !strings.EqualFold(filepath.Clean(p.ExePath()), filepath.Clean(self)) {
		t.Errorf("ExePath = %q, want %q", p.ExePath(), self)
	}
	if err := p.Alive(); err != nil {
		t.Errorf("Alive: %v", err)
	}
	if err := p.PinExec(); err != nil {
		t.Errorf("PinExec: %v", err)
	}
	if execed, err := p.Execed(); err != nil || execed {
		t.Errorf("Execed = %v, %v; want false", execed, err)
	}
	f, err := p.OpenExe()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	want, _ := os.ReadFile(self)
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Error("OpenExe read another file than the test binary")
	}
	// Hashing holds off writers.
	if w, err := os.OpenFile(self, os.O_WRONLY, 0); err == nil {
		w.Close()
		t.Error("the image could be opened for writing while OpenExe's file was open")
	}
}

func TestExitedPeerIsGone(t *testing.T) {
	l, name := listen(t)
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p, err := FromConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != cmd.Process.Pid {
		t.Errorf("PID = %d, want the child's %d", p.PID, cmd.Process.Pid)
	}
	if err := p.Alive(); err != nil {
		t.Fatalf("Alive while the child runs: %v", err)
	}
	info := p.Describe()
	switch {
	case len(info.CommandLine) == 0 && underWine():
		t.Log("NOT CHECKED under Wine: Wine 8 lacks ProcessCommandLineInformation, so the command line is empty there; real Windows only")
	case len(info.CommandLine) == 0 || !strings.EqualFold(filepath.Base(info.CommandLine[0]), filepath.Base(self)):
		t.Errorf("Describe().CommandLine = %q, want the child's, starting with %s", info.CommandLine, filepath.Base(self))
	}
	if info.PPID != os.Getpid() || !strings.EqualFold(filepath.Clean(info.ParentPath), filepath.Clean(self)) {
		t.Errorf("Describe() parent = %d %q, want this test, %d %q", info.PPID, info.ParentPath, os.Getpid(), self)
	}
	nc.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v: %s", err, stderr.String())
	}
	if err := p.Alive(); !errors.Is(err, ErrGone) {
		t.Errorf("Alive after the child exited: %v, want ErrGone", err)
	}
	if execed, _ := p.Execed(); !execed {
		t.Error("Execed after the child exited = false, want true")
	}
	if _, err := p.OpenExe(); !errors.Is(err, ErrGone) {
		t.Errorf("OpenExe after exit: %v, want ErrGone", err)
	}
	if info := p.Describe(); len(info.CommandLine) != 0 || info.PPID != 0 {
		t.Errorf("Describe after exit = %+v, want nothing: the pid may name another process by now", info)
	}
}

// A running program's file can be renamed away on Windows (not deleted or
// written), and another file renamed to its path: the attacker runs its
// own program from the path, then puts the registered binary there, so
// that the daemon, which opens the image by the name Windows recorded at
// process start, hashes the registered binary instead of the code that
// runs. OpenExe must refuse the file that took the path after the start.
func TestImageRenamedOverAfterStartIsRefused(t *testing.T) {
	self, _ := os.Executable()
	dir := tempDir(t)
	tool := filepath.Join(dir, "tool.exe")
	evil, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker's program: the test binary with bytes appended, so it
	// runs as the helper and hashes differently.
	if err := os.WriteFile(tool, append(evil, "attacker"...), 0o755); err != nil {
		t.Fatal(err)
	}
	// The registered binary, made before the attacker's process starts,
	// so its own times are older than that process.
	registered := filepath.Join(dir, "registered.exe")
	if err := os.WriteFile(registered, evil, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // distinct timestamps, even on a coarse clock

	l, name := listen(t)
	cmd := exec.Command(tool)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The swap, while the attacker's program runs and is connected.
	if err := os.Rename(tool, filepath.Join(dir, "moved-away.exe")); err != nil {
		t.Fatalf("rename the running image away: %v", err)
	}
	if err := os.Rename(registered, tool); err != nil {
		t.Fatal(err)
	}

	p, err := FromConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.EqualFold(filepath.Base(p.ExePath()), "tool.exe") {
		t.Fatalf("ExePath = %q, want the path the program started from", p.ExePath())
	}
	f, err := p.OpenExe()
	if err == nil {
		got, _ := io.ReadAll(f)
		f.Close()
		t.Fatalf("OpenExe served the file renamed over the running image (%d bytes, the registered binary: %v)",
			len(got), sha256.Sum256(got) == sha256.Sum256(evil))
	}
	if !errors.Is(err, ErrUnverifiable) {
		t.Fatalf("OpenExe: %v, want ErrUnverifiable", err)
	}
}

// tempDir is t.TempDir, except under Wine 8, where removing any file the
// test wrote fails ("Invalid function") and would fail the test after it
// passed: there the directory is removed as far as Wine allows.
func tempDir(t *testing.T) string {
	t.Helper()
	if !underWine() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "peer-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
