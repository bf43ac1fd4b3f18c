package memory_test

import (
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
	"github.com/The-17/keychain-auth/internal/backend/memory"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := memory.New()
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestArbitraryBytes(t *testing.T) {
	t.Parallel()
	b := memory.New()
	defer b.Close()
	v := []byte{0xff, 0x00, 0xfe, 0x80, 0xc3}
	if err := b.Set(t.Context(), "s", []backend.Item{{Target: "t", Value: v}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(t.Context(), "s", "t")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != string(v) {
		t.Error("invalid UTF-8 value did not round-trip")
	}
}
