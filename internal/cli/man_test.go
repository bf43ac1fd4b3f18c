package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every command gets a page made from its help.
func TestWriteManPages(t *testing.T) {
	dir := t.TempDir()
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	if err := WriteManPages(dir, date); err != nil {
		t.Fatal(err)
	}
	a, _, _, _ := testApp(t)
	root := a.rootCmd()
	for _, c := range root.Commands() {
		if c.Hidden {
			continue
		}
		page := filepath.Join(dir, "keychain-auth-"+c.Name()+".1")
		b, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("no man page for %s: %v", c.Name(), err)
			continue
		}
		first, _, _ := strings.Cut(c.Short, " (")
		if !strings.Contains(string(b), first[:min(len(first), 30)]) || !strings.Contains(string(b), `.TH "KEYCHAIN-AUTH" "1" "Nov 2026"`) {
			t.Errorf("%s does not carry the command's help and date:\n%.400s", page, b)
		}
	}
	// <path> in the help is text, not an HTML tag to drop.
	if b, _ := os.ReadFile(filepath.Join(dir, "keychain-auth-check.1")); !strings.Contains(string(b), "keychain-auth check <path> [service]") {
		t.Errorf("keychain-auth-check.1 lost <path> from its synopsis:\n%.600s", b)
	}
	for _, p := range []string{"keychain-auth.1", "keychain-auth-completion-bash.1"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("missing %s", p)
		}
	}
}
