package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/config"
)

// complete runs cobra's hidden __complete command, as the shell scripts
// do, and returns the candidates (without descriptions) and the directive.
func complete(t *testing.T, a *app, out interface {
	String() string
	Reset()
}, args ...string) (cands []string, descs map[string]string, directive string) {
	t.Helper()
	out.Reset()
	if code := a.run(context.Background(), append([]string{"__complete"}, args...)); code != exitOK {
		t.Fatalf("__complete %q: exit %d", args, code)
	}
	descs = map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		v, d, _ := strings.Cut(l, "\t")
		cands = append(cands, v)
		descs[v] = d
	}
	return cands, descs, directive
}

func TestCompletion(t *testing.T) {
	a, out, _, dir := testApp(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, _ = filepath.EvalSymlinks(self)
	if code := a.run(context.Background(), []string{"register", self, "--read", "aws", "--write", "db"}); code != exitOK {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	hash, err := fileHash(self)
	if err != nil {
		t.Fatal(err)
	}
	pendingHash := "sha256:" + strings.Repeat("ab", 32)
	rec := config.PendingRecord{Hash: pendingHash, Path: "/tmp/new\x1b[2Jtool", CommandLine: []string{"x"}}
	if err := config.RecordPending(context.Background(), filepath.Join(dir, "pending.json"), rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	const noFiles = ":4" // ShellCompDirectiveNoFileComp

	// Hashes are offered as bare hex: bash splits words at ':'.
	bare, pendingBare := strings.TrimPrefix(hash, "sha256:"), strings.TrimPrefix(pendingHash, "sha256:")
	c, d, dir4 := complete(t, a, out, "approve", "")
	if len(c) != 1 || c[0] != pendingBare || dir4 != noFiles {
		t.Errorf("approve completes %q %s, want the pending hash", c, dir4)
	}
	if strings.ContainsRune(d[pendingBare], 0x1b) || !strings.Contains(d[pendingBare], "/tmp/new") {
		t.Errorf("approve's description is not the neutralised path: %q", d[pendingBare])
	}
	if c, _, _ := complete(t, a, out, "approve", "sha256:"); len(c) != 1 || c[0] != pendingHash {
		t.Errorf("approve sha256: completes %q, want the full hash", c)
	}
	for _, cmd := range []string{"grant", "revoke", "unregister"} {
		c, d, _ := complete(t, a, out, cmd, "")
		if len(c) != 2 || c[0] != bare || c[1] != self || d[bare] != self {
			t.Errorf("%s completes %q, want the registered hash and path", cmd, c)
		}
		if c, _, _ := complete(t, a, out, cmd, "/"); len(c) != 1 || c[0] != self {
			t.Errorf("%s / completes %q, want only the path", cmd, c)
		}
		if c, _, _ := complete(t, a, out, cmd, hash, ""); len(c) != 0 {
			t.Errorf("%s completes a second argument: %q", cmd, c)
		}
	}
	if c, _, _ := complete(t, a, out, "upgrade", ""); len(c) != 1 || c[0] != self {
		t.Errorf("upgrade completes %q, want the registered path", c)
	}
	if c, _, _ := complete(t, a, out, "start", "--backend", ""); strings.Join(c, " ") != strings.Join(backendNames, " ") {
		t.Errorf("--backend completes %q", c)
	}
	if c, _, _ := complete(t, a, out, "grant", hash, "--read", ""); strings.Join(c, " ") != "aws db" {
		t.Errorf("--read completes %q, want the services in config.json", c)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out.Reset()
		if code := a.run(context.Background(), []string{"completion", sh}); code != exitOK || !strings.Contains(out.String(), "keychain-auth") {
			t.Errorf("completion %s: exit %d", sh, code)
		}
	}
}

// Broken or missing files complete nothing rather than failing.
func TestCompletionWithoutFiles(t *testing.T) {
	a, out, _, dir := testApp(t)
	if c, _, _ := complete(t, a, out, "grant", ""); len(c) != 0 {
		t.Errorf("no config: %q", c)
	}
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{broken"), 0o600)
	if c, _, _ := complete(t, a, out, "unregister", ""); len(c) != 0 {
		t.Errorf("broken config: %q", c)
	}
}
