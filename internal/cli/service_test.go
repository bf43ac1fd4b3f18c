//go:build unix

package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/contrib/launchd"
)

// fakeLaunchctl puts a launchctl on PATH that logs its arguments and keeps
// "loaded" state in a file, as bootstrap and bootout would.
func fakeLaunchctl(t *testing.T) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	state := filepath.Join(dir, "loaded")
	script := `#!/bin/sh
echo "$*" >> '` + log + `'
case "$1" in
print) test -e '` + state + `' ;;
bootstrap) touch '` + state + `' ;;
bootout) rm -f '` + state + `' ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "launchctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func calls(t *testing.T, log string) []string {
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && !strings.HasPrefix(l, "print ") {
			out = append(out, l)
		}
	}
	os.Remove(log)
	return out
}

func TestInstallServiceLaunchd(t *testing.T) {
	log := fakeLaunchctl(t)
	a, out, _, _ := testApp(t)
	home := a.getenv("HOME")
	env := map[string]string{"HOME": home, "TMPDIR": "/var/folders/ab/T/", "KEYCHAIN_AUTH_PASSPHRASE": "hunter2-secret"}
	a.getenv = func(k string) string { return env[k] }
	a.uid = 501
	plistPath := filepath.Join(home, "Library", "LaunchAgents", launchd.Label+".plist")
	install := func(printOnly bool) {
		t.Helper()
		out.Reset()
		tgt, err := a.launchdTarget()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.runPlan(context.Background(), "install-service", launchdPlan(tgt), printOnly); err != nil {
			t.Fatalf("install-service: %v\n%s", err, out)
		}
	}

	install(true)
	if _, err := os.Stat(plistPath); !os.IsNotExist(err) {
		t.Fatalf("--print wrote the plist (stat: %v)", err)
	}
	if got := calls(t, log); len(got) != 0 {
		t.Errorf("--print ran launchctl %q", got)
	}
	if !strings.Contains(out.String(), "launchctl bootstrap gui/501 ") {
		t.Errorf("--print does not show the bootstrap command:\n%s", out)
	}

	install(false)
	doc, err := os.ReadFile(plistPath)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	for _, want := range []string{"<string>" + self + "</string>", "<key>TMPDIR</key>", "/var/folders/ab/T/",
		filepath.Join(home, "Library", "Logs", "keychain-auth", "daemon.log")} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("plist lacks %q", want)
		}
	}
	if strings.Contains(string(doc), "hunter2") || strings.Contains(string(doc), "PASSPHRASE") {
		t.Error("the passphrase was written into the plist")
	}
	if fi, err := os.Stat(filepath.Join(home, "Library", "Logs", "keychain-auth")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("log directory: %v %v", fi, err)
	}
	if got := calls(t, log); len(got) != 1 || got[0] != "bootstrap gui/501 "+plistPath {
		t.Errorf("first install ran launchctl %q, want one bootstrap", got)
	}

	install(false)
	if got := calls(t, log); len(got) != 0 {
		t.Errorf("second install with nothing changed ran launchctl %q", got)
	}

	env["TMPDIR"] = "/var/folders/cd/T/"
	install(false)
	if got := calls(t, log); len(got) != 2 || got[0] != "bootout gui/501/"+launchd.Label || !strings.HasPrefix(got[1], "bootstrap ") {
		t.Errorf("install after a change ran launchctl %q, want bootout then bootstrap", got)
	}
}
