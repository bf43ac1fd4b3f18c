package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend/secretservice"
)

// asSSInner runs the Secret Service scenario inside the private session
// bus that dbus-run-session gave this process; it prints its rows as JSON.
const asSSInner = "KEYCHAIN_AUTH_BENCH_SS_INNER"

// secretService compares, on a real gnome-keyring in a private session, a
// 100-secret batch read through the daemon with 100 direct D-Bus lookups
// (the daemon's own Secret Service client, in this process) and with 100
// secret-tool lookup processes.
func (b *bench) secretService(ctx context.Context) error {
	for _, tool := range []string{"dbus-run-session", "gnome-keyring-daemon", "secret-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.add("Secret Service comparison", 0, "skipped", tool+" is not installed (Debian: dbus, gnome-keyring, libsecret-tools)")
			return nil
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "dbus-run-session", "--", self)
	cmd.Env = append(os.Environ(), asSSInner+"=1")
	cmd.Stderr = b.progress
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("the private session: %v", err)
	}
	var rows []row
	if err := json.Unmarshal(out, &rows); err != nil {
		return fmt.Errorf("the private session printed %q: %v", out, err)
	}
	b.rows = append(b.rows, rows...)
	return nil
}

func secretServiceInner() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rows, err := measureSecretService(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychain-auth-bench: secret service:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(rows)
	return 0
}

func measureSecretService(ctx context.Context) ([]row, error) {
	bus := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if bus == "" {
		return nil, errors.New("no session bus (this runs under dbus-run-session)")
	}
	home, err := os.MkdirTemp("", "kab-ss-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	keyringEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "DBUS_SESSION_BUS_ADDRESS=" + bus,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_RUNTIME_DIR=" + home}
	kr := exec.Command("gnome-keyring-daemon", "--foreground", "--components=secrets", "--unlock")
	kr.Env = keyringEnv
	kr.Stdin = strings.NewReader("bench-keyring-password")
	var krLog bytes.Buffer
	kr.Stdout, kr.Stderr = &krLog, &krLog
	if err := kr.Start(); err != nil {
		return nil, fmt.Errorf("start gnome-keyring-daemon: %w", err)
	}
	defer func() { kr.Process.Kill(); kr.Wait() }()

	// dbus-run-session's bus activates services: a Secret Service call made
	// before our keyring owns the name would start another, locked one.
	// NameHasOwner activates nothing.
	if err := waitForName(ctx, bus, "org.freedesktop.secrets"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, krLog.String())
	}
	// The daemon's own client, straight over D-Bus, once the keyring answers.
	var direct *secretservice.Backend
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if direct, err = secretservice.Open(ctx, secretservice.Options{}); err == nil {
			if _, err = direct.List(ctx, "bench", "", nil); err == nil {
				break
			}
			direct.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the keyring did not answer within 20 s: %v\n%s", err, krLog.String())
		}
	}
	defer direct.Close()

	d, err := startDaemon(ctx, "secret-service", "DBUS_SESSION_BUS_ADDRESS="+bus)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	c, err := dial(d.socket)
	if err != nil {
		return nil, err
	}
	defer c.nc.Close()
	if resp, err := c.roundTrip(batchLine("write", 100, true)); err != nil || !strings.Contains(resp, `"success"`) {
		return nil, fmt.Errorf("store 100 secrets through the daemon: %v %s", err, resp)
	}

	const reps = 5
	median := func(f func() error) (time.Duration, error) {
		var d []time.Duration
		for range reps {
			start := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[reps/2], nil
	}
	batch, err := median(func() error {
		resp, err := c.roundTrip(batchLine("read", 100, false))
		if err == nil && strings.Count(resp, `"value"`) != 100 {
			err = fmt.Errorf("batch read answered %.200s", resp)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	gets, err := median(func() error {
		for i := range 100 {
			if _, err := direct.Get(ctx, "bench", target(i)); err != nil {
				return fmt.Errorf("direct Get %s: %w", target(i), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range 100 {
		cmd := exec.CommandContext(ctx, "secret-tool", "lookup", secretservice.AttrService, "bench", secretservice.AttrTarget, target(i))
		cmd.Env = keyringEnv
		if out, err := cmd.Output(); err != nil || len(out) == 0 {
			return nil, fmt.Errorf("secret-tool lookup %s: %v", target(i), err)
		}
	}
	tool := time.Since(start)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	return []row{
		{Scenario: "Secret Service: 100-secret batch through the daemon", Value: ms(batch), Unit: "ms", Note: "real gnome-keyring, private session bus; median of 5"},
		{Scenario: "Secret Service: 100 direct D-Bus lookups", Value: ms(gets), Unit: "ms", Note: fmt.Sprintf("%.1f× the daemon batch; median of 5", float64(gets)/float64(batch))},
		{Scenario: "Secret Service: 100 secret-tool lookup processes", Value: ms(tool), Unit: "ms", Note: fmt.Sprintf("%.1f× the daemon batch", float64(tool)/float64(batch))},
	}, nil
}

func waitForName(ctx context.Context, addr, name string) error {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return fmt.Errorf("connect to the private session bus: %w", err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var owned bool
		err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&owned)
		if err == nil && owned {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gnome-keyring-daemon did not take %s within 20 s (%v)", name, err)
		}
	}
}
