package keychain

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// Backend is the macOS Keychain store.
type Backend struct {
	cf     *cfAPI
	layout layout
	fault  backend.Fault

	// mu makes each batch atomic towards the other calls of this daemon:
	// readers never see half of a batch or its rollback.
	mu     sync.RWMutex
	closed bool
}

// Options configure Open.
type Options struct {
	// Prefix replaces DefaultPrefix; tests use their own to stay apart
	// from real items.
	Prefix string
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
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Backend{cf: cf, layout: layout{prefix: opts.Prefix}}, nil
}

// InjectFault implements backend.FaultInjector for the conformance tests.
func (b *Backend) InjectFault(afterOps int, err error) { b.fault.Arm(afterOps, err) }

func (b *Backend) usable(ctx context.Context) error {
	if b.closed {
		return fmt.Errorf("keychain: the backend is closed: %w", backend.ErrUnavailable)
	}
	return ctx.Err()
}

// Ready lists a service nobody uses, which fails when the keychain is
// locked or missing, so the daemon says so at start.
func (b *Backend) Ready(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.usable(ctx); err != nil {
		return err
	}
	_, err := b.accounts("keychain-auth readiness probe")
	return err
}

// read returns one item, value and attributes from the same write.
func (b *Backend) read(service, target string) (backend.Item, error) {
	q, err := b.cf.build(b.layout.getQuery(service, target))
	if err != nil {
		return backend.Item{}, err
	}
	defer call(b.cf.release, q)
	var res uintptr
	if err := statusError("read "+service+"/"+target, status(b.cf.itemCopyMatching, q, uintptr(unsafe.Pointer(&res)))); err != nil {
		return backend.Item{}, err
	}
	defer call(b.cf.release, res)
	if b.cf.typeOf(res) != b.cf.dictType {
		return backend.Item{}, fmt.Errorf("keychain: read %s/%s: unexpected result type", service, target)
	}
	value, ok := b.cf.goBytes(b.cf.get(res, b.cf.syms[kSecValueData]))
	if !ok {
		return backend.Item{}, fmt.Errorf("keychain: read %s/%s: the item has no data", service, target)
	}
	generic, _ := b.cf.goBytes(b.cf.get(res, b.cf.syms[kSecAttrGeneric]))
	attrs, err := decodeAttrs(generic)
	if err != nil {
		return backend.Item{}, fmt.Errorf("%w (item %s/%s)", err, service, target)
	}
	return backend.Item{Target: target, Value: value, Attributes: attrs}, nil
}

// accounts lists the targets of a service.
func (b *Backend) accounts(service string) ([]string, error) {
	q, err := b.cf.build(b.layout.listQuery(service))
	if err != nil {
		return nil, err
	}
	defer call(b.cf.release, q)
	var res uintptr
	err = statusError("list "+service, status(b.cf.itemCopyMatching, q, uintptr(unsafe.Pointer(&res))))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer call(b.cf.release, res)
	var dicts []uintptr
	switch b.cf.typeOf(res) {
	case b.cf.arrayType:
		n := int(call(b.cf.arrayGetCount, res))
		for i := range n {
			dicts = append(dicts, call(b.cf.arrayGetValueAtIndex, res, uintptr(i)))
		}
	case b.cf.dictType:
		dicts = []uintptr{res}
	default:
		return nil, fmt.Errorf("keychain: list %s: unexpected result type", service)
	}
	var out []string
	for _, d := range dicts {
		if account, ok := b.cf.goString(b.cf.get(d, b.cf.syms[kSecAttrAccount])); ok {
			out = append(out, account)
		}
	}
	return out, nil
}

// Get returns one item.
func (b *Backend) Get(ctx context.Context, service, target string) (backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.usable(ctx); err != nil {
		return backend.Item{}, err
	}
	return b.read(service, target)
}

// List returns the items of service whose target starts with prefix and
// whose attributes contain attrs, sorted by target.
func (b *Backend) List(ctx context.Context, service, prefix string, attrs map[string]string) ([]backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	targets, err := b.accounts(service)
	if err != nil {
		return nil, err
	}
	var out []backend.Item
	for _, t := range targets {
		if !strings.HasPrefix(t, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, err := b.read(service, t)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed by another program meanwhile
		}
		if err != nil {
			return nil, err
		}
		if backend.MatchAttrs(it.Attributes, attrs) {
			out = append(out, it)
		}
	}
	return sortedItems(out), nil
}

// write upserts one item: update when it exists, add when it does not.
// A rollback passes faults=false: an injected fault must hit the batch,
// never the restore of it.
func (b *Backend) write(service string, it backend.Item, faults bool) error {
	op := "write " + service + "/" + it.Target
	if faults {
		if err := b.fault.Step("keychain"); err != nil {
			return err
		}
	}
	key, err := b.cf.build(b.layout.itemKey(service, it.Target))
	if err != nil {
		return err
	}
	defer call(b.cf.release, key)
	c, err := b.layout.contents(service, it)
	if err != nil {
		return err
	}
	upd, err := b.cf.build(c)
	if err != nil {
		return err
	}
	defer call(b.cf.release, upd)
	err = statusError(op, status(b.cf.itemUpdate, key, upd))
	if !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	aq, err := b.layout.addQuery(service, it)
	if err != nil {
		return err
	}
	add, err := b.cf.build(aq)
	if err != nil {
		return err
	}
	defer call(b.cf.release, add)
	return statusError(op, status(b.cf.itemAdd, add, 0))
}

// remove deletes one item; faults as for write.
func (b *Backend) remove(service, target string, faults bool) error {
	if faults {
		if err := b.fault.Step("keychain"); err != nil {
			return err
		}
	}
	key, err := b.cf.build(b.layout.itemKey(service, target))
	if err != nil {
		return err
	}
	defer call(b.cf.release, key)
	return statusError("delete "+service+"/"+target, status(b.cf.itemDelete, key))
}

// prior is what a target held before a batch touched it.
type prior struct {
	target string
	item   backend.Item
	exists bool
}

func (b *Backend) snapshot(ctx context.Context, service string, targets []string) ([]prior, error) {
	out := make([]prior, 0, len(targets))
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, err := b.read(service, t)
		switch {
		case errors.Is(err, backend.ErrNotFound):
			out = append(out, prior{target: t})
		case err != nil:
			return nil, err
		default:
			out = append(out, prior{target: t, item: it, exists: true})
		}
	}
	return out, nil
}

// restore puts back what the first n entries of before held.
func (b *Backend) restore(service string, before []prior, cause error) error {
	var failed []string
	for i := len(before) - 1; i >= 0; i-- {
		p := before[i]
		var err error
		if p.exists {
			err = b.write(service, p.item, false)
		} else {
			err = b.remove(service, p.target, false)
			if errors.Is(err, backend.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			failed = append(failed, p.target)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w; rolling back also failed for %s, which may now hold the new value or be missing", cause, strings.Join(failed, ", "))
	}
	return cause
}

// Set upserts items; on any failure it restores what the batch changed.
func (b *Backend) Set(ctx context.Context, service string, items []backend.Item) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(ctx); err != nil {
		return err
	}
	targets := make([]string, len(items))
	for i, it := range items {
		targets[i] = it.Target
	}
	before, err := b.snapshot(ctx, service, targets)
	if err != nil {
		return err
	}
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return b.restore(service, before[:i], err)
		}
		if err := b.write(service, it, true); err != nil {
			return b.restore(service, before[:i+1], err)
		}
	}
	return nil
}

// Delete removes the targets that exist; on any failure it puts back what
// it removed.
func (b *Backend) Delete(ctx context.Context, service string, targets []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(ctx); err != nil {
		return err
	}
	before, err := b.snapshot(ctx, service, targets)
	if err != nil {
		return err
	}
	var removed []prior
	for _, p := range before {
		if !p.exists {
			continue
		}
		if err := ctx.Err(); err != nil {
			return b.restore(service, removed, err)
		}
		err := b.remove(service, p.target, true)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return b.restore(service, removed, err)
		}
		removed = append(removed, p)
	}
	return nil
}

// Close makes later calls fail. The keychain itself needs no closing.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}
