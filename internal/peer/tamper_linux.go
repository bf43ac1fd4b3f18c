package peer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxEnviron bounds what is read of /proc/<pid>/environ. exec(2) caps the
// arguments and environment together at 6 MiB (three quarters of the
// default 8 MiB stack limit), so only a privileged prctl(PR_SET_MM) could
// make it larger.
const maxEnviron = 8 << 20

// maxStatus bounds /proc/<pid>/status, a few KiB even with long group and
// CPU lists.
const maxStatus = 1 << 20

// systemLibDirs are where only root can put libraries; LD_LIBRARY_PATH
// entries inside them (or their multiarch subdirectories) load nothing a
// same-user attacker could have planted.
var systemLibDirs = []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"}

// Tampered reports whether the peer runs in a state where its image hash no
// longer says which code it runs: one of its threads is being traced
// (TracerPid in /proc/<pid>/task/*/status: a debugger or an injector is
// attached), or its image goes through the dynamic loader (the ELF names a
// PT_INTERP) and its initial environment sets LD_PRELOAD or LD_AUDIT to
// anything non-empty, or LD_LIBRARY_PATH with an entry outside the system
// library directories. reason says which, in words fit for the peer and the
// log; it is empty when nothing was found.
//
// err is set when the check could not be completed: it wraps ErrGone when the
// process exited (what was read may then describe another process);
// otherwise a part could not be read. Callers must refuse the peer then: a
// check that cannot be made is no evidence that nothing is wrong.
//
// The environment is read from /proc/<pid>/environ, or, when its file mode
// shuts the daemon out (a system daemon reading another user's process:
// CAP_SYS_PTRACE passes the ptrace check but not the file's 0400 mode),
// straight from the process's memory between env_start and env_end with
// process_vm_readv, which CAP_SYS_PTRACE does allow.
//
// A static image ignores LD_* variables, so they are not held against it.
// Only the loader's view at exec time matters, which is why the environment
// the process was started with is read rather than its current variables; a
// process that rewrites that memory in place can hide them, which this check
// cannot see (see docs/threat-model.md).
func (p *Peer) Tampered() (reason string, err error) {
	reason, err = p.inspect()
	// One liveness check covers every read above: a pid is not reused
	// before its process has exited and been reaped, so a peer alive now
	// is the process all of it described.
	if aerr := p.Alive(); aerr != nil {
		return "", aerr
	}
	return reason, err
}

func (p *Peer) inspect() (reason string, err error) {
	tracer, tid, err := p.tracer()
	if err != nil {
		return "", err
	}
	if tracer != 0 {
		return TracedReason(tracer, tid, p.PID), nil
	}
	dynamic, err := p.usesLoader()
	if err != nil || !dynamic {
		return "", err
	}
	env, err := p.environ()
	if err != nil {
		return "", fmt.Errorf("check the environment of peer pid %d for loader variables: %w%s", p.PID, err, accessHint(err))
	}
	return loaderTampering(env), nil
}

// tracer returns the first tracer found on any thread of the peer and that
// thread's id, or zeros. A tracer may attach to any thread, not only the
// main one that /proc/<pid>/status describes, and from there read and write
// the whole address space.
func (p *Peer) tracer() (tracer, tid int, err error) {
	dir := procPath(p.PID, "task")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("check the threads of peer pid %d for tracing: %w%s", p.PID, &os.PathError{Op: "open", Path: dir, Err: err}, accessHint(err))
	}
	defer unix.Close(fd)
	var (
		buf   [8 << 10]byte
		names []string
		seen  = 0
	)
	for {
		n, err := unix.Getdents(fd, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("check the threads of peer pid %d for tracing: read %s: %w", p.PID, dir, err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			id, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			seen++
			status, err := readProc(dir+"/"+name+"/status", maxStatus)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
				continue // the thread exited after it was listed
			}
			if err != nil {
				return 0, 0, fmt.Errorf("check thread %d of peer pid %d for tracing: %w", id, p.PID, err)
			}
			t, err := tracerPID(status)
			if err != nil {
				return 0, 0, fmt.Errorf("check thread %d of peer pid %d for tracing: %w", id, p.PID, err)
			}
			if t != 0 {
				return t, id, nil
			}
		}
	}
	if seen == 0 {
		return 0, 0, fmt.Errorf("check peer pid %d for tracing: %s lists no thread: %w", p.PID, dir, ErrGone)
	}
	return 0, 0, nil
}

// environ returns the environment block the peer was started with.
func (p *Peer) environ() ([]byte, error) {
	env, err := readProc(procPath(p.PID, "environ"), maxEnviron)
	if !errors.Is(err, os.ErrPermission) {
		return env, err
	}
	env, vmErr := p.environFromMemory()
	if vmErr != nil {
		return nil, fmt.Errorf("%w; reading it from the process's memory failed too: %w", err, vmErr)
	}
	return env, nil
}

// environFromMemory reads env_start..env_end (fields 50 and 51 of
// /proc/<pid>/stat, shown to a reader that passes the ptrace read check)
// with process_vm_readv.
func (p *Peer) environFromMemory() ([]byte, error) {
	stat, err := readProc(procPath(p.PID, "stat"), maxStatus)
	if err != nil {
		return nil, err
	}
	start, end, err := envRange(stat)
	if err != nil {
		return nil, err
	}
	if end-start > maxEnviron {
		return nil, fmt.Errorf("environment of %d bytes, more than %d", end-start, maxEnviron)
	}
	buf := make([]byte, end-start)
	for off := uint64(0); off < uint64(len(buf)); {
		n, err := unix.ProcessVMReadv(p.PID,
			[]unix.Iovec{{Base: &buf[off], Len: uint64(len(buf)) - off}},
			[]unix.RemoteIovec{{Base: uintptr(start + off), Len: int(uint64(len(buf)) - off)}}, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("process_vm_readv: %w", err)
		}
		if n == 0 {
			return nil, errors.New("process_vm_readv: short read")
		}
		off += uint64(n)
	}
	return buf, nil
}

// envRange parses env_start and env_end out of /proc/<pid>/stat. They read
// as 0 to a reader the kernel does not let see them.
func envRange(stat []byte) (start, end uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/<pid>/stat: no command name")
	}
	// Fields after the command name start at field 3 (state); env_start
	// and env_end are fields 50 and 51.
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 51-2 {
		return 0, 0, fmt.Errorf("/proc/<pid>/stat has %d fields, want at least 51 (Linux 3.5+)", len(fields)+2)
	}
	start, err1 := strconv.ParseUint(fields[50-3], 10, 64)
	end, err2 := strconv.ParseUint(fields[51-3], 10, 64)
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("/proc/<pid>/stat: env_start %q, env_end %q", fields[50-3], fields[51-3])
	case start == 0 && end == 0:
		return 0, 0, errors.New("the kernel hides the environment's address from this daemon (it lacks CAP_SYS_PTRACE)")
	case end < start:
		return 0, 0, fmt.Errorf("/proc/<pid>/stat: env_end %d before env_start %d", end, start)
	}
	return start, end, nil
}

// tracerPID reads the TracerPid line of /proc/<pid>/status.
func tracerPID(status []byte) (int, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		v, ok := bytes.CutPrefix(line, []byte("TracerPid:"))
		if !ok {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
		if err != nil {
			return 0, fmt.Errorf("TracerPid line %q: %w", line, err)
		}
		return n, nil
	}
	return 0, errors.New("no TracerPid line in /proc/<pid>/status")
}

// usesLoader reports whether the peer's image has a program interpreter,
// reading its headers only when this version of the file was not seen yet.
func (p *Peer) usesLoader() (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(p.ExePath(), &st); err != nil {
		return false, fmt.Errorf("stat executable of peer pid %d: %w%s", p.PID, err, accessHint(err))
	}
	c := &p.exec.image
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && c.dev == st.Dev && c.ino == st.Ino && c.size == st.Size && c.mtime == st.Mtim.Nano() {
		return c.dynamic, nil
	}
	f, err := p.OpenExe()
	if err != nil {
		return false, err
	}
	defer f.Close()
	// The key comes from the file actually read, not the stat above, so a
	// replacement in between cannot pair one file's answer with another's key.
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("stat executable of peer pid %d: %w", p.PID, err)
	}
	dynamic, err := hasInterp(f)
	if errors.Is(err, errNotELF) {
		// Nothing the kernel runs directly is not ELF, but if it were,
		// the environment is the only evidence left: look at it.
		dynamic, err = true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read program headers of the executable of peer pid %d: %w", p.PID, err)
	}
	c.known, c.dynamic = true, dynamic
	c.dev, c.ino, c.size, c.mtime = st.Dev, st.Ino, st.Size, st.Mtim.Nano()
	return dynamic, nil
}

var errNotELF = errors.New("not an ELF file")

// maxPhdrs is the most program-header bytes the kernel's ELF loader accepts;
// an image it ran never has more.
const maxPhdrs = 64 << 10

// hasInterp reports whether the ELF image read through r has a PT_INTERP
// program header, the loader the kernel starts in its place.
//
// It reads only the file header and the program headers, the part the
// kernel validated when it ran the image. debug/elf.NewFile would also parse
// every section header and the section name table, which nothing checked and
// which a hostile image controls; so this uses debug/elf's types and
// constants, not its parser.
func hasInterp(r io.ReaderAt) (bool, error) {
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return false, errNotELF
		}
		return false, err
	}
	if string(ident[:len(elf.ELFMAG)]) != elf.ELFMAG {
		return false, errNotELF
	}
	var bo binary.ByteOrder
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return false, fmt.Errorf("%w: unknown byte order %d", errNotELF, ident[elf.EI_DATA])
	}
	var (
		phoff             uint64
		phentsize, phnum  uint16
		minEntry, hdrSize int
	)
	switch elf.Class(ident[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		var h elf.Header64
		hdrSize, minEntry = binary.Size(h), binary.Size(elf.Prog64{})
		if err := binary.Read(io.NewSectionReader(r, 0, int64(hdrSize)), bo, &h); err != nil {
			return false, fmt.Errorf("%w: short header: %v", errNotELF, err)
		}
		phoff, phentsize, phnum = h.Phoff, h.Phentsize, h.Phnum
	case elf.ELFCLASS32:
		var h elf.Header32
		hdrSize, minEntry = binary.Size(h), binary.Size(elf.Prog32{})
		if err := binary.Read(io.NewSectionReader(r, 0, int64(hdrSize)), bo, &h); err != nil {
			return false, fmt.Errorf("%w: short header: %v", errNotELF, err)
		}
		phoff, phentsize, phnum = uint64(h.Phoff), h.Phentsize, h.Phnum
	default:
		return false, fmt.Errorf("%w: unknown class %d", errNotELF, ident[elf.EI_CLASS])
	}
	if phnum == 0 {
		return false, nil
	}
	size := int(phentsize) * int(phnum)
	switch {
	case int(phentsize) < minEntry:
		return false, fmt.Errorf("program header entries of %d bytes, want at least %d", phentsize, minEntry)
	case size > maxPhdrs:
		return false, fmt.Errorf("%d bytes of program headers, more than the kernel loads", size)
	case phoff > 1<<62:
		return false, fmt.Errorf("program headers at offset %d, past any file", phoff)
	}
	buf := make([]byte, size)
	if _, err := r.ReadAt(buf, int64(phoff)); err != nil {
		return false, fmt.Errorf("program headers at offset %d: %w", phoff, err)
	}
	for off := 0; off < size; off += int(phentsize) {
		// p_type is the first 32-bit word of both header layouts.
		if elf.ProgType(bo.Uint32(buf[off:])) == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// LoaderEnvProblem applies the same rules to an environment given as
// NAME=value entries: what Tampered would say of a process started with
// env, or "". keychain-auth exec checks the environment its program is
// about to get with it, so the two never disagree.
func LoaderEnvProblem(env []string) string {
	return loaderTampering([]byte(strings.Join(env, "\x00")))
}

// loaderTampering scans a NUL-separated environment for what makes the
// dynamic loader run code the image hash does not cover.
func loaderTampering(environ []byte) string {
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		name, value, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			continue
		}
		switch string(name) {
		case "LD_PRELOAD", "LD_AUDIT":
			// An empty value loads nothing; any library at all, even a
			// system one, adds code the hash does not describe.
			if len(bytes.Trim(value, " :\t")) > 0 {
				return fmt.Sprintf("the process was started with %s=%s, which loads code its binary's hash does not cover; run it without %s", name, quoteShort(value), name)
			}
		case "LD_LIBRARY_PATH":
			if dir, bad := untrustedLibDir(string(value)); bad {
				return fmt.Sprintf("the process was started with LD_LIBRARY_PATH naming %s, outside the system library directories, so it may load libraries its binary's hash does not cover; run it without that entry", quoteShort([]byte(dir)))
			}
		}
	}
	return ""
}

// untrustedLibDir returns the first LD_LIBRARY_PATH entry that is not a
// system library directory. glibc splits on ':' and ';', and an empty entry
// means the current directory.
func untrustedLibDir(list string) (string, bool) {
	start := 0
	for i := 0; i <= len(list); i++ {
		if i < len(list) && list[i] != ':' && list[i] != ';' {
			continue
		}
		dir := list[start:i]
		start = i + 1
		if !isSystemLibDir(dir) {
			if dir == "" {
				return "an empty entry (the current directory)", true
			}
			return dir, true
		}
	}
	return "", false
}

// isSystemLibDir accepts the system library directories and one multiarch
// level below them (/usr/lib/x86_64-linux-gnu). Dynamic string tokens such as
// $ORIGIN and relative paths are refused: they point wherever the caller is.
func isSystemLibDir(dir string) bool {
	if !filepath.IsAbs(dir) || strings.ContainsRune(dir, '$') {
		return false
	}
	dir = filepath.Clean(dir)
	for _, sys := range systemLibDirs {
		if dir == sys {
			return true
		}
		if rest, ok := strings.CutPrefix(dir, sys+"/"); ok && isMultiarch(rest) {
			return true
		}
	}
	return false
}

// isMultiarch matches a Debian multiarch tuple such as x86_64-linux-gnu or
// arm-linux-gnueabihf: one path element of the form <cpu>-linux-<abi>.
func isMultiarch(s string) bool {
	cpu, abi, ok := strings.Cut(s, "-linux-")
	if !ok || cpu == "" || abi == "" {
		return false
	}
	for _, c := range cpu + abi {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func quoteShort(b []byte) string {
	const max = 200
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

// readProc reads a /proc file whole, refusing one over limit bytes. It uses
// plain system calls: an os.File would first try to register with the
// network poller, which for these small files costs more than the read, and
// this runs before every request.
func readProc(path string, limit int) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4<<10)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, fmt.Errorf("read %s: more than %d bytes", path, limit)
			}
			buf = slices.Grow(buf, len(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
