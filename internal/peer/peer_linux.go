package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxCmdline caps how much of a command line Describe keeps: it ends up in
// pending.json, and a hostile caller can make its arguments megabytes long.
const maxCmdline = 64 << 10

// FromConn asks the kernel for the credentials of the process that connected c
// (SO_PEERCRED) and for a pidfd naming that same process (SO_PEERPIDFD, Linux
// 6.5+). On older kernels it falls back to pidfd_open(pid): a process that
// connected and exited before that call could have its pid reused by another,
// and HasPeerPIDFD reports false so the daemon can say so.
//
// The credentials are those of the process that called connect; a socket later
// inherited or passed to another process still reports the original one.
func FromConn(c net.Conn) (*Peer, error) {
	return fromConn(c, true)
}

// fromConn exists so tests can exercise the pidfd_open fallback on a kernel
// that has SO_PEERPIDFD.
func fromConn(c net.Conn, usePeerPIDFD bool) (*Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("peer credentials: connection is %T, not a Unix socket; only Unix-socket peers can be verified", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred              *unix.Ucred
		credErr, pidfdErr error
		pidfd             = -1
	)
	pidfdErr = unix.ENOPROTOOPT
	ctlErr := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil && usePeerPIDFD {
			pidfd, pidfdErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		}
	})
	if ctlErr != nil {
		return nil, fmt.Errorf("peer credentials: %w", ctlErr)
	}
	if credErr != nil {
		return nil, fmt.Errorf("peer credentials: getsockopt SO_PEERCRED: %w", credErr)
	}
	return newPeer(cred, pidfd, pidfdErr)
}

// newPeer turns the raw getsockopt results into a Peer, taking ownership of
// pidfd when pidfdErr is nil.
func newPeer(cred *unix.Ucred, pidfd int, pidfdErr error) (*Peer, error) {
	if cred.Pid <= 0 {
		if pidfdErr == nil {
			unix.Close(pidfd)
		}
		return nil, errors.New("peer credentials: the kernel reports no pid for the peer (it runs in a pid namespace this daemon cannot see); run the daemon in the same or a parent pid namespace")
	}
	p := &Peer{PID: int(cred.Pid), UID: cred.Uid, GID: cred.Gid}
	switch {
	case pidfdErr == nil:
		p.fromSocket = true
	case errors.Is(pidfdErr, unix.ESRCH):
		return nil, fmt.Errorf("peer pid %d: %w", p.PID, ErrGone)
	case errors.Is(pidfdErr, unix.ENOPROTOOPT):
		var err error
		pidfd, err = unix.PidfdOpen(p.PID, 0)
		switch {
		case errors.Is(err, unix.ESRCH):
			return nil, fmt.Errorf("peer pid %d: %w", p.PID, ErrGone)
		case errors.Is(err, unix.ENOSYS):
			return nil, fmt.Errorf("peer pid %d: pidfd_open is missing; peer verification needs Linux 5.3 or newer", p.PID)
		case err != nil:
			return nil, fmt.Errorf("peer pid %d: pidfd_open: %w", p.PID, err)
		}
	default:
		return nil, fmt.Errorf("peer pid %d: getsockopt SO_PEERPIDFD: %w", p.PID, pidfdErr)
	}
	p.pidfd = os.NewFile(uintptr(pidfd), "pidfd:"+strconv.Itoa(p.PID))
	return p, nil
}

// ExePath is the magic link through which the kernel exposes the file the
// peer is executing, even after that file was renamed over or deleted.
func (p *Peer) ExePath() string { return procPath(p.PID, "exe") }

func procPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// Alive returns nil while the credentialed process has not exited, and an
// error wrapping ErrGone once it has. It asks the pidfd, not the pid, so a
// recycled pid cannot answer for it. Call it after reading anything under
// /proc/<pid>: success proves the data came from the peer, because a pid is
// not reused before its process has exited and been reaped.
func (p *Peer) Alive() error {
	if p.pidfd == nil {
		return fmt.Errorf("peer pid %d: no process handle", p.PID)
	}
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer pid %d: %w", p.PID, err)
	}
	var (
		exited  bool
		pollErr error
	)
	// A pidfd polls readable once the process has exited (a zombie counts as
	// exited) and hangs up once it is reaped. Unlike a signal-0 probe this
	// needs no permission to signal a process of another user.
	ctlErr := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			pollErr = err
			exited = n > 0 && fds[0].Revents != 0
			return
		}
	})
	switch {
	case ctlErr != nil:
		return fmt.Errorf("peer pid %d: process handle already closed: %w", p.PID, ctlErr)
	case pollErr != nil:
		return fmt.Errorf("peer pid %d: poll pidfd: %w", p.PID, pollErr)
	case exited:
		return fmt.Errorf("peer pid %d has exited: %w", p.PID, ErrGone)
	}
	return nil
}

// OpenExe opens the image the peer is executing through /proc/<pid>/exe (the
// mapped file itself, not whatever is now at its path) and then confirms the
// peer is still alive, so the file cannot belong to a process that reused the
// pid. The caller owns the returned file.
func (p *Peer) OpenExe() (*os.File, error) {
	f, err := os.OpenFile(p.ExePath(), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if aerr := p.Alive(); aerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, aerr
	}
	if err != nil {
		return nil, fmt.Errorf("open executable of peer pid %d: %w%s", p.PID, err, accessHint(err))
	}
	return f, nil
}

// ExeLink returns the path of the peer's executable as the kernel last knew
// it, for showing to users. When the file was deleted or replaced the kernel
// appends " (deleted)"; that suffix is stripped, so the result names where the
// binary was, not necessarily what is there now (fstat the file from OpenExe
// and check its link count to learn whether it was deleted). Identity comes
// from the hash, never from this path.
func (p *Peer) ExeLink() (string, error) {
	target, err := os.Readlink(p.ExePath())
	if aerr := p.Alive(); aerr != nil {
		return "", aerr
	}
	if err != nil {
		return "", fmt.Errorf("read executable path of peer pid %d: %w%s", p.PID, err, accessHint(err))
	}
	return strings.TrimSuffix(target, " (deleted)"), nil
}

// Describe gathers what helps a user recognise the peer: command line, parent
// pid and executable, working directory. Anything unreadable is left empty,
// and if the peer exited meanwhile the result is empty, because the data may
// then describe another process.
func (p *Peer) Describe() ProcessInfo {
	var info ProcessInfo
	if f, err := os.Open(procPath(p.PID, "cmdline")); err == nil {
		b, _ := io.ReadAll(io.LimitReader(f, maxCmdline))
		f.Close()
		info.CommandLine = splitCmdline(b)
	}
	if b, err := os.ReadFile(procPath(p.PID, "stat")); err == nil {
		info.PPID = parsePPID(b)
	}
	if cwd, err := os.Readlink(procPath(p.PID, "cwd")); err == nil {
		info.Cwd = strings.TrimSuffix(cwd, " (deleted)")
	}
	if info.PPID > 0 {
		if exe, err := os.Readlink(procPath(info.PPID, "exe")); err == nil {
			info.ParentPath = strings.TrimSuffix(exe, " (deleted)")
		}
	}
	if p.Alive() != nil {
		return ProcessInfo{}
	}
	return info
}

func splitCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// parsePPID reads field 4 of /proc/<pid>/stat. The command name before it is
// in parentheses and may itself contain spaces and ')', so parsing starts
// after the last ')'.
func parsePPID(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0
	}
	return ppid
}

func accessHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return " (reading another user's or a non-dumpable process needs CAP_SYS_PTRACE; run the daemon in system mode)"
	}
	return ""
}
