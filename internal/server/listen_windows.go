package server

import (
	"errors"
	"fmt"
	"net"

	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/pipe"
)

// Listener is the daemon's named pipe.
type Listener struct{ net.Listener }

// Listen creates the daemon's named pipe, opts.Path (\\.\pipe\keychain-auth-<SID>
// by default). Only the daemon's user and SYSTEM may open it, remote clients
// are refused, and it is created as the first instance of its name: if
// anyone else holds the name, a running daemon or a squatter, Listen fails
// and names the pipe. UID, GID and the modes have no meaning for a pipe.
func Listen(opts ListenOptions) (*Listener, error) {
	sid, err := paths.CurrentSID()
	if err != nil {
		return nil, fmt.Errorf("listen on %s: cannot read this process's user SID: %w", opts.Path, err)
	}
	l, err := pipe.Listen(opts.Path, sid)
	if errors.Is(err, pipe.ErrExists) {
		return nil, fmt.Errorf("%w: %w; stop the other daemon (keychain-auth status shows it), or find the program holding the pipe", ErrAlreadyRunning, err)
	}
	if err != nil {
		return nil, err
	}
	return &Listener{Listener: l}, nil
}
