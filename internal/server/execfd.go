package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/policy"
	"github.com/The-17/keychain-auth/protocol"
)

// Descriptor requests ("exec_fd":true) come from `keychain-auth exec`: the
// request line arrives with one open descriptor on the program the CLI is
// about to execute, and the daemon judges that program, not the CLI. The
// CLI is verified like any peer at connect; only the daemon's own binary
// (Options.ExecHash) may send a descriptor, because only it is known to
// execute the very descriptor it sent, with the values in the environment
// only. One descriptor request per connection: the reply closes it.

// fdInbox holds descriptors received on a connection until the request
// line they came with is handled. It never holds more than one: extras are
// closed on arrival and remembered as such, so a flood cannot exhaust the
// daemon's descriptor table.
type fdInbox struct {
	fd    int // -1 when empty
	extra bool
}

func newFDInbox() *fdInbox { return &fdInbox{fd: -1} }

// take returns the descriptor received so far (-1 if none) and whether
// more arrived (or arrived damaged), and empties the inbox. The caller owns
// the descriptor.
func (b *fdInbox) take() (fd int, extra bool) {
	fd, extra = b.fd, b.extra
	b.fd, b.extra = -1, false
	return fd, extra
}

func (b *fdInbox) closeAll() {
	if fd, _ := b.take(); fd >= 0 {
		closeFD(fd)
	}
}

var execFDKey = []byte(`exec_fd`)

// handleDescriptor answers a line that came with a descriptor or asks for
// one. handled is false for every other line, which then goes through
// handleLine unchanged. Every descriptor is closed before it returns.
func (c *session) handleDescriptor(ctx context.Context, line []byte) (resp *protocol.Response, closeAfter, handled bool) {
	fd, extra := c.inbox.take()
	if fd < 0 && !extra && !bytes.Contains(line, execFDKey) {
		return c.plainLine(ctx)
	}
	var f *os.File
	if fd >= 0 {
		f = os.NewFile(uintptr(fd), "exec descriptor")
		defer f.Close()
	}
	req, decErr := protocol.DecodeRequestSecrets(line)
	defer req.ClearSecrets()
	if fd < 0 && !extra && (decErr != nil || !req.ExecFD) {
		return c.plainLine(ctx)
	}
	rec := audit.Record{Event: audit.EventRequest}
	fillRequest(&rec, req)
	fail := func(reason protocol.Reason, msg string) *protocol.Response {
		rec.Result, rec.Reason, rec.Message = resultOf(reason), string(reason), msg
		if c.audit(ctx, rec) != nil {
			return protocol.Failure(req.ID, protocol.ReasonInternalError, msgAuditDown)
		}
		return protocol.Failure(req.ID, reason, msg)
	}

	if reason, msg := c.recheck(); reason != "" {
		c.log.Info("peer failed its re-check; closing", "reason", reason)
		return fail(reason, msg), true, true
	}
	switch {
	case decErr != nil:
		return fail(protocol.ReasonMalformedRequest, decErr.Error()), true, true
	case !req.ExecFD:
		return fail(protocol.ReasonMalformedRequest, `a descriptor came with a request without "exec_fd":true`), true, true
	case f == nil || extra:
		return fail(protocol.ReasonMalformedRequest, `"exec_fd":true needs exactly one descriptor, sent with the request line (SCM_RIGHTS)`), true, true
	}
	if !c.isExecClient() {
		c.log.Warn("refused a descriptor from a client that is not keychain-auth")
		return fail(protocol.ReasonActionNotInPolicy, "only the daemon's own keychain-auth binary (keychain-auth exec) may send a descriptor; "+
			"if this is keychain-auth exec, its binary differs from the running daemon's: restart the daemon after upgrading keychain-auth"), true, true
	}
	// A config the daemon cannot use refuses every request.
	if dec := c.identify(ctx); transient(dec) {
		return fail(dec.Reason, dec.Message), true, true
	}

	id, path, reason, msg := c.attestDescriptor(ctx, f)
	if path != "" || id.Hash != "" {
		rec.Details = execDetails(id.Hash, path)
	}
	if reason != "" {
		c.log.Info("exec descriptor refused", "exec_path", path, "reason", reason)
		return fail(reason, msg), true, true
	}
	grant, deny := policy.Identify(c.cfg.PolicyEntries(), policy.Caller{Hash: id.Hash, Path: path, UID: c.peerUID})
	if !deny.Allowed() {
		if deny.Reason == protocol.ReasonUnregisteredBinary || deny.Reason == protocol.ReasonHashMismatch {
			c.recordExecPending(ctx, id.Hash, path, req.ExecArgv)
		}
		c.log.Info("exec child refused", "exec_path", path, "exec_hash", id.Hash, "reason", deny.Reason)
		return fail(deny.Reason, deny.Message), true, true
	}
	if dec := grant.Authorize(req); !dec.Allowed() {
		c.log.Info("exec child denied", "exec_path", path, "service", req.Service, "reason", dec.Reason)
		return fail(dec.Reason, dec.Message), true, true
	}
	out := c.execute(ctx, req)
	if out.listTargets {
		rec.Targets = out.targets
	}
	if out.reason != "" {
		c.log.Warn("exec request failed", "service", req.Service, "reason", out.reason, "err", out.err)
		r := fail(out.reason, out.message)
		r.Missing = out.missing
		return r, true, true
	}
	rec.Result = audit.ResultApproved
	if c.audit(ctx, rec) != nil {
		return protocol.Failure(req.ID, protocol.ReasonInternalError, msgAuditDown), true, true
	}
	r := protocol.Success(req.ID, out.results)
	r.Missing = out.missing
	return r, true, true
}

// execDetails names the program a descriptor request was for, in the audit
// record's details: exec_hash is its identity, exec_path the kernel's name
// for the descriptor's file.
func execDetails(hash, path string) json.RawMessage {
	b, err := json.Marshal(struct {
		Hash string `json:"exec_hash,omitempty"`
		Path string `json:"exec_path,omitempty"`
	}{hash, path})
	if err != nil {
		return nil
	}
	return b
}

// attestDescriptor hashes the program behind f, refusing what cannot be the
// image that will run.
func (c *session) attestDescriptor(ctx context.Context, f *os.File) (attest.Identity, string, protocol.Reason, string) {
	path := descriptorPath(f)
	fi, err := f.Stat()
	if err != nil {
		c.log.Error("cannot stat exec descriptor", "err", err)
		return attest.Identity{}, path, protocol.ReasonInternalError, "the daemon could not examine the program's descriptor"
	}
	if !fi.Mode().IsRegular() {
		return attest.Identity{}, path, protocol.ReasonMalformedRequest, fmt.Sprintf("the descriptor is not a regular file (%s); exec runs program files only", fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return attest.Identity{}, path, protocol.ReasonMalformedRequest, "the descriptor's file is not executable (no x permission)"
	}
	id, err := c.hashFile(ctx, f)
	if err != nil {
		switch {
		case errors.Is(err, attest.ErrUntrustedFS), errors.Is(err, attest.ErrTooLarge):
			return id, path, protocol.ReasonUnverifiableProcess, err.Error()
		case errors.Is(err, attest.ErrChanged):
			return id, path, protocol.ReasonProcessChanged, "the program changed while it was being hashed; try again once nothing writes to it"
		case errors.Is(err, context.Canceled) && ctx.Err() == nil:
			return id, path, protocol.ReasonProcessChanged, "the client hung up during verification"
		case errors.Is(err, fs.ErrPermission):
			return id, path, protocol.ReasonUnverifiableProcess, "the daemon may not read the program's file"
		}
		c.log.Error("cannot hash exec descriptor", "exec_path", path, "err", err)
		return id, path, protocol.ReasonInternalError, "the daemon could not hash the program"
	}
	if script, err := isScript(f); err != nil {
		c.log.Error("cannot read exec descriptor", "exec_path", path, "err", err)
		return id, path, protocol.ReasonInternalError, "the daemon could not read the program"
	} else if script {
		return id, path, protocol.ReasonUnverifiableProcess, "the program is a #! script: the kernel would run its interpreter, " +
			"which reads the script again by name, so the checked file would not be what runs; " +
			"run the interpreter itself (registered with --allow-interpreter) or a compiled program"
	}
	return id, path, "", ""
}

// isScript reports whether f starts with "#!".
func isScript(f *os.File) (bool, error) {
	var b [2]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return n == 2 && b[0] == '#' && b[1] == '!', nil
}

// recordExecPending queues the program of a refused descriptor request with
// its own identity and command line; the process facts are the CLI's, which
// the program replaces in the same process.
func (c *session) recordExecPending(ctx context.Context, hash, path string, argv []string) {
	if c.s.opts.PendingFile == "" {
		return
	}
	rec := c.pendingRecord()
	rec.Hash, rec.Path, rec.CommandLine = hash, path, argv
	// The process is the CLI; the team id would be keychain-auth's.
	rec.TeamID = ""
	c.queuePending(ctx, rec)
}

// plainLine lets handleLine answer a line without a descriptor. The
// daemon's own binary was let in unregistered (for descriptor requests); a
// plain request from it is refused there like any unregistered caller's,
// and queued here as denyConnect would have.
func (c *session) plainLine(ctx context.Context) (*protocol.Response, bool, bool) {
	if c.isExecClient() {
		if dec := c.identify(ctx); dec.Reason == protocol.ReasonUnregisteredBinary || dec.Reason == protocol.ReasonHashMismatch {
			c.recordPending(ctx)
		}
	}
	return nil, false, false
}

// isExecClient reports whether the peer runs the binary allowed to send
// descriptor requests.
func (c *session) isExecClient() bool {
	return c.s.opts.ExecHash != "" && c.ident.Hash == c.s.opts.ExecHash
}
