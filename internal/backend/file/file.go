// Package file is the encrypted file backend: one JSON document holding items
// sealed with XChaCha20-Poly1305 under a key derived with Argon2id (or given
// raw in system mode), rewritten atomically under a lock on every change.
//
// A Store keeps the sealed items in memory and decrypts only on Get and List.
// Set and Delete build the next document from a copy, write it with
// fsx.WriteFile while holding fsx.Lock, and swap it in only once it is on
// disk, so a batch that fails changes nothing. The Store assumes it is the
// file's only writer (the daemon's socket ensures one daemon per user); if
// another process replaces the file anyway, the next write fails with
// ErrModified instead of silently undoing that process's changes.
package file

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/fsx"
)

// Name is the backend's name in a backend.Registry and in config.json.
const Name = "file"

// Register adds the file backend to r. It uses DefaultKDFParams for new stores.
func Register(r *backend.Registry) {
	r.Register(Name, func(ctx context.Context, opts backend.Options) (backend.Backend, error) {
		s, err := Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// Store is an open file store. Its methods are safe for concurrent use.
type Store struct {
	path   string
	header document // version, kdf and check; Items unused

	// writeMu serialises mutations for the whole build-write-swap sequence,
	// while readers keep using the current state under mu until the swap.
	writeMu sync.Mutex
	fault   backend.Fault

	mu     sync.RWMutex
	aead   cipher.AEAD
	items  map[string]map[string]sealed // service -> target -> sealed item
	onDisk os.FileInfo                  // the file as last read or written
	closed bool
}

var (
	_ backend.Backend       = (*Store)(nil)
	_ backend.FaultInjector = (*Store)(nil)
)

// Open opens the store at opts.Path with DefaultKDFParams for a new store.
func Open(ctx context.Context, opts backend.Options) (*Store, error) {
	return OpenWithParams(ctx, opts, DefaultKDFParams())
}

// OpenWithParams opens the store at opts.Path, unlocking it with
// opts.Passphrase or, when opts.Key is set, with that raw 32-byte key. A
// missing file is created (with params, when unlocking by passphrase) if
// opts.Create is set, else ErrNoStore is returned. An existing file always
// uses the parameters stored in it. Every item is authenticated before Open
// returns, so a damaged file fails here rather than on some later read. Open
// never writes to an existing file. ctx bounds the wait for the file lock; the
// key derivation itself cannot be interrupted. Tests pass cheap params.
func OpenWithParams(ctx context.Context, opts backend.Options, params KDFParams) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("file store: no path given; set the store file path")
	}
	if len(opts.Key) > 0 && len(opts.Passphrase) > 0 {
		return nil, fmt.Errorf("file store %s: both a passphrase and a key were given; use one", opts.Path)
	}
	if len(opts.Key) == 0 && len(opts.Passphrase) == 0 {
		return nil, fmt.Errorf("file store %s: a passphrase is required to unlock it", opts.Path)
	}
	if len(opts.Key) > 0 && len(opts.Key) != keySize {
		return nil, fmt.Errorf("file store %s: the key must be %d bytes, got %d; regenerate the key file", opts.Path, keySize, len(opts.Key))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file store %s: open: %w", opts.Path, err)
	}
	s, err := load(opts)
	if errors.Is(err, ErrNoStore) && opts.Create {
		return create(ctx, opts, params)
	}
	return s, err
}

// Exists reports whether a store file is at path.
func Exists(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("file store %s: %w", path, err)
	case fi.IsDir():
		return false, fmt.Errorf("file store %s: is a directory, not a store file; move it aside", path)
	}
	return true, nil
}

// load reads and unlocks an existing file; it returns ErrNoStore when absent.
func load(opts backend.Options) (*Store, error) {
	path := opts.Path
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, storeErr(path, ErrNoStore, "", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, storeErr(path, ErrCorrupt, "not a regular file", nil)
	}
	if fi.Size() > maxFileSize {
		return nil, storeErr(path, ErrCorrupt, fmt.Sprintf("%d bytes is larger than any store keychain-auth writes", fi.Size()), nil)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	doc, err := parseDocument(data)
	if err != nil {
		return nil, storeErr(path, ErrCorrupt, err.Error(), nil)
	}
	aead, err := unlock(doc, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:   path,
		header: document{Version: doc.Version, KDF: doc.KDF, Check: doc.Check},
		aead:   aead,
		items:  make(map[string]map[string]sealed),
		onDisk: fi,
	}
	for _, it := range doc.Items {
		sl := sealed{Nonce: it.Nonce, Ciphertext: it.Ciphertext}
		if _, err := s.open(it.Service, it.Target, sl); err != nil {
			return nil, err
		}
		if s.items[it.Service] == nil {
			s.items[it.Service] = make(map[string]sealed)
		}
		s.items[it.Service][it.Target] = sl
	}
	return s, nil
}

// unlock derives the key the document asks for and proves it with the check
// record.
func unlock(doc *document, opts backend.Options) (cipher.AEAD, error) {
	var key []byte
	switch doc.KDF.Alg {
	case algArgon2id:
		if len(opts.Passphrase) == 0 {
			return nil, storeErr(opts.Path, ErrWrongPassphrase, "this store is unlocked with a passphrase, not a key", nil)
		}
		params, err := doc.KDF.params()
		if err != nil {
			return nil, storeErr(opts.Path, ErrCorrupt, err.Error(), nil)
		}
		key = deriveKey(opts.Passphrase, doc.KDF.Salt, params)
	case algRawKey:
		if len(opts.Key) == 0 {
			return nil, storeErr(opts.Path, ErrWrongPassphrase, "this store is unlocked with a key file (system mode), not a passphrase", nil)
		}
		key = append([]byte{}, opts.Key...)
	}
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", opts.Path, err)
	}
	plain, err := aead.Open(nil, doc.Check.Nonce, doc.Check.Ciphertext, []byte(checkAD))
	if err != nil || string(plain) != checkPlaintext {
		return nil, storeErr(opts.Path, ErrWrongPassphrase, "", nil)
	}
	return aead, nil
}

// create makes a new, empty store. It holds the file lock and looks again
// under it, so two processes creating the same store at once end up sharing
// the first one's salt rather than overwriting each other.
func create(ctx context.Context, opts backend.Options, params KDFParams) (*Store, error) {
	path := opts.Path
	if len(opts.Key) == 0 {
		if err := params.validate(); err != nil {
			return nil, fmt.Errorf("file store %s: %w", path, err)
		}
	}
	if err := fsx.MkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	unlockFile, err := fsx.Lock(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	defer unlockFile()
	if s, err := load(opts); !errors.Is(err, ErrNoStore) {
		return s, err
	}

	hdr := document{Version: formatVersion}
	var key []byte
	if len(opts.Key) > 0 {
		hdr.KDF = kdfDoc{Alg: algRawKey}
		key = append([]byte{}, opts.Key...)
	} else {
		salt := make([]byte, saltSize)
		rand.Read(salt)
		hdr.KDF = kdfDoc{Alg: algArgon2id, Salt: salt, Time: uint64(params.Time), MemoryKiB: uint64(params.MemoryKiB), Threads: uint64(params.Threads)}
		key = deriveKey(opts.Passphrase, salt, params)
	}
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", path, err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	hdr.Check = &sealed{Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, []byte(checkPlaintext), []byte(checkAD))}

	s := &Store{path: path, header: hdr, aead: aead, items: make(map[string]map[string]sealed)}
	data, err := s.marshal(s.items)
	if err != nil {
		return nil, err
	}
	if err := fsx.WriteFile(path, data, fsx.FileMode); err != nil {
		return nil, fmt.Errorf("file store %s: create: %w: %w", path, backend.ErrUnavailable, err)
	}
	if s.onDisk, err = os.Stat(path); err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	return s, nil
}

// InjectFault implements backend.FaultInjector. Each item a batch adds,
// replaces or removes counts as one primitive mutation; when the fault fires,
// the batch goes on to the write step, which fails with err instead of
// writing, so the test exercises the same path as a real failed write.
func (s *Store) InjectFault(afterOps int, err error) {
	s.fault.Arm(afterOps, err)
}

// step accounts for one primitive mutation. Callers hold writeMu.
func (s *Store) step() error { return s.fault.Step("file store") }

// usable reports why the store cannot serve a call. Callers hold mu or writeMu.
func (s *Store) usable(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file store %s: %s: %w", s.path, op, err)
	}
	if s.closed {
		return storeErr(s.path, ErrClosed, op, nil)
	}
	return nil
}

// Get implements backend.Backend.
func (s *Store) Get(ctx context.Context, service, target string) (backend.Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "get"); err != nil {
		return backend.Item{}, err
	}
	sl, ok := s.items[service][target]
	if !ok {
		return backend.Item{}, fmt.Errorf("file store %s: %q in service %q: %w", s.path, target, service, backend.ErrNotFound)
	}
	return s.open(service, target, sl)
}

// List implements backend.Backend.
func (s *Store) List(ctx context.Context, service, prefix string, attrs map[string]string) ([]backend.Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "list"); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(s.items[service]))
	for target := range s.items[service] {
		if strings.HasPrefix(target, prefix) {
			names = append(names, target)
		}
	}
	slices.Sort(names)
	var out []backend.Item
	for _, target := range names {
		it, err := s.open(service, target, s.items[service][target])
		if err != nil {
			return nil, err
		}
		if !backend.MatchAttrs(it.Attributes, attrs) {
			clear(it.Value)
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// Set implements backend.Backend.
func (s *Store) Set(ctx context.Context, service string, items []backend.Item) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.usable(ctx, "set"); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	// JSON would turn invalid UTF-8 in a name into U+FFFD, and the item
	// would then fail authentication under its altered name on reload.
	if !utf8.ValidString(service) {
		return fmt.Errorf("file store %s: set: service name is not valid UTF-8", s.path)
	}
	for _, it := range items {
		if !utf8.ValidString(it.Target) {
			return fmt.Errorf("file store %s: set: target %q is not valid UTF-8", s.path, it.Target)
		}
	}
	next := maps.Clone(s.items)
	svc := maps.Clone(next[service])
	if svc == nil {
		svc = make(map[string]sealed, len(items))
	}
	var injected error
	for _, it := range items {
		if injected = s.step(); injected != nil {
			break
		}
		svc[it.Target] = s.seal(service, it)
	}
	next[service] = svc
	return s.commit(ctx, "set", next, injected)
}

// Delete implements backend.Backend.
func (s *Store) Delete(ctx context.Context, service string, targets []string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.usable(ctx, "delete"); err != nil {
		return err
	}
	svc := maps.Clone(s.items[service])
	changed := false
	var injected error
	for _, t := range targets {
		if _, ok := svc[t]; !ok {
			continue
		}
		if injected = s.step(); injected != nil {
			break
		}
		delete(svc, t)
		changed = true
	}
	if !changed && injected == nil {
		return nil
	}
	next := maps.Clone(s.items)
	if len(svc) == 0 {
		delete(next, service)
	} else {
		next[service] = svc
	}
	return s.commit(ctx, "delete", next, injected)
}

// commit writes next as the new file and then makes it the current state.
// On any error, including an injected one, neither the file nor the
// in-memory state changes. Callers hold writeMu.
func (s *Store) commit(ctx context.Context, op string, next map[string]map[string]sealed, injected error) error {
	data, err := s.marshal(next)
	if err != nil {
		return err
	}
	unlockFile, err := fsx.Lock(ctx, s.path)
	if err != nil {
		return fmt.Errorf("file store %s: %s: %w: %w", s.path, op, backend.ErrUnavailable, err)
	}
	defer unlockFile()
	cur, err := os.Stat(s.path)
	if err != nil {
		return storeErr(s.path, ErrModified, op+": the file can no longer be read", err)
	}
	if !sameFile(s.onDisk, cur) {
		return storeErr(s.path, ErrModified, op, nil)
	}
	if injected != nil {
		return fmt.Errorf("file store %s: %s: nothing was changed: %w", s.path, op, injected)
	}
	if err := fsx.WriteFile(s.path, data, fsx.FileMode); err != nil {
		return fmt.Errorf("file store %s: %s: nothing was changed: %w: %w", s.path, op, backend.ErrUnavailable, err)
	}
	// The rename is done; if stat fails now, the next write will report
	// ErrModified rather than guess.
	written, _ := os.Stat(s.path)
	s.mu.Lock()
	s.items, s.onDisk = next, written
	s.mu.Unlock()
	return nil
}

// sameFile reports whether the file is still the one this Store last wrote:
// every write renames a new inode into place, so another writer shows up as a
// different inode, and an in-place edit as a different size or mtime.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// Close implements backend.Backend. Later calls fail with ErrClosed; closing
// twice is harmless.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.aead = nil
	s.items = nil
	return nil
}

func (s *Store) seal(service string, it backend.Item) sealed {
	plain := encodePayload(it.Value, it.Attributes)
	defer clear(plain)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	return sealed{Nonce: nonce, Ciphertext: s.aead.Seal(nil, nonce, plain, itemAD(service, it.Target))}
}

func (s *Store) open(service, target string, sl sealed) (backend.Item, error) {
	plain, err := s.aead.Open(nil, sl.Nonce, sl.Ciphertext, itemAD(service, target))
	if err != nil {
		return backend.Item{}, storeErr(s.path, ErrCorrupt, fmt.Sprintf("item %q in service %q fails authentication (tampered, damaged or moved)", target, service), nil)
	}
	defer clear(plain)
	value, attrs, err := decodePayload(plain)
	if err != nil {
		return backend.Item{}, storeErr(s.path, ErrCorrupt, fmt.Sprintf("item %q in service %q", target, service), err)
	}
	return backend.Item{Target: target, Value: value, Attributes: attrs}, nil
}

func (s *Store) marshal(items map[string]map[string]sealed) ([]byte, error) {
	doc := s.header
	doc.Items = make([]itemDoc, 0, len(items))
	for _, service := range slices.Sorted(maps.Keys(items)) {
		for _, target := range slices.Sorted(maps.Keys(items[service])) {
			sl := items[service][target]
			doc.Items = append(doc.Items, itemDoc{Service: service, Target: target, Nonce: sl.Nonce, Ciphertext: sl.Ciphertext})
		}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("file store %s: encode: %w", s.path, err)
	}
	return append(data, '\n'), nil
}
