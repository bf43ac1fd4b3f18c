package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/peer"
	"github.com/The-17/keychain-auth/protocol"
)

// gatedListener accepts nothing until gate is closed, so that a test can
// have a client exit before the daemon looks at it.
type gatedListener struct {
	net.Listener
	gate chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	<-l.gate
	return l.Listener.Accept()
}

// TestProbeThatExitedLeavesNoRecord: a probe such as `status` connects,
// hangs up and exits, often before the daemon asks the kernel who it was.
// That is no refused request: no connect_denied may be recorded.
func TestProbeThatExitedLeavesNoRecord(t *testing.T) {
	rec := &recorder{}
	gate := make(chan struct{})
	var logs syncBuf
	ts := startServer(t, nil, nil, withAudit(rec, -1), func(o *Options) {
		o.Listener = gatedListener{Listener: o.Listener, gate: gate}
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) // info and above
	})
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClient$")
		cmd.Env = append(os.Environ(), helperEnv+"=probe", helperSockEnv+"="+ts.socket)
		if out, err := cmd.CombinedOutput(); err != nil {
			close(gate)
			t.Fatalf("probe: %v\n%s", err, out)
		}
	}
	close(gate)
	// The probes' connections were queued before the daemon accepted; stop
	// waits until every one of them has been handled.
	waitUntil(t, func() bool { return ts.srv.nextConn.Load() == 3 })
	ts.stop(t)
	for _, r := range rec.events(audit.EventConnectDenied) {
		t.Errorf("a probe that exited left a record: %s %s %q", r.Result, r.Reason, r.Message)
	}
	// Nor a line in the daemon's log at its default level: every status
	// call would add one.
	if s := logs.String(); s != "" {
		t.Errorf("probes logged at info level or above:\n%s", s)
	}
}

// syncBuf is a log destination safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGonePeerIsRecordedOnlyIfItAsked: where the kernel lacks SO_PEERPIDFD,
// a probe that exited before the daemon looked cannot be identified at all.
// It is refused like any caller, and recorded only if it sent a request.
func TestGonePeerIsRecordedOnlyIfItAsked(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, nil, nil, withAudit(rec, -1), func(o *Options) {
		o.fromConn = func(net.Conn) (*peer.Peer, error) { return nil, fmt.Errorf("peer pid 42: %w", peer.ErrGone) }
	})
	probe := ts.dial(t)
	probe.nc.Close()
	asker := ts.dial(t)
	mustStatus(t, asker.roundTrip(readReq("svc", "a")), protocol.StatusDenied, protocol.ReasonProcessChanged)
	waitUntil(t, func() bool { return ts.srv.nextConn.Load() == 2 })
	ts.stop(t)
	recs := rec.events(audit.EventConnectDenied)
	if len(recs) != 1 || recs[0].Action != "read" || recs[0].Reason != string(protocol.ReasonProcessChanged) {
		t.Fatalf("connect_denied records %+v; want only the one that asked to read", recs)
	}
}
