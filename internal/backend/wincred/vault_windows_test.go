package wincred

import (
	"bytes"
	"testing"

	wc "github.com/danieljoos/wincred"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
)

// testNamespace gives each store of the suite its own credentials, and
// removes them when the test ends.
func testNamespace(t *testing.T) string {
	t.Helper()
	gen, err := newGen()
	if err != nil {
		t.Fatal(err)
	}
	ns := "keychain-auth-test-" + gen
	t.Cleanup(func() {
		for _, prefix := range []string{ns + ":", ns + "#"} {
			cs, err := wc.FilteredList(prefix + "*")
			if err != nil {
				t.Errorf("list test credentials: %v", err)
				return
			}
			for _, c := range cs {
				if err := (credVault{}).remove(c.TargetName); err != nil {
					t.Errorf("remove test credential %s: %v", c.TargetName, err)
				}
			}
		}
	})
	return ns
}

func TestConformanceCredentialManager(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		s := newStore(credVault{}, testNamespace(t), nil)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestChunksInCredentialManager checks, in the real store, the credential
// names a 6,000-byte value produces and that they are all removed with it.
func TestChunksInCredentialManager(t *testing.T) {
	ns := testNamespace(t)
	s := newStore(credVault{}, ns, nil)
	big := bytes.Repeat([]byte("0123456789"), 600)
	if err := s.Set(t.Context(), "svc", []backend.Item{{Target: "big", Value: big}}); err != nil {
		t.Fatal(err)
	}
	main, err := wc.GetGenericCredential(ns + ":svc/big")
	if err != nil {
		t.Fatalf("main credential %s:svc/big: %v", ns, err)
	}
	if len(main.CredentialBlob) > MaxBlob {
		t.Errorf("main blob is %d bytes, over the %d-byte limit", len(main.CredentialBlob), MaxBlob)
	}
	chunks, err := wc.FilteredList(ns + "#*")
	if err != nil || len(chunks) != 2 {
		t.Fatalf("chunk credentials: %d (err %v), want 2", len(chunks), err)
	}
	it, err := s.Get(t.Context(), "svc", "big")
	if err != nil || !bytes.Equal(it.Value, big) {
		t.Fatalf("Get: err %v, value equal %v", err, err == nil && bytes.Equal(it.Value, big))
	}
	if err := s.Delete(t.Context(), "svc", []string{"big"}); err != nil {
		t.Fatal(err)
	}
	left, _ := wc.FilteredList(ns + "*")
	if len(left) != 0 {
		t.Errorf("%d credentials left after Delete", len(left))
	}
}
