package client

import (
	"errors"

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
