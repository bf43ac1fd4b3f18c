package audit

import (
	"os"
	"strings"
	"testing"
)

// A team id is written after binary_hash when the caller has one, verifies
// and reads back; without one the line has no team_id member at all, so
// Linux logs are unchanged.
func TestTeamIDIsWrittenOnlyWhenSet(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	signed := request(1)
	signed.TeamID = "ABCDE12345"
	mustLog(t, l, signed)
	mustLog(t, l, request(2))
	l.Close()
	mustVerify(t, path, 2)
	recs := readAll(t, path)
	if recs[0].Record.TeamID != "ABCDE12345" || recs[1].Record.TeamID != "" {
		t.Errorf("team ids read back: %q, %q", recs[0].Record.TeamID, recs[1].Record.TeamID)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if !strings.Contains(lines[0], `"binary_hash":"sha256:`+strings.Repeat("ab", 32)+`","team_id":"ABCDE12345","conn"`) {
		t.Errorf("signed caller's line: %s", lines[0])
	}
	if strings.Contains(lines[1], "team_id") {
		t.Errorf("a caller without a team id got a team_id member: %s", lines[1])
	}
}

// Editing the team id of a written record breaks the chain like any field.
func TestTeamIDIsCoveredByTheHash(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	signed := request(1)
	signed.TeamID = "ABCDE12345"
	mustLog(t, l, signed)
	l.Close()
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "ABCDE12345", "ZZZZZ99999", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); err == nil {
		t.Errorf("Verify accepted an edited team id (%d records)", n)
	}
}
