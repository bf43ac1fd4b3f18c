package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/The-17/keychain-auth/protocol"
)

// Sentinel errors for errors.Is. A *Error from the daemon matches ErrDenied,
// ErrNotFound or ErrUnregistered according to its status and reason; the
// others come from the client side.
var (
	// ErrDenied matches every response with status "denied".
	ErrDenied = errors.New("denied by keychain-auth")
	// ErrNotFound matches reason "not_found": a RequireAll read or delete named
	// targets that do not exist (listed in Error.Missing).
	ErrNotFound = errors.New("target not found")
	// ErrUnregistered matches reasons "unregistered_binary" and
	// "hash_mismatch": the daemon does not know this program's binary.
	ErrUnregistered = errors.New("this program's binary is not registered with keychain-auth")
	// ErrNoDaemon is returned by Dial when nothing answers on the socket.
	ErrNoDaemon = errors.New("daemon is not reachable")
	// ErrClosed is returned by calls on a client whose connection was closed,
	// by Close, by the daemon, or after an interrupted request.
	ErrClosed = errors.New("connection to the daemon is closed")
	// ErrValueTooLarge is returned by Write, before anything is sent, when a
	// value is longer than the protocol's per-value limit (64 KiB).
	ErrValueTooLarge = errors.New("value too large")
	// ErrProtocol is returned when the daemon's reply does not follow the
	// protocol (bad JSON, wrong id); the connection is closed.
	ErrProtocol = errors.New("the daemon sent an invalid response")
)

// Error is a non-success response from the daemon. The daemon guarantees that
// Message never contains a secret value; Missing holds target names only.
type Error struct {
	Action  protocol.Action // what the request asked for
	Service string          // the service it named, if any
	Status  protocol.Status // denied or error
	Reason  protocol.Reason
	Message string   // the daemon's explanation, for people
	Missing []string // with ReasonNotFound: the absent targets
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keychain-auth: ")
	b.WriteString(string(e.Action))
	if e.Service != "" {
		fmt.Fprintf(&b, " on service %q", e.Service)
	}
	fmt.Fprintf(&b, ": %s (%s)", e.Status, e.Reason)
	msg := e.Message
	if msg == "" {
		msg = hint(e.Reason)
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "; missing targets: %s", strings.Join(e.Missing, ", "))
	}
	return b.String()
}

// Is lets errors.Is classify daemon errors without comparing reasons by hand.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrDenied:
		return e.Status == protocol.StatusDenied
	case ErrNotFound:
		return e.Reason == protocol.ReasonNotFound
	case ErrUnregistered:
		return e.Reason == protocol.ReasonUnregisteredBinary || e.Reason == protocol.ReasonHashMismatch
	}
	return false
}

// closesConnection reports whether the daemon closes the connection after
// replying with this reason, so the client can say so on the next call
// instead of failing with a bare EOF.
func (e *Error) closesConnection() bool {
	switch e.Reason {
	case protocol.ReasonUnregisteredBinary, protocol.ReasonHashMismatch, protocol.ReasonProcessChanged,
		protocol.ReasonForeignUser, protocol.ReasonRequestTooLarge:
		return true
	}
	return false
}

// hint stands in when the daemon sent no message, so the error still says what
// to do next.
func hint(r protocol.Reason) string {
	switch r {
	case protocol.ReasonUnregisteredBinary:
		return "register this program with `keychain-auth register <path>` or approve it with `keychain-auth list-pending` and `keychain-auth approve <hash>`"
	case protocol.ReasonHashMismatch:
		return "the binary at this path changed since it was registered; if that was an intended upgrade, run `keychain-auth upgrade <path>`"
	case protocol.ReasonActionNotInPolicy, protocol.ReasonServiceNotAllowed:
		return "grant the privilege with `keychain-auth grant`"
	case protocol.ReasonNotFound:
		return "nothing was read or deleted"
	case protocol.ReasonBackendLocked:
		return "unlock the secret store and retry"
	case protocol.ReasonRateLimited:
		return "retry later"
	}
	return ""
}
