package server

// Limits under hostile load, with real client processes where the kernel's
// view of the peer matters. These tests do not call t.Parallel: each checks
// that the daemon's goroutines and descriptors return to where they were,
// which only means something while nothing else runs in the process.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/memory"
	"github.com/The-17/keychain-auth/protocol"
)

// Helper client modes, run by re-executing the test binary (so the child's
// image is this very file, registered by startServer).
const (
	helperEnv     = "KA_SERVER_TEST_HELPER"
	helperSockEnv = "KA_SERVER_TEST_SOCKET"
)

// TestHelperClient is not a test: it is the client process the tests below
// start. Modes: "probe" connects and exits at once, "half" sends half a request line, "wait" sends a whole one
// and never reads the reply, "ask" sends a whole one and prints the reply.
// "half" and "wait" print "ready" and then block until killed.
func TestHelperClient(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	if mode == "idle" {
		// Just a process running this image.
		select {}
	}
	c, err := net.Dial("unix", os.Getenv(helperSockEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	switch mode {
	case "probe":
		// A liveness probe: connect, hang up, exit.
		c.Close()
		os.Exit(0)
	case "two", "two-exit":
		// One request, then another once told to on stdin; two-exit
		// exits right after sending it.
		r := bufio.NewReader(c)
		for i := range 2 {
			if i == 1 {
				bufio.NewReader(os.Stdin).ReadString('\n')
			}
			io.WriteString(c, readReq("svc", "a")+"\n")
			if i == 1 && mode == "two-exit" {
				os.Exit(0)
			}
			line, err := r.ReadString('\n')
			if err != nil {
				fmt.Println("closed")
				os.Exit(0)
			}
			fmt.Print(line)
		}
		os.Exit(0)
	case "half":
		io.WriteString(c, `{"type":"REQUEST","action":"read","service":"s`)
	case "wait", "ask":
		io.WriteString(c, readReq("svc", "a")+"\n")
	}
	if mode == "ask" {
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Print(line)
		os.Exit(0)
	}
	fmt.Println("ready")
	select {}
}

type helper struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

// startHelper runs the test binary at exe (the test binary itself when
// exe is "") in helper mode against ts.
func startHelper(t *testing.T, ts *testServer, exe, mode string) *helper {
	t.Helper()
	if exe == "" {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperClient$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperSockEnv+"="+ts.socket)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, out: bufio.NewReader(out)}
	t.Cleanup(h.kill)
	return h
}

func (h *helper) kill() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

func (h *helper) line(t *testing.T) string {
	t.Helper()
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper printed nothing: %v", err)
	}
	return strings.TrimSpace(s)
}

// usage is what the daemon holds that must not leak.
type usage struct{ goroutines, fds int }

func (u usage) String() string { return fmt.Sprintf("%d goroutines, %d fds", u.goroutines, u.fds) }

func measure(t *testing.T) usage {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return usage{runtime.NumGoroutine(), len(fds)}
}

// baseline settles the server after a first request (lazily started
// goroutines exist from then on) and returns what it uses idle.
func baseline(t *testing.T, ts *testServer) usage {
	t.Helper()
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	c.nc.Close()
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 0 })
	return measure(t)
}

// servedAfter shows that a registered client is served, on a new
// connection that it then closes.
func servedAfter(t *testing.T, ts *testServer) {
	t.Helper()
	c := ts.dial(t)
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	c.nc.Close()
}

// backToBaseline polls until usage is no higher than base. It waits for
// sessions to wind down; it times nothing.
func backToBaseline(t *testing.T, base usage) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := measure(t)
		if now.goroutines <= base.goroutines && now.fds <= base.fds {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("daemon holds %v, baseline %v\n%s", now, base, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionFloodIsCappedAndRecovers(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	base := baseline(t, ts)

	const n, limit = 300, DefaultMaxConnsPerUID
	conns := make([]*conn, n)
	for i := range conns {
		conns[i] = ts.dial(t)
	}
	var served, limited atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			// A refused connection may already be closed: only the reply
			// read below counts.
			c.nc.Write([]byte(readReq("svc", "a") + "\n"))
			r, ok := c.recv()
			switch {
			case ok && r.Status == protocol.StatusSuccess:
				served.Add(1)
			case ok && r.Reason == protocol.ReasonRateLimited:
				if c.closed() {
					limited.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if served.Load() != limit || limited.Load() != n-limit {
		t.Fatalf("%d served, %d rate_limited and closed; want %d and %d", served.Load(), limited.Load(), limit, n-limit)
	}
	extra := ts.dial(t)
	extra.send(readReq("svc", "a"))
	if r, _ := extra.recv(); r.Reason != protocol.ReasonRateLimited {
		t.Fatalf("a connection beyond the cap got %s/%s", r.Status, r.Reason)
	}
	extra.nc.Close()
	for _, c := range conns {
		c.nc.Close()
	}
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 0 })
	servedAfter(t, ts)
	backToBaseline(t, base)
}

// gateBackend, once closed, holds every Get until released, so a test can
// act while the daemon is in the middle of a request.
type gateBackend struct {
	backend.Backend
	closed  atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gateBackend) Get(ctx context.Context, service, target string) (backend.Item, error) {
	if g.closed.Load() {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return backend.Item{}, ctx.Err()
		}
	}
	return g.Backend.Get(ctx, service, target)
}

func TestClientsKilledMidRequest(t *testing.T) {
	gate := &gateBackend{Backend: memory.New(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServer(t, gate, &grant{read: []string{"svc"}})
	base := baseline(t, ts)
	gate.closed.Store(true)

	// Killed with half a request line sent.
	h := startHelper(t, ts, "", "half")
	if got := h.line(t); got != "ready" {
		t.Fatalf("helper says %q", got)
	}
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 1 })
	h.kill()
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 0 })

	// Killed while the daemon works on its request: the reply then has
	// nowhere to go.
	h = startHelper(t, ts, "", "wait")
	h.line(t)
	<-gate.entered
	h.kill()
	close(gate.release)
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 0 })

	gate.closed.Store(false)
	servedAfter(t, ts)
	backToBaseline(t, base)
}

func TestGarbageLinesAreAnsweredAndKeepTheConnection(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	base := baseline(t, ts)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	valid := []byte(writeReq("svc", "a", "1"))
	lines := make([][]byte, 0, 2000)
	for len(lines) < cap(lines) {
		var l []byte
		switch rng.IntN(3) {
		case 0: // random bytes
			l = make([]byte, 1+rng.IntN(300))
			for i := range l {
				l[i] = byte(rng.IntN(256))
			}
		case 1: // a valid request with a few bytes changed
			l = append([]byte(nil), valid...)
			for range 1 + rng.IntN(4) {
				l[rng.IntN(len(l))] = byte(rng.IntN(256))
			}
		default: // JSON of the wrong shape
			l = []byte([]string{`[]`, `null`, `{}`, `{"type":"REQUEST"}`, `{"type":"REQUEST","action":"read","service":1}`,
				`{"type":"REQUEST","action":"write","service":"svc","targets":["a"],"values":[]}`, strings.Repeat("[", 20000),
				`{"type":"REQUEST","action":"read","service":"svc","targets":["a"],"type":"REQUEST"}`, "\"\xff\""}[rng.IntN(9)])
		}
		l = []byte(strings.ReplaceAll(string(l), "\n", " "))
		if _, err := protocol.DecodeRequest(l); err == nil {
			continue // a mutation that is still a valid request is no garbage
		}
		lines = append(lines, l)
	}

	c := ts.dial(t)
	go func() {
		w := bufio.NewWriter(c.nc)
		for _, l := range lines {
			w.Write(l)
			w.WriteByte('\n')
		}
		w.Flush()
	}()
	for i := range lines {
		r, ok := c.recv()
		if !ok {
			t.Fatalf("connection closed after %d garbage lines; line %d was %q", i, i, lines[i])
		}
		if r.Status != protocol.StatusError || r.Reason != protocol.ReasonMalformedRequest {
			t.Fatalf("garbage line %d %q got %s/%s", i, lines[i], r.Status, r.Reason)
		}
	}
	mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
	c.nc.Close()
	backToBaseline(t, base)
}

func TestSlowLorisTrickleIsCutOff(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, func(o *Options) {
		o.LineTimeout = 300 * time.Millisecond
		o.IdleTimeout = time.Hour
	})
	base := baseline(t, ts)
	c := ts.dial(t)
	stop := make(chan struct{})
	trickled := make(chan int)
	go func() {
		n := 0
		defer func() { trickled <- n }()
		// One byte at a time, each well within the line timeout: only a
		// deadline set when the line started can end this.
		for _, b := range []byte(strings.Repeat(`{"type":"REQUEST",`, 1000)) {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := c.nc.Write([]byte{b}); err != nil {
				return
			}
			n++
		}
	}()
	if !c.closed() {
		t.Fatal("a trickled line that never ends keeps the connection")
	}
	close(stop)
	if n := <-trickled; n < 2 {
		t.Fatalf("only %d bytes were trickled before the cut; the test did not trickle", n)
	}
	c.nc.Close()
	backToBaseline(t, base)
}

// hugeCopy copies the test binary to a new file and extends it with a
// sparse hole to size bytes: a distinct, runnable image that costs no disk
// but takes the daemon long to hash.
func hugeCopy(t *testing.T, dir string, size int64) string {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := os.CreateTemp(dir, "huge-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// startImage runs a freshly written image, retrying while a concurrently
// forked child still holds it open for writing (ETXTBSY).
func startImage(t *testing.T, ts *testServer, exe, mode string) *helper {
	t.Helper()
	for try := 0; ; try++ {
		h, err := tryStartHelper(t, ts, exe, mode)
		if err == nil {
			return h
		}
		if !errors.Is(err, syscall.ETXTBSY) || try == 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tryStartHelper(t *testing.T, ts *testServer, exe, mode string) (*helper, error) {
	cmd := exec.Command(exe, "-test.run=^TestHelperClient$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperSockEnv+"="+ts.socket)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &helper{cmd: cmd, out: bufio.NewReader(out)}
	t.Cleanup(h.kill)
	return h, nil
}

func TestHugeImageIsHashedOnce(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	baseline(t, ts)
	exe := hugeCopy(t, t.TempDir(), 512<<20)
	hits0, misses0 := ts.srv.opts.Attestor.Stats()

	// Concurrently, then one after another: eight connections from eight
	// processes running one 512 MiB image.
	var hs []*helper
	for range 4 {
		hs = append(hs, startImage(t, ts, exe, "ask"))
	}
	for _, h := range hs {
		if got := h.line(t); !strings.Contains(got, string(protocol.ReasonUnregisteredBinary)) {
			t.Fatalf("huge unregistered image got %q", got)
		}
	}
	for range 4 {
		if got := startImage(t, ts, exe, "ask").line(t); !strings.Contains(got, string(protocol.ReasonUnregisteredBinary)) {
			t.Fatalf("huge unregistered image got %q", got)
		}
	}
	hits, misses := ts.srv.opts.Attestor.Stats()
	if misses-misses0 != 1 || hits-hits0 != 7 {
		t.Fatalf("eight connections of one image: %d hashes and %d cache answers; want 1 and 7", misses-misses0, hits-hits0)
	}
}

func TestUnregisteredFloodDoesNotStarveRegistered(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	baseline(t, ts) // hashes and caches the registered image (this binary)
	_, misses0 := ts.srv.opts.Attestor.Stats()

	// Four distinct images far too large to hash during the test, two
	// processes each: both hashing slots stay busy and the rest queue.
	dir := t.TempDir()
	const images = 4
	var flood []*helper
	for range images {
		exe := hugeCopy(t, dir, 1<<40)
		for range 2 {
			flood = append(flood, startImage(t, ts, exe, "ask"))
		}
	}
	waitUntil(t, func() bool { _, m := ts.srv.opts.Attestor.Stats(); return m-misses0 == images })

	hits0, _ := ts.srv.opts.Attestor.Stats()
	const rounds = 20
	for range rounds {
		c := ts.dial(t)
		mustStatus(t, c.roundTrip(readReq("svc", "a")), protocol.StatusSuccess, "")
		c.nc.Close()
	}
	hits, misses := ts.srv.opts.Attestor.Stats()
	if hits-hits0 != rounds || misses-misses0 != images {
		t.Errorf("registered connections: %d cache answers, %d new hashes; want %d and none", hits-hits0, misses-misses0-images, rounds)
	}
	// The flood is still being verified: the registered client was served
	// while the hashing slots were taken, not after. (Each flood image takes
	// minutes to hash; an answered flood connection would be closed.)
	waitUntil(t, func() bool { return ts.srv.ConnCount() == len(flood) })
	for _, h := range flood {
		h.kill()
	}
	ts.stop(t) // cancels the hashes in progress
}

// A client that hangs up while its image is being hashed cancels that hash:
// its uid's one hashing slot is free again for the uid's next new image.
// Without the cancel the next image would wait for a 1 TiB hash.
func TestHashOfHungUpClientIsCancelled(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	baseline(t, ts)
	_, misses0 := ts.srv.opts.Attestor.Stats()
	dir := t.TempDir()
	huge := startImage(t, ts, hugeCopy(t, dir, 1<<40), "ask")
	waitUntil(t, func() bool { _, m := ts.srv.opts.Attestor.Stats(); return m-misses0 == 1 })
	huge.kill()

	// Same uid, a new image (this test binary with a page appended, so its
	// hash is new): answered once the slot is free.
	self, err := os.Stat(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	small := startImage(t, ts, hugeCopy(t, dir, self.Size()+4096), "ask")
	got := make(chan string, 1)
	go func() {
		s, _ := small.out.ReadString('\n')
		got <- s
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, string(protocol.ReasonUnregisteredBinary)) {
			t.Fatalf("a new image after the hung-up hash got %q, want it hashed and refused as unregistered", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a new image of the same uid was not answered within 30 s: the hung-up client's hash still holds the uid's hashing slot")
	}
	waitUntil(t, func() bool { return ts.srv.ConnCount() == 0 })
}
