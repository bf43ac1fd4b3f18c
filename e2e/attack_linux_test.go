package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// The attacks of docs/threat-model.md ("Attacks on identity"), each staged
// with real processes against a real daemon.

var (
	cMu    sync.Mutex
	cBuilt = map[string]string{}
)

// buildC compiles testdata/attack/<src> with gcc and the given flags into
// binDir/<name>, once per test binary. Without gcc it skips, except in CI.
func buildC(t *testing.T, name, src string, flags ...string) string {
	t.Helper()
	cMu.Lock()
	defer cMu.Unlock()
	if p, ok := cBuilt[name]; ok {
		return p
	}
	need(t, "gcc")
	out := filepath.Join(binDir, name)
	args := append([]string{"-O2", "-Wall", "-o", out, filepath.Join("testdata", "attack", src)}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	cBuilt[name] = out
	return out
}

// need skips a test when tool is missing, loudly, and fails it in CI,
// whose .ci/run installs every tool the tests use.
func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; .ci/run must install it", tool)
		}
		t.Skipf("SKIPPED: this attack test needs %s (see .ci/run for the packages)", tool)
	}
}

// Attack 1: a new file that gets a freed inode number, the same size and
// mtime, and a ctime from the same clock tick as a registered binary's copy
// that was just hashed, is not served as that binary.
func TestInodeReuseCannotBorrowIdentity(t *testing.T) {
	t.Parallel()
	reg := buildC(t, "attack-reg", "client.c", "-DPAD")
	evil := buildC(t, "attack-evil", "client.c", "-DVARIANT=1")
	reuse := buildC(t, "attack-reuse", "reuse.c")
	e := newEnv(t)
	e.mustKA("register", reg, "--read", "svc", "--write", "svc")
	e.start()
	write := req("write", "svc", []string{"k"}, "values", []string{"reuse-secret"})
	if out, err := exec.Command(reg, e.socket, write).Output(); err != nil || !strings.Contains(string(out), `"success"`) {
		t.Fatalf("registered client write: %v %s", err, out)
	}

	cmd := exec.Command(reuse, t.TempDir(), e.socket, reg, evil, "100", req("check", "", nil), req("read", "svc", []string{"k"}))
	stdout, stderr, code := runCmd(t, cmd)
	if code != 0 {
		t.Fatalf("reuse: exit %d\n%s", code, stderr)
	}
	var tries, reused, served int
	if _, err := fmt.Sscanf(stdout, "tries=%d reused=%d served=%d", &tries, &reused, &served); err != nil {
		t.Fatalf("reuse printed %q: %v", stdout, err)
	}
	t.Logf("inode-reuse attack: %d tries, inode number reused %d times, served %d times", tries, reused, served)
	if served != 0 {
		t.Errorf("an unregistered program in a reused inode was served as the registered binary %d times:\n%s", served, stderr)
	}
	if strings.Contains(stderr, "reuse-secret") {
		t.Error("the attacker read the secret")
	}
	if reused == 0 {
		msg := "the filesystem never gave the freed inode number to the next file, so the attack was not staged"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
}

// Attack 4: a FUSE filesystem shows the daemon the registered binary's
// bytes and gives exec another program's. The daemon refuses any image on
// FUSE, naming the filesystem.
func TestFUSEImageIsRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a FUSE filesystem, which needs root here, and CI runs as root")
		}
		t.Skip("SKIPPED: mounting the test's FUSE filesystem needs root; run the e2e tests as root")
	}
	need(t, "pkg-config")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pkg-config fuse3: %v; .ci/run must install libfuse3-dev", err)
		}
		t.Skip("SKIPPED: needs libfuse3-dev (pkg-config fuse3)")
	}
	fusefs := buildC(t, "attack-fusefs", "fusefs.c", strings.Fields(string(flags))...)
	// fusefs pads both programs to the larger size; the registered binary
	// is the padded one, so the bytes shown to the daemon are exactly it.
	shown, other := readFile(t, client), readFile(t, client2)
	shown = append(shown, make([]byte, max(0, len(other)-len(shown)))...)
	registered := filepath.Join(t.TempDir(), "registered")
	if err := os.WriteFile(registered, shown, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.mustKA("register", registered, "--read", "svc", "--write", "svc")
	d := e.start()
	wantStatus(t, e.one(registered, req("write", "svc", []string{"k"}, "values", []string{"fuse-secret"})), protocol.StatusSuccess, "")

	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(fusefs, registered, client2, strconv.Itoa(d.cmd.Process.Pid), mnt, "-f")
	var srvErr syncBuffer
	srv.Stderr = &srvErr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", mnt).Run()
		srv.Process.Kill()
		srv.Wait()
	})
	tool := filepath.Join(mnt, "tool")
	waitFor(t, "the FUSE filesystem to be mounted", func() bool { return exists(tool) })

	r := e.one(tool, req("read", "svc", []string{"k"}))
	wantStatus(t, r, protocol.StatusDenied, protocol.ReasonUnverifiableProcess)
	if !strings.Contains(r.Message, "FUSE") {
		t.Errorf("refusal %q does not name the filesystem", r.Message)
	}
	if strings.Contains(fmt.Sprint(r), "fuse-secret") {
		t.Error("the program on FUSE got the secret")
	}
}

// Attack 3: a tracer attached to a worker thread, not the main one, of a
// verified client could rewrite its requests. Every thread is checked.
func TestTracerOnWorkerThreadIsCaught(t *testing.T) {
	t.Parallel()
	buildKafd(t)
	e := newEnv(t)
	e.mustKA("register", kafd, "--read", "svc")
	e.start()

	tr := startTracee(t, e, false, kafd, e.socket, "stdin")
	fmt.Fprintln(tr.stdin, `{"type":"REQUEST","id":1,"action":"check"}`)
	if r, ok := tr.next(t); !ok || r.Status != protocol.StatusSuccess {
		t.Fatalf("untraced first request: %+v (ok=%v)", r, ok)
	}
	tid := workerThread(t, tr.pid)
	tr.attachThread(t, tid)
	// Past the tracer re-check interval (server.tracerRecheck, 50 ms).
	time.Sleep(100 * time.Millisecond)
	fmt.Fprintln(tr.stdin, `{"type":"REQUEST","id":2,"action":"read","service":"svc","targets":["a"]}`)
	r, ok := tr.next(t)
	if !ok {
		t.Fatal("no reply once a worker thread was traced")
	}
	wantStatus(t, r, protocol.StatusDenied, protocol.ReasonProcessTampered)
	if want := fmt.Sprintf("thread %d", tid); !strings.Contains(r.Message, want) {
		t.Errorf("refusal %q does not name %s", r.Message, want)
	}
}

// workerThread returns a thread of pid other than its main one.
func workerThread(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if tid, err := strconv.Atoi(ent.Name()); err == nil && tid != pid {
			return tid
		}
	}
	t.Fatalf("process %d has no thread but its main one", pid)
	return 0
}

// Attack 2: in system mode the daemon's user cannot open another user's
// /proc/<pid>/environ (mode 0400), yet must still see LD_PRELOAD, and must
// still notice a verified client that re-execs itself.
func TestSystemModeSeesInjectionAndExec(t *testing.T) {
	t.Parallel()
	dyn := buildDynamicClient(t)
	buildKafd(t)
	w := newSysWorld(t)
	A := w.userA
	w.mustKA("", "register", dyn, "--read", "svc", "--write", "svc")
	w.mustKA("", "register", kafd, "--read", "svc")
	wantStatus(t, w.one(A, dyn, req("write", "svc", []string{"tok"}, "values", []string{"sys-secret"})), protocol.StatusSuccess, "")

	// Started with LD_PRELOAD: refused as tampered.
	cmd := w.as(A, append(append([]string(nil), w.vars...), "LD_PRELOAD=libc.so.6"), dyn, w.socket)
	cmd.Stdin = strings.NewReader(req("read", "svc", []string{"tok"}) + "\n")
	out, errOut, code := runCmd(t, cmd)
	if code != 0 && code != 3 {
		t.Fatalf("client with LD_PRELOAD: exit %d\n%s", code, errOut)
	}
	if strings.Contains(out, "sys-secret") || !strings.Contains(out, string(protocol.ReasonProcessTampered)) {
		t.Errorf("client started with LD_PRELOAD as %s got %q, want process_tampered", A, out)
	}

	// A verified client that execs a program on its connection.
	line := `{"type":"REQUEST","id":"after-exec","action":"read","service":"svc","targets":["tok"]}`
	out, errOut, code = runCmd(t, w.as(A, nil, kafd, w.socket, "exec", kafd, line))
	if code != 0 && code != 3 {
		t.Fatalf("kafd exec: exit %d\n%s", code, errOut)
	}
	before, after := execReplies(t, "kafd exec as "+A, out)
	wantStatus(t, before, protocol.StatusSuccess, "")
	wantStatus(t, after, protocol.StatusDenied, protocol.ReasonProcessChanged)
}

// Attack 5: a verified process shares its address space with a helper
// (clone(CLONE_VM) without CLONE_THREAD), which keeps that address space
// alive, then re-execs itself with LD_PRELOAD on its verified connection.
func TestExecBehindSharedAddressSpaceIsCaught(t *testing.T) {
	t.Parallel()
	cvm := buildC(t, "attack-cvm", "cvm.c")
	e := newEnv(t)
	e.mustKA("register", cvm, "--read", "svc")
	e.mustKA("register", client, "--write", "svc")
	e.start()
	wantStatus(t, e.one(client, req("write", "svc", []string{"k"}, "values", []string{"cvm-secret"})), protocol.StatusSuccess, "")
	line := req("read", "svc", []string{"k"})
	cmd := exec.Command(cvm, e.socket, line)
	cmd.Env = e.vars
	out, errOut, code := runCmd(t, cmd)
	if code != 0 && code != 3 {
		t.Fatalf("cvm: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], `"success"`) {
		t.Fatalf("cvm: want the check answered, then the re-exec'd program's reply; got %q", out)
	}
	if strings.Contains(out, "cvm-secret") || !strings.Contains(lines[1], string(protocol.ReasonProcessChanged)) {
		t.Errorf("the re-exec'd program (LD_PRELOAD, old address space kept alive) got %q, want process_changed", lines[1])
	}
}
