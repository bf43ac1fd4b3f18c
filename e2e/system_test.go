//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// sysWorld is a machine in system mode under a private system root: a
// daemon account and two ordinary users created for the test (unique
// names, so parallel runs do not collide), and the daemon running as its
// account with CAP_SYS_PTRACE, started the way install-system says.
type sysWorld struct {
	t      *testing.T
	root   string // $KEYCHAIN_AUTH_SYSTEM_ROOT
	daemon string // the daemon's account and group
	userA  string
	userB  string
	uidA   uint32
	vars   []string // environment of every command
	bin    string   // the installed executable
	socket string
	state  string // /var/lib/keychain-auth under root
	config string
	// installOut is what the first install-system printed.
	installOut string
	d          *daemon
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("system mode tests need root (to create users and run the daemon as one), and CI runs as root")
	}
	t.Skip("SKIPPED: system mode tests need root to create users and run the daemon as its own user; run the e2e tests as root")
}

func newSysWorld(t *testing.T) *sysWorld {
	t.Helper()
	requireRoot(t)
	for _, tool := range []string{"setpriv", "useradd", "userdel", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("system mode tests need %s: %v", tool, err)
		}
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	w := &sysWorld{t: t, daemon: "kad" + id, userA: "kaa" + id, userB: "kab" + id}

	// Every path component must be traversable by the daemon and the users.
	root, err := os.MkdirTemp("", "ka-sys-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	t.Cleanup(func() { os.RemoveAll(root) })
	w.root = root
	w.bin = filepath.Join(root, "usr", "local", "bin", "keychain-auth")
	w.socket = filepath.Join(root, "run", "keychain-auth", "agent.sock")
	w.state = filepath.Join(root, "var", "lib", "keychain-auth")
	w.config = filepath.Join(root, "etc", "keychain-auth", "config.json")
	w.vars = []string{
		"PATH=" + os.Getenv("PATH"),
		"KEYCHAIN_AUTH_SYSTEM_ROOT=" + root,
		"KEYCHAIN_AUTH_SYSTEM_USER=" + w.daemon,
		"GORACE=atexit_sleep_ms=0",
	}
	// Registered before anything is created, so a half-done setup is undone.
	t.Cleanup(func() {
		for _, u := range []string{w.userA, w.userB, w.daemon} {
			exec.Command("userdel", u).Run()
			exec.Command("groupdel", u).Run()
		}
	})

	out, errOut, code := w.ka("", "install-system")
	if code != 0 {
		t.Fatalf("install-system: exit %d\n%s\n%s", code, out, errOut)
	}
	w.installOut = out
	for _, u := range []string{w.userA, w.userB} {
		// Members of the daemon's group may reach the socket.
		if out, err := exec.Command("useradd", "--no-create-home", "--user-group", "--groups", w.daemon,
			"--shell", "/bin/sh", u).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", u, err, out)
		}
	}
	w.uidA = lookupUID(t, w.userA)
	w.start()
	return w
}

func lookupUID(t *testing.T, name string) uint32 {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n)
}

// as builds a command run as user (real and effective ids and groups) with
// setpriv; "" means root.
func (w *sysWorld) as(who string, vars []string, name string, args ...string) *exec.Cmd {
	if vars == nil {
		vars = w.vars
	}
	var cmd *exec.Cmd
	if who == "" {
		cmd = exec.Command(name, args...)
	} else {
		cmd = exec.Command("setpriv", append([]string{"--reuid", who, "--regid", who, "--init-groups", "--", name}, args...)...)
	}
	cmd.Env, cmd.Dir = vars, "/"
	return cmd
}

// ka runs the keychain-auth test binary as who.
func (w *sysWorld) ka(who string, args ...string) (string, string, int) {
	w.t.Helper()
	return runCmd(w.t, w.as(who, nil, kaBin, args...))
}

// start runs the daemon exactly as install-system told the administrator
// to: its setpriv line, under sh.
func (w *sysWorld) start() {
	t := w.t
	t.Helper()
	var line string
	for l := range strings.SplitSeq(w.installOut, "\n") {
		if strings.Contains(l, "setpriv ") && strings.Contains(l, " start --mode system") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("install-system printed no setpriv line to start the daemon:\n%s", w.installOut)
	}
	// env, because the line may start with variable assignments.
	cmd := exec.Command("sh", "-c", "exec env "+line)
	cmd.Env = w.vars
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{}), e: &env{t: t}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	w.d = d
	waitFor(t, "the system daemon to listen", func() bool {
		select {
		case <-d.done:
			t.Fatalf("the system daemon exited: %v\n%s", d.err, d.stderr)
		default:
		}
		c, err := net.Dial("unix", w.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// call runs bin as who against socket (the system one when ""), sending
// lines; it returns the responses.
func (w *sysWorld) call(who, socket, bin string, lines ...string) []protocol.Response {
	w.t.Helper()
	if socket == "" {
		socket = w.socket
	}
	var out, errOut string
	var code int
	// A binary just written can be briefly busy (see env.call); setpriv then
	// fails to exec it.
	for try := 0; ; try++ {
		cmd := w.as(who, nil, bin, socket)
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		out, errOut, code = runCmd(w.t, cmd)
		if !strings.Contains(errOut, "Text file busy") || try == 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != 0 && code != 3 {
		w.t.Fatalf("%s as %s: exit %d\n%s", bin, who, code, errOut)
	}
	var resps []protocol.Response
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if sc.Text() == "CLOSED" {
			continue
		}
		var r protocol.Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			w.t.Fatalf("not a response: %q", sc.Text())
		}
		resps = append(resps, r)
	}
	return resps
}

func (w *sysWorld) one(who, bin, line string) protocol.Response {
	w.t.Helper()
	r := w.call(who, "", bin, line)
	if len(r) != 1 {
		w.t.Fatalf("want 1 response to %s as %s, got %d", line, who, len(r))
	}
	return r[0]
}

func (w *sysWorld) mustKA(who string, args ...string) string {
	w.t.Helper()
	out, errOut, code := w.ka(who, args...)
	if code != 0 {
		w.t.Fatalf("keychain-auth %v as %q: exit %d\n%s\n%s", args, who, code, out, errOut)
	}
	return out
}

// copyBinary makes a copy of src whose hash differs from src's and from
// other copies' (bytes appended to an ELF file do not change how it runs),
// in the world-readable binDir.
func copyBinary(t *testing.T, src, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(binDir, name)
	if err := os.WriteFile(dst, append(b, name...), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dst) })
	return dst
}

func TestSystemMode(t *testing.T) {
	t.Parallel()
	w := newSysWorld(t)
	A, B := w.userA, w.userB

	t.Run("install laid out the files", func(t *testing.T) {
		for _, c := range []struct {
			path  string
			owner string
			mode  os.FileMode
		}{
			{w.config, "root", 0o644},
			{filepath.Dir(w.config), "root", 0o755},
			{w.state, w.daemon, 0o700},
			{filepath.Join(w.state, "master.key"), w.daemon, 0o600},
			{filepath.Join(w.state, "keyring.json"), w.daemon, 0o600},
			{filepath.Dir(w.socket), w.daemon, 0o750},
			{w.socket, w.daemon, 0o660 | os.ModeSocket},
			{w.bin, "root", 0o755},
		} {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Errorf("%s: %v", c.path, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			want := lookupUID(t, c.owner)
			if st.Uid != want || fi.Mode()&(os.ModePerm|os.ModeSocket) != c.mode {
				t.Errorf("%s: uid %d mode %v; want %s (%d) %v", c.path, st.Uid, fi.Mode(), c.owner, want, c.mode)
			}
		}
		// Group ownership is what lets members reach the socket.
		fi, _ := os.Stat(w.socket)
		g, _ := user.LookupGroup(w.daemon)
		if strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)) != g.Gid {
			t.Errorf("the socket's group is not %s", w.daemon)
		}
	})

	t.Run("install is idempotent", func(t *testing.T) {
		out := w.mustKA("", "install-system")
		if strings.Contains(out, "done  groupadd") || strings.Contains(out, "done  useradd") ||
			strings.Contains(out, "done  write "+w.config) || strings.Contains(out, "done  install -o root") {
			t.Errorf("a second install-system redid steps:\n%s", out)
		}
		if !strings.Contains(out, "ok    useradd") {
			t.Errorf("a second install-system did not report the user as in place:\n%s", out)
		}
	})

	t.Run("install --print names every step and marks what is in place", func(t *testing.T) {
		out, errOut, code := w.ka(A, "install-system", "--print")
		if code != 0 {
			t.Fatalf("install-system --print as %s: exit %d\n%s", A, code, errOut)
		}
		for _, want := range []string{
			"groupadd --system " + w.daemon + "   # in place",
			"useradd --system --gid " + w.daemon,
			"install -d -o root -g root -m 0755 " + filepath.Dir(w.config) + "   # in place",
			"install -d -o " + w.daemon + " -g " + w.daemon + " -m 0700 " + w.state + "   # in place",
			"install -d -o " + w.daemon + " -g " + w.daemon + " -m 0750 " + filepath.Dir(w.socket) + "   # in place",
			"write " + filepath.Join(w.root, "etc", "systemd", "system", "keychain-auth.service"),
			"setpriv --reuid " + w.daemon + " --regid " + w.daemon,
			"usermod -aG " + w.daemon,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("install-system --print lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the unit file verifies", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("systemd-analyze is missing; .ci/run installs the systemd package for it")
			}
			t.Skip("SKIPPING: systemd-analyze is not installed (apt-get install systemd), so the unit is not verified here")
		}
		unit := filepath.Join(w.root, "etc", "systemd", "system", "keychain-auth.service")
		out, err := exec.Command(sa, "verify", unit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	})

	// Registered as root; any uid may use the entry.
	w.mustKA("", "register", client, "--read", "svc", "--write", "svc", "--search")
	if fi, err := os.Stat(w.config); err != nil || fi.Mode().Perm() != 0o644 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("config.json after register: %v %v; want root's and 0644", fi.Mode(), err)
	}

	t.Run("each user has a namespace of their own", func(t *testing.T) {
		wantStatus(t, w.one(A, client, req("write", "svc", []string{"tok"}, "values", []string{"secret-of-A"})), protocol.StatusSuccess, "")
		if v := values(w.one(A, client, req("read", "svc", []string{"tok"}))); v["tok"] != "secret-of-A" {
			t.Fatalf("A reads %v, want its own secret", v)
		}
		// B, with the same registered binary and service, sees none of it.
		r := w.one(B, client, req("read", "svc", []string{"tok"}))
		wantStatus(t, r, protocol.StatusSuccess, "")
		if len(r.Results) != 0 || len(r.Missing) != 1 {
			t.Fatalf("B read A's target: results %v missing %v", r.Results, r.Missing)
		}
		if r := w.one(B, client, req("search", "svc", nil)); len(r.Results) != 0 {
			t.Fatalf("B's search lists %v", targets(r))
		}
		if r := w.one(B, client, req("read", "svc", []string{""}, "match", "prefix")); len(r.Results) != 0 {
			t.Fatalf("B's prefix read returns %v", targets(r))
		}
		// B writing and deleting the same name touches only B's copy.
		wantStatus(t, w.one(B, client, req("write", "svc", []string{"tok"}, "values", []string{"secret-of-B"})), protocol.StatusSuccess, "")
		if v := values(w.one(B, client, req("read", "svc", []string{"tok"}))); v["tok"] != "secret-of-B" {
			t.Fatalf("B reads %v", v)
		}
		wantStatus(t, w.one(B, client, req("delete", "svc", []string{"tok"})), protocol.StatusSuccess, "")
		if v := values(w.one(A, client, req("read", "svc", []string{"tok"}))); v["tok"] != "secret-of-A" {
			t.Fatalf("after B's write and delete, A reads %v; want its own secret unchanged", v)
		}
		store, err := os.ReadFile(filepath.Join(w.state, "keyring.json"))
		if err != nil || bytes.Contains(store, []byte("secret-of-A")) {
			t.Errorf("the store holds a value in plaintext (or cannot be read: %v)", err)
		}
	})

	t.Run("an entry limited to a uid refuses the others", func(t *testing.T) {
		only := copyBinary(t, client, "kaclient-only-"+A)
		w.mustKA("", "register", only, "--read", "svc")
		limitEntry(t, w.config, only, w.uidA)
		wantStatus(t, w.one(B, only, req("read", "svc", []string{"tok"})), protocol.StatusDenied, protocol.ReasonForeignUser)
		if v := values(w.one(A, only, req("read", "svc", []string{"tok"}))); v["tok"] != "secret-of-A" {
			t.Errorf("A through its own entry reads %v", v)
		}
	})

	t.Run("an unregistered binary is denied and queued with its uid", func(t *testing.T) {
		rogue := copyBinary(t, client, "kaclient-rogue-"+A)
		wantStatus(t, w.one(A, rogue, req("read", "svc", []string{"tok"})), protocol.StatusDenied, protocol.ReasonUnregisteredBinary)
		var recs []struct {
			Path string  `json:"path"`
			UID  *uint32 `json:"uid"`
		}
		waitFor(t, "the pending record", func() bool {
			out, _, code := w.ka("", "list-pending", "--json")
			recs = nil
			return code == 0 && json.Unmarshal([]byte(out), &recs) == nil && len(recs) > 0
		})
		if recs[0].Path != rogue || recs[0].UID == nil || *recs[0].UID != w.uidA {
			t.Errorf("pending record %+v; want path %s uid %d", recs[0], rogue, w.uidA)
		}
		if out := w.mustKA("", "list-pending"); !strings.Contains(out, A+" ("+strconv.Itoa(int(w.uidA))+")") {
			t.Errorf("list-pending does not say whose caller it was:\n%s", out)
		}
		// pending.json stays the daemon's when root edits it.
		w.mustKA("", "approve", hashPrefix(t, w, rogue))
		st, _ := os.Stat(filepath.Join(w.state, "pending.json"))
		if st == nil || st.Sys().(*syscall.Stat_t).Uid != lookupUID(t, w.daemon) {
			t.Errorf("pending.json is no longer the daemon's after root's approve")
		}
	})

	t.Run("users cannot reach the daemon's files or process", func(t *testing.T) {
		pid := strconv.Itoa(w.d.cmd.Process.Pid)
		for _, p := range []string{"keyring.json", "master.key", "audit.log", "pending.json"} {
			path := filepath.Join(w.state, p)
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: %v (the test needs it to exist)", path, err)
			}
			if out, err := w.as(A, nil, "cat", path).CombinedOutput(); err == nil || !bytes.Contains(out, []byte("Permission denied")) {
				t.Errorf("%s could run cat %s: %v %d bytes", A, path, err, len(out))
			}
		}
		if out, err := w.as(A, nil, "sh", "-c", `echo '{}' >> "$0"`, w.config).CombinedOutput(); err == nil {
			t.Errorf("%s could append to config.json: %s", A, out)
		}
		for _, args := range [][]string{
			{"cat", "/proc/" + pid + "/environ"},
			{"dd", "if=/proc/" + pid + "/mem", "count=0", "status=none"},
		} {
			if out, err := w.as(A, nil, args[0], args[1:]...).CombinedOutput(); err == nil || !bytes.Contains(out, []byte("Permission denied")) {
				t.Errorf("%s ran %v on the daemon: %v (%d bytes)", A, args, err, len(out))
			}
		}
	})

	t.Run("admin commands tell users to use sudo; read-only ones work", func(t *testing.T) {
		before, _ := os.ReadFile(w.config)
		for _, args := range [][]string{
			{"grant", client, "--read", "other"},
			{"approve", "0123456789abcdef"},
			{"register", client2, "--read", "svc"},
			{"revoke", client, "--all"},
		} {
			_, errOut, code := w.ka(A, args...)
			if code != 1 || !strings.Contains(errOut, "sudo keychain-auth "+args[0]) {
				t.Errorf("%v as %s: exit %d, stderr %q; want 1 and a sudo hint", args, A, code, errOut)
			}
		}
		if after, _ := os.ReadFile(w.config); !bytes.Equal(before, after) {
			t.Error("a refused command changed config.json")
		}
		if out := w.mustKA(A, "list"); !strings.Contains(out, client) {
			t.Errorf("list as %s does not show the registered client:\n%s", A, out)
		}
		if _, errOut, code := w.ka(A, "list-pending"); code != 1 || !strings.Contains(errOut, "sudo") {
			t.Errorf("list-pending as %s: exit %d %q; want a sudo hint", A, code, errOut)
		}
		out, errOut, code := w.ka(A, "status", "--json")
		var st struct {
			Running bool   `json:"daemon_running"`
			Mode    string `json:"mode"`
			Sudo    bool   `json:"requires_sudo"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Running || st.Mode != "system" || !st.Sudo {
			t.Errorf("status --json as %s: exit %d %+v\n%s%s", A, code, st, out, errOut)
		}
		out, _, _ = w.ka("", "status", "--json")
		if json.Unmarshal([]byte(out), &st) != nil || st.Sudo {
			t.Errorf("status as root says sudo is required: %s", out)
		}
		// A user starting a daemon here is told about the system one.
		if _, errOut, code := w.ka(A, "start"); code != 1 || !strings.Contains(errOut, "--mode user") {
			t.Errorf("start as %s: exit %d %q; want a pointer to the system daemon and --mode user", A, code, errOut)
		}
	})

	t.Run("the daemon refuses to run without CAP_SYS_PTRACE", func(t *testing.T) {
		_, errOut, code := runCmd(t, w.as(w.daemon, nil, w.bin, "start", "--mode", "system"))
		if code != 1 || !strings.Contains(errOut, "CAP_SYS_PTRACE") {
			t.Errorf("daemon without the capability: exit %d %q", code, errOut)
		}
	})

	t.Run("migrate moves a user's secrets through the daemons", func(t *testing.T) {
		w.migrate(t)
	})

	t.Run("uninstall keeps the store; install restores; purge removes", func(t *testing.T) {
		w.d.stop()
		out := w.mustKA("", "uninstall-system")
		if exists(w.config) || !exists(w.config+".uninstalled") || !exists(filepath.Join(w.state, "keyring.json")) {
			t.Fatalf("after uninstall-system: config %v, saved %v, store %v\n%s", exists(w.config),
				exists(w.config+".uninstalled"), exists(filepath.Join(w.state, "keyring.json")), out)
		}
		if _, err := user.Lookup(w.daemon); err != nil {
			t.Error("uninstall-system without --purge removed the daemon's user")
		}
		w.mustKA("", "install-system")
		if out := w.mustKA("", "list"); !strings.Contains(out, client) {
			t.Errorf("install-system did not restore the policy:\n%s", out)
		}
		w.mustKA("", "uninstall-system", "--purge")
		if exists(w.state) || exists(filepath.Dir(w.config)) || exists(filepath.Join(w.root, "etc", "systemd", "system", "keychain-auth.service")) {
			t.Error("uninstall-system --purge left files behind")
		}
		if _, err := user.Lookup(w.daemon); err == nil {
			t.Error("uninstall-system --purge kept the daemon's user")
		}
	})
}

// hashPrefix asks root's list-pending for the queued hash of path.
func hashPrefix(t *testing.T, w *sysWorld, path string) string {
	t.Helper()
	var recs []struct {
		Hash string `json:"hash"`
		Path string `json:"path"`
	}
	out := w.mustKA("", "list-pending", "--json")
	json.Unmarshal([]byte(out), &recs)
	for _, r := range recs {
		if r.Path == path {
			return r.Hash
		}
	}
	t.Fatalf("%s is not queued:\n%s", path, out)
	return ""
}

// limitEntry edits config.json as root, as an administrator would, to limit
// path's entry to uid.
func limitEntry(t *testing.T, cfg, path string, uid uint32) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range doc["registered_binaries"].([]any) {
		if m := e.(map[string]any); m["path"] == path {
			m["uids"] = []uint32{uid}
		}
	}
	b, _ = json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// migrate runs a user-mode daemon as user A with secrets in it, and moves
// them into the system daemon with `keychain-auth migrate`.
func (w *sysWorld) migrate(t *testing.T) {
	A := w.userA
	uid := lookupUID(t, A)
	home := filepath.Join(w.root, "home-"+A)
	run := filepath.Join(home, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Chown(p, int(uid), int(uid))
		}
		return err
	})
	userSock := filepath.Join(run, "keychain-auth", "agent.sock")
	varsA := append([]string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR=" + run,
		"KEYCHAIN_AUTH_PASSPHRASE=" + passphrase,
	}, w.vars...)
	kaA := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCmd(t, w.as(A, varsA, kaBin, args...))
		if code != 0 {
			t.Fatalf("keychain-auth %v as %s: exit %d\n%s\n%s", args, A, code, out, errOut)
		}
		return out
	}
	// A's own daemon and policy, in user mode on a system-mode machine.
	kaA("--mode", "user", "register", client2, "--read", "msvc", "--write", "msvc")
	kaA("--mode", "user", "register", kaBin, "--read", "msvc", "--search")
	cmd := w.as(A, varsA, kaBin, "start", "--mode", "user", "--backend", "file")
	ud := &daemon{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{}), e: &env{t: t}}
	cmd.Stderr = ud.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ud.err = cmd.Wait(); close(ud.done) }()
	defer ud.stop()
	waitFor(t, A+"'s user daemon", func() bool {
		select {
		case <-ud.done:
			t.Fatalf("user daemon exited: %v\n%s", ud.err, ud.stderr)
		default:
		}
		c, err := net.Dial("unix", userSock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	r := w.call(A, userSock, client2,
		req("write", "msvc", []string{"plain"}, "values", []string{"migrated-value-1"}),
		req("write", "msvc", []string{"tagged"}, "values", []string{"migrated-value-2"}, "attributes", map[string]string{"env": "prod"}))
	if len(r) != 2 || r[0].Status != protocol.StatusSuccess || r[1].Status != protocol.StatusSuccess {
		t.Fatalf("writing to %s's user daemon: %+v", A, r)
	}

	// Without a grant in the system daemon, migrate says what to register.
	out, errOut, code := runCmd(t, w.as(A, varsA, kaBin, "migrate", "--to-system", "--service", "msvc"))
	if code != 1 || !strings.Contains(errOut, "sudo keychain-auth register") {
		t.Fatalf("migrate without a system grant: exit %d\n%s%s", code, out, errOut)
	}
	w.mustKA("", "register", kaBin, "--write", "msvc")
	w.mustKA("", "grant", client, "--read", "msvc")
	out = kaA("migrate", "--to-system", "--service", "msvc")
	if !strings.Contains(out, "copied 2 secrets of service msvc") {
		t.Errorf("migrate output:\n%s", out)
	}

	got := w.one(A, client, req("read", "msvc", []string{"plain", "tagged"}))
	if v := values(got); v["plain"] != "migrated-value-1" || v["tagged"] != "migrated-value-2" {
		t.Fatalf("after migrate A reads %v from the system daemon", v)
	}
	for _, res := range got.Results {
		if res.Target == "tagged" && res.Attributes["env"] != "prod" {
			t.Errorf("the attributes were not carried over: %v", res.Attributes)
		}
	}
	if r := w.one(w.userB, client, req("read", "msvc", []string{"plain"})); len(r.Results) != 0 {
		t.Errorf("B reads A's migrated secret: %v", r.Results)
	}
	store, _ := os.ReadFile(filepath.Join(w.state, "keyring.json"))
	if bytes.Contains(store, []byte("migrated-value")) {
		t.Error("the system store holds a migrated value in plaintext")
	}
	// The values went from socket to socket: nothing of them under A's home
	// or the system root but the two encrypted stores.
	filepath.Walk(w.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("migrated-value")) {
			t.Errorf("%s holds a migrated value in plaintext", p)
		}
		return nil
	})
}
