package secretservice_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
	"github.com/The-17/keychain-auth/internal/backend/secretservice/sstest"
)

// seed100 opens a fresh keyring holding 100 secrets in service "bench".
func seed100(b *testing.B) (*secretservice.Backend, *sstest.Keyring) {
	b.Helper()
	be, k := open(b, secretservice.Options{})
	items := make([]backend.Item, 100)
	for i := range items {
		items[i] = backend.Item{Target: fmt.Sprintf("t%03d", i), Value: fmt.Appendf(nil, "value-%03d-%s", i, "0123456789abcdef"),
			Attributes: map[string]string{"n": fmt.Sprint(i)}}
	}
	if err := be.Set(context.Background(), "bench", items); err != nil {
		b.Fatal(err)
	}
	return be, k
}

// BenchmarkListBatch100 reads 100 secrets with one List: one search, one
// pipelined round of attribute reads, one GetSecrets.
func BenchmarkListBatch100(b *testing.B) {
	be, _ := seed100(b)
	ctx := context.Background()
	for b.Loop() {
		items, err := be.List(ctx, "bench", "", nil)
		if err != nil || len(items) != 100 {
			b.Fatalf("List = %d items, %v", len(items), err)
		}
	}
}

// BenchmarkGet100Sequential reads the same 100 secrets one Get at a time.
func BenchmarkGet100Sequential(b *testing.B) {
	be, _ := seed100(b)
	ctx := context.Background()
	for b.Loop() {
		for i := range 100 {
			if _, err := be.Get(ctx, "bench", fmt.Sprintf("t%03d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSecretToolLookup100 is the baseline a shell script would get:
// 100 `secret-tool lookup` processes on the same keyring.
func BenchmarkSecretToolLookup100(b *testing.B) {
	_, k := seed100(b)
	ctx := context.Background()
	for b.Loop() {
		for i := range 100 {
			cmd := k.Command(ctx, "secret-tool", "lookup", secretservice.AttrService, "bench", secretservice.AttrTarget, fmt.Sprintf("t%03d", i))
			if out, err := cmd.Output(); err != nil || len(out) == 0 {
				b.Fatalf("secret-tool lookup: %v", err)
			}
		}
	}
}
