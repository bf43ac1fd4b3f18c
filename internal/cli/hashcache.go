package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

// The hash cache lets `list` show whether each registered file changed
// without reading every file again on every call (large binaries took
// seconds). It holds what the daemon's in-memory cache holds: a hash per
// file key, where the key is the file's device, inode, size, mtime, ctime,
// mount and file handle (with the inode generation). A key that matches
// proves the same, unmodified file, as it does for the daemon: ctime cannot
// be set back by an unprivileged user, and the handle tells a new file that
// got a freed inode number apart. Keys without a handle are never stored.
//
// Only `list` reads it, because what list prints is advice: the daemon
// never reads this file and hashes every image itself, so a forged cache
// could at worst make list say "ok" for a file the daemon then refuses.
// register, upgrade and authorize decide what gets trusted, so they always
// hash the file, and only write their result here.

// maxCachedHashes bounds the file: far more than anyone registers.
const maxCachedHashes = 1024

type cachedHash struct {
	Hash   string `json:"hash"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Size   int64  `json:"size"`
	Mtime  int64  `json:"mtime"`
	Ctime  int64  `json:"ctime"`
	Mount  uint64 `json:"mount"`
	Handle []byte `json:"handle"` // raw bytes, so base64 in JSON
}

// hasher returns an attestor for the command line, showing progress on a
// terminal, and with readCache, seeded from the hash cache. save writes
// what it hashed back to the cache; a cache that cannot be read or written
// only costs time, so neither is an error.
func (a *app) hasher(readCache bool) (h *attest.Attestor, save func()) {
	h = attest.New(attest.Options{CacheEntries: maxCachedHashes, Progress: a.progress()})
	file := ""
	if e, err := a.env(); err == nil {
		file, _ = paths.HashCacheFile(e)
	}
	if file == "" {
		return h, func() {}
	}
	saved := loadHashCache(file)
	if readCache {
		h.Remember(saved...)
	}
	return h, func() {
		known := h.Known()
		// check runs often (clients call it to repair themselves): write
		// only what the file does not hold yet.
		if subset(known, saved) {
			return
		}
		// Keep what earlier runs hashed: a command hashes only some files.
		// Under the file's lock, merged with what is there now, so two
		// commands at once do not drop each other's entries.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if fsx.MkdirPrivate(filepath.Dir(file)) != nil {
			return
		}
		unlock, err := fsx.Lock(ctx, file)
		if err != nil {
			return // a cache that cannot be written only costs time
		}
		defer unlock()
		saveHashCache(file, append(known, loadHashCache(file)...))
	}
}

// subset reports whether every identity in ids is in of.
func subset(ids, of []attest.Identity) bool {
	have := make(map[attest.Identity]bool, len(of))
	for _, id := range of {
		have[id] = true
	}
	for _, id := range ids {
		if id.Key.Handle != "" && !have[id] {
			return false
		}
	}
	return true
}

// maxHashCacheBytes bounds what is read of the cache: maxCachedHashes
// records of a few hundred bytes each.
const maxHashCacheBytes = maxCachedHashes * 1024

func loadHashCache(file string) []attest.Identity {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHashCacheBytes+1))
	if err != nil || len(b) > maxHashCacheBytes {
		return nil
	}
	var recs []cachedHash
	if json.Unmarshal(b, &recs) != nil {
		return nil
	}
	ids := make([]attest.Identity, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, attest.Identity{Hash: r.Hash, Key: attest.Key{Dev: r.Dev, Ino: r.Ino, Size: r.Size,
			Mtime: r.Mtime, Ctime: r.Ctime, Mount: r.Mount, Handle: string(r.Handle)}})
	}
	return ids
}

func saveHashCache(file string, ids []attest.Identity) {
	recs := make([]cachedHash, 0, min(len(ids), maxCachedHashes))
	seen := make(map[attest.Key]bool)
	for _, id := range ids {
		if id.Key.Handle == "" || seen[id.Key] || len(recs) == maxCachedHashes {
			continue
		}
		seen[id.Key] = true
		k := id.Key
		recs = append(recs, cachedHash{Hash: id.Hash, Dev: k.Dev, Ino: k.Ino, Size: k.Size, Mtime: k.Mtime,
			Ctime: k.Ctime, Mount: k.Mount, Handle: []byte(k.Handle)})
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return
	}
	fsx.WriteFile(file, b, fsx.FileMode)
}

// progressMinSize: smaller files hash in well under a second.
const progressMinSize = 64 << 20

// progress returns a progress reporter for large hashes when stderr is a
// terminal, nil otherwise: a pipe or a log gets no carriage returns.
func (a *app) progress() func(done, total int64) {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(done, total int64) {
		if total < progressMinSize {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case done >= total:
			fmt.Fprint(f, "\r\033[K")
		case time.Since(last) >= 100*time.Millisecond:
			last = time.Now()
			fmt.Fprintf(f, "\rhashing: %d%% of %d MiB", done*100/total, total>>20)
		}
	}
}
