package server

import (
	"errors"
	"net"
)

// Adopt is not implemented on Windows: no service manager passes sockets.
func Adopt(*net.UnixListener, ListenOptions) (*Listener, error) {
	return nil, errors.New("socket activation is not implemented on windows")
}
