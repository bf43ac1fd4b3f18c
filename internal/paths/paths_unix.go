//go:build !darwin && !windows

package paths

import "path/filepath"

func userAuditDir(_ Env, dataBase string) string {
	return filepath.Join(dataBase, "keychain-auth")
}

func userSocketDefault(e Env) string { return unixUserSocket(e) }

func userLayout(e Env) (Layout, error) { return xdgUser(e) }
