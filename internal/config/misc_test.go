package config

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPendingLimiter(t *testing.T) {
	t.Parallel()
	var l PendingLimiter
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if !allow(&l, hashAgent, t0) {
		t.Fatal("first attempt refused")
	}
	if allow(&l, hashAgent, t0.Add(500*time.Millisecond)) || allow(&l, hashAgent, t0.Add(999*time.Millisecond)) {
		t.Fatal("second write within a second allowed")
	}
	if !allow(&l, hashDeploy, t0.Add(time.Millisecond)) {
		t.Fatal("another hash throttled")
	}
	n, ok := l.Admit(hashAgent, t0.Add(time.Second))
	if !ok || n != 3 {
		t.Fatalf("after a second: ok %v, attempts %d, want 3", ok, n)
	}
	// A clock stepped backwards does not silence a hash.
	if !allow(&l, hashAgent, t0.Add(-time.Hour)) {
		t.Fatal("backwards clock silenced the hash")
	}
}

func TestPendingLimiterBounded(t *testing.T) {
	t.Parallel()
	var l PendingLimiter
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for i := range limiterMaxHashes {
		if !allow(&l, testHash(i), t0) {
			t.Fatalf("hash %d refused below the bound", i)
		}
	}
	if allow(&l, testHash(limiterMaxHashes), t0) {
		t.Fatal("flood of distinct hashes grew the limiter past its bound")
	}
	// Once the interval has passed, old slots are swept and new hashes go in.
	if !allow(&l, testHash(limiterMaxHashes), t0.Add(time.Second)) {
		t.Fatal("new hash refused after the interval")
	}
	if len(l.slots) > limiterMaxHashes {
		t.Fatalf("%d slots", len(l.slots))
	}
}

func TestPendingLimiterConcurrent(t *testing.T) {
	t.Parallel()
	var (
		l       PendingLimiter
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	now := time.Now()
	for range 16 {
		wg.Go(func() {
			if allow(&l, hashAgent, now) {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d concurrent attempts allowed, want 1", allowed)
	}
}

func TestResolveHash(t *testing.T) {
	t.Parallel()
	other := "sha256:0123456789abcdef" + hashAgent[23:]
	cands := []string{hashAgent, hashDeploy, other, hashDeploy}
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{hashAgent, hashAgent, nil},
		{hashAgent[7:], hashAgent, nil},
		{"SHA256:" + "9F2B6C1D", hashAgent, nil},
		{"9f2b6c1d", hashAgent, nil},
		{" 9f2b6c1d ", hashAgent, nil},
		{"0123456789abcdef0", hashDeploy, nil},
		{"01234567", "", ErrAmbiguousHash},
		{"9f2b6c1", "", ErrBadHash},
		{"9f2b6c1z", "", ErrBadHash},
		{"", "", ErrBadHash},
		{"deadbeef", "", ErrUnknownHash},
		{hashAgent + "0", "", ErrBadHash},
	}
	for _, tt := range tests {
		got, err := ResolveHash(tt.in, cands)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ResolveHash(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	_, err := ResolveHash("01234567", cands)
	var le *HashLookupError
	if !errors.As(err, &le) || !slices.Equal(le.Candidates, []string{hashDeploy, other}) {
		t.Fatalf("ambiguous candidates = %+v", le)
	}
}

func TestEdits(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(readFixture(t, fixtureConfig), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	e := &cfg.Binaries[1]
	if !e.Grant([]string{"gcp", "db"}, []string{"db"}, true) {
		t.Fatal("grant reported no change")
	}
	if !slices.Equal(e.AllowedReadServices, []string{"aws", "gcp", "db"}) || !slices.Equal(e.AllowedWriteServices, []string{"db"}) || !e.CanSearch {
		t.Fatalf("after grant: %+v", e)
	}
	if e.Grant([]string{"aws"}, nil, true) {
		t.Fatal("repeated grant reported a change")
	}
	if !e.Revoke([]string{"aws", "nope"}, nil, false) || !slices.Equal(e.AllowedReadServices, []string{"gcp", "db"}) || !e.CanSearch {
		t.Fatalf("after revoke: %+v", e)
	}
	if e.Revoke([]string{"aws"}, nil, false) {
		t.Fatal("revoking an absent pattern reported a change")
	}
	if !e.RevokeAll() || e.RevokeAll() || len(e.AllowedReadServices)+len(e.AllowedWriteServices) != 0 || e.CanSearch {
		t.Fatalf("after revoke all: %+v", e)
	}

	if got := cfg.FindByPath("/usr/local/bin/agentsecrets"); !slices.Equal(got, []int{0}) {
		t.Fatalf("FindByPath = %v", got)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if n := cfg.Upgrade("/usr/local/bin/agentsecrets", hashHelper, now); n != 1 {
		t.Fatalf("Upgrade moved %d", n)
	}
	u := cfg.Binaries[0]
	if u.Hash != hashHelper || u.UpgradedAt == nil || !u.UpgradedAt.Equal(now) || !u.CanSearch {
		t.Fatalf("upgraded entry = %+v", u)
	}
	if n := cfg.Upgrade("/usr/local/bin/agentsecrets", hashHelper, now); n != 0 {
		t.Fatal("upgrade to the same hash moved entries")
	}
	if n := cfg.Upgrade("/nowhere", hashHelper, now); n != 0 {
		t.Fatal("upgrade of an unregistered path moved entries")
	}
	if got := cfg.Hashes(); !slices.Equal(got, []string{hashDeploy, hashHelper}) {
		t.Fatalf("Hashes = %v", got)
	}
	removed := cfg.Remove(func(e Entry) bool { return e.Hash == hashDeploy })
	if len(removed) != 1 || removed[0].Path != "/home/dev/go/bin/deploy-tool" || len(cfg.Binaries) != 1 {
		t.Fatalf("Remove: %+v, left %d", removed, len(cfg.Binaries))
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// allow is Admit's yes or no.
func allow(l *PendingLimiter, hash string, now time.Time) bool {
	_, ok := l.Admit(hash, now)
	return ok
}

func TestPendingLimiterFlush(t *testing.T) {
	t.Parallel()
	var l PendingLimiter
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if !allow(&l, hashAgent, t0) {
		t.Fatal("first attempt refused")
	}
	if _, ok := l.ClaimFlush(hashAgent); ok {
		t.Fatal("flush claimed with nothing suppressed")
	}
	allow(&l, hashAgent, t0.Add(100*time.Millisecond))
	at, ok := l.ClaimFlush(hashAgent)
	if !ok || !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("ClaimFlush = %v, %v; want the end of the interval", at, ok)
	}
	allow(&l, hashAgent, t0.Add(200*time.Millisecond))
	if _, ok := l.ClaimFlush(hashAgent); ok {
		t.Fatal("second claim in one interval")
	}
	n, last := l.Flush(hashAgent, at)
	if n != 2 || !last.Equal(t0.Add(200*time.Millisecond)) {
		t.Fatalf("Flush = %d, %v; want 2 attempts, last at +200ms", n, last)
	}
	// Flushed attempts are not counted again by the next admitted write.
	if n, ok := l.Admit(hashAgent, at.Add(time.Second)); !ok || n != 1 {
		t.Fatalf("after flush: Admit = %d, %v; want 1, true", n, ok)
	}
	// An admitted write that already carried them leaves nothing to flush.
	allow(&l, hashAgent, at.Add(1100*time.Millisecond))
	l.ClaimFlush(hashAgent)
	if n, ok := l.Admit(hashAgent, at.Add(2*time.Second)); !ok || n != 2 {
		t.Fatalf("Admit = %d, %v; want 2, true", n, ok)
	}
	if n, _ := l.Flush(hashAgent, at.Add(2*time.Second)); n != 0 {
		t.Fatalf("Flush after an admitted write = %d, want 0", n)
	}
}
