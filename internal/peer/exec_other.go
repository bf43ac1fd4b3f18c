//go:build !linux && !darwin && !windows

package peer

// ErrNotPinned is returned by Execed when PinExec did not succeed.
var ErrNotPinned = errNotImplemented()

type execPin struct{}

func (e *execPin) close() {}

// PinExec is not implemented on this OS.
func (p *Peer) PinExec() error { return errNotImplemented() }

// Execed is not implemented on this OS.
func (p *Peer) Execed() (bool, error) { return false, ErrNotPinned }

// TracedBy is not implemented on this OS.
func (p *Peer) TracedBy() (tracer, tid int, err error) { return 0, 0, errNotImplemented() }
