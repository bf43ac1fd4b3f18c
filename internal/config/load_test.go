package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// The test binary doubles as a separate process doing one Update, to show
// that the lock serializes processes, not just goroutines.
const helperEnv = "KEYCHAIN_AUTH_CONFIG_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "register" {
		os.Exit(helperRegister(os.Getenv("HELPER_PATH"), os.Getenv("HELPER_HASH")))
	}
	os.Exit(m.Run())
}

func helperRegister(path, hash string) int {
	_, err := Update(context.Background(), path, LoadOptions{OwnerUID: os.Getuid()}, func(c *Config) error {
		c.Binaries = append(c.Binaries, Entry{Path: "/bin/proc", Hash: hash})
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func testHash(i int) string {
	return fmt.Sprintf("sha256:%064x", i+1)
}

func own() LoadOptions { return LoadOptions{OwnerUID: os.Getuid()} }

func TestLoadMissingIsEmpty(t *testing.T) {
	t.Parallel()
	cfg, err := Load(filepath.Join(t.TempDir(), "nope", "config.json"), own())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Binaries) != 0 || cfg.ProtocolVersion != "1" {
		t.Fatalf("config = %+v", cfg)
	}
}

func TestLoadOriginal(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	cfg, err := Load(p, own())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Binaries) != 2 {
		t.Fatalf("entries = %d", len(cfg.Binaries))
	}
}

func TestLoadRefusesNonRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	os.Mkdir(p, 0o700)
	if _, err := Load(p, own()); err == nil {
		t.Fatal("a directory loaded as config")
	}
}

func TestUpdateCreates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keychain-auth")
	p := filepath.Join(dir, "config.json")
	cfg, err := Update(context.Background(), p, own(), func(c *Config) error {
		c.Binaries = append(c.Binaries, Entry{Path: "/bin/x", Hash: testHash(1), RegisteredAt: time.Now()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Binaries) != 1 {
		t.Fatalf("returned %+v", cfg)
	}
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, p, 0o600)
	got, err := Load(p, own())
	if err != nil || len(got.Binaries) != 1 || got.Binaries[0].Hash != testHash(1) {
		t.Fatalf("reload = %+v, %v", got, err)
	}
}

func TestUpdateKeepsUnknownFields(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	_, err := Update(context.Background(), p, own(), func(c *Config) error {
		i := c.FindByHash(hashDeploy)
		c.Binaries[i[0]].Grant(nil, []string{"aws"}, true)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if !bytes.Contains(data, []byte("ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")) {
		t.Fatalf("trusted_signers lost:\n%s", data)
	}
	cfg, err := Load(p, own())
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Binaries[cfg.FindByHash(hashDeploy)[0]]
	if !e.CanSearch || len(e.AllowedWriteServices) != 1 {
		t.Fatalf("grant not written: %+v", e)
	}
}

// unchanged asserts that the file at p still has exactly the given bytes
// and is the same inode (it was not rewritten, even with equal content).
func unchanged(t *testing.T, p string, data []byte, fi os.FileInfo) {
	t.Helper()
	now, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, data) {
		t.Fatalf("file changed:\n%s", now)
	}
	fi2, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, fi2) {
		t.Fatal("file was replaced")
	}
}

func TestUpdateNeverRewritesBrokenFile(t *testing.T) {
	t.Parallel()
	broken := []byte("{\n  \"protocol_version\": \"1\",\n  \"registered_binaries\": [\n    {\"path\": \"/bin/x\",}\n  ]\n}\n")
	p := writeFile(t, t.TempDir(), "config.json", broken)
	fi, _ := os.Stat(p)
	called := false
	_, err := Update(context.Background(), p, own(), func(c *Config) error {
		called = true
		return nil
	})
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 4 || se.Column != 23 || se.File != p {
		t.Fatalf("err = %v, want SyntaxError at %s:4:23", err, p)
	}
	if called {
		t.Error("fn called on a broken file")
	}
	unchanged(t, p, broken, fi)
}

func TestUpdateNothingWritten(t *testing.T) {
	t.Parallel()
	orig := readFixture(t, fixtureConfig)
	boom := errors.New("boom")
	tests := []struct {
		name string
		fn   func(*Config) error
		want error
	}{
		{"fn fails after editing", func(c *Config) error {
			c.Binaries = nil
			return boom
		}, boom},
		{"result invalid", func(c *Config) error {
			c.Binaries[0].Hash = "sha256:XYZ"
			return nil
		}, ErrInvalid},
		{"no change", func(c *Config) error { return nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "config.json", orig)
			fi, _ := os.Stat(p)
			_, err := Update(context.Background(), p, own(), tt.fn)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				// The original's inline lists differ from our layout, so a
				// no-op update does rewrite once; the second is a true no-op.
				data, _ := os.ReadFile(p)
				fi, _ = os.Stat(p)
				if _, err := Update(context.Background(), p, own(), tt.fn); err != nil {
					t.Fatal(err)
				}
				unchanged(t, p, data, fi)
				return
			}
			unchanged(t, p, orig, fi)
		})
	}
	t.Run("missing file stays missing", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "config.json")
		Update(context.Background(), p, own(), func(*Config) error { return boom })
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("file created by a failed update: %v", err)
		}
	})
	t.Run("unsafe file", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, t.TempDir(), "config.json", orig)
		os.Chmod(p, 0o666)
		fi, _ := os.Stat(p)
		if _, err := Update(context.Background(), p, own(), func(*Config) error { return nil }); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("err = %v", err)
		}
		unchanged(t, p, orig, fi)
	})
}

func TestUpdateHonoursContext(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "config.json")
	unlock, err := fsx.Lock(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Update(ctx, p, own(), func(*Config) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Update while locked = %v", err)
	}
}

func TestUpdateConcurrentGoroutines(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := Update(context.Background(), p, own(), func(c *Config) error {
				c.Binaries = append(c.Binaries, Entry{Path: "/bin/g", Hash: testHash(i)})
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	assertAllLanded(t, p, n)
}

func TestUpdateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "config.json", readFixture(t, fixtureConfig))
	const n = 20
	cmds := make([]*exec.Cmd, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=register", "HELPER_PATH="+p, "HELPER_HASH="+testHash(i))
		cmd.Stderr = new(bytes.Buffer)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v: %s", err, cmd.Stderr)
		}
	}
	assertAllLanded(t, p, n)
}

func assertAllLanded(t *testing.T, p string, n int) {
	t.Helper()
	cfg, err := Load(p, own())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Binaries) != n+2 {
		t.Fatalf("%d entries after %d concurrent updates, want %d", len(cfg.Binaries), n, n+2)
	}
	for i := range n {
		if len(cfg.FindByHash(testHash(i))) != 1 {
			t.Errorf("update %d lost", i)
		}
	}
	if _, ok := cfg.Extra()["trusted_signers"]; !ok {
		t.Error("trusted_signers lost under concurrency")
	}
}
