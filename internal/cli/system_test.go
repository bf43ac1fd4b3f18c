package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/contrib/systemd"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
)

// systemApp is an app for uid on a machine whose system root is a temp dir;
// installed creates the system config.json, which puts it in system mode.
func systemApp(t *testing.T, uid int, installed bool, extra map[string]string) (*app, *bytes.Buffer, *bytes.Buffer, string) {
	t.Helper()
	a, out, errb, _ := testApp(t)
	root := t.TempDir()
	env := map[string]string{}
	for _, k := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"} {
		env[k] = a.getenv(k)
	}
	env[paths.EnvSystemRoot] = root
	for k, v := range extra {
		env[k] = v
	}
	a.getenv = func(k string) string { return env[k] }
	a.uid = uid
	// The config below is the test user's; only root can make it root's.
	a.systemOwner = os.Geteuid()
	if installed {
		cfg := filepath.Join(root, "etc", "keychain-auth", "config.json")
		if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(`{"protocol_version":"1","backend":"file","registered_binaries":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a, out, errb, root
}

func TestModeFollowsTheSystemConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		installed bool
		flag      string
		want      paths.Mode
	}{
		{false, "", paths.ModeUser},
		{true, "", paths.ModeSystem},
		{true, "user", paths.ModeUser},
		{false, "system", paths.ModeSystem},
	} {
		a, _, _, _ := systemApp(t, 4242, tt.installed, nil)
		a.mode = tt.flag
		l, err := a.layout()
		if err != nil {
			t.Fatal(err)
		}
		if l.Mode != tt.want {
			t.Errorf("installed=%v --mode=%q: mode %s, want %s", tt.installed, tt.flag, l.Mode, tt.want)
		}
	}
}

// In system mode the policy is root's: a user's admin commands are refused
// with the way out, before anything is touched; read-only ones still work.
func TestAdminCommandsInSystemModeNeedSudo(t *testing.T) {
	t.Parallel()
	a, _, _, root := systemApp(t, 4242, true, nil)
	tool := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(tool, []byte("tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "etc", "keychain-auth", "config.json")
	before, _ := os.ReadFile(cfg)
	for _, args := range [][]string{
		{"register", tool, "--read", "aws"},
		{"authorize", tool, "aws"},
		{"grant", tool, "--read", "aws"},
		{"revoke", tool, "--all"},
		{"unregister", tool},
		{"upgrade", tool},
		{"approve", "sha256:" + strings.Repeat("ab", 32)},
	} {
		var errb bytes.Buffer
		a.stderr = &errb
		if code := a.run(context.Background(), args); code != exitFail {
			t.Errorf("%v as uid 4242 in system mode: exit %d, want %d", args, code, exitFail)
		}
		if msg := errb.String(); !strings.Contains(msg, "sudo keychain-auth "+args[0]) || !strings.Contains(msg, "--mode user") {
			t.Errorf("%v: the refusal does not say to use sudo (or --mode user): %s", args, msg)
		}
	}
	if after, _ := os.ReadFile(cfg); !bytes.Equal(before, after) {
		t.Errorf("the refused commands changed %s", cfg)
	}

	var out bytes.Buffer
	a.stdout = &out
	if code := a.run(context.Background(), []string{"list", "--json"}); code != exitOK {
		t.Fatalf("list in system mode as a user: exit %d", code)
	}
	out.Reset()
	a.run(context.Background(), []string{"status", "--json"})
	var st statusReport
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if st.Mode != "system" || !st.RequiresSudo || st.ConfigPath != cfg {
		t.Errorf("status: mode %s requires_sudo %v config %s; want system, true, %s", st.Mode, st.RequiresSudo, st.ConfigPath, cfg)
	}
}

func TestStartOnASystemModeMachineSaysHowToRunAPersonalDaemon(t *testing.T) {
	t.Parallel()
	a, _, _, _ := systemApp(t, 4242, true, map[string]string{paths.EnvSystemUser: "no-such-user-ka"})
	_, err := a.startMode()
	if !errors.Is(err, ErrSystemMode) || !strings.Contains(err.Error(), "--mode user") {
		t.Fatalf("start as a user on a system-mode machine: %v; want ErrSystemMode naming --mode user", err)
	}
	a.mode = modeUser
	if m, err := a.startMode(); err != nil || m != paths.ModeUser {
		t.Errorf("--mode user: %s, %v", m, err)
	}
	a, _, _, _ = systemApp(t, 4242, false, nil)
	if m, err := a.startMode(); err != nil || m != paths.ModeUser {
		t.Errorf("no system install: %s, %v; want user mode", m, err)
	}
}

func TestMasterKeyIsCreatedOncePrivateAndNeverReplaced(t *testing.T) {
	t.Parallel()
	a, _, _, _ := systemApp(t, os.Getuid(), true, nil)
	l := a.systemLayout()
	if err := os.MkdirAll(l.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key, src, err := a.systemKey(ctx, l, false)
	if err != nil || len(key) != masterKeySize || !strings.Contains(src, "created") {
		t.Fatalf("first start: %d-byte key from %q, %v", len(key), src, err)
	}
	fi, err := os.Stat(l.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	again, _, err := a.systemKey(ctx, l, true)
	if err != nil || !bytes.Equal(key, again) {
		t.Fatalf("second start got another key (err %v)", err)
	}

	os.Chmod(l.KeyFile, 0o640)
	if _, _, err := a.systemKey(ctx, l, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a group-readable key was accepted: %v", err)
	}
	os.Remove(l.KeyFile)
	if _, _, err := a.systemKey(ctx, l, true); !errors.Is(err, ErrNoMasterKey) {
		t.Errorf("store without key: %v; want ErrNoMasterKey (a new key would lock the store for good)", err)
	}
	if _, err := os.Stat(l.KeyFile); err == nil {
		t.Error("a new key was written next to an existing store")
	}
}

func TestMasterKeyFromSystemdCredentials(t *testing.T) {
	t.Parallel()
	creds := t.TempDir()
	hexKey := strings.Repeat("0f", masterKeySize)
	if err := os.WriteFile(filepath.Join(creds, "master.key"), []byte(hexKey+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	a, _, _, _ := systemApp(t, os.Getuid(), true, map[string]string{paths.EnvCredentials: creds})
	l := a.systemLayout()
	key, src, err := a.systemKey(context.Background(), l, true)
	if err != nil || !bytes.Equal(key, bytes.Repeat([]byte{0x0f}, masterKeySize)) || !strings.Contains(src, "systemd credential") {
		t.Fatalf("credential key: %v from %q", err, src)
	}
	if _, err := os.Stat(l.KeyFile); err == nil {
		t.Error("a key file was created although systemd passed the key")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("k", 32), true},
		{strings.Repeat("ab", 32), true},
		{" " + strings.Repeat("AB", 32) + "\n", true},
		{strings.Repeat("k", 31), false},
		{strings.Repeat("zz", 32), false},
		{strings.Repeat("ab", 33), false},
		{"", false},
	} {
		if _, ok := parseKey([]byte(tt.in)); ok != tt.ok {
			t.Errorf("parseKey(%d bytes) ok=%v, want %v", len(tt.in), ok, tt.ok)
		}
	}
}

// The shipped unit must keep the confinement the threat model relies on,
// and install-system must only retarget the executable and the account.
func TestSystemUnit(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"Type=notify", "User=keychain-auth", "Group=keychain-auth", "AmbientCapabilities=CAP_SYS_PTRACE",
		"CapabilityBoundingSet=CAP_SYS_PTRACE", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ProtectHome=read-only", "PrivateTmp=yes", "RuntimeDirectory=keychain-auth", "RuntimeDirectoryMode=0750",
		"StateDirectory=keychain-auth", "StateDirectoryMode=0700", "UMask=0077",
		"ExecStart=" + systemd.DefaultBinary + " start --mode system --log-format json",
	} {
		if !strings.Contains(systemd.SystemUnit, "\n"+line+"\n") {
			t.Errorf("the unit lacks %q", line)
		}
	}
	u := unitFor("/opt/ka/keychain-auth", "kad-test")
	for _, line := range []string{"ExecStart=/opt/ka/keychain-auth start --mode system", "User=kad-test\n", "Group=kad-test\n"} {
		if !strings.Contains(u, "\n"+line) {
			t.Errorf("the installed unit lacks %q", line)
		}
	}
	if strings.Contains(u, "User=keychain-auth") || strings.Contains(u, "ExecStart="+systemd.DefaultBinary) {
		t.Error("the installed unit still names the defaults")
	}
}

func TestInstallSystemNeedsRootUnlessPrinting(t *testing.T) {
	t.Parallel()
	a, out, errb, root := systemApp(t, 4242, false, nil)
	for _, cmd := range []string{"install-system", "uninstall-system"} {
		errb.Reset()
		if code := a.run(context.Background(), []string{cmd}); code != exitFail || !strings.Contains(errb.String(), "sudo") {
			t.Errorf("%s as a user: exit %d, stderr %q; want 1 and a sudo hint", cmd, code, errb.String())
		}
		out.Reset()
		if code := a.run(context.Background(), []string{cmd, "--print"}); code != exitOK || !strings.Contains(out.String(), "would run") {
			t.Errorf("%s --print as a user: exit %d\n%s%s", cmd, code, out, errb)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("the system root is not empty after --print and refusals: %v", ents)
	}
}

// Root approving a binary edits the daemon's queue; the queue must stay the
// daemon's, or the daemon could no longer record anyone.
func TestRootEditsThePendingQueueAsTheDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root, and CI runs as root")
		}
		t.Skip("SKIPPED: needs root to own files as another uid")
	}
	t.Parallel()
	a, _, _, root := systemApp(t, 0, true, nil)
	l := a.systemLayout()
	const nobody = 65534
	if err := os.MkdirAll(l.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The daemon's uid must reach its directory, as on a real system.
	for _, d := range []string{filepath.Dir(root), root, filepath.Join(root, "var"), filepath.Join(root, "var", "lib")} {
		os.Chmod(d, 0o755)
	}
	os.Chown(l.StateDir, nobody, nobody)
	hash := "sha256:" + strings.Repeat("cd", 32)
	err := asFileOwner(nobody, nobody, func() error {
		return config.RecordPending(context.Background(), l.PendingFile, config.PendingRecord{Hash: hash, Path: "/x"}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(l.PendingFile + ".lock")
	rec, found, err := a.removePending(context.Background(), l, hash)
	if err != nil || !found || rec.Hash != hash {
		t.Fatalf("removePending: %v found=%v", err, found)
	}
	for _, p := range []string{l.PendingFile, l.PendingFile + ".lock"} {
		uid, _, err := ownerOf(p)
		if err != nil || uid != nobody {
			t.Errorf("%s: owner %d (%v), want the daemon's uid %d", p, uid, err, nobody)
		}
	}
	// Root's own file identity is back on every other thread.
	probe := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := ownerOf(probe); uid != 0 {
		t.Errorf("a file created afterwards belongs to uid %d, not root", uid)
	}
}
