package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyAs copies src to dir/name, as a user renaming an interpreter would.
func copyAs(t *testing.T, src, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func mustHash(t *testing.T, path string) string {
	t.Helper()
	h, err := fileHash(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// findInterpreter returns where a real interpreter is (the executable, not a
// #! wrapper such as a pyenv shim): on PATH, else in /usr/bin or /bin.
func findInterpreter(name string) (path, real string, ok bool) {
	cands := []string{filepath.Join("/usr/bin", name), filepath.Join("/bin", name)}
	if p, err := exec.LookPath(name); err == nil {
		cands = append([]string{p}, cands...)
	}
	for _, p := range cands {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		if line, err := shebang(r); err == nil && line == "" {
			return p, r, true
		}
	}
	return "", "", false
}

// Real interpreters, renamed: recognised by their ELF markers alone (no
// directories to compare hashes with), and by their hash alone.
func TestRenamedRealInterpretersAreRecognised(t *testing.T) {
	t.Parallel()
	found := 0
	for _, name := range []string{"bash", "dash", "perl", "python3", "node", "ruby", "php", "tclsh", "lua", "zsh", "fish", "java", "deno", "bun"} {
		path, real, ok := findInterpreter(name)
		if !ok {
			continue
		}
		found++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			helper := copyAs(t, real, t.TempDir(), "backup-helper")
			byContent := interpreterCheck{names: []string{helper}, file: helper}
			why, err := byContent.identify()
			if err != nil {
				t.Fatal(err)
			}
			elfOnly := why
			byContent.hash = mustHash(t, helper)
			byContent.dirs = []string{filepath.Dir(path), filepath.Dir(real)}
			why, err = byContent.identify()
			if err != nil {
				t.Fatal(err)
			}
			if why == "" {
				t.Fatalf("a renamed copy of %s is not recognised as an interpreter", real)
			}
			t.Logf("%s: markers: %q; with its hash: %q", real, elfOnly, why)
			err = checkInterpreter(&strings.Builder{}, byContent, false)
			if err == nil || !strings.Contains(err.Error(), "backup-helper ("+why+") is an interpreter") ||
				!strings.Contains(err.Error(), "--allow-interpreter") {
				t.Errorf("checkInterpreter = %v", err)
			}
		})
	}
	if found == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no interpreter found on PATH; CI has bash at least")
		}
		t.Skip("SKIP: no interpreter found on PATH to rename")
	}
}

// The markers each catch a real interpreter of their own (where installed),
// so that a list entry that is wrong shows up here.
func TestInterpreterELFMarkers(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{"bash": "bash", "perl": "Perl", "python3": "Python", "node": "Node.js", "tclsh": "Tcl", "java": "Java"} {
		_, real, ok := findInterpreter(name)
		if !ok {
			continue
		}
		if why := elfInterpreter(real); !strings.Contains(why, want) {
			t.Errorf("%s: markers say %q, want %s", real, why, want)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if why := elfInterpreter(self); why != "" {
		t.Errorf("the test binary (Go) is taken for an interpreter: %s", why)
	}
}

// A file with the same content as an interpreter found by name in one of
// the directories is one, whatever its own name; other files are not.
func TestHashTwinOfKnownInterpreter(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	fake := copyAs(t, os.Args[0], bin, "python3.12")
	work := t.TempDir()
	twin := copyAs(t, fake, work, "backup-helper")
	c := interpreterCheck{names: []string{twin}, file: twin, hash: mustHash(t, twin), dirs: []string{bin}}
	if why, err := c.identify(); err != nil || why != "the same file as "+fake {
		t.Errorf("identify = %q, %v; want the same file as %s", why, err, fake)
	}
	// Same size, different content: not a twin.
	data, _ := os.ReadFile(twin)
	data[len(data)-1] ^= 1
	other := filepath.Join(work, "other")
	if err := os.WriteFile(other, data, 0o755); err != nil {
		t.Fatal(err)
	}
	c = interpreterCheck{names: []string{other}, file: other, hash: mustHash(t, other), dirs: []string{bin}}
	if why, err := c.identify(); err != nil || why != "" {
		t.Errorf("a different file of the same size: identify = %q, %v", why, err)
	}
}

func TestScriptIsRefusedEvenWhenInterpretersAreAllowed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "tool.py")
	if err := os.WriteFile(script, []byte("#!/usr/bin/python3 -u\nprint(1)\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := checkInterpreter(&strings.Builder{}, interpreterCheck{names: []string{script}, file: script}, true)
	var se *scriptError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "(#!/usr/bin/python3 -u)") ||
		!strings.Contains(err.Error(), "the kernel reports its interpreter") {
		t.Errorf("checkInterpreter on a script = %v", err)
	}
}
