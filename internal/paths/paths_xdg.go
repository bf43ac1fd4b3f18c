//go:build !windows

package paths

import (
	"path/filepath"
	"strconv"
)

// xdgUser is the Unix user layout: XDG base directories, with the audit
// directory chosen per OS.
func xdgUser(e Env) (Layout, error) {
	xdg := func(name, fallback string) (string, error) {
		if v := e.get(name); filepath.IsAbs(v) {
			return v, nil
		}
		if e.Home == "" {
			return "", ErrNoHome
		}
		return filepath.Join(e.Home, fallback), nil
	}
	cfgBase, err := xdg("XDG_CONFIG_HOME", userConfigFallback())
	if err != nil {
		return Layout{}, err
	}
	dataBase, err := xdg("XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err != nil {
		return Layout{}, err
	}
	if e.Home == "" {
		return Layout{}, ErrNoHome
	}
	l := Layout{Mode: ModeUser}
	l.ConfigDir = filepath.Join(cfgBase, "keychain-auth")
	l.ConfigFile = filepath.Join(l.ConfigDir, "config.json")
	l.PendingFile = filepath.Join(l.ConfigDir, "pending.json")
	l.StateDir = userAuditDir(e, dataBase)
	l.AuditFile = filepath.Join(l.StateDir, "audit.log")
	l.StoreFile = filepath.Join(e.Home, ".keychain-auth", "keyring.json")
	l.StoreVersionFile = filepath.Join(l.StateDir, "keyring.version")
	l.SocketPath = UserSocket(e)
	return l, nil
}

// unixUserSocket is the Unix default: under XDG_RUNTIME_DIR, else a
// per-uid directory under TMPDIR or /tmp. The macOS choice (darwin.go,
// tested on Linux too) starts from it.
func unixUserSocket(e Env) string {
	if v := e.get("XDG_RUNTIME_DIR"); filepath.IsAbs(v) {
		return filepath.Join(v, "keychain-auth", "agent.sock")
	}
	tmp := e.get("TMPDIR")
	if !filepath.IsAbs(tmp) {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "keychain-auth-"+strconv.Itoa(e.UID), "agent.sock")
}
