//go:build unix

package client

import (
	"os"
	"os/user"
	"strconv"

	"github.com/The-17/keychain-auth/internal/paths"
)

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
