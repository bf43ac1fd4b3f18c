//go:build !linux && !darwin && !windows

package peer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
)

func errNotImplemented() error {
	return fmt.Errorf("peer verification is not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// FromConn is not implemented on this OS; it always fails, so the daemon
// refuses every connection rather than trusting an unverified peer.
func FromConn(c net.Conn) (*Peer, error) { return nil, errNotImplemented() }

// ExePath has no meaning without an implementation for this OS.
func (p *Peer) ExePath() string { return "" }

// Alive cannot be answered on this OS.
func (p *Peer) Alive() error { return errNotImplemented() }

// OpenExe is not implemented on this OS.
func (p *Peer) OpenExe() (*os.File, error) { return nil, errNotImplemented() }

// ExeLink is not implemented on this OS.
func (p *Peer) ExeLink() (string, error) { return "", errNotImplemented() }

// Describe knows nothing on this OS.
func (p *Peer) Describe() ProcessInfo { return ProcessInfo{} }
