// Package attest turns an executable image into its identity: the SHA-256 of
// the bytes of an already open file, cached by what proves the file is the
// same one (its filesystem's file handle, which carries the inode generation,
// the mount, and dev, inode, size, mtime and ctime) so a binary that connects
// again is not re-hashed. Files on filesystems whose content another party
// serves (FUSE, network filesystems) are refused.
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
	// ErrUntrustedFS means the file lives on a filesystem whose content the
	// daemon cannot trust to be what the kernel runs (see UntrustedFSError).
	ErrUntrustedFS = errors.New("executable on a filesystem whose content cannot be trusted")
	// ErrTooLarge means the file is larger than the attestor hashes.
	ErrTooLarge = errors.New("executable too large to hash")
)

// UntrustedFSError names the file and its filesystem.
type UntrustedFSError struct {
	Name, FS string
}

func (e *UntrustedFSError) Error() string {
	return fmt.Sprintf("%s is on a %s filesystem, whose server can show the daemon other bytes than the kernel runs; "+
		"copy the program to a local disk and run it from there", e.Name, e.FS)
}

func (e *UntrustedFSError) Unwrap() error { return ErrUntrustedFS }

// Key identifies one version of one file without reading it. Two files with
// equal proven keys are taken to have equal content. Dev and Ino alone do
// not say that: a freed inode number goes to the next new file at once, and
// a ctime taken from a clock that ticks every few milliseconds comes out
// equal for two files made within one tick. Handle does: it is the
// filesystem's file handle, whose inode generation differs for every inode
// allocation, and Mount names the mount (never reused on Linux 6.12+).
// Within one file, ctime is what makes (size, mtime) safe, because unlike
// mtime no unprivileged user can set it back.
type Key struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since the Unix epoch
	Mount        uint64
	Handle       string // "" where the OS or filesystem gives no handle
}

// SameImage reports whether k and o name the same unmodified file. It leaves
// out ctime, which also moves on changes that keep the image intact (chmod, a
// new hard link), so a re-check before each request does not cut off clients
// while a package manager links or chmods their binary.
func (k Key) SameImage(o Key) bool {
	return k.Dev == o.Dev && k.Ino == o.Ino && k.Size == o.Size && k.Mtime == o.Mtime
}

// cacheable is false where nothing proves the file is not a new one that
// got a freed inode number: such a file is hashed every time.
func (k Key) cacheable() bool { return k.Handle != "" }

// Identity is a hashed image: the hash is the identity, the key records which
// version of which file produced it.
type Identity struct {
	Hash string
	Key  Key
}

// KeyOf returns the key of an open file (fstat and its file handle).
func KeyOf(f *os.File) (Key, error) {
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return keyOfFile(f, fi), nil
}

// StatKey returns the key of the file path resolves to, following symlinks,
// without a handle (compare it with SameImage). On /proc/<pid>/exe it yields
// the key of the image the process runs, which is how the daemon re-checks a
// peer cheaply before each request (together with the peer's liveness check,
// so a reused pid cannot answer): a process's image file cannot change
// without an exec, which the daemon detects apart.
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
