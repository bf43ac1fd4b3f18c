package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newLog(t *testing.T, opts Options) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "audit.log")
	l, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func uidp(u uint32) *uint32 { return &u }

func request(i int) Record {
	return Record{Event: EventRequest, Action: "read", Service: "svc", Match: "exact",
		Targets: []string{fmt.Sprintf("t%d", i)}, Result: ResultApproved, PID: 100 + i, UID: uidp(1000),
		BinaryPath: "/usr/bin/tool", BinaryHash: "sha256:" + strings.Repeat("ab", 32), Conn: 7, RequestID: "r1"}
}

func mustLog(t *testing.T, l *Log, r Record) {
	t.Helper()
	if err := l.Log(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, path string) []Entry {
	t.Helper()
	var out []Entry
	if err := Read(path, func(e Entry) error {
		if e.Err != nil {
			t.Fatalf("%s:%d: %v", e.File, e.Line, e.Err)
		}
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustVerify(t *testing.T, path string, want int) {
	t.Helper()
	n, err := Verify(path)
	if err != nil || n != want {
		t.Fatalf("Verify = %d, %v; want %d records intact", n, err, want)
	}
}

func TestRecordsAreChainedAndComplete(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 11, 29, 10, 0, 0, 123, time.FixedZone("X", 3600))
	l, path := newLog(t, Options{Now: func() time.Time { return clock }})
	mustLog(t, l, Record{Event: EventDaemonStart, PID: 42, Details: json.RawMessage(`{"entries":2}`)})
	mustLog(t, l, request(1))
	// A bare connect: no request, so no action, and an unknown uid.
	mustLog(t, l, Record{Event: EventConnectDenied, Result: ResultDenied, Reason: "foreign_user"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	ents := readAll(t, path)
	if len(ents) != 3 {
		t.Fatalf("want 3 records, got %d", len(ents))
	}
	prev := ""
	for i, e := range ents {
		if e.Record.Seq != uint64(i+1) || e.Record.Prev != prev || !isHex64(e.Record.Hash) {
			t.Errorf("record %d: seq=%d prev=%q hash=%q; want seq %d prev %q", i, e.Record.Seq, e.Record.Prev, e.Record.Hash, i+1, prev)
		}
		prev = e.Record.Hash
		if !strings.HasPrefix(string(e.Raw), `{"time":"2026-11-29T09:00:00.000000123Z","seq":`) {
			t.Errorf("time not RFC 3339 UTC with ns: %s", e.Raw)
		}
	}
	keys := func(raw []byte) []string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	all := []string{"time", "seq", "event", "action", "service", "match", "targets", "result", "reason",
		"pid", "uid", "binary_path", "binary_hash", "conn", "request_id", "prev", "hash"}
	for _, e := range ents[1:] {
		got := strings.Join(keys(e.Raw), " ")
		for _, k := range all {
			if !strings.Contains(" "+got+" ", " "+k+" ") {
				t.Errorf("access record lacks %q: %s", k, e.Raw)
			}
		}
	}
	if !bytes.Contains(ents[2].Raw, []byte(`"targets":[]`)) || !bytes.Contains(ents[2].Raw, []byte(`"uid":null`)) {
		t.Errorf("empty list and unknown uid must be present: %s", ents[2].Raw)
	}
	if bytes.Contains(ents[0].Raw, []byte(`"action"`)) || !bytes.Contains(ents[0].Raw, []byte(`"details":{"entries":2}`)) {
		t.Errorf("daemon_start: %s", ents[0].Raw)
	}
	mustVerify(t, path, 3)
}

func TestFilesAndDirectoryArePrivate(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	mustLog(t, l, request(1))
	l.Close()
	for name, want := range map[string]fs.FileMode{
		filepath.Dir(path): 0o700 | fs.ModeDir, path: 0o600, statePath(path): 0o600,
	} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

func TestAwkwardStringsRoundTripAndVerify(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	odd := []string{"quote\" back\\slash", "tab\tnl\ncr\r bell\x07 del\x7f", "ünïcödé \u2028 日本", "bad \xff\xfe utf8", ""}
	r := request(0)
	r.Targets = odd
	r.BinaryPath = "/tmp/\xff/tool"
	mustLog(t, l, r)
	l.Close()
	mustVerify(t, path, 1)
	got := readAll(t, path)[0].Record
	want := []string{odd[0], odd[1], odd[2], "bad \ufffd\ufffd utf8", ""}
	if fmt.Sprint(got.Targets) != fmt.Sprint(want) || got.BinaryPath != "/tmp/\ufffd/tool" {
		t.Errorf("targets %q path %q", got.Targets, got.BinaryPath)
	}
}

func TestDetailsMustBeACompactObject(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Options{})
	for _, d := range []string{`[1]`, `{"a": 1}`, `"x"`} {
		if err := l.Log(context.Background(), Record{Event: EventPolicyChange, Details: json.RawMessage(d)}); err == nil {
			t.Errorf("details %s accepted", d)
		}
	}
}

// writeLines rewrites the log file with the given lines.
func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// rehash recomputes a tampered line's own hash, as a careful forger would.
func rehash(t *testing.T, line string) string {
	t.Helper()
	var r Record
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	c := r.appendCanonical(nil)
	return string(appendHashMember(c, hashOf(c)))
}

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	for i := range 6 {
		r := request(i)
		if i == 3 {
			r.Result, r.Reason = ResultDenied, "service_not_allowed"
		}
		mustLog(t, l, r)
	}
	l.Close()
	orig := fileLines(t, path)
	mustVerify(t, path, 6)

	cases := []struct {
		name     string
		edit     func(ls []string) []string
		line     int
		contains string
	}{
		{"edited field", func(ls []string) []string {
			ls[3] = strings.Replace(ls[3], `"result":"denied"`, `"result":"approved"`, 1)
			return ls
		}, 4, "hash does not match"},
		{"edited and rehashed", func(ls []string) []string {
			ls[3] = rehash(t, strings.Replace(ls[3], `"targets":["t3"]`, `"targets":["other"]`, 1))
			return ls
		}, 5, "prev does not match"},
		{"deleted line", func(ls []string) []string { return append(ls[:2], ls[3:]...) }, 3, "seq 4 follows seq 2"},
		{"reordered lines", func(ls []string) []string { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2, "seq 3 follows seq 1"},
		{"added member", func(ls []string) []string {
			ls[0] = strings.Replace(ls[0], `{"time"`, `{"x":1,"time"`, 1)
			return ls
		}, 1, "canonical form"},
		{"garbage line", func(ls []string) []string { ls[5] = "not json"; return ls }, 6, "unparsable"},
		{"removed hash", func(ls []string) []string {
			i := strings.Index(ls[2], `,"hash"`)
			ls[2] = ls[2][:i] + "}"
			return ls
		}, 3, "no valid hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			writeLines(t, p, tc.edit(append([]string(nil), orig...)))
			_, err := Verify(p)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrBroken) {
				t.Fatalf("Verify did not notice: %v", err)
			}
			if ve.File != p || ve.Line != tc.line || !strings.Contains(ve.Why, tc.contains) {
				t.Errorf("got %v; want %s:%d %q", err, p, tc.line, tc.contains)
			}
		})
	}

	t.Run("incomplete last line", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "audit.log")
		b := []byte(strings.Join(orig, "\n"))
		os.WriteFile(p, b[:len(b)-10], 0o600)
		var ve *VerifyError
		if _, err := Verify(p); !errors.As(err, &ve) || ve.Line != 6 || !strings.Contains(ve.Why, "incomplete") {
			t.Errorf("got %v", err)
		}
	})
}

func TestRotationKeepsTheChain(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{MaxSize: 2000, Keep: 3})
	for i := range 40 {
		mustLog(t, l, request(i))
	}
	l.Close()
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".3", path + ".2", path + ".1", path}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Size() > 2000 {
			t.Errorf("%s is %d bytes, over MaxSize", f, fi.Size())
		}
	}
	ents := readAll(t, path)
	if last := ents[len(ents)-1].Record.Seq; last != 40 {
		t.Fatalf("last seq %d, want 40", last)
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].Record.Prev != ents[i-1].Record.Hash {
			t.Fatalf("%s:%d does not point at the record before it", ents[i].File, ents[i].Line)
		}
	}
	mustVerify(t, path, len(ents))

	// Removing the last record of a rotated file breaks the link into the next file.
	ls := fileLines(t, path+".1")
	writeLines(t, path+".1", ls[:len(ls)-1])
	var ve *VerifyError
	if _, err := Verify(path); !errors.As(err, &ve) || ve.File != path || ve.Line != 1 {
		t.Errorf("cross-file deletion: %v", err)
	}
}

func TestRotationShiftsNumberedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	for _, n := range []string{"audit.log.10", "audit.log.2", "audit.log.1", "audit.log", "audit.log.lock",
		"audit.log.x", "audit.log.01", "audit.state", "other.log.1"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".10", path + ".2", path + ".1", path}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Errorf("files %v, want %v", files, want)
	}
}

func TestReopenContinuesTheChain(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	for i := range 3 {
		mustLog(t, l, request(i))
	}
	seq, hash := l.Last()
	l.Close()

	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if tc := l2.TailCheck(); tc.Status != TailOK {
		t.Errorf("tail check after a clean stop: %+v", tc)
	}
	mustLog(t, l2, request(4))
	l2.Close()
	ents := readAll(t, path)
	if got := ents[3].Record; got.Seq != seq+1 || got.Prev != hash {
		t.Errorf("reopened chain: seq %d prev %q; want %d %q", got.Seq, got.Prev, seq+1, hash)
	}
	mustVerify(t, path, 4)
}

func TestOnlyOneWriter(t *testing.T) {
	t.Parallel()
	_, path := newLog(t, Options{})
	if _, err := Open(path, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v, want ErrInUse", err)
	}
}

// closedLog writes n records and closes cleanly.
func closedLog(t *testing.T, n int) string {
	t.Helper()
	l, path := newLog(t, Options{})
	for i := range n {
		mustLog(t, l, request(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func reopen(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestTailTamperingIsDetectedAtOpen(t *testing.T) {
	t.Parallel()
	t.Run("truncated", func(t *testing.T) {
		t.Parallel()
		path := closedLog(t, 5)
		ls := fileLines(t, path)
		writeLines(t, path, ls[:3])
		mustVerify(t, path, 3) // the chain alone cannot tell
		l := reopen(t, path)
		if tc := l.TailCheck(); tc.Status != TailMismatch || !strings.Contains(tc.Detail, "stopped at seq 5") {
			t.Fatalf("tail check: %+v", tc)
		}
		mustLog(t, l, Record{Event: EventDaemonStart})
		// The daemon chains on from what it wrote, so Verify now shows the gap.
		var ve *VerifyError
		if _, err := Verify(path); !errors.As(err, &ve) || ve.Line != 4 || !strings.Contains(ve.Why, "seq 6 follows seq 3") {
			t.Errorf("verify after truncation: %v", err)
		}
	})
	t.Run("last record edited and rehashed", func(t *testing.T) {
		t.Parallel()
		path := closedLog(t, 3)
		ls := fileLines(t, path)
		ls[2] = rehash(t, strings.Replace(ls[2], `"t2"`, `"t9"`, 1))
		writeLines(t, path, ls)
		mustVerify(t, path, 3)
		l := reopen(t, path)
		if tc := l.TailCheck(); tc.Status != TailMismatch {
			t.Fatalf("tail check: %+v", tc)
		}
		mustLog(t, l, Record{Event: EventDaemonStart})
		if _, err := Verify(path); !errors.Is(err, ErrBroken) {
			t.Errorf("verify after edit: %v", err)
		}
	})
	t.Run("log deleted", func(t *testing.T) {
		t.Parallel()
		path := closedLog(t, 2)
		os.Remove(path)
		if tc := reopen(t, path).TailCheck(); tc.Status != TailMismatch || !strings.Contains(tc.Detail, "gone") {
			t.Errorf("tail check: %+v", tc)
		}
	})
	t.Run("state deleted", func(t *testing.T) {
		t.Parallel()
		path := closedLog(t, 2)
		os.Remove(statePath(path))
		if tc := reopen(t, path).TailCheck(); tc.Status != TailNoState {
			t.Errorf("tail check: %+v", tc)
		}
	})
	t.Run("appended garbage", func(t *testing.T) {
		t.Parallel()
		path := closedLog(t, 2)
		f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		f.WriteString(`{"time":"partial`)
		f.Close()
		l := reopen(t, path)
		if tc := l.TailCheck(); tc.Status != TailMismatch || !strings.Contains(tc.Detail, "incomplete last line") {
			t.Errorf("tail check: %+v", tc)
		}
		mustLog(t, l, request(3))
		mustVerify(t, path, 3)
	})
	t.Run("fresh", func(t *testing.T) {
		t.Parallel()
		l, _ := newLog(t, Options{})
		if tc := l.TailCheck(); tc.Status != TailNew {
			t.Errorf("tail check: %+v", tc)
		}
	})
}

func TestCrashIsAnUncleanStopNotTampering(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	for i := range 3 {
		mustLog(t, l, request(i))
	}
	// Simulate a crash: the file and lock go away without Close.
	l.mu.Lock()
	l.closed = true
	l.f.Close()
	l.lock.Unlock()
	l.mu.Unlock()

	l2 := reopen(t, path)
	if tc := l2.TailCheck(); tc.Status != TailUncleanStop {
		t.Errorf("tail check: %+v", tc)
	}
	mustLog(t, l2, request(4))
	mustVerify(t, path, 4)
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{MaxSize: 8 << 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := l.Log(context.Background(), request(g*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	n, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if seq := readAll(t, path); seq[len(seq)-1].Record.Seq != 400 || n != len(seq) {
		t.Errorf("last seq %d, verified %d of %d", seq[len(seq)-1].Record.Seq, n, len(seq))
	}
}

// As root, permission bits do not stop a write, so the faults here are ones
// root cannot write through: the log's path turned into a directory, and a
// write error injected through the file seam (what a full disk returns).
func TestFailClosedWhenThePathBecomesUnusable(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	mustLog(t, l, request(1))
	os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err == nil {
		t.Fatal("Sync did not notice the log file was replaced")
	}
	for range 2 { // stays refused while the fault lasts
		if err := l.Log(context.Background(), request(2)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Log on an unusable path: %v, want ErrUnavailable", err)
		}
	}
	os.Remove(path)
	mustLog(t, l, request(3))
	l.Close()
	ents := readAll(t, path)
	if len(ents) != 1 || ents[0].Record.Seq != 2 || ents[0].Record.Targets[0] != "t3" {
		t.Errorf("after recovery: %+v", ents)
	}
}

func TestFailClosedWhenTheDirectoryIsRemoved(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{})
	mustLog(t, l, request(1))
	dir := filepath.Dir(path)
	os.RemoveAll(dir)
	os.WriteFile(dir, nil, 0o600) // a file where the directory was
	l.Sync()
	if err := l.Log(context.Background(), request(2)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Log: %v", err)
	}
	os.Remove(dir)
	mustLog(t, l, request(3)) // re-creates the directory
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory not re-created private: %v %v", fi, err)
	}
}

// faultyFile fails writes while fail is set, after writing half the line,
// the way a disk that fills up mid-write does.
type faultyFile struct {
	*os.File
	fail *bool
}

func (f faultyFile) Write(p []byte) (int, error) {
	if *f.fail {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func TestFailClosedOnWriteErrorAndRecover(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	fail := false
	l, err := open(path, Options{}, func(name string) (file, error) {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		return faultyFile{f, &fail}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustLog(t, l, request(1))
	fail = true
	err = l.Log(context.Background(), request(2))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Log on a full disk: %v", err)
	}
	fail = false
	mustLog(t, l, request(3))
	l.Close()
	mustVerify(t, path, 2) // the half-written line was taken back
}

func TestLogAfterClose(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Options{})
	l.Close()
	if err := l.Log(context.Background(), request(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Log after Close: %v", err)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	t.Parallel()
	l, path := newLog(t, Options{MaxSize: 1500, Keep: 50})
	mustLog(t, l, request(0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 1000)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, 5*time.Millisecond, func(e Entry) error {
			if e.Err != nil {
				return e.Err
			}
			got <- e.Record.Seq
			return nil
		})
	}()
	const n = 60
	next := uint64(1)
	for i := 1; i < n; i++ {
		mustLog(t, l, request(i))
		if i%7 == 0 { // let the follower see some rotations one at a time
			for next <= uint64(i) {
				if s := <-got; s != next {
					t.Fatalf("follow: got seq %d, want %d", s, next)
				}
				next++
			}
		}
	}
	for next <= n {
		select {
		case s := <-got:
			if s != next {
				t.Fatalf("follow: got seq %d, want %d", s, next)
			}
			next++
		case err := <-done:
			t.Fatalf("Follow returned early: %v", err)
		}
	}
	if files, _ := Files(path); len(files) < 5 {
		t.Fatalf("test did not rotate enough: %v", files)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
}

// BenchmarkLog is the cost of one access record: encode, hash, write(2).
func BenchmarkLog(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := request(1)
	for b.Loop() {
		if err := l.Log(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTimeEncodingMatchesLayout(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		time.Date(1, 12, 31, 23, 59, 59, 999999999, time.FixedZone("Y", -7200)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(timeLayout); got != want {
			t.Errorf("%v: got %s want %s", tm, got, want)
		}
	}
}
