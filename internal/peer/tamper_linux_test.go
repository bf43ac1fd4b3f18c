package peer

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// procPeer names a running process the way FromConn would on a kernel
// without SO_PEERPIDFD: by pid, pinned with pidfd_open.
func procPeer(t *testing.T, pid int) *Peer {
	t.Helper()
	p, err := newPeer(&unix.Ucred{Pid: int32(pid), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}, -1, unix.ENOPROTOOPT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// startProc runs path with env (nil: none) and returns its pid; it is
// killed and reaped when the test ends.
func startProc(t *testing.T, env []string, path string, args ...string) int {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// startTraced runs path as a ptrace tracee of a locked OS thread of this
// process (ptrace requests are only accepted from the tracer thread). The
// tracee stops at exec, is continued, and stays traced until the test ends.
func startTraced(t *testing.T, path string, args ...string) int {
	t.Helper()
	type started struct {
		pid int
		err error
	}
	ready := make(chan started, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread is the tracer and ends with us.
		runtime.LockOSThread()
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			ready <- started{err: err}
			return
		}
		defer devnull.Close()
		proc, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{
			Files: []*os.File{devnull, devnull, devnull},
			Sys:   &syscall.SysProcAttr{Ptrace: true},
		})
		if err != nil {
			ready <- started{err: err}
			return
		}
		defer proc.Release()
		pid := proc.Pid
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
			proc.Kill()
			ready <- started{err: errors.New("tracee did not stop at exec")}
			return
		}
		if err := syscall.PtraceCont(pid, 0); err != nil {
			proc.Kill()
			ready <- started{err: err}
			return
		}
		ready <- started{pid: pid}
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.Exited() || ws.Signaled() {
				return
			}
			if ws.Stopped() {
				sig := ws.StopSignal()
				if sig == syscall.SIGTRAP {
					sig = 0
				}
				syscall.PtraceCont(pid, int(sig))
			}
		}
	}()
	s := <-ready
	if s.err != nil {
		t.Fatalf("start %s traced: %v", path, s.err)
	}
	t.Cleanup(func() {
		unix.Kill(s.pid, unix.SIGKILL)
		<-done
	})
	return s.pid
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed: %v; CI has coreutils", name, err)
		}
		t.Skipf("SKIPPED: %s not installed: %v", name, err)
	}
	return p
}

// dynamicProgram is a system program that goes through the dynamic loader.
func dynamicProgram(t *testing.T) string {
	t.Helper()
	p := lookPath(t, "sleep")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if dyn, err := hasInterp(f); err != nil || !dyn {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not dynamically linked (%v); CI's Debian coreutils are", p, err)
		}
		t.Skipf("SKIPPED: %s is not dynamically linked here (%v), so the loader-injection checks are not exercised", p, err)
	}
	return p
}

func TestTamperedByLoaderVariables(t *testing.T) {
	t.Parallel()
	sleep := dynamicProgram(t)
	cases := []struct {
		env  []string
		want string // substring of the reason; "" for clean
	}{
		{nil, ""},
		{[]string{"PATH=/usr/bin", "LD_LIBRARY_PATH=/usr/lib:/lib/x86_64-linux-gnu"}, ""},
		{[]string{"LD_PRELOAD="}, ""},
		{[]string{"LD_PRELOAD=/nonexistent/evil.so"}, "LD_PRELOAD"},
		{[]string{"LD_AUDIT=/nonexistent/audit.so"}, "LD_AUDIT"},
		{[]string{"LD_LIBRARY_PATH=/usr/lib:/tmp/x"}, `"/tmp/x"`},
		{[]string{"LD_LIBRARY_PATH=/usr/lib::/lib"}, "current directory"},
	}
	for _, tc := range cases {
		p := procPeer(t, startProc(t, tc.env, sleep, "600"))
		reason, err := p.Tampered()
		if err != nil {
			t.Errorf("env %q: Tampered: %v", tc.env, err)
			continue
		}
		if tc.want == "" && reason != "" || !strings.Contains(reason, tc.want) {
			t.Errorf("env %q: reason %q, want it to mention %q", tc.env, reason, tc.want)
		}
	}
}

func TestStaticImageIgnoresLoaderVariables(t *testing.T) {
	t.Parallel()
	bin := linkHelper(t)
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := hasInterp(f)
	f.Close()
	if err != nil || dyn {
		t.Fatalf("the helper was built with CGO_ENABLED=0 and must be static: hasInterp = %v, %v", dyn, err)
	}
	// The helper stays alive, blocked on its connection, until the test ends.
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := procPeer(t, startProc(t, []string{"LD_PRELOAD=/nonexistent/evil.so"}, bin, sock))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if reason, err := p.Tampered(); reason != "" || err != nil {
		t.Errorf("static image under LD_PRELOAD: reason %q, err %v; want neither (the loader never runs)", reason, err)
	}
}

func TestTracedProcessIsTampered(t *testing.T) {
	t.Parallel()
	sleep := lookPath(t, "sleep")
	p := procPeer(t, startTraced(t, sleep, "600"))
	reason, err := p.Tampered()
	if err != nil || !strings.Contains(reason, "traced by pid") {
		t.Errorf("traced process: reason %q, err %v; want a tracing reason", reason, err)
	}
	clean := procPeer(t, startProc(t, nil, sleep, "600"))
	if reason, err := clean.Tampered(); reason != "" || err != nil {
		t.Errorf("untraced process: reason %q, err %v", reason, err)
	}
}

func TestTamperedAfterExitIsGone(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(lookPath(t, "sleep"), "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := procPeer(t, cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := p.Tampered(); !errors.Is(err, ErrGone) {
		t.Errorf("Tampered after exit = %v, want ErrGone", err)
	}
}

func TestUntrustedLibDir(t *testing.T) {
	t.Parallel()
	for list, bad := range map[string]string{
		"/usr/lib":                           "",
		"/usr/lib/":                          "",
		"/lib64:/usr/local/lib":              "",
		"/usr/lib/x86_64-linux-gnu;/lib":     "",
		"/usr/lib/arm-linux-gnueabihf":       "",
		"/usr/lib/../../tmp":                 "/usr/lib/../../tmp",
		"lib":                                "lib",
		"$ORIGIN/../lib":                     "$ORIGIN/../lib",
		"/usr/$LIB":                          "/usr/$LIB",
		"/usr/lib/x86_64-linux-gnu/evil":     "/usr/lib/x86_64-linux-gnu/evil",
		"/usr/lib/x-linux-":                  "/usr/lib/x-linux-",
		"/home/me/lib":                       "/home/me/lib",
		"":                                   "an empty entry (the current directory)",
		"/usr/lib:":                          "an empty entry (the current directory)",
		"/opt/lib:/usr/lib":                  "/opt/lib",
		"/usr/libexec":                       "/usr/libexec",
		"/usr/lib/x86_64-linux-gnu/../../..": "/usr/lib/x86_64-linux-gnu/../../..",
	} {
		got, isBad := untrustedLibDir(list)
		if isBad != (bad != "") || got != bad {
			t.Errorf("untrustedLibDir(%q) = %q, %v; want %q", list, got, isBad, bad)
		}
	}
}

func TestHasInterpOnRealImages(t *testing.T) {
	t.Parallel()
	for _, path := range []string{lookPath(t, "sleep"), helperBin} {
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := hasInterp(f)
		ef, eerr := elf.NewFile(f)
		if eerr != nil {
			t.Fatalf("debug/elf cannot read %s: %v", path, eerr)
		}
		want := false
		for _, p := range ef.Progs {
			want = want || p.Type == elf.PT_INTERP
		}
		f.Close()
		if err != nil || got != want {
			t.Errorf("hasInterp(%s) = %v, %v; debug/elf says %v", path, got, err, want)
		}
	}
	if _, err := hasInterp(strings.NewReader("#!/bin/sh\n")); !errors.Is(err, errNotELF) {
		t.Errorf("a script: err %v, want errNotELF", err)
	}
	if _, err := hasInterp(bytes.NewReader(nil)); !errors.Is(err, errNotELF) {
		t.Errorf("an empty file: err %v, want errNotELF", err)
	}
}

// FuzzHasInterp holds the small program-header reader to debug/elf on any
// input debug/elf accepts, and requires it never to panic or read beyond
// what the kernel's loader would.
func FuzzHasInterp(f *testing.F) {
	for _, path := range []string{"/bin/sleep", "/bin/true", helperBin} {
		if b, err := readHead(path, 1<<10); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("#!/bin/sh\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &countingReader{r: bytes.NewReader(b)}
		got, err := hasInterp(r)
		if r.max > maxPhdrs+64 {
			t.Fatalf("read up to %d bytes in one call", r.max)
		}
		ef, eerr := elf.NewFile(bytes.NewReader(b))
		if eerr != nil || err != nil {
			return
		}
		want := false
		for _, p := range ef.Progs {
			want = want || p.Type == elf.PT_INTERP
		}
		if got != want {
			t.Fatalf("hasInterp = %v, debug/elf finds PT_INTERP: %v", got, want)
		}
	})
}

func readHead(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

type countingReader struct {
	r   io.ReaderAt
	max int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.max = max(c.max, len(p))
	return c.r.ReadAt(p, off)
}

// BenchmarkTampered is the tamper check the daemon runs before every
// request, on this (running, untraced) test process.
func BenchmarkTampered(b *testing.B) {
	p, err := newPeer(&unix.Ucred{Pid: int32(os.Getpid())}, -1, unix.ENOPROTOOPT)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if reason, err := p.Tampered(); reason != "" || err != nil {
			b.Fatal(reason, err)
		}
	}
}
