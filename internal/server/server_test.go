package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/memory"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/protocol"
)

// The test process itself is the peer in these tests: the kernel identifies
// it and the daemon hashes its real executable.
var (
	selfOnce sync.Once
	selfPath string
	selfHash string
	selfErr  error
)

func self(tb testing.TB) (path, hash string) {
	tb.Helper()
	selfOnce.Do(func() {
		selfPath, selfErr = os.Executable()
		if selfErr == nil {
			selfPath, selfErr = filepath.EvalSymlinks(selfPath)
		}
		if selfErr == nil {
			var id attest.Identity
			id, selfErr = attest.New(attest.Options{}).HashPath(context.Background(), selfPath)
			selfHash = id.Hash
		}
	})
	if selfErr != nil {
		tb.Fatal(selfErr)
	}
	return selfPath, selfHash
}

type testServer struct {
	socket  string
	config  string
	pending string
	srv     *Server
	cancel  context.CancelFunc
	done    chan error
}

type grant struct {
	read, write []string
	search      bool
}

// startServer runs a server in-process on a real Unix socket (a named pipe
// on Windows); g == nil
// leaves the test binary unregistered.
func startServer(tb testing.TB, be backend.Backend, g *grant, tweak ...func(*Options)) *testServer {
	tb.Helper()
	dir, err := os.MkdirTemp("", "ka-srv-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	ts := &testServer{
		socket:  testSocket(dir),
		config:  filepath.Join(dir, "config.json"),
		pending: filepath.Join(dir, "pending.json"),
	}
	if g != nil {
		path, hash := self(tb)
		writeConfig(tb, ts.config, path, hash, *g)
	}
	ln, err := Listen(ListenOptions{Path: ts.socket, UID: os.Getuid(), GID: -1})
	if err != nil {
		tb.Fatal(err)
	}
	if be == nil {
		be = memory.New()
	}
	opts := Options{
		Listener: ln,
		Backend:  be,
		Config:   config.NewCache(ts.config, config.LoadOptions{OwnerUID: os.Getuid()}),
		// The flood tests use sparse images far over the default size cap,
		// to keep hashing slots busy for the whole test.
		Attestor:    attest.New(attest.Options{MaxSize: 4 << 40}),
		PendingFile: ts.pending,
		UID:         uint32(os.Getuid()),
		// Tests count the attestor's hashes; TestPrewarm turns this on.
		NoPrewarm: true,
	}
	for _, f := range tweak {
		f(&opts)
	}
	ts.srv, err = New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel, ts.done = cancel, make(chan error, 1)
	go func() { ts.done <- ts.srv.Serve(ctx) }()
	tb.Cleanup(func() { ts.stop(tb) })
	return ts
}

func (ts *testServer) stop(tb testing.TB) {
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			tb.Errorf("Serve: %v", err)
		}
		ts.done <- err // keep stop idempotent
	case <-time.After(30 * time.Second):
		tb.Fatal("server did not stop")
	}
}

func writeConfig(tb testing.TB, path, bin, hash string, g grant) {
	tb.Helper()
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	cfg := map[string]any{"protocol_version": "1", "registered_binaries": []any{map[string]any{
		"path": bin, "hash": hash, "registered_at": "2026-11-29T10:00:00Z",
		"allowed_read_services": nonNil(g.read), "allowed_write_services": nonNil(g.write), "can_search": g.search,
	}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// conn is a raw protocol connection from the test process.
type conn struct {
	tb testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func (ts *testServer) dial(tb testing.TB) *conn {
	tb.Helper()
	nc, err := testDial(ts.socket)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &conn{tb: tb, nc: nc, r: bufio.NewReaderSize(nc, 1<<16)}
}

func (c *conn) send(line string) {
	c.tb.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.tb.Fatal(err)
	}
}

// recv reads one response; ok is false when the daemon closed instead.
func (c *conn) recv() (protocol.Response, bool) {
	c.tb.Helper()
	c.nc.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return protocol.Response{}, false
	}
	var r protocol.Response
	if err := json.Unmarshal(line, &r); err != nil {
		c.tb.Fatalf("bad response %q: %v", line, err)
	}
	return r, true
}

func (c *conn) roundTrip(line string) protocol.Response {
	c.tb.Helper()
	c.send(line)
	r, ok := c.recv()
	if !ok {
		c.tb.Fatalf("connection closed instead of answering %s", line)
	}
	return r
}

// closed reports whether the daemon has closed the connection.
func (c *conn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := c.r.ReadByte()
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func mustStatus(tb testing.TB, r protocol.Response, s protocol.Status, reason protocol.Reason) {
	tb.Helper()
	if r.Status != s || r.Reason != reason {
		tb.Fatalf("got %s/%s (%s), want %s/%s", r.Status, r.Reason, r.Message, s, reason)
	}
}

func readReq(service string, targets ...string) string {
	b, _ := json.Marshal(map[string]any{"type": "REQUEST", "action": "read", "service": service, "targets": targets})
	return string(b)
}

func writeReq(service string, kv ...string) string {
	var t, v []string
	for i := 0; i+1 < len(kv); i += 2 {
		t, v = append(t, kv[i]), append(v, kv[i+1])
	}
	b, _ := json.Marshal(map[string]any{"type": "REQUEST", "action": "write", "service": service, "targets": t, "values": v})
	return string(b)
}

func TestUnregisteredIsQueuedOnce(t *testing.T) {
	ts := startServer(t, nil, nil)
	for range 3 {
		c := ts.dial(t)
		c.send(readReq("svc", "a"))
		r, _ := c.recv()
		mustStatus(t, r, protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
		if !c.closed() {
			t.Fatal("connection stays open after unregistered_binary")
		}
	}
	ts.stop(t) // waits for background pending writes
	recs, err := config.LoadPending(ts.pending, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, hash := self(t)
	if len(recs) != 1 || recs[0].Hash != hash || recs[0].PID != os.Getpid() || len(recs[0].CommandLine) == 0 {
		t.Fatalf("pending: %+v", recs)
	}
}

func TestBatchWriteRollsBackOnBackendFailure(t *testing.T) {
	be := memory.New()
	ts := startServer(t, be, &grant{read: []string{"svc"}, write: []string{"svc"}})
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(writeReq("svc", "a", "old-a")), protocol.StatusSuccess, "")
	be.InjectFault(1, errors.New("disk on fire"))
	r := c.roundTrip(writeReq("svc", "a", "new-a", "b", "new-b", "c", "new-c"))
	mustStatus(t, r, protocol.StatusError, protocol.ReasonBackendError)
	r = c.roundTrip(readReq("svc", "a", "b", "c"))
	mustStatus(t, r, protocol.StatusSuccess, "")
	if len(r.Results) != 1 || *r.Results[0].Value != "old-a" || len(r.Missing) != 2 {
		t.Fatalf("after a failed batch: %+v missing %v", r.Results, r.Missing)
	}
}

func TestLockedBackendIsReported(t *testing.T) {
	ts := startServer(t, lockedBackend{}, &grant{read: []string{"svc"}})
	c := ts.dial(t)
	r := c.roundTrip(readReq("svc", "a"))
	mustStatus(t, r, protocol.StatusError, protocol.ReasonBackendLocked)
}

// lockedBackend stands for a store whose unlock needs a user who is absent,
// a fault the real stores cannot produce on demand here.
type lockedBackend struct{ backend.Backend }

func (lockedBackend) Get(context.Context, string, string) (backend.Item, error) {
	return backend.Item{}, fmt.Errorf("collection login: %w", backend.ErrLocked)
}

func TestForeignUIDIsRefused(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, func(o *Options) { o.UID = uint32(os.Getuid()) + 1 })
	c := ts.dial(t)
	c.send(readReq("svc", "a"))
	r, _ := c.recv()
	mustStatus(t, r, protocol.StatusDenied, protocol.ReasonForeignUser)
	if !c.closed() {
		t.Fatal("connection stays open after foreign_user")
	}
}

func TestPerUIDConnectionCap(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, func(o *Options) { o.MaxConnsPerUID = 3 })
	var held []*conn
	for range 3 {
		c := ts.dial(t)
		mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
		held = append(held, c)
	}
	extra := ts.dial(t)
	extra.send(readReq("svc", "a"))
	r, _ := extra.recv()
	mustStatus(t, r, protocol.StatusError, protocol.ReasonRateLimited)
	held[0].nc.Close()
	waitUntil(t, func() bool { return ts.srv.ConnCount() < 3 })
	mustStatus(t, ts.dial(t).roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
}

func TestSlowLineIsCutOff(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, func(o *Options) {
		o.LineTimeout = 200 * time.Millisecond
		o.IdleTimeout = time.Hour
	})
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	c.nc.Write([]byte(`{"type":"REQUEST",`)) // and never finish the line
	if !c.closed() {
		t.Fatal("a started line that never ends keeps the connection")
	}
}

func TestGracefulShutdownAnswersInFlight(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	ts.stop(t)
	if _, err := os.Stat(ts.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket not removed on shutdown: %v", err)
	}
	if !c.closed() {
		t.Error("idle connection not closed on shutdown")
	}
}

func TestSecondDaemonOnSameSocketRefused(t *testing.T) {
	ts := startServer(t, nil, nil)
	_, err := Listen(ListenOptions{Path: ts.socket, UID: os.Getuid(), GID: -1})
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("want ErrAlreadyRunning, got %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	path := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves a dead socket file behind, as a crashed daemon would
	ln, err := Listen(ListenOptions{Path: path, UID: os.Getuid(), GID: -1})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
}

func TestSocketDirMustBePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(ListenOptions{Path: filepath.Join(dir, "agent.sock"), UID: os.Getuid(), GID: -1})
	if !errors.Is(err, ErrUnsafeSocketDir) {
		t.Fatalf("want ErrUnsafeSocketDir, got %v", err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefusedCallerCannotIdleOnASlot(t *testing.T) {
	ts := startServer(t, nil, nil, func(o *Options) {
		o.LineTimeout = 200 * time.Millisecond
		o.IdleTimeout = time.Hour
	})
	c := ts.dial(t) // unregistered, and never sends a request
	if !c.closed() {
		t.Fatal("a refused caller that sends nothing keeps its connection for the idle timeout")
	}
}

func TestPrewarmHashesRegisteredBinariesAtStart(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, func(o *Options) { o.NoPrewarm = false })
	// Before any connection, the registered binary (this test) is hashed.
	waitUntil(t, func() bool { _, misses := ts.srv.opts.Attestor.Stats(); return misses == 1 })
	hits0, _ := ts.srv.opts.Attestor.Stats()
	mustStatus(t, ts.dial(t).roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	hits, misses := ts.srv.opts.Attestor.Stats()
	if misses != 1 || hits != hits0+1 {
		t.Fatalf("first connection after start: hits %d->%d, misses %d; want it answered from the cache", hits0, hits, misses)
	}
}

// The refusal tells the user to run list-pending, so the record must be
// there as soon as the refusal is.
func TestPendingRecordIsWrittenBeforeTheRefusal(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	recs, err := config.LoadPending(ts.pending, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, hash := self(t)
	if len(recs) != 1 || recs[0].Hash != hash {
		t.Fatalf("pending.json right after the refusal: %+v; want the refused binary", recs)
	}
}

// Attempts refused within the limiter's second are written at the end of
// it, while the daemon keeps running and without a later attempt.
func TestSuppressedAttemptsAreCountedWithinASecond(t *testing.T) {
	ts := startServer(t, nil, nil)
	for range 3 {
		c := ts.dial(t)
		mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	}
	count := func() int {
		recs, err := config.LoadPending(ts.pending, time.Now())
		if err != nil || len(recs) != 1 {
			return -1
		}
		return recs[0].Count
	}
	// Generous bound: the flush is due one second after the first attempt.
	deadline := time.Now().Add(10 * time.Second)
	for count() != 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := count(); n != 3 {
		t.Fatalf("pending count %d ten seconds after 3 attempts, want 3", n)
	}
}

// SIGTERM must not wait for clients that keep their end open: an idle
// refused caller that never sent a request, and one whose refusal is being
// drained. The drain timeout is made long so that waiting for it shows.
func TestShutdownDoesNotWaitForDrains(t *testing.T) {
	ts := startServer(t, nil, nil, func(o *Options) {
		o.DrainTimeout = time.Hour
		o.LineTimeout = time.Hour
	})
	ts.dial(t) // unregistered, sends nothing, stays open
	refused := ts.dial(t)
	mustStatus(t, refused.roundTrip(readReq("svc", "a")), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 2 })

	start := time.Now()
	ts.cancel()
	select {
	case <-ts.done:
		ts.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waited for a client that keeps its connection open")
	}
	t.Logf("stopped in %v", time.Since(start))
}
