// Package protocol defines version 1 of the keychain-auth wire protocol: the
// request and response types, the validation rules every request must pass, and
// newline-delimited JSON framing with a hard cap on line length. It performs no
// policy decisions and touches no store; it is fuzzed.
//
// Requests are decoded and responses encoded by hand, not with encoding/json:
// the decoder to be strict about what it accepts, the encoder because every
// reply goes through it and encoding/json was a large share of the daemon's
// time. The encoder's output is encoding/json's, byte for byte, which a
// differential fuzz test pins.
package protocol

import "encoding/json"

// Version is the protocol version this package speaks.
const Version = "1"

// MaxLineSize is the largest request line accepted, excluding the newline.
const MaxLineSize = 1 << 20

// Limits from the protocol contract.
const (
	MaxServiceLen   = 255
	MaxTargets      = 1000
	MaxTargetLen    = 1024
	MaxValueLen     = 64 << 10
	MaxAttributes   = 64
	MaxAttrKeyLen   = 255
	MaxAttrValueLen = 1024
)

// TypeRequest and TypeResponse are the only accepted values of "type".
const (
	TypeRequest  = "REQUEST"
	TypeResponse = "RESPONSE"
)

// Action is what a request asks the daemon to do.
type Action string

const (
	ActionRead   Action = "read"
	ActionWrite  Action = "write"
	ActionDelete Action = "delete"
	ActionSearch Action = "search"
	ActionCheck  Action = "check"
)

// Match selects how targets are interpreted.
type Match string

const (
	MatchExact  Match = "exact"
	MatchPrefix Match = "prefix"
)

// Status is the outcome class of a response.
type Status string

const (
	StatusSuccess Status = "success"
	StatusDenied  Status = "denied"
	StatusError   Status = "error"
)

// Reason is the machine-readable cause of a non-success response.
type Reason string

const (
	ReasonUnregisteredBinary Reason = "unregistered_binary"
	ReasonActionNotInPolicy  Reason = "action_not_in_policy"
	ReasonServiceNotAllowed  Reason = "service_not_allowed"
	ReasonProcessChanged     Reason = "process_changed"
	ReasonProcessTampered    Reason = "process_tampered"
	ReasonForeignUser        Reason = "foreign_user"
	ReasonMalformedRequest   Reason = "malformed_request"
	ReasonRequestTooLarge    Reason = "request_too_large"
	ReasonHashMismatch       Reason = "hash_mismatch"
	ReasonNotFound           Reason = "not_found"
	ReasonBackendLocked      Reason = "backend_locked"
	ReasonBackendError       Reason = "backend_error"
	ReasonConfigInvalid      Reason = "config_invalid"
	ReasonRateLimited        Reason = "rate_limited"
	ReasonInternalError      Reason = "internal_error"
	// ReasonUnverifiableProcess: a check the daemon must make on the peer
	// could not be made (its image is on a FUSE or network filesystem, is
	// over the size cap, or a part of the process could not be read), so it
	// is refused rather than served on what could be checked.
	ReasonUnverifiableProcess Reason = "unverifiable_process"
)

// StatusOf returns the status that always accompanies reason r.
func StatusOf(r Reason) Status {
	switch r {
	case "":
		return StatusSuccess
	case ReasonUnregisteredBinary, ReasonActionNotInPolicy, ReasonServiceNotAllowed,
		ReasonProcessChanged, ReasonProcessTampered, ReasonForeignUser, ReasonHashMismatch,
		ReasonUnverifiableProcess:
		return StatusDenied
	default:
		return StatusError
	}
}

// Request is one line sent by a client.
type Request struct {
	Type string `json:"type"`
	// ID is any JSON scalar (string, number, bool, null); it is echoed verbatim.
	ID         json.RawMessage   `json:"id,omitempty"`
	Action     Action            `json:"action"`
	Service    string            `json:"service,omitempty"`
	Match      Match             `json:"match,omitempty"`
	Targets    []string          `json:"targets,omitempty"`
	Values     []string          `json:"values,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	RequireAll bool              `json:"require_all,omitempty"`
	// ExecFD says the request line arrives with one open descriptor
	// (SCM_RIGHTS) on the program the caller is about to execute: the
	// daemon judges that program's hash, not the caller's. Only the
	// daemon's own binary (keychain-auth exec) may send one.
	ExecFD bool `json:"exec_fd,omitempty"`
	// ExecArgv is the command line the program will run with, recorded
	// in pending.json when the program is not registered. Only with ExecFD.
	ExecArgv []string `json:"exec_argv,omitempty"`

	// secrets holds the values of a request decoded by
	// DecodeRequestSecrets, as bytes its owner clears, in place of Values.
	secrets     [][]byte
	holdSecrets bool
}

// ValueCount is the number of values the request carries.
func (r *Request) ValueCount() int {
	if r.holdSecrets {
		return len(r.secrets)
	}
	return len(r.Values)
}

// SecretValue returns the i-th value as bytes. For a request from
// DecodeRequestSecrets they are the request's own, which ClearSecrets
// wipes (a caller that clears them clears the request's); otherwise a copy
// of Values[i].
func (r *Request) SecretValue(i int) []byte {
	if r.holdSecrets {
		return r.secrets[i]
	}
	return []byte(r.Values[i])
}

// ClearSecrets wipes the values DecodeRequestSecrets decoded.
func (r *Request) ClearSecrets() {
	for _, v := range r.secrets {
		clear(v)
	}
}

// Limits of exec_argv, which only feeds the pending queue.
const (
	MaxExecArgs   = 256
	MaxExecArgLen = 4096
)

// Result is one item of a successful response. Value is set only for reads.
type Result struct {
	Target     string            `json:"target"`
	Value      *string           `json:"value,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`

	// secret is a value held as bytes its owner clears (see WithSecret);
	// it is encoded in place of Value.
	secret []byte
}

// WithSecret returns res with value as its value, held as the caller's
// bytes rather than copied into a string, which could never be wiped: the
// daemon answers reads this way and clears the bytes with ClearSecrets once
// the reply is encoded. value must not change until then; a nil value is
// an empty one.
func (res Result) WithSecret(value []byte) Result {
	if value == nil {
		value = []byte{}
	}
	res.Value, res.secret = nil, value
	return res
}

// ClearSecrets wipes the values given with WithSecret; the response must
// not be encoded after.
func (r *Response) ClearSecrets() {
	for i := range r.Results {
		clear(r.Results[i].secret)
	}
}

// Response is one line sent by the daemon.
type Response struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Status  Status          `json:"status"`
	Reason  Reason          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
	Missing []string        `json:"missing,omitempty"`
	// Results is encoded (possibly as []) exactly when Status is success.
	Results []Result `json:"results"`
}
