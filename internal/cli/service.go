package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/contrib/launchd"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

func (a *app) installServiceCmd() *cobra.Command {
	var printOnly, uninstall bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Run the user daemon as a service: systemd user units (Linux), a launchd agent (macOS), a logon task (Windows)",
		Long: `Make the user-mode daemon start on its own and restart if it fails.

On Linux this writes the systemd user units keychain-auth.socket and
keychain-auth.service (contrib/systemd/user/, with ExecStart= running this
executable) to $XDG_CONFIG_HOME/systemd/user and runs
  systemctl --user enable --now keychain-auth.socket
systemd then listens on $XDG_RUNTIME_DIR/keychain-auth/agent.sock from login on
and starts the daemon at the first connection (socket activation). The
variables XDG_CONFIG_HOME and XDG_DATA_HOME, when set in your shell, are
written into the unit so that the daemon finds the same files as the admin
commands. The file store's passphrase cannot be typed to a service: use the
secret-service backend, or a systemd credential (see keychain-auth start --help).

On macOS this writes the launchd user agent ~/Library/LaunchAgents/` + launchd.Label + `.plist
(contrib/launchd/ with this executable's path, a log file under ~/Library/Logs/keychain-auth
and the variables that decide where the daemon's files are: TMPDIR, XDG_*, KEYCHAIN_AUTH_SOCKET)
and loads it with launchctl.

On Windows it creates the Task Scheduler task "keychain-auth", which runs
"keychain-auth start" as you at each logon with your normal (not elevated)
rights, from where this executable is now. That daemon has no console: with the
file store it cannot ask for a passphrase, so use the Credential Manager store
(the default on Windows) or set KEYCHAIN_AUTH_PASSPHRASE in your user
environment.

Running it again after an upgrade updates and restarts the service; steps
already in place are skipped. --uninstall stops the service and removes what
install-service wrote. --print shows every step without doing any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			title := "install-service"
			if uninstall {
				title = "install-service --uninstall"
			}
			p, err := a.servicePlan(uninstall)
			if err != nil {
				return err
			}
			return a.runPlan(cmd.Context(), title, p, printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print every step without doing it")
	cmd.Flags().BoolVar(&uninstall, "uninstall", false, "stop the service and remove its files")
	return cmd
}

// launchdTarget is what the launchd plan acts on.
type launchdTarget struct {
	home   string
	uid    int
	binary string
	env    map[string]string
}

// serviceEnv lists the variables that decide where the daemon's files and
// socket are. launchd starts agents with almost no environment, so the ones
// set in the installing shell are written into the agent; never the
// passphrase, which must not end up in a file.
var serviceEnv = []string{"TMPDIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", paths.EnvSocket}

func (a *app) launchdTarget() (launchdTarget, error) {
	e, err := a.env()
	if err != nil {
		return launchdTarget{}, err
	}
	if e.Home == "" {
		return launchdTarget{}, paths.ErrNoHome
	}
	self, err := selfExecutable()
	if err != nil {
		return launchdTarget{}, err
	}
	t := launchdTarget{home: e.Home, uid: a.uid, binary: self, env: map[string]string{}}
	for _, k := range serviceEnv {
		if v := a.getenv(k); v != "" {
			t.env[k] = v
		}
	}
	return t, nil
}

// launchdPlan writes the agent and (re)loads it in the user's GUI domain.
func launchdPlan(t launchdTarget) plan {
	agents := filepath.Join(t.home, "Library", "LaunchAgents")
	plistPath := filepath.Join(agents, launchd.Label+".plist")
	logDir := filepath.Join(t.home, "Library", "Logs", "keychain-auth")
	logFile := filepath.Join(logDir, "daemon.log")
	doc := launchd.Agent(launchd.Options{Binary: t.binary, LogFile: logFile, Env: t.env})
	domain := "gui/" + strconv.Itoa(t.uid)
	service := domain + "/" + launchd.Label

	changed := false
	plistDone := func() bool { b, err := os.ReadFile(plistPath); return err == nil && bytes.Equal(b, []byte(doc)) }
	loaded := func() bool { return exec.Command("launchctl", "print", service).Run() == nil }
	var p plan
	p.steps = append(p.steps,
		mkdirStep(agents, 0o755),
		mkdirStep(logDir, 0o700),
		step{
			show: fmt.Sprintf("write %s (0644): contrib/launchd/%s.plist running %s", shellQuote(plistPath), launchd.Label, shellQuote(t.binary)),
			done: plistDone,
			do: func(context.Context) error {
				changed = true
				return fsx.WriteFile(plistPath, []byte(doc), 0o644)
			},
		},
		// A loaded agent keeps its old definition: unload it when the
		// plist changed, so that bootstrap reads the new one.
		step{
			show: "launchctl bootout " + service,
			done: func() bool { return !(changed || !plistDone()) || !loaded() },
			do:   func(ctx context.Context) error { return runTool(ctx, "launchctl", "bootout", service) },
		},
		step{
			show: "launchctl bootstrap " + domain + " " + shellQuote(plistPath),
			done: loaded,
			do:   func(ctx context.Context) error { return runTool(ctx, "launchctl", "bootstrap", domain, plistPath) },
		},
	)
	p.notes = append(p.notes, fmt.Sprintf("The daemon runs as the launchd agent %s, starting at login.\n"+
		"  status: launchctl print %s\n  log:    %s\n  stop:   launchctl bootout %s (and remove %s to keep it from starting at login)",
		launchd.Label, service, logFile, service, shellQuote(plistPath)))
	return p
}

// selfExecutable is the running program's resolved path: what a service
// should run.
func selfExecutable() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this program's executable to install it: %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return self, nil
}

// mkdirStep creates dir (and its parents) with mode.
func mkdirStep(dir string, mode os.FileMode) step {
	return step{
		show: fmt.Sprintf("install -d -m %04o %s", mode, shellQuote(dir)),
		done: func() bool { fi, err := os.Stat(dir); return err == nil && fi.IsDir() },
		do:   func(context.Context) error { return os.MkdirAll(dir, mode) },
	}
}
