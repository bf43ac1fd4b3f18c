package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/protocol"
)

func (e *env) auditFile() string { return e.path(".local", "share", "keychain-auth", "audit.log") }

// records reads the whole log back, across rotated files.
func (e *env) records() []audit.Record {
	e.t.Helper()
	var out []audit.Record
	if err := audit.Read(e.auditFile(), func(en audit.Entry) error {
		if en.Err != nil {
			e.t.Fatalf("%s:%d: %v", en.File, en.Line, en.Err)
		}
		out = append(out, en.Record)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// isProbe tells the harness's liveness probe (a bare connect by the
// unregistered test binary, refused and recorded without an action) from
// the decisions a test makes; it lands at no fixed place in the log.
func isProbe(r audit.Record) bool { return r.Event == audit.EventConnectDenied && r.Action == "" }

func fileHash(t *testing.T, path string) string {
	sum := sha256.Sum256(readFile(t, path))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestAuditRecordsEveryDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws", "--write", "aws", "--search")
	d := e.start()
	secrets := []string{"audit-canary-value-1f8e", "audit-canary-value-9c2d", "audit-canary-value-77ab"}

	resps, _ := e.call(client,
		req("write", "aws", []string{"prod/key", "prod/id", "dev/key"}, "values", secrets, "id", "w1"),
		req("read", "aws", []string{"prod/key", "nope"}),
		req("read", "aws", []string{"prod/"}, "match", "prefix"),
		req("search", "aws", nil),
		req("read", "gcp", []string{"x"}),
		req("delete", "aws", []string{"dev/"}, "match", "prefix"),
	)
	for i, want := range []protocol.Status{"success", "success", "success", "success", "denied", "success"} {
		if resps[i].Status != want {
			t.Fatalf("reply %d: %+v", i, resps[i])
		}
	}
	// An unregistered binary: refused at connect, with its first request.
	wantStatus(t, e.one(client2, req("read", "aws", []string{"prod/key"}, "id", 5)), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	d.stop()

	var recs, probes []audit.Record
	for _, r := range e.records() {
		if isProbe(r) {
			probes = append(probes, r)
		} else {
			recs = append(recs, r)
		}
	}
	self, _ := os.Executable()
	// A connect that asks nothing and hangs up is no decision: no record.
	if len(probes) != 0 {
		t.Errorf("the start probe (%s: connect, then close) left audit records: %+v", self, probes)
	}
	if len(recs) != 9 {
		t.Fatalf("want daemon_start, 6 requests, 1 connect_denied, daemon_stop; got %d: %+v", len(recs), recs)
	}
	if recs[0].Event != audit.EventDaemonStart || recs[8].Event != audit.EventDaemonStop {
		t.Errorf("first and last: %s, %s", recs[0].Event, recs[8].Event)
	}
	if !strings.Contains(string(recs[0].Details), `"entries":1`) || recs[0].PID != d.cmd.Process.Pid {
		t.Errorf("daemon_start: pid %d details %s", recs[0].PID, recs[0].Details)
	}
	want := []struct {
		event, action, match, result, reason, id string
		targets                                  []string
	}{
		{"request", "write", "exact", "approved", "", "w1", []string{"prod/key", "prod/id", "dev/key"}},
		{"request", "read", "exact", "approved", "", "", []string{"prod/key", "nope"}},
		{"request", "read", "prefix", "approved", "", "", []string{"prod/id", "prod/key"}}, // what matched
		{"request", "search", "prefix", "approved", "", "", []string{"dev/key", "prod/id", "prod/key"}},
		{"request", "read", "exact", "denied", "service_not_allowed", "", []string{"x"}},
		{"request", "delete", "prefix", "approved", "", "", []string{"dev/key"}},
		{"connect_denied", "read", "exact", "denied", "unregistered_binary", "5", []string{"prod/key"}},
	}
	uid := uint32(os.Getuid())
	for i, w := range want {
		r := recs[i+1]
		bin := client
		if w.event == "connect_denied" {
			bin = client2
		}
		if r.Event != w.event || r.Action != w.action || r.Match != w.match || r.Result != w.result ||
			r.Reason != w.reason || r.RequestID != w.id || !slices.Equal(r.Targets, w.targets) {
			t.Errorf("record %d: %+v\nwant %+v", i+1, r, w)
		}
		if r.BinaryPath != bin || r.BinaryHash != fileHash(t, bin) || r.UID == nil || *r.UID != uid ||
			r.PID == 0 || r.PID == d.cmd.Process.Pid || r.Conn == 0 {
			t.Errorf("record %d identity: path %s hash %s uid %v pid %d conn %d", i+1, r.BinaryPath, r.BinaryHash, r.UID, r.PID, r.Conn)
		}
	}
	if recs[1].PID != recs[6].PID || recs[1].PID == recs[7].PID {
		t.Errorf("pids: one connection's requests share a pid, another client's differs: %d %d %d", recs[1].PID, recs[6].PID, recs[7].PID)
	}

	// No value anywhere under HOME but the encrypted store, nor on stderr.
	err := filepath.WalkDir(e.home, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) && p != e.storeFile() {
				t.Errorf("%s contains a secret value", p)
			}
			if bytes.Contains(b, []byte(s)) && p == e.storeFile() {
				t.Errorf("the store holds a value in plaintext")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(d.stderr.String(), s) {
			t.Error("daemon stderr contains a secret value")
		}
	}

	// The viewer and its filters.
	out := e.mustKA("audit")
	if !strings.HasPrefix(out, "TIME") || strings.Count(out, "\n") != 10 || !strings.Contains(out, "service_not_allowed") {
		t.Errorf("table:\n%s", out)
	}
	rows := func(args ...string) []string {
		out := e.mustKA(append([]string{"audit"}, args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) > 0 && strings.HasPrefix(lines[0], "TIME") {
			lines = lines[1:]
		}
		if len(lines) == 1 && lines[0] == "" {
			return nil
		}
		return lines
	}
	if r := rows("--denied"); len(r) != 2 || strings.Count(strings.Join(r, "\n"), "unregistered_binary") != 1 {
		t.Errorf("--denied: %q", r)
	}
	if r := rows("--denied", "--service", "aws"); len(r) != 1 || !strings.Contains(r[0], "unregistered_binary") {
		t.Errorf("--denied --service aws: %q", r)
	}
	if r := rows("--service", "gcp"); len(r) != 1 {
		t.Errorf("--service gcp: %q", r)
	}
	if r := rows("--binary", strings.TrimPrefix(fileHash(t, client2), "sha256:")[:10]); len(r) != 1 || !strings.Contains(r[0], "connect:read") {
		t.Errorf("--binary <hash prefix>: %q", r)
	}
	if r := rows("--binary", client); len(r) != 6 {
		t.Errorf("--binary <path>: %q", r)
	}
	if r := rows("--since", "1h"); len(r) != 9 {
		t.Errorf("--since 1h: %d rows", len(r))
	}
	if r := rows("--since", "2999-01-01T00:00:00Z"); len(r) != 0 {
		t.Errorf("--since in the future: %q", r)
	}
	js := e.mustKA("audit", "--json", "--service", "aws", "--denied")
	if lines := strings.Split(strings.TrimSpace(js), "\n"); len(lines) != 1 || !json.Valid([]byte(lines[0])) ||
		!strings.Contains(lines[0], `"targets":["prod/key"]`) {
		t.Errorf("--json: %q", js)
	}
	if _, errOut, code := e.ka("audit", "--since", "yesterday"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("bad --since: exit %d %s", code, errOut)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws")
	d := e.start()
	e.call(client, req("read", "aws", []string{"a"}), req("read", "gcp", []string{"b"}), req("read", "aws", []string{"c"}))
	d.stop()
	out, errOut, code := e.ka("audit", "--verify")
	if code != 0 || !strings.Contains(out, "intact: 5 records") { // start, 3 requests, stop
		t.Fatalf("verify of an untouched log: exit %d\n%s%s", code, out, errOut)
	}

	orig := readFile(t, e.auditFile())
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	denied := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `"result":"denied","reason":"service_not_allowed"`) })
	if denied < 0 || len(lines) != 5 {
		t.Fatalf("log: %q", lines)
	}
	// Line i (0-based) holds seq i+1.
	cases := []struct {
		name  string
		edit  func([]string) []string
		where string
	}{
		{"edited field", func(l []string) []string {
			l[denied] = strings.Replace(l[denied], `"result":"denied"`, `"result":"approved"`, 1)
			return l
		}, fmt.Sprintf("audit.log:%d (seq %d): the hash does not match", denied+1, denied+1)},
		{"deleted line", func(l []string) []string { return append(l[:3], l[4:]...) }, "audit.log:4 (seq 5): seq 5 follows seq 3"},
		{"reordered lines", func(l []string) []string { l[3], l[4] = l[4], l[3]; return l }, "audit.log:4 (seq 5): seq 5 follows seq 3"},
	}
	for _, tc := range cases {
		edited := tc.edit(slices.Clone(lines))
		if err := os.WriteFile(e.auditFile(), []byte(strings.Join(edited, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := e.ka("audit", "--verify")
		if code != 1 || !strings.Contains(errOut, tc.where) {
			t.Errorf("%s: exit %d, stderr %q; want 1 naming %q", tc.name, code, errOut, tc.where)
		}
	}
}

func TestAuditTailTruncationIsReportedAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws")
	d := e.start()
	e.call(client, req("read", "aws", []string{"a"}), req("read", "aws", []string{"b"}))
	d.stop()
	// Cut the last two records, as someone hiding their traces would,
	// while no daemon runs. The log held start, 2 requests, stop (the
	// harness's liveness probe asks nothing and leaves no record).
	lines := strings.SplitAfter(string(readFile(t, e.auditFile())), "\n")
	if len(lines) != 5 {
		t.Fatalf("log: %q", lines)
	}
	os.WriteFile(e.auditFile(), []byte(strings.Join(lines[:2], "")), 0o600)
	if _, _, code := e.ka("audit", "--verify"); code != 0 {
		t.Fatal("a cleanly cut tail verifies on its own; the daemon's state is what catches it")
	}

	d = e.start()
	var recs []audit.Record
	waitFor(t, "daemon_start", func() bool { recs = e.records(); return len(recs) > 2 })
	if !strings.Contains(d.stderr.String(), "tail check failed") {
		t.Errorf("no warning on stderr:\n%s", d.stderr)
	}
	start := recs[2]
	if start.Event != audit.EventDaemonStart || !strings.Contains(start.Message, "stopped at seq 4") ||
		!strings.Contains(string(start.Details), `"tail_check":"mismatch"`) {
		t.Errorf("daemon_start after truncation: %+v %s", start, start.Details)
	}
	_, errOut, code := e.ka("audit", "--verify")
	if code != 1 || !strings.Contains(errOut, "audit.log:3 (seq 5): seq 5 follows seq 2") { // the gap shows
		t.Errorf("verify after restart: exit %d %s", code, errOut)
	}
}

func TestAuditPolicyChangeIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws")
	e.start()
	e.mustKA("grant", client, "--write", "aws")
	e.mustKA("register", client2, "--read", "x")
	// Recorded within a poll while idle, or before the next request.
	wantStatus(t, e.one(client, req("write", "aws", []string{"k"}, "values", []string{"v"})), protocol.StatusSuccess, "")
	var changes []audit.Record
	waitFor(t, "policy_change records", func() bool {
		changes = nil
		for _, r := range e.records() {
			if r.Event == audit.EventPolicyChange {
				changes = append(changes, r)
			}
		}
		var added, changed int
		for _, c := range changes {
			var d struct{ Added, Changed []json.RawMessage }
			json.Unmarshal(c.Details, &d)
			added += len(d.Added)
			changed += len(d.Changed)
		}
		return added == 1 && changed == 1
	})
	all := strings.Join(func() []string {
		var s []string
		for _, c := range changes {
			s = append(s, string(c.Details))
		}
		return s
	}(), " ")
	if !strings.Contains(all, client2) || !strings.Contains(all, `"after":{"read":["aws"],"write":["aws"]`) {
		t.Errorf("policy changes: %s", all)
	}
}

func TestAuditFollowAcrossRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws")
	// About three records a file; five rotated files are kept, so the
	// records of this test all stay on disk.
	e.start("--audit-max-size", "2500")

	cmd := exec.Command(kaBin, "audit", "--follow", "--json")
	cmd.Env = e.vars
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() { // a failed test must not leave the follower running
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	seqs := make(chan uint64, 100)
	go func() {
		defer close(seqs)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r audit.Record
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				seqs <- r.Seq
			}
		}
	}()

	next := uint64(1)
	expect := func() {
		t.Helper()
		for want := uint64(len(e.records())); next <= want; next++ {
			got, ok := <-seqs
			if !ok {
				t.Fatalf("follower stopped at seq %d of %d: %s", next, want, stderr.String())
			}
			if got != next {
				t.Fatalf("follower printed seq %d, want %d", got, next)
			}
		}
	}
	calls := func(n int) {
		for i := range n {
			e.call(client, req("read", "aws", []string{"a"}), req("read", "aws", []string{"b"}), req("read", "aws", []string{string(rune('c' + i))}))
		}
	}
	// The history first, then rotations while the follower is polling.
	calls(1)
	expect()
	before, _ := audit.Files(e.auditFile())
	calls(3)
	expect()
	if after, _ := audit.Files(e.auditFile()); len(after) < len(before)+2 || len(after) > 6 {
		t.Fatalf("want rotations while following, all files kept: %v then %v", before, after)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	close(exited)
	if err != nil {
		t.Errorf("follower did not stop cleanly on SIGINT: %v %s", err, stderr.String())
	}
	if _, _, code := e.ka("audit", "--verify"); code != 0 {
		t.Error("the chain does not verify across rotated files")
	}
}

func TestAuditFailClosedAndRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws")
	d := e.start()
	wantStatus(t, e.one(client, req("read", "aws", []string{"a"})), protocol.StatusSuccess, "")

	// As root no permission bit stops a write, so the log's path becomes
	// something nobody can append to: a directory.
	if err := os.Remove(e.auditFile()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.auditFile(), 0o700); err != nil {
		t.Fatal(err)
	}
	// The daemon notices at its next sync (within 100 ms of a write);
	// from then on every request is refused.
	waitFor(t, "requests refused", func() bool {
		r := e.one(client, req("read", "aws", []string{"a"}))
		if r.Status == protocol.StatusSuccess {
			return false
		}
		wantStatus(t, r, protocol.StatusError, protocol.ReasonInternalError)
		if !strings.Contains(r.Message, "audit log unavailable") {
			t.Fatalf("message %q", r.Message)
		}
		return true
	})
	wantStatus(t, e.one(client, req("read", "aws", []string{"a"})), protocol.StatusError, protocol.ReasonInternalError)
	if !strings.Contains(d.stderr.String(), "audit log") {
		t.Errorf("the daemon should log the failure:\n%s", d.stderr)
	}

	if err := os.Remove(e.auditFile()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.one(client, req("read", "aws", []string{"recovered"})), protocol.StatusSuccess, "")
	d.stop()
	recs := e.records()
	if len(recs) != 2 || !slices.Equal(recs[0].Targets, []string{"recovered"}) || recs[1].Event != audit.EventDaemonStop {
		t.Errorf("records after recovery: %+v", recs)
	}
}

// TestStatusProbesLeaveNoDenials: `status` connects and hangs up. That is
// not a refused request, so it must leave no record at all: no
// connect_denied for `audit --denied` to show as an attack, nothing queued.
func TestStatusProbesLeaveNoDenials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if _, errOut, code := e.ka("status"); code != 0 {
					t.Errorf("status: exit %d: %s", code, errOut)
				}
			}
		})
	}
	wg.Wait()
	if out := e.mustKA("audit", "--denied", "--json"); strings.TrimSpace(out) != "" {
		t.Errorf("audit --denied after status probes:\n%s", out)
	}
	for _, r := range e.records() {
		if r.Event != audit.EventDaemonStart {
			t.Errorf("a probe left a %s record: %s %s %q", r.Event, r.Result, r.Reason, r.Message)
		}
	}
	if exists(e.pendingFile()) {
		if out := e.mustKA("list-pending", "--json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("probes were queued for approval: %s", out)
		}
	}
}
