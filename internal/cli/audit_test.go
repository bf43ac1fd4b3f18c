package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
)

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1h":                   now.Add(-time.Hour),
		"30m":                  now.Add(-30 * time.Minute),
		"2d":                   now.AddDate(0, 0, -2),
		"2026-11-29T10:00:00Z": time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "2026-11-29", ""} {
		var ue usageError
		if _, err := parseSince(bad, now); !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}

func TestBinaryFilter(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "tool")
	os.WriteFile(bin, []byte("x"), 0o700)
	rec := audit.Record{BinaryPath: bin, BinaryHash: "sha256:abcdef0123"}
	other := audit.Record{BinaryPath: "/usr/bin/other", BinaryHash: "sha256:0123abcdef"}
	for _, arg := range []string{"abcdef", "sha256:ABCDEF01", bin} {
		m, err := binaryMatcher(arg)
		if err != nil || !m(rec) || m(other) {
			t.Errorf("%s: err %v", arg, err)
		}
	}
	if _, err := binaryMatcher("not-a-hash"); err == nil {
		t.Error("a name that is neither a file nor hex was accepted")
	}
}

func TestAuditRowIsSafeForATerminal(t *testing.T) {
	t.Parallel()
	targets := make([]string, 30)
	for i := range targets {
		targets[i] = "target"
	}
	cols := auditColumns(audit.Record{Event: audit.EventConnectDenied, Action: "read", Result: audit.ResultDenied,
		Reason: "unregistered_binary", BinaryPath: "/tmp/\x1b[2Jevil", BinaryHash: "sha256:" + strings.Repeat("a", 64),
		Targets: targets})
	row := strings.Join(cols, " ")
	if strings.ContainsRune(row, 0x1b) || !strings.Contains(row, "/tmp/?[2Jevil (aaaaaaaaaaaa)") {
		t.Errorf("row not sanitised: %q", row)
	}
	if cols[2] != "connect:read" || !strings.HasSuffix(cols[4], "…(30)") {
		t.Errorf("action %q targets %q", cols[2], cols[4])
	}
}

func TestVerifyAuditCountsInTheSingular(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Log(t.Context(), audit.Record{Event: audit.EventDaemonStart}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	a := &app{stdout: &out, stderr: &out}
	if err := a.verifyAudit(path); err != nil {
		t.Fatal(err)
	}
	if want := "audit log intact: 1 record in 1 file (" + path + ")\n"; out.String() != want {
		t.Errorf("verify printed %q, want %q", out.String(), want)
	}
}

func TestPlural(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 secrets", 1: "1 secret", 2: "2 secrets", 1000: "1000 secrets"} {
		if got := plural(n, "secret", "secrets"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}
