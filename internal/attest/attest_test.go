package attest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func writeRandom(t testing.TB, dir, name string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o700); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func wantHash(data []byte) string { return FormatHash(sha256.Sum256(data)) }

func TestHashIsSHA256OfContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []int{0, 1, hashChunk - 1, hashChunk, 3*hashChunk + 17} {
		p, data := writeRandom(t, dir, "bin", n)
		f := open(t, p)
		// Hash must read from offset 0 and leave the caller's offset alone.
		if _, err := f.Seek(5, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		id, err := New(Options{}).Hash(context.Background(), f)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if id.Hash != wantHash(data) {
			t.Errorf("size %d: Hash = %s, want %s", n, id.Hash, wantHash(data))
		}
		if id.Key.Size != int64(n) || id.Key.Ino == 0 {
			t.Errorf("size %d: Key = %+v, want size %d and an inode", n, id.Key, n)
		}
		if off, _ := f.Seek(0, io.SeekCurrent); off != 5 {
			t.Errorf("size %d: file offset moved to %d", n, off)
		}
		pathID, err := New(Options{}).HashPath(context.Background(), p)
		if err != nil || pathID != id {
			t.Errorf("size %d: HashPath = %+v, %v; want %+v", n, pathID, err, id)
		}
	}
}

func TestSecondHashIsCacheHitAcrossLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, data := writeRandom(t, dir, "tool", 4096)
	// Links are made before the first hash: adding one changes the ctime.
	if err := os.Symlink(p, filepath.Join(dir, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(p, filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	a := New(Options{})
	for _, name := range []string{"tool", "sym", "hard", "tool"} {
		id, err := a.HashPath(context.Background(), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if id.Hash != wantHash(data) {
			t.Errorf("%s: hash %s, want %s", name, id.Hash, wantHash(data))
		}
	}
	if hits, misses := a.Stats(); hits != 3 || misses != 1 {
		t.Errorf("Stats = %d hits, %d misses; want 3 hits, 1 miss (one binary, four paths)", hits, misses)
	}
}

func TestModifiedFileIsRehashed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := writeRandom(t, dir, "tool", 4096)
	a := New(Options{})
	first, err := a.HashPath(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}

	// New content of a new size, same inode.
	longer := make([]byte, 5000)
	rand.Read(longer)
	if err := os.WriteFile(p, longer, 0o700); err != nil {
		t.Fatal(err)
	}
	second, err := a.HashPath(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if second.Hash != wantHash(longer) || second.Key.Ino != first.Key.Ino {
		t.Errorf("after rewrite: %+v, want hash %s on the same inode", second, wantHash(longer))
	}

	// Same size, bytes patched in place, mtime set back: only ctime tells.
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("patched!"), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	copy(longer[100:], "patched!")
	third, err := a.HashPath(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if third.Hash != wantHash(longer) {
		t.Errorf("patched file with restored mtime answered from cache: %s, want %s", third.Hash, wantHash(longer))
	}
	if !third.Key.SameImage(second.Key) || third.Key == second.Key {
		t.Errorf("keys %+v and %+v: want equal but for ctime", second.Key, third.Key)
	}
	if hits, misses := a.Stats(); hits != 0 || misses != 3 {
		t.Errorf("Stats = %d hits, %d misses; want 0, 3", hits, misses)
	}
}

func TestChangedWhileHashingIsNotCached(t *testing.T) {
	t.Parallel()
	p, data := writeRandom(t, t.TempDir(), "tool", 3*hashChunk)
	a := New(Options{})
	a.onHash = func() {
		a.onHash = nil // only the first hash is disturbed
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		w.Write([]byte("appended while hashing"))
		w.Close()
	}
	_, err := a.Hash(context.Background(), open(t, p))
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("Hash of a file modified mid-hash = %v, want ErrChanged", err)
	}
	id, err := a.Hash(context.Background(), open(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if want := wantHash(append(data, "appended while hashing"...)); id.Hash != want {
		t.Errorf("rehash = %s, want %s", id.Hash, want)
	}
	if hits, misses := a.Stats(); hits != 0 || misses != 2 {
		t.Errorf("Stats = %d hits, %d misses; the changed result must not have been cached", hits, misses)
	}
}

func TestConcurrentCallersShareOneHash(t *testing.T) {
	t.Parallel()
	p, data := writeRandom(t, t.TempDir(), "tool", 4096)
	const callers = 8
	a := New(Options{MaxConcurrent: callers})
	entered, release := make(chan struct{}, callers), make(chan struct{})
	shared := make(chan struct{}, callers)
	a.onHash = func() { entered <- struct{}{}; <-release }
	a.onShare = func() { shared <- struct{}{} }

	var wg sync.WaitGroup
	results := make([]Identity, callers)
	errs := make([]error, callers)
	run := func(i int) {
		defer wg.Done()
		f, err := os.Open(p)
		if err != nil {
			errs[i] = err
			return
		}
		defer f.Close()
		results[i], errs[i] = a.Hash(context.Background(), f)
	}
	wg.Add(1)
	go run(0)
	<-entered
	for i := 1; i < callers; i++ {
		wg.Add(1)
		go run(i)
	}
	for range callers - 1 {
		select {
		case <-shared:
		case <-entered:
			t.Fatal("a second hash of the same file started instead of waiting for the first")
		}
	}
	close(release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || results[i].Hash != wantHash(data) {
			t.Errorf("caller %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if hits, misses := a.Stats(); hits != callers-1 || misses != 1 {
		t.Errorf("Stats = %d hits, %d misses; want %d, 1", hits, misses, callers-1)
	}
}

func TestAtMostMaxConcurrentHashes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{MaxConcurrent: 2})
	entered, release := make(chan struct{}, 3), make(chan struct{})
	waiting := make(chan struct{}, 3)
	a.onHash = func() { entered <- struct{}{}; <-release }
	a.onWait = func() { waiting <- struct{}{} }

	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		p, data := writeRandom(t, dir, name, 1000)
		f := open(t, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.Hash(context.Background(), f)
			if err != nil || id.Hash != wantHash(data) {
				t.Errorf("%s: %+v, %v", name, id, err)
			}
		}()
	}
	<-entered
	<-entered

	p, data := writeRandom(t, dir, "c", 1000)
	fc := open(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.Hash(ctx, fc)
		done <- err
	}()
	select {
	case <-waiting:
	case <-entered:
		t.Fatal("a third hash started while two were running with MaxConcurrent 2")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Hash cancelled while waiting for a slot = %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()

	// The cancelled hash left nothing behind: the file hashes normally now.
	id, err := a.Hash(context.Background(), open(t, p))
	if err != nil || id.Hash != wantHash(data) {
		t.Errorf("after cancel: %+v, %v", id, err)
	}
}

func TestWaiterOutlivesCancelledLeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{MaxConcurrent: 1})
	release := make(chan struct{})
	entered, waiting, shared := make(chan struct{}, 4), make(chan struct{}, 4), make(chan struct{}, 4)
	a.onHash = func() { entered <- struct{}{}; <-release }
	a.onWait = func() { waiting <- struct{}{} }
	a.onShare = func() { shared <- struct{}{} }

	blocker, _ := writeRandom(t, dir, "blocker", 10)
	fb := open(t, blocker)
	blockerDone := make(chan struct{})
	go func() {
		defer close(blockerDone)
		if _, err := a.Hash(context.Background(), fb); err != nil {
			t.Errorf("blocker: %v", err)
		}
	}()
	<-entered

	p, data := writeRandom(t, dir, "tool", 1000)
	fl, ff := open(t, p), open(t, p)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := a.Hash(leaderCtx, fl)
		leaderErr <- err
	}()
	select {
	case <-waiting:
	case <-entered:
		t.Fatal("a second hash started while the only slot was held")
	}
	type result struct {
		id  Identity
		err error
	}
	follower := make(chan result, 1)
	go func() {
		id, err := a.Hash(context.Background(), ff)
		follower <- result{id, err}
	}()
	select {
	case <-shared:
	case <-waiting:
		t.Fatal("the second caller for the same file did not join the running hash")
	}
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader = %v, want context.Canceled", err)
	}
	select {
	case <-waiting: // the follower now waits for the slot itself
	case r := <-follower:
		t.Fatalf("follower returned %+v, %v when the caller it joined was cancelled; want it to retry", r.id, r.err)
	}
	close(release)
	if r := <-follower; r.err != nil || r.id.Hash != wantHash(data) {
		t.Errorf("follower got %+v, %v; want hash %s", r.id, r.err, wantHash(data))
	}
	<-blockerDone
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{CacheEntries: 2})
	var paths []string
	for _, name := range []string{"a", "b", "c"} {
		p, _ := writeRandom(t, dir, name, 100)
		paths = append(paths, p)
	}
	hash := func(p string) {
		if _, err := a.HashPath(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	hash(paths[0])
	hash(paths[1])
	hash(paths[0]) // a is now more recent than b
	hash(paths[2]) // evicts b
	if hits, misses := a.Stats(); hits != 1 || misses != 3 {
		t.Fatalf("Stats = %d, %d; want 1, 3", hits, misses)
	}
	hash(paths[0])
	hash(paths[2])
	hash(paths[1])
	if hits, misses := a.Stats(); hits != 3 || misses != 4 {
		t.Errorf("Stats = %d, %d; want 3 hits, 4 misses (only b was evicted)", hits, misses)
	}
}

func TestHashPathRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{})
	if _, err := a.HashPath(context.Background(), dir); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("HashPath(dir) = %v, want ErrNotRegular naming a directory", err)
	}
	if _, err := a.HashPath(context.Background(), filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HashPath(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := a.Hash(context.Background(), open(t, dir)); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Hash(open dir) = %v, want ErrNotRegular", err)
	}
}

func TestStatKeyMatchesKeyOf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := writeRandom(t, dir, "tool", 10)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	byFile, err := KeyOf(open(t, p))
	if err != nil {
		t.Fatal(err)
	}
	byPath, err := StatKey(link)
	if err != nil {
		t.Fatal(err)
	}
	if !byFile.SameImage(byPath) || byFile.Ctime != byPath.Ctime {
		t.Errorf("StatKey through a symlink = %+v, KeyOf = %+v", byPath, byFile)
	}
}

func TestSameImage(t *testing.T) {
	t.Parallel()
	k := Key{Dev: 1, Ino: 2, Size: 3, Mtime: 4, Ctime: 5}
	tests := []struct {
		o    Key
		want bool
	}{
		{k, true},
		{Key{Dev: 1, Ino: 2, Size: 3, Mtime: 4, Ctime: 99}, true},
		{Key{Dev: 9, Ino: 2, Size: 3, Mtime: 4, Ctime: 5}, false},
		{Key{Dev: 1, Ino: 9, Size: 3, Mtime: 4, Ctime: 5}, false},
		{Key{Dev: 1, Ino: 2, Size: 9, Mtime: 4, Ctime: 5}, false},
		{Key{Dev: 1, Ino: 2, Size: 3, Mtime: 9, Ctime: 5}, false},
	}
	for _, tt := range tests {
		if got := k.SameImage(tt.o); got != tt.want {
			t.Errorf("SameImage(%+v) = %v, want %v", tt.o, got, tt.want)
		}
	}
}

func TestFormatHash(t *testing.T) {
	t.Parallel()
	got := FormatHash(sha256.Sum256([]byte("test")))
	if want := "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; got != want {
		t.Errorf("FormatHash = %q, want %q", got, want)
	}
}

// Identities saved by an earlier run answer later ones without a read,
// but only when their key proves the file (a file handle); progress is
// reported up to the file's size.
func TestRememberedIdentitiesAndProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, data := writeRandom(t, dir, "tool", 3*hashChunk)
	var last, total int64
	first := New(Options{Progress: func(d, n int64) { last, total = d, n }})
	id, err := first.HashPath(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || total != int64(len(data)) {
		t.Errorf("progress ended at %d of %d, want %d of %d", last, total, len(data), len(data))
	}
	if !id.Key.cacheable() {
		if os.Getenv("CI") == "true" && runtime.GOOS == "linux" {
			t.Fatal("no file handle for a file in TMPDIR: CI's Linux filesystems (tmpfs, ext4) give them")
		}
		t.Skip("SKIPPING: this filesystem gives no file handles, so no identity can be remembered (TMPDIR on another filesystem tests it)")
	}
	known := first.Known()
	if len(known) != 1 || known[0] != id {
		t.Fatalf("Known = %+v, want [%+v]", known, id)
	}
	next := New(Options{})
	unproven := id
	unproven.Key.Handle = ""
	next.Remember(unproven)
	if len(next.Known()) != 0 {
		t.Fatal("an identity without a file handle was remembered")
	}
	forged := id
	forged.Hash = wantHash(nil)
	next.Remember(forged)
	got, err := next.HashPath(context.Background(), p)
	if err != nil || got.Hash != forged.Hash {
		t.Fatalf("HashPath after Remember = %s, %v; want the remembered hash, without reading the file", got.Hash, err)
	}
}
