package peer

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Tampered reports whether the peer runs in a state where its image hash no
// longer says which code it runs: it is being traced (P_TRACED: a debugger
// or an injector is attached), its code signature went invalid or was marked
// debugged, or its environment sets a DYLD_ variable that makes the loader
// bring in other code (DYLD_INSERT_LIBRARIES and the path overrides). reason
// says which; it is empty when nothing was found.
//
// err is set when the check could not be completed; it wraps ErrGone when
// the peer exited or exec'd. The environment comes from kern.procargs2,
// which reads the process's own memory: a process that rewrote it after
// start can hide a variable there (see docs/threat-model.md).
func (p *Peer) Tampered() (reason string, err error) {
	reason, err = p.inspect()
	// One check covers every read above: the pidversion is unchanged, so
	// all of it described the process that connected.
	if aerr := p.Alive(); aerr != nil {
		return "", aerr
	}
	return reason, err
}

func (p *Peer) inspect() (string, error) {
	tracer, err := p.tracer()
	if err != nil {
		return "", err
	}
	if tracer != 0 {
		return TracedReason(tracer, p.PID, p.PID), nil
	}
	// A status that cannot be read is a check not made: refuse (Tampered
	// turns an exited peer into ErrGone).
	st, err := csStatus(p.exec.tok)
	if err != nil {
		return "", fmt.Errorf("read the code signing status of peer pid %d: %w", p.PID, err)
	}
	if reason := codeSigningTampering(st); reason != "" {
		return reason, nil
	}
	b, err := unix.SysctlRaw("kern.procargs2", p.PID)
	if err != nil {
		return "", fmt.Errorf("check the environment of peer pid %d for loader variables: sysctl kern.procargs2: %w", p.PID, err)
	}
	pa, err := parseProcArgs(b)
	if err != nil {
		return "", fmt.Errorf("check the environment of peer pid %d for loader variables: %w", p.PID, err)
	}
	return dyldTampering(pa.Env), nil
}

// tracer returns 0 when the peer is not traced. When it is, macOS does not
// name the tracer directly: ptrace(PT_ATTACH) makes the tracer the parent,
// so the parent pid is returned, or -1 when that is unknown.
func (p *Peer) tracer() (int, error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", p.PID)
	if err != nil {
		if aerr := p.Alive(); aerr != nil {
			return 0, aerr
		}
		return 0, fmt.Errorf("check peer pid %d for tracing: sysctl kern.proc.pid: %w", p.PID, err)
	}
	if !isTraced(k.Proc.P_flag) {
		return 0, nil
	}
	if ppid := int(k.Eproc.Ppid); ppid > 0 {
		return ppid, nil
	}
	return -1, nil
}

// TracedBy returns the pid of the process tracing the peer (its parent, see
// tracer), -1 when it is traced by an unknown process or the kernel has
// marked its code signature debugged since (a debugger that attached and
// left between two checks leaves that mark), or 0. macOS reports tracing
// per process, so tid is always the peer's pid.
func (p *Peer) TracedBy() (tracer, tid int, err error) {
	tracer, err = p.tracer()
	if err != nil {
		return 0, 0, err
	}
	if tracer == 0 {
		st, err := csStatus(p.exec.tok)
		if aerr := p.Alive(); aerr != nil {
			return 0, 0, aerr
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read the code signing status of peer pid %d: %w", p.PID, err)
		}
		if st&csDebugged != 0 {
			tracer = -1
		}
	}
	if err := p.Alive(); err != nil {
		return 0, 0, err
	}
	return tracer, p.PID, nil
}
