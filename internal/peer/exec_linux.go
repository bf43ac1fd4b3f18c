package peer

import (
	"bytes"
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
//
// A process that shares its address space with a helper (clone(CLONE_VM)
// without CLONE_THREAD) keeps the pinned mm alive across its own exec, so
// the pin alone would not see it. The pin therefore also keeps
// /proc/<pid>/stat open (it follows the task, not the mm) and compares the
// addresses the kernel chose at exec: the stack start and the argument and
// environment areas. Stack randomization moves them on every exec, PIE or
// not, and a process cannot move them back.
type execPin struct {
	mu     sync.Mutex
	fd     int // the pinned /proc/<pid>/maps; valid while ok
	statFD int // /proc/<pid>/stat; valid while ok
	layout execLayout
	buf    []byte
	ok     bool

	// image remembers, per version of the executable, whether it goes
	// through the dynamic loader, so Tampered reads its headers once.
	image imageCache
}

// imageCache is what Tampered learned about one version (device, inode,
// size, mtime) of the peer's executable.
type imageCache struct {
	mu             sync.Mutex
	known, dynamic bool
	dev, ino       uint64
	size, mtime    int64
}

func (e *execPin) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ok {
		unix.Close(e.fd)
		unix.Close(e.statFD)
		e.ok = false
	}
}

// execLayout is what exec(2) sets in a new address space and /proc/<pid>/stat
// shows: startstack (field 28) and arg_start, arg_end, env_start, env_end
// (fields 48 to 51).
type execLayout [5]uint64

// layoutFields are the stat fields of an execLayout, in order.
var layoutFields = [5]int{28, 48, 49, 50, 51}

// parseLayout reads an execLayout out of /proc/<pid>/stat without
// allocating. The command name (field 2) may hold spaces and ')', so
// counting starts after the last ')'.
func parseLayout(stat []byte) (execLayout, error) {
	var l execLayout
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return l, errors.New("/proc/<pid>/stat: no command name")
	}
	field, next := 2, 0
	for p := i + 1; p < len(stat) && next < len(layoutFields); {
		for p < len(stat) && (stat[p] == ' ' || stat[p] == '\n') {
			p++
		}
		start := p
		for p < len(stat) && stat[p] != ' ' && stat[p] != '\n' {
			p++
		}
		if start == p {
			break
		}
		field++
		if field != layoutFields[next] {
			continue
		}
		var v uint64
		for _, c := range stat[start:p] {
			if c < '0' || c > '9' {
				return l, fmt.Errorf("/proc/<pid>/stat: field %d is %q, not a number", field, stat[start:p])
			}
			v = v*10 + uint64(c-'0')
		}
		l[next] = v
		next++
	}
	if next < len(layoutFields) {
		return l, fmt.Errorf("/proc/<pid>/stat has %d fields, want at least %d (Linux 3.5+)", field, layoutFields[len(layoutFields)-1])
	}
	if l == (execLayout{}) {
		return l, errors.New("the kernel hides the process's memory layout from this daemon (it needs CAP_SYS_PTRACE for a non-dumpable process)")
	}
	return l, nil
}

// readLayout preads the whole of an open /proc/<pid>/stat into buf.
func readLayout(fd int, buf []byte) (execLayout, []byte, error) {
	for {
		n, err := unix.Pread(fd, buf[:cap(buf)], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return execLayout{}, buf, err
		}
		if n == cap(buf) {
			buf = make([]byte, 2*cap(buf))
			continue
		}
		l, err := parseLayout(buf[:n])
		return l, buf, err
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
	statPath := procPath(p.PID, "stat")
	statFD, err := unix.Open(statPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("pin exec of peer pid %d: open %s: %w", p.PID, statPath, err)
	}
	layout, buf, err := readLayout(statFD, make([]byte, 1024))
	if err == nil {
		err = p.Alive()
	}
	if err != nil {
		unix.Close(fd)
		unix.Close(statFD)
		return fmt.Errorf("pin exec of peer pid %d: %w", p.PID, err)
	}
	p.exec.mu.Lock()
	defer p.exec.mu.Unlock()
	if p.exec.ok {
		unix.Close(p.exec.fd)
		unix.Close(p.exec.statFD)
	}
	p.exec.fd, p.exec.statFD, p.exec.layout, p.exec.buf, p.exec.ok = fd, statFD, layout, buf, true
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
	if n == 0 {
		return true, nil
	}
	var layout execLayout
	layout, p.exec.buf, err = readLayout(p.exec.statFD, p.exec.buf)
	if errors.Is(err, unix.ESRCH) {
		return false, fmt.Errorf("peer pid %d: %w", p.PID, ErrGone)
	}
	if err != nil {
		return false, fmt.Errorf("check peer pid %d for exec: %w", p.PID, err)
	}
	return layout != p.exec.layout, nil
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
