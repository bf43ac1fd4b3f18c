package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's commands must work when typed: the first command block puts
// keychain-auth on PATH (every hint the daemon prints says
// `keychain-auth ...`), and its check example asks only for what the
// example's registration granted, so that it exits 0 as the README says.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no sh code block")
	}
	first := blocks[0][1]
	if !strings.Contains(first, "go install ./cmd/keychain-auth") || !strings.Contains(first, "\nkeychain-auth install-service") {
		t.Errorf("the README's first commands do not install keychain-auth on PATH and run it from there:\n%s", first)
	}
	for _, line := range strings.Split(readme, "\n") {
		if !strings.Contains(line, "check ./readsecret aws") {
			continue
		}
		// register ./readsecret --read aws grants read only; check without
		// a flag requires read, write and search.
		if !strings.Contains(line, "--read") {
			t.Errorf("README: %q exits 1 after `register --read aws`; add --read", line)
		}
	}
	// The first screen gets a user to a running service and a registered
	// tool, and points at doctor.
	for _, want := range []string{"\nkeychain-auth register ./readsecret", "\nkeychain-auth doctor", "\nkeychain-auth start"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q", strings.TrimSpace(want))
		}
	}
	if !strings.Contains(readme, "check ./readsecret aws") {
		t.Error("README no longer shows the check example this test guards")
	}
}
