package backend

import (
	"fmt"
	"sync"
)

// Fault is the one-shot counter behind FaultInjector, shared by the backends
// so that every store fails its tests' injected faults the same way. The zero
// value is disarmed; it is safe for concurrent use.
type Fault struct {
	mu    sync.Mutex
	armed bool
	after int
	err   error
}

// Arm makes the mutation after afterOps successful ones fail with err.
func (f *Fault) Arm(afterOps int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.after, f.err = true, afterOps, err
}

// Step accounts for one primitive mutation and returns the injected error,
// prefixed with who failed, when this is the one that must fail.
func (f *Fault) Step(who string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed {
		return nil
	}
	if f.after > 0 {
		f.after--
		return nil
	}
	f.armed = false
	return fmt.Errorf("%s: injected fault: %w", who, f.err)
}
