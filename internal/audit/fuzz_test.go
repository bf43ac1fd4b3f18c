package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseRecord feeds arbitrary lines to the parser that Read and Verify
// use. No line may panic it; a line it passes as verified must be exactly
// the record's canonical encoding; and any record it reads that Log could
// have written (a time within years 0-9999, details a compact object) must,
// once hashed as Log hashes it, verify: otherwise a log the daemon wrote
// could fail `keychain-auth audit --verify`.
func FuzzParseRecord(f *testing.F) {
	uid := uint32(1000)
	for _, r := range []Record{
		{Time: time.Date(2026, 11, 29, 10, 0, 0, 123, time.UTC), Seq: 1, Event: EventDaemonStart, Details: json.RawMessage(`{"version":"1"}`)},
		{Time: time.Date(2026, 11, 29, 10, 0, 1, 0, time.UTC), Seq: 2, Event: EventRequest, Action: "read", Service: "aws",
			Match: "exact", Targets: []string{"a", "b\u2028\"\\"}, Result: ResultDenied, Reason: "service_not_allowed",
			PID: 42, UID: &uid, BinaryPath: "/usr/bin/x", BinaryHash: "sha256:" + hex.EncodeToString(make([]byte, 32)),
			Conn: 3, RequestID: "7", Prev: hex.EncodeToString(make([]byte, 32))},
		{Time: time.Date(2026, 11, 29, 10, 0, 2, 0, time.UTC), Seq: 3, Event: EventConnectDenied, Message: "x\x00y"},
	} {
		f.Add(logged(f, r))
	}
	f.Add([]byte(`{"time":"2026-11-29T10:00:00+02:00","seq":1,"event":"request","hash":"00"}`))
	f.Add([]byte(`{"time":"2026-11-29T10:00:00Z","details":[1],"uid":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, problem := checkLine(line)
		if problem == "" {
			again, err := rec.MarshalJSON()
			if err != nil || !bytes.Equal(again, line) {
				t.Fatalf("verified line does not re-encode to itself (err %v):\n%s\n%s", err, line, again)
			}
		}
		var r Record
		if json.Unmarshal(line, &r) != nil {
			return
		}
		if y := r.Time.UTC().Year(); y < 0 || y > 9999 {
			return
		}
		if len(r.Details) > 0 && !isCompactObject(r.Details) {
			return
		}
		written := logged(t, r)
		if _, problem := checkLine(written); problem != "" {
			t.Fatalf("a record Log could write does not verify: %s\n%s", problem, written)
		}
	})
}

// logged is r as Log stores it (without the newline): its canonical
// encoding plus the SHA-256 of that encoding as its hash.
func logged(tb testing.TB, r Record) []byte {
	tb.Helper()
	r.Hash = ""
	canonical, err := r.MarshalJSON()
	if err != nil {
		tb.Fatalf("encode %+v: %v", r, err)
	}
	sum := sha256.Sum256(canonical)
	r.Hash = hex.EncodeToString(sum[:])
	line, err := r.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	return line
}
