package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func loads(c *Cache) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads
}

func mustGet(t *testing.T, c *Cache) (cfg, prev *Config, changed bool) {
	t.Helper()
	cfg, prev, changed, err := c.GetChanged()
	if err != nil {
		t.Fatal(err)
	}
	return cfg, prev, changed
}

func TestCacheRereadsOnlyOnChange(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	c := NewCache(p, own())

	first, prev, changed := mustGet(t, c)
	if prev != nil || changed || len(first.Binaries) != 2 {
		t.Fatalf("first Get: %d entries, prev %v, changed %v", len(first.Binaries), prev, changed)
	}
	for range 5 {
		cfg, _, changed := mustGet(t, c)
		if cfg != first || changed {
			t.Fatal("unchanged file reported as changed")
		}
	}
	if n := loads(c); n != 1 {
		t.Fatalf("unchanged file read %d times", n)
	}

	// An atomic rewrite (new inode via rename), as every writer does.
	_, err := Update(context.Background(), p, own(), func(c *Config) error {
		c.Binaries[0].RevokeAll()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	second, prev, changed := mustGet(t, c)
	if !changed || prev != first || second.Binaries[0].CanSearch {
		t.Fatalf("rename not picked up: changed %v, can_search %v", changed, second.Binaries[0].CanSearch)
	}

	// An in-place write by an editor that keeps the inode and changes the size.
	edited := second.Clone()
	edited.Binaries = edited.Binaries[:1]
	data, _ := edited.Marshal()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.Close()
	third, prev, changed := mustGet(t, c)
	if !changed || prev != second || len(third.Binaries) != 1 {
		t.Fatalf("in-place edit not picked up: changed %v, %d entries", changed, len(third.Binaries))
	}
	if n := loads(c); n != 3 {
		t.Fatalf("reads = %d, want 3", n)
	}

	// A touch re-reads but is not a change, and keeps the same value.
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	cfg, _, changed := mustGet(t, c)
	if changed || cfg != third {
		t.Fatal("touch reported as a change")
	}
}

func TestCacheErrorsAreCachedUntilFixed(t *testing.T) {
	t.Parallel()
	orig := readFixture(t, fixtureConfig)
	p := writeFile(t, t.TempDir(), "config.json", orig)
	c := NewCache(p, own())
	mustGet(t, c)

	// Broken by hand.
	os.WriteFile(p, []byte("{\"registered_binaries\": [}"), 0o600)
	_, err := c.Get()
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 1 {
		t.Fatalf("broken file: %v", err)
	}
	n := loads(c)
	c.Get()
	if loads(c) != n {
		t.Fatal("broken file re-read without a change")
	}
	writeFile(t, filepath.Dir(p), "config.json", orig)
	if cfg, err := c.Get(); err != nil || len(cfg.Binaries) != 2 {
		t.Fatalf("fixed file: %v", err)
	}
}

func TestCacheMissingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	c := NewCache(p, own())
	cfg, _, _ := mustGet(t, c)
	if len(cfg.Binaries) != 0 {
		t.Fatal("missing file not empty")
	}
	mustGet(t, c)
	if loads(c) != 1 {
		t.Fatal("missing file re-read")
	}
	writeFile(t, dir, "config.json", readFixture(t, fixtureConfig))
	cfg, _, changed := mustGet(t, c)
	if !changed || len(cfg.Binaries) != 2 {
		t.Fatal("created file not picked up")
	}
	os.Remove(p)
	cfg, _, changed = mustGet(t, c)
	if !changed || len(cfg.Binaries) != 0 {
		t.Fatal("removed file not picked up")
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	c := NewCache(p, own())
	const writers = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		changes int
		done    = make(chan struct{})
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				cfg, _, changed, err := c.GetChanged()
				if err != nil {
					t.Error(err)
					return
				}
				if len(cfg.Binaries) < 2 {
					t.Error("a reader saw a partial file")
				}
				if changed {
					mu.Lock()
					changes++
					mu.Unlock()
				}
			}
		})
	}
	var ww sync.WaitGroup
	for i := range writers {
		ww.Go(func() {
			_, err := Update(context.Background(), p, own(), func(c *Config) error {
				c.Binaries = append(c.Binaries, Entry{Path: "/bin/w", Hash: testHash(i)})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	ww.Wait()
	close(done)
	wg.Wait()
	cfg, _, changed := mustGet(t, c)
	if len(cfg.Binaries) != writers+2 {
		t.Fatalf("final config has %d entries", len(cfg.Binaries))
	}
	if changed {
		changes++
	}
	if changes < 1 || changes > writers {
		t.Fatalf("%d changes reported for %d writes", changes, writers)
	}
}

func BenchmarkCacheGetHit(b *testing.B) {
	p := filepath.Join(b.TempDir(), "config.json")
	_, err := Update(context.Background(), p, own(), func(c *Config) error {
		for i := range 200 {
			c.Binaries = append(c.Binaries, Entry{Path: "/bin/x", Hash: testHash(i), AllowedReadServices: []string{"aws"}})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	c := NewCache(p, own())
	for b.Loop() {
		if _, err := c.Get(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse200(b *testing.B) {
	cfg := New()
	for i := range 200 {
		cfg.Binaries = append(cfg.Binaries, Entry{Path: "/bin/x", Hash: testHash(i), AllowedReadServices: []string{"aws"}})
	}
	data, _ := cfg.Marshal()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, "config.json"); err != nil {
			b.Fatal(err)
		}
	}
}
