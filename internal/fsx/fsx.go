// Package fsx holds the two file primitives every state file relies on: an
// atomic replace (temp file in the same directory, fsync, rename, fsync of the
// directory) and an exclusive advisory lock on a sibling "<file>.lock", so that
// the daemon and several CLI processes can update one file without losing writes.
package fsx

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// DirMode and FileMode are the only modes keychain-auth creates state with.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// WriteFile atomically replaces path with data, created with perm. Readers see
// either the old or the new content, never a mix, and a crash leaves one of them.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteWith is WriteFile for content that is not in memory, or for a file
// that needs more set up before it replaces path (an owner, say): fill writes
// to the temporary file, which is then synced and renamed over path.
func WriteWith(path string, perm os.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := replace(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename in it survives a crash. Windows
// cannot flush a directory handle (it answers Access denied); there NTFS
// journals the rename itself and SyncDir does nothing.
func SyncDir(dir string) error {
	if !dirSyncable {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// MkdirPrivate creates dir (and parents) with DirMode; on Windows, where modes
// mean nothing, a directory it creates gets an ACL that only lets the user in,
// which files created in it inherit. An existing directory is left as it is;
// callers that need ownership checks do them separately.
func MkdirPrivate(dir string) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if os.IsNotExist(statErr) {
		if err := restrictDir(dir); err != nil {
			return fmt.Errorf("restrict directory %s to its user: %w", dir, err)
		}
	}
	return nil
}

// Lock takes the exclusive lock for path ("<path>.lock"), waiting until ctx is
// done. The returned func releases it.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	l := flock.New(path+".lock", flock.SetPermissions(FileMode))
	ok, err := l.TryLockContext(ctx, 10*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
	}
	return func() { l.Unlock() }, nil
}
