package client_test

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// fakeDaemon answers the wire protocol on a real Unix socket from an in-memory
// store. It stands in for the daemon so these tests can pin down the client's
// side of the contract; the real daemon is tested end to end elsewhere.
type fakeDaemon struct {
	path string
	ln   net.Listener
	hash string // what check reports as the caller's hash

	// handle, when set, replaces the default store semantics for a request.
	handle func(req *protocol.Request) fakeReply

	mu     sync.Mutex
	store  map[string]map[string]protocol.Result // service -> target -> item
	lines  [][]byte                              // every request line received
	closed chan struct{}                         // gets a value whenever a connection ends
	wg     sync.WaitGroup
}

// fakeReply says how to answer one request.
type fakeReply struct {
	resp  *protocol.Response // encoded as one line, unless raw is set
	raw   []byte             // bytes written verbatim instead of resp
	close bool               // close the connection after replying
	hang  bool               // never answer; wait for the client to go away
}

// startFake listens in dir (which must keep the socket path under the
// 108-byte sun_path limit) and serves until stop is called.
func startFake(dir string) (*fakeDaemon, func(), error) {
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, err
	}
	f := &fakeDaemon{
		path:   path,
		ln:     ln,
		hash:   "sha256:" + strings.Repeat("ab", 32),
		store:  map[string]map[string]protocol.Result{},
		closed: make(chan struct{}, 64),
	}
	var (
		connMu sync.Mutex
		conns  []net.Conn
	)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connMu.Lock()
			conns = append(conns, c)
			connMu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	stop := func() {
		ln.Close()
		connMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connMu.Unlock()
		f.wg.Wait()
	}
	return f, stop, nil
}

// newFake starts a fake daemon for one test.
func newFake(t *testing.T) *fakeDaemon {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 {
		// Long test names make long temp dirs; sun_path holds 108 bytes.
		var err error
		if dir, err = os.MkdirTemp("", "kca"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	f, stop, err := startFake(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return f
}

func (f *fakeDaemon) serve(c net.Conn) {
	defer func() {
		c.Close()
		select {
		case f.closed <- struct{}{}:
		default:
		}
	}()
	r := protocol.NewReader(c)
	for {
		line, err := r.Next()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.lines = append(f.lines, slices.Clone(line))
		f.mu.Unlock()
		req, err := protocol.DecodeRequest(line)
		var reply fakeReply
		switch {
		case err != nil:
			reply.resp = protocol.Failure(nil, protocol.ReasonMalformedRequest, err.Error())
		case f.handle != nil:
			reply = f.handle(req)
		default:
			reply.resp = f.answer(req)
		}
		if reply.hang {
			// Wait for the client to close its end. If it never does, answer
			// late after all, so a client that ignores its context fails the
			// test instead of hanging it.
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			reply = fakeReply{resp: f.answer(req)}
		}
		if reply.raw != nil {
			_, err = c.Write(reply.raw)
		} else {
			err = protocol.WriteResponse(c, reply.resp)
		}
		if err != nil || reply.close {
			return
		}
	}
}

// requests returns the request lines received so far, decoded loosely so a
// test can see exactly which fields were on the wire.
func (f *fakeDaemon) requests(t *testing.T) []map[string]json.RawMessage {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]json.RawMessage, len(f.lines))
	for i, l := range f.lines {
		if err := json.Unmarshal(l, &out[i]); err != nil {
			t.Fatalf("request line %d is not a JSON object: %v", i, err)
		}
	}
	return out
}

func (f *fakeDaemon) put(service, target, value string, attrs map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store[service] == nil {
		f.store[service] = map[string]protocol.Result{}
	}
	f.store[service][target] = protocol.Result{Target: target, Value: &value, Attributes: attrs}
}

// answer applies the protocol's semantics to the in-memory store. Service
// "forbidden" is always denied, to exercise policy errors.
func (f *fakeDaemon) answer(req *protocol.Request) *protocol.Response {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Service == "forbidden" {
		return protocol.Failure(req.ID, protocol.ReasonServiceNotAllowed, "this binary may not use service forbidden; grant it with `keychain-auth grant`")
	}
	items := f.store[req.Service]
	matches := func(it protocol.Result) bool {
		for k, v := range req.Attributes {
			if it.Attributes[k] != v {
				return false
			}
		}
		return true
	}
	list := func(prefix string, withValues bool) []protocol.Result {
		out := []protocol.Result{}
		for t, it := range items {
			if strings.HasPrefix(t, prefix) && matches(it) {
				if !withValues {
					it.Value = nil
				}
				out = append(out, it)
			}
		}
		slices.SortFunc(out, func(a, b protocol.Result) int { return strings.Compare(a.Target, b.Target) })
		return out
	}
	exact := func() (found []protocol.Result, missing []string) {
		for _, t := range req.Targets {
			if it, ok := items[t]; ok && matches(it) {
				found = append(found, it)
			} else {
				missing = append(missing, t)
			}
		}
		return found, missing
	}
	switch req.Action {
	case protocol.ActionCheck:
		return protocol.Success(req.ID, []protocol.Result{{Target: f.hash, Attributes: map[string]string{
			"path": "/usr/local/bin/tool", "can_search": "true", "read_services": "aws,db-*", "write_services": "",
		}}})
	case protocol.ActionSearch:
		prefix := ""
		if len(req.Targets) > 0 {
			prefix = req.Targets[0]
		}
		return protocol.Success(req.ID, list(prefix, false))
	case protocol.ActionRead:
		if req.Match == protocol.MatchPrefix {
			return protocol.Success(req.ID, list(req.Targets[0], true))
		}
		found, missing := exact()
		if req.RequireAll && len(missing) > 0 {
			resp := protocol.Failure(req.ID, protocol.ReasonNotFound, "some targets do not exist; nothing was read")
			resp.Missing = missing
			return resp
		}
		resp := protocol.Success(req.ID, found)
		resp.Missing = missing
		return resp
	case protocol.ActionWrite:
		if items == nil {
			items = map[string]protocol.Result{}
			f.store[req.Service] = items
		}
		for i, t := range req.Targets {
			v := req.Values[i]
			items[t] = protocol.Result{Target: t, Value: &v, Attributes: req.Attributes}
		}
		return protocol.Success(req.ID, nil)
	case protocol.ActionDelete:
		_, missing := exact()
		if req.RequireAll && len(missing) > 0 {
			resp := protocol.Failure(req.ID, protocol.ReasonNotFound, "some targets do not exist; nothing was deleted")
			resp.Missing = missing
			return resp
		}
		for _, t := range req.Targets {
			delete(items, t)
		}
		resp := protocol.Success(req.ID, nil)
		resp.Missing = missing
		return resp
	}
	return protocol.Failure(req.ID, protocol.ReasonInternalError, "fake daemon: unhandled action")
}
