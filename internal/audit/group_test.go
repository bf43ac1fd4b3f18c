package audit

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingFile counts write(2)s and fails them while fail is set, after
// writing half, as a disk that fills up mid-write does.
type countingFile struct {
	faultyFile
	writes *atomic.Int64
}

func (f countingFile) Write(p []byte) (int, error) {
	f.writes.Add(1)
	return f.faultyFile.Write(p)
}

func openCounting(t *testing.T, opts Options) (l *Log, path string, writes *atomic.Int64, fail *bool) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "audit.log")
	writes, fail = new(atomic.Int64), new(bool)
	l, err := open(path, opts, func(name string) (file, error) {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		return countingFile{faultyFile{f, fail}, writes}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path, writes, fail
}

func mustAppend(t *testing.T, l *Log, r Record) Ticket {
	t.Helper()
	tk, err := l.Append(r)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// Appended records go out together in one write, in order, in one chain,
// whoever flushes them; a plain Log writes the ones appended before it.
func TestAppendedRecordsShareOneWrite(t *testing.T) {
	t.Parallel()
	l, path, writes, _ := openCounting(t, Options{SyncInterval: time.Hour})
	before := writes.Load()
	var tks []Ticket
	for i := range 5 {
		tks = append(tks, mustAppend(t, l, request(i)))
	}
	if n := writes.Load() - before; n != 0 {
		t.Fatalf("Append wrote %d times before any Flush", n)
	}
	if err := l.Flush(tks[4]); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load() - before; n != 1 {
		t.Fatalf("5 appended records took %d writes, want 1", n)
	}
	for _, tk := range tks[:4] {
		if err := l.Flush(tk); err != nil {
			t.Fatalf("an earlier record's Flush after the group was written: %v", err)
		}
	}
	if n := writes.Load() - before; n != 1 {
		t.Fatalf("Flush of records already written wrote again (%d writes)", n)
	}
	// Another caller's Log writes what was appended before it, first.
	tk := mustAppend(t, l, request(5))
	mustLog(t, l, request(6))
	if err := l.Flush(tk); err != nil {
		t.Fatal(err)
	}
	l.Close()
	mustVerify(t, path, 7)
	for i, e := range readAll(t, path) {
		if e.Record.PID != 100+i {
			t.Fatalf("record %d is request %d: order lost", i, e.Record.PID-100)
		}
	}
}

// A failed write loses the records it carried: their Flush says so (the
// caller must refuse what they describe), records written before stay
// good, and the chain goes on from the last record written.
func TestFailedGroupWriteLosesItsRecordsOnly(t *testing.T) {
	t.Parallel()
	l, path, _, fail := openCounting(t, Options{SyncInterval: time.Hour})
	written := mustAppend(t, l, request(0))
	if err := l.Flush(written); err != nil {
		t.Fatal(err)
	}
	a := mustAppend(t, l, request(1))
	b := mustAppend(t, l, request(2))
	*fail = true
	if err := l.Flush(b); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Flush on a full disk: %v, want ErrUnavailable", err)
	}
	*fail = false
	if err := l.Flush(a); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Flush of a record dropped with the failed write: %v, want ErrUnavailable", err)
	}
	if err := l.Flush(written); err != nil {
		t.Fatalf("Flush of a record written before the failure: %v", err)
	}
	mustLog(t, l, request(3))
	// A second failure must not make the first one's lost records look
	// written.
	c := mustAppend(t, l, request(4))
	*fail = true
	l.Flush(c)
	*fail = false
	mustLog(t, l, request(5))
	if err := l.Flush(a); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after two failures, a record lost in the first: %v, want ErrUnavailable", err)
	}
	if err := l.Flush(Ticket{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Flush of the zero ticket (an Append that failed): %v", err)
	}
	l.Close()
	mustVerify(t, path, 3)
	var got []int
	for _, e := range readAll(t, path) {
		got = append(got, e.Record.PID-100)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 3 || got[2] != 5 {
		t.Fatalf("records on disk %v, want requests [0 3 5]", got)
	}
}

// A record appended by a caller that never flushes (its client went away)
// is still written: by the group fsync, or at Close.
func TestAppendedRecordsAreWrittenWithoutFlush(t *testing.T) {
	t.Parallel()
	l, path, _, _ := openCounting(t, Options{SyncInterval: 5 * time.Millisecond})
	mustAppend(t, l, request(0))
	deadline := time.Now().Add(10 * time.Second)
	for len(readAllLenient(path)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("an appended record was never written by the sync tick")
		}
		time.Sleep(5 * time.Millisecond)
	}

	l2, path2, _, _ := openCounting(t, Options{SyncInterval: time.Hour})
	mustAppend(t, l2, request(1))
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, path2, 1)
}

// A long run of appends without Flush is written in bounded pieces.
func TestPendingRecordsAreBounded(t *testing.T) {
	t.Parallel()
	l, path, writes, _ := openCounting(t, Options{SyncInterval: time.Hour})
	before := writes.Load()
	n := 0
	for writes.Load() == before {
		mustAppend(t, l, request(n))
		n++
		if n > 10000 {
			t.Fatal("10,000 appended records and none written")
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < maxPending {
		t.Fatalf("the first group write: %v, %v", fi, err)
	}
	l.Close()
	mustVerify(t, path, n)
}

func readAllLenient(path string) []Entry {
	var out []Entry
	Read(path, func(e Entry) error {
		if e.Err == nil {
			out = append(out, e)
		}
		return nil
	})
	return out
}

// BenchmarkAppendGrouped is the cost of a record in a pipelined run: Append
// each, with the held records written 64 at a time.
func BenchmarkAppendGrouped(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := request(1)
	i := 0
	for b.Loop() {
		t, err := l.Append(r)
		if err != nil {
			b.Fatal(err)
		}
		if i++; i%64 == 0 {
			if err := l.Flush(t); err != nil {
				b.Fatal(err)
			}
		}
	}
}
