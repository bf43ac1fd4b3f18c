// Package audit writes and reads the append-only audit log: one JSON line per
// decision the daemon makes, chained by SHA-256 so that an edited, deleted or
// reordered record is detectable, and rotated by size with the chain kept.
package audit

import "time"

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

// Record is one line of the log. It never holds a secret value.
type Record struct {
	Time       time.Time      `json:"time"`
	Seq        uint64         `json:"seq"`
	Event      string         `json:"event"`
	Action     string         `json:"action,omitempty"`
	Service    string         `json:"service,omitempty"`
	Match      string         `json:"match,omitempty"`
	Targets    []string       `json:"targets,omitempty"`
	Result     string         `json:"result,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Message    string         `json:"message,omitempty"`
	PID        int            `json:"pid,omitempty"`
	UID        *uint32        `json:"uid,omitempty"`
	BinaryPath string         `json:"binary_path,omitempty"`
	BinaryHash string         `json:"binary_hash,omitempty"`
	Conn       uint64         `json:"conn,omitempty"`
	RequestID  string         `json:"request_id,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
	Prev       string         `json:"prev"`
	Hash       string         `json:"hash"`
}
