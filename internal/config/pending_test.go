package config

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// originalSeen is the timestamp in original-pending.json.
var originalSeen = time.Date(2026, 11, 29, 8, 15, 0, 0, time.UTC)

func TestOriginalPendingLoads(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "pending.json", readFixture(t, fixturePending))
	recs, err := LoadPending(p, originalSeen.Add(23*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records at +23h, want 1", len(recs))
	}
	r := recs[0]
	if r.Hash != hashHelper || r.Path != "/home/dev/Downloads/install-helper" ||
		!slices.Equal(r.CommandLine, []string{"/home/dev/Downloads/install-helper", "--quiet", "postinstall"}) {
		t.Errorf("record = %+v", r)
	}
	for name, got := range map[string]time.Time{"timestamp": r.Timestamp, "first_seen": r.FirstSeen, "last_seen": r.LastSeen} {
		if !got.Equal(originalSeen) {
			t.Errorf("%s = %v, want %v", name, got, originalSeen)
		}
	}
	if r.Count != 1 || r.UID != nil {
		t.Errorf("count %d uid %v", r.Count, r.UID)
	}

	recs, err = LoadPending(p, originalSeen.Add(25*time.Hour))
	if err != nil || len(recs) != 0 {
		t.Fatalf("at +25h: %d records, %v; want none", len(recs), err)
	}
	// Reading never writes: the expired record is still in the file.
	if data, _ := os.ReadFile(p); !bytes.Equal(data, readFixture(t, fixturePending)) {
		t.Fatal("LoadPending changed the file")
	}
}

func TestLoadPendingMissing(t *testing.T) {
	t.Parallel()
	recs, err := LoadPending(filepath.Join(t.TempDir(), "pending.json"), time.Now())
	if err != nil || len(recs) != 0 {
		t.Fatalf("missing file: %v, %v", recs, err)
	}
}

func TestRecordPendingUpsert(t *testing.T) {
	t.Parallel()
	orig := bytes.Replace(readFixture(t, fixturePending), []byte(`"timestamp"`), []byte(`"origin": {"tool": "v0"}, "timestamp"`), 1)
	p := writeFile(t, t.TempDir(), "pending.json", orig)
	ctx := context.Background()
	t1 := originalSeen.Add(time.Hour)
	uid := uint32(1000)
	rec := PendingRecord{Hash: hashHelper, Path: "/home/dev/Downloads/install-helper", CommandLine: []string{"install-helper", "again"},
		PID: 4242, PPID: 1, ParentPath: "/usr/bin/bash", Cwd: "/home/dev", UID: &uid}
	if err := RecordPending(ctx, p, rec, t1); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(time.Minute)
	other := PendingRecord{Hash: hashDeploy, Path: "/tmp/other"}
	if err := RecordPending(ctx, p, other, t2); err != nil {
		t.Fatal(err)
	}

	recs, err := LoadPending(p, t2)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Hash != hashDeploy || recs[1].Hash != hashHelper {
		t.Fatalf("records not one per hash, newest first: %+v", recs)
	}
	r := recs[1]
	if r.Count != 2 || !r.FirstSeen.Equal(originalSeen) || !r.LastSeen.Equal(t1) || !r.Timestamp.Equal(t1) {
		t.Errorf("repeat: count %d first %v last %v timestamp %v", r.Count, r.FirstSeen, r.LastSeen, r.Timestamp)
	}
	if r.PID != 4242 || r.PPID != 1 || r.ParentPath != "/usr/bin/bash" || r.Cwd != "/home/dev" ||
		r.UID == nil || *r.UID != 1000 || !slices.Equal(r.CommandLine, rec.CommandLine) {
		t.Errorf("repeat did not take the new sighting's details: %+v", r)
	}
	if got := compactJSON(t, r.Extra()["origin"]); got != `{"tool":"v0"}` {
		t.Errorf("unknown field = %q", got)
	}
	n := recs[0]
	if n.Count != 1 || !n.FirstSeen.Equal(t2) || n.CommandLine == nil {
		t.Errorf("new record = %+v", n)
	}

	data, _ := os.ReadFile(p)
	if bytes.Contains(data, []byte("null")) || !bytes.HasSuffix(data, []byte("]\n")) {
		t.Errorf("file:\n%s", data)
	}
	assertMode(t, p, 0o600)
	// Records written by us parse again to the same thing.
	again, err := ParsePending(data, p)
	if err != nil || len(again) != 2 || again[1].Count != 2 {
		t.Fatalf("re-parse: %+v, %v", again, err)
	}
}

func TestRecordPendingCountsAdmittedAttempts(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "sub", "pending.json")
	now := time.Now()
	ctx := context.Background()
	RecordPending(ctx, p, PendingRecord{Hash: hashAgent, Count: 5}, now)
	RecordPending(ctx, p, PendingRecord{Hash: hashAgent}, now.Add(time.Second))
	recs, err := LoadPending(p, now)
	if err != nil || len(recs) != 1 || recs[0].Count != 6 {
		t.Fatalf("records %+v, %v", recs, err)
	}
	assertMode(t, filepath.Dir(p), 0o700|os.ModeDir)
}

func TestPendingExpiresOnWrite(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "pending.json", readFixture(t, fixturePending))
	late := originalSeen.Add(25 * time.Hour)
	if err := RecordPending(context.Background(), p, PendingRecord{Hash: hashAgent}, late); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if bytes.Contains(data, []byte(hashHelper)) {
		t.Fatal("expired record still in the file after a write")
	}
	// Exactly 24 h old is not yet older than 24 h.
	recs, _ := LoadPending(p, late.Add(24*time.Hour))
	if len(recs) != 1 {
		t.Fatalf("record exactly 24 h old dropped")
	}
}

func manyPending(n int, newest time.Time) []PendingRecord {
	recs := make([]PendingRecord, n)
	for i := range recs {
		recs[i] = PendingRecord{Hash: testHash(i), Path: "/tmp/x", LastSeen: newest.Add(-time.Duration(i) * time.Second), Count: 1}
		recs[i].FirstSeen, recs[i].Timestamp = recs[i].LastSeen, recs[i].LastSeen
	}
	return recs
}

func TestPendingCap(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	data, err := marshalPending(manyPending(MaxPending+5, now.Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, t.TempDir(), "pending.json", data)
	recs, err := LoadPending(p, now)
	if err != nil || len(recs) != MaxPending {
		t.Fatalf("load: %d records, %v", len(recs), err)
	}
	if err := RecordPending(context.Background(), p, PendingRecord{Hash: hashAgent}, now); err != nil {
		t.Fatal(err)
	}
	recs, _ = LoadPending(p, now)
	if len(recs) != MaxPending {
		t.Fatalf("%d records after a write, want %d", len(recs), MaxPending)
	}
	if recs[0].Hash != hashAgent {
		t.Error("new record not kept")
	}
	// The survivors are the newest: 0..998 of the old ones.
	last := recs[len(recs)-1]
	if last.Hash != testHash(MaxPending-2) {
		t.Errorf("oldest kept = %s, want %s", last.Hash, testHash(MaxPending-2))
	}
	for _, r := range recs {
		if r.Hash == testHash(MaxPending-1) {
			t.Fatal("the oldest record survived the cap")
		}
	}
}

func TestPendingDuplicatesMerge(t *testing.T) {
	t.Parallel()
	data := `[
 {"hash":"` + hashHelper + `","path":"/a","timestamp":"2026-11-29T08:00:00Z"},
 {"hash":"` + hashHelper + `","path":"/b","timestamp":"2026-11-29T09:00:00Z","count":3},
 {"hash":"` + hashHelper + `","path":"/c","timestamp":"2026-11-29T07:00:00Z"}
]`
	p := writeFile(t, t.TempDir(), "pending.json", []byte(data))
	recs, err := LoadPending(p, originalSeen.Add(time.Hour))
	if err != nil || len(recs) != 1 {
		t.Fatalf("%+v, %v", recs, err)
	}
	r := recs[0]
	if r.Count != 5 || r.Path != "/b" || r.FirstSeen.Hour() != 7 || r.LastSeen.Hour() != 9 {
		t.Fatalf("merged = %+v", r)
	}
}

func TestPendingBrokenFileNeverRewritten(t *testing.T) {
	t.Parallel()
	broken := []byte("[\n  {\"hash\": \"" + hashHelper + "\"\n  \"path\": \"/x\"}\n]\n")
	p := writeFile(t, t.TempDir(), "pending.json", broken)
	fi, _ := os.Stat(p)
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != 3 || se.Column != 3 {
			t.Errorf("%s: err = %v, want a SyntaxError at line 3 column 3", what, err)
		}
	}
	_, err := LoadPending(p, time.Now())
	check("LoadPending", err)
	check("RecordPending", RecordPending(ctx, p, PendingRecord{Hash: hashAgent}, time.Now()))
	_, _, err = RemovePending(ctx, p, hashHelper)
	check("RemovePending", err)
	unchanged(t, p, broken, fi)
}

func TestPendingInvalidRecords(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"object at top": `{}`,
		"bad hash":      `[{"hash":"sha256:XY","timestamp":"2026-11-29T08:00:00Z"}]`,
		"bad time":      `[{"hash":"` + hashAgent + `","timestamp":"soon"}]`,
		"count type":    `[{"hash":"` + hashAgent + `","count":"3"}]`,
	} {
		if _, err := ParsePending([]byte(data), "pending.json"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	p := filepath.Join(t.TempDir(), "pending.json")
	if err := RecordPending(context.Background(), p, PendingRecord{Hash: "nope"}, time.Now()); !errors.Is(err, ErrInvalid) {
		t.Errorf("RecordPending with a bad hash = %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused record created the file")
	}
	// A record without any time has no age: it is dropped rather than kept forever.
	recs, err := ParsePending([]byte(`[{"hash":"`+hashAgent+`"}]`), "pending.json")
	if err != nil || len(recs) != 1 || len(normalizePending(recs, time.Now())) != 0 {
		t.Errorf("timeless record: %+v, %v", recs, err)
	}
}

func TestRemovePending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "pending.json")
	if _, found, err := RemovePending(ctx, p, hashAgent); found || err != nil {
		t.Fatalf("missing file: %v, %v", found, err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("RemovePending created the file")
	}
	now := time.Now()
	RecordPending(ctx, p, PendingRecord{Hash: hashAgent, Path: "/bin/a"}, now)
	RecordPending(ctx, p, PendingRecord{Hash: hashDeploy, Path: "/bin/d"}, now)
	rec, found, err := RemovePending(ctx, p, hashAgent)
	if err != nil || !found || rec.Path != "/bin/a" {
		t.Fatalf("remove: %+v %v %v", rec, found, err)
	}
	fi, _ := os.Stat(p)
	data, _ := os.ReadFile(p)
	if _, found, _ := RemovePending(ctx, p, hashAgent); found {
		t.Fatal("removed twice")
	}
	unchanged(t, p, data, fi)
	recs, _ := LoadPending(p, now)
	if len(recs) != 1 || recs[0].Hash != hashDeploy {
		t.Fatalf("left: %+v", recs)
	}
}

func TestRecordPendingBoundsSizes(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "pending.json")
	args := make([]string, 10000)
	for i := range args {
		args[i] = strings.Repeat("é", 1000)
	}
	rec := PendingRecord{Hash: hashAgent, Path: "/" + strings.Repeat("p", 100000), CommandLine: args}
	if err := RecordPending(context.Background(), p, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Size() > 16<<10 {
		t.Fatalf("one record takes %d bytes", fi.Size())
	}
	recs, err := LoadPending(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	last := recs[0].CommandLine[len(recs[0].CommandLine)-1]
	if !strings.Contains(last, "more arguments cut") {
		t.Errorf("cut not marked: %q", last)
	}
	for _, a := range recs[0].CommandLine {
		if !utf8Valid(a) {
			t.Fatal("cut split a UTF-8 sequence")
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestRecordPendingConcurrent(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "pending.json")
	now := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			h := hashAgent
			if i%2 == 1 {
				h = hashDeploy
			}
			if err := RecordPending(context.Background(), p, PendingRecord{Hash: h}, now); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	recs, err := LoadPending(p, now)
	if err != nil || len(recs) != 2 || recs[0].Count != 10 || recs[1].Count != 10 {
		t.Fatalf("records %+v, %v", recs, err)
	}
}

func TestPendingCommandLineRedactsCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pending.json")
	now := time.Now()
	rec := PendingRecord{
		Hash: "sha256:" + strings.Repeat("ab", 32), Path: "/tmp/tool",
		CommandLine: []string{"/tmp/tool", "--password=hunter2", "--token", "tok-123", "--verbose",
			"-p", "keep", "--api-key=k-9", "--db-passwd", "pw-7", "positional"},
	}
	if err := RecordPending(context.Background(), path, rec, now); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "tok-123", "k-9", "pw-7"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("pending.json keeps %q from the command line", secret)
		}
	}
	recs, err := LoadPending(path, now)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	want := []string{"/tmp/tool", "--password=[redacted]", "--token", "[redacted]", "--verbose",
		"-p", "keep", "--api-key=[redacted]", "--db-passwd", "[redacted]", "positional"}
	if !slices.Equal(recs[0].CommandLine, want) {
		t.Errorf("command line\n got %q\nwant %q", recs[0].CommandLine, want)
	}
}

func TestOneCutArgumentIsSingular(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "pending.json")
	args := make([]string, maxCmdArgs+1)
	for i := range args {
		args[i] = "a"
	}
	if err := RecordPending(context.Background(), p, PendingRecord{Hash: hashAgent, Path: "/bin/x", CommandLine: args}, time.Now()); err != nil {
		t.Fatal(err)
	}
	recs, err := LoadPending(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[0].CommandLine[len(recs[0].CommandLine)-1]; last != "[1 more argument cut]" {
		t.Errorf("cut marker %q", last)
	}
}
