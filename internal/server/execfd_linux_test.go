package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/memory"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/protocol"
)

// sendFDs writes line with the given descriptors attached.
func (c *conn) sendFDs(line string, files ...*os.File) {
	c.tb.Helper()
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.nc.(*net.UnixConn).WriteMsgUnix([]byte(line+"\n"), oob, nil); err != nil {
		c.tb.Fatal(err)
	}
}

func execReq(service string, targets ...string) string {
	return strings.TrimSuffix(readReq(service, targets...), "}") + `,"exec_fd":true,"exec_argv":["prog","arg"]}`
}

// openFDs counts this process's open descriptors: the server runs in it.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// execServer serves the test binary as the daemon's own binary (its hash
// is ExecHash), registered for reading svc, with svc/k stored.
func execServer(t *testing.T, execHash string) *testServer {
	t.Helper()
	be := memory.New()
	if err := be.Set(context.Background(), "svc", []backend.Item{{Target: "k", Value: []byte("v-exec")}}); err != nil {
		t.Fatal(err)
	}
	if execHash == "" {
		_, execHash = self(t)
	}
	return startServer(t, be, &grant{read: []string{"svc"}}, func(o *Options) { o.ExecHash = execHash })
}

// Not parallel: it counts the process's descriptors. The collector is off
// so that an *os.File's finalizer cannot close a leaked descriptor for the
// server.
func TestDescriptorRequests(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	exe, _ := self(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("\x7fELF not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mine []*os.File // the test's own, closed before counting
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		mine = append(mine, f)
		return f
	}
	ts := execServer(t, "")
	// The first connection sets up lazily allocated descriptors (config
	// watch, audit): count from after it.
	ts.dial(t).roundTrip(readReq("svc", "k"))
	base := openFDs(t)

	tests := []struct {
		name   string
		line   string
		files  []*os.File
		status protocol.Status
		reason protocol.Reason
		text   string
	}{
		{"exec_fd without a descriptor", execReq("svc", "k"), nil, protocol.StatusError, protocol.ReasonMalformedRequest, "exactly one descriptor"},
		{"two descriptors", execReq("svc", "k"), []*os.File{open(exe), open(exe)}, protocol.StatusError, protocol.ReasonMalformedRequest, "exactly one descriptor"},
		{"descriptor with a plain read", readReq("svc", "k"), []*os.File{open(exe)}, protocol.StatusError, protocol.ReasonMalformedRequest, `without "exec_fd":true`},
		{"directory", execReq("svc", "k"), []*os.File{open(dir)}, protocol.StatusError, protocol.ReasonMalformedRequest, "not a regular file"},
		{"not executable", execReq("svc", "k"), []*os.File{open(plain)}, protocol.StatusError, protocol.ReasonMalformedRequest, "not executable"},
		{"script", execReq("svc", "k"), []*os.File{open(script)}, protocol.StatusDenied, protocol.ReasonUnverifiableProcess, "#! script"},
		{"registered program", execReq("svc", "k"), []*os.File{open(exe)}, protocol.StatusSuccess, "", ""},
		{"registered program, other service", execReq("other", "k"), []*os.File{open(exe)}, protocol.StatusDenied, protocol.ReasonServiceNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			c.sendFDs(tc.line, tc.files...)
			r, ok := c.recv()
			if !ok {
				t.Fatal("connection closed without a reply")
			}
			mustStatus(t, r, tc.status, tc.reason)
			if !strings.Contains(r.Message, tc.text) {
				t.Errorf("message %q does not say %q", r.Message, tc.text)
			}
			if tc.status == protocol.StatusSuccess && (len(r.Results) != 1 || r.Results[0].Value == nil || *r.Results[0].Value != "v-exec") {
				t.Errorf("results %+v", r.Results)
			}
			if !c.closed() {
				t.Error("the connection stayed open after a descriptor request")
			}
		})
	}
	for _, f := range mine {
		f.Close()
	}
	// Every received descriptor was closed, on every path.
	deadline := time.Now().Add(2 * time.Second)
	for n := openFDs(t); n > base; n = openFDs(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open after the requests, %d before: received descriptors leaked", n, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDescriptorFromAnotherBinaryIsRefused(t *testing.T) {
	t.Parallel()
	exe, _ := self(t)
	ts := execServer(t, "sha256:"+strings.Repeat("0", 64))
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := ts.dial(t)
	c.sendFDs(execReq("svc", "k"), f)
	r, ok := c.recv()
	if !ok {
		t.Fatal("connection closed without a reply")
	}
	mustStatus(t, r, protocol.StatusDenied, protocol.ReasonActionNotInPolicy)
	if !c.closed() {
		t.Error("the connection stayed open")
	}
	// exec_fd without a descriptor is malformed, whoever sends it.
	c = ts.dial(t)
	c.send(execReq("svc", "k"))
	r, _ = c.recv()
	mustStatus(t, r, protocol.StatusError, protocol.ReasonMalformedRequest)
	if !c.closed() {
		t.Error("the connection stayed open")
	}
	// Its plain requests are served as before.
	r = ts.dial(t).roundTrip(readReq("svc", "k"))
	mustStatus(t, r, protocol.StatusSuccess, "")
}

// The daemon's own binary is let in unregistered for descriptor requests;
// its plain requests are still refused, closed and queued as before.
func TestUnregisteredExecClientPlainRequestIsQueued(t *testing.T) {
	t.Parallel()
	_, hash := self(t)
	ts := startServer(t, nil, nil, func(o *Options) { o.ExecHash = hash })
	c := ts.dial(t)
	c.send(readReq("svc", "a"))
	r, _ := c.recv()
	mustStatus(t, r, protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	if !c.closed() {
		t.Fatal("connection stays open after unregistered_binary")
	}
	ts.stop(t) // waits for background pending writes
	recs, err := config.LoadPending(ts.pending, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Hash != hash {
		t.Fatalf("pending: %+v", recs)
	}
}

// An unregistered program sent by the daemon's own binary is queued with
// its own identity and the argv the request carried.
func TestDescriptorForUnregisteredProgramIsQueued(t *testing.T) {
	t.Parallel()
	exe, hash := self(t)
	ts := startServer(t, nil, nil, func(o *Options) { o.ExecHash = hash })
	dir := t.TempDir()
	// A copy with one more byte: another hash, still executable.
	prog := filepath.Join(dir, "prog")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := ts.dial(t)
	c.sendFDs(execReq("svc", "k"), f)
	r, _ := c.recv()
	mustStatus(t, r, protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	ts.stop(t)
	recs, err := config.LoadPending(ts.pending, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Hash == hash || recs[0].Path != prog || strings.Join(recs[0].CommandLine, " ") != "prog arg" {
		t.Fatalf("pending: %+v", recs)
	}
}
