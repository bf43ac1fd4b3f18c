// Package pipe is the daemon's Windows transport: a named pipe that only the
// user (and SYSTEM) may open, refused to remote clients, and created first by
// the daemon so that no other program can squat its name. It is written
// directly on CreateNamedPipe/ConnectNamedPipe; connections are os.Files on
// overlapped handles, so deadlines work as on sockets.
package pipe

import (
	"errors"
	"strings"
)

// Prefix starts every local pipe name.
const Prefix = `\\.\pipe\`

// ErrExists means the pipe already exists: a daemon is serving it, or another
// program created it first.
var ErrExists = errors.New("the named pipe already exists")

// SDDL is the security descriptor of the daemon's pipe: a protected DACL
// (no inherited entries) allowing all access to the user's SID and to
// SYSTEM, and nothing to anyone else, not even Administrators or Everyone.
func SDDL(userSID string) string {
	return "D:P(A;;GA;;;" + userSID + ")(A;;GA;;;SY)"
}

// ValidName reports whether name is a local pipe name this package serves.
func ValidName(name string) bool {
	rest, ok := strings.CutPrefix(name, Prefix)
	return ok && rest != "" && !strings.ContainsAny(rest, `\`)
}
