package attest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

func TestWindowsKeys(t *testing.T) {
	dir, err := os.MkdirTemp("", "attest-key-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir) // not t.TempDir: its cleanup fails under Wine
	p := filepath.Join(dir, "bin.exe")
	if err := os.WriteFile(p, []byte("version one"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	byFile, err := KeyOf(f)
	ntfs := onNTFS(windows.Handle(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	byPath, err := StatKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if byFile != byPath {
		t.Errorf("StatKey = %+v, KeyOf = %+v; they must agree or every request looks like a changed process", byPath, byFile)
	}
	if !ntfs {
		if byFile.cacheable() {
			t.Errorf("a file off NTFS got a cacheable key %+v", byFile)
		}
		t.Skip("SKIPPED the identity checks: the temp directory is not on NTFS (under Wine it never is); they run on real Windows")
	}
	if !byFile.cacheable() {
		t.Fatalf("a file on NTFS got no identity: %+v", byFile)
	}
	// Same size, mtime put back: the change time still tells them apart.
	mtime := time0(t, p)
	if err := os.WriteFile(p, []byte("version two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	after, err := StatKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if after == byPath {
		t.Error("a rewritten file with its mtime put back kept its key; the cache would serve the old hash")
	}
}

func time0(t *testing.T, p string) (mt time.Time) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}
