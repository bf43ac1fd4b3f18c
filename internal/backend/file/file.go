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
//
// Whole-store integrity: each item's AEAD binds it to its name, but not to
// the rest of the store, so on its own it would let someone drop an item or
// put back an older ciphertext of it. The document therefore carries a
// version counter, raised on every write, and an HMAC (keyed from the store
// key) over that counter, the header and every item; Open refuses a file
// whose MAC does not match with ErrIntegrity. A whole file rolled back to an
// older version still has a valid MAC, so the last version written is also
// kept outside the file, in the version file (Options.VersionPath; the CLI
// puts it in the data directory, away from the store's own directory, so a
// restore or sync of one does not roll back the other). Open refuses a file
// older than that. The version file is written after the store file, with
// fsx's atomic replace, under the store's own lock: a crash between the two
// leaves it one version behind, which is safe, because a newer file cannot be
// made without the key; the reverse order would lock the user out after a
// crash. Open reads the version file before the store file for the same
// reason. A store written before this record existed still opens, unprotected
// until its first write, which adds the record; from then on a copy without
// the record is refused too. What this cannot catch: someone who can write
// both files (in user mode, the user's own malware) rolling back both, or
// removing the version file, which is taken as a store seen for the first
// time (logged as a warning).
package file

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	versionPath string
	log         *slog.Logger

	// writeMu serialises mutations for the whole build-write-swap sequence,
	// while readers keep using the current state under mu until the swap.
	writeMu sync.Mutex
	fault   backend.Fault

	mu     sync.RWMutex
	aead   cipher.AEAD
	macKey []byte
	// counter is the version last read or written; legacy means the file
	// had no integrity record yet.
	counter uint64
	legacy  bool
	// staleVersion: the version file is behind the store file (or belongs
	// to another store) and is brought up to date once Open has the lock.
	staleVersion bool
	items        map[string]map[string]sealed // service -> target -> sealed item
	onDisk       os.FileInfo                  // the file as last read or written
	closed       bool
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
		s, err = create(ctx, opts, params)
	}
	if err != nil {
		return nil, err
	}
	if s.staleVersion {
		s.syncVersion(ctx)
	}
	if s.legacy {
		s.log.Info("file store has no whole-store integrity record yet; it gets one on the next write", "store", s.path)
	}
	return s, nil
}

func versionPath(opts backend.Options) string {
	if opts.VersionPath != "" {
		return opts.VersionPath
	}
	return opts.Path + ".version"
}

func logger(opts backend.Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.Default()
}

// syncVersion records the version of a store file that is newer than the
// version file (a crash after the store was written, or a version file that
// was lost). Failing only weakens rollback detection, so it is logged.
func (s *Store) syncVersion(ctx context.Context) {
	unlockFile, err := fsx.Lock(ctx, s.path)
	if err != nil {
		s.log.Warn("file store: could not record its version", "version_file", s.versionPath, "err", err)
		return
	}
	defer unlockFile()
	// Another daemon may have written newer versions since this store was
	// loaded: the record only ever moves forward.
	id := storeID(s.header)
	known, ok, err := readVersion(s.versionPath)
	if err == nil && ok && known.Store == id && known.Counter >= s.counter {
		s.staleVersion = false
		return
	}
	if err := writeVersion(s.versionPath, versionDoc{Store: id, Counter: s.counter}); err != nil {
		s.log.Warn("file store: could not record its version", "version_file", s.versionPath, "err", err)
	}
	s.staleVersion = false
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
	// Before the store file: a writer replaces the store first and the
	// version file second, so a version read now is never ahead of the store.
	known, haveKnown, err := readVersion(versionPath(opts))
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", path, err)
	}
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
	aead, macKey, err := unlock(doc, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:        path,
		header:      document{Version: doc.Version, KDF: doc.KDF, Check: doc.Check},
		versionPath: versionPath(opts),
		log:         logger(opts),
		aead:        aead,
		macKey:      macKey,
		items:       make(map[string]map[string]sealed),
		onDisk:      fi,
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
	if s.staleVersion, err = s.verifyIntegrity(doc, known, haveKnown); err != nil {
		return nil, err
	}
	if s.staleVersion && haveKnown && known.Store != storeID(s.header) {
		s.log.Warn("file store: the version file belonged to another store; it now records this one",
			"store", path, "version_file", s.versionPath)
	}
	return s, nil
}

// unlock derives the key the document asks for and proves it with the check
// record.
func unlock(doc *document, opts backend.Options) (cipher.AEAD, []byte, error) {
	var key []byte
	switch doc.KDF.Alg {
	case algArgon2id:
		if len(opts.Passphrase) == 0 {
			return nil, nil, storeErr(opts.Path, ErrWrongPassphrase, "this store is unlocked with a passphrase, not a key", nil)
		}
		params, err := doc.KDF.params()
		if err != nil {
			return nil, nil, storeErr(opts.Path, ErrCorrupt, err.Error(), nil)
		}
		key, err = derive(opts, doc.KDF.Salt, params)
		if err != nil {
			return nil, nil, fmt.Errorf("file store %s: %w", opts.Path, err)
		}
	case algRawKey:
		if len(opts.Key) == 0 {
			return nil, nil, storeErr(opts.Path, ErrWrongPassphrase, "this store is unlocked with a key file (system mode), not a passphrase", nil)
		}
		key = append([]byte{}, opts.Key...)
	}
	aead, macKey, err := newKeys(key)
	if err != nil {
		return nil, nil, fmt.Errorf("file store %s: %w", opts.Path, err)
	}
	plain, err := aead.Open(nil, doc.Check.Nonce, doc.Check.Ciphertext, []byte(checkAD))
	if err != nil || string(plain) != checkPlaintext {
		clear(macKey)
		return nil, nil, storeErr(opts.Path, ErrWrongPassphrase, "", nil)
	}
	return aead, macKey, nil
}

// newKeys makes the item cipher and the store MAC key from the store key,
// and zeroes the store key.
func newKeys(key []byte) (cipher.AEAD, []byte, error) {
	defer clear(key)
	macKey, err := deriveMACKey(key)
	if err != nil {
		return nil, nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		clear(macKey)
		return nil, nil, err
	}
	return aead, macKey, nil
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
	// A missing store whose version file records writes was deleted, not
	// never made: creating an empty one in its place would lose every
	// secret without a trace.
	if known, ok, err := readVersion(versionPath(opts)); err != nil {
		return nil, fmt.Errorf("file store %s: %w", path, err)
	} else if ok && known.Counter > 0 {
		return nil, storeErr(path, ErrIntegrity, fmt.Sprintf(
			"the store is missing, but %s records a store at this path written %d times; restore the store from a backup, "+
				"or, to start an empty store on purpose, delete %s first", versionPath(opts), known.Counter, versionPath(opts)), nil)
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
		var err error
		if key, err = derive(opts, salt, params); err != nil {
			return nil, fmt.Errorf("file store %s: %w", path, err)
		}
	}
	aead, macKey, err := newKeys(key)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", path, err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	hdr.Check = &sealed{Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, []byte(checkPlaintext), []byte(checkAD))}

	s := &Store{path: path, header: hdr, versionPath: versionPath(opts), log: logger(opts),
		aead: aead, macKey: macKey, items: make(map[string]map[string]sealed)}
	data, err := s.marshal(s.items, s.counter)
	if err != nil {
		return nil, err
	}
	if err := fsx.WriteFile(path, data, fsx.FileMode); err != nil {
		return nil, fmt.Errorf("file store %s: create: %w: %w", path, backend.ErrUnavailable, err)
	}
	if s.onDisk, err = os.Stat(path); err != nil {
		return nil, fmt.Errorf("file store %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	// A version file left by an earlier store at this path now records
	// this one; until then it would refuse the new store as a rollback.
	if err := writeVersion(s.versionPath, versionDoc{Store: storeID(hdr), Counter: s.counter}); err != nil {
		s.log.Warn("file store: could not record its version", "version_file", s.versionPath, "err", err)
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
	counter := s.counter + 1
	data, err := s.marshal(next, counter)
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
	s.items, s.onDisk, s.counter, s.legacy = next, written, counter, false
	s.mu.Unlock()
	// The store is written; a version file left behind only weakens rollback
	// detection until the next write, so a failure here is not the batch's.
	if err := writeVersion(s.versionPath, versionDoc{Store: storeID(s.header), Counter: counter}); err != nil {
		s.log.Warn("file store: could not record its version; a rollback to the previous version would go unnoticed until the next write",
			"version_file", s.versionPath, "err", err)
	}
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
	clear(s.macKey)
	s.macKey = nil
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

func (s *Store) marshal(items map[string]map[string]sealed, counter uint64) ([]byte, error) {
	doc := s.header
	doc.Integrity = &integrityDoc{Counter: counter, MAC: storeMAC(s.macKey, s.header, counter, items)}
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
