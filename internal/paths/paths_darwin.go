package paths

import "path/filepath"

// macOS keeps logs under ~/Library/Logs, where Console.app finds them.
func userAuditDir(e Env, _ string) string {
	return filepath.Join(e.Home, "Library", "Logs", "keychain-auth")
}

func userSocketDefault(e Env) string { return unixUserSocket(e) }

func userLayout(e Env) (Layout, error) { return xdgUser(e) }
