//go:build !windows

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeSocket is returned by Adopt for a passed socket others could use.
var ErrUnsafeSocket = errors.New("unsafe socket")

// Adopt serves on a socket the service manager created and listens on
// (socket activation). The socket's directory must pass the same checks as
// Listen's, and so must the socket file: owned by opts.UID with no more than
// opts.SocketMode. Close leaves the socket file in place: the service
// manager created it and keeps listening on it after the daemon stops.
func Adopt(ul *net.UnixListener, opts ListenOptions) (*Listener, error) {
	if opts.DirMode == 0 {
		opts.DirMode = 0o700
	}
	if opts.SocketMode == 0 {
		opts.SocketMode = 0o600
	}
	ul.SetUnlinkOnClose(false)
	path := ul.Addr().String()
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: the passed socket has no path (%q); use ListenStream= with an absolute path", ErrUnsafeSocketDir, path)
	}
	if err := checkSocketDir(filepath.Dir(path), opts); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("passed socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%w: %s is not a socket", ErrUnsafeSocket, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != opts.UID {
		return nil, fmt.Errorf("%w: the passed socket %s is owned by uid %d, not %d; the socket unit must belong to the daemon's user",
			ErrUnsafeSocket, path, st.Uid, opts.UID)
	}
	if fi.Mode().Perm()&^opts.SocketMode != 0 {
		return nil, fmt.Errorf("%w: the passed socket %s has mode %v, wider than %v; set SocketMode=%04o in the socket unit",
			ErrUnsafeSocket, path, fi.Mode().Perm(), opts.SocketMode, opts.SocketMode)
	}
	return &Listener{Listener: ul}, nil
}
