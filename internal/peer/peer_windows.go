package peer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/pipe"
)

// ForeignUID is the UID a Windows peer gets when its token's user SID is
// not the daemon's. Windows has no uids; a peer running as the daemon's
// user gets uint32(os.Getuid()), which is what the daemon compares with.
const ForeignUID = ^uint32(0) - 1

// pipeConn is what FromConn needs from a named-pipe connection.
type pipeConn interface {
	PipeHandle() uintptr
	ConnectedAt() time.Time
}

// FromConn asks the pipe which process connected (GetNamedPipeClientProcessId),
// opens that process with the least rights that answer the questions
// (PROCESS_QUERY_LIMITED_INFORMATION, SYNCHRONIZE) and proves the handle
// names the client rather than a later process given its pid: that process
// would have been created after the connect. The handle is kept for the
// connection's life, so the pid cannot be reused while the Peer is open.
func FromConn(c net.Conn) (*Peer, error) {
	pc, ok := c.(pipeConn)
	if !ok {
		return nil, fmt.Errorf("peer identity: connection is %T, not a named pipe; only named-pipe peers can be verified", c)
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(pc.PipeHandle()), &pid); err != nil {
		return nil, fmt.Errorf("peer identity: GetNamedPipeClientProcessId: %w", err)
	}
	// PROCESS_QUERY_INFORMATION (not only the limited right) lets
	// TracedBy ask whether a debugger is attached; a process of the same
	// user grants it.
	proc, err := windows.OpenProcess(windows.PROCESS_QUERY_INFORMATION|windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, pid)
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return nil, fmt.Errorf("peer pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return nil, fmt.Errorf("peer pid %d: OpenProcess: %w", pid, err)
	}
	p := &Peer{PID: int(pid), fromSocket: true, exec: execPin{proc: proc}}
	ok = false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(proc, &created, &exited, &kernel, &user); err != nil {
		return nil, fmt.Errorf("peer pid %d: GetProcessTimes: %w", pid, err)
	}
	p.exec.started = int64(created.HighDateTime)<<32 | int64(created.LowDateTime)
	if at := pc.ConnectedAt(); !at.IsZero() && time.Unix(0, created.Nanoseconds()).After(at) {
		return nil, fmt.Errorf("peer pid %d was reused by a process started after the connect: %w", pid, ErrGone)
	}
	if err := p.Alive(); err != nil {
		return nil, err
	}
	sid, err := pipe.ProcessSID(proc)
	if err != nil {
		return nil, fmt.Errorf("peer pid %d: %w", pid, err)
	}
	mine, err := ownSID()
	if err != nil {
		return nil, fmt.Errorf("peer identity: this process's user: %w", err)
	}
	p.UID = ForeignUID
	if sid == mine {
		p.UID = uint32(os.Getuid())
	}
	if p.exec.image, err = imageName(proc); err != nil {
		return nil, fmt.Errorf("peer pid %d: %w", pid, err)
	}
	ok = true
	return p, nil
}

// ownSID is the daemon's own user SID, read once: a process's user does not
// change.
var ownSID = sync.OnceValues(func() (string, error) { return pipe.ProcessSID(windows.CurrentProcess()) })

// imageName is the full Win32 path of the image proc runs.
func imageName(proc windows.Handle) (string, error) {
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(proc, 0, &buf[0], &n); err != nil {
		return "", fmt.Errorf("QueryFullProcessImageName: %w", err)
	}
	return windows.UTF16ToString(buf[:n]), nil
}

// ExePath is the path of the image the peer runs, as Windows recorded it
// when the process started.
func (p *Peer) ExePath() string { return p.exec.image }

// Alive returns nil while the peer has not exited, and an error wrapping
// ErrGone once it has. It asks the process handle, never the pid.
func (p *Peer) Alive() error {
	if p.exec.proc == 0 {
		return fmt.Errorf("peer pid %d: no process handle", p.PID)
	}
	ev, err := windows.WaitForSingleObject(p.exec.proc, 0)
	switch {
	case err != nil:
		return fmt.Errorf("peer pid %d: wait on process handle: %w", p.PID, err)
	case ev == windows.WAIT_OBJECT_0:
		return fmt.Errorf("peer pid %d has exited: %w", p.PID, ErrGone)
	}
	return nil
}

// OpenExe opens the peer's image for hashing with a share mode that lets
// others read it but not write, delete or rename it until the file is
// closed, then confirms the peer is alive. A running image cannot be
// written on Windows anyway; the share mode also covers the time between
// the process exiting and the hash finishing.
func (p *Peer) OpenExe() (*os.File, error) {
	name, err := windows.UTF16PtrFromString(p.exec.image)
	if err != nil {
		return nil, fmt.Errorf("open executable of peer pid %d: %w", p.PID, err)
	}
	h, err := windows.CreateFile(name, windows.GENERIC_READ, windows.FILE_SHARE_READ, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if aerr := p.Alive(); aerr != nil {
		if err == nil {
			windows.CloseHandle(h)
		}
		return nil, aerr
	}
	if err != nil {
		return nil, fmt.Errorf("open executable %s of peer pid %d: %w", p.exec.image, p.PID, &os.PathError{Op: "open", Path: p.exec.image, Err: err})
	}
	if err := p.sameSinceStart(h); err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return os.NewFile(uintptr(h), p.exec.image), nil
}

// sameSinceStart refuses an image file whose metadata changed after the
// peer started. Windows lets a running program's file be renamed away (not
// written or deleted) and another file be renamed or copied to its path,
// while the process keeps the name it started from; the daemon opens that
// name, so it would hash the newcomer instead of the code that runs. Any
// rename, new file or attribute change sets the file's ChangeTime, so a
// ChangeTime after the process's creation means the file at the path may
// not be its image. A program whose file was legitimately touched while it
// ran (replaced by an upgrade, an attribute changed by a backup tool) is
// refused too and must be restarted.
func (p *Peer) sameSinceStart(h windows.Handle) error {
	info, err := fsx.BasicInfoOf(h)
	if err != nil {
		return fmt.Errorf("executable %s of peer pid %d: read its change time: %w: %w", p.exec.image, p.PID, ErrUnverifiable, err)
	}
	// Both are 100 ns intervals since 1601 (FILETIME); started was read
	// at connect.
	if info.ChangeTime > p.exec.started {
		return fmt.Errorf("%w: the file %s was renamed, replaced or changed after process %d started from it, so it may not be "+
			"the program that process runs; restart the program", ErrUnverifiable, p.exec.image, p.PID)
	}
	return nil
}

// ExeLink is the image path, for showing to users.
func (p *Peer) ExeLink() (string, error) {
	if err := p.Alive(); err != nil {
		return "", err
	}
	return p.exec.image, nil
}

// maxCmdline caps how much of a command line Describe keeps: it ends up in
// pending.json, and a hostile caller can make its command line long.
const maxCmdline = 64 << 10

// Describe gathers, through the process handle, what helps a user recognise
// the peer: its command line and its parent's pid and image. The working
// directory would need the right to read the peer's memory, which the daemon
// does not ask for. Anything unreadable is left empty, and if the peer exited
// meanwhile the result is empty.
func (p *Peer) Describe() ProcessInfo {
	var info ProcessInfo
	if cl := commandLine(p.exec.proc); cl != "" {
		info.CommandLine, _ = windows.DecomposeCommandLine(cl)
	}
	var pbi windows.PROCESS_BASIC_INFORMATION
	if windows.NtQueryInformationProcess(p.exec.proc, windows.ProcessBasicInformation,
		unsafe.Pointer(&pbi), uint32(unsafe.Sizeof(pbi)), nil) == nil {
		info.PPID = int(pbi.InheritedFromUniqueProcessId)
	}
	if info.PPID > 0 {
		if parent, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(info.PPID)); err == nil {
			info.ParentPath, _ = imageName(parent)
			windows.CloseHandle(parent)
		}
	}
	if p.Alive() != nil {
		return ProcessInfo{}
	}
	return info
}

// commandLine asks for ProcessCommandLineInformation (Windows 8.1 and later),
// which PROCESS_QUERY_LIMITED_INFORMATION allows, and truncates it to
// maxCmdline bytes.
func commandLine(proc windows.Handle) string {
	buf := make([]byte, 4096)
	for {
		var n uint32
		err := windows.NtQueryInformationProcess(proc, windows.ProcessCommandLineInformation,
			unsafe.Pointer(&buf[0]), uint32(len(buf)), &n)
		if err == nil {
			break
		}
		if !errors.Is(err, windows.STATUS_INFO_LENGTH_MISMATCH) || int(n) <= len(buf) || n > 2*maxCmdline+64 {
			return ""
		}
		buf = make([]byte, n)
	}
	s := (*windows.NTUnicodeString)(unsafe.Pointer(&buf[0])).String()
	if len(s) > maxCmdline {
		s = s[:maxCmdline]
	}
	return s
}
