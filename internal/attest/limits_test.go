package attest

import (
	"context"
	"errors"
	"testing"
)

func TestSizeCapRefusesBeforeReading(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{MaxSize: 100})
	a.onHash = func() { t.Error("a file over the cap was read") }
	big, _ := writeRandom(t, dir, "big", 101)
	if _, err := a.Hash(context.Background(), open(t, big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Hash of 101 bytes with a 100-byte cap = %v, want ErrTooLarge", err)
	}
	a.onHash = nil
	ok, data := writeRandom(t, dir, "ok", 100)
	if id, err := a.Hash(context.Background(), open(t, ok)); err != nil || id.Hash != wantHash(data) {
		t.Errorf("Hash at the cap = %+v, %v", id, err)
	}
}

// One uid gets one hashing slot even when more are free, and another uid is
// not held up by it.
func TestOneHashingSlotPerUID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := New(Options{MaxConcurrent: 2})
	entered, release := make(chan string, 3), make(chan struct{})
	waiting := make(chan struct{}, 3)
	a.onWait = func() { waiting <- struct{}{} }

	start := func(name string, uid uint32) chan error {
		p, data := writeRandom(t, dir, name, 1000)
		f := open(t, p)
		done := make(chan error, 1)
		go func() {
			id, err := a.HashFor(context.Background(), f, uid)
			if err == nil && id.Hash != wantHash(data) {
				err = errors.New("wrong hash for " + name)
			}
			done <- err
		}()
		return done
	}
	a.onHash = func() { entered <- "hash"; <-release }
	first := start("a", 1000)
	<-entered
	second := start("b", 1000)
	select {
	case <-waiting:
	case <-entered:
		t.Fatal("a second hash of uid 1000 ran while its first one held the uid's slot")
	}
	other := start("c", 1001)
	select {
	case <-entered:
	case <-waiting:
		t.Fatal("uid 1001 waited for uid 1000's hash although a slot was free")
	}
	close(release)
	for _, done := range []chan error{first, second, other} {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if n := len(a.uidSlots); n != 0 {
		t.Errorf("%d per-uid slots left after every hash ended", n)
	}
}
