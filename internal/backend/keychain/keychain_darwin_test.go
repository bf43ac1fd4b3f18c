package keychain

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
)

// testPrefix keeps this run's items apart from real ones and from other
// runs; every item under it is deleted when the test ends.
func testPrefix(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	return "keychain-auth-test-" + hex.EncodeToString(b[:]) + "-"
}

// openTest opens a backend with its own prefix, skipping when this Mac has
// no usable login keychain (a locked one on a headless machine).
func openTest(t *testing.T, prefix string) *Backend {
	t.Helper()
	b, err := Open(t.Context(), Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := b.Ready(t.Context()); errors.Is(err, backend.ErrLocked) || errors.Is(err, backend.ErrUnavailable) {
		// Correct under CI too: a CI runner's session often has no unlocked
		// login keychain and nothing may prompt; the fake Keychain in
		// fake_test.go runs the conformance suite everywhere.
		t.Skipf("SKIPPED: no usable login keychain here: %v", err)
	} else if err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return b
}

// purge deletes every generic password whose service starts with prefix.
func purge(t *testing.T, prefix string) {
	cf, err := loadAPI()
	if err != nil {
		t.Errorf("purge: %v", err)
		return
	}
	q, err := cf.build(dict{
		{kSecClass, kSecClassGenericPassword},
		{kSecReturnAttributes, true},
		{kSecMatchLimit, kSecMatchLimitAll},
	})
	if err != nil {
		t.Errorf("purge: %v", err)
		return
	}
	defer call(cf.release, q)
	var res uintptr
	if st := status(cf.itemCopyMatching, q, uintptr(unsafe.Pointer(&res))); st != errSecSuccess {
		if st != errSecItemNotFound {
			t.Errorf("purge: list: %v", Status(st))
		}
		return
	}
	defer call(cf.release, res)
	type key struct{ service, account string }
	var doomed []key
	for i := range int(call(cf.arrayGetCount, res)) {
		d := call(cf.arrayGetValueAtIndex, res, uintptr(i))
		svc, _ := cf.goString(cf.get(d, cf.syms[kSecAttrService]))
		acct, _ := cf.goString(cf.get(d, cf.syms[kSecAttrAccount]))
		if strings.HasPrefix(svc, prefix) {
			doomed = append(doomed, key{svc, acct})
		}
	}
	l := layout{}
	for _, k := range doomed {
		dq, err := cf.build(l.itemKey(k.service, k.account))
		if err != nil {
			t.Errorf("purge: %v", err)
			continue
		}
		if st := status(cf.itemDelete, dq); st != errSecSuccess && st != errSecItemNotFound {
			t.Errorf("purge %s/%s: %v", k.service, k.account, Status(st))
		}
		call(cf.release, dq)
	}
}

func TestConformance(t *testing.T) {
	prefix := testPrefix(t)
	t.Cleanup(func() { purge(t, prefix) })
	var n atomic.Int64
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := openTest(t, fmt.Sprintf("%s%d:", prefix, n.Add(1)))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestItemsAreGenericPasswordsUnderPrefixedService(t *testing.T) {
	prefix := testPrefix(t)
	t.Cleanup(func() { purge(t, prefix) })
	b := openTest(t, prefix)
	ctx := t.Context()
	if err := b.Set(ctx, "aws", []backend.Item{{Target: "key", Value: []byte("v"), Attributes: map[string]string{"env": "prod"}}}); err != nil {
		t.Fatal(err)
	}
	// Read it back without the backend: raw service and account.
	b2 := newBackend(b.api, Options{Prefix: "-"})
	b2.layout = layout{}
	got, err := b2.read(prefix+"aws", "key")
	if err != nil {
		t.Fatalf("the item is not at service %q, account %q: %v", prefix+"aws", "key", err)
	}
	if string(got.Value) != "v" || got.Attributes["env"] != "prod" {
		t.Errorf("raw item = %q %v", got.Value, got.Attributes)
	}
}
