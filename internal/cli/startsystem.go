package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"strconv"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/server"
)

// ErrSystemMode: a user tried to start a daemon of their own on a machine
// whose daemon is the system one.
var ErrSystemMode = errors.New("this machine runs keychain-auth in system mode")

// System-mode socket: group members may reach and use it, nobody else.
const (
	systemSocketDirMode os.FileMode = 0o750
	systemSocketMode    os.FileMode = 0o660
)

// startMode decides which daemon start runs: --mode when given; otherwise
// system mode when it is installed and we are its user (or root), user mode
// when it is not installed. Anyone else is told that the machine already
// has a daemon for them.
func (a *app) startMode() (paths.Mode, error) {
	if a.mode != modeAuto && a.mode != "" {
		return a.resolveMode()
	}
	installed, err := a.systemInstalled()
	if err != nil || !installed {
		return paths.ModeUser, err
	}
	l := a.systemLayout()
	if a.uid == 0 || isUser(l.SystemUser, a.uid) {
		return paths.ModeSystem, nil
	}
	return "", explain(ErrSystemMode, "this machine runs keychain-auth in system mode (%s exists): the system daemon, "+
		"running as user %s, serves every user on %s, so you need no daemon of your own; see it with: keychain-auth status. "+
		"To run a personal user-mode daemon anyway: keychain-auth start --mode user",
		l.ConfigFile, l.SystemUser, l.SocketPath)
}

// isUser reports whether uid is the account called name.
func isUser(name string, uid int) bool {
	u, err := user.Lookup(name)
	return err == nil && u.Uid == strconv.Itoa(uid)
}

// prepareSystem readies the system daemon: the capability it needs, root's
// config.json, its private state directory, and the file store opened with
// the master key. The caller closes the store in the returned run.
func (a *app) prepareSystem(ctx context.Context, log *slog.Logger, o startOpts) (daemonRun, error) {
	if err := systemModeSupported(); err != nil {
		return daemonRun{}, err
	}
	layout := a.systemLayout()
	switch {
	case o.socket != "":
		return daemonRun{}, usagef("--socket cannot move the system daemon's socket: the clients of every user look for it at %s", layout.SocketPath)
	case o.passphraseFile != "":
		return daemonRun{}, usagef("the system store is unlocked by its master key (%s), not a passphrase; drop --passphrase-file", layout.KeyFile)
	case o.backend != "auto" && o.backend != "file":
		return daemonRun{}, usagef("system mode keeps secrets in its own encrypted file store; --backend %s is for user mode", o.backend)
	}
	if a.uid == 0 {
		log.Warn("running the system daemon as root; a bug in it would then give away the machine: " +
			"run it as its own user (sudo keychain-auth install-system sets that up)")
	} else if err := checkSystemCaps(); err != nil {
		return daemonRun{}, err
	}

	if _, err := os.Stat(layout.ConfigFile); errors.Is(err, fs.ErrNotExist) {
		return daemonRun{}, fmt.Errorf("system mode is not set up here: %s is missing; run: sudo keychain-auth install-system", layout.ConfigFile)
	}
	cfg, err := config.Load(layout.ConfigFile, systemLoadOpts())
	if err != nil {
		return daemonRun{}, fmt.Errorf("cannot start: %w", err)
	}
	if cfg.Backend != "" && cfg.Backend != "file" {
		return daemonRun{}, fmt.Errorf("%s records the backend %q, but the system daemon uses only its encrypted file store; "+
			"set \"backend\" to \"file\" there (as root)", layout.ConfigFile, cfg.Backend)
	}
	if err := checkStateDir(layout.StateDir, a.uid); err != nil {
		return daemonRun{}, err
	}
	exists, err := file.Exists(layout.StoreFile)
	if err != nil {
		return daemonRun{}, err
	}
	key, source, err := a.systemKey(ctx, layout, exists)
	if err != nil {
		return daemonRun{}, err
	}
	be, err := newRegistry().Open(ctx, "file", backend.Options{Path: layout.StoreFile, VersionPath: layout.StoreVersionFile, Key: key, Create: !exists, Logger: log})
	clear(key)
	switch {
	case errors.Is(err, file.ErrWrongPassphrase):
		return daemonRun{}, fmt.Errorf("the master key from %s does not open %s; the store was not changed: "+
			"restore the key the store was created with", source, layout.StoreFile)
	case err != nil:
		return daemonRun{}, fmt.Errorf("open the system store: %w", err)
	}
	log.Info("system store opened", "store", layout.StoreFile, "key", source)
	return daemonRun{
		layout:   layout,
		loadOpts: systemLoadOpts(),
		backend:  "file",
		be:       be,
		listen: server.ListenOptions{Path: layout.SocketPath, UID: a.uid, GID: os.Getgid(),
			DirMode: systemSocketDirMode, SocketMode: systemSocketMode},
		anyUID: true,
	}, nil
}
