//go:build unix

package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func listener(fd int, name string) (*net.UnixListener, error) {
	unix.CloseOnExec(fd)
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotListening, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotListening, err)
	}
	if _, ok := sa.(*unix.SockaddrUnix); !ok || typ != unix.SOCK_STREAM {
		return nil, ErrNotListening
	}
	if err := acceptConn(fd); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd)+":"+name)
	defer f.Close() // FileListener dups the descriptor.
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotListening, err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, ErrNotListening
	}
	// The socket file belongs to the service manager: closing must not
	// unlink it (net.FileListener already says so; say it again in case).
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// Unsetenv removes the activation variables from the process environment.
func Unsetenv() {
	for _, k := range []string{EnvListenPID, EnvListenFDs, EnvListenFDNames} {
		os.Unsetenv(k)
	}
}

// Notify sends state (e.g. "READY=1") to the service manager when
// $NOTIFY_SOCKET is set; sent is false when it is not. An address starting
// with '@' is in the abstract namespace.
func Notify(getenv func(string) string, state string) (sent bool, err error) {
	addr := getenv(EnvNotifySocket)
	if addr == "" {
		return false, nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return false, fmt.Errorf("%s=%q is not a Unix socket address", EnvNotifySocket, addr)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notify the service manager at %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notify the service manager at %s: %w", addr, err)
	}
	return true, nil
}
