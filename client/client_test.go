package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/protocol"
)

func dial(t *testing.T, f *fakeDaemon) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.WithSocket(f.path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSocketPaths(t *testing.T) {
	t.Parallel()
	uid := strconv.Itoa(os.Getuid())
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"override wins over everything",
			map[string]string{"KEYCHAIN_AUTH_SOCKET": "/s/a.sock", "XDG_RUNTIME_DIR": "/run/user/7", "KEYCHAIN_AUTH_SYSTEM_ROOT": "/r"},
			[]string{"/s/a.sock"}},
		{"system then xdg runtime dir",
			map[string]string{"XDG_RUNTIME_DIR": "/run/user/7"},
			[]string{"/run/keychain-auth/agent.sock", "/run/user/7/keychain-auth/agent.sock"}},
		{"system root prefixes the system socket",
			map[string]string{"KEYCHAIN_AUTH_SYSTEM_ROOT": "/sys-root", "XDG_RUNTIME_DIR": "/run/user/7"},
			[]string{"/sys-root/run/keychain-auth/agent.sock", "/run/user/7/keychain-auth/agent.sock"}},
		{"tmpdir without xdg",
			map[string]string{"TMPDIR": "/var/tmp"},
			[]string{"/run/keychain-auth/agent.sock", "/var/tmp/keychain-auth-" + uid + "/agent.sock"}},
		{"tmp by default",
			map[string]string{},
			[]string{"/run/keychain-auth/agent.sock", "/tmp/keychain-auth-" + uid + "/agent.sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := client.SocketPaths(envOf(tt.env)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SocketPaths = %q, want %q", got, tt.want)
			}
		})
	}
}

// The system daemon is preferred when its socket exists; otherwise the user's.
func TestDialPrefersSystemSocket(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	runtime := t.TempDir()
	sysDir := filepath.Join(root, "run", "keychain-auth")
	userDir := filepath.Join(runtime, "keychain-auth")
	for _, d := range []string{sysDir, userDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	user, stopUser, err := startFake(userDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopUser)
	user.hash = "sha256:user"
	env := envOf(map[string]string{"KEYCHAIN_AUTH_SYSTEM_ROOT": root, "XDG_RUNTIME_DIR": runtime})

	whoAnswers := func() string {
		t.Helper()
		c, err := client.Dial(context.Background(), client.WithEnv(env))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res, err := c.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res.Hash
	}
	if got := whoAnswers(); got != "sha256:user" {
		t.Errorf("without a system socket, answered by %q, want the user daemon", got)
	}
	sys, stopSys, err := startFake(sysDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopSys)
	sys.hash = "sha256:system"
	if got := whoAnswers(); got != "sha256:system" {
		t.Errorf("with a system socket, answered by %q, want the system daemon", got)
	}
}

// In system mode a missing system socket is an error, not a reason to use the
// user's own daemon, unless the caller asks for that.
func TestDialDoesNotFallBackToUserDaemonInSystemMode(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	runtime := t.TempDir()
	userDir := filepath.Join(runtime, "keychain-auth")
	cfgDir := filepath.Join(root, "etc", "keychain-auth")
	for _, d := range []string{userDir, cfgDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"protocol_version":"1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	user, stopUser, err := startFake(userDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopUser)
	user.hash = "sha256:user"
	env := map[string]string{"KEYCHAIN_AUTH_SYSTEM_ROOT": root, "XDG_RUNTIME_DIR": runtime}

	c, err := client.Dial(context.Background(), client.WithEnv(envOf(env)))
	if err == nil {
		c.Close()
		t.Fatalf("Dial in system mode without a system daemon connected to %s", c.SocketPath())
	}
	if !errors.Is(err, client.ErrSystemDaemonDown) || !errors.Is(err, client.ErrNoDaemon) {
		t.Errorf("Dial = %v, want ErrSystemDaemonDown and ErrNoDaemon", err)
	}
	sysSock := filepath.Join(root, "run", "keychain-auth", "agent.sock")
	for _, want := range []string{sysSock, "AllowUserFallback", filepath.Join(cfgDir, "config.json")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	c, err = client.Dial(context.Background(), client.WithEnv(envOf(env)), client.AllowUserFallback())
	if err != nil {
		t.Fatalf("Dial with AllowUserFallback: %v", err)
	}
	defer c.Close()
	if res, err := c.Check(context.Background()); err != nil || res.Hash != "sha256:user" {
		t.Errorf("with AllowUserFallback, Check = %v, %v; want the user daemon", res, err)
	}

	// An explicit socket is the caller's choice too.
	env["KEYCHAIN_AUTH_SOCKET"] = filepath.Join(userDir, "agent.sock")
	c2, err := client.Dial(context.Background(), client.WithEnv(envOf(env)))
	if err != nil {
		t.Fatalf("Dial with KEYCHAIN_AUTH_SOCKET set: %v", err)
	}
	c2.Close()
}

func TestDialNoDaemon(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agent.sock")
	_, err := client.Dial(context.Background(), client.WithEnv(envOf(map[string]string{"KEYCHAIN_AUTH_SOCKET": path})))
	if !errors.Is(err, client.ErrNoDaemon) {
		t.Fatalf("Dial to a missing socket: %v, want ErrNoDaemon", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not say the socket is missing", err)
	}
	for _, want := range []string{path, "keychain-auth start"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestReadWriteDeleteSearch(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := dial(t, f)
	ctx := context.Background()

	err := c.Write(ctx, "aws", map[string]string{"secret-key": "v-secret", "access-key": "v-access", "region": "v-region"},
		map[string]string{"env": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Read(ctx, "aws", []string{"access-key", "nope", "secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"access-key": "v-access", "secret-key": "v-secret"}; !reflect.DeepEqual(res.Values, want) {
		t.Errorf("Read values differ from what was written (targets %v)", keys(res.Values))
	}
	if !reflect.DeepEqual(res.Missing, []string{"nope"}) {
		t.Errorf("Read missing = %q, want [nope]", res.Missing)
	}
	if len(res.Items) != 2 || res.Items[0].Target != "access-key" || res.Items[0].Attributes["env"] != "prod" {
		t.Errorf("Read items = %d, first %q with attributes %v", len(res.Items), res.Items[0].Target, res.Items[0].Attributes)
	}

	pre, err := c.ReadPrefix(ctx, "aws", "re")
	if err != nil {
		t.Fatal(err)
	}
	if len(pre) != 1 || pre[0].Target != "region" || pre[0].Value != "v-region" {
		t.Errorf("ReadPrefix(re) returned %d items, want region with its value", len(pre))
	}

	found, err := c.Search(ctx, "aws", "", map[string]string{"env": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if got := targets(found); !reflect.DeepEqual(got, []string{"access-key", "region", "secret-key"}) {
		t.Errorf("Search targets = %q", got)
	}
	for _, it := range found {
		if it.Value != "" {
			t.Errorf("Search returned a value for %q", it.Target)
		}
	}
	if _, err := c.Search(ctx, "aws", "sec", nil); err != nil {
		t.Fatal(err)
	}

	missing, err := c.Delete(ctx, "aws", []string{"region", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(missing, []string{"gone"}) {
		t.Errorf("Delete missing = %q, want [gone]", missing)
	}
	if res, err := c.Read(ctx, "aws", []string{"region"}); err != nil || len(res.Items) != 0 {
		t.Errorf("region still readable after Delete: %d items, err %v", len(res.Items), err)
	}

	// What went over the wire.
	reqs := f.requests(t)
	if len(reqs) != 7 {
		t.Fatalf("daemon saw %d requests, want 7", len(reqs))
	}
	wantFields := []struct {
		action  string
		fields  []string
		targets []string
	}{
		{"write", []string{"action", "attributes", "id", "service", "targets", "type", "values"}, []string{"access-key", "region", "secret-key"}},
		{"read", []string{"action", "id", "service", "targets", "type"}, []string{"access-key", "nope", "secret-key"}},
		{"read", []string{"action", "id", "match", "service", "targets", "type"}, []string{"re"}},
		{"search", []string{"action", "attributes", "id", "service", "type"}, nil},
		{"search", []string{"action", "id", "match", "service", "targets", "type"}, []string{"sec"}},
		{"delete", []string{"action", "id", "service", "targets", "type"}, []string{"region", "gone"}},
		{"read", []string{"action", "id", "service", "targets", "type"}, []string{"region"}},
	}
	seen := map[string]bool{}
	for i, w := range wantFields {
		r := reqs[i]
		if got := sortedKeys(r); !reflect.DeepEqual(got, w.fields) {
			t.Errorf("request %d (%s) has fields %q, want %q", i, w.action, got, w.fields)
		}
		if s := str(t, r["type"]); s != "REQUEST" {
			t.Errorf("request %d type = %q", i, s)
		}
		if s := str(t, r["action"]); s != w.action {
			t.Errorf("request %d action = %q, want %q", i, s, w.action)
		}
		var tg []string
		if r["targets"] != nil {
			if err := json.Unmarshal(r["targets"], &tg); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(tg, w.targets) {
			t.Errorf("request %d targets = %q, want %q", i, tg, w.targets)
		}
		if m, ok := r["match"]; ok && str(t, m) != "prefix" {
			t.Errorf("request %d match = %s, want prefix", i, m)
		}
		id := string(r["id"])
		if seen[id] {
			t.Errorf("request %d reuses id %s", i, id)
		}
		seen[id] = true
	}
	// Values follow the sorted targets, so each lands on its own target.
	var vals []string
	if err := json.Unmarshal(reqs[0]["values"], &vals); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(vals, []string{"v-access", "v-region", "v-secret"}) {
		t.Error("write values are not aligned with the sorted targets")
	}
}

func TestRequireAll(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.put("db", "user", "u", nil)
	c := dial(t, f)
	ctx := context.Background()

	_, err := c.Read(ctx, "db", []string{"user", "password"}, client.RequireAll())
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("RequireAll read of an absent target: %v, want *Error matching ErrNotFound", err)
	}
	if !reflect.DeepEqual(e.Missing, []string{"password"}) || e.Reason != protocol.ReasonNotFound || e.Status != protocol.StatusError {
		t.Errorf("error = %+v, want not_found with missing [password]", e)
	}
	if !strings.Contains(err.Error(), "password") {
		t.Errorf("error %q does not name the missing target", err)
	}
	if errors.Is(err, client.ErrDenied) {
		t.Error("not_found matches ErrDenied")
	}

	_, err = c.Delete(ctx, "db", []string{"user", "password"}, client.RequireAll())
	if !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("RequireAll delete of an absent target: %v, want ErrNotFound", err)
	}
	if res, err := c.Read(ctx, "db", []string{"user"}); err != nil || res.Values["user"] != "u" {
		t.Error("a failed RequireAll delete removed a target")
	}
	if _, err := c.ReadPrefix(ctx, "db", "", client.RequireAll()); err == nil {
		t.Error("ReadPrefix accepted RequireAll")
	}
	for i, r := range f.requests(t)[:2] {
		if string(r["require_all"]) != "true" {
			t.Errorf("request %d require_all = %s, want true", i, r["require_all"])
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := dial(t, f)
	got, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &client.CheckResult{Hash: f.hash, Path: "/usr/local/bin/tool", CanSearch: true,
		ReadServices: []string{"aws", "db-*"}, WriteServices: []string{}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Check = %+v, want %+v", got, want)
	}
	if r := f.requests(t)[0]; str(t, r["action"]) != "check" || r["service"] != nil || r["targets"] != nil {
		t.Errorf("check request carried extra fields: %q", sortedKeys(r))
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reason                         protocol.Reason
		denied, unregistered, notFound bool
		closes                         bool
	}{
		{protocol.ReasonServiceNotAllowed, true, false, false, false},
		{protocol.ReasonActionNotInPolicy, true, false, false, false},
		{protocol.ReasonUnregisteredBinary, true, true, false, true},
		{protocol.ReasonHashMismatch, true, true, false, true},
		{protocol.ReasonBackendError, false, false, false, false},
		{protocol.ReasonNotFound, false, false, true, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.handle = func(req *protocol.Request) fakeReply {
				return fakeReply{resp: protocol.Failure(req.ID, tt.reason, "explained by the daemon"), close: tt.closes}
			}
			c := dial(t, f)
			_, err := c.Read(context.Background(), "aws", []string{"k"})
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *client.Error", err)
			}
			if e.Reason != tt.reason || e.Status != protocol.StatusOf(tt.reason) || e.Message != "explained by the daemon" ||
				e.Action != protocol.ActionRead || e.Service != "aws" {
				t.Errorf("error fields = %+v", e)
			}
			if errors.Is(err, client.ErrDenied) != tt.denied || errors.Is(err, client.ErrUnregistered) != tt.unregistered ||
				errors.Is(err, client.ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is: denied=%v unregistered=%v notFound=%v, want %v %v %v",
					errors.Is(err, client.ErrDenied), errors.Is(err, client.ErrUnregistered), errors.Is(err, client.ErrNotFound),
					tt.denied, tt.unregistered, tt.notFound)
			}
			for _, want := range []string{string(tt.reason), "explained by the daemon", `"aws"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			_, err = c.Check(context.Background())
			if tt.closes {
				if !errors.Is(err, client.ErrClosed) || !errors.Is(err, client.ErrUnregistered) {
					t.Errorf("call after the daemon closed the connection: %v, want ErrClosed naming the cause", err)
				}
				// The caller has already seen the refusal's message; the
				// next error names it, but does not repeat it.
				msg := err.Error()
				if strings.Contains(msg, "explained by the daemon") || strings.Count(msg, "keychain-auth:") != 1 ||
					!strings.Contains(msg, "earlier read on service \"aws\" ("+string(tt.reason)+"); dial again") {
					t.Errorf("call after the daemon closed the connection: %q, want one short line naming the earlier refusal", msg)
				}
				if _, again := c.Check(context.Background()); again == nil || again.Error() != msg {
					t.Errorf("a third call: %v, want the same error as the second", again)
				}
			} else if errors.Is(err, client.ErrClosed) {
				t.Errorf("connection closed after a %s answer: %v", tt.reason, err)
			}
		})
	}
}

func TestMessageFallsBackToHint(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.handle = func(req *protocol.Request) fakeReply {
		return fakeReply{resp: protocol.Failure(req.ID, protocol.ReasonHashMismatch, ""), close: true}
	}
	_, err := dial(t, f).Read(context.Background(), "aws", []string{"k"})
	if err == nil || !strings.Contains(err.Error(), "keychain-auth upgrade") {
		t.Errorf("hash_mismatch without a message: %v, want a hint to run keychain-auth upgrade", err)
	}
}

func TestResponseIDMustMatch(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.handle = func(req *protocol.Request) fakeReply {
		return fakeReply{resp: protocol.Success(json.RawMessage(`"someone-else"`), nil)}
	}
	c := dial(t, f)
	_, err := c.Search(context.Background(), "aws", "", nil)
	if !errors.Is(err, client.ErrProtocol) || !strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("mismatched id: %v, want ErrProtocol naming the id", err)
	}
	if _, err := c.Search(context.Background(), "aws", "", nil); !errors.Is(err, client.ErrClosed) {
		t.Errorf("call after a desynchronised response: %v, want ErrClosed", err)
	}
}

func TestErrorWithoutIDIsAccepted(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.handle = func(req *protocol.Request) fakeReply {
		return fakeReply{raw: []byte(`{"type":"RESPONSE","status":"error","reason":"request_too_large","message":"line too long"}` + "\n"), close: true}
	}
	_, err := dial(t, f).Read(context.Background(), "aws", []string{"k"})
	var e *client.Error
	if !errors.As(err, &e) || e.Reason != protocol.ReasonRequestTooLarge {
		t.Errorf("id-less error response: %v, want *Error request_too_large", err)
	}
}

// A response the client cannot parse must not echo its contents (it may hold
// a value) into the error.
func TestGarbledResponseKeepsValuesOut(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.handle = func(req *protocol.Request) fakeReply {
		return fakeReply{raw: []byte(`{"type":"RESPONSE","id":` + string(req.ID) + `,"status":"success","results":[{"target":"k","value":"TOPSECRET"}],}` + "\n")}
	}
	_, err := dial(t, f).Read(context.Background(), "aws", []string{"k"})
	if !errors.Is(err, client.ErrProtocol) {
		t.Fatalf("garbled response: %v, want ErrProtocol", err)
	}
	if strings.Contains(err.Error(), "TOPSECRET") {
		t.Error("the error message contains the value from the garbled response")
	}
}

func TestDaemonClosesMidStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply fakeReply
	}{
		{"before answering", fakeReply{raw: []byte{}, close: true}},
		{"half a line", fakeReply{raw: []byte(`{"type":"RESPONSE","id":1,"status":"succ`), close: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.handle = func(*protocol.Request) fakeReply { return tt.reply }
			c := dial(t, f)
			_, err := c.Read(context.Background(), "aws", []string{"k"})
			if !errors.Is(err, client.ErrClosed) && !errors.Is(err, client.ErrProtocol) {
				t.Fatalf("daemon hung up %s: %v, want ErrClosed or ErrProtocol", tt.name, err)
			}
			if !strings.Contains(err.Error(), f.path) {
				t.Errorf("error %q does not name the socket", err)
			}
			if _, err := c.Read(context.Background(), "aws", []string{"k"}); !errors.Is(err, client.ErrClosed) {
				t.Errorf("next call: %v, want ErrClosed", err)
			}
		})
	}
}

func TestDeadlineClosesConnection(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.handle = func(*protocol.Request) fakeReply { return fakeReply{hang: true} }
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Read(ctx, "aws", []string{"k"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want context.DeadlineExceeded", err)
	}
	<-f.closed // the daemon sees the connection go away
	_, err = c.Read(context.Background(), "aws", []string{"k"})
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call after an interrupted one: %v, want ErrClosed naming the deadline", err)
	}
}

func TestCancelClosesConnection(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	received := make(chan struct{})
	f.handle = func(*protocol.Request) fakeReply {
		close(received)
		return fakeReply{hang: true}
	}
	c := dial(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-received
		cancel()
	}()
	if _, err := c.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Check cancelled mid-request: %v, want context.Canceled", err)
	}
	<-f.closed
	if _, err := c.Check(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("call after a cancelled one: %v, want ErrClosed", err)
	}
}

// A caller waiting for its turn gives up at its own deadline, and Close
// releases the call that holds the connection.
func TestWaitForTurnHonoursContext(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	received := make(chan struct{})
	f.handle = func(*protocol.Request) fakeReply {
		close(received)
		return fakeReply{hang: true}
	}
	c := dial(t, f)
	first := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background())
		first <- err
	}()
	<-received
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Check(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second caller: %v, want context.DeadlineExceeded", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-first; !errors.Is(err, client.ErrClosed) {
		t.Errorf("call in flight during Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentCallers(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	const callers, rounds = 20, 25
	for g := range callers {
		f.put("svc", fmt.Sprintf("t%02d", g), fmt.Sprintf("value-of-%02d", g), nil)
	}
	c := dial(t, f)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			target := fmt.Sprintf("t%02d", g)
			for range rounds {
				res, err := c.Read(context.Background(), "svc", []string{target})
				if err != nil {
					errs <- err
					return
				}
				if len(res.Items) != 1 || res.Items[0].Target != target || res.Values[target] != fmt.Sprintf("value-of-%02d", g) {
					errs <- fmt.Errorf("caller %d got the answer for %v", g, keys(res.Values))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.requests(t)); n != callers*rounds {
		t.Errorf("daemon saw %d requests, want %d", n, callers*rounds)
	}
}

func BenchmarkRead(b *testing.B) {
	dir, err := os.MkdirTemp("", "kca")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, stop, err := startFake(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	f.put("svc", "k", strings.Repeat("x", 64), nil)
	c, err := client.Dial(context.Background(), client.WithSocket(f.path))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Read(ctx, "svc", []string{"k"}); err != nil {
			b.Fatal(err)
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func targets(items []client.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Target
	}
	return out
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a JSON string", raw)
	}
	return s
}

// A batch over the request line limit is refused before anything is sent, so
// the connection stays usable.
func TestOversizedWriteKeepsConnection(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := dial(t, f)
	values := map[string]string{}
	for i := range 20 {
		values[fmt.Sprintf("t%02d", i)] = strings.Repeat("x", protocol.MaxValueLen)
	}
	err := c.Write(context.Background(), "svc", values, nil)
	if !errors.Is(err, protocol.ErrLineTooLong) || errors.Is(err, client.ErrClosed) {
		t.Fatalf("oversized write: %v, want ErrLineTooLong without closing", err)
	}
	if !strings.Contains(err.Error(), "split the batch") {
		t.Errorf("error %q does not say what to do", err)
	}
	if _, err := c.Check(context.Background()); err != nil {
		t.Errorf("call after an oversized write: %v", err)
	}
	if n := len(f.requests(t)); n != 1 {
		t.Errorf("daemon saw %d requests, want only the check", n)
	}
}

// A value over 64 KiB is refused before anything is sent, with the per-value
// limit in the message, also when it is so long that the whole request line
// would be over 1 MiB (which used to say "split the batch").
func TestWriteRefusesOversizedValue(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := dial(t, f)
	ctx := context.Background()
	for _, size := range []int{protocol.MaxValueLen + 1, 2 << 20} {
		value := strings.Repeat("s", size)
		err := c.Write(ctx, "aws", map[string]string{"ok": "v", "big": value}, nil)
		if !errors.Is(err, client.ErrValueTooLarge) {
			t.Fatalf("Write of a %d-byte value = %v, want ErrValueTooLarge", size, err)
		}
		msg := err.Error()
		for _, want := range []string{`target "big"`, fmt.Sprint(size) + " bytes", "65536 bytes (64 KiB) per value", "nothing was sent"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, "split the batch") || strings.Contains(msg, "sss") {
			t.Errorf("error %q blames the batch or shows the value", msg)
		}
	}
	if n := len(f.requests(t)); n != 0 {
		t.Errorf("%d requests reached the daemon, want none", n)
	}
	// Exactly the limit is fine, and the connection is still usable.
	if err := c.Write(ctx, "aws", map[string]string{"k": strings.Repeat("s", protocol.MaxValueLen)}, nil); err != nil {
		t.Errorf("Write of a 64 KiB value: %v", err)
	}
}
