package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/protocol"
)

// The original client's self-repair: on hash_mismatch after an update it runs
// `keychain-auth authorize <its path> <service>` and expects the new hash to
// be served at once, by the running daemon, with the change in the audit log.
func TestAuthorizeAfterUpdateRepairsTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := filepath.Join(e.home, "tool")
	copyFile(t, client, bin)
	oldHash := hashFile(t, bin)
	e.mustKA("authorize", bin, "aws")
	e.start()
	wantStatus(t, e.one(bin, req("write", "aws", []string{"k"}, "values", []string{"v1"})), protocol.StatusSuccess, "")

	copyFile(t, client2, bin)
	newHash := hashFile(t, bin)
	wantStatus(t, e.one(bin, req("read", "aws", []string{"k"})), protocol.StatusDenied, protocol.ReasonHashMismatch)

	out := e.mustKA("authorize", bin, "aws")
	if !strings.Contains(out, "moved from "+oldHash) || !strings.Contains(out, "hash:   "+newHash) {
		t.Errorf("authorize should say it moved the entry to the new hash:\n%s", out)
	}
	if got := values(e.one(bin, req("read", "aws", []string{"k"}))); got["k"] != "v1" {
		t.Fatalf("read after authorize, without a daemon restart: got %v", got)
	}
	waitFor(t, "a policy_change naming the old and the new hash", func() bool {
		for _, r := range e.records() {
			if r.Event == audit.EventPolicyChange && strings.Contains(string(r.Details), oldHash) &&
				strings.Contains(string(r.Details), newHash) {
				return true
			}
		}
		return false
	})
}
