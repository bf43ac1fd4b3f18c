package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// Defaults for Options.
const (
	DefaultMaxSize      = 10 << 20
	DefaultKeep         = 5
	DefaultSyncInterval = 100 * time.Millisecond
)

var (
	// ErrUnavailable: a record could not be written. The caller must refuse
	// the access the record describes; the next Log retries by itself.
	ErrUnavailable = errors.New("audit log unavailable")
	// ErrClosed: Log was called after Close.
	ErrClosed = errors.New("audit log closed")
	// ErrInUse: another process (normally another daemon) holds the log.
	ErrInUse = errors.New("audit log is in use by another process")
)

// Options tunes a Log. Zero values mean the defaults.
type Options struct {
	// MaxSize is the size at which the file is rotated (default 10 MiB).
	MaxSize int64
	// Keep is how many rotated files audit.log.1..Keep are kept (default 5).
	Keep int
	// SyncInterval bounds how long a written record may wait for fsync
	// (default 100 ms); records written in between share one fsync.
	SyncInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings: recovery after a failure, a tail mismatch.
	Logger *slog.Logger
}

// file is what Log needs of its open file; tests substitute a failing one.
type file interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
}

type opener func(name string) (file, error)

func openAppend(name string) (file, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fsx.FileMode)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Log appends records to the audit log. It is safe for concurrent use; the
// daemon holds one for its lifetime (the log is locked against a second
// writer) and closes it last.
type Log struct {
	path, statePath string
	opts            Options
	log             *slog.Logger
	openFile        opener
	lock            *flock.Flock
	tail            TailCheck

	// syncMu serialises Sync and Close, so that Close returns only after
	// an fsync in progress has finished. Taken before mu, never after.
	syncMu sync.Mutex

	mu     sync.Mutex
	f      file
	fi     fs.FileInfo // identity of f, to notice the path being replaced
	size   int64
	seq    uint64
	last   string // hash of the last record written
	broken error  // set when f must be reopened before the next write
	closed bool

	// pending holds appended records not yet written (see Append); pseq
	// and plast are the chain's head including them. appended counts
	// Appends; flushed is the count written. gen changes when a failed
	// write drops pending records; lostGen and lostFlushed describe the
	// last such failure, for the tickets issued before it.
	pending     []byte
	pseq        uint64
	plast       string
	appended    uint64
	flushed     uint64
	gen         uint64
	lostGen     uint64
	lostFlushed uint64
	// retired are rotated files whose records still await their fsync,
	// which runs outside the lock so that a rotation does not stall requests.
	retired  []file
	dirDirty bool // a rename or create in the directory awaits its fsync

	syncPending bool
	timer       *time.Timer
}

// Open opens (creating 0600 in a 0700 directory) the log at path for
// appending, continues the chain of the records already there, and checks
// the tail against what the previous daemon recorded when it stopped (see
// TailCheck). Only one process may have a log open.
func Open(path string, opts Options) (*Log, error) {
	return open(path, opts, openAppend)
}

func open(path string, opts Options, openFile opener) (*Log, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := fsx.MkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	lock := flock.New(path+".lock", flock.SetPermissions(fsx.FileMode))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("open audit log: lock %s.lock: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is locked (is another keychain-auth daemon running?)", ErrInUse, path)
	}
	l := &Log{path: path, statePath: statePath(path), opts: opts, log: opts.Logger, openFile: openFile, lock: lock}
	if err := l.start(); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Unlock()
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return l, nil
}

// start opens the file, picks up the chain and records that a daemon is
// now running, so that a crash can be told from a clean stop.
func (l *Log) start() error {
	f, err := l.openFile(l.path)
	if err != nil {
		return err
	}
	l.f = f
	if l.fi, err = f.Stat(); err != nil {
		return err
	}
	if !l.fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", l.path)
	}
	if err := l.inspect(); err != nil {
		return err
	}
	if l.fi, err = f.Stat(); err != nil {
		return err
	}
	l.size = l.fi.Size()
	return l.writeState(false)
}

// TailCheck says what Open found at the end of the existing log; the
// daemon puts it in its daemon_start record.
func (l *Log) TailCheck() TailCheck { return l.tail }

// Last returns the seq and hash of the last record in the chain.
func (l *Log) Last() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.last
}

// Path is the file the log writes to.
func (l *Log) Path() string { return l.path }

// Log writes r as the next record: it assigns Time, Seq, Prev and Hash and
// returns once the line has been handed to the kernel in one write(2); the
// line reaches the disk with the next group fsync, at most SyncInterval
// later. When the record cannot be written it returns an error wrapping
// ErrUnavailable and the next call tries again, reopening the file (and
// re-creating its directory) if needed. Log does not block on ctx: a
// decision that was made must be recorded even while the daemon stops.
func (l *Log) Log(_ context.Context, r Record) error {
	t, err := l.Append(r)
	if err != nil {
		return err
	}
	return l.Flush(t)
}

// Ticket names a record given to Append, for Flush.
type Ticket struct {
	gen, n uint64
}

// maxPending is how many bytes of appended records wait for a Flush before
// Append writes them by itself.
const maxPending = 64 << 10

// Append adds r to the chain as Log does, but may keep its line in memory
// with other appended records until a Flush (of this record or a later one)
// writes them together in one write(2). The caller must Flush the returned
// ticket before it acts on the decision the record describes (before the
// reply goes out); until then the record may still be lost, and Flush says
// so. Records are written in the order they were appended, whoever flushes.
func (l *Log) Append(r Record) (Ticket, error) {
	if len(r.Details) > 0 && !isCompactObject(r.Details) {
		return Ticket{}, fmt.Errorf("audit: %s record: details must be a compact JSON object", r.Event)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Ticket{}, ErrClosed
	}
	if l.broken != nil {
		if err := l.recover(); err != nil {
			return Ticket{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	seq, prev := l.seq, l.last
	if len(l.pending) > 0 {
		seq, prev = l.pseq, l.plast
	}
	r.Time, r.Seq, r.Prev = l.opts.Now(), seq+1, prev
	start := len(l.pending)
	l.pending = r.appendCanonical(l.pending)
	hash := hashOf(l.pending[start:])
	l.pending = append(appendHashMember(l.pending, hash), '\n')
	l.pseq, l.plast = r.Seq, hash
	l.appended++
	t := Ticket{gen: l.gen, n: l.appended}
	if len(l.pending) >= maxPending {
		if err := l.writePending(); err != nil {
			return Ticket{}, err
		}
	}
	l.scheduleSync()
	return t, nil
}

// Flush returns once the record of t has been written, writing the records
// still held if need be, or reports (wrapping ErrUnavailable) that it was
// lost to a failed write and must be treated as never recorded.
func (l *Log) Flush(t Ticket) error {
	if t.n == 0 {
		return fmt.Errorf("%w: no record was appended", ErrUnavailable)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.gen != l.gen {
		// A write failed since t was appended and dropped the records it
		// had not written. Only the last failure is remembered: a ticket
		// older than that is refused rather than guessed about.
		if t.gen == l.lostGen && t.n <= l.lostFlushed {
			return nil
		}
		return fmt.Errorf("%w: the record was lost with a failed write", ErrUnavailable)
	}
	if t.n <= l.flushed {
		return nil
	}
	if l.closed {
		return ErrClosed
	}
	return l.writePending()
}

// writePending writes the appended records in one write(2). On failure they
// are dropped, the chain goes back to the last record written, and their
// tickets are marked lost. Called with mu held.
func (l *Log) writePending() error {
	if len(l.pending) == 0 {
		return nil
	}
	err := l.writeLines(l.pending)
	if err != nil {
		l.lostGen, l.lostFlushed = l.gen, l.flushed
		l.gen++
	} else {
		l.seq, l.last = l.pseq, l.plast
		l.flushed = l.appended
	}
	l.pending = l.pending[:0]
	if cap(l.pending) > 1<<20 {
		l.pending = nil // do not pin a huge buffer
	}
	return err
}

// writeLines appends whole lines to the file, rotating it first if they
// would take it over MaxSize. Called with mu held.
func (l *Log) writeLines(lines []byte) error {
	if l.broken != nil {
		if err := l.recover(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	if l.size > 0 && l.size+int64(len(lines)) > l.opts.MaxSize {
		if err := l.rotate(); err != nil {
			l.fail(err)
			return fmt.Errorf("%w: rotate %s: %v", ErrUnavailable, l.path, err)
		}
	}
	n, err := l.f.Write(lines)
	if err != nil {
		// A partial line would fuse with the next record: take it back.
		if n > 0 && l.f.Truncate(l.size) != nil {
			l.log.Error("cannot remove a partly written audit record; it will be cut off when the file is reopened", "file", l.path)
		}
		l.fail(err)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.size += int64(n)
	return nil
}

// scheduleSync arms the group fsync, which also writes records appended
// and never flushed. Called with mu held.
func (l *Log) scheduleSync() {
	if l.syncPending {
		return
	}
	l.syncPending = true
	if l.timer == nil {
		l.timer = time.AfterFunc(l.opts.SyncInterval, l.syncTick)
	} else {
		l.timer.Reset(l.opts.SyncInterval)
	}
}

// fail marks the file as needing a reopen. Called with mu held.
func (l *Log) fail(err error) {
	if l.broken == nil {
		l.log.Error("audit log cannot be written; requests are refused until it can", "file", l.path, "err", err)
	}
	l.broken = err
}

// recover reopens the log file after a failure. Called with mu held.
func (l *Log) recover() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if err := fsx.MkdirPrivate(filepath.Dir(l.path)); err != nil {
		return err
	}
	f, err := l.openFile(l.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", l.path)
	}
	if err != nil {
		f.Close()
		return err
	}
	size, removed, err := trimIncomplete(l.path, f, fi.Size())
	if err != nil {
		f.Close()
		return err
	}
	if removed > 0 {
		l.log.Warn("removed an incomplete audit record left by a failed write", "file", l.path, "bytes", removed)
	}
	if l.fi != nil && !os.SameFile(l.fi, fi) {
		l.log.Warn("audit log file was replaced or removed while in use; continuing the chain in the new file "+
			"(verify will report the break)", "file", l.path)
	}
	l.log.Info("audit log writable again", "file", l.path, "was", l.broken)
	l.f, l.fi, l.size, l.broken = f, fi, size, nil
	return nil
}

// name is the file of generation i: the live file for 0, else path.i.
func (l *Log) name(i int) string {
	if i == 0 {
		return l.path
	}
	return l.path + "." + strconv.Itoa(i)
}

// rotate shifts path.i to path.i+1 (dropping the oldest), path to path.1
// and starts a new file. The chain goes on: the next record's prev is the
// last hash of the old file. The old file's fsync is left to the next Sync,
// outside the lock; files are closed before they are renamed, as Windows
// requires. Called with mu held.
func (l *Log) rotate() error {
	if len(l.retired) > 0 { // rotated again before the last one was synced
		if err := l.syncRetired(l.retired, false); err != nil {
			l.log.Error("cannot flush a rotated audit log file; its last records may be lost in a crash", "err", err)
		}
		l.retired = nil
	}
	old := l.f
	l.f = nil
	if err := old.Close(); err != nil {
		return err
	}
	l.dirDirty = true
	for i := l.opts.Keep; i >= 1; i-- {
		if err := os.Rename(l.name(i-1), l.name(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// fsync works through any descriptor of the file.
	if r, err := os.OpenFile(l.name(1), os.O_WRONLY, 0); err == nil {
		l.retired = append(l.retired, r)
	} else {
		l.log.Error("cannot reopen the rotated audit log to flush it; its last records may be lost in a crash", "err", err)
	}
	f, err := l.openFile(l.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.fi, l.size = f, fi, 0
	return nil
}

// Sync flushes written records to disk now and checks that the path still
// names the file being written; a removed or replaced file makes the next
// Log reopen it. The daemon need not call it: it runs by itself after each
// write, at most every SyncInterval.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	f, retired, dirDirty := l.f, l.retired, l.dirDirty
	l.retired, l.dirDirty = nil, false
	l.mu.Unlock()
	if err := l.syncRetired(retired, dirDirty); err != nil {
		l.log.Error("cannot flush a rotated audit log file; its last records may be lost in a crash", "err", err)
	}
	if f == nil {
		return nil
	}
	err := f.Sync()
	if err == nil {
		err = l.checkPath(f)
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		l.mu.Lock()
		if l.f == f {
			l.fail(err)
		}
		l.mu.Unlock()
		return err
	}
	return nil
}

// syncRetired flushes and closes rotated files and the directory.
func (l *Log) syncRetired(retired []file, dirDirty bool) error {
	var errs []error
	for _, f := range retired {
		errs = append(errs, f.Sync(), f.Close())
	}
	if dirDirty {
		errs = append(errs, fsx.SyncDir(filepath.Dir(l.path)))
	}
	return errors.Join(errs...)
}

func (l *Log) syncTick() {
	l.mu.Lock()
	l.syncPending = false
	closed := l.closed
	if !closed {
		// Records appended by a caller that never flushed them (its
		// client went away) are written now. A failure is logged by fail.
		l.writePending()
	}
	l.mu.Unlock()
	if !closed {
		l.Sync()
	}
}

// checkPath reports whether the path no longer names f: writes to a file
// that was removed or replaced would be recorded nowhere anyone looks.
func (l *Log) checkPath(f file) error {
	have, err := f.Stat()
	if err != nil {
		return err
	}
	now, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("audit log %s is gone: %w", l.path, err)
	}
	if !os.SameFile(have, now) {
		return fmt.Errorf("audit log %s was replaced while in use", l.path)
	}
	return nil
}

// Close flushes the log, records its last hash in the state file (checked
// by the next Open) and releases the file. The daemon writes its
// daemon_stop record just before.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	pendingErr := l.writePending()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	errs := []error{pendingErr, l.syncRetired(l.retired, l.dirDirty)}
	l.retired = nil
	if l.f != nil {
		errs = append(errs, l.f.Sync(), l.f.Close())
		l.f = nil
	}
	errs = append(errs, l.writeState(true), l.lock.Unlock())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit log %s: %w", l.path, err)
	}
	return nil
}

// statePath is "audit.state" for "audit.log": where the last hash is kept
// between runs.
func statePath(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+".state")
}
