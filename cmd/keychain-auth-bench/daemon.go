package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a keychain-auth daemon this tool started in a temporary HOME.
type daemon struct {
	home, socket string
	env          []string
	cmd          *exec.Cmd
	stderr       *lockedBuffer
	done         chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon registers this binary for the service "bench" and starts a
// daemon with the given backend, both in a fresh temporary HOME; extraEnv
// is added to the daemon's environment (a session bus address).
func startDaemon(ctx context.Context, backendName string, extraEnv ...string) (*daemon, error) {
	home, err := os.MkdirTemp("", "kab-")
	if err != nil {
		return nil, err
	}
	run := filepath.Join(home, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	d := &daemon{home: home, socket: filepath.Join(run, "keychain-auth", "agent.sock"), stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.env = []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR=" + run,
		// Never the real system daemon's files.
		"KEYCHAIN_AUTH_SYSTEM_ROOT=" + filepath.Join(home, "sysroot"),
		"KEYCHAIN_AUTH_PASSPHRASE=" + hex.EncodeToString(secret),
		asCLI + "=1",
	}
	d.env = append(d.env, extraEnv...)
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	reg := exec.CommandContext(ctx, self, "register", self, "--read", "bench", "--write", "bench", "--search")
	reg.Env = d.env
	if out, err := reg.CombinedOutput(); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("register this binary with the bench daemon: %v\n%s", err, out)
	}
	d.cmd = exec.Command(self, "start", "--backend", backendName)
	d.cmd.Env = d.env
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.done:
			os.RemoveAll(home)
			return nil, fmt.Errorf("the bench daemon exited at start:\n%s", d.stderr)
		default:
		}
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return d, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return nil, fmt.Errorf("the bench daemon did not listen within 60 s:\n%s", d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	os.RemoveAll(d.home)
}

// procStatusKB reads a "Name:   123 kB" line of /proc/<pid>/status.
func procStatusKB(pid int, name string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}
