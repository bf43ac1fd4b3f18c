package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// An ordinary user's hard RLIMIT_MEMLOCK is finite and only root can raise
// it: the daemon must not tell them to run `ulimit -l unlimited` (which
// fails), and must say nothing when no swap exists for secrets to reach.
func TestMemlockNoteGivesAFixThatWorks(t *testing.T) {
	lim := unix.Rlimit{Cur: 8 << 20, Max: 8 << 20}
	n := memlockNote(lim, true)
	if n.msg == "" || n.key == "" {
		t.Fatal("no note with swap active and memory unlocked")
	}
	for _, bad := range []string{"ulimit -l", "LimitMEMLOCK"} {
		if strings.Contains(n.msg, bad) {
			t.Errorf("note suggests %q, which an ordinary user cannot do: %s", bad, n.msg)
		}
	}
	if !strings.Contains(n.msg, "limits.d") || !strings.Contains(n.msg, "system mode") {
		t.Errorf("note gives no fix that works: %s", n.msg)
	}
	if n := memlockNote(lim, false); n.msg != "" {
		t.Errorf("note without any swap: %s", n.msg)
	}
}

func TestNoteIsSaidOnceAtInfo(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	n := note{key: "memlock-8388608", msg: "memory not locked"}
	sayOnce(log, dir, n)
	sayOnce(log, dir, n)
	sayOnce(log, dir, note{key: "memlock-16777216", msg: "memory not locked"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"level=INFO", "level=DEBUG", "level=INFO"}
	if len(lines) != len(want) {
		t.Fatalf("logged %q", lines)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q, want %s", i, lines[i], w)
		}
	}
}
