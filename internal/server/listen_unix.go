//go:build !windows

package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gofrs/flock"

	"github.com/The-17/keychain-auth/internal/peer"
)

// secondDaemonHint: --socket alone is not enough for a second daemon, which
// would share the first one's audit log, config and store.
const secondDaemonHint = "A second daemon needs its own state as well as its own socket: run it with another HOME, " +
	"or with XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR pointing to directories of its own"

// Listener is the daemon's socket. Close removes the socket file and releases
// the instance lock (an adopted socket has neither: see Adopt).
type Listener struct {
	net.Listener
	lock *flock.Flock
}

// Close stops listening, removes the socket and releases the lock.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	if l.lock != nil {
		l.lock.Unlock()
	}
	return err
}

// Listen creates the daemon's Unix socket. The directory is created private
// if missing and refused if it is not owned by opts.UID or is accessible to
// others beyond opts.DirMode. A lock file next to the socket ensures a single
// daemon; a socket left by a dead daemon is replaced only after a connect to
// it fails, so a live one is never stolen.
func Listen(opts ListenOptions) (*Listener, error) {
	if opts.DirMode == 0 {
		opts.DirMode = 0o700
	}
	if opts.SocketMode == 0 {
		opts.SocketMode = 0o600
	}
	dir := filepath.Dir(opts.Path)
	if err := os.MkdirAll(dir, opts.DirMode); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if err := checkSocketDir(dir, opts); err != nil {
		return nil, err
	}

	lock := flock.New(opts.Path+".lock", flock.SetPermissions(0o600))
	locked, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s.lock: %w", opts.Path, err)
	}
	if !locked {
		who := ""
		if c, err := net.DialTimeout("unix", opts.Path, time.Second); err == nil {
			who = listenerPID(c)
			c.Close()
		}
		return nil, fmt.Errorf("%w (%s%s); stop it first. %s", ErrAlreadyRunning, opts.Path, who, secondDaemonHint)
	}
	ok := false
	defer func() {
		if !ok {
			lock.Unlock()
		}
	}()

	if fi, err := os.Lstat(opts.Path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another --socket", opts.Path)
		}
		if c, err := net.DialTimeout("unix", opts.Path, time.Second); err == nil {
			who := listenerPID(c)
			c.Close()
			return nil, fmt.Errorf("%w (%s%s); stop it first. %s", ErrAlreadyRunning, opts.Path, who, secondDaemonHint)
		}
		if err := os.Remove(opts.Path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", opts.Path, err)
		}
	}

	nl, err := net.Listen("unix", opts.Path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Path, err)
	}
	if opts.GID >= 0 {
		if err := os.Lchown(opts.Path, opts.UID, opts.GID); err != nil {
			nl.Close()
			return nil, fmt.Errorf("set group of %s: %w", opts.Path, err)
		}
	}
	if err := os.Chmod(opts.Path, opts.SocketMode); err != nil {
		nl.Close()
		return nil, fmt.Errorf("set mode of %s: %w", opts.Path, err)
	}
	ok = true
	return &Listener{Listener: nl, lock: lock}, nil
}

func checkSocketDir(dir string, opts ListenOptions) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory (a symlink is refused too)", ErrUnsafeSocketDir, dir)
	case st != nil && int(st.Uid) != opts.UID:
		return fmt.Errorf("%w: %s is owned by uid %d, not %d; remove it or choose another --socket", ErrUnsafeSocketDir, dir, st.Uid, opts.UID)
	case fi.Mode().Perm()&^opts.DirMode != 0:
		return fmt.Errorf("%w: %s has mode %v; run: chmod %o %s", ErrUnsafeSocketDir, dir, fi.Mode().Perm(), opts.DirMode, dir)
	}
	return nil
}

// listenerPID names the daemon at the other end of c for an error message:
// the kernel reports the process that listens, as it reports clients.
func listenerPID(c net.Conn) string {
	p, err := peer.FromConn(c)
	if err != nil {
		return ""
	}
	defer p.Close()
	return fmt.Sprintf(", pid %d", p.PID)
}
