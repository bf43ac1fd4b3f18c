package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegisterShowsProgressOnATerminal: hashing a large file takes seconds;
// on a terminal register shows how far it is, and into a pipe it writes
// nothing of the kind.
func TestRegisterShowsProgressOnATerminal(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script(1) (bsdutils) is missing")
		}
		t.Skip("SKIPPING: script(1) from bsdutils is needed to give register a terminal")
	}
	e := newEnv(t)
	big := filepath.Join(t.TempDir(), "big")
	src, err := os.ReadFile(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Sparse: large to hash, cheap on disk.
	if err := os.Truncate(big, 200<<20); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.ka("register", big)
	if code != 0 {
		t.Fatalf("register into a pipe: exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, "hashing") || strings.Contains(errOut, "\r") {
		t.Errorf("register into a pipe printed progress: %q", errOut)
	}
	cmd := exec.Command(script, "-qfec", kaBin+" register --read svc "+big, "/dev/null")
	cmd.Env = e.vars
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("register on a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hashing: ") || !strings.Contains(string(out), "% of 200 MiB") {
		t.Errorf("register on a terminal showed no progress: %q", out)
	}
}
