package config

import (
	"sync"
	"time"
)

const (
	// limiterInterval is how often one hash may be written to pending.json.
	limiterInterval = time.Second
	// limiterMaxHashes bounds the limiter's memory. A flood of more distinct
	// binaries than this within one interval is not recorded past the bound;
	// the disk is protected first.
	limiterMaxHashes = 4096
)

// PendingLimiter keeps a binary that retries in a loop from rewriting
// pending.json more than once a second. It lives in the daemon's memory; the
// zero value is ready to use and it is safe for concurrent use.
type PendingLimiter struct {
	mu        sync.Mutex
	slots     map[string]limiterSlot
	lastSweep time.Time
}

type limiterSlot struct {
	admitted   time.Time
	suppressed int
	// lastSuppressed is when the latest suppressed attempt was seen.
	lastSuppressed time.Time
	// flushClaimed: a caller has taken on writing the suppressed attempts
	// at the end of the interval (see ClaimFlush).
	flushClaimed bool
}

// Admit reports whether a record for hash may be written at now (at most
// once per second per hash) and returns how many attempts it stands for: this one
// plus those refused since the last admitted one. Passed as
// PendingRecord.Count, it keeps the stored count close to the real number of
// attempts while the writes are throttled.
func (l *PendingLimiter) Admit(hash string, now time.Time) (attempts int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slots == nil {
		l.slots = make(map[string]limiterSlot)
	}
	s, seen := l.slots[hash]
	if seen && within(now, s.admitted) {
		s.suppressed++
		s.lastSuppressed = now
		l.slots[hash] = s
		return 0, false
	}
	if !seen && len(l.slots) >= limiterMaxHashes {
		// Sweeping is O(n); doing it at most once per interval keeps a flood
		// from turning every call into a full scan.
		if !within(now, l.lastSweep) {
			for h, s := range l.slots {
				if !within(now, s.admitted) && !s.flushClaimed {
					delete(l.slots, h)
				}
			}
			l.lastSweep = now
		}
		if len(l.slots) >= limiterMaxHashes {
			return 0, false
		}
	}
	l.slots[hash] = limiterSlot{admitted: now}
	return s.suppressed + 1, true
}

// within reports whether now falls in the interval starting at t. A clock
// that stepped backwards ends the interval, rather than silencing a hash
// until the clock catches up.
func within(now, t time.Time) bool {
	d := now.Sub(t)
	return d >= 0 && d < limiterInterval
}

// ClaimFlush is called after Admit refused hash. Its suppressed attempts
// must reach pending.json within about a second even if the binary never
// tries again, so exactly one refused caller per interval is told to call
// Flush at the returned time, the end of the interval; the others get false.
func (l *PendingLimiter) ClaimFlush(hash string) (at time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, seen := l.slots[hash]
	if !seen || s.suppressed == 0 || s.flushClaimed {
		return time.Time{}, false
	}
	s.flushClaimed = true
	l.slots[hash] = s
	return s.admitted.Add(limiterInterval), true
}

// Flush returns how many attempts were suppressed since the last write of
// hash, and when the latest of them was seen, and starts a new interval at
// now as if they had been written then. It returns 0 when an admitted
// write has already carried them.
func (l *PendingLimiter) Flush(hash string, now time.Time) (attempts int, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, seen := l.slots[hash]
	if !seen {
		return 0, time.Time{}
	}
	if s.suppressed == 0 {
		s.flushClaimed = false
		l.slots[hash] = s
		return 0, time.Time{}
	}
	l.slots[hash] = limiterSlot{admitted: now}
	return s.suppressed, s.lastSuppressed
}
