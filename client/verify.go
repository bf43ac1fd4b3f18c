package client

import (
	"errors"
	"os"
	"os/user"
	"strconv"

	"github.com/The-17/keychain-auth/internal/paths"
)

// ErrUntrustedDaemon is returned by Dial when the process serving the socket
// runs as a user that could not be a keychain-auth daemon for us: a socket in
// a shared directory (such as /tmp) could have been created by someone else to
// collect what we write.
var ErrUntrustedDaemon = errors.New("the socket is served by an untrusted user")

// SystemUser is the account the system-mode daemon runs as, unless
// $KEYCHAIN_AUTH_SYSTEM_USER names another (tests, unusual installs).
const SystemUser = paths.DefaultSystemUser

// systemUser is the account trusted as the system daemon in this process.
func systemUser() string { return paths.SystemUser(paths.Env{Getenv: os.Getenv}) }

// trustedDaemonUID reports whether a daemon running as uid may serve us: our
// own user (user mode), root, or the system-mode account.
func trustedDaemonUID(uid, self uint32) bool {
	if uid == self || uid == 0 {
		return true
	}
	u, err := user.Lookup(systemUser())
	if err != nil {
		return false
	}
	sys, err := strconv.ParseUint(u.Uid, 10, 32)
	return err == nil && uint32(sys) == uid
}
