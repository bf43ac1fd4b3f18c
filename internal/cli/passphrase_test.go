package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// The passphrase comes from --passphrase-file first, then the systemd
// credential, then the environment.
func TestPassphraseSources(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "passphrase"), []byte("from-credential\n"), 0o600)
	flagFile := filepath.Join(dir, "flag")
	os.WriteFile(flagFile, []byte("from-flag\r\n"), 0o600)
	env := map[string]string{"CREDENTIALS_DIRECTORY": creds, "KEYCHAIN_AUTH_PASSPHRASE": "from-env"}
	a := &app{getenv: func(k string) string { return env[k] }}
	check := func(flag, want string) {
		t.Helper()
		p, err := a.passphrase(flag, false)
		if err != nil {
			t.Fatal(err)
		}
		if string(p) != want {
			// Test values only: these are not secrets.
			t.Fatalf("passphrase = %q, want %q", p, want)
		}
	}
	check(flagFile, "from-flag")
	check("", "from-credential")
	// A credentials directory without ours (another service's) is skipped.
	os.Remove(filepath.Join(creds, "passphrase"))
	check("", "from-env")
	os.WriteFile(filepath.Join(creds, "passphrase"), []byte("\n"), 0o600)
	if _, err := a.passphrase("", false); err == nil {
		t.Fatal("an empty credential was accepted")
	}
}
