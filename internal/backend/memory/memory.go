// Package memory is an in-process Backend for tests: nothing is persisted, and
// a fault can be injected mid-batch to exercise callers' error paths. It copies
// every value in and out, so callers may zero or reuse their buffers.
package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/The-17/keychain-auth/internal/backend"
)

type entry struct {
	value []byte
	attrs map[string]string
}

// Backend is an in-memory secret store. The zero value is not usable; call New.
type Backend struct {
	mu       sync.RWMutex
	services map[string]map[string]entry
	closed   bool

	// Fault injection (see backend.FaultInjector). Guarded by mu.
	fault backend.Fault
}

var (
	_ backend.Backend       = (*Backend)(nil)
	_ backend.FaultInjector = (*Backend)(nil)
)

// New returns an empty store.
func New() *Backend {
	return &Backend{services: make(map[string]map[string]entry)}
}

// InjectFault implements backend.FaultInjector. Each item written or removed
// counts as one primitive mutation; the count carries across calls.
func (b *Backend) InjectFault(afterOps int, err error) {
	b.fault.Arm(afterOps, err)
}

// step accounts for one primitive mutation and returns the injected error when
// this is the one that must fail. Callers hold mu for writing.
func (b *Backend) step() error { return b.fault.Step("memory store") }

func (b *Backend) usable(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store: %s: %w", op, err)
	}
	if b.closed {
		return fmt.Errorf("memory store: %s after Close: %w", op, backend.ErrUnavailable)
	}
	return nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, service, target string) (backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.usable(ctx, "get"); err != nil {
		return backend.Item{}, err
	}
	e, ok := b.services[service][target]
	if !ok {
		return backend.Item{}, fmt.Errorf("memory store: %q in service %q: %w", target, service, backend.ErrNotFound)
	}
	return e.item(target), nil
}

// Set implements backend.Backend. The batch is applied to a copy of the
// service's items, which replaces the original only when every item succeeded.
func (b *Backend) Set(ctx context.Context, service string, items []backend.Item) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(ctx, "set"); err != nil {
		return err
	}
	staged := maps.Clone(b.services[service])
	if staged == nil {
		staged = make(map[string]entry, len(items))
	}
	for _, it := range items {
		if err := b.step(); err != nil {
			return err
		}
		staged[it.Target] = entry{
			value: append([]byte{}, it.Value...),
			attrs: maps.Clone(it.Attributes),
		}
	}
	b.services[service] = staged
	return nil
}

// Delete implements backend.Backend. Absent targets are not mutations and do
// not count towards an injected fault.
func (b *Backend) Delete(ctx context.Context, service string, targets []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.usable(ctx, "delete"); err != nil {
		return err
	}
	current := b.services[service]
	staged := maps.Clone(current)
	for _, t := range targets {
		if _, ok := staged[t]; !ok {
			continue
		}
		if err := b.step(); err != nil {
			return err
		}
		delete(staged, t)
	}
	if len(staged) == 0 {
		delete(b.services, service)
	} else {
		b.services[service] = staged
	}
	return nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, service, prefix string, attrs map[string]string) ([]backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.usable(ctx, "list"); err != nil {
		return nil, err
	}
	var out []backend.Item
	for target, e := range b.services[service] {
		if strings.HasPrefix(target, prefix) && backend.MatchAttrs(e.attrs, attrs) {
			out = append(out, e.item(target))
		}
	}
	slices.SortFunc(out, func(x, y backend.Item) int { return strings.Compare(x.Target, y.Target) })
	return out, nil
}

// Close implements backend.Backend. Later calls fail with ErrUnavailable; a
// second Close is a no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.services = nil
	return nil
}

func (e entry) item(target string) backend.Item {
	return backend.Item{
		Target:     target,
		Value:      append([]byte{}, e.value...),
		Attributes: maps.Clone(e.attrs),
	}
}
