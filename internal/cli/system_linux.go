package cli

import (
	"errors"

	"golang.org/x/sys/unix"
)

func systemModeSupported() error { return nil }

// errNoPtraceCap: the system daemon cannot read other users' executables.
var errNoPtraceCap = errors.New("system mode needs CAP_SYS_PTRACE in the daemon's effective capabilities " +
	"to read other users' /proc/<pid>/exe, and this process does not have it; start the daemon through systemd " +
	"(sudo systemctl start keychain-auth) or with setpriv as shown by: keychain-auth install-system --print")

// checkSystemCaps refuses to run the system daemon without the one
// capability it needs: without it every other user's client would be
// turned away as unidentifiable.
func checkSystemCaps() error {
	if hasCapability(unix.CAP_SYS_PTRACE) {
		return nil
	}
	return errNoPtraceCap
}
