package paths

import (
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestWindowsUserLayout(t *testing.T) {
	l, err := User(Env{Getenv: envOf(map[string]string{
		"APPDATA": `C:\Users\u\AppData\Roaming`, "LOCALAPPDATA": `C:\Users\u\AppData\Local`,
	}), Home: `C:\Users\u`})
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		l.ConfigFile:  `C:\Users\u\AppData\Roaming\keychain-auth\config.json`,
		l.PendingFile: `C:\Users\u\AppData\Roaming\keychain-auth\pending.json`,
		l.AuditFile:   `C:\Users\u\AppData\Local\keychain-auth\audit.log`,
		l.StoreFile:   `C:\Users\u\AppData\Local\keychain-auth\keyring.json`,
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	sid, err := CurrentSID()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sid, "S-1-") || l.SocketPath != PipeName(sid) {
		t.Errorf("socket %s, SID %s: want the pipe named after the SID", l.SocketPath, sid)
	}
}

func TestWindowsUserLayoutFallsBackToHome(t *testing.T) {
	l, err := User(Env{Getenv: envOf(map[string]string{EnvSocket: `\\.\pipe\other`}), Home: `C:\Users\u`})
	if err != nil {
		t.Fatal(err)
	}
	if l.ConfigDir != `C:\Users\u\AppData\Roaming\keychain-auth` || l.StateDir != `C:\Users\u\AppData\Local\keychain-auth` || l.SocketPath != `\\.\pipe\other` {
		t.Errorf("got config %s state %s socket %s", l.ConfigDir, l.StateDir, l.SocketPath)
	}
	if _, err := User(Env{Getenv: envOf(nil)}); err == nil {
		t.Error("no APPDATA and no home: want an error")
	}
}
