package pipe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

const bufSize = 64 << 10

// Addr is a pipe's name as a net.Addr.
type Addr string

func (a Addr) Network() string { return "pipe" }
func (a Addr) String() string  { return string(a) }

// Conn is one end of a connected pipe instance.
type Conn struct {
	*os.File
	name   string
	handle windows.Handle
	// connected is when the server saw the client connect (zero on the
	// client's side).
	connected time.Time
}

var _ net.Conn = (*Conn)(nil)

// PipeHandle is the instance's handle, for GetNamedPipeClientProcessId and
// friends. It is valid until Close.
func (c *Conn) PipeHandle() uintptr { return uintptr(c.handle) }

// ConnectedAt is when the client was seen connected: any process created
// later cannot be that client, however its pid was reused.
func (c *Conn) ConnectedAt() time.Time { return c.connected }

func (c *Conn) LocalAddr() net.Addr  { return Addr(c.name) }
func (c *Conn) RemoteAddr() net.Addr { return Addr(c.name) }

// Listener accepts connections on a pipe name. One instance is always
// waiting, so a client never finds the name missing while the daemon runs;
// a client that arrives while it is taken retries (see Dial).
type Listener struct {
	name    string
	sa      *windows.SecurityAttributes
	closed  windows.Handle // event set by Close, closed once no Accept waits on it
	mu      sync.Mutex
	pending windows.Handle // the instance waiting for a client
	done    bool
	// accepting counts the Accept calls that may wait on closed.
	accepting sync.WaitGroup
}

var _ net.Listener = (*Listener)(nil)

// Listen creates the first instance of name, with FILE_FLAG_FIRST_PIPE_INSTANCE
// so that it fails (wrapping ErrExists) when anyone, a running daemon or a
// squatter, created the name before. Only userSID and SYSTEM may open it, and
// remote clients are refused.
func Listen(name, userSID string) (*Listener, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%q is not a local named pipe (want %s<name>)", name, Prefix)
	}
	sd, err := windows.SecurityDescriptorFromString(SDDL(userSID))
	if err != nil {
		return nil, fmt.Errorf("build the security descriptor of %s: %w", name, err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	closed, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", name, err)
	}
	l := &Listener{name: name, sa: sa, closed: closed}
	h, err := l.create(true)
	if err != nil {
		windows.CloseHandle(closed)
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, fmt.Errorf("%w: %s (another keychain-auth daemon, or a program squatting its name, created it first)", ErrExists, name)
		}
		return nil, fmt.Errorf("create named pipe %s: %w", name, err)
	}
	l.pending = h
	return l, nil
}

func (l *Listener) create(first bool) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(l.name)
	if err != nil {
		return windows.InvalidHandle, err
	}
	mode := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		mode |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	return windows.CreateNamedPipe(name, mode,
		windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|windows.PIPE_REJECT_REMOTE_CLIENTS,
		windows.PIPE_UNLIMITED_INSTANCES, bufSize, bufSize, 0, l.sa)
}

// Accept waits for a client on the pending instance, puts a new instance in
// its place and returns the connected one.
func (l *Listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	h := l.pending
	l.pending = windows.InvalidHandle
	done := l.done
	if !done {
		l.accepting.Add(1)
	}
	l.mu.Unlock()
	if done {
		return nil, net.ErrClosed
	}
	defer l.accepting.Done()
	if h == windows.InvalidHandle || h == 0 {
		var err error
		if h, err = l.create(false); err != nil {
			return nil, fmt.Errorf("create an instance of %s: %w", l.name, err)
		}
	}
	for {
		err := l.connect(h)
		if err == nil {
			break
		}
		// A client that connected and left before ConnectNamedPipe ran (a
		// liveness probe) leaves the instance closing: reset it and wait
		// for the next client.
		if errors.Is(err, windows.ERROR_NO_DATA) {
			if windows.DisconnectNamedPipe(h) == nil {
				continue
			}
		}
		windows.CloseHandle(h)
		return nil, err
	}
	connected := time.Now()
	next, err := l.create(false)
	l.mu.Lock()
	if err == nil {
		if l.done {
			windows.CloseHandle(next)
		} else {
			l.pending = next
		}
	}
	l.mu.Unlock()
	return &Conn{File: os.NewFile(uintptr(h), l.name), name: l.name, handle: h, connected: connected}, nil
}

// connect waits for a client on h, or for Close. It runs before h is handed
// to the runtime's completion port, so an event reports its completion.
func (l *Listener) connect(h windows.Handle) error {
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return err
	}
	defer windows.CloseHandle(ev)
	ov := windows.Overlapped{HEvent: ev}
	err = windows.ConnectNamedPipe(h, &ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
		return nil
	case !errors.Is(err, windows.ERROR_IO_PENDING):
		return fmt.Errorf("wait for a client on %s: %w", l.name, err)
	}
	which, err := windows.WaitForMultipleObjects([]windows.Handle{ev, l.closed}, false, windows.INFINITE)
	if err != nil {
		windows.CancelIoEx(h, &ov)
		return fmt.Errorf("wait for a client on %s: %w", l.name, err)
	}
	if which != windows.WAIT_OBJECT_0 {
		windows.CancelIoEx(h, &ov)
		var n uint32
		windows.GetOverlappedResult(h, &ov, &n, true)
		return net.ErrClosed
	}
	var n uint32
	if err := windows.GetOverlappedResult(h, &ov, &n, false); err != nil {
		return fmt.Errorf("wait for a client on %s: %w", l.name, err)
	}
	return nil
}

// Close stops Accept and removes the waiting instance; connections already
// accepted stay open. It returns once a waiting Accept has returned, and
// then closes the event that woke it.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	windows.SetEvent(l.closed)
	if l.pending != windows.InvalidHandle && l.pending != 0 {
		windows.CloseHandle(l.pending)
		l.pending = windows.InvalidHandle
	}
	l.mu.Unlock()
	// No Accept starts waiting now that done is set; the ones that were
	// return at once, woken by the event.
	l.accepting.Wait()
	windows.CloseHandle(l.closed)
	return nil
}

func (l *Listener) Addr() net.Addr { return Addr(l.name) }

// ErrNotFound is wrapped by Dial when no one serves the pipe.
var ErrNotFound = os.ErrNotExist

// Dial connects to name, retrying while every instance is busy, until ctx
// ends. The client allows the server to identify it but never to act as it
// (SECURITY_IDENTIFICATION), so a rogue server gains nothing by impersonation.
func Dial(ctx context.Context, name string) (*Conn, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	for {
		h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING,
			windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		if err == nil {
			return &Conn{File: os.NewFile(uintptr(h), name), name: name, handle: h}, nil
		}
		switch {
		case errors.Is(err, windows.ERROR_FILE_NOT_FOUND):
			return nil, fmt.Errorf("open %s: %w", name, ErrNotFound)
		case !errors.Is(err, windows.ERROR_PIPE_BUSY):
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open %s: every instance is busy: %w", name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ProcessSID is the user SID of the token of process proc, which must be
// open with at least PROCESS_QUERY_LIMITED_INFORMATION.
func ProcessSID(proc windows.Handle) (string, error) {
	var tok windows.Token
	if err := windows.OpenProcessToken(proc, windows.TOKEN_QUERY, &tok); err != nil {
		return "", fmt.Errorf("open process token: %w", err)
	}
	defer tok.Close()
	tu, err := tok.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("read token user: %w", err)
	}
	return tu.User.Sid.String(), nil
}

// ServerSID is the user SID of the process serving the other end of c.
func (c *Conn) ServerSID() (string, error) {
	var pid uint32
	if err := windows.GetNamedPipeServerProcessId(c.handle, &pid); err != nil {
		return "", fmt.Errorf("server process of %s: %w", c.name, err)
	}
	proc, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return "", fmt.Errorf("open server process %d of %s: %w", pid, c.name, err)
	}
	defer windows.CloseHandle(proc)
	return ProcessSID(proc)
}
