// Package attest turns an executable image into its identity: the SHA-256 of
// the bytes of an already open file, cached by the file's (dev, inode, size,
// mtime, ctime) so a binary that connects again is not re-hashed.
package attest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

var (
	// ErrChanged means the file was modified while it was being hashed, so
	// the digest describes no version of it that anyone ran.
	ErrChanged = errors.New("file changed while it was being hashed")
	// ErrNotRegular means the file is a directory, device, FIFO or socket.
	ErrNotRegular = errors.New("not a regular file")
)

// Key identifies one version of one file without reading it. Two files with
// equal keys are taken to have equal content; ctime is what makes that safe,
// because unlike mtime no unprivileged user can set it back.
type Key struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since the Unix epoch
}

// SameImage reports whether k and o name the same unmodified file. It leaves
// out ctime, which also moves on changes that keep the image intact (chmod, a
// new hard link), so a re-check before each request does not cut off clients
// while a package manager links or chmods their binary.
func (k Key) SameImage(o Key) bool {
	return k.Dev == o.Dev && k.Ino == o.Ino && k.Size == o.Size && k.Mtime == o.Mtime
}

// cacheable is false where the OS gave no file identity (dev and inode both
// zero): size and times alone could make two different binaries collide.
func (k Key) cacheable() bool { return k.Dev != 0 || k.Ino != 0 }

// Identity is a hashed image: the hash is the identity, the key records which
// version of which file produced it.
type Identity struct {
	Hash string
	Key  Key
}

// KeyOf returns the key of an open file (fstat).
func KeyOf(f *os.File) (Key, error) {
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return keyOfFile(f, fi), nil
}

// StatKey returns the key of the file path resolves to, following symlinks.
// On /proc/<pid>/exe it yields the key of the image the process runs, which
// is how the daemon re-checks a peer cheaply before each request (together
// with the peer's liveness check, so a reused pid cannot answer).
func StatKey(path string) (Key, error) {
	k, err := statKey(path)
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return k, nil
}

func statRegular(f *os.File) (Key, error) {
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, notRegular(f.Name(), fi.Mode())
	}
	return keyOfFile(f, fi), nil
}

func notRegular(name string, mode fs.FileMode) error {
	return fmt.Errorf("hash %s: it is a %s, %w; give the path of the program's executable file", name, typeName(mode), ErrNotRegular)
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

const hashPrefix = "sha256:"

// FormatHash writes a digest the one way keychain-auth stores and compares it.
func FormatHash(sum [32]byte) string {
	return hashPrefix + hex.EncodeToString(sum[:])
}
