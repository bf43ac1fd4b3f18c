package paths

import (
	"errors"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// ErrNoAppData is returned when neither %APPDATA%/%LOCALAPPDATA% nor a home
// directory to derive them from is known.
var ErrNoAppData = errors.New(`cannot determine the user's application data folders: set APPDATA and LOCALAPPDATA (or USERPROFILE)`)

// userLayout puts what roams with the user (config.json, pending.json) under
// %APPDATA% and what belongs to this machine (audit log, file store) under
// %LOCALAPPDATA%, each in a keychain-auth folder.
func userLayout(e Env) (Layout, error) {
	dir := func(name string, fallback ...string) (string, error) {
		if v := e.get(name); filepath.IsAbs(v) {
			return v, nil
		}
		if e.Home == "" {
			return "", ErrNoAppData
		}
		return filepath.Join(append([]string{e.Home}, fallback...)...), nil
	}
	roaming, err := dir("APPDATA", "AppData", "Roaming")
	if err != nil {
		return Layout{}, err
	}
	local, err := dir("LOCALAPPDATA", "AppData", "Local")
	if err != nil {
		return Layout{}, err
	}
	l := Layout{Mode: ModeUser}
	l.ConfigDir = filepath.Join(roaming, "keychain-auth")
	l.ConfigFile = filepath.Join(l.ConfigDir, "config.json")
	l.PendingFile = filepath.Join(l.ConfigDir, "pending.json")
	l.StateDir = filepath.Join(local, "keychain-auth")
	l.AuditFile = filepath.Join(l.StateDir, "audit.log")
	l.StoreFile = filepath.Join(l.StateDir, "keyring.json")
	l.StoreVersionFile = filepath.Join(l.StateDir, "keyring.version")
	l.SocketPath = UserSocket(e)
	return l, nil
}

// userSocketDefault is the pipe named after the SID of the user this
// process runs as.
func userSocketDefault(Env) string {
	sid, err := CurrentSID()
	if err != nil {
		// Without a SID no daemon could have created the pipe either; a
		// name no daemon uses makes the connect fail and say where it looked.
		return PipeName("unknown-user")
	}
	return PipeName(sid)
}

// CurrentSID is the string SID (S-1-5-21-...) of the user this process runs as.
func CurrentSID() (string, error) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", err
	}
	return tu.User.Sid.String(), nil
}

// userCacheFallback is the cache base under the home directory when
// XDG_CACHE_HOME is not set: %LOCALAPPDATA%'s usual place.
func userCacheFallback() string { return filepath.Join("AppData", "Local") }
