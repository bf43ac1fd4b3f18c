package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// list must not read every registered file on every call: a file whose key
// is unchanged is answered from the hash cache, which this test proves by
// forging the cached hash. Any change to the file (even a chmod, which moves
// ctime) makes list hash it again, and register never trusts the cache.
func TestListUsesTheHashCacheAndRegisterDoesNot(t *testing.T) {
	a, out, errb, _ := testApp(t)
	home := a.getenv("HOME")
	bin := filepath.Join(t.TempDir(), "tool")
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		out.Reset()
		errb.Reset()
		if code := a.run(context.Background(), args); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb)
		}
	}
	status := func() string {
		t.Helper()
		run("list", "--json")
		var bins []listedBinary
		if err := json.Unmarshal(out.Bytes(), &bins); err != nil || len(bins) != 1 {
			t.Fatalf("list --json: %v: %s", err, out)
		}
		return bins[0].FileStatus
	}
	run("register", bin, "--read", "svc")
	cache := filepath.Join(home, ".cache", "keychain-auth", "hashes.json")
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("register left no hash cache: %v", err)
	}
	var recs []cachedHash
	if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 1 {
		t.Fatalf("hash cache %s: %v", b, err)
	}
	if s := status(); s != fileOK {
		t.Fatalf("status %s, want ok", s)
	}
	// Nothing new was hashed, so nothing is written (check runs often).
	// (An inode number can be reused by the rewrite; a time set far back
	// cannot come back.)
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(cache, past, past); err != nil {
		t.Fatal(err)
	}
	run("check", bin)
	run("list")
	if after, err := os.Stat(cache); err != nil || !after.ModTime().Equal(past) {
		t.Error("the hash cache was rewritten though nothing new was hashed")
	}
	forge := func() {
		t.Helper()
		recs[0].Hash = "sha256:" + strings.Repeat("0", 64)
		b, _ := json.Marshal(recs)
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	forge()
	if s := status(); s != fileChanged {
		t.Fatalf("after forging the cached hash, list says %s: it read the file again instead of using the cache", s)
	}
	// register decides what is trusted: it hashes the file itself, so it
	// sees the registered hash, not the forged one, and just adds --read.
	forge()
	run("register", bin, "--read", "other")
	if err := os.Chmod(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	forge()
	if s := status(); s != fileOK {
		t.Fatalf("after a chmod (new ctime), list says %s: it trusted a cache entry of the old key", s)
	}
}
