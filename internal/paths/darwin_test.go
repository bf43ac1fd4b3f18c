//go:build !windows

// The macOS conventions are tested on every Unix-like OS; on Windows,
// path/filepath joins with backslashes, which macOS paths never have.

package paths

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMacUserSocketFitsSunPath(t *testing.T) {
	const uid = 501
	typical := "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/"
	long := "/Users/someone/" + strings.Repeat("x", 80)
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"typical TMPDIR", map[string]string{"TMPDIR": typical},
			filepath.Join(typical, "keychain-auth-501", "agent.sock")},
		{"no TMPDIR", map[string]string{}, "/tmp/keychain-auth-501/agent.sock"},
		{"long TMPDIR falls back to /tmp", map[string]string{"TMPDIR": long}, "/tmp/keychain-auth-501/agent.sock"},
		{"long XDG_RUNTIME_DIR falls back to /tmp", map[string]string{"XDG_RUNTIME_DIR": long, "TMPDIR": typical},
			"/tmp/keychain-auth-501/agent.sock"},
		{"short XDG_RUNTIME_DIR kept", map[string]string{"XDG_RUNTIME_DIR": "/run/u"}, "/run/u/keychain-auth/agent.sock"},
	} {
		got := macUserSocket(Env{Getenv: mapEnv(c.env), Home: "/Users/someone", UID: uid})
		if got != c.want {
			t.Errorf("%s: socket = %s, want %s", c.name, got, c.want)
		}
		if len(got) > maxBSDSocketPath {
			t.Errorf("%s: %d-byte socket path does not fit sun_path", c.name, len(got))
		}
	}
}

func TestMacUserSocketBoundary(t *testing.T) {
	// "<dir>/keychain-auth-501/agent.sock" is len(dir)+28 bytes.
	suffix := len("/keychain-auth-501/agent.sock")
	fits := "/" + strings.Repeat("a", maxBSDSocketPath-suffix-1)
	over := fits + "a"
	e := func(tmp string) Env { return Env{Getenv: mapEnv(map[string]string{"TMPDIR": tmp}), UID: 501} }
	if got := macUserSocket(e(fits)); len(got) != maxBSDSocketPath || !strings.HasPrefix(got, fits) {
		t.Errorf("a %d-byte path was not kept: %s", maxBSDSocketPath, got)
	}
	if got := macUserSocket(e(over)); got != "/tmp/keychain-auth-501/agent.sock" {
		t.Errorf("a %d-byte path was kept: %s", maxBSDSocketPath+1, got)
	}
}

func TestMacLocations(t *testing.T) {
	e := Env{Home: "/Users/me"}
	if got := filepath.Join(e.Home, macConfigBase, "keychain-auth"); got != "/Users/me/Library/Application Support/keychain-auth" {
		t.Errorf("config dir = %s", got)
	}
	if got := macAuditDir(e); got != "/Users/me/Library/Logs/keychain-auth" {
		t.Errorf("audit dir = %s", got)
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
