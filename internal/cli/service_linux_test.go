package cli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeSystemctl puts a systemctl on PATH that logs its arguments and keeps
// the socket unit's enabled/active state in files.
func fakeSystemctl(t *testing.T) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	st := filepath.Join(dir, "state")
	script := `#!/bin/sh
echo "$*" >> '` + log + `'
[ "$1" = --user ] || exit 9
shift
case "$1" in
is-enabled) test -e '` + st + `.enabled' ;;
is-active) test -e '` + st + `.active' ;;
enable) touch '` + st + `.enabled' '` + st + `.active' ;;
disable) rm -f '` + st + `.enabled' '` + st + `.active' ;;
is-failed) test -e '` + st + `.failed' ;;
daemon-reload|try-restart) ;;
*) exit 9 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// changes lists the logged systemctl calls that change something.
func changes(t *testing.T, log string) []string {
	var out []string
	for _, c := range calls(t, log) {
		if !strings.Contains(c, " is-enabled ") && !strings.Contains(c, " is-active ") {
			out = append(out, c)
		}
	}
	return out
}

func TestInstallServiceSystemdUser(t *testing.T) {
	log := fakeSystemctl(t)
	a, out, _, _ := testApp(t)
	home := a.getenv("HOME")
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "cfg"), "XDG_RUNTIME_DIR": "/run/user/1000",
		"KEYCHAIN_AUTH_PASSPHRASE": "hunter2-secret"}
	a.getenv = func(k string) string { return env[k] }
	unitDir := filepath.Join(home, "cfg", "systemd", "user")
	socketUnit := filepath.Join(unitDir, "keychain-auth.socket")
	serviceUnit := filepath.Join(unitDir, "keychain-auth.service")
	run := func(uninstall, printOnly bool) {
		t.Helper()
		out.Reset()
		tgt, err := a.systemdUserTarget()
		if err != nil {
			t.Fatal(err)
		}
		tgt.systemd = true
		p := systemdUserPlan(tgt)
		if uninstall {
			p = systemdUserUninstallPlan(tgt)
		}
		if err := a.runPlan(context.Background(), "install-service", p, printOnly); err != nil {
			t.Fatalf("install-service: %v\n%s", err, out)
		}
	}

	run(false, true)
	if exists(unitDir) {
		t.Fatal("--print created the unit directory")
	}
	if got := changes(t, log); len(got) != 0 {
		t.Errorf("--print ran systemctl %q", got)
	}
	for _, want := range []string{"\nsystemctl --user enable --now keychain-auth.socket\n", "\nwrite " + socketUnit + " (0644)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--print does not show %q:\n%s", want, out)
		}
	}

	run(false, false)
	svc, err := os.ReadFile(serviceUnit)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := selfExecutable()
	for _, want := range []string{"\nExecStart=" + self + " start --mode user", "\nEnvironment=\"XDG_CONFIG_HOME=" + filepath.Join(home, "cfg") + "\"\n", "\nType=notify\n"} {
		if !strings.Contains(string(svc), want) {
			t.Errorf("service unit lacks %q", want)
		}
	}
	if strings.Contains(string(svc), "hunter2") || strings.Contains(string(svc), "PASSPHRASE") {
		t.Error("the passphrase was written into the unit")
	}
	if !exists(socketUnit) {
		t.Error("no socket unit written")
	}
	want := []string{"--user daemon-reload", "--user enable --now keychain-auth.socket", "--user try-restart keychain-auth.service"}
	if got := changes(t, log); !slices.Equal(got, want) {
		t.Errorf("first install ran systemctl %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "done  systemctl --user enable --now keychain-auth.socket") {
		t.Errorf("install does not say what it did:\n%s", out)
	}

	run(false, false)
	if got := changes(t, log); len(got) != 0 {
		t.Errorf("second install with nothing changed ran systemctl %q", got)
	}

	env["XDG_DATA_HOME"] = filepath.Join(home, "data")
	run(false, false)
	want = []string{"--user daemon-reload", "--user try-restart keychain-auth.service"}
	if got := changes(t, log); !slices.Equal(got, want) {
		t.Errorf("install after a change ran systemctl %q, want %q", got, want)
	}

	run(true, true)
	if !exists(serviceUnit) || len(changes(t, log)) != 0 {
		t.Fatal("--uninstall --print changed something")
	}
	run(true, false)
	if exists(serviceUnit) || exists(socketUnit) {
		t.Error("--uninstall left the units")
	}
	want = []string{"--user disable --now keychain-auth.socket keychain-auth.service", "--user daemon-reload"}
	if got := changes(t, log); !slices.Equal(got, want) {
		t.Errorf("uninstall ran systemctl %q, want %q", got, want)
	}
}

// Without a user manager the units are written and the user is told how to
// enable them; systemctl is not run.
func TestInstallServiceWithoutUserManager(t *testing.T) {
	log := fakeSystemctl(t)
	a, out, _, _ := testApp(t)
	tgt, err := a.systemdUserTarget()
	if err != nil {
		t.Fatal(err)
	}
	tgt.systemd = false
	if err := a.runPlan(context.Background(), "install-service", systemdUserPlan(tgt), false); err != nil {
		t.Fatal(err)
	}
	if got := changes(t, log); len(got) != 0 {
		t.Errorf("ran systemctl %q without a user manager", got)
	}
	if !strings.Contains(out.String(), "systemctl --user enable --now keychain-auth.socket") {
		t.Errorf("does not say how to enable it:\n%s", out)
	}
	if !exists(filepath.Join(tgt.unitDir, "keychain-auth.service")) {
		t.Error("unit not written")
	}
}

// doctor's view of the user service follows what systemctl says.
func TestDoctorServiceFindings(t *testing.T) {
	log := fakeSystemctl(t)
	state := filepath.Join(filepath.Dir(log), "state")
	a, out, _, _ := testApp(t)
	tgt, err := a.systemdUserTarget()
	if err != nil {
		t.Fatal(err)
	}
	tgt.systemd = true
	sev := func() (string, string) {
		t.Helper()
		f := systemdUserFindings(tgt)
		if len(f) != 1 {
			t.Fatalf("findings: %+v", f)
		}
		return f[0].Severity, f[0].Fix
	}
	if s, fix := sev(); s != sevWarning || fix != "keychain-auth install-service" {
		t.Errorf("not installed: %s %q", s, fix)
	}
	if err := a.runPlan(context.Background(), "install-service", systemdUserPlan(tgt), false); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s, _ := sev(); s != sevOK {
		t.Errorf("installed and enabled: %s", s)
	}
	os.Remove(state + ".enabled")
	if s, fix := sev(); s != sevProblem || !strings.Contains(fix, "enable --now keychain-auth.socket") {
		t.Errorf("not enabled: %s %q", s, fix)
	}
	os.WriteFile(state+".failed", nil, 0o600)
	if s, fix := sev(); s != sevProblem || !strings.Contains(fix, "journalctl --user -u keychain-auth.service") {
		t.Errorf("failed: %s %q", s, fix)
	}
	os.Remove(state + ".failed")
	tgt.binary = filepath.Join(t.TempDir(), "gone")
	if err := a.runPlan(context.Background(), "install-service", systemdUserPlan(tgt), false); err != nil {
		t.Fatal(err)
	}
	if s, fix := sev(); s != sevProblem || !strings.Contains(fix, "install-service") {
		t.Errorf("ExecStart binary gone: %s %q", s, fix)
	}
}
