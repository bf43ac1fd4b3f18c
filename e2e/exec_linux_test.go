package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// keychain-auth exec: the daemon authorizes the program exec runs, by the
// hash of the descriptor exec opened and then executes.

var (
	kaenvOnce           sync.Once
	kaenvErr            error
	kaenvBin, kaenvBin1 string
)

// kaenv builds testdata/kaenv, variants 0 and 1 (different hashes).
func kaenv(t *testing.T) (string, string) {
	t.Helper()
	kaenvOnce.Do(func() {
		kaenvBin, kaenvBin1 = filepath.Join(binDir, "kaenv"), filepath.Join(binDir, "kaenv-v1")
		for _, b := range [][]string{
			{"-o", kaenvBin, "./testdata/kaenv"},
			{"-ldflags", "-X main.variant=1", "-o", kaenvBin1, "./testdata/kaenv"},
		} {
			cmd := exec.Command("go", append([]string{"build"}, b...)...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				kaenvErr = &buildError{b, err, string(out)}
				return
			}
		}
	})
	if kaenvErr != nil {
		t.Fatal(kaenvErr)
	}
	return kaenvBin, kaenvBin1
}

type buildError struct {
	args []string
	err  error
	out  string
}

func (e *buildError) Error() string {
	return "go build " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.out
}

const (
	execSecret  = "exec-secret-7f3a9c1e"
	execSecret2 = "exec-secret-second-55d1"
)

// execEnv is a started daemon holding execSecret as svc/api-key and
// execSecret2 as svc/db/user, written by the registered kaclient.
func execEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.mustKA("register", client, "--write", "svc")
	e.start()
	r := e.one(client, req("write", "svc", []string{"api-key", "db/user"}, "values", []string{execSecret, execSecret2}))
	wantStatus(t, r, protocol.StatusSuccess, "")
	return e
}

// kaExec runs `keychain-auth exec` with extra environment variables.
func (e *env) kaExec(extraEnv []string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(kaBin, append([]string{"exec"}, args...)...)
	cmd.Env = append(append([]string{}, e.vars...), extraEnv...)
	return runCmd(e.t, cmd)
}

// redact hides the test's secret values in what a failing test prints.
func redact(s string) string {
	return strings.NewReplacer(execSecret, "<secret>", execSecret2, "<secret2>").Replace(s)
}

// noSecretIn fails when a value appears in a file or text.
func noSecretIn(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{execSecret, execSecret2} {
		if strings.Contains(text, s) {
			t.Errorf("a secret value appears in %s", what)
		}
	}
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

type execAuditRecord struct {
	Event      string          `json:"event"`
	Action     string          `json:"action"`
	Result     string          `json:"result"`
	Reason     string          `json:"reason"`
	BinaryHash string          `json:"binary_hash"`
	BinaryPath string          `json:"binary_path"`
	Details    json.RawMessage `json:"details"`
}

func (e *env) auditRecords() []execAuditRecord {
	e.t.Helper()
	var out []execAuditRecord
	for _, line := range strings.Split(strings.TrimSpace(fileText(e.t, e.auditFile())), "\n") {
		if line == "" {
			continue
		}
		var r execAuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			e.t.Fatalf("audit line %q: %v", redact(line), err)
		}
		out = append(out, r)
	}
	return out
}

func TestExecRegisteredChildGetsSecrets(t *testing.T) {
	t.Parallel()
	env0, _ := kaenv(t)
	e := execEnv(t)
	e.mustKA("register", env0, "--read", "svc", "--search")

	_, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "API_KEY=api-key", "--env", "NOPE=absent",
		"--", "kaenv-by-path-is-not-used", "x")
	if code != 1 || !strings.Contains(errOut, "kaenv-by-path-is-not-used") {
		t.Fatalf("exec of a program not on PATH: exit %d, stderr %q", code, redact(errOut))
	}

	out, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "API_KEY=api-key", "--env", "NOPE=absent",
		"--", env0, "env", "API_KEY", "NOPE")
	if code != 0 {
		t.Fatalf("exec: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	if !strings.Contains(out, "API_KEY="+execSecret+"\n") || !strings.Contains(out, "NOPE unset\n") || !strings.Contains(out, "variant=0") {
		t.Fatalf("the child's environment lacks what it was given:\n%s", redact(out))
	}
	if !strings.Contains(errOut, "NOPE (absent)") {
		t.Errorf("stderr does not list the absent target: %q", redact(errOut))
	}
	noSecretIn(t, "stderr", errOut)
	// exec replaces the CLI in the same process: this is /proc/<cli pid>/cmdline.
	cmdline := out[strings.Index(out, "cmdline="):]
	noSecretIn(t, "the process's command line", cmdline)

	// --prefix exports each target under its name, upper-cased.
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--prefix", "db/", "--", env0, "env", "DB_USER", "API_KEY")
	if code != 0 || !strings.Contains(out, "DB_USER="+execSecret2+"\n") || !strings.Contains(out, "API_KEY unset") {
		t.Fatalf("exec --prefix: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}

	// --require-all: an absent target fails the command; the child never runs.
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--require-all", "--env", "API_KEY=api-key", "--env", "NOPE=absent",
		"--", env0, "env", "API_KEY")
	if code != 1 || strings.Contains(out, "variant=") || !strings.Contains(errOut, "absent") {
		t.Fatalf("exec --require-all with an absent target: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}

	// The exit status is the child's.
	if _, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "A=api-key", "--", env0, "exit", "7"); code != 7 {
		t.Fatalf("exit status %d, want the child's 7\n%s", code, redact(errOut))
	}

	// The audit log names both: the asking CLI and the program served.
	kaHash, childHash := hashFile(t, kaBin), hashFile(t, env0)
	found := false
	for _, r := range e.auditRecords() {
		if r.Event == "request" && r.Result == "approved" && r.Action == "read" && r.BinaryHash == kaHash &&
			strings.Contains(string(r.Details), `"exec_hash":"`+childHash+`"`) && strings.Contains(string(r.Details), `"exec_path":"`+env0+`"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no approved audit record with binary_hash = keychain-auth and details naming the child:\n%s", redact(fileText(t, e.auditFile())))
	}
	noSecretIn(t, "the audit log", fileText(t, e.auditFile()))
	noSecretIn(t, "pending.json", fileText(t, e.pendingFile()))
}

func TestExecUnregisteredChildIsRefusedAndQueued(t *testing.T) {
	t.Parallel()
	env0, _ := kaenv(t)
	e := execEnv(t)
	// keychain-auth itself being registered, even for the service, grants
	// the child nothing.
	e.mustKA("register", kaBin, "--read", "svc")

	out, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "API_KEY=api-key", "--", env0, "env", "API_KEY")
	if code != 1 || strings.Contains(out, "variant=") {
		t.Fatalf("unregistered child: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	if !strings.Contains(errOut, "not registered") {
		t.Errorf("stderr does not say the program is not registered: %q", redact(errOut))
	}
	noSecretIn(t, "stderr", errOut)
	childHash := hashFile(t, env0)
	var rec *pendingJSON
	waitFor(t, "the child in pending.json", func() bool {
		for _, r := range e.pending() {
			if r.Hash == childHash {
				rec = &r
				return true
			}
		}
		return false
	})
	if rec.Path != env0 || strings.Join(rec.CommandLine, " ") != env0+" env API_KEY" {
		t.Errorf("pending record: path %q, command line %q; want the child's own", rec.Path, rec.CommandLine)
	}
	if hasPending(e.pending(), hashFile(t, kaBin)) {
		t.Error("keychain-auth itself was queued instead of (or besides) the child")
	}
	noSecretIn(t, "pending.json", fileText(t, e.pendingFile()))
	noSecretIn(t, "the audit log", fileText(t, e.auditFile()))

	// Approving the child (not keychain-auth) is what makes it work.
	e.mustKA("approve", childHash, "--read", "svc")
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--env", "API_KEY=api-key", "--", env0, "env", "API_KEY")
	if code != 0 || !strings.Contains(out, "API_KEY="+execSecret) {
		t.Fatalf("approved child: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
}

// The path is renamed over after exec opened it: exec still runs, and the
// daemon still judged, the file it opened.
func TestExecRunsTheImageItChecked(t *testing.T) {
	t.Parallel()
	env0, env1 := kaenv(t)
	e := execEnv(t)
	dir := t.TempDir()
	tool := filepath.Join(dir, "tool")
	copyFile(t, env0, tool)
	e.mustKA("register", tool, "--read", "svc")
	other := filepath.Join(dir, "other")
	copyFile(t, env1, other)
	p := startPausedExec(t, e, "KEYCHAIN_AUTH_TEST_EXEC_PAUSE_FIFO", tool)
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	noSecretIn(t, "the CLI's command line", string(cmdline))
	if err := os.Rename(other, tool); err != nil {
		t.Fatal(err)
	}
	if err := p.resume(); err != nil {
		t.Fatalf("exec: %v\nstdout: %s\nstderr: %s", err, redact(p.stdout.String()), redact(p.stderr.String()))
	}
	if !strings.Contains(p.stdout.String(), "variant=0") || !strings.Contains(p.stdout.String(), "API_KEY="+execSecret) {
		t.Fatalf("exec did not run the file it opened (want variant 0 with the secret):\n%s", redact(p.stdout.String()))
	}

	// Now the path holds the unregistered program: refused.
	out, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "API_KEY=api-key", "--", tool, "env", "API_KEY")
	if code != 1 || strings.Contains(out, "variant=") {
		t.Fatalf("the replacement program: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
}

func TestExecRefusesScriptsAndUnapprovedInterpreters(t *testing.T) {
	t.Parallel()
	e := execEnv(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "prog")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"K=$K\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e.kaExec(nil, "--service", "svc", "--env", "K=api-key", "--", script)
	if code != 1 || strings.Contains(out, "K=") || !strings.Contains(errOut, "#! script") {
		t.Fatalf("a #! script: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}

	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("SKIPPED: no sh on PATH")
	}
	sh, _ = filepath.EvalSymlinks(sh)
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--env", "K=api-key", "--", sh, "-c", `echo "K=$K"`)
	if code != 1 || strings.Contains(out, "K=") {
		t.Fatalf("an unregistered interpreter: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	if _, errOut, code := e.ka("register", sh, "--read", "svc"); code == 0 || !strings.Contains(errOut, "interpreter") {
		t.Fatalf("register of an interpreter without --allow-interpreter: exit %d, %s", code, redact(errOut))
	}
	e.mustKA("register", sh, "--read", "svc", "--allow-interpreter")
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--env", "K=api-key", "--", sh, "-c", `echo "K=$K"`)
	if code != 0 || !strings.Contains(out, "K="+execSecret) {
		t.Fatalf("an interpreter registered with --allow-interpreter: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	noSecretIn(t, "the audit log", fileText(t, e.auditFile()))
}

// A program that is not keychain-auth may not send a descriptor, even for a
// program registered for the service and while itself registered for it.
func TestExecDescriptorFromOtherClientIsRefused(t *testing.T) {
	t.Parallel()
	env0, _ := kaenv(t)
	e := execEnv(t)
	e.mustKA("register", env0, "--read", "svc")
	stdout, stderr, code := runCmd(t, exec.Command(env0, "sendfd", e.socket, env0, "svc", "api-key"))
	if code != 0 || strings.TrimSpace(stdout) != "refused "+string(protocol.ReasonActionNotInPolicy) {
		t.Fatalf("descriptor from kaenv: exit %d, stdout %q, stderr %q", code, redact(stdout), redact(stderr))
	}
	noSecretIn(t, "its output", stdout+stderr)
}

func TestExecRefusesLoaderVariables(t *testing.T) {
	t.Parallel()
	env0, _ := kaenv(t)
	e := execEnv(t)
	e.mustKA("register", env0, "--read", "svc", "--search")
	out, errOut, code := e.kaExec([]string{"LD_PRELOAD=/nonexistent.so"}, "--service", "svc", "--env", "A=api-key", "--", env0, "env", "A")
	if code != 1 || strings.Contains(out, "variant=") || !strings.Contains(errOut, "LD_PRELOAD") {
		t.Fatalf("LD_PRELOAD set: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	// The daemon's own rules for its peers: a library path outside the
	// system directories is refused, one inside them is not.
	out, errOut, code = e.kaExec([]string{"LD_LIBRARY_PATH=/usr/lib:" + t.TempDir()}, "--service", "svc", "--env", "A=api-key", "--", env0, "env", "A")
	if code != 1 || strings.Contains(out, "variant=") || !strings.Contains(errOut, "LD_LIBRARY_PATH") {
		t.Fatalf("LD_LIBRARY_PATH outside the system directories: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	out, errOut, code = e.kaExec([]string{"LD_LIBRARY_PATH=/usr/lib"}, "--service", "svc", "--env", "A=api-key", "--", env0, "env", "A")
	if code != 0 || !strings.Contains(out, "A="+execSecret) {
		t.Fatalf("LD_LIBRARY_PATH=/usr/lib: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
	// Whoever may write the service must not pick the loader's variables
	// through a target's name.
	r := e.one(client, req("write", "svc", []string{"ld_preload"}, "values", []string{"/nonexistent.so"}))
	wantStatus(t, r, protocol.StatusSuccess, "")
	out, errOut, code = e.kaExec(nil, "--service", "svc", "--prefix", "ld", "--", env0, "env", "LD_PRELOAD")
	if code != 1 || strings.Contains(out, "variant=") || !strings.Contains(errOut, "dynamic loader variable LD_PRELOAD") {
		t.Fatalf("a target exported as LD_PRELOAD: exit %d\nstdout: %s\nstderr: %s", code, redact(out), redact(errOut))
	}
}

// The program's file is rewritten in place after the daemon hashed it and
// before exec runs it, with its size and mtime kept: exec must not run the
// new content with the secrets. The read lease exec holds turns the
// writer's open into a lease break, which exec sees before it runs
// anything.
func TestExecRefusesAnImageWrittenAfterItWasChecked(t *testing.T) {
	t.Parallel()
	env0, env1 := kaenv(t)
	e := execEnv(t)
	dir := t.TempDir()
	// The registered tool is variant 0 padded to variant 1's size, so that
	// variant 1 can be written over it in place, size unchanged.
	evil := readFile(t, env1)
	good := readFile(t, env0)
	if len(good) > len(evil) {
		t.Fatalf("variant 0 (%d bytes) is larger than variant 1 (%d)", len(good), len(evil))
	}
	good = append(good, make([]byte, len(evil)-len(good))...)
	tool := filepath.Join(dir, "tool")
	if err := os.WriteFile(tool, good, 0o755); err != nil {
		t.Fatal(err)
	}
	e.mustKA("register", tool, "--read", "svc")
	fi, err := os.Stat(tool)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	// exec waits with the daemon's answer in hand.
	p := startPausedExec(t, e, "KEYCHAIN_AUTH_TEST_EXEC_PAUSE_AFTER_FIFO", tool)
	// The attacker: open for writing, write variant 1 in place, put the
	// mtime back.
	written := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(tool, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(evil, 0)
			f.Close()
		}
		if err == nil {
			err = os.Chtimes(tool, fi.ModTime(), fi.ModTime())
		}
		written <- err
	}()
	// Either the write went through, or the attacker's open waits on exec's
	// lease (the kernel lists the lease as breaking).
	for wrote := false; !wrote; {
		select {
		case err := <-written:
			if err != nil {
				t.Fatalf("the attacker's write: %v", err)
			}
			wrote = true
		case <-time.After(5 * time.Millisecond):
			locks, _ := os.ReadFile("/proc/locks")
			for _, l := range strings.Split(string(locks), "\n") {
				if strings.Contains(l, "LEASE") && strings.Contains(l, "BREAK") && strings.Contains(l, ":"+strconv.FormatUint(ino, 10)+" ") {
					wrote = true
				}
			}
		}
	}
	err = p.resume()
	if strings.Contains(p.stdout.String(), "variant=1") || strings.Contains(p.stdout.String(), execSecret) {
		t.Fatalf("exec ran the content written after the check, with the secret:\n%s", redact(p.stdout.String()))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.stderr.String(), "opened for writing after it was checked") {
		t.Fatalf("exec: exit %d, %v\nstderr: %s", code, err, redact(p.stderr.String()))
	}
	if err := <-written; err != nil {
		t.Fatalf("the attacker's write, once exec gave up: %v", err)
	}
}

// The program exec runs gets the resource limits exec was started with, not
// the raised open-files limit the Go runtime gives itself: a program that
// uses select(2) breaks on descriptors over 1024.
func TestExecChildKeepsTheCallersLimits(t *testing.T) {
	t.Parallel()
	need(t, "prlimit")
	need(t, "cat")
	prlimit, _ := exec.LookPath("prlimit")
	cat, _ := exec.LookPath("cat")
	cat, _ = filepath.EvalSymlinks(cat)
	var hard syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &hard); err != nil {
		t.Fatal(err)
	}
	if hard.Max <= 512 {
		t.Skipf("SKIPPED: the open-files hard limit is %d; need one above 512 to tell them apart", hard.Max)
	}
	e := execEnv(t)
	e.mustKA("register", cat, "--read", "svc")
	cmd := exec.Command(prlimit, "--nofile=512:"+strconv.FormatUint(hard.Max, 10), kaBin,
		"exec", "--service", "svc", "--env", "K=api-key", "--", cat, "/proc/self/limits")
	cmd.Env = e.vars
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("exec: %v\n%s", err, redact(string(out)))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(l, "Max open files") {
			if f[3] != "512" {
				t.Fatalf("the child's open-files soft limit is %s, want the caller's 512", f[3])
			}
			return
		}
	}
	t.Fatalf("no open-files line in the child's limits:\n%s", out)
}

// pausedExec runs `keychain-auth exec` on tool with the test pause seam
// pauseEnv set to a new FIFO, and returns once exec waits there; resume
// lets it go on and returns how it ended.
type pausedExec struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan error
	w              *os.File
}

func startPausedExec(t *testing.T, e *env, pauseEnv, tool string) *pausedExec {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "pause")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pausedExec{t: t, done: make(chan error, 1)}
	p.cmd = exec.Command(kaBin, "exec", "--service", "svc", "--env", "API_KEY=api-key", "--", tool, "env", "API_KEY")
	p.cmd.Env = append(append([]string{}, e.vars...), pauseEnv+"="+fifo)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	// Opening the FIFO for writing returns once exec opens it to wait.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.w = w
	return p
}

func (p *pausedExec) resume() error {
	p.t.Helper()
	p.w.Close()
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatal("exec did not finish")
		return nil
	}
}
