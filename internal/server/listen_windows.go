package server

import (
	"errors"
	"net"
)

// Listener is the daemon's endpoint.
type Listener struct{ net.Listener }

// Listen is not implemented on Windows yet: the named-pipe transport
// (\\.\pipe\keychain-auth-<SID>, via go-winio) is missing.
func Listen(ListenOptions) (*Listener, error) {
	return nil, errors.New("the daemon's named-pipe listener is not implemented on windows yet")
}
