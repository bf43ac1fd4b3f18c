package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startOnTTY runs `keychain-auth start` on a pseudo-terminal made by
// script(1), typing input at it, as a user at a terminal would.
func (e *env) startOnTTY(t *testing.T, input string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script(1) (bsdutils) is missing")
		}
		t.Skip("SKIPPING: script(1) from bsdutils is needed to give the daemon a terminal")
	}
	// No passphrase in the environment: the terminal is the only source.
	vars := slices.DeleteFunc(slices.Clone(e.vars), func(v string) bool {
		return strings.HasPrefix(v, "KEYCHAIN_AUTH_PASSPHRASE=")
	})
	cmd := exec.Command(script, "-qfec", kaBin+" start --backend file", "/dev/null")
	cmd.Env = vars
	cmd.Stdin = strings.NewReader(input)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd, out
}

func TestPassphraseIsAskedTwiceOnTheTerminalForANewStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	cmd, out := e.startOnTTY(t, "first try\nsecond try\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("start did not give up on mismatched passphrases:\n%s", out)
	}
	if !strings.Contains(out.String(), "do not match") {
		t.Errorf("mismatched passphrases should be reported:\n%s", out)
	}
	if exists(e.storeFile()) {
		t.Fatal("a store was created although the passphrases did not match")
	}

	cmd, out = e.startOnTTY(t, "typed at the tty\ntyped at the tty\n")
	waitFor(t, "the daemon to start after the passphrase was typed twice", func() bool {
		return exists(e.socket) && strings.Contains(out.String(), "keychain-auth started")
	})
	if n := strings.Count(out.String(), "passphrase"); n < 2 {
		t.Errorf("want two prompts for a new store, saw %d:\n%s", n, out)
	}
	// script(1) runs the daemon in a session of its own; the kernel says
	// which process serves the socket.
	syscall.Kill(daemonPID(t, e.socket), syscall.SIGTERM)
	waitFor(t, "the daemon to stop", func() bool { return !exists(e.socket) })
	cmd.Wait()

	// The typed passphrase is the store's: the environment's other one fails,
	// the same one opens it.
	wrong := e.spawn()
	if code := wrong.wait(); code != 1 || !strings.Contains(wrong.stderr.String(), "wrong passphrase") {
		t.Fatalf("start with another passphrase: exit %d\n%s", code, wrong.stderr)
	}
	right := *e
	right.vars = append(slices.Clone(e.vars), "KEYCHAIN_AUTH_PASSPHRASE=typed at the tty")
	right.start()
	if b, err := os.ReadFile(e.storeFile()); err != nil || bytes.Contains(b, []byte("typed at the tty")) {
		t.Errorf("store file: %v (or it holds the passphrase)", err)
	}
}

// daemonPID asks the kernel which process listens on socket.
func daemonPID(t *testing.T, socket string) int {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		t.Fatal(cerr)
	}
	return int(cred.Pid)
}
