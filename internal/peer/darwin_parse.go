package peer

// The parsers in this file read what the macOS kernel returns about a
// process. They are pure and build on every OS, so their tests run on the
// Linux CI too; peer_darwin.go feeds them the kernel's bytes.

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// auditToken is the kernel's audit_token_t (eight unsigned ints, see
// <bsm/libbsm.h>: audit_token_to_pid and friends). The pid together with
// pidversion names one process image for good: the kernel bumps pidversion
// on every fork and exec, so neither a recycled pid nor an exec'd program
// carries the same pair.
type auditToken struct {
	AUID, EUID, EGID, RUID, RGID uint32
	PID                          int32
	ASID                         uint32
	PIDVersion                   int32
}

// auditTokenSize is sizeof(audit_token_t).
const auditTokenSize = 32

// tokenFromWords lays the eight words of an audit_token_t out as libbsm
// reads them: val[0] auid, val[1] euid, val[2] egid, val[3] ruid, val[4]
// rgid, val[5] pid, val[6] asid, val[7] pidversion.
func tokenFromWords(v [8]uint32) auditToken {
	return auditToken{
		AUID: v[0], EUID: v[1], EGID: v[2], RUID: v[3], RGID: v[4],
		PID: int32(v[5]), ASID: v[6], PIDVersion: int32(v[7]),
	}
}

// words is the inverse of tokenFromWords: the token as the kernel wants it
// passed back (csops_audittoken and friends).
func (t auditToken) words() [8]uint32 {
	return [8]uint32{t.AUID, t.EUID, t.EGID, t.RUID, t.RGID, uint32(t.PID), t.ASID, uint32(t.PIDVersion)}
}

// parseAuditToken reads an audit_token_t from its 32 bytes in host order
// (every Mac, Intel or Apple silicon, is little-endian).
func parseAuditToken(b []byte) (auditToken, error) {
	if len(b) != auditTokenSize {
		return auditToken{}, fmt.Errorf("audit token of %d bytes, want %d", len(b), auditTokenSize)
	}
	var v [8]uint32
	for i := range v {
		v[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return tokenFromWords(v), nil
}

// validate refuses a token that cannot describe a live user process.
func (t auditToken) validate() error {
	if t.PID <= 0 {
		return fmt.Errorf("the kernel's audit token names pid %d; the peer cannot be identified", t.PID)
	}
	return nil
}

// uniqIdentifierInfoSize is sizeof(struct proc_uniqidentifierinfo), what
// proc_pidinfo(PROC_PIDUNIQIDENTIFIERINFO) returns: p_uuid[16], p_uniqueid
// (uint64 at 16), p_puniqueid (uint64 at 24), p_idversion (int32 at 32),
// then reserved fields (newer kernels put p_orig_ppidversion at 36).
const uniqIdentifierInfoSize = 56

// pidVersionFromUniqInfo extracts p_idversion, the same number an audit
// token carries as pidversion.
func pidVersionFromUniqInfo(b []byte) (int32, error) {
	if len(b) != uniqIdentifierInfoSize {
		return 0, fmt.Errorf("proc_uniqidentifierinfo of %d bytes, want %d", len(b), uniqIdentifierInfoSize)
	}
	return int32(binary.LittleEndian.Uint32(b[32:])), nil
}

// vnodePathInfoSize is sizeof(struct proc_vnodepathinfo): two struct
// vnode_info_path (cwd, then root), each a struct vnode_info (152 bytes:
// vinfo_stat 136, vi_type, vi_pad, vi_fsid) followed by a MAXPATHLEN path.
const (
	vnodeInfoSize      = 152
	maxPathLen         = 1024
	vnodePathInfoSize  = 2 * (vnodeInfoSize + maxPathLen)
	vnodePathInfoCwdAt = vnodeInfoSize
)

// cwdFromVnodePathInfo returns the current directory recorded in a
// proc_vnodepathinfo, or "" when there is none.
func cwdFromVnodePathInfo(b []byte) string {
	if len(b) < vnodePathInfoCwdAt+maxPathLen {
		return ""
	}
	return cString(b[vnodePathInfoCwdAt : vnodePathInfoCwdAt+maxPathLen])
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// procArgs is what the kern.procargs2 sysctl reports about a process: the
// path it was exec'd with, its arguments and its environment. All of it
// lives in the process's own memory and is as the process left it, so it is
// evidence of what it was started with, never proof.
type procArgs struct {
	ExecPath string
	Argv     []string
	Env      []string
}

var errProcArgs = errors.New("malformed kern.procargs2 data")

// maxProcArgs bounds what parseProcArgs accepts: the kernel never returns
// more than kern.argmax (1 MiB by default) for one process.
const maxProcArgs = 16 << 20

// parseProcArgs decodes kern.procargs2: a 32-bit argc in host order, the
// exec path NUL-terminated, NUL padding, then argc NUL-terminated arguments,
// then the environment strings, ended by an empty string (after which come
// the "apple" strings the kernel passes to dyld, which are not the
// environment and are ignored).
func parseProcArgs(b []byte) (procArgs, error) {
	if len(b) > maxProcArgs {
		return procArgs{}, fmt.Errorf("%w: %d bytes", errProcArgs, len(b))
	}
	if len(b) < 4 {
		return procArgs{}, fmt.Errorf("%w: %d bytes, too short for argc", errProcArgs, len(b))
	}
	argc := int(int32(binary.LittleEndian.Uint32(b)))
	rest := b[4:]
	// Every argument takes at least its NUL, so argc cannot exceed what is left.
	if argc < 0 || argc > len(rest) {
		return procArgs{}, fmt.Errorf("%w: argc %d with %d bytes left", errProcArgs, argc, len(rest))
	}
	var pa procArgs
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return procArgs{}, fmt.Errorf("%w: exec path not terminated", errProcArgs)
	}
	pa.ExecPath = string(rest[:i])
	rest = rest[i:]
	for len(rest) > 0 && rest[0] == 0 {
		rest = rest[1:]
	}
	pa.Argv = make([]string, 0, argc)
	for range argc {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return procArgs{}, fmt.Errorf("%w: %d of %d arguments, the last not terminated", errProcArgs, len(pa.Argv), argc)
		}
		pa.Argv = append(pa.Argv, string(rest[:i]))
		rest = rest[i+1:]
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i == 0 {
			break // the empty string that ends the environment
		}
		if i < 0 {
			// Unterminated: the buffer was cut. Keep what is there, since
			// a loader variable in it still counts.
			i = len(rest)
		}
		pa.Env = append(pa.Env, string(rest[:i]))
		rest = rest[min(i+1, len(rest)):]
	}
	return pa, nil
}

// dyldTampering returns why env makes dyld load code the image hash does
// not cover, or "". Every DYLD_ variable that names libraries, frameworks,
// a root or a shared cache changes what gets loaded (DYLD_INSERT_LIBRARIES
// most directly); only the DYLD_PRINT_ family, which just logs, is let
// through. dyld ignores these variables for restricted (hardened,
// setuid, platform) binaries, but that is not checked here: the variable's
// presence alone says the caller tried, and it is refused either way.
func dyldTampering(env []string) string {
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "DYLD_") || strings.HasPrefix(name, "DYLD_PRINT_") {
			continue
		}
		if strings.Trim(value, " :\t") == "" {
			continue // names nothing, loads nothing
		}
		return fmt.Sprintf("the process was started with %s=%s, which can make the loader run code its binary's hash does not cover; run it without %s",
			name, quoteEnv(value), name)
	}
	return ""
}

// quoteEnv quotes an environment value for a message, cut short: the
// caller controls it and could make it megabytes long.
func quoteEnv(v string) string {
	const max = 200
	if len(v) > max {
		return strconv.Quote(v[:max]) + "..."
	}
	return strconv.Quote(v)
}

// pTraced is P_TRACED in kinfo_proc's p_flag (<sys/proc.h>): a debugger or
// another tracer is attached through ptrace.
const pTraced = 0x00000800

func isTraced(pflag int32) bool { return pflag&pTraced != 0 }

// capArgs keeps the leading arguments that fit in limit bytes (each counted
// with its NUL).
func capArgs(argv []string, limit int) []string {
	n := 0
	for i, a := range argv {
		n += len(a) + 1
		if n > limit {
			return argv[:i]
		}
	}
	return argv
}

// Code signature parsing. The kernel enforces a process's code against the
// code directory (CD) it loaded at exec and reports that directory's hash
// (the cdhash, csops CS_OPS_CDHASH). A file whose signature holds a CD with
// the same hash describes the same code page for page, so finding the
// kernel's cdhash among a file's CDs proves the file opened by name is the
// image the process runs, not something put under that name since.

// Mach-O constants (<mach-o/loader.h>, <kern/cs_blobs.h>).
const (
	machMagic32        = 0xfeedface
	machMagic64        = 0xfeedfacf
	lcCodeSignature    = 0x1d
	csMagicEmbedded    = 0xfade0cc0 // CSMAGIC_EMBEDDED_SIGNATURE
	csMagicCodeDir     = 0xfade0c02 // CSMAGIC_CODEDIRECTORY
	csSlotCodeDir      = 0
	csSlotAltCodeDir   = 0x1000 // CSSLOT_ALTERNATE_CODEDIRECTORIES, five of them
	csSlotAltCodeDirs  = 5
	cdHashLen          = 20 // CS_CDHASH_LEN
	csHashTypeSHA1     = 1
	csHashTypeSHA256   = 2
	csHashTypeSHA256T  = 3 // SHA-256 truncated
	csHashTypeSHA384   = 4
	maxLoadCommands    = 1 << 20
	maxSignatureLength = 64 << 20
	// maxLoadCommandBytes bounds what is allocated for the load commands:
	// real images keep them well under 64 KiB, and a sparse file must not
	// make each connection allocate gigabytes.
	maxLoadCommandBytes = 1 << 20
)

var errNoSignature = errors.New("the executable has no code signature")

// cdHashes returns the cdhash of every code directory in the Mach-O image
// that starts at offset off of r (a slice of a universal file, or 0); size
// is the file's size, which bounds what the headers may claim.
func cdHashes(r io.ReaderAt, off, size int64) ([][cdHashLen]byte, error) {
	var hdr [32]byte
	if _, err := r.ReadAt(hdr[:28], off); err != nil {
		return nil, fmt.Errorf("Mach-O header: %w", err)
	}
	le := binary.LittleEndian
	var hdrSize int64
	switch le.Uint32(hdr[:]) {
	case machMagic64:
		hdrSize = 32
	case machMagic32:
		hdrSize = 28
	default:
		return nil, fmt.Errorf("not a little-endian Mach-O image at offset %d", off)
	}
	ncmds, sizeofcmds := le.Uint32(hdr[16:]), le.Uint32(hdr[20:])
	if ncmds > maxLoadCommands || sizeofcmds > maxLoadCommandBytes || int64(sizeofcmds) > size-off-hdrSize {
		return nil, fmt.Errorf("Mach-O header claims %d load commands in %d bytes", ncmds, sizeofcmds)
	}
	cmds := make([]byte, sizeofcmds)
	if _, err := r.ReadAt(cmds, off+hdrSize); err != nil {
		return nil, fmt.Errorf("Mach-O load commands: %w", err)
	}
	var sigOff, sigLen uint32
	found := false
	for i, p := uint32(0), 0; i < ncmds; i++ {
		if p+8 > len(cmds) {
			return nil, errors.New("Mach-O load commands overrun their size")
		}
		cmd, size := le.Uint32(cmds[p:]), int(le.Uint32(cmds[p+4:]))
		if size < 8 || p+size > len(cmds) {
			return nil, fmt.Errorf("Mach-O load command %d has size %d", i, size)
		}
		if cmd == lcCodeSignature {
			if size < 16 {
				return nil, errors.New("LC_CODE_SIGNATURE too short")
			}
			sigOff, sigLen, found = le.Uint32(cmds[p+8:]), le.Uint32(cmds[p+12:]), true
		}
		p += size
	}
	if !found {
		return nil, errNoSignature
	}
	if sigLen < 12 || sigLen > maxSignatureLength || int64(sigOff)+int64(sigLen) > size-off {
		return nil, fmt.Errorf("code signature of %d bytes at %d in a %d-byte image", sigLen, sigOff, size-off)
	}
	sig := make([]byte, sigLen)
	if _, err := r.ReadAt(sig, off+int64(sigOff)); err != nil {
		return nil, fmt.Errorf("code signature: %w", err)
	}
	return superBlobCDHashes(sig)
}

// superBlobCDHashes hashes the code directories of an embedded signature
// (a big-endian SuperBlob).
func superBlobCDHashes(sig []byte) ([][cdHashLen]byte, error) {
	be := binary.BigEndian
	if len(sig) < 12 || be.Uint32(sig) != csMagicEmbedded {
		return nil, errors.New("the code signature is not an embedded signature SuperBlob")
	}
	length, count := be.Uint32(sig[4:]), be.Uint32(sig[8:])
	// The index must fit the blob's own length, which may be shorter than
	// what was read.
	if int64(length) > int64(len(sig)) || length < 12 || int64(count) > (int64(length)-12)/8 {
		return nil, fmt.Errorf("SuperBlob of %d bytes with %d entries does not fit its %d bytes", length, count, len(sig))
	}
	sig = sig[:length]
	var out [][cdHashLen]byte
	for i := range int(count) {
		typ, at := be.Uint32(sig[12+8*i:]), be.Uint32(sig[16+8*i:])
		if typ != csSlotCodeDir && (typ < csSlotAltCodeDir || typ >= csSlotAltCodeDir+csSlotAltCodeDirs) {
			continue
		}
		if int64(at)+8 > int64(len(sig)) || be.Uint32(sig[at:]) != csMagicCodeDir {
			return nil, fmt.Errorf("code directory %d at %d is not a code directory", i, at)
		}
		n := be.Uint32(sig[at+4:])
		if n < 38 || int64(at)+int64(n) > int64(len(sig)) {
			return nil, fmt.Errorf("code directory %d of %d bytes at %d does not fit", i, n, at)
		}
		cd := sig[at : at+n]
		var sum []byte
		switch cd[37] { // hashType
		case csHashTypeSHA1:
			s := sha1.Sum(cd)
			sum = s[:]
		case csHashTypeSHA256, csHashTypeSHA256T:
			s := sha256.Sum256(cd)
			sum = s[:]
		case csHashTypeSHA384:
			s := sha512.Sum384(cd)
			sum = s[:]
		default:
			continue // a hash type the kernel could not have chosen either
		}
		var h [cdHashLen]byte
		copy(h[:], sum)
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, errNoSignature
	}
	return out, nil
}

// Code signing status flags (<kern/cs_blobs.h>).
const (
	csValid    = 0x00000001
	csDebugged = 0x10000000
	csSigned   = 0x20000000
)

// codeSigningTampering reads the kernel's code signing flags: a signed
// process whose signature went invalid runs pages that differ from its
// binary, and one marked debugged has had a debugger (or a task port
// holder) able to change its memory.
func codeSigningTampering(flags uint32) string {
	switch {
	case flags&csDebugged != 0:
		return "the process has been under a debugger (the kernel marks its code signature as debugged), so its memory may differ from its binary"
	case flags&csSigned != 0 && flags&csValid == 0:
		return "the process's code signature is no longer valid: it runs code that differs from its signed binary"
	}
	return ""
}

// changedAfter reports whether a file's ctime (seconds, nanoseconds) is
// later than a process start time (seconds, microseconds, as kinfo_proc
// keeps it).
func changedAfter(ctimeSec, ctimeNsec, startSec, startUsec int64) bool {
	return ctimeSec > startSec || ctimeSec == startSec && ctimeNsec > startUsec*1000
}

// maxTeamID bounds a team identifier; Apple's are 10 characters.
const maxTeamID = 64

// parseTeamID reads what csops(CS_OPS_TEAMID) writes: an 8-byte blob header
// whose second word is the blob's big-endian length (header included),
// then the identifier with its NUL. Only printable ASCII is accepted: it is
// shown to users and written to logs.
func parseTeamID(b []byte) (string, error) {
	if len(b) < 8 {
		return "", errors.New("team id: short header")
	}
	n := int64(binary.BigEndian.Uint32(b[4:8])) - 8
	if n <= 1 || n > int64(len(b)-8) || n > maxTeamID+1 {
		return "", fmt.Errorf("team id: length %d does not fit", n)
	}
	id := b[8 : 8+n]
	if id[len(id)-1] == 0 {
		id = id[:len(id)-1]
	}
	if len(id) == 0 {
		return "", errors.New("team id: empty")
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("team id: byte %#x is not printable", c)
		}
	}
	return string(id), nil
}
