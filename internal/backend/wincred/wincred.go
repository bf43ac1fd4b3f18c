// Package wincred stores secrets as Windows Credential Manager generic
// credentials named keychain-auth:<service>/<target>. A value with its
// attributes that does not fit one credential's 2,560-byte blob is split into
// numbered chunk credentials, written and removed as one with rollback.
//
// The store logic is portable and runs over a small vault interface, so that
// it is tested on every OS against a vault that enforces Windows' limits; only
// the vault itself (vault_windows.go) talks to Credential Manager.
package wincred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Name is the backend's name in config.json and on the command line.
const Name = "wincred"

// DefaultNamespace starts the name of every credential the daemon writes.
const DefaultNamespace = "keychain-auth"

// errNoCred is what a vault returns for a credential that does not exist.
var errNoCred = errors.New("no such credential")

// cred is one credential as a vault lists it.
type cred struct {
	name string
	blob []byte
}

// vault is the part of Credential Manager the store uses. Names compare
// without regard to case, as Credential Manager's do.
type vault interface {
	// read returns the blob of name, or an error wrapping errNoCred.
	read(name string) ([]byte, error)
	// write creates or replaces name.
	write(name string, blob []byte) error
	// remove deletes name; an absent name is not an error.
	remove(name string) error
	// list returns the credentials whose names start with prefix (and maybe
	// a few more: callers filter again).
	list(prefix string) ([]cred, error)
}

// Store is a backend.Backend over a vault. Every method is safe for
// concurrent use: mutations are serialised, because a reader that saw an
// item's first chunk must find the rest of the same version.
type Store struct {
	v     vault
	names names
	log   *slog.Logger

	mu     sync.RWMutex
	closed bool
	fault  backend.Fault
}

var (
	_ backend.Backend       = (*Store)(nil)
	_ backend.FaultInjector = (*Store)(nil)
)

func newStore(v vault, namespace string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{v: v, names: names{ns: namespace}, log: log}
}

// InjectFault implements backend.FaultInjector: each item written or removed
// counts as one mutation, whatever its number of chunks.
func (s *Store) InjectFault(afterOps int, err error) { s.fault.Arm(afterOps, err) }

func (s *Store) usable(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("credential manager: %s: %w", op, err)
	}
	if s.closed {
		return fmt.Errorf("credential manager: %s after Close: %w", op, backend.ErrUnavailable)
	}
	return nil
}

// stored is an item as found in the vault: its decoded form and the raw main
// blob, which is what a rollback writes back.
type stored struct {
	item backend.Item
	main []byte
	hdr  mainHeader
}

// load reads the item service/target names, or returns nil when there is
// none. A credential that exists under that name but belongs to another
// service or target (names differing only in case) is reported as other.
func (s *Store) load(service, target string) (st *stored, other string, err error) {
	name := s.names.main(service, target)
	blob, err := s.v.read(name)
	if errors.Is(err, errNoCred) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("credential manager: read %s: %w", name, err)
	}
	return s.assemble(name, blob, service, target)
}

// assemble reads the chunks that follow a main blob and decodes the item.
func (s *Store) assemble(name string, blob []byte, service, target string) (*stored, string, error) {
	h, first, err := parseMain(blob)
	if err != nil {
		return nil, "", fmt.Errorf("credential manager: %s: %w", name, err)
	}
	parts := [][]byte{first}
	for i := 1; i <= h.chunks; i++ {
		cn := s.names.chunk(service, target, h.gen, i)
		b, err := s.v.read(cn)
		if errors.Is(err, errNoCred) {
			return nil, "", fmt.Errorf("credential manager: %s is damaged: its chunk %s is missing; delete the item and write it again", name, cn)
		}
		if err != nil {
			return nil, "", fmt.Errorf("credential manager: read %s: %w", cn, err)
		}
		parts = append(parts, b)
	}
	rec, err := joinRecord(h, parts)
	if err != nil {
		return nil, "", fmt.Errorf("credential manager: %s: %w", name, err)
	}
	svc, it, err := decodeRecord(rec)
	clear(rec)
	if err != nil {
		return nil, "", fmt.Errorf("credential manager: %s: %w", name, err)
	}
	if svc != service || it.Target != target {
		clear(it.Value)
		return nil, svc + "/" + it.Target, nil
	}
	return &stored{item: it, main: blob, hdr: h}, "", nil
}

// Get implements backend.Backend.
func (s *Store) Get(ctx context.Context, service, target string) (backend.Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "get"); err != nil {
		return backend.Item{}, err
	}
	st, _, err := s.load(service, target)
	if err != nil {
		return backend.Item{}, err
	}
	if st == nil {
		return backend.Item{}, fmt.Errorf("credential manager: %q in service %q: %w", target, service, backend.ErrNotFound)
	}
	return st.item, nil
}

// List implements backend.Backend.
func (s *Store) List(ctx context.Context, service, prefix string, attrs map[string]string) ([]backend.Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "list"); err != nil {
		return nil, err
	}
	base := s.names.serviceBase(service)
	creds, err := s.v.list(base + prefix)
	if err != nil {
		return nil, fmt.Errorf("credential manager: list %s*: %w", base+prefix, err)
	}
	var out []backend.Item
	for _, c := range creds {
		target, ok := strings.CutPrefix(c.name, base)
		if !ok || !strings.HasPrefix(target, prefix) {
			continue
		}
		st, other, err := s.assemble(c.name, c.blob, service, target)
		if err != nil {
			return nil, err
		}
		if other != "" {
			continue
		}
		if backend.MatchAttrs(st.item.Attributes, attrs) {
			out = append(out, st.item)
		} else {
			clear(st.item.Value)
		}
	}
	slices.SortFunc(out, func(x, y backend.Item) int { return strings.Compare(x.Target, y.Target) })
	return out, nil
}

// write is one item's new version, staged for Set.
type write struct {
	target string
	old    *stored
	hdr    mainHeader
	main   []byte
	chunks [][]byte
	// wrote counts the chunks written, mainDone whether the main blob was.
	wrote    int
	mainDone bool
}

// Set implements backend.Backend. Each item's chunks are written under a
// fresh generation before its main credential, which is what commits it; the
// previous version's chunks are removed only once the whole batch is in. So
// a failure part-way can put every main credential back as it was, and a
// crash leaves at worst unreferenced chunks, never a torn item.
func (s *Store) Set(ctx context.Context, service string, items []backend.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx, "set"); err != nil {
		return err
	}
	ws := make([]*write, 0, len(items))
	defer func() {
		for _, w := range ws {
			clear(w.main)
			for _, c := range w.chunks {
				clear(c)
			}
			if w.old != nil {
				clear(w.old.main)
				clear(w.old.item.Value)
			}
		}
	}()
	for i, it := range items {
		// Within the batch too: two targets that differ only in case
		// would be one credential, and the first one's chunks orphans.
		for _, prev := range items[:i] {
			if strings.EqualFold(prev.Target, it.Target) {
				return fmt.Errorf("credential manager: cannot store %q and %q in one batch of service %q: Credential Manager names ignore case; rename one of them", prev.Target, it.Target, service)
			}
		}
		old, other, err := s.load(service, it.Target)
		if err != nil {
			return err
		}
		if other != "" {
			return fmt.Errorf("credential manager: cannot store %q in service %q: Credential Manager names ignore case, and the name is taken by %q; rename one of them", it.Target, service, other)
		}
		gen, err := newGen()
		if err != nil {
			return err
		}
		rec, err := encodeRecord(service, it)
		if err != nil {
			return fmt.Errorf("credential manager: %q in service %q: %w", it.Target, service, err)
		}
		hdr, main, chunks, err := splitRecord(gen, rec)
		clear(rec)
		if err != nil {
			return fmt.Errorf("credential manager: %q in service %q: %w", it.Target, service, err)
		}
		ws = append(ws, &write{target: it.Target, old: old, hdr: hdr, main: main, chunks: chunks})
	}
	for _, w := range ws {
		if err := s.apply(service, w); err != nil {
			if rerr := s.rollbackSet(service, ws); rerr != nil {
				return fmt.Errorf("%w; rolling back also failed, so the batch may be half written: %w", err, rerr)
			}
			return err
		}
	}
	for _, w := range ws {
		if w.old != nil {
			s.removeChunks(service, w.target, w.old.hdr)
		}
	}
	return nil
}

func (s *Store) apply(service string, w *write) error {
	if err := s.fault.Step("credential manager"); err != nil {
		return err
	}
	for i, c := range w.chunks {
		name := s.names.chunk(service, w.target, w.hdr.gen, i+1)
		if err := s.v.write(name, c); err != nil {
			return fmt.Errorf("credential manager: write %s: %w", name, err)
		}
		w.wrote = i + 1
	}
	name := s.names.main(service, w.target)
	if err := s.v.write(name, w.main); err != nil {
		return fmt.Errorf("credential manager: write %s: %w", name, err)
	}
	w.mainDone = true
	return nil
}

// rollbackSet puts back each main credential the batch replaced (whose
// chunks are still there) or removes the ones it created, then removes the
// chunks the batch wrote.
func (s *Store) rollbackSet(service string, ws []*write) error {
	var errs []error
	for _, w := range ws {
		if w.mainDone {
			name := s.names.main(service, w.target)
			var err error
			if w.old != nil {
				err = s.v.write(name, w.old.main)
			} else {
				err = s.v.remove(name)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", name, err))
				continue
			}
		}
		for i := 1; i <= w.wrote; i++ {
			name := s.names.chunk(service, w.target, w.hdr.gen, i)
			if err := s.v.remove(name); err != nil {
				s.log.Warn("cannot remove an unused chunk credential", "name", name, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeChunks deletes the chunks of a version no main credential refers to
// any more. A failure only leaves garbage, so it is logged, not returned.
func (s *Store) removeChunks(service, target string, h mainHeader) {
	for i := 1; i <= h.chunks; i++ {
		name := s.names.chunk(service, target, h.gen, i)
		if err := s.v.remove(name); err != nil {
			s.log.Warn("cannot remove an unused chunk credential", "name", name, "err", err)
		}
	}
}

// Delete implements backend.Backend. Main credentials go first, each one
// removed making its item absent; if one fails, those already removed are
// written back (their chunks are still there). Chunks go last.
func (s *Store) Delete(ctx context.Context, service string, targets []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx, "delete"); err != nil {
		return err
	}
	var present []*stored
	defer func() {
		for _, st := range present {
			clear(st.main)
			clear(st.item.Value)
		}
	}()
	for _, t := range targets {
		st, _, err := s.load(service, t)
		if err != nil {
			return err
		}
		if st != nil {
			present = append(present, st)
		}
	}
	for i, st := range present {
		err := s.fault.Step("credential manager")
		if err == nil {
			name := s.names.main(service, st.item.Target)
			if err = s.v.remove(name); err != nil {
				err = fmt.Errorf("credential manager: delete %s: %w", name, err)
			}
		}
		if err != nil {
			var errs []error
			for _, done := range present[:i] {
				name := s.names.main(service, done.item.Target)
				if werr := s.v.write(name, done.main); werr != nil {
					errs = append(errs, fmt.Errorf("restore %s: %w", name, werr))
				}
			}
			if rerr := errors.Join(errs...); rerr != nil {
				return fmt.Errorf("%w; rolling back also failed, so some items are deleted: %w", err, rerr)
			}
			return err
		}
	}
	for _, st := range present {
		s.removeChunks(service, st.item.Target, st.hdr)
	}
	return nil
}

// Close implements backend.Backend. Later calls fail with ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
