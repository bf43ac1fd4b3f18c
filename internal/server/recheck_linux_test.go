package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/pidreuse"
	"github.com/The-17/keychain-auth/protocol"
)

// The process checked for tampering at connect must be the one pinned
// before: one that exec'd (or died) in between is refused at connect, and
// its request is never read as one of a verified session.
func TestPeerReplacedAfterTamperCheckIsRefusedAtConnect(t *testing.T) {
	rec := &recorder{}
	reached, proceed := make(chan struct{}), make(chan struct{})
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, withAudit(rec, -1), func(o *Options) {
		o.atStep = func(step string) {
			if step == "tamper-checked" {
				reached <- struct{}{}
				<-proceed
			}
		}
	})
	h := startHelper(t, ts, "", "wait") // sends a request, then waits
	if got := h.line(t); got != "ready" {
		t.Fatalf("helper: %q", got)
	}
	<-reached
	// The address space the daemon pinned and checked goes away.
	h.kill()
	close(proceed)
	waitUntil(t, func() bool { return len(rec.records()) > 0 })
	ts.stop(t)
	recs := rec.records()
	if len(recs) != 1 || recs[0].Event != audit.EventConnectDenied || recs[0].Reason != string(protocol.ReasonProcessChanged) {
		t.Fatalf("records %+v; want one connect_denied process_changed", recs)
	}
}

// Before each request the daemon re-checks the image the peer runs: a file
// whose identity changed (here its mtime) since it was hashed is not the
// verified image any more.
func TestImageChangedBetweenRequestsIsRefused(t *testing.T) {
	ts := startServer(t, nil, &grant{read: []string{"svc"}})
	// A copy of this test binary: the same hash, so registered, but a file
	// of its own to change.
	fi, err := os.Stat(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := hugeCopy(t, t.TempDir(), fi.Size())
	h := startPiped(t, ts, exe, "two")
	reply := h.reply
	mustStatus(t, reply(), protocol.StatusSuccess, "")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(exe, later, later); err != nil {
		t.Fatal(err)
	}
	io.WriteString(h.stdin, "\n")
	mustStatus(t, reply(), protocol.StatusDenied, protocol.ReasonProcessChanged)
}

// piped is a helper client whose stdin the test writes.
type piped struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startPiped runs the image exe in helper mode, retrying while a freshly
// written image is still busy.
func startPiped(t *testing.T, ts *testServer, exe, mode string) *piped {
	t.Helper()
	h := &piped{t: t}
	for try := 0; ; try++ {
		h.cmd = exec.Command(exe, "-test.run=^TestHelperClient$")
		h.cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperSockEnv+"="+ts.socket)
		h.cmd.Stderr = os.Stderr
		h.stdin, _ = h.cmd.StdinPipe()
		o, _ := h.cmd.StdoutPipe()
		h.out = bufio.NewReader(o)
		err := h.cmd.Start()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "text file busy") || try == 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { h.cmd.Process.Kill(); h.cmd.Wait() })
	return h
}

func (h *piped) reply() protocol.Response {
	h.t.Helper()
	line, err := h.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) == "closed" {
		h.t.Fatalf("helper: %q, %v", line, err)
	}
	var r protocol.Response
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		h.t.Fatalf("reply %q: %v", line, err)
	}
	return r
}

// A verified peer whose pid the kernel gave to a new process of the same
// binary: the image at /proc/<pid>/exe looks unchanged, but the liveness
// check through the pidfd knows the verified process is gone, and says so.
// (The exec pin would refuse it too, as an exec: this checks that the
// first line of defence holds.)
func TestReusedPIDIsNotServed(t *testing.T) {
	if err := pidreuse.Available(); err != nil {
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("cannot set the next pid as root (%v): CI must be able to stage pid reuse", err)
		}
		t.Skipf("SKIPPED: cannot set the next pid (%v); run as root to cover it", err)
	}
	fi, err := os.Stat(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := hugeCopy(t, t.TempDir(), fi.Size())
	// Another process on the machine may take the pid first and keep it:
	// then stage it all again with a new daemon and a new victim.
	var lost error
	for attempt := 0; attempt < 5; attempt++ {
		if lost = reusedPIDScenario(t, exe); lost == nil {
			return
		}
		t.Logf("attempt %d: %v; staging it again", attempt+1, lost)
	}
	t.Fatalf("other processes took the victim's pid 5 times in a row: %v", lost)
}

// reusedPIDScenario runs one attempt of TestReusedPIDIsNotServed; it returns
// pidreuse.ErrTaken when the pid went to a process not of its making.
func reusedPIDScenario(t *testing.T, exe string) error {
	rec := &recorder{}
	var armed atomic.Bool
	reached, proceed := make(chan struct{}), make(chan struct{})
	ts := startServer(t, nil, &grant{read: []string{"svc"}}, withAudit(rec, -1), func(o *Options) {
		o.atStep = func(step string) {
			if step == "recheck" && armed.Load() {
				reached <- struct{}{}
				<-proceed
			}
		}
	})
	defer ts.stop(t)
	h := startPiped(t, ts, exe, "two-exit")
	mustStatus(t, h.reply(), protocol.StatusSuccess, "")
	pid := h.cmd.Process.Pid
	armed.Store(true)
	io.WriteString(h.stdin, "\n") // the second request, then the helper exits
	<-reached
	h.cmd.Wait()
	reused, err := pidreuse.Reuse(pid, func() (*exec.Cmd, error) {
		cmd := exec.Command(exe, "-test.run=^TestHelperClient$")
		cmd.Env = append(os.Environ(), helperEnv+"=idle")
		return cmd, cmd.Start()
	})
	if errors.Is(err, pidreuse.ErrTaken) {
		close(proceed)
		return err
	}
	if err != nil {
		close(proceed)
		t.Fatal(err)
	}
	defer func() { reused.Process.Kill(); reused.Wait() }()
	close(proceed)
	waitUntil(t, func() bool { return len(rec.events(audit.EventRequest)) == 2 })
	r := rec.events(audit.EventRequest)[1]
	if r.Reason != string(protocol.ReasonProcessChanged) || !strings.Contains(r.Message, "no longer runs the executable it was verified with") {
		t.Fatalf("request from the reused pid: %s %q; want process_changed from the liveness check", r.Reason, r.Message)
	}
	return nil
}
