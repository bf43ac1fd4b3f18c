package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/The-17/keychain-auth/contrib/systemd"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

// systemdUserTarget is what the systemd user-unit plans act on.
type systemdUserTarget struct {
	unitDir string // $XDG_CONFIG_HOME/systemd/user
	binary  string
	env     map[string]string // written into the service as Environment=
	socket  string            // where clients look for the daemon
	// systemd: a user manager runs for this user; without one, nothing can
	// be enabled and the plan says how to start the daemon instead.
	systemd bool
}

// systemdUserEnv are the variables written into the service: they decide
// where the daemon's files are, and the user manager may not have them.
// XDG_RUNTIME_DIR is the manager's own; the passphrase never goes in a file.
var systemdUserEnv = []string{"XDG_CONFIG_HOME", "XDG_DATA_HOME"}

func (a *app) systemdUserTarget() (systemdUserTarget, error) {
	e, err := a.env()
	if err != nil {
		return systemdUserTarget{}, err
	}
	cfgHome := a.getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(cfgHome) {
		if e.Home == "" {
			return systemdUserTarget{}, paths.ErrNoHome
		}
		cfgHome = filepath.Join(e.Home, ".config")
	}
	self, err := selfExecutable()
	if err != nil {
		return systemdUserTarget{}, err
	}
	t := systemdUserTarget{unitDir: filepath.Join(cfgHome, "systemd", "user"), binary: self, env: map[string]string{},
		socket: paths.UserSocket(e), systemd: userManagerRunning(a.getenv)}
	for _, k := range systemdUserEnv {
		if v := a.getenv(k); filepath.IsAbs(v) {
			t.env[k] = v
		}
	}
	return t, nil
}

// userManagerRunning reports whether systemctl --user can reach a manager:
// systemd booted the machine and the user's runtime directory has its bus.
func userManagerRunning(getenv func(string) string) bool {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	rt := getenv("XDG_RUNTIME_DIR")
	if rt == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(rt, "systemd", "private"))
	return err == nil
}

func (a *app) servicePlan(uninstall bool) (plan, error) {
	t, err := a.systemdUserTarget()
	if err != nil {
		return plan{}, err
	}
	if uninstall {
		return systemdUserUninstallPlan(t), nil
	}
	return systemdUserPlan(t), nil
}

// systemctlUser asks systemctl --user a yes/no question.
func systemctlUser(args ...string) bool {
	return exec.Command("systemctl", append([]string{"--user"}, args...)...).Run() == nil
}

// systemdUserPlan writes the units and enables the socket. The service is
// restarted only when a unit changed and it is running: an idle daemon is
// started by the socket with the new unit anyway.
func systemdUserPlan(t systemdUserTarget) plan {
	socketPath := filepath.Join(t.unitDir, systemd.UserSocketName)
	servicePath := filepath.Join(t.unitDir, systemd.UserServiceName)
	service := systemd.UserServiceFor(t.binary, t.env)
	changed := false
	same := func(path, doc string) func() bool {
		return func() bool { b, err := os.ReadFile(path); return err == nil && bytes.Equal(b, []byte(doc)) }
	}
	write := func(path, doc string) func(context.Context) error {
		return func(context.Context) error {
			changed = true
			return fsx.WriteFile(path, []byte(doc), 0o644)
		}
	}
	reloadDue := func() bool {
		return changed || !same(socketPath, systemd.UserSocket)() || !same(servicePath, service)()
	}
	var p plan
	if strings.Contains(t.binary, string(filepath.Separator)+"go-build") {
		p.notes = append(p.notes, "Warning: the unit runs "+t.binary+", a temporary build (go run) that will vanish; "+
			"install keychain-auth first (go install ./cmd/keychain-auth, or a package) and run install-service from there.")
	}
	p.steps = append(p.steps,
		mkdirStep(t.unitDir, 0o755),
		step{
			show: fmt.Sprintf("write %s (0644): contrib/systemd/user/%s", shellQuote(socketPath), systemd.UserSocketName),
			done: same(socketPath, systemd.UserSocket),
			do:   write(socketPath, systemd.UserSocket),
		},
		step{
			show: fmt.Sprintf("write %s (0644): contrib/systemd/user/%s with ExecStart=%s", shellQuote(servicePath),
				systemd.UserServiceName, shellQuote(t.binary)),
			done: same(servicePath, service),
			do:   write(servicePath, service),
		},
	)
	if !t.systemd {
		p.notes = append(p.notes, "No systemd user manager answers for this session (systemctl --user), so nothing was enabled.\n"+
			"Where systemd runs your session, enable it with:\n  systemctl --user daemon-reload && systemctl --user enable --now keychain-auth.socket\n"+
			"Otherwise start the daemon from your session's autostart with: "+shellQuote(t.binary)+" start")
		return p
	}
	p.steps = append(p.steps,
		step{
			show: "systemctl --user daemon-reload",
			done: func() bool { return !reloadDue() },
			do:   func(ctx context.Context) error { return runTool(ctx, "systemctl", "--user", "daemon-reload") },
		},
		step{
			show: "systemctl --user enable --now " + systemd.UserSocketName,
			done: func() bool {
				return systemctlUser("is-enabled", "--quiet", systemd.UserSocketName) &&
					systemctlUser("is-active", "--quiet", systemd.UserSocketName)
			},
			do: func(ctx context.Context) error {
				return runTool(ctx, "systemctl", "--user", "enable", "--now", systemd.UserSocketName)
			},
		},
		step{
			show: "systemctl --user try-restart " + systemd.UserServiceName + "   # only if it runs an older unit",
			done: func() bool { return !changed },
			do: func(ctx context.Context) error {
				return runTool(ctx, "systemctl", "--user", "try-restart", systemd.UserServiceName)
			},
		},
	)
	p.notes = append(p.notes, "systemd listens on "+t.socket+" and starts the daemon at the first connection.\n"+
		"  status: systemctl --user status keychain-auth.socket keychain-auth.service\n"+
		"  log:    journalctl --user -u keychain-auth.service\n"+
		"  check:  keychain-auth doctor\n"+
		"With the file backend the daemon needs its passphrase as a systemd credential: see the comment in "+servicePath)
	return p
}

// systemdUserUninstallPlan stops and disables the units, then removes them.
func systemdUserUninstallPlan(t systemdUserTarget) plan {
	socketPath := filepath.Join(t.unitDir, systemd.UserSocketName)
	servicePath := filepath.Join(t.unitDir, systemd.UserServiceName)
	var p plan
	if t.systemd {
		p.steps = append(p.steps, step{
			show: "systemctl --user disable --now " + systemd.UserSocketName + " " + systemd.UserServiceName,
			done: func() bool { return !exists(socketPath) && !exists(servicePath) },
			do: func(ctx context.Context) error {
				return runTool(ctx, "systemctl", "--user", "disable", "--now", systemd.UserSocketName, systemd.UserServiceName)
			},
		})
	}
	p.steps = append(p.steps, removeStep(socketPath, false), removeStep(servicePath, false))
	if t.systemd {
		p.steps = append(p.steps, step{
			show: "systemctl --user daemon-reload",
			do:   func(ctx context.Context) error { return runTool(ctx, "systemctl", "--user", "daemon-reload") },
		})
	}
	p.notes = append(p.notes, "The store, config.json and the audit log were kept; the executable "+t.binary+" too.")
	return p
}

// serviceInstalled reports whether install-service wrote the user units.
func (a *app) serviceInstalled() bool {
	t, err := a.systemdUserTarget()
	return err == nil && exists(filepath.Join(t.unitDir, systemd.UserSocketName))
}

// serviceFindings are doctor's checks of the systemd user units.
func (a *app) serviceFindings() []finding {
	t, err := a.systemdUserTarget()
	if err != nil {
		return []finding{{Check: "service", Severity: sevProblem, Detail: err.Error(), Fix: "set HOME"}}
	}
	return systemdUserFindings(t)
}

func systemdUserFindings(t systemdUserTarget) []finding {
	socketPath := filepath.Join(t.unitDir, systemd.UserSocketName)
	servicePath := filepath.Join(t.unitDir, systemd.UserServiceName)
	f := func(sev, subject, detail, fix string) []finding {
		return []finding{{Check: "service", Severity: sev, Subject: subject, Detail: detail, Fix: fix}}
	}
	if !exists(socketPath) || !exists(servicePath) {
		return f(sevWarning, t.unitDir, "the systemd user units are not installed: the daemon does not start by itself",
			"keychain-auth install-service")
	}
	if bin := execStartBinary(servicePath); bin != "" && !exists(bin) {
		return f(sevProblem, servicePath, "its ExecStart= runs "+bin+", which does not exist",
			"run install-service again with the keychain-auth you use now: keychain-auth install-service")
	}
	if !t.systemd {
		return f(sevInfo, socketPath, "installed; no systemd user manager answers, so whether it is enabled is unknown", "")
	}
	// A connection to the socket succeeds even when the daemon then fails
	// to start (systemd accepted it), so the daemon check alone can pass.
	if systemctlUser("is-failed", "--quiet", systemd.UserServiceName) {
		return f(sevProblem, servicePath, "the daemon failed to start under systemd (with the file store: no passphrase?)",
			"journalctl --user -u "+systemd.UserServiceName+" says why; then: systemctl --user reset-failed "+systemd.UserServiceName)
	}
	if !systemctlUser("is-enabled", "--quiet", systemd.UserSocketName) {
		return f(sevProblem, socketPath, "installed but not enabled: it will not listen after the next login",
			"systemctl --user enable --now "+systemd.UserSocketName)
	}
	return f(sevOK, socketPath, "installed and enabled", "")
}

// execStartBinary is the program ExecStart= runs in a unit file, or "".
func execStartBinary(unit string) string {
	b, err := os.ReadFile(unit)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			v = strings.TrimLeft(v, "@-:+!")
			if strings.HasPrefix(v, `"`) {
				if end := strings.Index(v[1:], `"`); end >= 0 {
					return v[1 : end+1]
				}
			}
			bin, _, _ := strings.Cut(v, " ")
			return bin
		}
	}
	return ""
}
