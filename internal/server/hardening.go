package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/The-17/keychain-auth/internal/peer"
	"github.com/The-17/keychain-auth/protocol"
)

// tracerRecheck is how often, at most, a session re-reads whether its peer
// is being traced. A point-in-time TracerPid check cannot stop a tracer that
// attaches, injects and detaches between two requests, so checking before
// every request would cost a /proc/<pid>/status read each time for little
// more assurance; the check at connect and this bound catch a debugger left
// attached.
const tracerRecheck = 50 * time.Millisecond

// tampered asks whether the peer now runs code its image hash does not
// describe: traced, or started with the dynamic loader told to load extra
// libraries. At connect it runs the full check and pins the peer's address
// space; before later requests it confirms, with one pread, that the peer has
// not exec'd since (an exec of the same binary keeps the image hash but may
// bring LD_PRELOAD), and re-checks tracing at most every tracerRecheck. A peer
// that cannot be pinned gets the full check before every request.
//
// A check that cannot be made refuses the peer (unverifiable_process) in
// every mode: the peer is never served on what could be checked.
func (c *session) tampered(atConnect bool) (protocol.Reason, string) {
	if atConnect {
		if err := c.peer.PinExec(); err != nil {
			return c.judge("", fmt.Errorf("cannot tell later whether it exec'd: %w", err))
		}
		if reason, msg := c.judge(c.peer.Tampered()); reason != "" {
			return reason, msg
		}
		c.step("tamper-checked")
		// The process just checked must be the pinned one.
		if execed, err := c.peer.Execed(); err != nil || execed {
			return protocol.ReasonProcessChanged, msgExeced
		}
		c.tracerChecked = time.Now()
		return "", ""
	}
	if execed, err := c.peer.Execed(); err != nil || execed {
		c.log.Info("peer exec'd since verification", "err", err)
		return protocol.ReasonProcessChanged, msgExeced
	}
	if now := time.Now(); now.Sub(c.tracerChecked) >= tracerRecheck {
		var why string
		tracer, tid, err := c.peer.TracedBy()
		if tracer != 0 {
			why = peer.TracedReason(tracer, tid, c.peer.PID)
		}
		if reason, msg := c.judge(why, err); reason != "" {
			return reason, msg
		}
		c.tracerChecked = now
	}
	return "", ""
}

const msgExeced = "the process replaced its program (exec) since it was verified; reconnect"

// judge turns what a check found, or its failure to finish, into a refusal.
func (c *session) judge(why string, err error) (protocol.Reason, string) {
	switch {
	case why != "":
		c.log.Warn("peer is tampered with; refusing it", "why", why)
		return protocol.ReasonProcessTampered, why + "; the daemon serves no process whose code may differ from its verified binary"
	case errors.Is(err, peer.ErrGone):
		c.log.Info("peer exited during the tamper check", "err", err)
		return protocol.ReasonProcessChanged, "the process exited or changed during verification; reconnect"
	case err != nil:
		c.log.Warn("cannot check the peer for tampering; refusing it", "err", err)
		return protocol.ReasonUnverifiableProcess, "the daemon could not check this process for tampering (" + err.Error() +
			"); it serves no process it cannot check"
	}
	return "", ""
}

// clearLine zeroes a request line once it has been handled: a write
// carries secret values in it, and the reader's buffer lives as long as the
// connection. Nothing handleLine returns points into the line (the decoder
// copies every field, the id included), so the reply is unaffected.
func clearLine(line []byte) { clear(line) }

// step runs the test hook for a named step of the checks.
func (c *session) step(name string) {
	if f := c.s.opts.atStep; f != nil {
		f(name)
	}
}
