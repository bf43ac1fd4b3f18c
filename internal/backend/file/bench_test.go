package file_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
)

// benchStore returns a store holding 100 items of 1 KiB in one service.
func benchStore(b *testing.B) *file.Store {
	b.Helper()
	s, err := file.OpenWithParams(b.Context(), opts(filepath.Join(b.TempDir(), "keyring.json")), cheap)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	items := make([]backend.Item, 100)
	for i := range items {
		items[i] = backend.Item{Target: fmt.Sprintf("t%03d", i), Value: bytes.Repeat([]byte{'v'}, 1024), Attributes: map[string]string{"env": "prod"}}
	}
	if err := s.Set(b.Context(), "svc", items); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	for b.Loop() {
		if _, err := s.Get(b.Context(), "svc", "t050"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSet is one single-item upsert into a 100-item store: seal, encode
// the whole document, fsync, rename, fsync the directory.
func BenchmarkSet(b *testing.B) {
	s := benchStore(b)
	item := []backend.Item{{Target: "t050", Value: bytes.Repeat([]byte{'w'}, 1024)}}
	for b.Loop() {
		if err := s.Set(b.Context(), "svc", item); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDefaultKDF is what unlocking costs at daemon start: Argon2id
// with DefaultKDFParams, then authenticating every item.
func BenchmarkOpenDefaultKDF(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keyring.json")
	s, err := file.Open(b.Context(), opts(path))
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	for b.Loop() {
		s, err := file.Open(b.Context(), opts(path))
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
