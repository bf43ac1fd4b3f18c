package server

import (
	"fmt"
	"net"
	"os"
	"os/exec"
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
	ts := startServer(t, nil, nil, withAudit(rec, -1), func(o *Options) {
		o.Listener = gatedListener{Listener: o.Listener, gate: gate}
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
