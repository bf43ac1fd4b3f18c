package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
	"github.com/The-17/keychain-auth/internal/backend/secretservice/sstest"
)

// BenchmarkSecretServiceBatch100 reads 100 secrets from a real gnome-keyring
// in one request through the daemon; compare with secretservice's
// BenchmarkGet100Sequential and BenchmarkSecretToolLookup100.
func BenchmarkSecretServiceBatch100(b *testing.B) {
	k := sstest.Start(b)
	be, err := secretservice.Open(context.Background(), secretservice.Options{Conn: k.Conn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	targets := make([]string, 100)
	items := make([]backend.Item, 100)
	for i := range items {
		targets[i] = fmt.Sprintf("t%03d", i)
		items[i] = backend.Item{Target: targets[i], Value: []byte("value-" + targets[i])}
	}
	if err := be.Set(context.Background(), "svc", items); err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, be, &grant{read: []string{"svc"}})
	c := ts.dial(b)
	line := readReq("svc", targets...)
	c.roundTrip(line)
	b.ResetTimer()
	for b.Loop() {
		if r := c.roundTrip(line); len(r.Results) != 100 {
			b.Fatalf("got %d results: %s", len(r.Results), r.Message)
		}
	}
}
