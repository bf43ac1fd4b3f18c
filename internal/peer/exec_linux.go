package peer

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotPinned is returned by Execed when PinExec did not succeed, so the
// caller must fall back to the full check.
var ErrNotPinned = errors.New("exec pin unavailable")

// execPin holds /proc/<pid>/maps open. The kernel binds that file to the
// address space (mm) the process had when it was opened and reads it only
// while that mm is still in use; exec(2) replaces the mm, after which every
// read returns nothing. So one pread answers "same program run as at
// connect?" in a few microseconds, where re-reading status and environ costs
// several times that. maps rather than environ: its file mode lets any user
// open it, so the ptrace check (which CAP_SYS_PTRACE passes) is all that
// stands between a system daemon and another user's process, while environ
// is 0400 and shut a system daemon out.
type execPin struct {
	mu sync.Mutex
	fd int // -1 or unset when not pinned
	ok bool
}

func (e *execPin) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ok {
		unix.Close(e.fd)
		e.ok = false
	}
}

// PinExec records the peer's current address space for Execed. It fails
// when /proc/<pid>/maps cannot be opened (a non-dumpable peer and a daemon
// without CAP_SYS_PTRACE) or reads empty (the process exec'd or exited
// meanwhile); the caller must then refuse the peer.
func (p *Peer) PinExec() error {
	path := procPath(p.PID, "maps")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pin exec of peer pid %d: open %s: %w%s", p.PID, path, err, accessHint(err))
	}
	var b [1]byte
	n, err := unix.Pread(fd, b[:], 0)
	if err != nil || n == 0 {
		unix.Close(fd)
		if err == nil {
			err = errors.New("its address space is already gone")
		}
		return fmt.Errorf("pin exec of peer pid %d: %w", p.PID, err)
	}
	if err := p.Alive(); err != nil {
		unix.Close(fd)
		return err
	}
	p.exec.mu.Lock()
	defer p.exec.mu.Unlock()
	if p.exec.ok {
		unix.Close(p.exec.fd)
	}
	p.exec.fd, p.exec.ok = fd, true
	return nil
}

// Execed reports whether the peer has replaced its program (exec) or exited
// since PinExec. An exec of the very same binary keeps the image hash but may
// bring a new environment (LD_PRELOAD), so it matters even when the image
// check passes. A process that shares its address space with another
// (clone(CLONE_VM) without CLONE_THREAD) keeps the pinned one alive across
// its exec; see docs/threat-model.md for what closes that.
func (p *Peer) Execed() (bool, error) {
	p.exec.mu.Lock()
	defer p.exec.mu.Unlock()
	if !p.exec.ok {
		return false, ErrNotPinned
	}
	var b [1]byte
	n, err := unix.Pread(p.exec.fd, b[:], 0)
	if err != nil {
		return false, fmt.Errorf("check peer pid %d for exec: %w", p.PID, err)
	}
	return n == 0, nil
}

// TracedBy returns the pid of a process tracing any thread of the peer and
// that thread's id, or zeros.
func (p *Peer) TracedBy() (tracer, tid int, err error) {
	tracer, tid, err = p.tracer()
	if aerr := p.Alive(); aerr != nil {
		return 0, 0, aerr
	}
	return tracer, tid, err
}
