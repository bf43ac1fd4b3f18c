package e2e

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/protocol"
)

// A keyring.json rolled back to an older copy is refused at start, with a
// message that says so, and left as it is; the version that catches it is
// kept in the data directory, not next to the store.
func TestRolledBackStoreIsRefusedAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "db", "--write", "db")
	d := e.start()
	wantStatus(t, e.one(client, req("write", "db", []string{"k"}, "values", []string{"old-value"})), protocol.StatusSuccess, "")
	old := readFile(t, e.storeFile())
	wantStatus(t, e.one(client, req("write", "db", []string{"k"}, "values", []string{"new-value"})), protocol.StatusSuccess, "")
	d.stop()

	if !exists(e.path(".local", "share", "keychain-auth", "keyring.version")) {
		t.Error("no keyring.version in the data directory")
	}
	if exists(e.storeFile() + ".version") {
		t.Error("the version file is next to the store, where a restore of that directory would roll it back too")
	}

	if err := os.WriteFile(e.storeFile(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	d = e.spawn()
	if code := d.wait(); code != 1 {
		t.Fatalf("start with a rolled-back store: exit %d, want 1\n%s", code, d.stderr)
	}
	msg := d.stderr.String()
	if !strings.Contains(msg, "whole-store integrity check") || !strings.Contains(msg, "rolled back") {
		t.Errorf("start should say the store was rolled back:\n%s", msg)
	}
	if strings.Contains(msg, "old-value") || strings.Contains(msg, "new-value") {
		t.Errorf("a value in the daemon's output:\n%s", msg)
	}
	if !bytes.Equal(readFile(t, e.storeFile()), old) {
		t.Error("the refused store file was changed")
	}
}
