// Package paths computes every file and socket location keychain-auth uses, for
// user mode and system mode, from the environment it is given. It is the one
// place that knows about XDG variables, KEYCHAIN_AUTH_* overrides and per-OS
// conventions; it reads no files.
package paths

import (
	"errors"
	"path/filepath"
)

// Environment variables that change where things live.
const (
	EnvSocket     = "KEYCHAIN_AUTH_SOCKET"
	EnvSystemRoot = "KEYCHAIN_AUTH_SYSTEM_ROOT"
	EnvPassphrase = "KEYCHAIN_AUTH_PASSPHRASE"
	// EnvSystemUser names the system daemon's account (and its group)
	// instead of DefaultSystemUser; tests and unusual installs set it.
	EnvSystemUser = "KEYCHAIN_AUTH_SYSTEM_USER"
	// EnvCredentials is where systemd puts a service's credentials
	// (LoadCredential=, LoadCredentialEncrypted=).
	EnvCredentials = "CREDENTIALS_DIRECTORY"
)

// DefaultSystemUser is the account and group the system daemon runs as.
const DefaultSystemUser = "keychain-auth"

// Mode says whose daemon a layout belongs to.
type Mode string

const (
	ModeUser   Mode = "user"
	ModeSystem Mode = "system"
)

// Layout is the set of locations for one mode.
type Layout struct {
	Mode        Mode
	ConfigDir   string
	ConfigFile  string
	PendingFile string
	StateDir    string // data: audit log (and, in system mode, store and key)
	AuditFile   string
	StoreFile   string
	// StoreVersionFile keeps the file store's last written version outside
	// the store's own directory, so that rolling keyring.json back is noticed.
	StoreVersionFile string
	KeyFile          string // system mode only: the store's master key
	SocketPath       string
	// SystemUser is the daemon's account in system mode; "" in user mode.
	SystemUser string
}

// Env is what the functions here read: a getenv and the user's identity.
type Env struct {
	Getenv func(string) string
	Home   string
	UID    int
}

func (e Env) get(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// ErrNoHome is returned when no home directory is known and no XDG override
// makes one unnecessary.
var ErrNoHome = errors.New("cannot determine the home directory: set HOME")

// User returns the user-mode layout: XDG directories on Unix, %APPDATA% and
// %LOCALAPPDATA% on Windows.
func User(e Env) (Layout, error) { return userLayout(e) }

// PipeName is the user daemon's named pipe on Windows, one per user SID so
// that users of one machine never meet each other's daemon.
func PipeName(sid string) string { return `\\.\pipe\keychain-auth-` + sid }

// UserSocket is the user daemon's socket: $KEYCHAIN_AUTH_SOCKET, else under
// $XDG_RUNTIME_DIR, else under $TMPDIR (or /tmp) in a per-uid directory.
func UserSocket(e Env) string {
	if v := e.get(EnvSocket); v != "" {
		return v
	}
	return userSocketDefault(e)
}

// SystemRoot is $KEYCHAIN_AUTH_SYSTEM_ROOT, or "/".
func SystemRoot(e Env) string {
	if v := e.get(EnvSystemRoot); v != "" {
		return v
	}
	return "/"
}

// System returns the system-mode layout under SystemRoot. $KEYCHAIN_AUTH_SOCKET
// does not move the system socket: clients in other accounts must find it.
func System(e Env) Layout {
	root := SystemRoot(e)
	l := Layout{Mode: ModeSystem}
	l.ConfigDir = filepath.Join(root, "etc", "keychain-auth")
	l.ConfigFile = filepath.Join(l.ConfigDir, "config.json")
	l.StateDir = filepath.Join(root, "var", "lib", "keychain-auth")
	l.PendingFile = filepath.Join(l.StateDir, "pending.json")
	l.AuditFile = filepath.Join(l.StateDir, "audit.log")
	l.StoreFile = filepath.Join(l.StateDir, "keyring.json")
	l.StoreVersionFile = filepath.Join(l.StateDir, "keyring.version")
	l.KeyFile = filepath.Join(l.StateDir, "master.key")
	l.SocketPath = filepath.Join(root, "run", "keychain-auth", "agent.sock")
	l.SystemUser = SystemUser(e)
	return l
}

// SystemUser is the system daemon's account: $KEYCHAIN_AUTH_SYSTEM_USER, or
// DefaultSystemUser.
func SystemUser(e Env) string {
	if v := e.get(EnvSystemUser); v != "" {
		return v
	}
	return DefaultSystemUser
}

// SystemBinary is where install-system puts the daemon's executable: a
// root-owned path, because whoever can replace it runs as the daemon.
func SystemBinary(e Env) string {
	return filepath.Join(SystemRoot(e), "usr", "local", "bin", "keychain-auth")
}

// SystemUnit is where install-system writes the systemd unit.
func SystemUnit(e Env) string {
	return filepath.Join(SystemRoot(e), "etc", "systemd", "system", "keychain-auth.service")
}

// HashCacheFile is where the command line remembers the hashes of the
// registered files it has read, for the user who runs it (whatever the
// mode): $XDG_CACHE_HOME/keychain-auth/hashes.json, else under the home
// directory. Only `list` reads it; the daemon never does.
func HashCacheFile(e Env) (string, error) {
	base := e.get("XDG_CACHE_HOME")
	if !filepath.IsAbs(base) {
		if e.Home == "" {
			return "", ErrNoHome
		}
		base = filepath.Join(e.Home, userCacheFallback())
	}
	return filepath.Join(base, "keychain-auth", "hashes.json"), nil
}
