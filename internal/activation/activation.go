// Package activation speaks the two service-manager protocols the daemon
// needs: socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: listening
// sockets passed from fd 3 on) and readiness notification (a datagram such
// as "READY=1" sent to $NOTIFY_SOCKET).
//
// It is written here rather than taken from github.com/coreos/go-systemd:
// both protocols are a few environment variables and one datagram, and the
// daemon must also check that what it was passed is a listening Unix stream
// socket before serving secrets on it, which go-systemd's activation.Files
// leaves to the caller.
package activation

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Environment variables of the protocols.
const (
	EnvListenPID     = "LISTEN_PID"
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvNotifySocket  = "NOTIFY_SOCKET"
)

// firstFD is SD_LISTEN_FDS_START: passed sockets start after stdio.
const firstFD = 3

// maxFDs bounds LISTEN_FDS: a unit passing more is misconfigured.
const maxFDs = 64

// ErrNotListening is returned when a passed fd is not a listening Unix
// stream socket.
var ErrNotListening = errors.New("the passed file descriptor is not a listening Unix stream socket")

// Passed is one socket handed over by the service manager.
type Passed struct {
	Listener *net.UnixListener
	// Name is its LISTEN_FDNAMES entry (FileDescriptorName=, by default the
	// socket unit's name), "" when none was given.
	Name string
}

// Env is what the package reads from the process: its environment and pid.
type Env struct {
	Getenv func(string) string
	PID    int
}

// Listeners returns the sockets passed to this process, none when
// LISTEN_FDS is unset or LISTEN_PID names another process (the variables
// were inherited, not meant for us). Each fd is made close-on-exec and
// checked to be a listening Unix stream socket. The caller should then call
// Unsetenv so that children do not see the variables.
func Listeners(e Env) ([]Passed, error) {
	fds := e.Getenv(EnvListenFDs)
	if fds == "" {
		return nil, nil
	}
	pid, err := strconv.Atoi(e.Getenv(EnvListenPID))
	if err != nil || pid != e.PID {
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 || n > maxFDs {
		return nil, fmt.Errorf("%s=%q is not a count of passed sockets (0..%d); fix the service manager's unit", EnvListenFDs, fds, maxFDs)
	}
	var names []string
	if v := e.Getenv(EnvListenFDNames); v != "" {
		names = strings.Split(v, ":")
	}
	out := make([]Passed, 0, n)
	for i := range n {
		fd := firstFD + i
		name := ""
		if i < len(names) {
			name = names[i]
		}
		l, err := listener(fd, name)
		if err != nil {
			for _, p := range out {
				p.Listener.Close()
			}
			return nil, fmt.Errorf("socket activation: fd %d (%q): %w", fd, name, err)
		}
		out = append(out, Passed{Listener: l, Name: name})
	}
	return out, nil
}

// Pick chooses the daemon's socket among those passed: the only one, or the
// one named name when there are several.
func Pick(passed []Passed, name string) (*net.UnixListener, error) {
	if len(passed) == 1 {
		return passed[0].Listener, nil
	}
	var found *net.UnixListener
	for _, p := range passed {
		if p.Name == name && found == nil {
			found = p.Listener
			continue
		}
		p.Listener.Close()
	}
	if found == nil {
		return nil, fmt.Errorf("socket activation passed %d sockets and none is named %q; pass one (ListenStream= in %s)", len(passed), name, name)
	}
	return found, nil
}
