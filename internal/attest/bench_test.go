package attest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

const coldSize = 100 << 20

func BenchmarkAttestCold100MB(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big")
	w, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{1})
	chunk := make([]byte, 1<<20)
	for range coldSize / len(chunk) {
		rng.Read(chunk)
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	f := open(b, p)
	b.SetBytes(coldSize)
	for b.Loop() {
		// A fresh Attestor per iteration: every hash reads the whole file.
		if _, err := New(Options{}).Hash(context.Background(), f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttestWarm(b *testing.B) {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	f := open(b, self)
	a := New(Options{})
	if _, err := a.Hash(context.Background(), f); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.Hash(context.Background(), f); err != nil {
			b.Fatal(err)
		}
	}
	if _, misses := a.Stats(); misses != 1 {
		b.Fatalf("%d misses, want every iteration to be a cache hit", misses)
	}
}
