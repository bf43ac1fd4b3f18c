package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
)

// Values of the --mode flag.
const (
	modeAuto   = "auto"
	modeUser   = string(paths.ModeUser)
	modeSystem = string(paths.ModeSystem)
)

// ErrNeedsRoot: the command changes system-mode files, which only root may.
var ErrNeedsRoot = errors.New("needs root")

// System-mode file modes: config.json is root's and readable by the daemon;
// its directory lets the daemon (and users, for list and check) in.
const (
	systemConfigMode os.FileMode = 0o644
	systemConfigDir  os.FileMode = 0o755
)

// systemLayout is the system-mode layout under $KEYCHAIN_AUTH_SYSTEM_ROOT.
func (a *app) systemLayout() paths.Layout {
	return paths.System(paths.Env{Getenv: a.getenv, UID: a.uid})
}

// systemInstalled reports whether this machine runs keychain-auth in system
// mode, which install-system marks by creating the system config.json.
func (a *app) systemInstalled() (bool, error) {
	cfg := a.systemLayout().ConfigFile
	_, err := os.Stat(cfg)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("cannot tell whether this machine is in system mode: %w", err)
}

// resolveMode applies --mode: user or system when given, else system when the
// system config.json exists, else user.
func (a *app) resolveMode() (paths.Mode, error) {
	switch a.mode {
	case modeUser:
		return paths.ModeUser, nil
	case modeSystem:
		return paths.ModeSystem, nil
	case modeAuto, "":
		sys, err := a.systemInstalled()
		if err != nil {
			return "", err
		}
		if sys {
			return paths.ModeSystem, nil
		}
		return paths.ModeUser, nil
	}
	return "", usagef("--mode must be auto, user or system, not %q", a.mode)
}

// layout is where the admin commands read and write: the system files when
// the machine is in system mode (or --mode system), else the user's.
func (a *app) layout() (paths.Layout, error) {
	m, err := a.resolveMode()
	if err != nil {
		return paths.Layout{}, err
	}
	if m == paths.ModeSystem {
		return a.systemLayout(), nil
	}
	return a.userLayout("")
}

// adminLayout is layout for a command that changes the policy: in system
// mode only root may, and anyone else is told to use sudo.
func (a *app) adminLayout(command string) (paths.Layout, error) {
	l, err := a.layout()
	if err != nil {
		return l, err
	}
	if l.Mode == paths.ModeSystem && a.uid != 0 {
		return l, explain(ErrNeedsRoot, "this machine runs keychain-auth in system mode, where the policy (%s) belongs to root: "+
			"run it with sudo (sudo keychain-auth %s ...); to manage a personal user-mode daemon instead, add --mode user",
			l.ConfigFile, command)
	}
	return l, nil
}

// requiresSudo says whether changing the policy of layout needs root.
func (a *app) requiresSudo(l paths.Layout) bool { return l.Mode == paths.ModeSystem && a.uid != 0 }

// loadOpts are the checks config.json must pass before it is trusted, and
// how it is written, in the mode the command acts on: in system mode the
// file must be root's, 0644 so the daemon and users can read it.
func (a *app) loadOpts() config.LoadOptions {
	if m, err := a.resolveMode(); err == nil && m == paths.ModeSystem {
		o := systemLoadOpts()
		o.OwnerUID = a.systemOwner
		return o
	}
	return config.LoadOptions{OwnerUID: a.uid}
}

func systemLoadOpts() config.LoadOptions {
	return config.LoadOptions{OwnerUID: 0, FileMode: systemConfigMode, DirMode: systemConfigDir}
}

// sudoHint adds what to do to a permission error met on system-mode files
// by someone other than root.
func (a *app) sudoHint(err error) error {
	if err == nil || a.uid == 0 || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if m, merr := a.resolveMode(); merr != nil || m != paths.ModeSystem {
		return err
	}
	return fmt.Errorf("%w; this machine runs keychain-auth in system mode and that file belongs to the daemon or root: run it with sudo", err)
}

// removePending drops hash from the approval queue. In system mode the queue
// is the daemon's file, so root edits it as the daemon's user: a pending.json
// (or its lock file) left owned by root would stop the daemon from queueing
// anyone.
func (a *app) removePending(ctx context.Context, layout paths.Layout, hash string) (rec config.PendingRecord, found bool, err error) {
	err = a.asStateOwner(layout, func() error {
		var err error
		rec, found, err = config.RemovePending(ctx, layout.PendingFile, hash)
		return err
	})
	return rec, found, err
}

// asStateOwner runs fn with the file identity of the owner of the state
// directory when root edits system-mode state, else as it is.
func (a *app) asStateOwner(layout paths.Layout, fn func() error) error {
	if layout.Mode != paths.ModeSystem || a.uid != 0 {
		return fn()
	}
	uid, gid, err := ownerOf(layout.StateDir)
	if err != nil {
		return fmt.Errorf("find the owner of %s: %w", layout.StateDir, err)
	}
	if uid == 0 {
		return fn()
	}
	return asFileOwner(uid, gid, fn)
}
