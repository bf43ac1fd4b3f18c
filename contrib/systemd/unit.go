// Package systemd ships the systemd unit of the system-mode daemon inside the
// binary, so `keychain-auth install-system` writes exactly the file kept in
// this directory.
package systemd

import _ "embed"

// SystemUnit is system/keychain-auth.service: the system daemon's unit, with
// ExecStart= naming /usr/local/bin/keychain-auth.
//
//go:embed system/keychain-auth.service
var SystemUnit string

// DefaultBinary is the daemon's path in SystemUnit's ExecStart=.
const DefaultBinary = "/usr/local/bin/keychain-auth"
