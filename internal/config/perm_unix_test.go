//go:build unix

package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// assertMode checks a file's mode. Only Unix modes mean anything; elsewhere
// Go synthesizes them.
func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s mode = %v, want %v", path, fi.Mode(), want)
	}
}

func TestLoadRefusesUnsafe(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o664, 0o646, 0o620, 0o602, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p, own())
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Load of a %v file = %v, want ErrUnsafe", mode, err)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Errorf("no chmod hint: %v", err)
			}
		})
	}
	for _, mode := range []os.FileMode{0o600, 0o644, 0o400} {
		p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
		os.Chmod(p, mode)
		if _, err := Load(p, own()); err != nil {
			t.Errorf("mode %v refused: %v", mode, err)
		}
	}
}

func TestLoadRefusesOtherOwner(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	_, err := Load(p, LoadOptions{OwnerUID: os.Getuid() + 1})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chown") {
		t.Fatalf("Load with another owner = %v, want ErrUnsafe with a chown hint", err)
	}
	if _, err := Load(p, LoadOptions{OwnerUID: -1}); err != nil {
		t.Fatalf("OwnerUID -1 still checked the owner: %v", err)
	}
	os.Chmod(p, 0o666)
	if _, err := Load(p, LoadOptions{OwnerUID: -1}); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("OwnerUID -1 skipped the mode check: %v", err)
	}
}

func TestUpdateFileMode(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "config.json")
	opts := LoadOptions{OwnerUID: os.Getuid(), FileMode: 0o644}
	if _, err := Update(context.Background(), p, opts, func(*Config) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode() != 0o644 {
		t.Fatalf("mode = %v, want 0644", fi.Mode())
	}
}

func TestCacheUnsafeCachedUntilFixed(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	c := NewCache(p, own())
	good, _, _ := mustGet(t, c)

	// Made unsafe: only a chmod, which changes nothing but the ctime.
	os.Chmod(p, 0o666)
	cfg, prev, changed, err := c.GetChanged()
	if !errors.Is(err, ErrUnsafe) || cfg != nil || !changed || prev != good {
		t.Fatalf("after chmod 666: cfg %v, prev %v, changed %v, err %v", cfg, prev, changed, err)
	}
	n := loads(c)
	for range 3 {
		if _, err2 := c.Get(); err2 != err {
			t.Fatalf("cached error changed: %v", err2)
		}
	}
	if loads(c) != n {
		t.Fatal("unsafe file re-read without a change")
	}
	os.Chmod(p, 0o600)
	cfg, prev, changed, err = c.GetChanged()
	if err != nil || !changed || prev != nil || len(cfg.Binaries) != 2 {
		t.Fatalf("after chmod 600: changed %v, prev %v, err %v", changed, prev, err)
	}
}

func TestLoadRefusesUnsafeDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "config.json", readFixture(t, fixtureConfig))
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, own())
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("Load from a world-writable directory = %v, want ErrUnsafe with a chmod hint", err)
	}
	os.Chmod(dir, 0o755)
	if _, err := Load(p, own()); err != nil {
		t.Fatalf("a 0755 directory is safe: %v", err)
	}
}
