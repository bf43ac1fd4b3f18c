package keychain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/The-17/keychain-auth/internal/backend"
)

// secAPI is the four SecItem calls, taking queries as data. The darwin
// implementation builds CoreFoundation dictionaries and calls
// Security.framework; tests on every OS use an interpreter of the same
// dictionaries. st is the OSStatus; err is set only when the call could not
// be made at all (a name that is not UTF-8, out of memory).
type secAPI interface {
	// copyOne is SecItemCopyMatching with kSecMatchLimitOne, returning the
	// item's data and its kSecAttrGeneric.
	copyOne(q dict) (value, generic []byte, st int32, err error)
	// copyAccounts is SecItemCopyMatching with kSecMatchLimitAll and
	// kSecReturnAttributes, returning each item's account.
	copyAccounts(q dict) (accounts []string, st int32, err error)
	update(key, attrs dict) (st int32, err error)
	add(q dict) (st int32, err error)
	delete(key dict) (st int32, err error)
}

// Backend is the macOS Keychain store.
type Backend struct {
	api    secAPI
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

func newBackend(api secAPI, opts Options) *Backend {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Backend{api: api, layout: layout{prefix: opts.Prefix}}
}

// result turns a call's outcome into the backend's error.
func result(op string, st int32, err error) error {
	if err != nil {
		return fmt.Errorf("keychain: %s: %w", op, err)
	}
	return statusError(op, st)
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
	op := "read " + service + "/" + target
	value, generic, st, err := b.api.copyOne(b.layout.getQuery(service, target))
	if err := result(op, st, err); err != nil {
		return backend.Item{}, err
	}
	attrs, err := decodeAttrs(generic)
	if err != nil {
		return backend.Item{}, fmt.Errorf("%w (item %s/%s)", err, service, target)
	}
	return backend.Item{Target: target, Value: value, Attributes: attrs}, nil
}

// accounts lists the targets of a service.
func (b *Backend) accounts(service string) ([]string, error) {
	accounts, st, err := b.api.copyAccounts(b.layout.listQuery(service))
	err = result("list "+service, st, err)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil
	}
	return accounts, err
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
	c, err := b.layout.contents(service, it)
	if err != nil {
		return err
	}
	st, err := b.api.update(b.layout.itemKey(service, it.Target), c)
	if err := result(op, st, err); !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	q, err := b.layout.addQuery(service, it)
	if err != nil {
		return err
	}
	st, err = b.api.add(q)
	return result(op, st, err)
}

// remove deletes one item; faults as for write.
func (b *Backend) remove(service, target string, faults bool) error {
	if faults {
		if err := b.fault.Step("keychain"); err != nil {
			return err
		}
	}
	st, err := b.api.delete(b.layout.itemKey(service, target))
	return result("delete "+service+"/"+target, st, err)
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

// restore puts back what before held, newest change first.
func (b *Backend) restore(service string, before []prior, cause error) error {
	var failed []string
	for i := len(before) - 1; i >= 0; i-- {
		p := before[i]
		var err error
		if p.exists {
			err = b.write(service, p.item, false)
		} else if err = b.remove(service, p.target, false); errors.Is(err, backend.ErrNotFound) {
			err = nil
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
