//go:build linux

package paths

import (
	"path/filepath"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestUserLayout(t *testing.T) {
	tests := []struct {
		name              string
		env               map[string]string
		config, audit     string
		socket, storeFile string
	}{
		{"defaults", map[string]string{},
			"/home/u/.config/keychain-auth/config.json", "/home/u/.local/share/keychain-auth/audit.log",
			"/tmp/keychain-auth-1000/agent.sock", "/home/u/.keychain-auth/keyring.json"},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/x/c", "XDG_DATA_HOME": "/x/d", "XDG_RUNTIME_DIR": "/run/user/1000"},
			"/x/c/keychain-auth/config.json", "/x/d/keychain-auth/audit.log",
			"/run/user/1000/keychain-auth/agent.sock", "/home/u/.keychain-auth/keyring.json"},
		{"relative xdg ignored", map[string]string{"XDG_CONFIG_HOME": "rel", "TMPDIR": "/var/tmp"},
			"/home/u/.config/keychain-auth/config.json", "/home/u/.local/share/keychain-auth/audit.log",
			"/var/tmp/keychain-auth-1000/agent.sock", "/home/u/.keychain-auth/keyring.json"},
		{"socket override", map[string]string{EnvSocket: "/s/a.sock", "XDG_RUNTIME_DIR": "/run/user/1000"},
			"/home/u/.config/keychain-auth/config.json", "/home/u/.local/share/keychain-auth/audit.log",
			"/s/a.sock", "/home/u/.keychain-auth/keyring.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := User(Env{Getenv: envOf(tt.env), Home: "/home/u", UID: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if l.ConfigFile != tt.config || l.AuditFile != tt.audit || l.SocketPath != tt.socket || l.StoreFile != tt.storeFile {
				t.Errorf("got config=%s audit=%s socket=%s store=%s", l.ConfigFile, l.AuditFile, l.SocketPath, l.StoreFile)
			}
			if filepath.Dir(l.StoreVersionFile) != filepath.Dir(l.AuditFile) {
				t.Errorf("store version file %s is not in the data directory", l.StoreVersionFile)
			}
			if l.PendingFile != "" && l.PendingFile[:len(l.ConfigDir)] != l.ConfigDir {
				t.Errorf("pending %s not in config dir %s", l.PendingFile, l.ConfigDir)
			}
		})
	}
}

func TestUserLayoutNeedsHome(t *testing.T) {
	if _, err := User(Env{Getenv: envOf(nil), UID: 1}); err == nil {
		t.Fatal("no HOME: want error")
	}
}

func TestSystemLayoutRelocates(t *testing.T) {
	l := System(Env{Getenv: envOf(map[string]string{EnvSystemRoot: "/tmp/root", EnvSocket: "/elsewhere"})})
	want := map[string]string{
		l.ConfigFile:       "/tmp/root/etc/keychain-auth/config.json",
		l.PendingFile:      "/tmp/root/var/lib/keychain-auth/pending.json",
		l.KeyFile:          "/tmp/root/var/lib/keychain-auth/master.key",
		l.StoreVersionFile: "/tmp/root/var/lib/keychain-auth/keyring.version",
		l.SocketPath:       "/tmp/root/run/keychain-auth/agent.sock",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("got %s, want %s", got, w)
		}
	}
	if d := System(Env{Getenv: envOf(nil)}); d.ConfigFile != "/etc/keychain-auth/config.json" {
		t.Errorf("default root: %s", d.ConfigFile)
	}
}

func TestSystemUserAndBinary(t *testing.T) {
	e := Env{Getenv: envOf(map[string]string{EnvSystemRoot: "/r", EnvSystemUser: "kad-test"})}
	if got := System(e).SystemUser; got != "kad-test" {
		t.Errorf("system user %q, want kad-test", got)
	}
	if got := SystemBinary(e); got != "/r/usr/local/bin/keychain-auth" {
		t.Errorf("binary %s", got)
	}
	if got := SystemUnit(e); got != "/r/etc/systemd/system/keychain-auth.service" {
		t.Errorf("unit %s", got)
	}
	if got := System(Env{Getenv: envOf(nil)}).SystemUser; got != DefaultSystemUser {
		t.Errorf("default system user %q", got)
	}
	if l, _ := User(Env{Getenv: envOf(nil), Home: "/h"}); l.SystemUser != "" {
		t.Errorf("user layout has system user %q", l.SystemUser)
	}
}
