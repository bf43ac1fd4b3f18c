package peer

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// ErrNotPinned is returned by Execed when PinExec did not succeed.
var ErrNotPinned = errors.New("exec pin unavailable")

// execPin holds the peer's process handle and the image path read through
// it. A Windows process cannot replace its program, and while the handle is
// open the pid cannot name another process; so the handle is the pin.
type execPin struct {
	mu    sync.Mutex
	proc  windows.Handle
	image string
	// started is the process's creation time (FILETIME, 100 ns units).
	started int64
}

func (e *execPin) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != 0 {
		windows.CloseHandle(e.proc)
		e.proc = 0
	}
}

// PinExec has nothing to add to the handle FromConn opened.
func (p *Peer) PinExec() error {
	if p.exec.proc == 0 {
		return ErrNotPinned
	}
	return nil
}

// Execed reports whether the process behind the handle exited, or now
// reports another image than at connect (which Windows never does for a
// live process; the check is cheap and guards the assumption).
func (p *Peer) Execed() (bool, error) {
	p.exec.mu.Lock()
	defer p.exec.mu.Unlock()
	if p.exec.proc == 0 {
		return false, ErrNotPinned
	}
	if err := p.Alive(); err != nil {
		return true, nil
	}
	now, err := imageName(p.exec.proc)
	if err != nil {
		return false, fmt.Errorf("check peer pid %d: %w", p.PID, err)
	}
	return now != p.exec.image, nil
}

// TracedBy reports -1 when a debugger is attached to the peer (its debug
// port, asked through the process handle, is set), or 0. Windows does not
// say which process debugs it; tid is the peer's pid.
func (p *Peer) TracedBy() (tracer, tid int, err error) {
	p.exec.mu.Lock()
	defer p.exec.mu.Unlock()
	if p.exec.proc == 0 {
		return 0, 0, ErrNotPinned
	}
	var port uintptr
	if err := windows.NtQueryInformationProcess(p.exec.proc, windows.ProcessDebugPort, unsafe.Pointer(&port), uint32(unsafe.Sizeof(port)), nil); err != nil {
		return 0, 0, fmt.Errorf("check peer pid %d for a debugger: %w", p.PID, err)
	}
	if err := p.Alive(); err != nil {
		return 0, 0, err
	}
	if port != 0 {
		return -1, p.PID, nil
	}
	return 0, p.PID, nil
}
