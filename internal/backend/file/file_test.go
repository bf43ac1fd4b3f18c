package file_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
	"github.com/The-17/keychain-auth/internal/backend/file"
)

// cheap keeps Argon2id to microseconds; the defaults are benchmarked instead.
var cheap = file.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

const passphrase = "correct horse battery staple"

func opts(path string) backend.Options {
	return backend.Options{Path: path, Passphrase: []byte(passphrase), Create: true}
}

func openStore(t *testing.T, o backend.Options) *file.Store {
	t.Helper()
	s, err := file.OpenWithParams(t.Context(), o, cheap)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func set(t *testing.T, s *file.Store, service string, items ...backend.Item) {
	t.Helper()
	if err := s.Set(t.Context(), service, items); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return openStore(t, opts(filepath.Join(t.TempDir(), "keyring.json")))
	})
}

func TestConformanceRawKey(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		key := bytes.Repeat([]byte{7}, 32)
		return openStore(t, backend.Options{Path: filepath.Join(t.TempDir(), "keyring.json"), Key: key, Create: true})
	})
}

func TestModes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "home", ".keychain-auth")
	path := filepath.Join(dir, "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("v")})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Dir(dir), 0o700},
		{dir, 0o700},
		{path, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s has mode %o, want %o", c.path, got, c.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	want := backend.Item{Target: "alice", Value: []byte("hunter2"), Attributes: map[string]string{"env": "prod"}}
	set(t, s, "aws", want, backend.Item{Target: "gone", Value: []byte("x")})
	set(t, s, "gcp", backend.Item{Target: "bob", Value: []byte("")})
	if err := s.Delete(t.Context(), "aws", []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	o := opts(path)
	o.Create = false
	s2 := openStore(t, o)
	got, err := s2.Get(t.Context(), "aws", "alice")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if string(got.Value) != "hunter2" || got.Attributes["env"] != "prod" || len(got.Attributes) != 1 {
		t.Errorf("after reopen, item differs from what was stored (attributes %v)", got.Attributes)
	}
	if _, err := s2.Get(t.Context(), "aws", "gone"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("deleted item after reopen: %v, want ErrNotFound", err)
	}
	if got, err := s2.Get(t.Context(), "gcp", "bob"); err != nil || len(got.Value) != 0 {
		t.Errorf("empty value after reopen: %d bytes, err %v", len(got.Value), err)
	}
}

func TestArbitraryBytesSurviveReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	v := []byte{0xff, 0x00, 0xfe, 0x80, 0xc3, '\n'}
	set(t, s, "svc", backend.Item{Target: "bin", Value: v, Attributes: map[string]string{"k": "\xff"}})
	s.Close()
	s2 := openStore(t, opts(path))
	got, err := s2.Get(t.Context(), "svc", "bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Value, v) || got.Attributes["k"] != "\xff" {
		t.Error("a value that is not UTF-8 did not survive a reopen byte for byte")
	}
}

func TestInvalidUTF8NameRefused(t *testing.T) {
	t.Parallel()
	s := openStore(t, opts(filepath.Join(t.TempDir(), "keyring.json")))
	if err := s.Set(t.Context(), "svc", []backend.Item{{Target: "bad\xff", Value: []byte("v")}}); err == nil {
		t.Error("Set accepted a target that is not UTF-8; it would not survive a reopen")
	}
	if err := s.Set(t.Context(), "bad\xff", []backend.Item{{Target: "t", Value: []byte("v")}}); err == nil {
		t.Error("Set accepted a service that is not UTF-8")
	}
}

func TestNoPlaintextInFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	const value, attr = "zq-distinctive-secret-value-41", "zq-distinctive-attribute-value-17"
	set(t, s, "svc",
		backend.Item{Target: "t1", Value: []byte(value), Attributes: map[string]string{"note": attr}},
		backend.Item{Target: "t2", Value: []byte(value + value)})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{value, attr, passphrase,
		base64.StdEncoding.EncodeToString([]byte(value)), base64.StdEncoding.EncodeToString([]byte(attr))} {
		if bytes.Contains(data, []byte(needle)) || bytes.Contains(data, []byte(needle[:12])) {
			t.Errorf("store file contains a secret in clear (needle of %d bytes)", len(needle))
		}
	}
	if !bytes.Contains(data, []byte(`"t1"`)) {
		t.Error("test is not looking at the store: target name not found in the file")
	}
}

// untouched returns a func that fails the test if path changed since now.
func untouched(t *testing.T, path string) func() {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fi2, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) || !os.SameFile(fi, fi2) || !fi.ModTime().Equal(fi2.ModTime()) {
			t.Error("the store file was modified")
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("v")})
	s.Close()
	check := untouched(t, path)

	const wrong = "incorrect horse battery staple"
	for _, o := range []backend.Options{
		{Path: path, Passphrase: []byte(wrong), Create: true},
		{Path: path, Passphrase: []byte(wrong)},
		{Path: path, Key: bytes.Repeat([]byte{1}, 32), Create: true},
	} {
		_, err := file.OpenWithParams(t.Context(), o, cheap)
		if !errors.Is(err, file.ErrWrongPassphrase) {
			t.Fatalf("Open with the wrong secret = %v, want ErrWrongPassphrase", err)
		}
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("wrong passphrase error does not wrap backend.ErrUnavailable: %v", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) {
			t.Errorf("error does not name the file: %v", err)
		}
		if strings.Contains(msg, wrong) || strings.Contains(msg, passphrase) {
			t.Error("error message contains a passphrase")
		}
	}
	check()

	// The right passphrase still works afterwards.
	o := opts(path)
	o.Create = false
	if _, err := openStore(t, o).Get(t.Context(), "svc", "t"); err != nil {
		t.Errorf("Get with the right passphrase: %v", err)
	}
}

func TestRawKeyStoreRefusesPassphrase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	key := bytes.Repeat([]byte{9}, 32)
	s := openStore(t, backend.Options{Path: path, Key: key, Create: true})
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("v")})
	s.Close()
	check := untouched(t, path)
	_, err := file.OpenWithParams(t.Context(), opts(path), cheap)
	if !errors.Is(err, file.ErrWrongPassphrase) {
		t.Errorf("passphrase on a key store = %v, want ErrWrongPassphrase", err)
	}
	other := bytes.Repeat([]byte{8}, 32)
	if _, err := file.OpenWithParams(t.Context(), backend.Options{Path: path, Key: other}, cheap); !errors.Is(err, file.ErrWrongPassphrase) {
		t.Errorf("wrong key = %v, want ErrWrongPassphrase", err)
	}
	check()
	if _, err := openStore(t, backend.Options{Path: path, Key: key}).Get(t.Context(), "svc", "t"); err != nil {
		t.Errorf("Get with the right key: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	for name, o := range map[string]backend.Options{
		"no secret": {Path: path, Create: true},
		"both":      {Path: path, Passphrase: []byte("p"), Key: make([]byte, 32), Create: true},
		"short key": {Path: path, Key: make([]byte, 16), Create: true},
		"no path":   {Passphrase: []byte("p"), Create: true},
	} {
		if _, err := file.OpenWithParams(t.Context(), o, cheap); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
	if _, err := file.OpenWithParams(t.Context(), opts(path), file.KDFParams{Time: 1, MemoryKiB: 8 << 20, Threads: 1}); err == nil {
		t.Error("Open accepted 8 GiB of Argon2id memory for a new store")
	}
	if ok, _ := file.Exists(path); ok {
		t.Error("a refused Open created the store")
	}
}

func TestNoStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "missing")
	path := filepath.Join(dir, "keyring.json")
	if ok, err := file.Exists(path); ok || err != nil {
		t.Fatalf("Exists before creation = %v, %v", ok, err)
	}
	o := opts(path)
	o.Create = false
	_, err := file.OpenWithParams(t.Context(), o, cheap)
	if !errors.Is(err, file.ErrNoStore) || !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open of a missing store = %v, want ErrNoStore", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("Open without Create made the store's directory")
	}
	openStore(t, opts(path))
	if ok, err := file.Exists(path); !ok || err != nil {
		t.Errorf("Exists after creation = %v, %v", ok, err)
	}
	if _, err := file.Exists(dir); err == nil {
		t.Error("Exists on a directory reported no error")
	}
}

// rewrite edits the store's JSON document in place, as an attacker or a disk
// fault would.
func rewrite(t *testing.T, path string, edit func(doc map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if data, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func items(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, it := range doc["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func flip(b64 any) string {
	raw, _ := base64.StdEncoding.DecodeString(b64.(string))
	raw[len(raw)/2] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}

func TestCorruptFiles(t *testing.T) {
	t.Parallel()
	kdf := func(doc map[string]any) map[string]any { return doc["kdf"].(map[string]any) }
	cases := []struct {
		name string
		raw  string // replaces the whole file when set
		edit func(doc map[string]any)
		want error
	}{
		{name: "empty file", raw: " ", want: file.ErrCorrupt},
		{name: "truncated JSON", raw: `{"version":1,"kdf":`, want: file.ErrCorrupt},
		{name: "not an object", raw: `[]`, want: file.ErrCorrupt},
		{name: "newer version", edit: func(d map[string]any) { d["version"] = 2 }, want: file.ErrCorrupt},
		{name: "unknown kdf", edit: func(d map[string]any) { kdf(d)["alg"] = "rot13" }, want: file.ErrCorrupt},
		{name: "absurd memory", edit: func(d map[string]any) { kdf(d)["memory_kib"] = 1 << 40 }, want: file.ErrCorrupt},
		{name: "memory over 4 GiB", edit: func(d map[string]any) { kdf(d)["memory_kib"] = 5 << 20 }, want: file.ErrCorrupt},
		{name: "absurd time", edit: func(d map[string]any) { kdf(d)["time"] = 1 << 30 }, want: file.ErrCorrupt},
		{name: "zero threads", edit: func(d map[string]any) { delete(kdf(d), "threads") }, want: file.ErrCorrupt},
		{name: "short salt", edit: func(d map[string]any) { kdf(d)["salt"] = "AAAA" }, want: file.ErrCorrupt},
		{name: "no check", edit: func(d map[string]any) { delete(d, "check") }, want: file.ErrCorrupt},
		{name: "tampered check", edit: func(d map[string]any) {
			c := d["check"].(map[string]any)
			c["ciphertext"] = flip(c["ciphertext"])
		}, want: file.ErrWrongPassphrase},
		{name: "tampered item", edit: func(d map[string]any) {
			it := items(d)[1]
			it["ciphertext"] = flip(it["ciphertext"])
		}, want: file.ErrCorrupt},
		{name: "short nonce", edit: func(d map[string]any) { items(d)[0]["nonce"] = "AAAA" }, want: file.ErrCorrupt},
		{name: "swapped targets", edit: func(d map[string]any) {
			its := items(d)
			its[0]["target"], its[1]["target"] = its[1]["target"], its[0]["target"]
		}, want: file.ErrCorrupt},
		{name: "swapped services", edit: func(d map[string]any) {
			its := items(d)
			its[0]["service"], its[2]["service"] = its[2]["service"], its[0]["service"]
		}, want: file.ErrCorrupt},
		// ("a","bc") moved to ("ab","c"): equal under plain concatenation.
		{name: "item moved across the service/target boundary", edit: func(d map[string]any) {
			it := items(d)[0]
			it["service"], it["target"] = "ab", "c"
		}, want: file.ErrCorrupt},
		{name: "duplicate item", edit: func(d map[string]any) {
			d["items"] = append(d["items"].([]any), d["items"].([]any)[0])
		}, want: file.ErrCorrupt},
		{name: "item from another store", edit: nil, want: file.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "keyring.json")
			s := openStore(t, opts(path))
			set(t, s, "a", backend.Item{Target: "bc", Value: []byte("v1")}, backend.Item{Target: "bd", Value: []byte("v2")})
			set(t, s, "b", backend.Item{Target: "bc", Value: []byte("v3")})
			s.Close()
			switch {
			case c.raw != "":
				if err := os.WriteFile(path, []byte(c.raw), 0o600); err != nil {
					t.Fatal(err)
				}
			case c.edit != nil:
				rewrite(t, path, c.edit)
			default:
				// Same passphrase, same names, different salt: an item
				// copied over from another store must not open.
				otherPath := filepath.Join(dir, "other.json")
				o := openStore(t, opts(otherPath))
				set(t, o, "a", backend.Item{Target: "bc", Value: []byte("intruder")})
				o.Close()
				var foreign map[string]any
				rewrite(t, otherPath, func(d map[string]any) { foreign = items(d)[0] })
				rewrite(t, path, func(d map[string]any) { d["items"].([]any)[0] = foreign })
			}
			check := untouched(t, path)
			for _, create := range []bool{false, true} {
				o := opts(path)
				o.Create = create
				s, err := file.OpenWithParams(t.Context(), o, cheap)
				if err == nil {
					s.Close()
					t.Fatalf("Open (create=%v) of a damaged store succeeded", create)
				}
				if !errors.Is(err, c.want) {
					t.Errorf("Open (create=%v) = %v, want %v", create, err, c.want)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error does not name the file: %v", err)
				}
			}
			check()
		})
	}
}

func TestSyntaxErrorNamesLineAndColumn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, []byte("{\n  \"version\": 1,\n  \"kdf\": }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := file.OpenWithParams(t.Context(), opts(path), cheap)
	if !errors.Is(err, file.ErrCorrupt) || !strings.Contains(err.Error(), "line 3, column 10") {
		t.Errorf("Open = %v, want ErrCorrupt naming line 3, column 10", err)
	}
}

func TestFailedWriteLeavesFileUntouched(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "keep", Value: []byte("old")})
	check := untouched(t, path)
	injected := errors.New("disk full")
	s.InjectFault(1, injected)
	err := s.Set(t.Context(), "svc", []backend.Item{
		{Target: "keep", Value: []byte("new")},
		{Target: "added", Value: []byte("x")},
	})
	if !errors.Is(err, injected) {
		t.Fatalf("Set = %v, want the injected error", err)
	}
	check()
	s.Close()
	s2 := openStore(t, opts(path))
	if got, err := s2.Get(t.Context(), "svc", "keep"); err != nil || string(got.Value) != "old" {
		t.Errorf("after a failed write and reopen, the old item is not intact (err %v)", err)
	}
	if _, err := s2.Get(t.Context(), "svc", "added"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("after a failed write, the new item exists: %v", err)
	}
}

func TestSecondWriterDetected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	a := openStore(t, opts(path))
	b := openStore(t, opts(path))
	set(t, a, "svc", backend.Item{Target: "from-a", Value: []byte("a")})
	check := untouched(t, path)
	err := b.Set(t.Context(), "svc", []backend.Item{{Target: "from-b", Value: []byte("b")}})
	if !errors.Is(err, file.ErrModified) {
		t.Fatalf("a write over another process's change = %v, want ErrModified", err)
	}
	check()
	if err := b.Delete(t.Context(), "svc", []string{"from-a"}); err != nil {
		t.Errorf("a Delete that changes nothing should not need to write: %v", err)
	}
	if _, err := b.Get(t.Context(), "svc", "from-b"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("the refused write is visible in memory: %v", err)
	}
}

func TestStoredParamsWin(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	s.Close()
	before, _ := os.ReadFile(path)
	// Default params would take ~100 ms and 64 MiB; the stored cheap ones
	// must be used instead and survive a rewrite.
	s2, err := file.Open(t.Context(), opts(path))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	set(t, s2, "svc", backend.Item{Target: "t", Value: []byte("v")})
	after, _ := os.ReadFile(path)
	type kdf struct {
		Alg       string
		Salt      []byte
		Time      int
		MemoryKiB int `json:"memory_kib"`
		Threads   int
	}
	kdfOf := func(data []byte) kdf {
		var d struct{ KDF kdf }
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		return d.KDF
	}
	b, a := kdfOf(before), kdfOf(after)
	if b.Alg != a.Alg || !bytes.Equal(b.Salt, a.Salt) || b.Time != a.Time || b.MemoryKiB != a.MemoryKiB || b.Threads != a.Threads {
		t.Errorf("KDF header changed on rewrite: %+v -> %+v", b, a)
	}
	if a.Alg != "argon2id" || a.Time != 1 || a.MemoryKiB != 64 || a.Threads != 1 || len(a.Salt) != 16 {
		t.Errorf("stored params are not the ones the store was created with: %+v", a)
	}
}

func TestConcurrentCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	const n = 4
	stores := make([]*file.Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := file.OpenWithParams(context.Background(), opts(path), cheap)
			if err != nil {
				t.Errorf("concurrent Open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			defer s.Close()
		}
	}
	if t.Failed() {
		return
	}
	// Whoever created the file, every Store must hold its key: a write by
	// one must be readable by a fresh open.
	set(t, stores[n-1], "svc", backend.Item{Target: "t", Value: []byte("v")})
	if _, err := openStore(t, opts(path)).Get(t.Context(), "svc", "t"); err != nil {
		t.Errorf("store created concurrently is inconsistent: %v", err)
	}
}
