package server

import (
	"errors"
	"os"
	"syscall"
)

// ErrAlreadyRunning is returned by Listen when a live daemon answers on the socket.
var ErrAlreadyRunning = errors.New("a keychain-auth daemon is already running on this socket")

// ErrUnsafeSocketDir is returned when the socket's directory is not private to
// the daemon's user.
var ErrUnsafeSocketDir = errors.New("unsafe socket directory")

// errTooManyFiles makes Accept back off instead of failing the daemon.
var errTooManyFiles error = syscall.EMFILE

// ListenOptions says where and how to create the daemon's socket.
type ListenOptions struct {
	Path string
	// UID must own the socket's directory.
	UID int
	// GID, when >= 0, becomes the socket's group (system mode).
	GID int
	// DirMode and SocketMode default to 0700 and 0600.
	DirMode    os.FileMode
	SocketMode os.FileMode
}
