package activation

import "golang.org/x/sys/unix"

// acceptConn refuses a socket nobody called listen(2) on.
func acceptConn(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || v == 0 {
		return ErrNotListening
	}
	return nil
}
