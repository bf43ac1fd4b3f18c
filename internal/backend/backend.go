// Package backend defines the storage interface every secret store implements,
// the errors callers match with errors.Is, and a registry mapping backend names
// ("file", "secret-service", ...) to constructors.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Sentinel errors. Implementations wrap them with %w and add what failed.
var (
	// ErrNotFound: the item does not exist.
	ErrNotFound = errors.New("secret not found")
	// ErrLocked: the store is locked and cannot be unlocked without a user.
	ErrLocked = errors.New("secret store is locked")
	// ErrUnavailable: the store cannot be reached (service gone, file unreadable).
	ErrUnavailable = errors.New("secret store unavailable")
)

// Item is one secret. Value is nil in results that carry no value.
type Item struct {
	Target     string
	Value      []byte
	Attributes map[string]string
}

// Backend is a secret store. Every method is safe for concurrent use.
type Backend interface {
	// Get returns one item, or an error wrapping ErrNotFound.
	Get(ctx context.Context, service, target string) (Item, error)
	// Set upserts items; either all are stored or none is changed.
	Set(ctx context.Context, service string, items []Item) error
	// Delete removes targets; absent targets are ignored. Either all present
	// targets are removed or none is.
	Delete(ctx context.Context, service string, targets []string) error
	// List returns the items of service whose target starts with prefix and
	// whose attributes contain every pair of attrs, with values, sorted by target.
	List(ctx context.Context, service, prefix string, attrs map[string]string) ([]Item, error)
	Close() error
}

// FaultInjector is implemented by backends that can simulate a failure in the
// middle of a batch, so tests can prove that Set and Delete roll back. After
// InjectFault, the backend's next primitive mutation (one item written or
// removed) that follows afterOps successful ones fails with an error wrapping
// err; the fault then disarms itself. Absent targets a Delete skips are not
// mutations, and the count carries across calls. It exists for tests only.
type FaultInjector interface {
	InjectFault(afterOps int, err error)
}

// Options are what a constructor may need. Fields a backend does not use are ignored.
type Options struct {
	// Path is the store file (file backend).
	Path string
	// Passphrase unlocks the file backend. The callee must not retain it past Open.
	Passphrase []byte
	// Key is a raw 32-byte key for the file backend (system mode), used instead
	// of a passphrase.
	Key []byte
	// VersionPath is where the file backend keeps the last version it wrote,
	// outside the store file, to notice a rolled-back file; "" means
	// Path + ".version".
	VersionPath string
	// Create allows the backend to create a new empty store.
	Create bool
	// Logger receives the backend's warnings; nil means slog.Default().
	Logger *slog.Logger
	// DeriveKey, when set, derives the file backend's key from Passphrase
	// instead of the backend doing it in this process. The daemon runs the
	// derivation in a short-lived child process, so that Argon2id's memory
	// (64 MiB by default) is never part of the long-lived daemon.
	DeriveKey func(passphrase, salt []byte, p Argon2id) ([]byte, error)
}

// Argon2id names the parameters of an Argon2id key derivation.
type Argon2id struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
}

// MultiGetter is implemented by backends that fetch many targets in fewer
// round trips than one Get each. Absent targets are left out of the result;
// the order of the result is unspecified.
type MultiGetter interface {
	GetMany(ctx context.Context, service string, targets []string) ([]Item, error)
}

// Readier is implemented by backends that can tell, before the first request,
// whether they can serve (for example, an unlocked keyring exists). The daemon
// calls it at start so that a store that cannot work fails loudly there.
type Readier interface {
	Ready(ctx context.Context) error
}

// OpenFunc constructs a backend.
type OpenFunc func(ctx context.Context, opts Options) (Backend, error)

// Registry maps backend names to constructors. The zero value is ready to use.
type Registry struct {
	mu    sync.Mutex
	funcs map[string]OpenFunc
}

// Register adds name; registering a name twice panics (a programming error).
func (r *Registry) Register(name string, open OpenFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.funcs == nil {
		r.funcs = make(map[string]OpenFunc)
	}
	if _, dup := r.funcs[name]; dup {
		panic("backend: " + name + " registered twice")
	}
	r.funcs[name] = open
}

// Open constructs the backend called name.
func (r *Registry) Open(ctx context.Context, name string, opts Options) (Backend, error) {
	r.mu.Lock()
	open, ok := r.funcs[name]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (available: %v)", name, r.Names())
	}
	return open(ctx, opts)
}

// Names lists registered backends, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MatchAttrs reports whether have contains every pair of want.
func MatchAttrs(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
