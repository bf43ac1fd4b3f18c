package keychain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/The-17/keychain-auth/internal/backend"
)

const (
	coreFoundationPath = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	securityPath       = "/System/Library/Frameworks/Security.framework/Security"

	kCFStringEncodingUTF8 = 0x08000100
)

// cfAPI is the part of CoreFoundation and Security.framework the backend
// calls, resolved once per process.
type cfAPI struct {
	// CoreFoundation functions.
	release, dictCreateMutable, dictSetValue, dictGetValue    uintptr
	stringCreateWithBytes, stringGetLength, stringGetMaxSize  uintptr
	stringGetCString, dataCreate, dataGetLength, dataGetBytes uintptr
	arrayGetCount, arrayGetValueAtIndex, getTypeID            uintptr
	// Type ids, to check what a query returned before using it.
	stringType, dataType, dictType, arrayType uintptr
	// &kCFTypeDictionaryKeyCallBacks and &kCFTypeDictionaryValueCallBacks.
	keyCallBacks, valueCallBacks uintptr
	boolTrue, boolFalse          uintptr
	// Security functions.
	itemAdd, itemCopyMatching, itemUpdate, itemDelete uintptr
	// syms holds the value of every constant in allSyms.
	syms map[sym]uintptr
}

var api struct {
	once sync.Once
	cf   *cfAPI
	err  error
}

func loadAPI() (*cfAPI, error) {
	api.once.Do(func() { api.cf, api.err = resolveAPI() })
	return api.cf, api.err
}

func resolveAPI() (*cfAPI, error) {
	cfh, err := purego.Dlopen(coreFoundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("keychain: load CoreFoundation: %w: %w", err, backend.ErrUnavailable)
	}
	sech, err := purego.Dlopen(securityPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("keychain: load Security.framework: %w: %w", err, backend.ErrUnavailable)
	}
	a := &cfAPI{syms: make(map[sym]uintptr, len(allSyms))}
	var firstErr error
	fn := func(h uintptr, name string) uintptr {
		p, err := purego.Dlsym(h, name)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("keychain: symbol %s: %w: %w", name, err, backend.ErrUnavailable)
		}
		return p
	}
	// A global variable's symbol is its address; a CFTypeRef global holds
	// the object, so read the pointer stored there.
	global := func(h uintptr, name string) uintptr {
		p := fn(h, name)
		if p == 0 {
			return 0
		}
		return **(**uintptr)(unsafe.Pointer(&p))
	}
	a.release = fn(cfh, "CFRelease")
	a.dictCreateMutable = fn(cfh, "CFDictionaryCreateMutable")
	a.dictSetValue = fn(cfh, "CFDictionarySetValue")
	a.dictGetValue = fn(cfh, "CFDictionaryGetValue")
	a.stringCreateWithBytes = fn(cfh, "CFStringCreateWithBytes")
	a.stringGetLength = fn(cfh, "CFStringGetLength")
	a.stringGetMaxSize = fn(cfh, "CFStringGetMaximumSizeForEncoding")
	a.stringGetCString = fn(cfh, "CFStringGetCString")
	a.dataCreate = fn(cfh, "CFDataCreate")
	a.dataGetLength = fn(cfh, "CFDataGetLength")
	a.dataGetBytes = fn(cfh, "CFDataGetBytePtr")
	a.arrayGetCount = fn(cfh, "CFArrayGetCount")
	a.arrayGetValueAtIndex = fn(cfh, "CFArrayGetValueAtIndex")
	a.getTypeID = fn(cfh, "CFGetTypeID")
	a.keyCallBacks = fn(cfh, "kCFTypeDictionaryKeyCallBacks")
	a.valueCallBacks = fn(cfh, "kCFTypeDictionaryValueCallBacks")
	a.boolTrue = global(cfh, "kCFBooleanTrue")
	a.boolFalse = global(cfh, "kCFBooleanFalse")
	a.itemAdd = fn(sech, "SecItemAdd")
	a.itemCopyMatching = fn(sech, "SecItemCopyMatching")
	a.itemUpdate = fn(sech, "SecItemUpdate")
	a.itemDelete = fn(sech, "SecItemDelete")
	for _, s := range allSyms {
		a.syms[s] = global(sech, string(s))
	}
	typeID := func(name string) uintptr {
		p := fn(cfh, name)
		if p == 0 {
			return 0
		}
		r, _, _ := purego.SyscallN(p)
		return r
	}
	a.stringType = typeID("CFStringGetTypeID")
	a.dataType = typeID("CFDataGetTypeID")
	a.dictType = typeID("CFDictionaryGetTypeID")
	a.arrayType = typeID("CFArrayGetTypeID")
	if firstErr != nil {
		return nil, firstErr
	}
	return a, nil
}

// call invokes a C function; CoreFoundation and Security report failure in
// their return values, never through errno. Pointers passed converted to
// uintptr in its arguments stay valid for the call (go:uintptrescapes moves
// them to the heap), as purego.SyscallN's own rule requires.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, args...)
	return r
}

// status calls a Security function that returns OSStatus.
//
//go:uintptrescapes
func status(fn uintptr, args ...uintptr) int32 { return int32(call(fn, args...)) }

// bytesPtr returns a pointer to b's bytes, or to a dummy byte when b is
// empty (CoreFoundation wants a valid pointer even for length 0).
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		var dummy byte
		return unsafe.Pointer(&dummy)
	}
	return unsafe.Pointer(&b[0])
}

func (a *cfAPI) cfString(s string) (uintptr, error) {
	b := []byte(s)
	ref := call(a.stringCreateWithBytes, 0, uintptr(bytesPtr(b)), uintptr(len(b)), kCFStringEncodingUTF8, 0)
	if ref == 0 {
		return 0, fmt.Errorf("keychain: %q is not valid UTF-8; the Keychain stores names as text", s)
	}
	return ref, nil
}

func (a *cfAPI) cfData(b []byte) (uintptr, error) {
	ref := call(a.dataCreate, 0, uintptr(bytesPtr(b)), uintptr(len(b)))
	if ref == 0 {
		return 0, errors.New("keychain: CFDataCreate failed (out of memory)")
	}
	return ref, nil
}

// build makes a CFDictionary from d. The caller releases it.
func (a *cfAPI) build(d dict) (uintptr, error) {
	ref := call(a.dictCreateMutable, 0, uintptr(len(d)), a.keyCallBacks, a.valueCallBacks)
	if ref == 0 {
		return 0, errors.New("keychain: CFDictionaryCreateMutable failed (out of memory)")
	}
	for _, e := range d {
		var v uintptr
		owned := false
		var err error
		switch x := e.Value.(type) {
		case sym:
			v = a.syms[x]
		case string:
			v, err = a.cfString(x)
			owned = true
		case []byte:
			v, err = a.cfData(x)
			owned = true
		case bool:
			v = a.boolFalse
			if x {
				v = a.boolTrue
			}
		default:
			err = fmt.Errorf("keychain: query value of type %T", e.Value)
		}
		if err == nil && v == 0 {
			err = fmt.Errorf("keychain: no value for %s", e.Key)
		}
		if err != nil {
			call(a.release, ref)
			return 0, err
		}
		// The dictionary retains key and value (kCFType callbacks).
		call(a.dictSetValue, ref, a.syms[e.Key], v)
		if owned {
			call(a.release, v)
		}
	}
	return ref, nil
}

func (a *cfAPI) typeOf(ref uintptr) uintptr { return call(a.getTypeID, ref) }

func (a *cfAPI) goString(ref uintptr) (string, bool) {
	if ref == 0 || a.typeOf(ref) != a.stringType {
		return "", false
	}
	n := int(call(a.stringGetLength, ref))
	size := int(call(a.stringGetMaxSize, uintptr(n), kCFStringEncodingUTF8)) + 1
	buf := make([]byte, size)
	if call(a.stringGetCString, ref, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), kCFStringEncodingUTF8)&0xff == 0 {
		return "", false
	}
	for i, c := range buf {
		if c == 0 {
			return string(buf[:i]), true
		}
	}
	return string(buf), true
}

func (a *cfAPI) goBytes(ref uintptr) ([]byte, bool) {
	if ref == 0 || a.typeOf(ref) != a.dataType {
		return nil, false
	}
	n := int(call(a.dataGetLength, ref))
	out := make([]byte, n)
	if n > 0 {
		p := call(a.dataGetBytes, ref)
		copy(out, unsafe.Slice(*(**byte)(unsafe.Pointer(&p)), n))
	}
	return out, true
}

func (a *cfAPI) get(d, key uintptr) uintptr { return call(a.dictGetValue, d, key) }

// copyOne runs SecItemCopyMatching for one item with its data and
// attributes.
func (a *cfAPI) copyOne(q dict) (value, generic []byte, st int32, err error) {
	ref, err := a.build(q)
	if err != nil {
		return nil, nil, 0, err
	}
	defer call(a.release, ref)
	var res uintptr
	if st := status(a.itemCopyMatching, ref, uintptr(unsafe.Pointer(&res))); st != errSecSuccess {
		return nil, nil, st, nil
	}
	defer call(a.release, res)
	if a.typeOf(res) != a.dictType {
		return nil, nil, 0, errors.New("unexpected result type")
	}
	value, ok := a.goBytes(a.get(res, a.syms[kSecValueData]))
	if !ok {
		return nil, nil, 0, errors.New("the item has no data")
	}
	generic, _ = a.goBytes(a.get(res, a.syms[kSecAttrGeneric]))
	return value, generic, errSecSuccess, nil
}

// copyAccounts runs SecItemCopyMatching for every item of a query,
// attributes only, and returns their accounts.
func (a *cfAPI) copyAccounts(q dict) ([]string, int32, error) {
	ref, err := a.build(q)
	if err != nil {
		return nil, 0, err
	}
	defer call(a.release, ref)
	var res uintptr
	if st := status(a.itemCopyMatching, ref, uintptr(unsafe.Pointer(&res))); st != errSecSuccess {
		return nil, st, nil
	}
	defer call(a.release, res)
	var dicts []uintptr
	switch a.typeOf(res) {
	case a.arrayType:
		for i := range int(call(a.arrayGetCount, res)) {
			dicts = append(dicts, call(a.arrayGetValueAtIndex, res, uintptr(i)))
		}
	case a.dictType:
		dicts = []uintptr{res}
	default:
		return nil, 0, errors.New("unexpected result type")
	}
	var out []string
	for _, d := range dicts {
		if account, ok := a.goString(a.get(d, a.syms[kSecAttrAccount])); ok {
			out = append(out, account)
		}
	}
	return out, errSecSuccess, nil
}

func (a *cfAPI) update(key, attrs dict) (int32, error) {
	k, err := a.build(key)
	if err != nil {
		return 0, err
	}
	defer call(a.release, k)
	u, err := a.build(attrs)
	if err != nil {
		return 0, err
	}
	defer call(a.release, u)
	return status(a.itemUpdate, k, u), nil
}

func (a *cfAPI) add(q dict) (int32, error) {
	ref, err := a.build(q)
	if err != nil {
		return 0, err
	}
	defer call(a.release, ref)
	return status(a.itemAdd, ref, 0), nil
}

func (a *cfAPI) delete(key dict) (int32, error) {
	ref, err := a.build(key)
	if err != nil {
		return 0, err
	}
	defer call(a.release, ref)
	return status(a.itemDelete, ref), nil
}

// Register adds the keychain backend to r.
func Register(r *backend.Registry) {
	r.Register(Name, func(ctx context.Context, _ backend.Options) (backend.Backend, error) {
		return Open(ctx, Options{})
	})
}

// Open loads Security.framework. It does not touch the keychain; Ready does.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cf, err := loadAPI()
	if err != nil {
		return nil, err
	}
	return newBackend(cf, opts), nil
}
