package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verify runs `systemd-analyze --user verify` on the user units with
// ExecStart= pointing at binary, and returns what it said.
func verify(t *testing.T, socket, service string) (string, error) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-analyze is missing, and CI must verify the units: install systemd")
		}
		t.Skip("SKIPPED: systemd-analyze is not installed; the units are NOT verified (install systemd to check them)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, UserSocketName), []byte(socket), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, UserServiceName), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	// --man=no: the man pages named in Documentation= are installed by the
	// packages, not on the machine running the tests.
	cmd := exec.Command(sa, "--user", "verify", "--man=no", UserSocketName, UserServiceName)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+run, "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func executable(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// TestUserUnitsVerify: systemd accepts both units without a warning (verify
// exits 0 even on unknown settings, so any output is a failure).
func TestUserUnitsVerify(t *testing.T) {
	out, err := verify(t, UserSocket, UserServiceFor(executable(t), map[string]string{"XDG_CONFIG_HOME": "/home/u/my config", "XDG_DATA_HOME": "/home/u/100%"}))
	if err != nil || out != "" {
		t.Fatalf("systemd-analyze --user verify: %v\n%s", err, out)
	}
}

// TestUserUnitsVerifyCatchesMistakes: the check above can fail.
func TestUserUnitsVerifyCatchesMistakes(t *testing.T) {
	bad := strings.Replace(UserServiceFor(executable(t), map[string]string{"XDG_CONFIG_HOME": "/home/u/my config", "XDG_DATA_HOME": "/home/u/100%"}), "Type=notify", "Type=notifyy", 1)
	if out, err := verify(t, UserSocket, bad); err == nil && out == "" {
		t.Fatal("verify accepted Type=notifyy")
	}
}

// TestSystemUnitVerifies: systemd accepts the system unit as shipped (with
// ExecStart= naming an executable that exists here), Type=notify included:
// start reports READY=1 in system mode as in user mode.
func TestSystemUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-analyze is missing, and CI must verify the units: install systemd")
		}
		t.Skip("SKIPPED: systemd-analyze is not installed; the system unit is NOT verified")
	}
	unit := strings.Replace(SystemUnit, "\nExecStart="+DefaultBinary+" ", "\nExecStart="+executable(t)+" ", 1)
	if !strings.Contains(unit, "\nType=notify\n") || unit == SystemUnit {
		t.Fatal("the system unit lost Type=notify or its ExecStart= line")
	}
	check := func(unit string) string {
		path := filepath.Join(t.TempDir(), "keychain-auth.service")
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sa, "verify", "--man=no", path)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		if err != nil && len(out) == 0 {
			out = []byte(err.Error())
		}
		return strings.TrimSpace(string(out))
	}
	if out := check(unit); out != "" {
		t.Fatalf("systemd-analyze verify: %s", out)
	}
	if out := check(strings.Replace(unit, "Type=notify", "Type=notifyy", 1)); out == "" {
		t.Fatal("verify accepted Type=notifyy: the check above cannot fail")
	}
}

func TestUserUnitsContract(t *testing.T) {
	for _, want := range []string{"\nListenStream=%t/keychain-auth/agent.sock\n", "\nSocketMode=0600\n", "\nDirectoryMode=0700\n"} {
		if !strings.Contains(UserSocket, want) {
			t.Errorf("keychain-auth.socket lacks %q", strings.TrimSpace(want))
		}
	}
	for _, want := range []string{"\nType=notify\n", "\nExecStart=" + UserDefaultBinary + " start --mode user ", "\nNoNewPrivileges=yes\n"} {
		if !strings.Contains(UserService, want) {
			t.Errorf("keychain-auth.service lacks %q", strings.TrimSpace(want))
		}
	}
}

func TestUserServiceFor(t *testing.T) {
	for bin, want := range map[string]string{
		"/opt/ka/keychain-auth": "\nExecStart=/opt/ka/keychain-auth start ",
		"/home/a b/bin/ka":      "\nExecStart=\"/home/a b/bin/ka\" start ",
		"/home/x/100%/$HOME/ka": "\nExecStart=/home/x/100%%/$$HOME/ka start ",
		"/home/q\"uote/ka":      "\nExecStart=\"/home/q\\\"uote/ka\" start ",
	} {
		if got := UserServiceFor(bin, nil); !strings.Contains(got, want) {
			t.Errorf("UserServiceFor(%q): no %q in\n%s", bin, want, got)
		}
	}
}

func TestUserServiceForEnvironment(t *testing.T) {
	got := UserServiceFor("/bin/ka", map[string]string{"XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c x"})
	want := "\nExecStart=/bin/ka start --mode user --log-format json\nEnvironment=\"XDG_CONFIG_HOME=/c x\"\nEnvironment=\"XDG_DATA_HOME=/d\"\n"
	if !strings.Contains(got, want) {
		t.Fatalf("no %q in\n%s", want, got)
	}
}
