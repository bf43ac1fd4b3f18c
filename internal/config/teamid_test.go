package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A macOS caller's team id is kept in pending.json, bounded; a record
// without one is written without the member, as before.
func TestPendingKeepsTeamID(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "pending.json")
	now := time.Now().UTC()
	ctx := context.Background()
	signed := PendingRecord{Hash: "sha256:" + strings.Repeat("a", 64), Path: "/Applications/Tool", TeamID: "ABCDE12345"}
	plain := PendingRecord{Hash: "sha256:" + strings.Repeat("b", 64), Path: "/usr/local/bin/tool"}
	hostile := PendingRecord{Hash: "sha256:" + strings.Repeat("c", 64), Path: "/tmp/x", TeamID: strings.Repeat("T", 500)}
	for _, r := range []PendingRecord{signed, plain, hostile} {
		if err := RecordPending(ctx, p, r, now); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := LoadPending(p, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[r.Path] = r.TeamID
	}
	if got["/Applications/Tool"] != "ABCDE12345" || got["/usr/local/bin/tool"] != "" || len(got["/tmp/x"]) != maxTeamID {
		t.Errorf("team ids after a round trip: %q", got)
	}
	b, _ := os.ReadFile(p)
	if n := strings.Count(string(b), `"team_id"`); n != 2 {
		t.Errorf("%d team_id members in pending.json, want 2 (none for the record without one):\n%s", n, b)
	}
}
