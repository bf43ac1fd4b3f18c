package attest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The daemon's per-request re-check: stat through the magic link must give
// the key of the running image, the same one its open file reports.
func TestStatKeyOfProcExe(t *testing.T) {
	t.Parallel()
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byFile, err := KeyOf(f)
	if err != nil {
		t.Fatal(err)
	}
	byLink, err := StatKey("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	byPath, err := StatKey(self)
	if err != nil {
		t.Fatal(err)
	}
	// StatKey carries no file handle: it re-checks a running image, which
	// cannot change file without an exec.
	byFile.Handle, byFile.Mount = "", 0
	if byFile != byLink || byLink != byPath || byFile.Ino == 0 {
		t.Errorf("keys differ: open /proc/self/exe %+v, stat /proc/self/exe %+v, stat %s %+v", byFile, byLink, self, byPath)
	}
}

func TestHashPathRefusesFIFOWithoutBlocking(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{}).HashPath(context.Background(), p)
	if !errors.Is(err, ErrNotRegular) {
		t.Errorf("HashPath(fifo) = %v, want ErrNotRegular", err)
	}
}
