package paths

import "path/filepath"

func userConfigFallback() string { return macConfigBase }

func userAuditDir(e Env, _ string) string { return macAuditDir(e) }

func userSocketDefault(e Env) string { return macUserSocket(e) }

func userLayout(e Env) (Layout, error) { return xdgUser(e) }
func userCacheFallback() string        { return filepath.Join("Library", "Caches") }
