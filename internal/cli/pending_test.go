package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/config"
)

// testApp is an app whose HOME and XDG directories are private to the test.
func testApp(t *testing.T) (*app, *bytes.Buffer, *bytes.Buffer, string) {
	t.Helper()
	home := t.TempDir()
	env := map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR": filepath.Join(home, "run"),
	}
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }, uid: os.Getuid()}
	return a, &out, &errb, filepath.Join(home, ".config", "keychain-auth")
}

// A turned-away process chooses its own command line; printing it must not
// let it drive the user's terminal (clear the screen, fake other rows).
func TestListPendingNeutralisesControlCharacters(t *testing.T) {
	t.Parallel()
	a, out, _, dir := testApp(t)
	hostile := []string{"/tmp/evil", "\x1b[2J\x1b[Hall clear", "line\nbreak", "tab\there", "\u009b31m"}
	rec := config.PendingRecord{
		Hash:        "sha256:" + strings.Repeat("ab", 32),
		Path:        "/tmp/evil\x1b]0;title\x07",
		CommandLine: hostile,
	}
	if err := config.RecordPending(context.Background(), filepath.Join(dir, "pending.json"), rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code := a.run(context.Background(), []string{"list-pending"}); code != exitOK {
		t.Fatalf("list-pending: exit %d", code)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07\t\u009b") {
		t.Errorf("control characters reached the terminal: %q", got)
	}
	if lines := strings.Count(got, "\n"); lines != 4 {
		t.Errorf("a record must stay on one row; got %d lines:\n%s", lines, got)
	}
	if !strings.Contains(got, "?[2J?[Hall clear") {
		t.Errorf("the command line should still be shown, made harmless: %q", got)
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "just now"},
		{42 * time.Second, "42s ago"},
		{5*time.Minute + 10*time.Second, "5m ago"},
		{23 * time.Hour, "23h ago"},
		{72 * time.Hour, "2026-11-26T12:00:00Z"},
	} {
		if got := ago(now, now.Add(-c.d)); got != c.want {
			t.Errorf("ago(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
