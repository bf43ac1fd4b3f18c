package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/memory"
	"github.com/The-17/keychain-auth/protocol"
)

// pipeline sends n reads of svc/a with ids 1..n in one write and returns
// the n replies.
func pipeline(t *testing.T, c *conn, n int) []protocol.Response {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"type":"REQUEST","id":%d,"action":"read","service":"svc","targets":["a"]}`+"\n", i)
	}
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	out := make([]protocol.Response, n)
	for i := range out {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reply %d: %v", i+1, err)
		}
		if err := json.Unmarshal(line, &out[i]); err != nil {
			t.Fatalf("reply %d %q: %v", i+1, line, err)
		}
	}
	return out
}

// A pipelined run of reads, whose records are written together, is
// recorded completely, in order, in one intact chain, before its replies.
func TestPipelinedRunIsAuditedInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, nil, &grant{read: []string{"svc"}, write: []string{"svc"}}, withAudit(l, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "v")), protocol.StatusSuccess, "")
	const n = 300
	for i, r := range pipeline(t, c, n) {
		if r.Status != protocol.StatusSuccess || string(r.ID) != strconv.Itoa(i+1) || len(r.Results) != 1 || r.Results[0].Value == nil || *r.Results[0].Value != "v" {
			t.Fatalf("reply %d: %+v", i+1, r)
		}
		if i == n-1 {
			// The replies are out: every record is in the file already,
			// before any fsync or Close.
			var reads int
			audit.Read(path, func(e audit.Entry) error {
				if e.Err == nil && e.Record.Action == "read" {
					reads++
				}
				return nil
			})
			if reads != n {
				t.Fatalf("%d replies received, %d read records in the file", n, reads)
			}
		}
	}
	ts.stop(t)
	l.Close()
	if _, err := audit.Verify(path); err != nil {
		t.Fatal(err)
	}
	var ids []string
	audit.Read(path, func(e audit.Entry) error {
		if e.Record.Action == "read" {
			ids = append(ids, e.Record.RequestID)
		}
		return nil
	})
	for i, id := range ids {
		if id != strconv.Itoa(i+1) {
			t.Fatalf("record %d has request id %s: the run's order was lost", i+1, id)
		}
	}
}

// heldRecorder is a recorder that holds records like audit.Log's Append,
// and whose Flush can be made to fail: a write error on the audit disk at
// the moment a pipelined run's records are written, which a real log
// cannot be made to produce on demand from here.
type heldRecorder struct {
	recorder
	mu        sync.Mutex
	held      []audit.Record
	failFlush bool
}

func (h *heldRecorder) Append(r audit.Record) (audit.Ticket, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, r)
	return audit.Ticket{}, nil
}

func (h *heldRecorder) Flush(audit.Ticket) error {
	h.mu.Lock()
	held, fail := h.held, h.failFlush
	h.held = nil
	h.mu.Unlock()
	if fail {
		return audit.ErrUnavailable
	}
	for _, r := range held {
		h.recorder.Log(context.Background(), r)
	}
	return nil
}

// When the records of a pipelined run cannot be written, none of its
// replies carries a value: each becomes the refusal an unrecorded request
// gets, echoing its id.
func TestLostRecordsTurnHeldRepliesIntoRefusals(t *testing.T) {
	h := &heldRecorder{}
	ts := startServer(t, nil, &grant{read: []string{"svc"}, write: []string{"svc"}}, withAudit(h, -1))
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "secret-value")), protocol.StatusSuccess, "")
	h.mu.Lock()
	h.failFlush = true
	h.mu.Unlock()
	for i, r := range pipeline(t, c, 50) {
		if r.Status != protocol.StatusError || r.Reason != protocol.ReasonInternalError || r.Message != msgAuditDown ||
			string(r.ID) != strconv.Itoa(i+1) || len(r.Results) != 0 {
			t.Fatalf("reply %d with its record lost: %+v", i+1, r)
		}
	}
	h.mu.Lock()
	h.failFlush = false
	h.mu.Unlock()
	// The same connection is served again once records can be written.
	for i, r := range pipeline(t, c, 3) {
		if r.Status != protocol.StatusSuccess || *r.Results[0].Value != "secret-value" {
			t.Fatalf("reply %d after the log recovered: %+v", i+1, r)
		}
	}
	if n := len(h.events(audit.EventRequest)); n != 1+3 {
		t.Fatalf("%d request records kept, want the write and the 3 answered reads", n)
	}
}

// keepBackend hands out values and keeps the slices it handed out, to see
// what the daemon left in them.
type keepBackend struct {
	backend.Backend
	mu     sync.Mutex
	handed [][]byte
}

func (k *keepBackend) Get(ctx context.Context, service, target string) (backend.Item, error) {
	it, err := k.Backend.Get(ctx, service, target)
	if err == nil {
		k.mu.Lock()
		k.handed = append(k.handed, it.Value)
		k.mu.Unlock()
	}
	return it, err
}

// Once a read is answered, the value the store handed the daemon is wiped:
// the reply carried it as bytes, not as a string copy that no one can
// clear.
func TestAnsweredValuesAreWiped(t *testing.T) {
	kb := &keepBackend{Backend: memory.New()}
	ts := startServer(t, kb, &grant{read: []string{"svc"}, write: []string{"svc"}})
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "secret-value")), protocol.StatusSuccess, "")
	for i, r := range pipeline(t, c, 20) {
		if r.Status != protocol.StatusSuccess || *r.Results[0].Value != "secret-value" {
			t.Fatalf("reply %d: %+v", i+1, r)
		}
	}
	// The daemon wipes a value once its reply is queued, which for the
	// last of a run is just after it was written: one more round trip
	// orders the check after that.
	mustStatus(t, c.roundTrip(`{"type":"REQUEST","action":"check"}`), protocol.StatusSuccess, "")
	kb.mu.Lock()
	defer kb.mu.Unlock()
	if len(kb.handed) != 20 {
		t.Fatalf("the store handed out %d values, want 20", len(kb.handed))
	}
	for i, v := range kb.handed {
		if len(v) != len("secret-value") || bytes.Count(v, []byte{0}) != len(v) {
			t.Fatalf("value %d handed to the daemon still holds %q after the reply", i+1, v)
		}
	}
}

// A program refused in a loop gets every refusal, but the audit log gets
// at most about one record a second for it, each saying how many refusals
// it stands for: before, each refusal wrote its own record and a loop
// rotated the whole history away in under a minute.
func TestRepeatedRefusalsAreCountedNotEachRecorded(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, nil, withAudit(rec, -1))
	const n = 30
	start := time.Now()
	for range n {
		c := ts.dial(t)
		mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
		c.nc.Close()
	}
	elapsed := time.Since(start)
	total := func() (sum, records int) {
		for _, r := range rec.events(audit.EventConnectDenied) {
			records++
			sum++
			if len(r.Details) > 0 {
				var d struct{ Repeats int }
				if json.Unmarshal(r.Details, &d) != nil || d.Repeats < 1 {
					t.Fatalf("details %s", r.Details)
				}
				sum += d.Repeats - 1
			}
		}
		return sum, records
	}
	waitUntil(t, func() bool { s, _ := total(); return s >= n })
	sum, records := total()
	if sum != n {
		t.Fatalf("the records count %d refusals, want %d", sum, n)
	}
	// One record when the first window opens, then at most two a second:
	// the next admitted one and a count of the rest.
	if max := 1 + 2*int(elapsed/time.Second+1); records > max {
		t.Fatalf("%d connect_denied records for %d refusals in %v, want at most %d", records, n, elapsed, max)
	}
	if records == n {
		t.Fatalf("every refusal wrote its own record")
	}
}
