// Package sstest starts a real, isolated Secret Service for tests: a private
// dbus-daemon and a gnome-keyring-daemon whose login keyring is created and
// unlocked with a known password, with HOME and XDG_* in temporary dirs.
package sstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Password unlocks every keyring this package starts. A non-empty password
// is required: with an empty one gnome-keyring wants a prompter.
const Password = "sstest-keyring-password"

// tools are the programs Start needs; Debian/Ubuntu packages: dbus,
// gnome-keyring, libsecret-tools (secret-tool), libglib2.0-bin (gdbus).
var tools = []string{"dbus-daemon", "gnome-keyring-daemon", "secret-tool"}

const installHint = "install dbus gnome-keyring libsecret-tools libglib2.0-bin"

// startTimeout bounds how long a fresh bus and keyring may take to appear.
const startTimeout = 15 * time.Second

// Keyring is one private bus with one gnome-keyring-daemon on it.
type Keyring struct {
	// Addr is the private bus address (DBUS_SESSION_BUS_ADDRESS).
	Addr string
	// Env is a minimal environment for child processes (secret-tool, the
	// daemon under test) that points them at this bus and temp home.
	Env []string
	// Conn is a connection to the bus, closed at cleanup.
	Conn *dbus.Conn

	t       testing.TB
	bus     *exec.Cmd
	mu      sync.Mutex
	keyring *exec.Cmd
	exited  chan struct{} // closed when keyring has been reaped
	kLog    *bytes.Buffer
}

// Options change what Start starts.
type Options struct {
	// NoUnlock starts gnome-keyring without --unlock: no login keyring
	// exists, so there is no "default" collection.
	NoUnlock bool
	// NoKeyring starts only the bus, for tests that serve the API
	// themselves or need it absent.
	NoKeyring bool
}

// Require skips t with a loud message when the tools are missing, or fails
// it when CI=true, since CI must run these tests.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("secret-service tests cannot run: %s not found; CI=true requires them: %s", strings.Join(missing, ", "), installHint)
	}
	t.Skipf("SKIPPING secret-service tests: %s not found; %s", strings.Join(missing, ", "), installHint)
}

// Start starts a bus and an unlocked keyring for t and stops them at cleanup.
func Start(t testing.TB) *Keyring {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Keyring {
	t.Helper()
	Require(t)
	home := t.TempDir()
	// A short runtime dir: gnome-keyring puts a socket in it, and t.TempDir
	// paths named after long subtests exceed the 108-byte socket path limit.
	run, err := os.MkdirTemp("", "sst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(run) })
	for _, d := range []string{"data", "config", "cache"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(run, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &Keyring{t: t}
	t.Cleanup(k.stop)

	// Our own bus config: no service activation, so a killed keyring
	// stays dead instead of being restarted locked by the bus.
	conf := filepath.Join(home, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, run)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	k.bus = exec.Command("dbus-daemon", "--config-file="+conf, "--print-address=1", "--nofork", "--nopidfile")
	dieWithTest(k.bus)
	out, err := k.bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var busErr bytes.Buffer
	k.bus.Stderr = &busErr
	if err := k.bus.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	addrCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrCh <- strings.TrimSpace(line)
	}()
	select {
	case k.Addr = <-addrCh:
	case <-ctx.Done():
	}
	if k.Addr == "" {
		t.Fatalf("dbus-daemon printed no address: %s", busErr.String())
	}

	k.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_RUNTIME_DIR=" + run,
		"DBUS_SESSION_BUS_ADDRESS=" + k.Addr,
		"LANG=C.UTF-8",
	}
	if k.Conn, err = dbus.Connect(k.Addr); err != nil {
		t.Fatalf("connect to the private bus: %v", err)
	}
	if opts.NoKeyring {
		return k
	}
	if err := k.startKeyring(ctx, !opts.NoUnlock); err != nil {
		t.Fatal(err)
	}
	return k
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// startKeyring runs gnome-keyring-daemon in the foreground (so its pid is
// ours to kill) and waits until it owns org.freedesktop.secrets.
func (k *Keyring) startKeyring(ctx context.Context, unlock bool) error {
	args := []string{"--foreground", "--components=secrets"}
	cmd := exec.Command("gnome-keyring-daemon", args...)
	if unlock {
		cmd.Args = append(cmd.Args, "--unlock")
		cmd.Stdin = strings.NewReader(Password)
	}
	cmd.Env = k.Env
	dieWithTest(cmd)
	logBuf := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start gnome-keyring-daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	k.mu.Lock()
	k.keyring, k.exited, k.kLog = cmd, exited, logBuf
	k.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var owned bool
		err := k.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.secrets").Store(&owned)
		if err == nil && owned {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("gnome-keyring-daemon exited before owning org.freedesktop.secrets")
		case <-ctx.Done():
			return fmt.Errorf("gnome-keyring-daemon did not own org.freedesktop.secrets within %s", startTimeout)
		case <-tick.C:
		}
	}
}

// Kill stops the keyring daemon (SIGKILL), leaving the bus up, and waits
// until its name is released.
func (k *Keyring) Kill() {
	k.t.Helper()
	k.mu.Lock()
	cmd, exited := k.keyring, k.exited
	k.keyring = nil
	k.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for ctx.Err() == nil {
		var owned bool
		err := k.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.secrets").Store(&owned)
		if err == nil && !owned {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.t.Fatal("org.freedesktop.secrets still owned after killing gnome-keyring-daemon")
}

// Restart kills the keyring daemon and starts a new one on the same bus and
// home; it unlocks the existing login keyring with Password.
func (k *Keyring) Restart() {
	k.t.Helper()
	k.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := k.startKeyring(ctx, true); err != nil {
		k.t.Fatal(err)
	}
}

// Freeze stops the keyring daemon (SIGSTOP) so it holds its name but never
// answers; Thaw resumes it. Cleanup thaws it before killing.
func (k *Keyring) Freeze() { k.signal(true) }

// Thaw resumes a frozen keyring daemon.
func (k *Keyring) Thaw() { k.signal(false) }

func (k *Keyring) signal(stop bool) {
	k.t.Helper()
	k.mu.Lock()
	cmd := k.keyring
	k.mu.Unlock()
	if cmd == nil {
		k.t.Fatal("no keyring daemon running")
	}
	if err := pause(cmd.Process, stop); err != nil {
		k.t.Fatal(err)
	}
}

// Command returns cmd name args run against this keyring's bus and home.
func (k *Keyring) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = k.Env
	return cmd
}

// Log returns what gnome-keyring-daemon printed, for failure messages.
func (k *Keyring) Log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kLog == nil {
		return ""
	}
	return k.kLog.String()
}

func (k *Keyring) stop() {
	k.mu.Lock()
	cmd, exited := k.keyring, k.exited
	k.keyring = nil
	k.mu.Unlock()
	if cmd != nil {
		_ = pause(cmd.Process, false)
		_ = cmd.Process.Kill()
		<-exited
	}
	if k.Conn != nil {
		_ = k.Conn.Close()
	}
	if k.bus != nil && k.bus.Process != nil {
		_ = k.bus.Process.Kill()
		if err := k.bus.Wait(); err != nil && !isKilled(err) {
			k.t.Logf("dbus-daemon: %v", err)
		}
	}
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

const (
	secretsName = "org.freedesktop.secrets"
	secretsPath = dbus.ObjectPath("/org/freedesktop/secrets")
	callTimeout = 5 * time.Second
)

func (k *Keyring) call(path dbus.ObjectPath, method string, args []any, out ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return k.Conn.Object(secretsName, path).CallWithContext(ctx, method, 0, args...).Store(out...)
}

// DefaultCollection returns the collection behind the "default" alias.
func (k *Keyring) DefaultCollection() dbus.ObjectPath {
	k.t.Helper()
	var coll dbus.ObjectPath
	if err := k.call(secretsPath, "org.freedesktop.Secret.Service.ReadAlias", []any{"default"}, &coll); err != nil {
		k.t.Fatalf("ReadAlias default: %v", err)
	}
	return coll
}

// Lock locks the default collection, as the screen locker or a user would.
func (k *Keyring) Lock() {
	k.t.Helper()
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	coll := k.DefaultCollection()
	if err := k.call(secretsPath, "org.freedesktop.Secret.Service.Lock", []any{[]dbus.ObjectPath{coll}}, &locked, &prompt); err != nil {
		k.t.Fatalf("Lock %s: %v", coll, err)
	}
	if prompt != "/" || len(locked) != 1 {
		k.t.Fatalf("Lock %s: locked %v, prompt %s; want it locked without a prompt", coll, locked, prompt)
	}
}

// Unlock unlocks the default collection with Password through
// gnome-keyring's private interface, which is what a login (PAM) does: the
// public Unlock method would need a prompt.
func (k *Keyring) Unlock() {
	k.t.Helper()
	var out dbus.Variant
	var sess dbus.ObjectPath
	if err := k.call(secretsPath, "org.freedesktop.Secret.Service.OpenSession", []any{"plain", dbus.MakeVariant("")}, &out, &sess); err != nil {
		k.t.Fatalf("OpenSession plain: %v", err)
	}
	master := struct {
		Session     dbus.ObjectPath
		Parameters  []byte
		Value       []byte
		ContentType string
	}{sess, []byte{}, []byte(Password), "text/plain"}
	if err := k.call(secretsPath, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface.UnlockWithMasterPassword",
		[]any{k.DefaultCollection(), master}); err != nil {
		k.t.Fatalf("UnlockWithMasterPassword: %v", err)
	}
	_ = k.call(sess, "org.freedesktop.Secret.Session.Close", nil)
}
