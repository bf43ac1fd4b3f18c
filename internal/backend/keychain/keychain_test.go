package keychain

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
)

func TestStatusErrorMapping(t *testing.T) {
	for _, c := range []struct {
		code int32
		want error // nil: none of the sentinels
	}{
		{errSecItemNotFound, backend.ErrNotFound},
		{errSecAuthFailed, backend.ErrLocked},
		{errSecUserCanceled, backend.ErrLocked},
		{errSecInteractionNotAllowed, backend.ErrLocked},
		{errSecInteractionRequired, backend.ErrLocked},
		{errSecNoSuchKeychain, backend.ErrUnavailable},
		{errSecNotAvailable, backend.ErrUnavailable},
		{errSecNoDefaultKeychain, backend.ErrUnavailable},
		{errSecMissingEntitlement, backend.ErrUnavailable},
		{errSecParam, nil},
		{errSecDuplicateItem, nil},
		{-1, nil},
	} {
		err := statusError("read aws/key", c.code)
		if err == nil {
			t.Errorf("OSStatus %d: no error", c.code)
			continue
		}
		for _, sentinel := range []error{backend.ErrNotFound, backend.ErrLocked, backend.ErrUnavailable} {
			if got := errors.Is(err, sentinel); got != (sentinel == c.want) {
				t.Errorf("OSStatus %d: errors.Is(%v, %v) = %v", c.code, err, sentinel, got)
			}
		}
		if !isStatus(err, c.code) {
			t.Errorf("OSStatus %d: the Status is not kept in %v", c.code, err)
		}
		if !strings.Contains(err.Error(), "read aws/key") {
			t.Errorf("OSStatus %d: message %q does not say what failed", c.code, err)
		}
	}
	if err := statusError("x", errSecSuccess); err != nil {
		t.Errorf("errSecSuccess mapped to %v", err)
	}
	if msg := statusError("x", errSecInteractionNotAllowed).Error(); !strings.Contains(msg, "unlock") {
		t.Errorf("locked message %q says nothing about unlocking", msg)
	}
}

func TestItemQueries(t *testing.T) {
	l := layout{prefix: DefaultPrefix}
	key := l.itemKey("aws", "prod/key")
	want := dict{
		{kSecClass, kSecClassGenericPassword},
		{kSecAttrService, "keychain-auth:aws"},
		{kSecAttrAccount, "prod/key"},
	}
	if !slices.Equal(key, want) {
		t.Errorf("itemKey = %v, want %v", key, want)
	}

	get := l.getQuery("aws", "prod/key")
	if !slices.Equal(get[:3], want) {
		t.Errorf("getQuery does not start with the item key: %v", get)
	}
	for k, v := range map[sym]any{kSecReturnData: true, kSecReturnAttributes: true, kSecMatchLimit: kSecMatchLimitOne} {
		if got, ok := get.lookup(k); !ok || got != v {
			t.Errorf("getQuery[%s] = %v, want %v", k, got, v)
		}
	}

	list := l.listQuery("aws")
	if _, ok := list.lookup(kSecAttrAccount); ok {
		t.Error("listQuery names an account; it must match every item of the service")
	}
	if _, ok := list.lookup(kSecReturnData); ok {
		t.Error("listQuery asks for data with kSecMatchLimitAll, which macOS refuses")
	}
	if v, _ := list.lookup(kSecMatchLimit); v != kSecMatchLimitAll {
		t.Errorf("listQuery match limit = %v", v)
	}
	if v, _ := list.lookup(kSecAttrService); v != "keychain-auth:aws" {
		t.Errorf("listQuery service = %v", v)
	}

	for _, q := range []dict{key, get, list} {
		for _, k := range q.keys() {
			if !slices.Contains(allSyms, k) {
				t.Errorf("%s is used in a query but not resolved at Open", k)
			}
		}
	}
}

func TestAddQuery(t *testing.T) {
	l := layout{prefix: "test:"}
	it := backend.Item{Target: "t1", Value: []byte("s3cr\x00t"), Attributes: map[string]string{"env": "prod", "a": "b"}}
	q, err := l.addQuery("svc", it)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []sym{kSecClass, kSecAttrService, kSecAttrAccount, kSecAttrLabel, kSecAttrGeneric, kSecValueData}
	if !slices.Equal(q.keys(), wantKeys) {
		t.Errorf("addQuery keys = %v, want %v", q.keys(), wantKeys)
	}
	if v, _ := q.lookup(kSecAttrService); v != "test:svc" {
		t.Errorf("service = %v", v)
	}
	if v, _ := q.lookup(kSecValueData); !bytes.Equal(v.([]byte), it.Value) {
		t.Error("kSecValueData is not the value's bytes")
	}
	if v, _ := q.lookup(kSecAttrLabel); v != "test:svc/t1" {
		t.Errorf("label = %v", v)
	}
	g, _ := q.lookup(kSecAttrGeneric)
	if string(g.([]byte)) != `{"v":1,"attrs":{"a":"b","env":"prod"}}` {
		t.Errorf("generic = %s", g)
	}
	attrs, err := decodeAttrs(g.([]byte))
	if err != nil || len(attrs) != 2 || attrs["env"] != "prod" || attrs["a"] != "b" {
		t.Errorf("decodeAttrs = %v, %v", attrs, err)
	}

	// A nil value is stored as empty data, never as a missing value.
	q, _ = l.addQuery("svc", backend.Item{Target: "t"})
	if v, ok := q.lookup(kSecValueData); !ok || v.([]byte) == nil {
		t.Errorf("nil value: kSecValueData = %#v", v)
	}
}

func TestDecodeAttrs(t *testing.T) {
	if a, err := decodeAttrs(nil); a != nil || err != nil {
		t.Errorf("no generic attribute: %v, %v", a, err)
	}
	if a, err := decodeAttrs([]byte(`{"v":1}`)); a != nil || err != nil {
		t.Errorf("no attributes: %v, %v", a, err)
	}
	if _, err := decodeAttrs([]byte("not json")); err == nil {
		t.Error("garbage generic attribute accepted")
	}
	if _, err := decodeAttrs([]byte(`{"v":2,"attrs":{"a":"b"}}`)); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Errorf("future format: %v", err)
	}
}

func TestSortedItems(t *testing.T) {
	got := sortedItems([]backend.Item{{Target: "b"}, {Target: "a"}, {Target: "c"}})
	if got[0].Target != "a" || got[1].Target != "b" || got[2].Target != "c" {
		t.Errorf("sortedItems = %v", got)
	}
}
