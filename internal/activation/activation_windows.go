package activation

import (
	"errors"
	"net"
)

func listener(int, string) (*net.UnixListener, error) {
	return nil, errors.New("socket activation (LISTEN_FDS) is not implemented on windows")
}

// Unsetenv does nothing: nothing was passed.
func Unsetenv() {}

// Notify does nothing on windows: no service manager listens there.
func Notify(func(string) string, string) (bool, error) { return false, nil }
