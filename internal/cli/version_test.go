package cli

import (
	"context"
	"strings"
	"testing"
)

// What the release build stamps with -ldflags -X is what version prints.
func TestVersionPrintsReleaseStamps(t *testing.T) {
	saved := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = saved[0], saved[1], saved[2] })
	Version, Commit, Date = "v1.4.0", "0123456789abcdef0123456789abcdef01234567", "2026-11-30T10:00:00Z"
	a, out, _, _ := testApp(t)
	want := "keychain-auth v1.4.0 (commit 0123456789abcdef0123456789abcdef01234567, built 2026-11-30T10:00:00Z)\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out.Reset()
		if code := a.run(context.Background(), args); code != exitOK || out.String() != want {
			t.Errorf("%v: exit %d, printed %q, want %q", args, code, out, want)
		}
	}
	Version, Commit, Date = "v1.4.0", "none", "0001-01-01T00:00:00Z" // GoReleaser without git
	out.Reset()
	a.run(context.Background(), []string{"version"})
	if strings.Contains(out.String(), "none") || strings.Contains(out.String(), "0001-01-01") {
		t.Errorf("placeholder stamps printed as facts: %q", out)
	}
	Version, Commit, Date = "", "", ""
	out.Reset()
	a.run(context.Background(), []string{"version"})
	if !strings.HasPrefix(out.String(), "keychain-auth ") || !strings.Contains(out.String(), "(commit ") {
		t.Errorf("unstamped build prints %q", out)
	}
}
