package peer

import (
	"errors"
	"fmt"
)

// ErrNotPinned is returned by Execed when PinExec did not succeed.
var ErrNotPinned = errors.New("exec pin unavailable")

// execPin is, on macOS, the audit token the peer connected with. Its
// pidversion changes on every exec, so comparing it with the pid's current
// one answers "same program run as at connect?" without any file.
type execPin struct {
	tok auditToken
}

func (e *execPin) close() {}

// PinExec has nothing to open on macOS: the pin is the audit token taken at
// connect. It only confirms the peer has not exec'd or exited since.
func (p *Peer) PinExec() error {
	if p.exec.tok.PID == 0 {
		return ErrNotPinned
	}
	return p.Alive()
}

// Execed reports whether the pid now runs another image than the one that
// connected: a new pidversion means an exec (or exit and pid reuse).
func (p *Peer) Execed() (bool, error) {
	if p.exec.tok.PID == 0 {
		return false, ErrNotPinned
	}
	v, err := pidVersion(p.PID)
	if err != nil {
		return false, fmt.Errorf("check peer pid %d for exec: %w", p.PID, err)
	}
	return v != p.exec.tok.PIDVersion, nil
}
