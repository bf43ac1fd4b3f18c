// Package peer asks the kernel who is on the other end of a local socket: the
// peer's pid, uid and gid, and a handle on the executable image that process
// runs, proven to belong to it rather than to a later process reusing its pid.
package peer

import (
	"errors"
	"fmt"
	"os"
)

// ErrGone means the credentialed peer process has exited (or been reaped), so
// anything read about its pid now may describe another process.
var ErrGone = errors.New("peer process is gone")

// ErrUnverifiable means the peer's image cannot be shown to be the file the
// daemon would hash (for example, the file at its path changed after the
// process started); the peer must be refused, not served on what could be
// checked.
var ErrUnverifiable = errors.New("the peer's executable cannot be verified")

// Peer is the kernel's answer about a connected process. PID, UID and GID are
// the credentials the kernel recorded when the peer connected; nothing the peer
// sends can change them. A Peer holds a process handle (pidfd on Linux) and
// must be closed.
type Peer struct {
	PID      int
	UID, GID uint32

	pidfd *os.File
	// fromSocket is true when the pidfd came from the socket itself
	// (SO_PEERPIDFD) and false when it was opened from the pid afterwards.
	fromSocket bool

	// teamID is the code-signing team of the peer's binary, read at
	// connect where the OS has one (macOS); "" elsewhere.
	teamID string

	// exec pins the address space the peer had when PinExec ran (Linux:
	// an open /proc/<pid>/environ), so Execed can tell cheaply whether the
	// process has exec'd since.
	exec execPin
}

// ProcessInfo is what a user needs to recognise an unknown caller in
// pending.json. It is self-reported by the process (a program may rewrite its
// command line) and read best effort, so it is for display, never for policy.
type ProcessInfo struct {
	CommandLine []string
	PPID        int
	ParentPath  string
	Cwd         string
}

// TeamID is the code-signing team identifier the kernel reports for the
// peer's binary (macOS: the team of its Developer ID), for showing to users
// and recording in the audit log. It is information, never identity: the
// hash is. "" when there is none or the OS has no such thing.
func (p *Peer) TeamID() string { return p.teamID }

// HasPeerPIDFD reports whether the process handle was taken from the socket
// (SO_PEERPIDFD, race free). When false it was opened from the pid after the
// fact, which a pid reused in between could defeat; the daemon logs that once.
func (p *Peer) HasPeerPIDFD() bool { return p.fromSocket }

// Close releases the process handle. Closing twice is harmless.
func (p *Peer) Close() error {
	p.exec.close()
	if p.pidfd == nil {
		return nil
	}
	if err := p.pidfd.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// TracedReason says, for the peer and the log, that thread tid of process
// pid is traced by tracer (negative: by an unknown tracer).
func TracedReason(tracer, tid, pid int) string {
	if tracer < 0 {
		return "the process is being traced, or was since it was verified (a debugger attached; its tracer is unknown)"
	}
	if tid == pid {
		return fmt.Sprintf("the process is being traced by pid %d (a debugger or another tracer is attached)", tracer)
	}
	return fmt.Sprintf("thread %d of the process is being traced by pid %d (a debugger or another tracer is attached)", tid, tracer)
}
