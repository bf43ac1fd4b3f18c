//go:build !windows

package paths

// macOS conventions, kept in a file that builds on every Unix-like OS so
// their tests (darwin_test.go) run on Linux too; paths_darwin.go wires them
// in. Windows, which has its own layout, leaves them out.

import (
	"path/filepath"
	"strconv"
)

// macConfigBase is where macOS keeps per-user application files, relative
// to the home directory; config.json and pending.json go in a
// keychain-auth directory there unless XDG_CONFIG_HOME says otherwise.
var macConfigBase = filepath.Join("Library", "Application Support")

// macAuditDir is under ~/Library/Logs, where Console.app finds it.
func macAuditDir(e Env) string {
	return filepath.Join(e.Home, "Library", "Logs", "keychain-auth")
}

// maxBSDSocketPath is the longest socket path macOS accepts: sun_path is
// 104 bytes there, NUL included (Linux has 108).
const maxBSDSocketPath = 103

// macUserSocket is the default socket on macOS. $TMPDIR there is a per-user
// directory under /var/folders (about 50 bytes), so the usual choice fits;
// when it does not (a long TMPDIR or XDG_RUNTIME_DIR), it falls back to
// /tmp/keychain-auth-<uid>/agent.sock, whose directory the daemon creates
// 0700 and refuses to use when someone else owns it.
func macUserSocket(e Env) string {
	p := unixUserSocket(e)
	if len(p) <= maxBSDSocketPath {
		return p
	}
	return filepath.Join("/tmp", "keychain-auth-"+strconv.Itoa(e.UID), "agent.sock")
}
