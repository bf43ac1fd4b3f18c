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
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Start the user daemon at login (macOS: a launchd user agent; Windows: a logon task)",
		Long: `Make the user-mode daemon start at login and restart if it fails.

On macOS this writes the launchd user agent ~/Library/LaunchAgents/` + launchd.Label + `.plist
(contrib/launchd/ with this executable's path, a log file under ~/Library/Logs/keychain-auth
and the variables that decide where the daemon's files are: TMPDIR, XDG_*, KEYCHAIN_AUTH_SOCKET)
and loads it with launchctl. Running it again after an upgrade reloads the agent.

On Windows it creates the Task Scheduler task "keychain-auth", which runs
"keychain-auth start" as you at each logon with your normal (not elevated)
rights, from where this executable is now. That daemon has no console: with the
file store it cannot ask for a passphrase, so use the Credential Manager store
(the default on Windows) or set KEYCHAIN_AUTH_PASSPHRASE in your user
environment. Remove it with: schtasks /Delete /TN keychain-auth /F

--print shows every step without doing any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.servicePlan()
			if err != nil {
				return err
			}
			return a.runPlan(cmd.Context(), "install-service", p, printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print every step without doing it")
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
	self, err := os.Executable()
	if err != nil {
		return launchdTarget{}, fmt.Errorf("cannot find this program's executable to run it at login: %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
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

// mkdirStep creates dir (and its parents) with mode.
func mkdirStep(dir string, mode os.FileMode) step {
	return step{
		show: fmt.Sprintf("install -d -m %04o %s", mode, shellQuote(dir)),
		done: func() bool { fi, err := os.Stat(dir); return err == nil && fi.IsDir() },
		do:   func(context.Context) error { return os.MkdirAll(dir, mode) },
	}
}
