// Package e2e runs the real keychain-auth binary against real client
// processes built by the tests: the kernel identifies them, the daemon hashes
// their executables, and every answer is checked as a client sees it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

const passphrase = "correct horse battery staple"

var (
	binDir  string // built binaries
	kaBin   string // keychain-auth
	client  string // kaclient, variant 0
	client2 string // kaclient, variant 1 (different hash)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keychain-auth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// World-traversable so test users other than ours could run them.
	os.Chmod(dir, 0o755)
	binDir = dir
	kaBin = filepath.Join(dir, "keychain-auth")
	client = filepath.Join(dir, "kaclient")
	client2 = filepath.Join(dir, "kaclient-v1")
	builds := [][]string{
		append(buildFlags(), "-o", kaBin, "../cmd/keychain-auth"),
		{"-o", client, "./testdata/kaclient"},
		{"-ldflags", "-X main.variant=1", "-o", client2, "./testdata/kaclient"},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(builds))
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", append([]string{"build"}, b...)...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgoFor(i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %v: %v\n%s", b, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// The daemon is built with -race when the tests are, so its concurrency is
// checked too; -race needs cgo. Clients are static.
func buildFlags() []string {
	if raceEnabled {
		return []string{"-race"}
	}
	return nil
}

func cgoFor(i int) string {
	if i == 0 && raceEnabled {
		return "1"
	}
	return "0"
}

// env is one user's world: a private HOME with XDG dirs inside it.
type env struct {
	t      *testing.T
	home   string
	socket string
	vars   []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	home := t.TempDir()
	// The runtime dir is outside HOME so the socket path stays short:
	// t.TempDir under macOS's /var/folders can pass the 104-byte sun_path.
	run, err := os.MkdirTemp("", "ka-run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	e := &env{t: t, home: home, socket: filepath.Join(run, "keychain-auth", "agent.sock")}
	e.vars = []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR=" + run,
		"KEYCHAIN_AUTH_SYSTEM_ROOT=" + filepath.Join(home, "sysroot"),
		"KEYCHAIN_AUTH_PASSPHRASE=" + passphrase,
		// A -race binary otherwise sleeps 1 s at exit, for every command.
		"GORACE=atexit_sleep_ms=0",
	}
	return e
}

func (e *env) path(rel ...string) string { return filepath.Join(append([]string{e.home}, rel...)...) }
func (e *env) configFile() string        { return e.path(".config", "keychain-auth", "config.json") }
func (e *env) pendingFile() string       { return e.path(".config", "keychain-auth", "pending.json") }
func (e *env) storeFile() string         { return e.path(".keychain-auth", "keyring.json") }

// ka runs a keychain-auth command and returns stdout, stderr and exit code.
func (e *env) ka(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(kaBin, args...)
	cmd.Env = e.vars
	return runCmd(e.t, cmd)
}

// mustKA runs a command that must succeed.
func (e *env) mustKA(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.ka(args...)
	if code != 0 {
		e.t.Fatalf("keychain-auth %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// daemon is a running `keychain-auth start`.
type daemon struct {
	e      *env
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the daemon and waits until its socket answers.
func (e *env) start(args ...string) *daemon {
	e.t.Helper()
	d := e.spawn(args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.done:
			e.t.Fatalf("daemon exited early: %v\n%s", d.err, d.stderr)
		default:
		}
		if c, err := net.Dial("unix", e.socket); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("daemon did not listen on %s within 60s\n%s", e.socket, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Cleanup(func() { d.stop() })
	return d
}

// spawn runs the daemon without waiting for it.
func (e *env) spawn(args ...string) *daemon {
	e.t.Helper()
	if !slices.Contains(args, "--backend") {
		args = append([]string{"--backend", "file"}, args...)
	}
	cmd := exec.Command(kaBin, append([]string{"start"}, args...)...)
	cmd.Env = e.vars
	d := &daemon{e: e, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d
}

// wait returns the daemon's exit code once it has exited by itself.
func (d *daemon) wait() int {
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.e.t.Fatalf("daemon did not exit\n%s", d.stderr)
	}
	return d.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and requires a clean exit with no race reports.
func (d *daemon) stop() {
	d.e.t.Helper()
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
	}
	code := d.wait()
	if code != 0 {
		d.e.t.Errorf("daemon exit code %d\n%s", code, d.stderr)
	}
	if strings.Contains(d.stderr.String(), "DATA RACE") {
		d.e.t.Errorf("daemon reported a data race:\n%s", d.stderr)
	}
}

// call runs bin as a client sending lines; it returns the responses and
// whether the daemon closed the connection before answering every line.
func (e *env) call(bin string, lines ...string) (resps []protocol.Response, closed bool) {
	e.t.Helper()
	var (
		out  []byte
		err  error
		errb bytes.Buffer
	)
	// A binary a test has just written can be briefly "busy": a process
	// forked by a parallel test may still hold the write descriptor until it
	// execs (golang/go#22315). Retry only that.
	for try := 0; ; try++ {
		// Lines go through stdin: a batch can exceed what argv may hold.
		cmd := exec.Command(bin, e.socket)
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		cmd.Env = e.vars
		errb.Reset()
		cmd.Stderr = &errb
		out, err = cmd.Output()
		if !errors.Is(err, syscall.ETXTBSY) || try == 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
		closed = true
	} else if err != nil {
		e.t.Fatalf("client %s: %v\n%s", bin, err, errb.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 2<<20)
	for sc.Scan() {
		if sc.Text() == "CLOSED" {
			continue
		}
		var r protocol.Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			e.t.Fatalf("client got a line that is not a response: %q: %v", sc.Text(), err)
		}
		resps = append(resps, r)
	}
	return resps, closed
}

// one sends a single request and returns its response.
func (e *env) one(bin string, req string) protocol.Response {
	e.t.Helper()
	resps, _ := e.call(bin, req)
	if len(resps) != 1 {
		e.t.Fatalf("want 1 response to %s, got %d", req, len(resps))
	}
	return resps[0]
}

// req builds a request line.
func req(action, service string, targets []string, extra ...any) string {
	m := map[string]any{"type": "REQUEST", "action": action, "service": service}
	if targets != nil {
		m["targets"] = targets
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func values(r protocol.Response) map[string]string {
	out := map[string]string{}
	for _, res := range r.Results {
		if res.Value != nil {
			out[res.Target] = *res.Value
		}
	}
	return out
}

func targets(r protocol.Response) []string {
	var out []string
	for _, res := range r.Results {
		out = append(out, res.Target)
	}
	return out
}

func wantStatus(t *testing.T, r protocol.Response, status protocol.Status, reason protocol.Reason) {
	t.Helper()
	if r.Status != status || r.Reason != reason {
		t.Fatalf("got status=%s reason=%s message=%q; want %s/%s", r.Status, r.Reason, r.Message, status, reason)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or a generous deadline passes. It waits
// for something asynchronous to land; it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// runCmd runs cmd and returns stdout, stderr and its exit code; failing to
// start it at all fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return out.String(), errb.String(), code
}
