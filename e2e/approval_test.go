package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/protocol"
)

func hashFile(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256(readFile(t, path))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type pendingJSON struct {
	Hash        string   `json:"hash"`
	Path        string   `json:"path"`
	CommandLine []string `json:"command_line"`
	Count       int      `json:"count"`
	PID         int      `json:"pid"`
}

func (e *env) pending() []pendingJSON {
	e.t.Helper()
	var recs []pendingJSON
	if err := json.Unmarshal([]byte(e.mustKA("list-pending", "--json")), &recs); err != nil {
		e.t.Fatalf("list-pending --json: %v", err)
	}
	return recs
}

func hasPending(recs []pendingJSON, hash string) bool {
	for _, r := range recs {
		if r.Hash == hash {
			return true
		}
	}
	return false
}

// The seed's story end to end: an unknown binary is turned away and queued,
// the user approves it by a short prefix, grants exactly what it needs,
// takes it back, and moves the policy over after a rebuild.
func TestApprovalWorkflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tool")
	copyFile(t, client, bin)
	hash := hashFile(t, bin)
	e.start()

	// status probes the socket without asking anything, so keychain-auth
	// itself (unregistered) is not queued for approval.
	var st struct {
		Running bool   `json:"daemon_running"`
		Socket  string `json:"socket_path"`
	}
	if err := json.Unmarshal([]byte(e.mustKA("status", "--json")), &st); err != nil || !st.Running || st.Socket != e.socket {
		t.Fatalf("status --json: %+v, %v", st, err)
	}

	wantStatus(t, e.one(bin, req("read", "svc", []string{"k"})), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)

	var rec pendingJSON
	waitFor(t, "the refused binary in list-pending", func() bool {
		for _, r := range e.pending() {
			if r.Hash == hash {
				rec = r
				return true
			}
		}
		return false
	})
	if hasPending(e.pending(), hashFile(t, kaBin)) {
		t.Errorf("status queued keychain-auth itself for approval")
	}
	if rec.Path != bin || rec.Count != 1 || rec.PID == 0 || len(rec.CommandLine) == 0 || rec.CommandLine[0] != bin {
		t.Errorf("pending record does not describe the caller: %+v", rec)
	}

	hexHash := strings.TrimPrefix(hash, "sha256:")
	out := e.mustKA("approve", hexHash[:8])
	for _, want := range []string{"approved " + bin, hash, "read: -  write: -  search: no"} {
		if !strings.Contains(out, want) {
			t.Errorf("approve output lacks %q:\n%s", want, out)
		}
	}
	if hasPending(e.pending(), hash) {
		t.Errorf("approved binary is still pending")
	}

	// Approved with 0 privileges: check works, nothing else.
	r := e.one(bin, req("check", "", nil))
	wantStatus(t, r, protocol.StatusSuccess, "")
	if len(r.Results) != 1 || r.Results[0].Target != hash {
		t.Errorf("check should name the binary's hash: %+v", r.Results)
	}
	wantStatus(t, e.one(bin, req("read", "svc", []string{"k"})), protocol.StatusDenied, protocol.ReasonActionNotInPolicy)

	out = e.mustKA("grant", bin, "--read", "svc", "--write", "svc")
	if !strings.Contains(out, "before: read: -  write: -  search: no") || !strings.Contains(out, "after:  read: svc  write: svc  search: no") {
		t.Errorf("grant should show before and after:\n%s", out)
	}
	resps, closed := e.call(bin, req("write", "svc", []string{"k"}, "values", []string{"v1"}), req("read", "svc", []string{"k"}))
	if closed || len(resps) != 2 {
		t.Fatalf("got %d replies, closed=%v", len(resps), closed)
	}
	wantStatus(t, resps[0], protocol.StatusSuccess, "")
	if got := values(resps[1]); got["k"] != "v1" {
		t.Fatalf("read after grant: got %v", got)
	}

	e.mustKA("revoke", hexHash[:12], "--read", "svc")
	wantStatus(t, e.one(bin, req("read", "svc", []string{"k"})), protocol.StatusDenied, protocol.ReasonActionNotInPolicy)
	e.mustKA("grant", hash, "--read", "svc")
	if got := values(e.one(bin, req("read", "svc", []string{"k"}))); got["k"] != "v1" {
		t.Fatalf("read after re-grant: got %v", got)
	}

	// Rebuilt: the path is registered, the new hash is not.
	copyFile(t, client2, bin)
	newHash := hashFile(t, bin)
	wantStatus(t, e.one(bin, req("read", "svc", []string{"k"})), protocol.StatusDenied, protocol.ReasonHashMismatch)
	if !strings.Contains(e.mustKA("list"), "changed on disk") {
		t.Errorf("list should mark the rebuilt binary")
	}
	// The refusal queued the new hash; upgrade takes it off the queue.
	waitFor(t, "the rebuilt binary in list-pending", func() bool { return hasPending(e.pending(), newHash) })

	out = e.mustKA("upgrade", bin)
	if !strings.Contains(out, "from:   "+hash) || !strings.Contains(out, "hash:   "+newHash) || !strings.Contains(out, "read: svc  write: svc") {
		t.Errorf("upgrade should show the move and the privileges:\n%s", out)
	}
	if got := values(e.one(bin, req("read", "svc", []string{"k"}))); got["k"] != "v1" {
		t.Fatalf("read after upgrade: got %v", got)
	}
	if hasPending(e.pending(), newHash) {
		t.Errorf("upgraded binary is still pending")
	}
	if _, errOut, code := e.ka("check", bin, "svc"); code != 1 || !strings.Contains(errOut, "may not search") {
		t.Errorf("check without search privilege: exit %d, stderr %q", code, errOut)
	}
}

// Twenty `register` processes started at once, with the daemon reading the
// same file, all land: every update happens under the lock.
func TestConcurrentRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	const n = 20
	files := make([]string, n)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("bin%02d", i))
		if i == 0 {
			// A real client, to see that the daemon follows the final file.
			copyFile(t, client, files[i])
			continue
		}
		if err := os.WriteFile(files[i], []byte(fmt.Sprintf("binary number %d\n", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	errs := make([]string, n)
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(kaBin, "register", f, "--read", fmt.Sprintf("svc%02d", i))
			cmd.Env = e.vars
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Sprintf("register %s: %v\n%s", f, err, out.String())
			}
		}()
	}
	wg.Wait()
	for _, msg := range errs {
		if msg != "" {
			t.Error(msg)
		}
	}

	var cfg struct {
		Binaries []struct {
			Path string   `json:"path"`
			Read []string `json:"allowed_read_services"`
		} `json:"registered_binaries"`
	}
	if err := json.Unmarshal(readFile(t, e.configFile()), &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range cfg.Binaries {
		got[b.Path] = strings.Join(b.Read, ",")
	}
	for i, f := range files {
		if want := fmt.Sprintf("svc%02d", i); got[f] != want {
			t.Errorf("%s: read services %q, want %q", f, got[f], want)
		}
	}
	if len(cfg.Binaries) != n {
		t.Errorf("config.json has %d entries, want %d", len(cfg.Binaries), n)
	}
	r := e.one(files[0], req("check", "", nil))
	wantStatus(t, r, protocol.StatusSuccess, "")
	if len(r.Results) != 1 || r.Results[0].Attributes["read_services"] != "svc00" {
		t.Errorf("daemon does not see the registration: %+v", r.Results)
	}
}
