package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/protocol"
)

// recorder is an Auditor that keeps records in memory and can be made to
// fail, as a full disk would.
type recorder struct {
	mu   sync.Mutex
	recs []audit.Record
	fail bool
}

func (r *recorder) Log(_ context.Context, rec audit.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return audit.ErrUnavailable
	}
	r.recs = append(r.recs, rec)
	return nil
}

func (r *recorder) setFail(v bool) {
	r.mu.Lock()
	r.fail = v
	r.mu.Unlock()
}

func (r *recorder) records() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

func (r *recorder) events(kind string) []audit.Record {
	var out []audit.Record
	for _, rec := range r.records() {
		if rec.Event == kind {
			out = append(out, rec)
		}
	}
	return out
}

func withAudit(a Auditor, poll time.Duration) func(*Options) {
	return func(o *Options) { o.Audit, o.ConfigPoll = a, poll }
}

// replaceConfig swaps config.json for one granting g to the test binary
// plus extra entries, the way an editor saves: a new file renamed over it.
func replaceConfig(t *testing.T, ts *testServer, g grant, extra ...map[string]any) {
	t.Helper()
	path, hash := self(t)
	tmp := ts.config + ".new"
	writeConfig(t, tmp, path, hash, g)
	if len(extra) > 0 {
		var cfg map[string]any
		b, _ := os.ReadFile(tmp)
		json.Unmarshal(b, &cfg)
		for _, e := range extra {
			cfg["registered_binaries"] = append(cfg["registered_binaries"].([]any), e)
		}
		b, _ = json.Marshal(cfg)
		os.WriteFile(tmp, b, 0o600)
	}
	if err := os.Rename(tmp, ts.config); err != nil {
		t.Fatal(err)
	}
}

type diff struct {
	Entries int `json:"entries"`
	Added   []struct {
		Hash, Path string
		Read       []string
	} `json:"added"`
	Removed []json.RawMessage `json:"removed"`
	Changed []struct {
		Hash, Path    string
		Before, After struct{ Read, Write []string }
	} `json:"changed"`
	Error string `json:"error"`
}

func TestRequestRecordsCarryTheDecision(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, &grant{read: []string{"svc"}, write: []string{"svc"}, search: true}, withAudit(rec, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "value-a", "b", "value-b")), protocol.StatusSuccess, "")
	mustStatus(t, c.roundTrip(`{"type":"REQUEST","id":"x1","action":"read","service":"svc","targets":["a","zz"]}`), protocol.StatusSuccess, "")
	mustStatus(t, c.roundTrip(`{"type":"REQUEST","id":7,"action":"read","service":"svc","match":"prefix","targets":[""]}`), protocol.StatusSuccess, "")
	mustStatus(t, c.roundTrip(readReq("other", "a")), protocol.StatusDenied, protocol.ReasonServiceNotAllowed)
	mustStatus(t, c.roundTrip(`{"type":"REQUEST","action":"read","service":"svc"}`), protocol.StatusError, protocol.ReasonMalformedRequest)

	recs := rec.events(audit.EventRequest)
	if len(recs) != 5 {
		t.Fatalf("want 5 request records, got %d: %+v", len(recs), recs)
	}
	path, hash := self(t)
	// Windows has no uids: records say null there.
	uidOK := func(u *uint32) bool {
		if runtime.GOOS == "windows" {
			return u == nil
		}
		return u != nil && *u == uint32(os.Getuid())
	}
	for _, r := range recs {
		if r.PID != os.Getpid() || !uidOK(r.UID) || r.BinaryHash != hash ||
			r.BinaryPath != path || r.Conn == 0 {
			t.Errorf("caller identity missing: %+v", r)
		}
	}
	want := []struct {
		action, result, reason, id string
		targets                    []string
	}{
		{"write", audit.ResultApproved, "", "", []string{"a", "b"}},
		{"read", audit.ResultApproved, "", "x1", []string{"a", "zz"}}, // named, absent ones too
		{"read", audit.ResultApproved, "", "7", []string{"a", "b"}},   // prefix: what matched
		{"read", audit.ResultDenied, "service_not_allowed", "", []string{"a"}},
		{"", audit.ResultError, "malformed_request", "", nil}, // nothing unvalidated is kept
	}
	for i, w := range want {
		r := recs[i]
		if r.Action != w.action || r.Result != w.result || r.Reason != w.reason || r.RequestID != w.id ||
			!slices.Equal(r.Targets, w.targets) {
			t.Errorf("record %d: %+v; want %+v", i, r, w)
		}
	}
	if recs[4].Message == "" {
		t.Error("an error record should say what failed")
	}
	for _, r := range rec.records() {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "value-") {
			t.Errorf("a value reached the audit record: %s", b)
		}
	}
}

func TestAuditFailureRefusesAndRecovers(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, withAudit(rec, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	rec.setFail(true)
	for _, line := range []string{readReq("svc", "a"), readReq("other", "a"), `{"type":"REQUEST","action":"check"}`} {
		r := c.roundTrip(line)
		mustStatus(t, r, protocol.StatusError, protocol.ReasonInternalError)
		if !strings.Contains(r.Message, "audit log unavailable") {
			t.Errorf("message %q", r.Message)
		}
	}
	rec.setFail(false)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "") // same connection
	if n := len(rec.events(audit.EventRequest)); n != 2 {
		t.Errorf("want the 2 answered requests recorded, got %d", n)
	}
}

func TestPolicyChangeIsRecordedBeforeItIsUsed(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, withAudit(rec, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	if n := len(rec.events(audit.EventPolicyChange)); n != 0 {
		t.Fatalf("policy_change without a change: %d", n)
	}

	other := map[string]any{"path": "/usr/bin/other", "hash": "sha256:" + strings.Repeat("0", 64),
		"registered_at": "2026-11-29T10:00:00Z", "allowed_read_services": []string{"x"},
		"allowed_write_services": []string{}, "can_search": false}
	replaceConfig(t, ts, grant{read: []string{"svc"}, write: []string{"svc"}}, other)
	// While the change cannot be recorded, it is not acted on.
	rec.setFail(true)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "v")), protocol.StatusError, protocol.ReasonInternalError)
	rec.setFail(false)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "v")), protocol.StatusSuccess, "")

	all := rec.records()
	i := slices.IndexFunc(all, func(r audit.Record) bool { return r.Event == audit.EventPolicyChange })
	if i < 0 || i+1 >= len(all) || all[i+1].Action != "write" {
		t.Fatalf("policy_change must come right before the first decision under it: %+v", all)
	}
	var d diff
	if err := json.Unmarshal(all[i].Details, &d); err != nil {
		t.Fatal(err)
	}
	_, hash := self(t)
	if d.Entries != 2 || len(d.Added) != 1 || d.Added[0].Path != "/usr/bin/other" || len(d.Removed) != 0 ||
		len(d.Changed) != 1 || d.Changed[0].Hash != hash || len(d.Changed[0].Before.Write) != 0 ||
		!slices.Equal(d.Changed[0].After.Write, []string{"svc"}) {
		t.Errorf("diff: %s", all[i].Details)
	}

	// Removing everything, then breaking the file, are changes too.
	replaceConfig(t, ts, grant{read: []string{"svc"}})
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	os.WriteFile(ts.config+".new", []byte("{not json"), 0o600)
	os.Rename(ts.config+".new", ts.config)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusError, protocol.ReasonConfigInvalid)
	changes := rec.events(audit.EventPolicyChange)
	if len(changes) != 3 {
		t.Fatalf("want 3 policy changes, got %d", len(changes))
	}
	var d2, d3 diff
	json.Unmarshal(changes[1].Details, &d2)
	json.Unmarshal(changes[2].Details, &d3)
	if len(d2.Removed) != 1 || len(d2.Changed) != 1 || d3.Error == "" {
		t.Errorf("changes: %s / %s", changes[1].Details, changes[2].Details)
	}
}

func TestIdleConfigEditIsRecorded(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, withAudit(rec, 5*time.Millisecond))
	// Once a request is answered, the daemon has its baseline.
	mustStatus(t, ts.dial(t).roundTrip(`{"type":"REQUEST","action":"check"}`), protocol.StatusSuccess, "")
	replaceConfig(t, ts, grant{read: []string{"svc", "more"}})
	waitUntil(t, func() bool { return len(rec.events(audit.EventPolicyChange)) == 1 })
}

// The server's records go through a real log: the chain verifies and
// nothing the client wrote as a value is in it.
func TestRealLogVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, nil, &grant{read: []string{"svc"}, write: []string{"svc"}}, withAudit(l, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "k", "hunter2-secret")), protocol.StatusSuccess, "")
	mustStatus(t, c.roundTrip(readReq("svc", "k")), protocol.StatusSuccess, "")
	ts.stop(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := audit.Verify(path); err != nil || n != 2 {
		t.Fatalf("Verify: %d %v", n, err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "hunter2") {
		t.Error("a value reached the audit log")
	}
	if err := l.Log(context.Background(), audit.Record{Event: "x"}); !errors.Is(err, audit.ErrClosed) {
		t.Error("Log after Close succeeded")
	}
}
