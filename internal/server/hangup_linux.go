package server

import (
	"context"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// cancelOnHangup returns a context cancelled when the peer closes its end of
// nc (POLLHUP: both directions shut, as when the process exits), so that a
// hash nobody waits for any more stops and frees its slot. A half-close
// (the client shut only its writing side and waits for the reply) does not
// count. stop ends the watch; it must be called before nc is closed.
func cancelOnHangup(ctx context.Context, nc net.Conn) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return ctx, cancel
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return ctx, cancel
	}
	var fd int = -1
	rc.Control(func(f uintptr) { fd = int(f) })
	if fd < 0 {
		return ctx, cancel
	}
	// A pipe wakes the poll when the watch is stopped.
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC); err != nil {
		return ctx, cancel
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fds := []unix.PollFd{{Fd: int32(fd), Events: 0}, {Fd: int32(wake[0]), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				cancel()
			}
			return
		}
	}()
	return ctx, func() {
		unix.Write(wake[1], []byte{0})
		<-done
		unix.Close(wake[0])
		unix.Close(wake[1])
		cancel()
	}
}
