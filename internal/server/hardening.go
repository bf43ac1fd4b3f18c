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
// Only what was seen refuses a peer. A part that cannot be read (the
// environment of a non-dumpable process when the daemon lacks
// CAP_SYS_PTRACE) is logged and the peer is served: refusing it would make
// every such client unusable on the strength of no evidence at all.
func (c *session) tampered(atConnect bool) (protocol.Reason, string) {
	if atConnect {
		c.pinned = c.peer.PinExec() == nil
		reason, msg := c.fullTamperCheck(true)
		if reason == "" && c.pinned {
			// The environment just checked must be the pinned one.
			if execed, err := c.peer.Execed(); err != nil || execed {
				return protocol.ReasonProcessChanged, msgExeced
			}
		}
		c.tracerChecked = time.Now()
		return reason, msg
	}
	if !c.pinned {
		return c.fullTamperCheck(false)
	}
	if execed, err := c.peer.Execed(); err != nil || execed {
		c.log.Info("peer exec'd since verification", "err", err)
		return protocol.ReasonProcessChanged, msgExeced
	}
	if now := time.Now(); now.Sub(c.tracerChecked) >= tracerRecheck {
		tracer, err := c.peer.TracedBy()
		if reason, msg := c.judge(tracedReason(tracer), err, false); reason != "" {
			return reason, msg
		}
		c.tracerChecked = now
	}
	return "", ""
}

const msgExeced = "the process replaced its program (exec) since it was verified; reconnect"

func tracedReason(tracer int) string {
	if tracer == 0 {
		return ""
	}
	return fmt.Sprintf("the process is being traced by pid %d (a debugger or another tracer is attached)", tracer)
}

func (c *session) fullTamperCheck(atConnect bool) (protocol.Reason, string) {
	why, err := c.peer.Tampered()
	return c.judge(why, err, atConnect)
}

// judge turns what a check found into a refusal, or logs why it could not
// finish.
func (c *session) judge(why string, err error, atConnect bool) (protocol.Reason, string) {
	switch {
	case why != "":
		c.log.Warn("peer is tampered with; refusing it", "why", why)
		return protocol.ReasonProcessTampered, why + "; the daemon serves no process whose code may differ from its verified binary"
	case errors.Is(err, peer.ErrGone):
		c.log.Info("peer exited during the tamper check", "err", err)
		return protocol.ReasonProcessChanged, "the process exited or changed during verification; reconnect"
	case err != nil && atConnect:
		c.log.Warn("cannot fully check the peer for tampering; serving it on what could be checked", "err", err)
	case err != nil:
		c.log.Debug("cannot fully check the peer for tampering", "err", err)
	}
	return "", ""
}

// clearLine zeroes a request line once it has been handled: a write
// carries secret values in it, and the reader's buffer lives as long as the
// connection. Nothing handleLine returns points into the line (the decoder
// copies every field, the id included), so the reply is unaffected.
func clearLine(line []byte) { clear(line) }
