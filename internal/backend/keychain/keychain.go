// Package keychain stores secrets as macOS Keychain generic passwords,
// calling Security.framework through purego (no cgo, and never the
// security(1) tool, whose argv would expose values). Each item has service
// "keychain-auth:<service>", account = target, and the user's attributes
// as JSON in its generic-attribute field.
//
// The query layout and the OSStatus mapping are plain data, built and
// tested on every OS; keychain_darwin.go turns them into CoreFoundation
// objects and calls SecItemAdd/CopyMatching/Update/Delete.
package keychain

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Name is the backend's name in a backend.Registry and in config.json.
const Name = "keychain"

// DefaultPrefix is put before the request's service to form the Keychain
// service, so keychain-auth's items are recognisable in Keychain Access
// and never collide with other programs' items.
const DefaultPrefix = "keychain-auth:"

// sym names a CoreFoundation or Security constant by its exported symbol
// (a CFStringRef or CFBooleanRef global), resolved at run time.
type sym string

// entry is one key/value pair of a CFDictionary. Key is a symbol; Value is
// a sym, a string (CFString), a []byte (CFData) or a bool (CFBoolean).
type entry struct {
	Key   sym
	Value any
}

// dict is a CFDictionary as data, in the order the pairs are set.
type dict []entry

// Symbols used in queries.
const (
	kSecClass                = sym("kSecClass")
	kSecClassGenericPassword = sym("kSecClassGenericPassword")
	kSecAttrService          = sym("kSecAttrService")
	kSecAttrAccount          = sym("kSecAttrAccount")
	kSecAttrLabel            = sym("kSecAttrLabel")
	kSecAttrGeneric          = sym("kSecAttrGeneric")
	kSecValueData            = sym("kSecValueData")
	kSecReturnData           = sym("kSecReturnData")
	kSecReturnAttributes     = sym("kSecReturnAttributes")
	kSecMatchLimit           = sym("kSecMatchLimit")
	kSecMatchLimitOne        = sym("kSecMatchLimitOne")
	kSecMatchLimitAll        = sym("kSecMatchLimitAll")
)

// allSyms is every symbol a query may use; the darwin side resolves each
// once at Open, so a missing one fails there, not mid-batch.
var allSyms = []sym{
	kSecClass, kSecClassGenericPassword, kSecAttrService, kSecAttrAccount,
	kSecAttrLabel, kSecAttrGeneric, kSecValueData, kSecReturnData,
	kSecReturnAttributes, kSecMatchLimit, kSecMatchLimitOne, kSecMatchLimitAll,
}

// layout builds the queries for one Keychain service prefix.
type layout struct{ prefix string }

func (l layout) service(service string) string { return l.prefix + service }

// itemKey selects exactly one item: generic password, service, account.
func (l layout) itemKey(service, target string) dict {
	return dict{
		{kSecClass, kSecClassGenericPassword},
		{kSecAttrService, l.service(service)},
		{kSecAttrAccount, target},
	}
}

// getQuery reads one item: its value and its attributes in one call, so
// they always come from the same write.
func (l layout) getQuery(service, target string) dict {
	return append(l.itemKey(service, target),
		entry{kSecReturnData, true},
		entry{kSecReturnAttributes, true},
		entry{kSecMatchLimit, kSecMatchLimitOne})
}

// listQuery finds every item of a service, attributes only: macOS refuses
// kSecReturnData together with kSecMatchLimitAll for generic passwords, so
// values are read one item at a time.
func (l layout) listQuery(service string) dict {
	return dict{
		{kSecClass, kSecClassGenericPassword},
		{kSecAttrService, l.service(service)},
		{kSecReturnAttributes, true},
		{kSecMatchLimit, kSecMatchLimitAll},
	}
}

// contents is what a write sets on an item besides its key.
func (l layout) contents(service string, it backend.Item) (dict, error) {
	generic, err := encodeAttrs(it.Attributes)
	if err != nil {
		return nil, err
	}
	value := it.Value
	if value == nil {
		value = []byte{}
	}
	return dict{
		{kSecAttrLabel, l.service(service) + "/" + it.Target},
		{kSecAttrGeneric, generic},
		{kSecValueData, value},
	}, nil
}

// addQuery creates an item.
func (l layout) addQuery(service string, it backend.Item) (dict, error) {
	c, err := l.contents(service, it)
	if err != nil {
		return nil, err
	}
	return append(l.itemKey(service, it.Target), c...), nil
}

// genericVersion tags the JSON kept in kSecAttrGeneric, so a later format
// can tell it apart.
const genericVersion = 1

type genericAttrs struct {
	V     int               `json:"v"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// encodeAttrs serialises the user's attributes for kSecAttrGeneric. JSON
// sorts map keys, so equal maps give equal bytes.
func encodeAttrs(attrs map[string]string) ([]byte, error) {
	b, err := json.Marshal(genericAttrs{V: genericVersion, Attrs: attrs})
	if err != nil {
		return nil, fmt.Errorf("keychain: encode attributes: %w", err)
	}
	return b, nil
}

// decodeAttrs reads kSecAttrGeneric back. An item without one (created by
// another tool under our service name) has no attributes.
func decodeAttrs(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var g genericAttrs
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("keychain: the item's generic attribute is not keychain-auth's attribute record: %w", err)
	}
	if g.V != genericVersion {
		return nil, fmt.Errorf("keychain: the item's attributes are in format %d; this keychain-auth reads format %d, upgrade it", g.V, genericVersion)
	}
	if len(g.Attrs) == 0 {
		return nil, nil
	}
	return g.Attrs, nil
}

// keys lists a dict's keys in order, for tests and error messages.
func (d dict) keys() []sym {
	out := make([]sym, len(d))
	for i, e := range d {
		out[i] = e.Key
	}
	return out
}

// lookup returns the value set for key.
func (d dict) lookup(key sym) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// sortedItems orders a listing by target, as backend.Backend requires.
func sortedItems(items []backend.Item) []backend.Item {
	slices.SortFunc(items, func(a, b backend.Item) int {
		switch {
		case a.Target < b.Target:
			return -1
		case a.Target > b.Target:
			return 1
		}
		return 0
	})
	return items
}
