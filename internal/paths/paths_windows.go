package paths

import "path/filepath"

func userAuditDir(_ Env, dataBase string) string {
	return filepath.Join(dataBase, "keychain-auth")
}

// Windows uses a named pipe named after the user's SID; the SID is not known
// here, so the pipe name is computed by the transport. This placeholder keeps
// the layout total.
func userSocketDefault(e Env) string { return `\\.\pipe\keychain-auth` }
