package file_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
)

func readDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// integrity returns the store file's integrity record, or nil.
func integrity(t *testing.T, path string) map[string]any {
	t.Helper()
	rec, _ := readDoc(t, path)["integrity"].(map[string]any)
	return rec
}

func findItem(doc map[string]any, service, target string) map[string]any {
	for _, it := range items(doc) {
		if it["service"] == service && it["target"] == target {
			return it
		}
	}
	return nil
}

// refused opens path and requires ErrIntegrity naming the file and saying
// why, with the store file left exactly as it was.
func refused(t *testing.T, path, why string) {
	t.Helper()
	check := untouched(t, path)
	for _, create := range []bool{false, true} {
		o := opts(path)
		o.Create = create
		s, err := file.OpenWithParams(t.Context(), o, cheap)
		if err == nil {
			s.Close()
			t.Fatalf("Open (create=%v) succeeded; want the %s detected", create, why)
		}
		if !errors.Is(err, file.ErrIntegrity) || !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("Open (create=%v) = %v, want ErrIntegrity", create, err)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), why) {
			t.Errorf("error does not name the file and say %q: %v", why, err)
		}
		if strings.Contains(err.Error(), "old-secret") || strings.Contains(err.Error(), "new-secret") {
			t.Errorf("error shows a value: %v", err)
		}
	}
	check()
}

func TestOlderItemCiphertextPutBackDetected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "aws", backend.Item{Target: "key", Value: []byte("old-secret")}, backend.Item{Target: "other", Value: []byte("x")})
	old := findItem(readDoc(t, path), "aws", "key")
	set(t, s, "aws", backend.Item{Target: "key", Value: []byte("new-secret")})
	s.Close()

	rewrite(t, path, func(d map[string]any) {
		it := findItem(d, "aws", "key")
		it["nonce"], it["ciphertext"] = old["nonce"], old["ciphertext"]
	})
	refused(t, path, "older copy of an item")
}

func TestDroppedItemDetected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "aws", backend.Item{Target: "a", Value: []byte("1")}, backend.Item{Target: "b", Value: []byte("2")})
	set(t, s, "gcp", backend.Item{Target: "c", Value: []byte("3")})
	s.Close()

	rewrite(t, path, func(d map[string]any) { d["items"] = d["items"].([]any)[1:] })
	refused(t, path, "an item was removed")

	// Dropping every item of every service is the same attack.
	rewrite(t, path, func(d map[string]any) { d["items"] = []any{} })
	refused(t, path, "an item was removed")
}

func TestForgedCounterDetected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "aws", backend.Item{Target: "a", Value: []byte("1")})
	s.Close()
	rewrite(t, path, func(d map[string]any) {
		d["integrity"].(map[string]any)["counter"] = 1000
	})
	refused(t, path, "does not match its MAC")
}

func TestWholeFileRollbackDetected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	o := opts(path)
	o.VersionPath = filepath.Join(dir, "data", "keyring.version")
	s := openStore(t, o)
	set(t, s, "aws", backend.Item{Target: "key", Value: []byte("old-secret")})
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "aws", backend.Item{Target: "key", Value: []byte("new-secret")})
	s.Close()

	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	check := untouched(t, path)
	versionBefore, err := os.ReadFile(o.VersionPath)
	if err != nil {
		t.Fatalf("the version file was not written where asked: %v", err)
	}
	_, err = file.OpenWithParams(t.Context(), o, cheap)
	if !errors.Is(err, file.ErrIntegrity) || !strings.Contains(err.Error(), "rolled back") ||
		!strings.Contains(err.Error(), "version 1, older than version 2") || !strings.Contains(err.Error(), o.VersionPath) {
		t.Fatalf("Open of a rolled-back file = %v, want ErrIntegrity saying version 1 is older than 2 and naming the version file", err)
	}
	check()
	if after, _ := os.ReadFile(o.VersionPath); string(after) != string(versionBefore) {
		t.Error("a refused Open changed the version file")
	}

	// Removing the version file is the documented way to accept the older copy.
	if err := os.Remove(o.VersionPath); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, o)
	if got, err := s2.Get(t.Context(), "aws", "key"); err != nil || string(got.Value) != "old-secret" {
		t.Errorf("after accepting the older copy, Get = err %v", err)
	}
}

func TestLegacyStoreOpensAndIsUpgraded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "aws", backend.Item{Target: "a", Value: []byte("1")})
	s.Close()
	// What keychain-auth wrote before the integrity record existed.
	rewrite(t, path, func(d map[string]any) { delete(d, "integrity") })
	if err := os.Remove(path + ".version"); err != nil {
		t.Fatal(err)
	}

	check := untouched(t, path)
	s = openStore(t, opts(path))
	if got, err := s.Get(t.Context(), "aws", "a"); err != nil || string(got.Value) != "1" {
		t.Fatalf("legacy store: Get = err %v", err)
	}
	check()
	if integrity(t, path) != nil {
		t.Fatal("Open added an integrity record without a write")
	}
	set(t, s, "aws", backend.Item{Target: "b", Value: []byte("2")})
	s.Close()
	rec := integrity(t, path)
	if rec == nil || rec["counter"] != float64(1) {
		t.Fatalf("after the first write the integrity record is %v, want counter 1", rec)
	}
	s = openStore(t, opts(path))
	s.Close()

	// From now on a copy without the record is a downgrade, not a legacy store.
	rewrite(t, path, func(d map[string]any) { delete(d, "integrity") })
	refused(t, path, "has no integrity record")
}

func TestFreshStoreIntegrity(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	if rec := integrity(t, path); rec == nil || rec["counter"] != float64(0) {
		t.Fatalf("a new store's integrity record is %v, want counter 0", rec)
	}
	for i := range 3 {
		set(t, s, "svc", backend.Item{Target: "t", Value: []byte{byte(i)}})
	}
	if err := s.Delete(t.Context(), "svc", []string{"t"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rec := integrity(t, path); rec["counter"] != float64(4) {
		t.Errorf("after 4 writes the counter is %v", rec["counter"])
	}
	var v struct{ Counter uint64 }
	data, err := os.ReadFile(path + ".version")
	if err != nil || json.Unmarshal(data, &v) != nil || v.Counter != 4 {
		t.Errorf("version file: %q, %v; want counter 4", data, err)
	}
	if fi, err := os.Stat(path + ".version"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("version file mode: %v, %v", fi, err)
	}
	s = openStore(t, opts(path))
	if _, err := s.Get(t.Context(), "svc", "t"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get of the deleted item = %v", err)
	}
}

// A version file one step behind the store (a crash between the two writes)
// is normal; Open catches it up.
func TestVersionFileBehindIsCaughtUp(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("1")})
	behind, err := os.ReadFile(path + ".version")
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("2")})
	s.Close()
	if err := os.WriteFile(path+".version", behind, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts(path))
	s.Close()
	if now, _ := os.ReadFile(path + ".version"); !strings.Contains(string(now), `"counter":2`) {
		t.Errorf("version file after Open: %s, want counter 2", now)
	}
}

// Moving a store aside and starting a new one at the same path must not be
// taken for a rollback.
func TestNewStoreAfterMovingOldAside(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	for range 3 {
		set(t, s, "svc", backend.Item{Target: "t", Value: []byte("v")})
	}
	s.Close()
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	// A store that had writes and is now missing was deleted (or moved by
	// someone emptying it on the quiet): Open refuses to make a new one
	// until its version file is taken away too, on purpose.
	if _, err := file.OpenWithParams(t.Context(), opts(path), cheap); !errors.Is(err, file.ErrIntegrity) || !strings.Contains(err.Error(), path+".version") {
		t.Fatalf("Open with the store moved aside = %v; want ErrIntegrity naming the version file", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Open created %s", path)
	}
	if err := os.Rename(path+".version", path+".version.old"); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("w")})
	s.Close()
	s = openStore(t, opts(path))
	if got, err := s.Get(t.Context(), "svc", "t"); err != nil || string(got.Value) != "w" {
		t.Errorf("reopen of the new store: err %v", err)
	}
}

// A damaged version file stops Open with a message that names it and says
// how to go on; it is not silently replaced (that would drop the rollback
// check).
func TestDamagedVersionFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keyring.json")
	s := openStore(t, opts(path))
	set(t, s, "svc", backend.Item{Target: "t", Value: []byte("v")})
	s.Close()
	if err := os.WriteFile(path+".version", []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := untouched(t, path)
	_, err := file.OpenWithParams(t.Context(), opts(path), cheap)
	if !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), path+".version is damaged") ||
		!strings.Contains(err.Error(), "remove it") {
		t.Errorf("Open with a damaged version file = %v", err)
	}
	check()
	if data, _ := os.ReadFile(path + ".version"); string(data) != "{not json" {
		t.Error("the damaged version file was replaced")
	}
}
