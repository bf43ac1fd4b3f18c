package e2e

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/protocol"
)

// Clients only some tests need, built on first use.
var (
	kafdOnce    sync.Once
	kafd, kafd1 string // kafd variants 0 and 1 (different hashes)
	kafdErr     error
	dynOnce     sync.Once
	dynClient   string // kaclient linked dynamically
	dynErr      error
)

func buildKafd(t *testing.T) {
	t.Helper()
	kafdOnce.Do(func() {
		kafd, kafd1 = filepath.Join(binDir, "kafd"), filepath.Join(binDir, "kafd-v1")
		kafdErr = errors.Join(
			goBuild("0", "-o", kafd, "./testdata/kafd"),
			goBuild("0", "-ldflags", "-X main.variant=1", "-o", kafd1, "./testdata/kafd"))
	})
	if kafdErr != nil {
		t.Fatal(kafdErr)
	}
}

// buildDynamicClient builds kaclient linked by the system linker against
// libc, so that it starts through the dynamic loader (it has a PT_INTERP).
// That needs a C toolchain: the test is skipped without one, except in CI.
func buildDynamicClient(t *testing.T) string {
	t.Helper()
	dynOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			dynErr = fmt.Errorf("no C compiler to link a dynamic client: %w", err)
			return
		}
		dynClient = filepath.Join(binDir, "kaclient-dyn")
		if dynErr = goBuild("1", "-ldflags", "-linkmode=external", "-o", dynClient, "./testdata/kaclient"); dynErr != nil {
			return
		}
		if !hasInterp(dynClient) {
			dynErr = fmt.Errorf("%s was linked externally but has no PT_INTERP", dynClient)
		}
	})
	if dynErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(dynErr)
		}
		t.Skip(dynErr)
	}
	return dynClient
}

func goBuild(cgo string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %v\n%s", args, err, out)
	}
	return nil
}

func hasInterp(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// withEnv returns a copy of e whose processes also get vars.
func (e *env) withEnv(vars ...string) *env {
	c := *e
	c.vars = append(append([]string(nil), e.vars...), vars...)
	return &c
}

func TestLoaderInjectionIsRefusedAsTampered(t *testing.T) {
	t.Parallel()
	dyn := buildDynamicClient(t)
	e := newEnv(t)
	e.mustKA("register", dyn, "--read", "svc")
	e.mustKA("register", client, "--read", "svc")
	e.start()
	check := req("check", "", nil)

	for _, tc := range []struct {
		name     string
		bin      string
		vars     []string
		tampered bool
	}{
		{"dynamic, clean environment", dyn, nil, false},
		{"dynamic, LD_PRELOAD", dyn, []string{"LD_PRELOAD=/nonexistent/inject.so"}, true},
		{"dynamic, LD_AUDIT", dyn, []string{"LD_AUDIT=/nonexistent/audit.so"}, true},
		{"dynamic, LD_LIBRARY_PATH outside the system", dyn, []string{"LD_LIBRARY_PATH=/tmp/x"}, true},
		{"dynamic, LD_LIBRARY_PATH of system directories", dyn, []string{"LD_LIBRARY_PATH=/usr/lib:/lib"}, false},
		{"static, LD_PRELOAD", client, []string{"LD_PRELOAD=/nonexistent/inject.so"}, false},
	} {
		resps, closed := e.withEnv(tc.vars...).call(tc.bin, check, check)
		if !tc.tampered {
			if len(resps) != 2 || closed {
				t.Fatalf("%s: got %d replies, closed=%v; want 2 and open", tc.name, len(resps), closed)
			}
			wantStatus(t, resps[0], protocol.StatusSuccess, "")
			continue
		}
		if len(resps) != 1 || !closed {
			t.Fatalf("%s: got %d replies, closed=%v; want 1 then closed", tc.name, len(resps), closed)
		}
		wantStatus(t, resps[0], protocol.StatusDenied, protocol.ReasonProcessTampered)
		name, _, _ := strings.Cut(tc.vars[0], "=")
		if !strings.Contains(resps[0].Message, name) {
			t.Errorf("%s: message %q does not name %s", tc.name, resps[0].Message, name)
		}
	}
	// Refusals of one binary for one reason are written at most once a
	// second; a record stands for details.repeats of them (see
	// recordDenial), and the last count is written within about a second.
	denied := func() int {
		n := 0
		for _, r := range e.records() {
			if r.Event == audit.EventConnectDenied && r.Reason == string(protocol.ReasonProcessTampered) {
				n += repeats(t, r)
				if r.BinaryHash == "" || r.Action != "check" {
					t.Errorf("tampered connect recorded without its binary or request: %+v", r)
				}
			}
		}
		return n
	}
	waitFor(t, "3 tampered connects counted in the audit log", func() bool { return denied() >= 3 })
	if n := denied(); n != 3 {
		t.Errorf("%d connect_denied/process_tampered refusals recorded, want 3", n)
	}
}

// tracee is a client process traced by a locked OS thread of this test:
// ptrace accepts requests only from the thread that became the tracer.
type tracee struct {
	pid    int
	tid    int // the thread attachThread traces; 0: the main one
	stdin  io.WriteCloser
	stdout *bufio.Reader
	attach chan chan error
	done   chan struct{}
}

// startTracee runs bin with args and e's environment. fromExec makes it a
// tracee from its first instruction (it stops at exec and is continued);
// otherwise it runs untraced until attach is called. It is killed and
// reaped when the test ends.
func startTracee(t *testing.T, e *env, fromExec bool, bin string, args ...string) *tracee {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracee{stdin: inW, stdout: bufio.NewReader(outR), attach: make(chan chan error), done: make(chan struct{})}
	started := make(chan error, 1)
	quit := make(chan struct{})
	go func() {
		defer close(tr.done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		proc, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{
			Env:   e.vars,
			Files: []*os.File{inR, outW, os.Stderr},
			Sys:   &syscall.SysProcAttr{Ptrace: fromExec},
		})
		inR.Close()
		outW.Close()
		if err != nil {
			started <- err
			return
		}
		defer proc.Release()
		tr.pid = proc.Pid
		var ws syscall.WaitStatus
		if fromExec {
			if _, err := syscall.Wait4(tr.pid, &ws, 0, nil); err != nil || !ws.Stopped() {
				proc.Kill()
				started <- fmt.Errorf("tracee did not stop at exec: %v %v", err, ws)
				return
			}
			if err := syscall.PtraceCont(tr.pid, 0); err != nil {
				proc.Kill()
				started <- err
				return
			}
		}
		started <- nil
		waitPID := tr.pid
		if !fromExec {
			select {
			case reply := <-tr.attach:
				if tr.tid != 0 {
					waitPID = tr.tid
				}
				reply <- unix.PtraceSeize(waitPID)
			case <-quit:
			}
		}
		for {
			if _, err := syscall.Wait4(waitPID, &ws, unix.WALL, nil); err != nil || ws.Exited() || ws.Signaled() {
				return
			}
			if ws.Stopped() {
				// Pass signals on (a Go client gets preemption signals);
				// the exec trap and seize events carry none.
				sig := ws.StopSignal()
				if sig == syscall.SIGTRAP {
					sig = 0
				}
				syscall.PtraceCont(waitPID, int(sig))
			}
		}
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
		unix.Kill(tr.pid, unix.SIGKILL)
		close(quit)
		<-tr.done
	})
	return tr
}

// attachNow makes the running tracee traced (PTRACE_SEIZE, which does not
// stop it).
func (tr *tracee) attachNow(t *testing.T) {
	t.Helper()
	tr.attachThread(t, 0)
}

// attachThread traces only thread tid of the tracee (0: its main thread).
func (tr *tracee) attachThread(t *testing.T, tid int) {
	t.Helper()
	tr.tid = tid
	reply := make(chan error)
	tr.attach <- reply
	if err := <-reply; err != nil {
		t.Fatalf("PTRACE_SEIZE pid %d thread %d: %v", tr.pid, tid, err)
	}
}

// next reads one reply line; ok is false on "CLOSED" or end of output.
func (tr *tracee) next(t *testing.T) (protocol.Response, bool) {
	t.Helper()
	line, err := tr.stdout.ReadBytes('\n')
	if err != nil || string(line) == "CLOSED\n" {
		return protocol.Response{}, false
	}
	var r protocol.Response
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("client printed %q: %v", line, err)
	}
	return r, true
}

func TestTracedClientIsRefusedAsTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc")
	e.start()
	check := req("check", "", nil)

	tr := startTracee(t, e, true, client, e.socket)
	io.WriteString(tr.stdin, check+"\n"+check+"\n")
	tr.stdin.Close()
	r, ok := tr.next(t)
	if !ok {
		t.Fatal("traced client got no reply")
	}
	wantStatus(t, r, protocol.StatusDenied, protocol.ReasonProcessTampered)
	if !strings.Contains(r.Message, "traced") {
		t.Errorf("message %q does not say the process is traced", r.Message)
	}
	if _, ok := tr.next(t); ok {
		t.Error("connection stays open after process_tampered")
	}
	// The same binary untraced is served: the refusal was about the tracer.
	wantStatus(t, e.one(client, check), protocol.StatusSuccess, "")
}

func TestTracerAttachedAfterConnectIsCaught(t *testing.T) {
	t.Parallel()
	buildKafd(t)
	e := newEnv(t)
	e.mustKA("register", kafd, "--read", "svc")
	e.start()

	tr := startTracee(t, e, false, kafd, e.socket, "stdin")
	io.WriteString(tr.stdin, `{"type":"REQUEST","id":1,"action":"check"}`+"\n")
	if r, ok := tr.next(t); !ok || r.Status != protocol.StatusSuccess {
		t.Fatalf("untraced first request: %+v (ok=%v)", r, ok)
	}
	tr.attachNow(t)
	// The daemon re-reads TracerPid at most every 50 ms (server.tracerRecheck);
	// let that interval pass so the next request is checked.
	time.Sleep(100 * time.Millisecond)
	io.WriteString(tr.stdin, `{"type":"REQUEST","id":2,"action":"read","service":"svc","targets":["a"]}`+"\n")
	r, ok := tr.next(t)
	if !ok {
		t.Fatal("no reply once traced")
	}
	wantStatus(t, r, protocol.StatusDenied, protocol.ReasonProcessTampered)
	io.WriteString(tr.stdin, `{"type":"REQUEST","id":3,"action":"check"}`+"\n")
	if _, ok := tr.next(t); ok {
		t.Error("connection stays open after process_tampered")
	}
	var found bool
	for _, rec := range e.records() {
		if rec.Event == audit.EventRequest && rec.Reason == string(protocol.ReasonProcessTampered) {
			found = found || rec.RequestID == "2" && rec.Service == "svc" && rec.Result == audit.ResultDenied &&
				strings.Contains(rec.Message, "traced by pid")
		}
	}
	if !found {
		t.Error("no request record with process_tampered for request 2 in the audit log")
	}
}

// execReplies parses what `kafd <socket> exec ...` printed: the reply to
// its check before the exec, then the reply the exec'd program got.
func execReplies(t *testing.T, what, out string) (before, after protocol.Response) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("%s: want the check reply, the reply to the exec'd program and a close; got %q", what, out)
	}
	if err := json.Unmarshal([]byte(lines[0]), &before); err != nil {
		t.Fatalf("%s: the check got no reply: %q", what, out)
	}
	if err := json.Unmarshal([]byte(lines[1]), &after); err != nil {
		t.Fatalf("%s: exec'd program got no reply: %q", what, out)
	}
	return before, after
}

// TestExecAfterConnectIsProcessChanged: a verified process hands its
// connection to a program it execs. Another binary changes the image; the
// same binary keeps the image hash, but an exec could have brought a new
// environment (LD_PRELOAD) with it, so both are refused.
func TestExecAfterConnectIsProcessChanged(t *testing.T) {
	t.Parallel()
	buildKafd(t)
	e := newEnv(t)
	e.mustKA("register", kafd, "--read", "svc")
	e.start()

	for _, target := range []string{kafd1, kafd} {
		line := `{"type":"REQUEST","id":"after-exec","action":"read","service":"svc","targets":["a"]}`
		cmd := exec.Command(kafd, e.socket, "exec", target, line)
		cmd.Env = e.vars
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 3 || err != nil && !ok {
			t.Fatalf("kafd exec %s: %v\n%s", target, err, errb.String())
		}
		before, after := execReplies(t, "exec "+target, string(out))
		wantStatus(t, before, protocol.StatusSuccess, "")
		wantStatus(t, after, protocol.StatusDenied, protocol.ReasonProcessChanged)
		if string(after.ID) != `"after-exec"` {
			t.Errorf("exec %s: reply id %s", target, after.ID)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) == 3 && lines[2] != "CLOSED" {
			t.Errorf("exec %s: unexpected output after the refusal: %q", target, lines[2])
		}
	}
}

// unprivileged is a daemon run as uid 65534 in a tree that uid owns.
type unprivileged struct {
	e   *env
	d   *daemon
	pid string
}

const nobody = 65534

// asUser runs a command as the unprivileged uid, in its world.
func (u *unprivileged) asUser(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = u.e.vars, u.e.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	return cmd
}

// startUnprivileged registers each binary for reading "svc" and runs the
// daemon, all as uid 65534. It needs root, to switch uid.
func startUnprivileged(t *testing.T, register ...string) *unprivileged {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root to run the daemon as another uid, and CI runs as root")
		}
		t.Skip("SKIPPED: needs root to run the daemon as an unprivileged uid; run the e2e tests as root to cover this")
	}
	// t.TempDir's parents are private to root; this tree belongs to the uid.
	base, err := os.MkdirTemp("", "ka-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	u := &unprivileged{e: &env{t: t, home: base, socket: filepath.Join(base, "run", "keychain-auth", "agent.sock")}}
	u.e.vars = []string{
		"HOME=" + base, "PATH=" + os.Getenv("PATH"),
		"XDG_CONFIG_HOME=" + filepath.Join(base, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(base, ".local", "share"),
		"XDG_RUNTIME_DIR=" + filepath.Join(base, "run"),
		"KEYCHAIN_AUTH_SYSTEM_ROOT=" + filepath.Join(base, "sysroot"),
		"KEYCHAIN_AUTH_PASSPHRASE=" + passphrase,
	}
	if err := os.Mkdir(filepath.Join(base, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, filepath.Join(base, "run")} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(base, 0o755)
	for _, bin := range register {
		if out, err := u.asUser(kaBin, "register", bin, "--read", "svc").CombinedOutput(); err != nil {
			t.Fatalf("register %s as uid %d: %v\n%s", bin, nobody, err, out)
		}
	}

	u.d = &daemon{e: u.e, stderr: &syncBuffer{}, done: make(chan struct{})}
	u.d.cmd = u.asUser(kaBin, "start", "--backend", "file")
	u.d.cmd.Stderr = u.d.stderr
	if err := u.d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.d.err = u.d.cmd.Wait(); close(u.d.done) }()
	t.Cleanup(u.d.stop)
	u.pid = strconv.Itoa(u.d.cmd.Process.Pid)
	waitFor(t, "the unprivileged daemon to listen", func() bool {
		select {
		case <-u.d.done:
			t.Fatalf("daemon exited: %v\n%s", u.d.err, u.d.stderr)
		default:
		}
		return exists(u.e.socket)
	})
	return u
}

// TestDaemonMemoryIsPrivateFromSameUser runs the daemon as an unprivileged
// uid and shows that another process of that same uid cannot read its
// environment (which holds the store passphrase here) or its memory, that
// core dumps are off, and that it still serves a registered client of that
// uid.
func TestDaemonMemoryIsPrivateFromSameUser(t *testing.T) {
	t.Parallel()
	u := startUnprivileged(t, client)
	pid := u.pid

	// A registered client of the same uid is served.
	var r protocol.Response
	waitFor(t, "an answer from the unprivileged daemon", func() bool {
		out, err := u.asUser(client, u.e.socket, req("check", "", nil)).Output()
		return err == nil && json.Unmarshal(bytes.TrimSpace(out), &r) == nil
	})
	wantStatus(t, r, protocol.StatusSuccess, "")

	// Control: a process of the same uid that did not harden itself is
	// readable, so the refusals below are the daemon's doing.
	sleeper := u.asUser("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	spid := strconv.Itoa(sleeper.Process.Pid)
	if out, err := u.asUser("cat", "/proc/"+spid+"/environ").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("XDG_RUNTIME_DIR=")) {
		t.Fatalf("control: uid %d cannot read its own sleep's environ (%v); the test proves nothing here", nobody, err)
	}
	if out, err := u.asUser("dd", "if=/proc/"+spid+"/mem", "count=0", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("control: uid %d cannot open its own sleep's memory: %v %s", nobody, err, out)
	}

	// The daemon's environment does hold the passphrase (root may look)...
	if env, err := os.ReadFile("/proc/" + pid + "/environ"); err != nil || !bytes.Contains(env, []byte(passphrase)) {
		t.Fatalf("the daemon's environ should hold the passphrase this test gave it (err %v)", err)
	}
	// ...and the same uid may not read it, nor open its memory.
	for _, args := range [][]string{
		{"cat", "/proc/" + pid + "/environ"},
		{"dd", "if=/proc/" + pid + "/mem", "count=0", "status=none"},
	} {
		out, err := u.asUser(args[0], args[1:]...).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("Permission denied")) {
			t.Errorf("uid %d ran %v on the daemon: err %v, output of %d bytes; want permission denied", nobody, args, err, len(out))
		}
	}
	limits, err := os.ReadFile("/proc/" + pid + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	if f := limitFields(limits, "Max core file size"); len(f) < 2 || f[0] != "0" || f[1] != "0" {
		t.Errorf("core file size limit %v, want 0 0", f)
	}
	// Locking memory needs CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK;
	// where it is refused and swap is active the daemon must say so (the
	// first time: its state directory is new here). Without swap there is
	// nothing for it to say.
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	swaps, _ := os.ReadFile("/proc/swaps")
	swap := len(bytes.Split(bytes.TrimSpace(swaps), []byte("\n"))) > 1
	if vm := limitFields(status, "VmLck:"); (len(vm) == 0 || vm[0] == "0") && swap && !strings.Contains(u.d.stderr.String(), "mlockall") {
		t.Errorf("the daemon neither locked its memory (VmLck %v) nor said that it could not, with swap active\n%s", vm, u.d.stderr)
	}
	if strings.Contains(u.d.stderr.String(), "ulimit -l") {
		t.Errorf("the daemon tells an unprivileged user to run ulimit -l, which cannot raise a hard limit:\n%s", u.d.stderr)
	}
}

// TestNonDumpableClientNeedsPtraceCapability: a client that makes itself
// non-dumpable (to keep same-user debuggers out) also keeps a daemon of its
// own uid from reading /proc/<pid>/exe, so a user-mode daemon cannot verify
// it; a daemon with CAP_SYS_PTRACE (system mode; root here) can.
func TestNonDumpableClientNeedsPtraceCapability(t *testing.T) {
	t.Parallel()
	buildKafd(t)
	check := req("check", "", nil)

	u := startUnprivileged(t, kafd)
	waitFor(t, "an answer from the unprivileged daemon", func() bool {
		cmd := u.asUser(kafd, u.e.socket, "stdin")
		cmd.Stdin = strings.NewReader(check + "\n")
		out, err := cmd.Output()
		return err == nil && strings.Contains(string(out), `"status":"success"`)
	})
	out, _ := u.asUser(kafd, u.e.socket, "nodump", check).Output()
	var r protocol.Response
	if err := json.Unmarshal(bytes.TrimSpace(bytes.SplitN(out, []byte("\n"), 2)[0]), &r); err != nil {
		t.Fatalf("non-dumpable client got %q", out)
	}
	wantStatus(t, r, protocol.StatusDenied, protocol.ReasonUnverifiableProcess)
	if !strings.Contains(r.Message, "non-dumpable") || !strings.Contains(r.Message, "system mode") {
		t.Errorf("the reply should tell the client why and what to do: %q", r.Message)
	}
	if !strings.Contains(u.d.stderr.String(), "CAP_SYS_PTRACE") {
		t.Errorf("the daemon's log does not say what verifying this client needs:\n%s", u.d.stderr)
	}

	e := newEnv(t)
	e.mustKA("register", kafd, "--read", "svc")
	e.start()
	out, err := exec.Command(kafd, e.socket, "nodump", check).Output()
	var rootReply protocol.Response
	if err != nil || json.Unmarshal(bytes.TrimSpace(out), &rootReply) != nil {
		t.Fatalf("non-dumpable client of a root daemon: %v %q", err, out)
	}
	wantStatus(t, rootReply, protocol.StatusSuccess, "")
}

// limitFields returns the fields after prefix on the line that starts with it.
func limitFields(b []byte, prefix string) []string {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}

// repeats is how many refusals a connect_denied record stands for: its
// details.repeats, or 1.
func repeats(t *testing.T, r audit.Record) int {
	t.Helper()
	if len(r.Details) == 0 {
		return 1
	}
	var d struct{ Repeats int }
	if err := json.Unmarshal(r.Details, &d); err != nil || d.Repeats < 1 {
		t.Errorf("connect_denied details %s: want {\"repeats\":N}", r.Details)
		return 1
	}
	return d.Repeats
}
