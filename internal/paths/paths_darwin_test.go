package paths

import "testing"

func TestUserLayoutDarwin(t *testing.T) {
	l, err := User(Env{Getenv: mapEnv(map[string]string{"TMPDIR": "/var/folders/ab/cd/T/"}), Home: "/Users/me", UID: 501})
	if err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string][2]string{
		"config":  {l.ConfigFile, "/Users/me/Library/Application Support/keychain-auth/config.json"},
		"pending": {l.PendingFile, "/Users/me/Library/Application Support/keychain-auth/pending.json"},
		"audit":   {l.AuditFile, "/Users/me/Library/Logs/keychain-auth/audit.log"},
		"socket":  {l.SocketPath, "/var/folders/ab/cd/T/keychain-auth-501/agent.sock"},
	} {
		if c[0] != c[1] {
			t.Errorf("%s = %s, want %s", what, c[0], c[1])
		}
	}
	l, err = User(Env{Getenv: mapEnv(map[string]string{"XDG_CONFIG_HOME": "/x/c"}), Home: "/Users/me", UID: 501})
	if err != nil || l.ConfigFile != "/x/c/keychain-auth/config.json" {
		t.Errorf("XDG_CONFIG_HOME not honoured: %s, %v", l.ConfigFile, err)
	}
}
