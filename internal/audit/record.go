// Package audit writes and reads the append-only audit log: one JSON line per
// decision the daemon makes, chained by SHA-256 so that an edited, deleted or
// reordered record is detectable, and rotated by size with the chain kept.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event kinds.
const (
	EventRequest       = "request"
	EventConnectDenied = "connect_denied"
	EventPolicyChange  = "policy_change"
	EventDaemonStart   = "daemon_start"
	EventDaemonStop    = "daemon_stop"
)

// Results.
const (
	ResultApproved = "approved"
	ResultDenied   = "denied"
	ResultError    = "error"
)

// Record is one line of the log. It has no field for a secret value, and
// callers must not put one in Message or Details.
//
// Records of events "request" and "connect_denied", and any record with an
// Action, are "access records": they are written with every field from time
// to request_id, lists as [] and an unknown uid as null, so that a consumer
// always finds the same keys. Other events (daemon_start, daemon_stop,
// policy_change) carry time, seq, event, prev and hash plus whichever other
// fields are set. Message and Details appear only when set.
type Record struct {
	Time    time.Time // assigned by Log
	Seq     uint64    // assigned by Log: 1 for the first record ever, then +1
	Event   string
	Action  string
	Service string
	Match   string
	// Targets are the targets named, or for a prefix read/delete and a
	// search the targets actually matched.
	Targets    []string
	Result     string
	Reason     string
	Message    string
	PID        int
	UID        *uint32
	BinaryPath string
	BinaryHash string
	// TeamID is the caller's code-signing team (macOS), as information;
	// written only when set.
	TeamID    string
	Conn      uint64
	RequestID string
	// Details carries event-specific data as a compact JSON object
	// (policy_change diffs, daemon information).
	Details json.RawMessage
	Prev    string // assigned by Log: the previous record's Hash, "" for the first
	Hash    string // assigned by Log
}

// isAccess reports whether r is written with the full field set.
func (r *Record) isAccess() bool {
	return r.Event == EventRequest || r.Event == EventConnectDenied || r.Action != ""
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// times sort as strings and re-encode to the same bytes.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// MarshalJSON writes r in its canonical form (see appendCanonical), with its
// hash member when Hash is set.
func (r Record) MarshalJSON() ([]byte, error) {
	if len(r.Details) > 0 && !isCompactObject(r.Details) {
		return nil, errors.New("audit: record details must be a compact JSON object")
	}
	b := r.appendCanonical(nil)
	if r.Hash != "" {
		b = appendHashMember(b, r.Hash)
	}
	return b, nil
}

// wireRecord is the decoding shape of a line. Whether a member was present
// is not kept: Verify re-encodes the record and compares bytes, which
// catches an added, dropped or reordered member as well as an edited one.
type wireRecord struct {
	Time       string          `json:"time"`
	Seq        uint64          `json:"seq"`
	Event      string          `json:"event"`
	Action     string          `json:"action"`
	Service    string          `json:"service"`
	Match      string          `json:"match"`
	Targets    []string        `json:"targets"`
	Result     string          `json:"result"`
	Reason     string          `json:"reason"`
	Message    string          `json:"message"`
	PID        int             `json:"pid"`
	UID        *uint32         `json:"uid"`
	BinaryPath string          `json:"binary_path"`
	BinaryHash string          `json:"binary_hash"`
	TeamID     string          `json:"team_id"`
	Conn       uint64          `json:"conn"`
	RequestID  string          `json:"request_id"`
	Details    json.RawMessage `json:"details"`
	Prev       string          `json:"prev"`
	Hash       string          `json:"hash"`
}

// UnmarshalJSON reads a record as written by Log. It does not check the
// hash; Verify does.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("field time: %w", err)
	}
	*r = Record{
		Time: t.UTC(), Seq: w.Seq, Event: w.Event, Action: w.Action, Service: w.Service, Match: w.Match,
		Targets: w.Targets, Result: w.Result, Reason: w.Reason, Message: w.Message, PID: w.PID, UID: w.UID,
		BinaryPath: w.BinaryPath, BinaryHash: w.BinaryHash, TeamID: w.TeamID, Conn: w.Conn, RequestID: w.RequestID,
		Prev: w.Prev, Hash: w.Hash,
	}
	if len(w.Details) > 0 && !bytes.Equal(w.Details, []byte("null")) {
		r.Details = w.Details
	}
	return nil
}

// isCompactObject reports whether b is a JSON object with no insignificant
// whitespace, the only form Details may take.
func isCompactObject(b []byte) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return false
	}
	return bytes.Equal(buf.Bytes(), b)
}
