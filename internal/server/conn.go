package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/peer"
	"github.com/The-17/keychain-auth/internal/policy"
	"github.com/The-17/keychain-auth/protocol"
)

// session is one client connection. Its requests are handled in order by the
// one goroutine that runs handle; only interrupt is called from elsewhere.
type session struct {
	s       *Server
	nc      net.Conn
	id      uint64
	log     *slog.Logger
	peer    *peer.Peer
	peerUID uint32
	ident   attest.Identity
	path    string
	r       *protocol.Reader
	// inbox holds a descriptor received with a request (see execfd.go).
	inbox *fdInbox

	// grant is the policy computed for cfg; recomputed when the config changes.
	cfg   *config.Config
	grant policy.Grant
	deny  policy.Decision
	// cfgReads is the value of in.n when cfg was last found current (see
	// identify).
	cfgReads uint64

	// tracerChecked is when tracing was last checked (see tampered).
	tracerChecked time.Time

	// in counts the reads from the connection; checkedReads is its value at
	// the last identity re-check (see recheckNeeded).
	in           *readCounter
	checkedReads uint64

	// out holds encoded replies not yet written, queued describes them
	// (see queueReply).
	out    []byte
	queued []queuedReply
	// held is the ticket of the last audit record appended and not yet
	// flushed (holding set); lineHeld says the line being handled has
	// one (see auditHeld).
	held     audit.Ticket
	holding  bool
	lineHeld bool

	mu          sync.Mutex
	interrupted bool
}

// interrupt wakes a session blocked waiting for a request so it can exit.
// A request already being executed finishes and is answered first.
func (c *session) interrupt() {
	c.mu.Lock()
	c.interrupted = true
	c.mu.Unlock()
	c.nc.SetReadDeadline(time.Now())
}

func (c *session) isInterrupted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted
}

// setReadDeadline sets d unless the session was interrupted, whose past
// deadline must stay.
func (c *session) setReadDeadline(d time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.interrupted {
		c.nc.SetReadDeadline(d)
	}
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	c := &session{s: s, nc: nc, id: s.nextConn.Add(1)}
	c.log = s.log.With("conn", c.id)
	c.inbox = newFDInbox()
	defer c.inbox.closeAll()
	c.in = &readCounter{r: requestReader(nc, c.inbox)}
	c.r = protocol.NewReader(c.in)
	// Once a request has started, it must finish within the line timeout; an
	// idle connection may wait much longer for its next request.
	c.r.OnLineStart(func() {
		if !c.r.HasLine() { // else no read will wait for the rest of it
			c.setReadDeadline(time.Now().Add(s.opts.LineTimeout))
		}
	})
	defer nc.Close()

	p, err := s.opts.fromConn(nc)
	if err != nil {
		c.unidentified(ctx, err)
		return
	}
	defer p.Close()
	c.peer, c.peerUID = p, p.UID
	c.log = c.log.With("pid", p.PID, "uid", p.UID)
	if !p.HasPeerPIDFD() {
		s.warnOnce.Do(func() {
			s.log.Warn("kernel lacks SO_PEERPIDFD; using pidfd_open after SO_PEERCRED, which a pid reused in between could fool")
		})
	}

	if ok, closing := s.track(c); closing {
		// Accepted as the daemon began to stop: shutdown waits for no one
		// it has not started serving.
		return
	} else if !ok {
		c.log.Warn("connection refused: too many connections for this uid", "limit", s.opts.MaxConnsPerUID)
		resp := protocol.Failure(nil, protocol.ReasonRateLimited, "too many connections from this user; close some and retry")
		if c.audit(ctx, audit.Record{Event: audit.EventConnectDenied, Result: audit.ResultError, Reason: string(protocol.ReasonRateLimited)}) != nil {
			resp = protocol.Failure(nil, protocol.ReasonInternalError, msgAuditDown)
		}
		c.reply(resp)
		c.closeGracefully()
		return
	}
	defer s.untrack(c)

	if !s.opts.AnyUID && p.UID != s.opts.UID {
		c.denyConnect(ctx, protocol.ReasonForeignUser, "this daemon serves only the user it runs as")
		return
	}
	if reason, msg := c.attest(ctx); reason != "" {
		c.denyConnect(ctx, reason, msg)
		return
	}
	c.log = c.log.With("binary", c.path, "hash", c.ident.Hash)
	if reason, msg := c.tampered(true); reason != "" {
		c.denyConnect(ctx, reason, msg)
		return
	}
	// keychain-auth itself may ask for the program it is about to run
	// (execfd.go) whether it is registered or not.
	if dec := c.identify(ctx); !dec.Allowed() && !transient(dec) && !c.isExecClient() {
		c.denyConnect(ctx, dec.Reason, dec.Message)
		return
	}
	c.serve(ctx)
}

// unknownUID stands for a peer the kernel could not name: (uid_t)-1 is
// no user's uid. Such sessions share one connection cap.
const unknownUID = ^uint32(0)

// unidentified refuses a peer whose identity the kernel could not give. A
// peer that has already exited is most often a liveness probe (`status`)
// that connected and hung up before the daemon looked: like any refused
// caller, it is recorded only if it sent a request.
func (c *session) unidentified(ctx context.Context, err error) {
	reason, msg := protocol.ReasonInternalError, "the daemon could not identify the connecting process"
	if errors.Is(err, peer.ErrGone) {
		c.log.Debug("peer exited before it could be identified", "err", err)
		reason, msg = protocol.ReasonProcessChanged, "the connecting process exited before it could be identified"
	} else {
		c.log.Error("cannot identify peer; closing", "err", err)
	}
	c.peerUID = unknownUID
	if ok, _ := c.s.track(c); !ok {
		return
	}
	defer c.s.untrack(c)
	c.denyConnect(ctx, reason, msg)
}

// attest hashes the image the peer runs, through the kernel's handle on it,
// in the peer's uid's hashing slot. A client that hangs up meanwhile cancels
// its hash.
func (c *session) attest(ctx context.Context) (protocol.Reason, string) {
	f, err := c.peer.OpenExe()
	if err != nil {
		return c.peerError(ctx, "open executable", err)
	}
	defer f.Close()
	id, err := c.hashFile(ctx, f)
	if err != nil {
		return c.peerError(ctx, "hash executable", err)
	}
	path, err := c.peer.ExeLink()
	if err != nil {
		return c.peerError(ctx, "read executable path", err)
	}
	c.ident, c.path = id, path
	return "", ""
}

// hashFile hashes f in the peer uid's hashing slot; a hash that has to run
// (not answered from the cache) is cancelled if the client hangs up.
func (c *session) hashFile(ctx context.Context, f *os.File) (attest.Identity, error) {
	if id, ok := c.s.opts.Attestor.Cached(f); ok {
		return id, nil
	}
	hctx, stop := cancelOnHangup(ctx, c.nc)
	defer stop()
	return c.s.opts.Attestor.HashFor(hctx, f, c.peerUID)
}

// peerError turns a failure to verify the peer into a refusal; ctx is the
// server's, so a cancellation it did not cause was the client hanging up.
func (c *session) peerError(ctx context.Context, what string, err error) (protocol.Reason, string) {
	// A probe that connects and leaves shows up as these two; denyConnect
	// logs at info level only a caller that asked for something.
	if errors.Is(err, peer.ErrGone) || errors.Is(err, attest.ErrChanged) {
		c.log.Debug("peer changed during verification", "step", what, "err", err)
		return protocol.ReasonProcessChanged, "the connecting process exited or changed its executable during verification"
	}
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		c.log.Debug("client hung up during verification", "step", what)
		return protocol.ReasonProcessChanged, "the connecting process hung up during verification"
	}
	if errors.Is(err, attest.ErrUntrustedFS) || errors.Is(err, attest.ErrTooLarge) || errors.Is(err, peer.ErrUnverifiable) {
		c.log.Warn("cannot verify the connecting process", "step", what, "err", err)
		return protocol.ReasonUnverifiableProcess, err.Error()
	}
	if errors.Is(err, fs.ErrPermission) {
		c.log.Warn("cannot read the connecting process's executable", "step", what, "err", err)
		return protocol.ReasonUnverifiableProcess, "the daemon may not read this process's executable (the process is " +
			"non-dumpable, or its binary is not readable): a daemon without CAP_SYS_PTRACE cannot verify it; " +
			"run it in system mode, or do not make the client non-dumpable"
	}
	c.log.Error("peer verification failed", "step", what, "err", err)
	return protocol.ReasonInternalError, "the daemon could not verify the connecting process"
}

// identify evaluates who the caller is under the current config. It returns
// a config_invalid decision when the config cannot be used, and an
// internal_error one when a change of it could not be recorded; both are
// transient: they refuse requests but keep the connection.
//
// The config is looked at once per read from the connection, not once per
// request line: every line that came in one read was sent before the look
// that followed that read, so it is judged under a policy at least as
// recent as the one in force when it arrived, as a line read on its own
// would be. A pipelined run saves a stat(2) per request.
func (c *session) identify(ctx context.Context) policy.Decision {
	if c.cfg != nil && c.cfgReads == c.in.n {
		return c.deny
	}
	cfg, err, auditErr := c.s.loadConfig(ctx)
	if auditErr != nil {
		return policy.Decision{Reason: protocol.ReasonInternalError, Message: msgAuditDown}
	}
	if err != nil {
		c.log.Error("config unusable; refusing requests until it is fixed", "err", err)
		return policy.Decision{Reason: protocol.ReasonConfigInvalid, Message: "config.json is unusable: " + err.Error()}
	}
	if cfg != c.cfg {
		c.cfg = cfg
		c.grant, c.deny = policy.Identify(cfg.PolicyEntries(), policy.Caller{Hash: c.ident.Hash, Path: c.path, UID: c.peerUID})
	}
	c.cfgReads = c.in.n
	return c.deny
}

// transient refusals refuse the request but not the caller.
func transient(d policy.Decision) bool {
	return d.Reason == protocol.ReasonConfigInvalid || d.Reason == protocol.ReasonInternalError
}

// pendingTimeout bounds the wait for pending.json's lock and write.
const pendingTimeout = 5 * time.Second

// recordPending queues the caller for approval. The record is on disk
// before the refusal is sent, because the refusal tells the user to run
// list-pending. A binary retrying in a loop writes at most once a second;
// the attempts refused in between are written at the end of that second
// even if it stops trying.
func (c *session) recordPending(ctx context.Context) {
	if c.s.opts.PendingFile == "" {
		return
	}
	rec := c.pendingRecord()
	rec.Hash, rec.Path = c.ident.Hash, c.path
	c.queuePending(ctx, rec)
}

// pendingRecord describes the peer process for the pending queue; the
// caller fills in the binary (hash, path).
func (c *session) pendingRecord() config.PendingRecord {
	info := c.peer.Describe()
	return config.PendingRecord{
		CommandLine: info.CommandLine,
		PID:         c.peer.PID, PPID: info.PPID, ParentPath: info.ParentPath, Cwd: info.Cwd, UID: c.recordedUID(),
		TeamID: c.peer.TeamID(),
	}
}

// queuePending writes rec before the refusal that names it goes out (at
// most once a second per hash; attempts refused in between are written at
// the end of that second).
func (c *session) queuePending(ctx context.Context, rec config.PendingRecord) {
	c.s.throttle(ctx, &c.s.pending, rec.Hash, func(n int, last time.Time, _ bool) error {
		rec.Count = n
		c.s.writePending(ctx, rec, last)
		return nil
	})
}

// throttle calls write at most once a second per key: at once for a call
// lim admits, with how many calls it stands for (itself and those
// suppressed since the last write) and now; for calls suppressed after
// that, once at the end of the second (at once on shutdown), from the
// background, by the one suppressed caller that claims it (later set),
// with their count and when the last was seen. It returns write's error
// for an admitted call, nil otherwise.
func (s *Server) throttle(ctx context.Context, lim *config.PendingLimiter, key string, write func(n int, last time.Time, later bool) error) error {
	now := s.opts.Now()
	if n, ok := lim.Admit(key, now); ok {
		return write(n, now, false)
	}
	at, claimed := lim.ClaimFlush(key)
	if !claimed {
		return nil
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		if n, last := lim.Flush(key, s.opts.Now()); n > 0 {
			write(n, last, true)
		}
	}()
	return nil
}

func (s *Server) writePending(ctx context.Context, rec config.PendingRecord, now time.Time) {
	// Shutting down is no reason to lose the record.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pendingTimeout)
	defer cancel()
	if err := config.RecordPending(ctx, s.opts.PendingFile, rec, now.UTC()); err != nil {
		s.log.Error("cannot record pending binary", "file", s.opts.PendingFile, "hash", rec.Hash, "err", err)
	}
}

// denyConnect answers the first request (so its id is echoed) with the
// refusal, records it and closes.
func (c *session) denyConnect(ctx context.Context, reason protocol.Reason, msg string) {
	var id json.RawMessage
	rec := audit.Record{Event: audit.EventConnectDenied, Result: resultOf(reason), Reason: string(reason), Message: msg}
	// A refused caller gets the line timeout, not the idle timeout, to send
	// its first request: a flood of refused connections must not hold
	// connection slots for minutes.
	c.setReadDeadline(time.Now().Add(c.s.opts.LineTimeout))
	line, err := c.r.Next()
	// Only a caller that asked for something is queued for approval: a bare
	// connect (a liveness probe such as `status`) leaves no record.
	if (err == nil || errors.Is(err, protocol.ErrLineTooLong)) &&
		(reason == protocol.ReasonUnregisteredBinary || reason == protocol.ReasonHashMismatch) {
		c.recordPending(ctx)
	}
	if err == nil {
		req, _ := protocol.DecodeRequestSecrets(line)
		if req != nil {
			id = req.ID
			fillRequest(&rec, req)
			req.ClearSecrets()
		}
		clearLine(line)
	}
	if err != nil && !errors.Is(err, protocol.ErrLineTooLong) {
		// The caller hung up (or timed out) without asking for anything:
		// a liveness probe such as `status`, not a refused request. It got
		// no answer, so there is no decision to record.
		// Nothing was sent, so there is no reply to drain for.
		c.log.Debug("refused caller left without a request", "reason", reason)
		return
	}
	c.log.Info("connection denied", "reason", reason)
	if c.recordDenial(ctx, rec) != nil {
		reason, msg = protocol.ReasonInternalError, msgAuditDown
	}
	c.reply(protocol.Failure(id, reason, msg))
	c.closeGracefully()
}

// recordDenial writes the connect_denied record rec, at most once a second
// for one caller (uid and image hash) and reason. A program retrying in a
// loop was refused some 2,000 times a second, each with its own 700-byte
// record, which rotated the whole audit history (6 files of 10 MiB) away in
// under a minute. The refusals of the rest of the second are counted: the
// next record for that caller says how many it stands for in
// details.repeats, and one refused caller per second takes on writing a
// record for them at the end of the second, so the count is on disk within
// about a second even if the program stops. A refusal answers nothing, so
// it may go out before the record that counts it; accesses never do.
func (c *session) recordDenial(ctx context.Context, rec audit.Record) error {
	if c.s.opts.Audit == nil {
		return nil
	}
	key := strconv.FormatUint(uint64(c.peerUID), 10) + "/" + c.ident.Hash + "/" + rec.Reason
	c.identifyRecord(&rec) // here: the session may be gone when a later write runs
	return c.s.throttle(ctx, &c.s.denials, key, func(n int, _ time.Time, later bool) error {
		if n > 1 {
			rec.Details = repeatsDetails(n)
		}
		if !later {
			return c.audit(ctx, rec)
		}
		// From the background, for refusals of other connections: not
		// this one's request id, and the log written even on shutdown.
		rec.RequestID = ""
		if err := c.s.opts.Audit.Log(context.WithoutCancel(ctx), rec); err != nil {
			c.s.log.Error("audit log write failed", "err", err)
		}
		return nil
	})
}

// repeatsDetails says how many refusals a connect_denied record stands for.
func repeatsDetails(n int) json.RawMessage {
	return json.RawMessage(`{"repeats":` + strconv.Itoa(n) + `}`)
}

// serve answers requests in order until the client leaves, the session is
// interrupted or a reply requires closing.
func (c *session) serve(ctx context.Context) {
	for {
		line, err := c.readLine()
		switch {
		case errors.Is(err, protocol.ErrLineTooLong):
			c.log.Warn("request line too large; closing")
			resp := protocol.Failure(nil, protocol.ReasonRequestTooLarge, "request line exceeds 1 MiB")
			if c.audit(ctx, audit.Record{Event: audit.EventRequest, Result: audit.ResultError, Reason: string(protocol.ReasonRequestTooLarge)}) != nil {
				resp = protocol.Failure(nil, protocol.ReasonInternalError, msgAuditDown)
			}
			c.reply(resp)
			c.closeGracefully()
			return
		case err != nil:
			if !errors.Is(err, io.EOF) && !c.isInterrupted() {
				c.log.Debug("connection ended", "err", err)
			}
			return
		}
		resp, closeAfter := c.handleLine(ctx, line)
		clearLine(line)
		// Replies wait while the client's next request is already here,
		// and go out together once the daemon would have to wait for more:
		// one write for a pipelined run instead of one per reply. Each
		// reply's audit record was written before it was queued.
		// Interruption is read once: a shutdown between two reads of it
		// would leave queued replies, whose requests ran, unsent.
		interrupted := c.isInterrupted()
		last := closeAfter || interrupted || !c.r.HasLine()
		err = c.queueReply(resp, last)
		resp.ClearSecrets() // encoded into c.out, which flushReplies clears
		if err != nil {
			c.log.Debug("cannot write reply", "err", err)
			return
		}
		if closeAfter {
			c.closeGracefully()
			return
		}
		if interrupted {
			return
		}
	}
}

// readCounter counts the reads that returned bytes.
type readCounter struct {
	r io.Reader
	n uint64
}

func (rc *readCounter) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if n > 0 {
		rc.n++
	}
	return n, err
}

// recheckNeeded reports whether the request line just taken from the reader
// could have been written after the last identity re-check. Every byte of a
// line that came in a read made before that check was written before the
// check ran, when the check found the peer still the verified process (an
// exec, a tracer or an exit since then cannot have written it). Only lines
// that needed a new read need a new check, so a pipelined batch of requests
// that arrived in one read is checked once, not once per line.
func (c *session) recheckNeeded() bool {
	return c.in.n != c.checkedReads
}

// readLine reads one request line under the idle and line deadlines. A
// line already buffered whole needs no read, so no deadline: a pipelined
// run does not pay two timer updates per request.
func (c *session) readLine() ([]byte, error) {
	if !c.r.HasLine() {
		c.setReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
	}
	return c.r.Next()
}

func (c *session) reply(resp *protocol.Response) error {
	if err := c.flushReplies(); err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return protocol.WriteResponse(c.nc, resp)
}

// maxQueuedReplies bounds what queueReply holds before it writes anyway.
const maxQueuedReplies = 64 << 10

// queuedReply is one reply in out: it ends at end; held says its audit
// record was appended but not yet flushed, so it must become a refusal
// if that record is lost.
type queuedReply struct {
	end  int
	id   json.RawMessage
	held bool
}

// queueReply adds resp to the replies waiting to be written, and writes
// them all when flush is set or enough have gathered.
func (c *session) queueReply(resp *protocol.Response, flush bool) error {
	out, err := protocol.AppendResponse(c.out, resp)
	c.out = out
	if err != nil {
		return err
	}
	c.queued = append(c.queued, queuedReply{end: len(c.out), id: resp.ID, held: c.lineHeld})
	c.lineHeld = false
	if flush || len(c.out) >= maxQueuedReplies {
		return c.flushReplies()
	}
	return nil
}

// flushReplies writes the queued replies and clears their buffer, which
// held secret values. The audit records of the replies are written first;
// if they cannot be, the replies they describe become refusals.
func (c *session) flushReplies() error {
	if c.holding {
		c.holding = false
		if err := c.s.opts.Audit.(groupAuditor).Flush(c.held); err != nil {
			c.log.Error("audit log write failed", "err", err)
			c.refuseHeld()
		}
	}
	c.queued = c.queued[:0]
	if len(c.out) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(c.out)
	clear(c.out)
	c.out = c.out[:0]
	if cap(c.out) > maxQueuedReplies {
		c.out = nil // a large batch's buffer is not kept for the connection's life
	}
	return err
}

// refuseHeld replaces each queued reply whose audit record was lost with
// the refusal an unrecorded request gets.
// The replies kept may carry values (an exec's, audited on their own), so
// the new buffer never grows by a plain append, which would leave a copy
// behind: AppendResponse clears what it outgrows, and kept bytes are
// copied into room made first.
func (c *session) refuseHeld() {
	out := make([]byte, 0, len(c.out))
	start := 0
	for _, q := range c.queued {
		if q.held {
			out, _ = protocol.AppendResponse(out, protocol.Failure(q.id, protocol.ReasonInternalError, msgAuditDown))
		} else {
			kept := c.out[start:q.end]
			if len(out)+len(kept) > cap(out) {
				grown := make([]byte, len(out), 2*cap(out)+len(kept))
				copy(grown, out)
				clear(out)
				out = grown
			}
			out = append(out, kept...)
		}
		start = q.end
	}
	clear(c.out)
	c.out = out
}

// closeGracefully lets the client read our last reply: closing a socket
// with unread input can discard what we sent, so shut down our side, drain
// what the client still sends for a bounded time, then close. A session
// interrupted by shutdown keeps its past deadline and is not drained: a
// client that keeps its end open must not hold up SIGTERM.
func (c *session) closeGracefully() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		cw.CloseWrite()
	}
	c.setReadDeadline(time.Now().Add(c.s.opts.DrainTimeout))
	io.Copy(io.Discard, io.LimitReader(c.nc, protocol.MaxLineSize))
	c.nc.Close()
}

const msgAuditDown = "audit log unavailable; the request was refused so that no access goes unrecorded"

// audit fills the caller's identity into r and logs it. The log assigns
// the time, so that times follow the chain's order.
func (c *session) audit(ctx context.Context, r audit.Record) error {
	a := c.s.opts.Audit
	if a == nil {
		return nil
	}
	c.identifyRecord(&r)
	if err := a.Log(ctx, r); err != nil {
		c.log.Error("audit log write failed", "err", err)
		return err
	}
	return nil
}

// groupAuditor is an Auditor that can hold records and write them
// together (audit.Log does).
type groupAuditor interface {
	Append(r audit.Record) (audit.Ticket, error)
	Flush(t audit.Ticket) error
}

// auditHeld is audit for a record whose decision has no effect but the
// reply: the record may wait in the log's memory and is written, with the
// others of a pipelined run, before the replies go out (flushReplies),
// one write(2) for the run instead of one per request. Requests that
// change the store use audit, so that their record is written before the
// change is answered.
func (c *session) auditHeld(ctx context.Context, r audit.Record) error {
	g, ok := c.s.opts.Audit.(groupAuditor)
	if !ok {
		return c.audit(ctx, r)
	}
	c.identifyRecord(&r)
	t, err := g.Append(r)
	if err != nil {
		c.log.Error("audit log write failed", "err", err)
		return err
	}
	c.held, c.holding, c.lineHeld = t, true, true
	return nil
}

// recordedUID is the peer's uid as records show it: nil (null, unknown) on
// Windows, which has no uids; the daemon's per-user accounting there uses
// stand-in values (peer.ForeignUID) that would read as real uids.
func (c *session) recordedUID() *uint32 {
	if runtime.GOOS == "windows" {
		return nil
	}
	uid := c.peerUID
	return &uid
}

// identifyRecord fills the caller's identity into r.
func (c *session) identifyRecord(r *audit.Record) {
	r.Conn = c.id
	if c.peer != nil {
		r.PID = c.peer.PID
		r.UID = c.recordedUID()
		r.TeamID = c.peer.TeamID()
	}
	r.BinaryPath, r.BinaryHash = c.path, c.ident.Hash
}

func fillRequest(r *audit.Record, req *protocol.Request) {
	r.Action = string(req.Action)
	r.Service = req.Service
	if req.Action != protocol.ActionCheck && req.Action != "" {
		r.Match = string(req.EffectiveMatch())
	}
	r.Targets = req.Targets
	if len(req.ID) > 0 {
		r.RequestID = requestID(req.ID)
	}
}

// requestID is how a request's id appears in the log: a string id as its
// text, any other scalar as its JSON.
func requestID(raw json.RawMessage) string {
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func resultOf(reason protocol.Reason) string {
	switch protocol.StatusOf(reason) {
	case protocol.StatusSuccess:
		return audit.ResultApproved
	case protocol.StatusDenied:
		return audit.ResultDenied
	default:
		return audit.ResultError
	}
}
