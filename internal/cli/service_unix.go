//go:build unix

package cli

// The launchd agent's plan is built on every Unix, not only macOS, so that
// its tests (service_test.go) run on Linux with a fake launchctl.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/The-17/keychain-auth/contrib/launchd"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

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

// mkdirStep creates dir (and its parents) with mode.
func mkdirStep(dir string, mode os.FileMode) step {
	return step{
		show: fmt.Sprintf("install -d -m %04o %s", mode, shellQuote(dir)),
		done: func() bool { fi, err := os.Stat(dir); return err == nil && fi.IsDir() },
		do:   func(context.Context) error { return os.MkdirAll(dir, mode) },
	}
}
