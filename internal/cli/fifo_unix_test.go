//go:build unix

package cli

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A path from pending.json (or config.json) is the caller's choice: a FIFO
// there must be refused, not opened, which would block the command forever.
func TestFileHashRefusesAFIFO(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := fileHash(p); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("fileHash of a FIFO gave a hash")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fileHash of a FIFO blocked: it opened the FIFO")
	}
}
