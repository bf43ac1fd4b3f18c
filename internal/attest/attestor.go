package attest

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Options tunes an Attestor; zero values pick the defaults.
type Options struct {
	// MaxConcurrent bounds how many files are hashed at once (default 2), so
	// a burst of new binaries cannot take every core and all memory bandwidth.
	MaxConcurrent int
	// CacheEntries bounds how many identities are remembered (default 1024);
	// the least recently used is forgotten first.
	CacheEntries int
	// MaxSize is the largest image hashed (default DefaultMaxSize); a larger
	// one is refused with ErrTooLarge before anything is read.
	MaxSize int64
	// Progress, when set, is called as a hash proceeds, with the bytes read
	// so far and the file's size, from the goroutine that hashes.
	Progress func(done, total int64)
}

// DefaultMaxSize is far above any real program (large browsers and
// toolchains stay under 500 MiB) and low enough that one image cannot hold a
// hashing slot for more than about a second.
const DefaultMaxSize = 1 << 30

// Attestor hashes executable images. It is safe for concurrent use: callers
// asking about the same file version at the same time share one hash.
type Attestor struct {
	sem          chan struct{}
	cacheEntries int
	maxSize      int64
	progress     func(done, total int64)

	// uidSlots gives each uid at most one of the hashing slots, so one
	// user's flood of large distinct images cannot take them all.
	slotMu       sync.Mutex
	uidSlots     map[uint32]*uidSlot
	hits, misses atomic.Uint64

	mu       sync.Mutex
	lru      *list.List // of *entry, most recently used at the front
	byKey    map[Key]*list.Element
	inflight map[Key]*call

	// Test seams: onWait runs when a hash has to wait for a free slot, onHash
	// while a slot is held, before the file is read, onShare when a caller
	// joins a hash another caller is running.
	onWait, onHash, onShare func()
}

type uidSlot struct {
	held chan struct{} // capacity 1
	refs int
}

type entry struct {
	key  Key
	hash string
}

// call is one hash in progress that later callers for the same key wait on.
type call struct {
	done chan struct{}
	hash string
	err  error
}

// New returns an Attestor with an empty cache.
func New(opts Options) *Attestor {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 1024
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	return &Attestor{
		sem:          make(chan struct{}, opts.MaxConcurrent),
		cacheEntries: opts.CacheEntries,
		maxSize:      opts.MaxSize,
		progress:     opts.Progress,
		uidSlots:     make(map[uint32]*uidSlot),
		lru:          list.New(),
		byKey:        make(map[Key]*list.Element),
		inflight:     make(map[Key]*call),
	}
}

// Stats reports cache hits (answers without reading the file: from the cache
// or from a hash another caller was already running) and misses (hashes
// actually started).
func (a *Attestor) Stats() (hits, misses uint64) {
	return a.hits.Load(), a.misses.Load()
}

// Hash returns the identity of the open file f, reading it through f from
// offset 0 without moving its file offset and never reopening it by name: on
// Linux f is /proc/<pid>/exe, the very image the process runs. A file that
// changes while being hashed yields an error wrapping ErrChanged and is not
// cached; one on a filesystem whose content cannot be trusted, an
// UntrustedFSError; one over the size cap, ErrTooLarge. Cancelling ctx (the
// client hung up) stops a hash between two chunks.
func (a *Attestor) Hash(ctx context.Context, f *os.File) (Identity, error) {
	return a.hash(ctx, f, nil)
}

// HashFor is Hash on behalf of uid: a hash it has to run waits for that
// uid's one hashing slot as well as for a shared one.
func (a *Attestor) HashFor(ctx context.Context, f *os.File, uid uint32) (Identity, error) {
	return a.hash(ctx, f, &uid)
}

// Cached returns f's identity when it is in the cache (with every check Hash
// makes before reading), so a caller can set up what a real hash needs, such
// as a watch for its client hanging up, only when one has to run.
func (a *Attestor) Cached(f *os.File) (Identity, bool) {
	key, err := a.checkedKey(f)
	if err != nil || !key.cacheable() {
		return Identity{}, false
	}
	a.mu.Lock()
	h, ok := a.lookup(key)
	a.mu.Unlock()
	return Identity{Hash: h, Key: key}, ok
}

// lookup answers from the cache and counts the hit; the caller holds a.mu.
func (a *Attestor) lookup(key Key) (string, bool) {
	el, ok := a.byKey[key]
	if !ok {
		return "", false
	}
	a.lru.MoveToFront(el)
	a.hits.Add(1)
	return el.Value.(*entry).hash, true
}

// checkedKey is f's key once f passed the checks every hash needs.
func (a *Attestor) checkedKey(f *os.File) (Key, error) {
	key, err := statRegular(f)
	if err != nil {
		return Key{}, err
	}
	if err := checkFilesystem(f); err != nil {
		return Key{}, err
	}
	if key.Size > a.maxSize {
		return Key{}, fmt.Errorf("hash %s: %w: %d bytes, over the limit of %d", f.Name(), ErrTooLarge, key.Size, a.maxSize)
	}
	return key, nil
}

func (a *Attestor) hash(ctx context.Context, f *os.File, uid *uint32) (Identity, error) {
	key, err := a.checkedKey(f)
	if err != nil {
		return Identity{}, err
	}
	if !key.cacheable() {
		a.misses.Add(1)
		h, err := a.compute(ctx, f, key, uid)
		return Identity{Hash: h, Key: key}, err
	}
	for {
		a.mu.Lock()
		if h, ok := a.lookup(key); ok {
			a.mu.Unlock()
			return Identity{Hash: h, Key: key}, nil
		}
		if c, ok := a.inflight[key]; ok {
			a.mu.Unlock()
			if a.onShare != nil {
				a.onShare()
			}
			select {
			case <-c.done:
			case <-ctx.Done():
				return Identity{}, fmt.Errorf("hash %s: %w", f.Name(), ctx.Err())
			}
			if c.err == nil {
				a.hits.Add(1)
				return Identity{Hash: c.hash, Key: key}, nil
			}
			// The caller that ran the hash gave up on its own deadline; that
			// says nothing about this caller, which tries again itself.
			if isContextErr(c.err) && ctx.Err() == nil {
				continue
			}
			return Identity{}, c.err
		}
		c := &call{done: make(chan struct{})}
		a.inflight[key] = c
		a.mu.Unlock()

		a.misses.Add(1)
		c.hash, c.err = a.compute(ctx, f, key, uid)

		a.mu.Lock()
		delete(a.inflight, key)
		if c.err == nil {
			a.store(key, c.hash)
		}
		a.mu.Unlock()
		close(c.done)
		return Identity{Hash: c.hash, Key: key}, c.err
	}
}

// HashPath opens path, following symlinks, and hashes it. It is for the
// command line (register, upgrade, check), where a user names a file; the
// daemon never uses it, because a path can be replaced between the moment a
// process starts and the moment the path is read.
func (a *Attestor) HashPath(ctx context.Context, path string) (Identity, error) {
	// Stat first: opening a FIFO would block until someone writes to it.
	fi, err := os.Stat(path)
	if err != nil {
		return Identity{}, fmt.Errorf("hash binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Identity{}, notRegular(path, fi.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return Identity{}, fmt.Errorf("hash binary: %w", err)
	}
	defer f.Close()
	return a.Hash(ctx, f)
}

// Remember adds identities hashed earlier, such as those a command saved
// from its last run, to the cache. An identity whose key proves nothing
// (no file handle) is ignored: it could describe a later file that got a
// freed inode number.
func (a *Attestor) Remember(ids ...Identity) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if id.Key.cacheable() {
			a.store(id.Key, id.Hash)
		}
	}
}

// Known returns the cached identities, most recently used first.
func (a *Attestor) Known() []Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Identity, 0, a.lru.Len())
	for el := a.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		out = append(out, Identity{Hash: e.hash, Key: e.key})
	}
	return out
}

// store records a hash; the caller holds a.mu.
func (a *Attestor) store(key Key, hash string) {
	if el, ok := a.byKey[key]; ok {
		a.lru.MoveToFront(el)
		return
	}
	a.byKey[key] = a.lru.PushFront(&entry{key: key, hash: hash})
	for a.lru.Len() > a.cacheEntries {
		oldest := a.lru.Back()
		a.lru.Remove(oldest)
		delete(a.byKey, oldest.Value.(*entry).key)
	}
}

// hashChunk is the read size: large enough to amortise the syscall, small
// enough to stay in cache while SHA-256 runs over it.
const hashChunk = 256 << 10

// compute hashes the first key.Size bytes of f under a concurrency slot (and
// uid's slot, when given) and checks that f still has the key it had before.
func (a *Attestor) compute(ctx context.Context, f *os.File, key Key, uid *uint32) (string, error) {
	if uid != nil {
		release, err := a.acquireUID(ctx, *uid)
		if err != nil {
			return "", fmt.Errorf("hash %s: wait for this user's hashing slot: %w", f.Name(), err)
		}
		defer release()
	}
	if err := a.acquire(ctx); err != nil {
		return "", fmt.Errorf("hash %s: wait for a hashing slot: %w", f.Name(), err)
	}
	defer func() { <-a.sem }()
	if a.onHash != nil {
		a.onHash()
	}

	h := sha256.New()
	buf := make([]byte, hashChunk)
	var off int64
	for off < key.Size {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("hash %s: %w", f.Name(), err)
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), key.Size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if a.progress != nil {
			a.progress(off, key.Size)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", f.Name(), err)
		}
	}
	after, err := statRegular(f)
	if err != nil {
		return "", err
	}
	if off != key.Size || after != key {
		return "", fmt.Errorf("hash %s: %w (size %d then %d); try again once nothing is writing to it", f.Name(), ErrChanged, key.Size, after.Size)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return FormatHash(sum), nil
}

// acquireUID takes uid's one hashing slot and returns its release.
func (a *Attestor) acquireUID(ctx context.Context, uid uint32) (func(), error) {
	a.slotMu.Lock()
	s := a.uidSlots[uid]
	if s == nil {
		s = &uidSlot{held: make(chan struct{}, 1)}
		a.uidSlots[uid] = s
	}
	s.refs++
	a.slotMu.Unlock()
	done := func() {
		a.slotMu.Lock()
		if s.refs--; s.refs == 0 {
			delete(a.uidSlots, uid)
		}
		a.slotMu.Unlock()
	}
	select {
	case s.held <- struct{}{}:
	default:
		if a.onWait != nil {
			a.onWait()
		}
		select {
		case s.held <- struct{}{}:
		case <-ctx.Done():
			done()
			return nil, ctx.Err()
		}
	}
	return func() { <-s.held; done() }, nil
}

func (a *Attestor) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	default:
	}
	if a.onWait != nil {
		a.onWait()
	}
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
