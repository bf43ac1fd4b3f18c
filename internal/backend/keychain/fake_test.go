package keychain

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
)

// fakeSec interprets the query dictionaries the way Security.framework
// documents them, over an in-memory keychain, so the backend's logic and
// its queries run through the conformance suite on every OS. Where a query
// would not do on a Mac what the backend relies on (no kSecReturnData on a
// read, kSecReturnData with kSecMatchLimitAll), it fails with errSecParam.
type fakeSec struct {
	mu     sync.Mutex
	items  map[[2]string]fakeItem
	locked bool
}

type fakeItem struct {
	label          string
	generic, value []byte
}

func newFakeSec() *fakeSec { return &fakeSec{items: map[[2]string]fakeItem{}} }

func get[T any](d dict, k sym) (T, bool) {
	v, ok := d.lookup(k)
	if !ok {
		var zero T
		return zero, false
	}
	t, ok := v.(T)
	return t, ok
}

// key reads class, service and (when needAccount) account.
func key(d dict, needAccount bool) ([2]string, bool) {
	class, _ := get[sym](d, kSecClass)
	svc, okS := get[string](d, kSecAttrService)
	acct, okA := get[string](d, kSecAttrAccount)
	if class != kSecClassGenericPassword || !okS || needAccount && !okA {
		return [2]string{}, false
	}
	return [2]string{svc, acct}, true
}

func (f *fakeSec) copyOne(q dict) ([]byte, []byte, int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return nil, nil, errSecInteractionNotAllowed, nil
	}
	k, ok := key(q, true)
	limit, _ := get[sym](q, kSecMatchLimit)
	data, _ := get[bool](q, kSecReturnData)
	attrs, _ := get[bool](q, kSecReturnAttributes)
	if !ok || limit != kSecMatchLimitOne || !data || !attrs {
		return nil, nil, errSecParam, nil
	}
	it, found := f.items[k]
	if !found {
		return nil, nil, errSecItemNotFound, nil
	}
	return bytes.Clone(it.value), bytes.Clone(it.generic), errSecSuccess, nil
}

func (f *fakeSec) copyAccounts(q dict) ([]string, int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return nil, errSecInteractionNotAllowed, nil
	}
	k, ok := key(q, false)
	limit, _ := get[sym](q, kSecMatchLimit)
	attrs, _ := get[bool](q, kSecReturnAttributes)
	_, data := q.lookup(kSecReturnData)
	if _, acct := q.lookup(kSecAttrAccount); !ok || acct || limit != kSecMatchLimitAll || !attrs || data {
		return nil, errSecParam, nil
	}
	var out []string
	for ik := range f.items { // map order: the backend must sort
		if ik[0] == k[0] {
			out = append(out, ik[1])
		}
	}
	if len(out) == 0 {
		return nil, errSecItemNotFound, nil
	}
	return out, errSecSuccess, nil
}

func (f *fakeSec) update(keyQ, attrs dict) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return errSecInteractionNotAllowed, nil
	}
	k, ok := key(keyQ, true)
	if !ok || len(keyQ) != 3 {
		return errSecParam, nil
	}
	for _, forbidden := range []sym{kSecClass, kSecAttrService, kSecAttrAccount, kSecReturnData, kSecMatchLimit} {
		if _, has := attrs.lookup(forbidden); has {
			return errSecParam, nil
		}
	}
	it, found := f.items[k]
	if !found {
		return errSecItemNotFound, nil
	}
	if v, ok := get[[]byte](attrs, kSecValueData); ok {
		it.value = bytes.Clone(v)
	}
	if v, ok := get[[]byte](attrs, kSecAttrGeneric); ok {
		it.generic = bytes.Clone(v)
	}
	if v, ok := get[string](attrs, kSecAttrLabel); ok {
		it.label = v
	}
	f.items[k] = it
	return errSecSuccess, nil
}

func (f *fakeSec) add(q dict) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return errSecInteractionNotAllowed, nil
	}
	k, ok := key(q, true)
	value, okV := get[[]byte](q, kSecValueData)
	if !ok || !okV {
		return errSecParam, nil
	}
	if _, dup := f.items[k]; dup {
		return errSecDuplicateItem, nil
	}
	generic, _ := get[[]byte](q, kSecAttrGeneric)
	label, _ := get[string](q, kSecAttrLabel)
	f.items[k] = fakeItem{label: label, generic: bytes.Clone(generic), value: bytes.Clone(value)}
	return errSecSuccess, nil
}

func (f *fakeSec) delete(keyQ dict) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return errSecInteractionNotAllowed, nil
	}
	k, ok := key(keyQ, true)
	if !ok {
		return errSecParam, nil
	}
	if _, found := f.items[k]; !found {
		return errSecItemNotFound, nil
	}
	delete(f.items, k)
	return errSecSuccess, nil
}

func TestConformanceOverQueryInterpreter(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(newFakeSec(), Options{})
	})
}

func TestItemsStoredUnderPrefixedService(t *testing.T) {
	t.Parallel()
	f := newFakeSec()
	b := newBackend(f, Options{})
	if err := b.Set(t.Context(), "aws", []backend.Item{{Target: "prod/key", Value: []byte("v"), Attributes: map[string]string{"env": "prod"}}}); err != nil {
		t.Fatal(err)
	}
	it, ok := f.items[[2]string{"keychain-auth:aws", "prod/key"}]
	if !ok {
		t.Fatalf("no item at service keychain-auth:aws, account prod/key; have %v", f.items)
	}
	if it.label != "keychain-auth:aws/prod/key" || string(it.value) != "v" || string(it.generic) != `{"v":1,"attrs":{"env":"prod"}}` {
		t.Errorf("stored item = %+v", it)
	}
}

func TestLockedKeychainIsBackendLocked(t *testing.T) {
	t.Parallel()
	f := newFakeSec()
	b := newBackend(f, Options{})
	if err := b.Set(t.Context(), "s", []backend.Item{{Target: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	f.locked = true
	if err := b.Ready(t.Context()); !errors.Is(err, backend.ErrLocked) {
		t.Errorf("Ready on a locked keychain = %v, want ErrLocked", err)
	}
	if _, err := b.Get(t.Context(), "s", "t"); !errors.Is(err, backend.ErrLocked) || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get on a locked keychain = %v, want ErrLocked and not ErrNotFound", err)
	}
	if _, err := b.List(t.Context(), "s", "", nil); !errors.Is(err, backend.ErrLocked) {
		t.Errorf("List on a locked keychain = %v, want ErrLocked", err)
	}
	if err := b.Set(t.Context(), "s", []backend.Item{{Target: "t", Value: []byte("w")}}); !errors.Is(err, backend.ErrLocked) {
		t.Errorf("Set on a locked keychain = %v, want ErrLocked", err)
	}
	f.locked = false
	if it, err := b.Get(t.Context(), "s", "t"); err != nil || string(it.Value) != "v" {
		t.Errorf("after unlocking: %q, %v; the failed Set must have changed nothing", it.Value, err)
	}
}

func TestForeignItemUnderOurService(t *testing.T) {
	t.Parallel()
	f := newFakeSec()
	// Made by another tool: no generic attribute.
	f.items[[2]string{"keychain-auth:s", "t"}] = fakeItem{value: []byte("v")}
	b := newBackend(f, Options{})
	items, err := b.List(t.Context(), "s", "", nil)
	if err != nil || len(items) != 1 || items[0].Attributes != nil || string(items[0].Value) != "v" {
		t.Errorf("List = %v, %v", items, err)
	}
	if got := slices.Collect(func(yield func(string) bool) {
		for _, it := range items {
			yield(it.Target)
		}
	}); !slices.Equal(got, []string{"t"}) {
		t.Errorf("targets = %v", got)
	}
}
