package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/protocol"
)

func TestUnregisteredIsDeniedQueuedAndClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start()
	resps, closed := e.call(client, `{"type":"REQUEST","id":"r1","action":"read","service":"aws","targets":["key"]}`,
		req("check", "", nil))
	if len(resps) != 1 || !closed {
		t.Fatalf("want one reply then a closed connection; got %d replies, closed=%v", len(resps), closed)
	}
	wantStatus(t, resps[0], protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
	if string(resps[0].ID) != `"r1"` {
		t.Errorf("id not echoed: %s", resps[0].ID)
	}
	if !strings.Contains(resps[0].Message, "approve") {
		t.Errorf("message should say how to approve: %q", resps[0].Message)
	}
	waitFor(t, "pending record", func() bool {
		b, err := os.ReadFile(e.pendingFile())
		return err == nil && strings.Contains(string(b), client)
	})
}

func TestRebuiltBinaryGetsHashMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := filepath.Join(t.TempDir(), "tool")
	copyFile(t, client, bin)
	e.mustKA("register", bin, "--read", "svc")
	e.start()
	wantStatus(t, e.one(bin, req("check", "", nil)), protocol.StatusSuccess, "")

	copyFile(t, client2, bin) // "rebuilt": same path, other contents
	resps, closed := e.call(bin, req("read", "svc", []string{"a"}), req("check", "", nil))
	if len(resps) != 1 || !closed {
		t.Fatalf("want one reply then close; got %d, closed=%v", len(resps), closed)
	}
	wantStatus(t, resps[0], protocol.StatusDenied, protocol.ReasonHashMismatch)
	if !strings.Contains(resps[0].Message, "upgrade") {
		t.Errorf("message should hint at upgrade: %q", resps[0].Message)
	}
}

func TestReadWriteDeleteSearchRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "aws", "--write", "aws", "--search")
	e.start()

	secret := "s3cr3t with spaces, \"quotes\" and ünïcödé\n"
	resps, closed := e.call(client,
		req("write", "aws", []string{"prod/key", "prod/id", "dev/key"}, "values", []string{secret, "AKIA1", "devval"},
			"attributes", map[string]string{"env": "prod"}),
		req("read", "aws", []string{"prod/key", "prod/id"}, "id", 7),
		req("read", "aws", []string{"prod/"}, "match", "prefix"),
		req("search", "aws", nil),
		req("search", "aws", []string{"dev/"}),
		req("search", "aws", []string{"dev/key", "nope"}, "match", "exact"),
		req("delete", "aws", []string{"prod/id"}),
		req("read", "aws", []string{"prod/id"}),
		req("delete", "aws", []string{"prod/"}, "match", "prefix"),
		req("search", "aws", nil),
	)
	if closed || len(resps) != 10 {
		t.Fatalf("got %d replies, closed=%v: %+v", len(resps), closed, resps)
	}
	for i, r := range resps {
		wantStatus(t, r, protocol.StatusSuccess, "")
		_ = i
	}
	if got := values(resps[1]); got["prod/key"] != secret || got["prod/id"] != "AKIA1" || len(got) != 2 {
		t.Errorf("exact read: %v", got)
	}
	if string(resps[1].ID) != "7" {
		t.Errorf("numeric id not echoed: %s", resps[1].ID)
	}
	if got := values(resps[2]); len(got) != 2 || got["prod/key"] != secret {
		t.Errorf("prefix read: %v", got)
	}
	if got := targets(resps[3]); !slices.Equal(got, []string{"dev/key", "prod/id", "prod/key"}) {
		t.Errorf("search without match lists by prefix, sorted: %v", got)
	}
	for _, res := range resps[3].Results {
		if res.Value != nil {
			t.Errorf("search returned a value for %s", res.Target)
		}
		if res.Attributes["env"] != "prod" {
			t.Errorf("search lost attributes of %s: %v", res.Target, res.Attributes)
		}
	}
	if got := targets(resps[4]); !slices.Equal(got, []string{"dev/key"}) {
		t.Errorf("search prefix dev/: %v", got)
	}
	if got := targets(resps[5]); !slices.Equal(got, []string{"dev/key"}) {
		t.Errorf("exact search returns those that exist: %v", got)
	}
	if len(resps[7].Results) != 0 || !slices.Equal(resps[7].Missing, []string{"prod/id"}) {
		t.Errorf("read after delete: results=%v missing=%v", resps[7].Results, resps[7].Missing)
	}
	if got := targets(resps[9]); !slices.Equal(got, []string{"dev/key"}) {
		t.Errorf("after prefix delete: %v", got)
	}
}

func TestAbsentTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc", "--write", "svc")
	e.start()
	resps, _ := e.call(client,
		req("write", "svc", []string{"a", "c"}, "values", []string{"A", "C"}),
		req("read", "svc", []string{"a", "b", "c"}),
		req("read", "svc", []string{"a", "b"}, "require_all", true),
		req("delete", "svc", []string{"a", "b"}, "require_all", true),
		req("read", "svc", []string{"a"}),
		req("delete", "svc", []string{"a", "b"}),
		req("read", "svc", []string{"a", "c"}),
	)
	if len(resps) != 7 {
		t.Fatalf("got %d replies", len(resps))
	}
	wantStatus(t, resps[1], protocol.StatusSuccess, "")
	if got := values(resps[1]); len(got) != 2 || got["a"] != "A" || got["c"] != "C" || !slices.Equal(resps[1].Missing, []string{"b"}) {
		t.Errorf("read with an absent target: values=%v missing=%v", got, resps[1].Missing)
	}
	wantStatus(t, resps[2], protocol.StatusError, protocol.ReasonNotFound)
	if resps[2].Results != nil || !slices.Equal(resps[2].Missing, []string{"b"}) {
		t.Errorf("require_all read must return nothing but missing: %+v", resps[2])
	}
	if !strings.HasPrefix(resps[2].Message, "1 of the requested targets does not exist") {
		t.Errorf("message for one absent target: %q", resps[2].Message)
	}
	wantStatus(t, resps[3], protocol.StatusError, protocol.ReasonNotFound)
	if got := values(resps[4]); got["a"] != "A" {
		t.Errorf("require_all delete with a missing target must delete nothing; a=%q", got["a"])
	}
	wantStatus(t, resps[5], protocol.StatusSuccess, "")
	if !slices.Equal(resps[5].Missing, []string{"b"}) {
		t.Errorf("delete missing: %v", resps[5].Missing)
	}
	if got := values(resps[6]); len(got) != 1 || got["c"] != "C" || !slices.Equal(resps[6].Missing, []string{"a"}) {
		t.Errorf("after delete: %v missing %v", got, resps[6].Missing)
	}
}

func TestPolicyDenialsLeaveStoreUnchanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "app", "--write", "app")
	e.mustKA("register", client2)
	e.start()
	wantStatus(t, e.one(client, req("write", "app", []string{"x"}, "values", []string{"1"})), protocol.StatusSuccess, "")
	before := readFile(t, e.storeFile())

	cases := []struct {
		bin    string
		line   string
		reason protocol.Reason
	}{
		{client2, req("read", "app", []string{"x"}), protocol.ReasonActionNotInPolicy},
		{client2, req("write", "app", []string{"x"}, "values", []string{"2"}), protocol.ReasonActionNotInPolicy},
		{client, req("read", "other", []string{"x"}), protocol.ReasonServiceNotAllowed},
		{client, req("write", "other", []string{"x"}, "values", []string{"2"}), protocol.ReasonServiceNotAllowed},
		{client, req("delete", "other", []string{"x"}), protocol.ReasonServiceNotAllowed},
		{client, req("search", "app", nil), protocol.ReasonActionNotInPolicy},
		{client, req("read", "app", []string{""}, "match", "prefix"), protocol.ReasonActionNotInPolicy},
		{client, req("delete", "app", []string{""}, "match", "prefix"), protocol.ReasonActionNotInPolicy},
	}
	for _, c := range cases {
		r := e.one(c.bin, c.line)
		if r.Status != protocol.StatusDenied || r.Reason != c.reason {
			t.Errorf("%s: got %s/%s, want denied/%s", c.line, r.Status, r.Reason, c.reason)
		}
		if r.Results != nil {
			t.Errorf("%s: denied reply carries results", c.line)
		}
	}
	// A registered binary with 0 privileges may still ask what it is.
	chk := e.one(client2, req("check", "", nil))
	wantStatus(t, chk, protocol.StatusSuccess, "")
	if len(chk.Results) != 1 || !strings.HasPrefix(chk.Results[0].Target, "sha256:") ||
		chk.Results[0].Attributes["can_search"] != "false" || chk.Results[0].Attributes["read_services"] != "" {
		t.Errorf("check: %+v", chk.Results)
	}
	if after := readFile(t, e.storeFile()); !bytes.Equal(before, after) {
		t.Error("a denied request changed the store file")
	}
}

func TestRestartKeepsDataAndStoreHasNoPlaintext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "db", "--write", "db")
	d := e.start()
	const value = "plaintext-canary-7f3a9c"
	wantStatus(t, e.one(client, req("write", "db", []string{"password"}, "values", []string{value},
		"attributes", map[string]string{"note": "attr-canary-51b2"})), protocol.StatusSuccess, "")
	d.stop()

	store := readFile(t, e.storeFile())
	for _, canary := range []string{value, "attr-canary-51b2"} {
		if bytes.Contains(store, []byte(canary)) {
			t.Errorf("store file contains %q in plaintext", canary)
		}
	}
	if fi, err := os.Stat(e.storeFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode: %v %v", fi.Mode(), err)
	}

	e.start()
	if got := values(e.one(client, req("read", "db", []string{"password"}))); got["password"] != value {
		t.Errorf("after restart: %v", got)
	}
}

func TestWrongPassphraseLeavesStoreUntouched(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--write", "db")
	d := e.start()
	wantStatus(t, e.one(client, req("write", "db", []string{"k"}, "values", []string{"v"})), protocol.StatusSuccess, "")
	d.stop()
	before := readFile(t, e.storeFile())

	wrong := *e
	wrong.vars = append(slices.Clone(e.vars), "KEYCHAIN_AUTH_PASSPHRASE=not the passphrase")
	bad := wrong.spawn()
	if code := bad.wait(); code != 1 {
		t.Errorf("start with a wrong passphrase: exit %d, want 1", code)
	}
	if msg := bad.stderr.String(); !strings.Contains(msg, "wrong passphrase") || strings.Contains(msg, "not the passphrase") {
		t.Errorf("stderr should say wrong passphrase without echoing it: %q", msg)
	}
	if after := readFile(t, e.storeFile()); !bytes.Equal(before, after) {
		t.Error("a failed start changed the store")
	}
}

func TestConfigEditAppliesToNextConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--write", "svc")
	e.start()
	wantStatus(t, e.one(client, req("read", "svc", []string{"k"})), protocol.StatusDenied, protocol.ReasonActionNotInPolicy)

	// Edit config.json by hand, as a user would.
	var cfg map[string]any
	if err := json.Unmarshal(readFile(t, e.configFile()), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["registered_binaries"].([]any)[0].(map[string]any)["allowed_read_services"] = []string{"svc"}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(e.configFile(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.one(client, req("read", "svc", []string{"k"})), protocol.StatusSuccess, "")

	// A broken config is refused, not treated as empty, and the daemon lives on.
	if err := os.WriteFile(e.configFile(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.one(client, req("read", "svc", []string{"k"})), protocol.StatusError, protocol.ReasonConfigInvalid)
	if err := os.WriteFile(e.configFile(), b, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(e.configFile(), 0o666)
	wantStatus(t, e.one(client, req("read", "svc", []string{"k"})), protocol.StatusError, protocol.ReasonConfigInvalid)
	os.Chmod(e.configFile(), 0o600)
	wantStatus(t, e.one(client, req("read", "svc", []string{"k"})), protocol.StatusSuccess, "")
}

func TestCopyAndSymlinkAreTheSameBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc")
	e.start()
	dir := t.TempDir()
	cp := filepath.Join(dir, "copy")
	copyFile(t, client, cp)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(client, link); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{cp, link} {
		wantStatus(t, e.one(bin, req("read", "svc", []string{"k"})), protocol.StatusSuccess, "")
	}
}

func TestMalformedRequestsKeepTheConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc")
	e.start()
	resps, closed := e.call(client, `{not json`, `{"type":"REQUEST","action":"write","service":"svc","targets":["a"]}`,
		`{"type":"REQUEST","id":"x","action":"read","service":"svc","targets":["a","a"]}`, req("check", "", nil))
	if closed || len(resps) != 4 {
		t.Fatalf("got %d replies, closed=%v", len(resps), closed)
	}
	for _, r := range resps[:3] {
		wantStatus(t, r, protocol.StatusError, protocol.ReasonMalformedRequest)
	}
	if string(resps[2].ID) != `"x"` {
		t.Errorf("malformed reply should echo a valid id: %s", resps[2].ID)
	}
	wantStatus(t, resps[3], protocol.StatusSuccess, "")
}

func TestOversizedLineIsRefusedAndClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc")
	e.start()
	big := `{"type":"REQUEST","action":"read","service":"svc","targets":["` + strings.Repeat("a", protocol.MaxLineSize) + `"]}`
	resps, closed := e.call(client, big, req("check", "", nil))
	if len(resps) != 1 || !closed {
		t.Fatalf("got %d replies, closed=%v", len(resps), closed)
	}
	wantStatus(t, resps[0], protocol.StatusError, protocol.ReasonRequestTooLarge)
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	const clients, perClient, keys = 50, 100, 10
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc", "--write", "svc", "--search")
	e.start()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := func(k int) string { return fmt.Sprintf("c%02d/k%02d", i, k) }
			val := func(k int) string { return fmt.Sprintf("value of client %d key %d", i, k) }
			var all []string
			var kv []string
			for k := range keys {
				all, kv = append(all, key(k)), append(kv, val(k))
			}
			// One batch write, then reads and searches that must all see it,
			// and only this client's keys, while 49 other clients do the same.
			lines := []string{req("write", "svc", all, "values", kv)}
			for j := 1; j < perClient; j++ {
				switch j % 3 {
				case 0:
					lines = append(lines, req("read", "svc", all))
				case 1:
					lines = append(lines, req("read", "svc", []string{key(j % keys)}))
				case 2:
					lines = append(lines, req("search", "svc", []string{fmt.Sprintf("c%02d/", i)}))
				}
			}
			resps, closed := e.call(client, lines...)
			if closed || len(resps) != perClient {
				errs <- fmt.Errorf("client %d: %d replies, closed=%v", i, len(resps), closed)
				return
			}
			for j, r := range resps {
				if r.Status != protocol.StatusSuccess {
					errs <- fmt.Errorf("client %d request %d: %s/%s %s", i, j, r.Status, r.Reason, r.Message)
					return
				}
				got := values(r)
				switch {
				case j == 0:
				case j%3 == 0:
					for k := range keys {
						if got[key(k)] != val(k) {
							errs <- fmt.Errorf("client %d batch read %s = %q", i, key(k), got[key(k)])
							return
						}
					}
				case j%3 == 1:
					if k := j % keys; len(got) != 1 || got[key(k)] != val(k) {
						errs <- fmt.Errorf("client %d read %s: %v", i, key(k), got)
						return
					}
				case j%3 == 2:
					if !slices.Equal(targets(r), all) {
						errs <- fmt.Errorf("client %d search listed %v", i, targets(r))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b := readFile(t, src)
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// Rename, as a build would: a running old image keeps its inode.
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestSecondDaemonSaysAlreadyRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	second := e.spawn()
	if code := second.wait(); code != 1 {
		t.Fatalf("second daemon on the same socket: exit %d, want 1\n%s", code, second.stderr)
	}
	if msg := second.stderr.String(); !strings.Contains(msg, "already running") {
		t.Errorf("stderr should say already running: %q", msg)
	}
	first := fmt.Sprintf("pid %d", d.cmd.Process.Pid)
	if msg := second.stderr.String(); !strings.Contains(msg, first) || !strings.Contains(msg, "its own state") {
		t.Errorf("stderr should name the running daemon (%s) and what a second one needs: %q", first, msg)
	}
	// --socket alone would share the first daemon's audit log: the refusal
	// names the daemon that holds it and the hint that works.
	other := e.spawn("--socket", filepath.Join(filepath.Dir(e.socket), "other.sock"))
	if code := other.wait(); code != 1 {
		t.Fatalf("second daemon on another socket, same HOME: exit %d, want 1\n%s", code, other.stderr)
	}
	if msg := other.stderr.String(); !strings.Contains(msg, first) || !strings.Contains(msg, "XDG_DATA_HOME") {
		t.Errorf("stderr should name the daemon holding the audit log (%s) and the hint: %q", first, msg)
	}
	// Following the hint works: another HOME, another daemon.
	newEnv(t).start()
	// The first one still answers.
	if _, _, code := e.ka("status"); code != 0 {
		t.Error("the running daemon stopped answering after a second start was refused")
	}
}

// TestSIGTERMDuringStartupIsClean stops the daemon as soon as its socket
// answers, before it may have finished setting up: it must still exit 0 and
// remove its socket (a signal arriving before the handler would kill it and
// leave a stale socket behind).
func TestSIGTERMDuringStartupIsClean(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		d := e.start()
		d.stop() // fails the test unless the exit code is 0
		if exists(e.socket) {
			t.Fatal("socket left behind after SIGTERM")
		}
	}
}
