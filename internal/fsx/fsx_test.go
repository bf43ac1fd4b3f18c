package fsx

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := WriteFile(p, []byte("old"), FileMode); err != nil {
		t.Fatal(err)
	}
	// A failed fill leaves the old content and no temporary file behind.
	boom := errors.New("boom")
	err := WriteWith(p, FileMode, func(f *os.File) error {
		f.Write([]byte("half of the new"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want the fill error, got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("content after a failed write: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("leftover files: %v", ents)
	}
	if err := WriteFile(p, []byte("new"), FileMode); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("content: %q", b)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != FileMode {
		t.Fatalf("mode %v, want %v", fi.Mode().Perm(), FileMode)
	}
}
