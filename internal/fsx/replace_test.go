package fsx

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Readers that keep opening the file (a CLI listing pending.json while the
// daemon records a caller) must not make a replace fail: on Windows a file
// open without FILE_SHARE_DELETE, as Go opens files, cannot be renamed over
// until it is closed.
func TestWriteFileWhileReadersOpenIt(t *testing.T) {
	// Not t.TempDir: under Wine its cleanup fails for any file written.
	dir, err := os.MkdirTemp("", "fsx-replace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "state.json")
	if err := WriteFile(path, []byte("0"), FileMode); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := os.ReadFile(path); err == nil {
					reads.Add(1)
				}
				time.Sleep(time.Millisecond) // a reader opens, reads, closes, and goes away for a while
			}
		}()
	}
	var failed error
	for i := range 50 {
		if err := WriteFile(path, []byte(fmt.Sprint(i)), FileMode); err != nil && failed == nil {
			failed = fmt.Errorf("replace %d of 50: %w", i+1, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failed != nil {
		t.Fatalf("%v (with %d reads alongside)", failed, reads.Load())
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "49" {
		t.Fatalf("content %q, %v; want the last write", b, err)
	}
}
