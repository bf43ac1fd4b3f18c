package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"
)

// libproc's entry points live in libSystem; they are called through purego
// because the module builds without cgo. x/sys/unix covers the rest
// (getsockopt, sysctl).
var libproc struct {
	once    sync.Once
	err     error
	pidinfo uintptr // int proc_pidinfo(int pid, int flavor, uint64_t arg, void *buf, int size)
	pidpath uintptr // int proc_pidpath(int pid, void *buf, uint32_t size)
	// int csops_audittoken(pid_t pid, unsigned int ops, void *buf, size_t size, audit_token_t *token)
	csops uintptr
}

// proc_pidinfo flavors (<sys/proc_info.h>, <sys/proc_info_private.h>).
const (
	procPIDVnodePathInfo     = 9
	procPIDUniqIdentifierInf = 17
	// procPIDPathInfoMaxSize is PROC_PIDPATHINFO_MAXSIZE (4*MAXPATHLEN).
	procPIDPathInfoMaxSize = 4 * maxPathLen
)

func loadLibproc() error {
	libproc.once.Do(func() {
		h, err := purego.Dlopen("/usr/lib/libSystem.B.dylib", purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			libproc.err = fmt.Errorf("load libSystem for peer verification: %w", err)
			return
		}
		for name, p := range map[string]*uintptr{
			"proc_pidinfo": &libproc.pidinfo, "proc_pidpath": &libproc.pidpath, "csops_audittoken": &libproc.csops,
		} {
			if *p, err = purego.Dlsym(h, name); err != nil {
				libproc.err = fmt.Errorf("libSystem has no %s: %w", name, err)
				return
			}
		}
	})
	return libproc.err
}

// errnoOf turns purego's errno word into an error; only its low 32 bits are
// the C int.
func errnoOf(e uintptr) error {
	if n := syscall.Errno(uint32(e)); n != 0 {
		return n
	}
	return syscall.EINVAL
}

// procPIDInfo calls proc_pidinfo and insists on a reply of exactly
// len(buf) bytes, the size of the structure asked for.
func procPIDInfo(pid int, flavor int, buf []byte) error {
	if err := loadLibproc(); err != nil {
		return err
	}
	r, _, e := purego.SyscallN(libproc.pidinfo, uintptr(pid), uintptr(flavor), 0,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	n := int(int32(r))
	switch {
	case n <= 0:
		return errnoOf(e)
	case n != len(buf):
		return fmt.Errorf("proc_pidinfo flavor %d returned %d bytes, want %d", flavor, n, len(buf))
	}
	return nil
}

// csops operations (<sys/codesign.h>).
const (
	csOpsStatus    = 0
	csOpsCDHash    = 5
	csOpsPIDOffset = 6
	csOpsTeamID    = 14
)

// csops asks the kernel about the code signature of the process the token
// names. The kernel itself checks that pid and pidversion still match, so
// the answer can only be about the process that connected (ESRCH otherwise).
func csops(tok auditToken, op int, buf []byte) error {
	if err := loadLibproc(); err != nil {
		return err
	}
	w := tok.words()
	r, _, e := purego.SyscallN(libproc.csops, uintptr(tok.PID), uintptr(op),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&w[0])))
	if int32(r) != 0 {
		return errnoOf(e)
	}
	return nil
}

// csStatus returns the process's code signing flags.
func csStatus(tok auditToken) (uint32, error) {
	var b [4]byte
	if err := csops(tok, csOpsStatus, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// pidVersion is the current pidversion of whatever process has pid now.
func pidVersion(pid int) (int32, error) {
	var buf [uniqIdentifierInfoSize]byte
	if err := procPIDInfo(pid, procPIDUniqIdentifierInf, buf[:]); err != nil {
		return 0, err
	}
	return pidVersionFromUniqInfo(buf[:])
}

// pidPath asks the kernel for the path of the executable pid runs: the
// name the kernel has for the vnode it runs now (it follows a rename).
func pidPath(pid int) (string, error) {
	if err := loadLibproc(); err != nil {
		return "", err
	}
	var buf [procPIDPathInfoMaxSize]byte
	r, _, e := purego.SyscallN(libproc.pidpath, uintptr(pid), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if int32(r) <= 0 {
		return "", errnoOf(e)
	}
	return cString(buf[:]), nil
}

// FromConn asks the kernel who connected c: the uid from LOCAL_PEERCRED,
// the pid from LOCAL_PEERPID and the audit token from LOCAL_PEERTOKEN. The
// token's pid and pidversion name that one process image; every later
// answer about the peer is checked against it, so neither a recycled pid
// nor an exec can stand in for the process that connected.
//
// The three answers must agree. They can differ only when the socket was
// handed to or inherited by another process that used it since (macOS
// reports the last user of a socket as LOCAL_PEERPID); such a connection is
// refused, because it is not clear whose request it carries.
func FromConn(c net.Conn) (*Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("peer credentials: connection is %T, not a Unix socket; only Unix-socket peers can be verified", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred                    *unix.Xucred
		raw                     *unix.ICMPv6Filter
		pid                     int
		credErr, pidErr, tokErr error
	)
	ctlErr := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		pid, pidErr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		// x/sys/unix has no getsockopt for an audit_token_t, but it has
		// one for ICMPv6Filter, which is the same eight uint32s (checked
		// at compile time below); the kernel fills it by LOCAL_PEERTOKEN.
		raw, tokErr = unix.GetsockoptICMPv6Filter(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERTOKEN)
	})
	switch {
	case ctlErr != nil:
		return nil, fmt.Errorf("peer credentials: %w", ctlErr)
	case credErr != nil:
		return nil, fmt.Errorf("peer credentials: getsockopt LOCAL_PEERCRED: %w", credErr)
	case pidErr != nil:
		return nil, fmt.Errorf("peer credentials: getsockopt LOCAL_PEERPID: %w", pidErr)
	case tokErr != nil:
		return nil, fmt.Errorf("peer credentials: getsockopt LOCAL_PEERTOKEN: %w", tokErr)
	}
	return newDarwinPeer(cred, pid, tokenFromWords(raw.Filt))
}

// The audit token is read into an ICMPv6Filter; this fails to compile if
// the two ever differ in size.
var _ [unsafe.Sizeof(unix.ICMPv6Filter{}) - auditTokenSize]struct{}
var _ [auditTokenSize - unsafe.Sizeof(unix.ICMPv6Filter{})]struct{}

// xucredVersion is XUCRED_VERSION (<sys/ucred.h>).
const xucredVersion = 0

func newDarwinPeer(cred *unix.Xucred, pid int, tok auditToken) (*Peer, error) {
	if err := tok.validate(); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if cred.Version != xucredVersion {
		return nil, fmt.Errorf("peer credentials: LOCAL_PEERCRED returned xucred version %d, want %d", cred.Version, xucredVersion)
	}
	if pid != int(tok.PID) || cred.Uid != tok.EUID {
		return nil, fmt.Errorf("peer credentials disagree (LOCAL_PEERPID %d, audit token pid %d; LOCAL_PEERCRED uid %d, audit token euid %d): "+
			"the socket was used by another process than the one that connected; connect from the process that makes the requests", pid, tok.PID, cred.Uid, tok.EUID)
	}
	p := &Peer{PID: int(tok.PID), UID: cred.Uid, GID: tok.EGID}
	if cred.Ngroups > 0 {
		p.GID = cred.Groups[0]
	}
	// The token came from the socket itself, which is what fromSocket
	// records: no pid was looked up after the fact.
	p.fromSocket = true
	p.exec.tok = tok
	p.teamID = teamID(tok)
	if err := p.Alive(); err != nil {
		return nil, err
	}
	return p, nil
}

// teamID asks the kernel for the team identifier in the process's code
// signature (CS_OPS_TEAMID); an unsigned or ad-hoc signed binary has none.
func teamID(tok auditToken) string {
	var b [8 + maxTeamID + 1]byte
	if csops(tok, csOpsTeamID, b[:]) != nil {
		return ""
	}
	id, err := parseTeamID(b[:])
	if err != nil {
		return ""
	}
	return id
}

// ExePath is where the kernel says the peer's executable is now, or "" when
// it cannot say (the peer is gone). macOS has no /proc: this is a name, and
// whoever can write its directory can put another file there, which is why
// every use of it is followed by Alive and compared with the image verified
// at connect.
func (p *Peer) ExePath() string {
	path, err := pidPath(p.PID)
	if err != nil || p.Alive() != nil {
		return ""
	}
	return path
}

// Alive returns nil while the process that connected still runs the image
// it connected with, and an error wrapping ErrGone once it has exited, or
// exec'd another program (the kernel then gives it a new pidversion).
func (p *Peer) Alive() error {
	v, err := pidVersion(p.PID)
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("peer pid %d has exited: %w", p.PID, ErrGone)
	case err != nil:
		return fmt.Errorf("peer pid %d: read its pid version: %w", p.PID, err)
	case v != p.exec.tok.PIDVersion:
		return fmt.Errorf("peer pid %d has exited or exec'd another program (pid version %d, was %d): %w", p.PID, v, p.exec.tok.PIDVersion, ErrGone)
	}
	return nil
}

// OpenExe opens the peer's executable by the path the kernel reports and
// then confirms the peer still runs the image it connected with. The caller
// owns the returned file.
//
// Unlike Linux's /proc/<pid>/exe this goes through a name: a process that
// can write the directory holding its own executable could put another file
// under that name between the lookup and the open. See docs/threat-model.md.
func (p *Peer) OpenExe() (*os.File, error) {
	path, err := pidPath(p.PID)
	if err != nil {
		if aerr := p.Alive(); aerr != nil {
			return nil, aerr
		}
		return nil, fmt.Errorf("executable path of peer pid %d: proc_pidpath: %w", p.PID, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if aerr := p.Alive(); aerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, aerr
	}
	if err != nil {
		return nil, fmt.Errorf("open executable of peer pid %d: %w", p.PID, err)
	}
	if err := p.sameCode(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sameCode proves that f, opened by name, holds the code the peer runs: the
// kernel's cdhash for the process must be the hash of one of the code
// directories in f's signature (at the slice the kernel loaded). A file put
// under the name since holds other code and is refused as a changed image.
//
// A process without a cdhash (an unsigned x86_64 binary, natively or under
// Rosetta) cannot be checked this way. Then a file whose inode changed
// (ctime) after the process started is refused: putting another file
// under the name (rename, link) changes its ctime. What is left is a
// file changed within the same microsecond as the exec, see
// docs/threat-model.md.
func (p *Peer) sameCode(f *os.File) error {
	var want [cdHashLen]byte
	err := csops(p.exec.tok, csOpsCDHash, want[:])
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("peer pid %d has exited or exec'd: %w", p.PID, ErrGone)
	case err != nil || want == [cdHashLen]byte{}:
		return p.notChangedSinceStart(f)
	}
	var off [8]byte
	if err := csops(p.exec.tok, csOpsPIDOffset, off[:]); err != nil {
		return fmt.Errorf("code signature of peer pid %d: slice offset: %w", p.PID, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat executable of peer pid %d: %w", p.PID, err)
	}
	have, err := cdHashes(f, int64(binary.LittleEndian.Uint64(off[:])), fi.Size())
	if err != nil {
		return fmt.Errorf("the file at the executable path of peer pid %d is not the code the process runs (%v): %w", p.PID, err, ErrGone)
	}
	for _, h := range have {
		if h == want {
			return nil
		}
	}
	return fmt.Errorf("the file at the executable path of peer pid %d holds other code than the process runs (it was replaced since the process started): %w", p.PID, ErrGone)
}

// notChangedSinceStart refuses f when its inode changed after the peer
// started.
func (p *Peer) notChangedSinceStart(f *os.File) error {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", p.PID)
	if err != nil {
		return fmt.Errorf("start time of peer pid %d: %w", p.PID, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat executable of peer pid %d: %w", p.PID, err)
	}
	if err := p.Alive(); err != nil {
		return err // the start time may be another process's
	}
	start := k.Proc.P_starttime
	if changedAfter(st.Ctim.Sec, st.Ctim.Nsec, start.Sec, int64(start.Usec)) {
		return fmt.Errorf("the file at the executable path of peer pid %d changed after the process started, so it may not be what the process runs; restart the program: %w", p.PID, ErrGone)
	}
	return nil
}

// ExeLink returns the path of the peer's executable, for showing to users.
// Identity comes from the hash, never from this path.
func (p *Peer) ExeLink() (string, error) {
	path, err := pidPath(p.PID)
	if aerr := p.Alive(); aerr != nil {
		return "", aerr
	}
	if err != nil {
		return "", fmt.Errorf("executable path of peer pid %d: proc_pidpath: %w", p.PID, err)
	}
	return path, nil
}

// Describe gathers what helps a user recognise the peer: command line,
// parent pid and executable, working directory. Anything unreadable is left
// empty, and if the peer exited or exec'd meanwhile the result is empty.
func (p *Peer) Describe() ProcessInfo {
	var info ProcessInfo
	if b, err := unix.SysctlRaw("kern.procargs2", p.PID); err == nil {
		if pa, err := parseProcArgs(b); err == nil {
			info.CommandLine = capArgs(pa.Argv, maxCmdline)
		}
	}
	if k, err := unix.SysctlKinfoProc("kern.proc.pid", p.PID); err == nil {
		info.PPID = int(k.Eproc.Ppid)
	}
	var vpi [vnodePathInfoSize]byte
	if procPIDInfo(p.PID, procPIDVnodePathInfo, vpi[:]) == nil {
		info.Cwd = cwdFromVnodePathInfo(vpi[:])
	}
	if info.PPID > 0 {
		if path, err := pidPath(info.PPID); err == nil {
			info.ParentPath = path
		}
	}
	if p.Alive() != nil {
		return ProcessInfo{}
	}
	return info
}

// maxCmdline caps how much of a command line Describe keeps: it ends up in
// pending.json, and a hostile caller can make its arguments megabytes long.
const maxCmdline = 64 << 10
