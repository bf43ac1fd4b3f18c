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

// execPin holds /proc/<pid>/environ open. The kernel binds that file to the
// address space (mm) the process had when it was opened and reads it only
// while that mm is still in use; exec(2) replaces the mm, after which every
// read returns nothing. So one pread answers "same program run as at
// connect?" for about a microsecond, where re-reading status and environ
// costs ten times that.
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
// when /proc/<pid>/environ cannot be opened (a non-dumpable peer without
// CAP_SYS_PTRACE) or is empty (a process started with no environment, whose
// reads are empty with or without an exec); callers then keep doing the full
// check before every request.
func (p *Peer) PinExec() error {
	path := procPath(p.PID, "environ")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pin exec of peer pid %d: open %s: %w%s", p.PID, path, err, accessHint(err))
	}
	var b [1]byte
	n, err := unix.Pread(fd, b[:], 0)
	if err != nil || n == 0 {
		unix.Close(fd)
		if err == nil {
			err = errors.New("empty environment")
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
// check passes.
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

// TracedBy returns the pid of the process tracing the peer, or 0.
func (p *Peer) TracedBy() (int, error) {
	status, err := readProc(procPath(p.PID, "status"), maxStatus)
	if err != nil {
		return 0, fmt.Errorf("check peer pid %d for tracing: %w", p.PID, err)
	}
	tracer, err := tracerPID(status)
	if err != nil {
		return 0, fmt.Errorf("check peer pid %d for tracing: %w", p.PID, err)
	}
	if err := p.Alive(); err != nil {
		return 0, err
	}
	return tracer, nil
}
