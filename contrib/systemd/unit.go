// Package systemd ships keychain-auth's systemd units inside the binary, so
// `keychain-auth install-system` and `keychain-auth install-service` write
// exactly the files kept in this directory (with ExecStart= pointing at the
// installed executable).
package systemd

import (
	_ "embed"
	"maps"
	"slices"
	"strings"
)

// SystemUnit is system/keychain-auth.service: the system daemon's unit, with
// ExecStart= naming /usr/local/bin/keychain-auth.
//
//go:embed system/keychain-auth.service
var SystemUnit string

// DefaultBinary is the daemon's path in SystemUnit's ExecStart=.
const DefaultBinary = "/usr/local/bin/keychain-auth"

// UserSocket is user/keychain-auth.socket: the user daemon's socket at
// $XDG_RUNTIME_DIR/keychain-auth/agent.sock, which starts UserService.
//
//go:embed user/keychain-auth.socket
var UserSocket string

// UserService is user/keychain-auth.service: the socket-activated user
// daemon (Type=notify), with ExecStart= naming UserDefaultBinary.
//
//go:embed user/keychain-auth.service
var UserService string

// UserDefaultBinary is the daemon's path in UserService's ExecStart=: where
// the .deb and .rpm packages put it.
const UserDefaultBinary = "/usr/bin/keychain-auth"

// Unit names of the user daemon.
const (
	UserSocketName  = "keychain-auth.socket"
	UserServiceName = "keychain-auth.service"
)

// UserServiceFor is UserService with ExecStart= running binary, and an
// Environment= line for each of env (sorted), placed after ExecStart=.
func UserServiceFor(binary string, env map[string]string) string {
	u := strings.Replace(UserService, "\nExecStart="+UserDefaultBinary+" ", "\nExecStart="+escapeExec(binary)+" ", 1)
	if len(env) == 0 {
		return u
	}
	var lines strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		kv := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "\n", " ").Replace(k + "=" + env[k])
		lines.WriteString("Environment=\"" + kv + "\"\n")
	}
	i := strings.Index(u, "\nExecStart=")
	j := i + 1 + strings.Index(u[i+1:], "\n") + 1
	return u[:j] + lines.String() + u[j:]
}

// escapeExec quotes a path for ExecStart=: systemd splits on spaces and
// expands % and $, so those are escaped.
func escapeExec(p string) string {
	p = strings.ReplaceAll(p, "%", "%%")
	p = strings.ReplaceAll(p, "$", "$$")
	if strings.ContainsAny(p, " \t\"\\") {
		p = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	return p
}
