package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/contrib/systemd"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

// step is one change install-system or uninstall-system makes. show is how
// it is printed, as the shell command (or the short description) that does
// the same; done says whether it is already in place, so running twice
// changes nothing.
type step struct {
	show string
	done func() bool
	do   func(ctx context.Context) error
}

// plan is the steps of one command plus what to tell the user afterwards.
type plan struct {
	steps []step
	notes []string
}

// runPlan prints each step and, unless printOnly, performs the ones that are
// not in place yet. It stops at the first failure.
func (a *app) runPlan(ctx context.Context, title string, p plan, printOnly bool) error {
	if printOnly {
		fmt.Fprintf(a.stdout, "# %s would run these steps (nothing was changed; steps marked \"in place\" would be skipped):\n", title)
	}
	for _, s := range p.steps {
		inPlace := s.done != nil && s.done()
		switch {
		case printOnly && inPlace:
			fmt.Fprintf(a.stdout, "%s   # in place\n", s.show)
		case printOnly:
			fmt.Fprintln(a.stdout, s.show)
		case inPlace:
			fmt.Fprintf(a.stdout, "ok    %s   # already in place\n", s.show)
		default:
			if err := s.do(ctx); err != nil {
				return fmt.Errorf("%s: step %q failed: %w; the steps before it were done, and running the command again resumes", title, s.show, err)
			}
			fmt.Fprintf(a.stdout, "done  %s\n", s.show)
		}
	}
	for _, n := range p.notes {
		fmt.Fprintln(a.stdout)
		fmt.Fprintln(a.stdout, n)
	}
	return nil
}

func (a *app) installSystemCmd() *cobra.Command {
	var printOnly bool
	var binary string
	cmd := &cobra.Command{
		Use:   "install-system",
		Short: "Set up system mode: a daemon running as its own user that users cannot read or bypass (root)",
		Long: `Set up system mode (Linux), where the daemon runs as the system user keychain-auth
and owns the store and the policy, and users only get a socket:

  - system user and group keychain-auth (no login shell, no home)
  - /etc/keychain-auth/config.json, root:root 0644: only root changes the policy
  - /var/lib/keychain-auth, 0700 keychain-auth: store, master key, pending.json, audit.log
  - /run/keychain-auth, 0750 keychain-auth: the socket, 0660 group keychain-auth
  - the daemon's executable at /usr/local/bin/keychain-auth (root-owned: whoever can
    replace it runs as the daemon)
  - the systemd unit /etc/systemd/system/keychain-auth.service, enabled and started

Every path moves under $KEYCHAIN_AUTH_SYSTEM_ROOT when it is set; the user and
group are real ones (named by $KEYCHAIN_AUTH_SYSTEM_USER when set). Steps already
in place are skipped, so running it again is safe. Without systemd (or with a
relocated root) nothing is started: the command prints how to run the daemon
under its user with setpriv. --print shows every step without doing any.

Afterwards, add the users who may use the daemon to group keychain-auth, and
register binaries with sudo keychain-auth register.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.installSystem(cmd.Context(), binary, printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print every step without doing it")
	cmd.Flags().StringVar(&binary, "binary", "", "where to install the daemon's executable (default <root>/usr/local/bin/keychain-auth)")
	return cmd
}

func (a *app) uninstallSystemCmd() *cobra.Command {
	var printOnly, purge bool
	cmd := &cobra.Command{
		Use:   "uninstall-system",
		Short: "Undo install-system, keeping the store unless --purge (root)",
		Long: `Stop and remove the system daemon's unit, its socket directory, and take the
machine out of system mode by renaming /etc/keychain-auth/config.json to
config.json.uninstalled (install-system puts it back). The store, its master key,
the audit log and the system user stay, so nothing is lost; --purge removes them
too. The executable is left in place: it also runs user mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.uninstallSystem(cmd.Context(), purge, printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print every step without doing it")
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the store, master key, audit log, pending queue, and the system user and group")
	return cmd
}

// systemTarget is what install-system and uninstall-system act on.
type systemTarget struct {
	env      paths.Env
	layout   paths.Layout
	root     string
	user     string
	binary   string
	unit     string
	runDir   string
	systemd  bool // systemd runs this machine and the root is the real one
	envVars  string
	stateDir string
}

func (a *app) systemTarget(binary string) (systemTarget, error) {
	e := paths.Env{Getenv: a.getenv, UID: a.uid}
	t := systemTarget{env: e, layout: paths.System(e), root: paths.SystemRoot(e), user: paths.SystemUser(e),
		binary: binary, unit: paths.SystemUnit(e)}
	if t.binary == "" {
		t.binary = paths.SystemBinary(e)
	}
	abs, err := filepath.Abs(t.binary)
	if err != nil {
		return t, err
	}
	t.binary = abs
	t.runDir = filepath.Dir(t.layout.SocketPath)
	t.stateDir = t.layout.StateDir
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() && filepath.Clean(t.root) == "/" {
		t.systemd = true
	}
	// What a command run by hand needs to find the same system.
	var vars []string
	for _, k := range []string{paths.EnvSystemRoot, paths.EnvSystemUser} {
		if v := a.getenv(k); v != "" {
			vars = append(vars, k+"="+shellQuote(v))
		}
	}
	t.envVars = strings.Join(vars, " ")
	return t, nil
}

// needRoot refuses to change the system as anyone else.
func (a *app) needRoot(command string) error {
	if a.uid == 0 {
		return nil
	}
	return explain(ErrNeedsRoot, "%s changes the system (users, /etc, /var/lib, systemd): run it with sudo; "+
		"to see every step without changing anything: keychain-auth %s --print", command, command)
}

func (a *app) installSystem(ctx context.Context, binary string, printOnly bool) error {
	if err := systemModeSupported(); err != nil {
		return err
	}
	if !printOnly {
		if err := a.needRoot("install-system"); err != nil {
			return err
		}
	}
	t, err := a.systemTarget(binary)
	if err != nil {
		return err
	}
	p, err := a.installPlan(t)
	if err != nil {
		return err
	}
	return a.runPlan(ctx, "install-system", p, printOnly)
}

func (a *app) uninstallSystem(ctx context.Context, purge, printOnly bool) error {
	if err := systemModeSupported(); err != nil {
		return err
	}
	if !printOnly {
		if err := a.needRoot("uninstall-system"); err != nil {
			return err
		}
	}
	t, err := a.systemTarget("")
	if err != nil {
		return err
	}
	return a.runPlan(ctx, "uninstall-system", a.uninstallPlan(t, purge), printOnly)
}

// installPlan lists install-system's steps in dependency order: the group
// before the user, the user before what it owns.
func (a *app) installPlan(t systemTarget) (plan, error) {
	self, err := selfExecutable()
	if err != nil {
		return plan{}, err
	}
	cfg := t.layout.ConfigFile
	saved := cfg + ".uninstalled"
	unit := unitFor(t.binary, t.user)
	var p plan

	p.steps = append(p.steps,
		step{
			show: "groupadd --system " + shellQuote(t.user),
			done: func() bool { _, err := user.LookupGroup(t.user); return err == nil },
			do:   func(ctx context.Context) error { return runTool(ctx, "groupadd", "--system", t.user) },
		},
		step{
			show: fmt.Sprintf("useradd --system --gid %s --home-dir %s --no-create-home --shell %s --comment %s %s",
				shellQuote(t.user), shellQuote(t.stateDir), nologin(), shellQuote("keychain-auth daemon"), shellQuote(t.user)),
			done: func() bool { _, err := user.Lookup(t.user); return err == nil },
			do: func(ctx context.Context) error {
				return runTool(ctx, "useradd", "--system", "--gid", t.user, "--home-dir", t.stateDir, "--no-create-home",
					"--shell", nologin(), "--comment", "keychain-auth daemon", t.user)
			},
		},
		dirStep(t.layout.ConfigDir, "root", "root", systemConfigDir),
	)
	cfgShow := fmt.Sprintf("write %s (root:root 0644) with {\"backend\":\"file\"} and no registered binaries", shellQuote(cfg))
	if exists(saved) && !exists(cfg) {
		cfgShow = fmt.Sprintf("mv %s %s   # the policy kept by uninstall-system", shellQuote(saved), shellQuote(cfg))
	}
	p.steps = append(p.steps,
		step{
			show: cfgShow,
			done: func() bool { return systemConfigInPlace(cfg) },
			do:   func(ctx context.Context) error { return writeSystemConfig(ctx, cfg, saved) },
		},
		dirStep(t.stateDir, t.user, t.user, fsx.DirMode),
		dirStep(t.runDir, t.user, t.user, systemSocketDirMode),
	)
	// The daemon is restarted only when its executable or unit changed, in
	// this run or (for --print) still to be done.
	changed := false
	binaryDone := func() bool { return self == t.binary || sameContent(self, t.binary) && rootOnly(t.binary) == nil }
	unitDone := func() bool { b, err := os.ReadFile(t.unit); return err == nil && string(b) == unit }
	restartDue := func() bool { return changed || !binaryDone() || !unitDone() }
	if self != t.binary {
		p.steps = append(p.steps, step{
			show: fmt.Sprintf("install -o root -g root -m 0755 %s %s", shellQuote(self), shellQuote(t.binary)),
			done: binaryDone,
			do: func(context.Context) error {
				changed = true
				return installBinary(self, t.binary)
			},
		})
	}
	p.steps = append(p.steps, step{
		show: fmt.Sprintf("check that %s and its directories are root's and writable by root only", shellQuote(t.binary)),
		do:   func(context.Context) error { return rootOnly(t.binary) },
	})
	p.steps = append(p.steps, step{
		show: fmt.Sprintf("write %s (root:root 0644): contrib/systemd/system/keychain-auth.service with ExecStart=%s",
			shellQuote(t.unit), shellQuote(t.binary)),
		done: unitDone,
		do: func(context.Context) error {
			changed = true
			if err := mkdirRootPath(filepath.Dir(t.unit)); err != nil {
				return err
			}
			return fsx.WriteFile(t.unit, []byte(unit), 0o644)
		},
	})
	if t.systemd {
		p.steps = append(p.steps,
			step{
				show: "systemctl daemon-reload",
				done: func() bool { return !restartDue() },
				do:   func(ctx context.Context) error { return runTool(ctx, "systemctl", "daemon-reload") },
			},
			step{
				show: "systemctl enable keychain-auth.service",
				done: func() bool { return systemctlQuiet("is-enabled") },
				do:   func(ctx context.Context) error { return runTool(ctx, "systemctl", "enable", "keychain-auth.service") },
			},
			// restart, not start: after an upgrade the new executable and
			// unit must be loaded.
			step{
				show: "systemctl restart keychain-auth.service",
				done: func() bool { return !restartDue() && systemctlQuiet("is-active") },
				do:   func(ctx context.Context) error { return runTool(ctx, "systemctl", "restart", "keychain-auth.service") },
			},
		)
		p.notes = append(p.notes, "The daemon runs under systemd: systemctl status keychain-auth; its log: journalctl -u keychain-auth")
	} else {
		p.notes = append(p.notes, a.manualStartNote(t))
	}
	p.notes = append(p.notes, groupNote(t.user, a.getenv("SUDO_USER")),
		"Register binaries as root, e.g.: sudo keychain-auth register /usr/local/bin/tool --read aws\n"+
			"Move a user's secrets over with: keychain-auth migrate --to-system --service S (see its --help)")
	return p, nil
}

// manualStartNote says how to run the daemon without systemd: as its user,
// with CAP_SYS_PTRACE and nothing else, as the unit would.
func (a *app) manualStartNote(t systemTarget) string {
	why := "systemd is not running on this machine"
	if filepath.Clean(t.root) != "/" {
		why = "the system root is relocated to " + t.root
	}
	prefix := ""
	if t.envVars != "" {
		prefix = t.envVars + " "
	}
	u := shellQuote(t.user)
	return fmt.Sprintf("Nothing was started (%s). Start the daemon as user %s, as root:\n"+
		"  install -d -o %s -g %s -m 0750 %s   # again after each boot: /run is emptied\n"+
		"  ulimit -l unlimited   # lets the daemon lock its memory, keeping secrets out of swap\n"+
		"  %ssetpriv --reuid %s --regid %s --init-groups --bounding-set -all,+sys_ptrace --inh-caps +sys_ptrace "+
		"--ambient-caps +sys_ptrace --no-new-privs %s start --mode system",
		why, t.user, u, u, shellQuote(t.runDir), prefix, u, u, shellQuote(t.binary))
}

func groupNote(group, sudoUser string) string {
	who := "USER"
	if sudoUser != "" && sudoUser != "root" {
		who = shellQuote(sudoUser)
	}
	return fmt.Sprintf("Only members of group %s may connect to the daemon. Add each user who needs it "+
		"(they must log in again):\n  usermod -aG %s %s", group, shellQuote(group), who)
}

// uninstallPlan lists uninstall-system's steps: stop first, then remove.
func (a *app) uninstallPlan(t systemTarget, purge bool) plan {
	var p plan
	cfg := t.layout.ConfigFile
	if t.systemd {
		p.steps = append(p.steps, step{
			show: "systemctl disable --now keychain-auth.service",
			done: func() bool { return !exists(t.unit) },
			do: func(ctx context.Context) error {
				return runTool(ctx, "systemctl", "disable", "--now", "keychain-auth.service")
			},
		})
	}
	p.steps = append(p.steps, removeStep(t.unit, false))
	if t.systemd {
		p.steps = append(p.steps, step{show: "systemctl daemon-reload", do: func(ctx context.Context) error {
			return runTool(ctx, "systemctl", "daemon-reload")
		}})
	}
	p.steps = append(p.steps, removeStep(t.runDir, true))
	if purge {
		p.steps = append(p.steps,
			removeStep(t.layout.ConfigDir, true),
			removeStep(t.stateDir, true),
			step{
				show: "userdel " + shellQuote(t.user),
				done: func() bool { _, err := user.Lookup(t.user); return err != nil },
				do:   func(ctx context.Context) error { return runTool(ctx, "userdel", t.user) },
			},
			step{
				show: "groupdel " + shellQuote(t.user),
				done: func() bool { _, err := user.LookupGroup(t.user); return err != nil },
				do:   func(ctx context.Context) error { return runTool(ctx, "groupdel", t.user) },
			},
		)
		p.notes = append(p.notes, fmt.Sprintf("The executable %s was left in place (it also runs user mode); remove it with: rm %s",
			t.binary, shellQuote(t.binary)))
	} else {
		saved := cfg + ".uninstalled"
		p.steps = append(p.steps, step{
			show: fmt.Sprintf("mv %s %s   # the machine leaves system mode; install-system puts it back", shellQuote(cfg), shellQuote(saved)),
			done: func() bool { return !exists(cfg) },
			do:   func(context.Context) error { return os.Rename(cfg, saved) },
		})
		p.notes = append(p.notes, fmt.Sprintf("Kept: %s (the store, its master key, pending.json, audit.log), the policy in %s, "+
			"the user and group %s and the executable %s. Remove them with: keychain-auth uninstall-system --purge",
			t.stateDir, saved, t.user, t.binary))
	}
	if !t.systemd {
		p.notes = append(p.notes, "A daemon started by hand (setpriv) is not stopped by this command: stop it yourself (SIGTERM).")
	}
	return p
}

// unitFor is the embedded unit with ExecStart= pointing at binary, run as
// the account name.
func unitFor(binary, name string) string {
	u := strings.Replace(systemd.SystemUnit, "\nExecStart="+systemd.DefaultBinary+" ", "\nExecStart="+binary+" ", 1)
	u = strings.Replace(u, "\nUser="+paths.DefaultSystemUser+"\n", "\nUser="+name+"\n", 1)
	return strings.Replace(u, "\nGroup="+paths.DefaultSystemUser+"\n", "\nGroup="+name+"\n", 1)
}

// dirStep creates dir (parents 0755 root) owned by owner:group with mode.
func dirStep(dir, owner, group string, mode os.FileMode) step {
	return step{
		show: fmt.Sprintf("install -d -o %s -g %s -m %04o %s", shellQuote(owner), shellQuote(group), mode, shellQuote(dir)),
		done: func() bool {
			fi, err := os.Lstat(dir)
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != mode {
				return false
			}
			uid, gid, err := fileOwner(fi)
			wu, wg, lerr := lookupIDs(owner, group)
			return err == nil && lerr == nil && uid == wu && gid == wg
		},
		do: func(context.Context) error {
			uid, gid, err := lookupIDs(owner, group)
			if err != nil {
				return err
			}
			if err := mkdirRootPath(filepath.Dir(dir)); err != nil {
				return err
			}
			if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if fi, err := os.Lstat(dir); err != nil {
				return err
			} else if !fi.IsDir() {
				return fmt.Errorf("%s exists and is not a directory (a symlink is refused too); move it aside", dir)
			}
			if err := os.Lchown(dir, uid, gid); err != nil {
				return err
			}
			return os.Chmod(dir, mode)
		},
	}
}

// removeStep deletes path (recursively when all).
func removeStep(path string, all bool) step {
	show, rm := "rm -f "+shellQuote(path), os.Remove
	if all {
		show, rm = "rm -rf "+shellQuote(path), os.RemoveAll
	}
	return step{
		show: show,
		done: func() bool { _, err := os.Lstat(path); return errors.Is(err, fs.ErrNotExist) },
		do: func(context.Context) error {
			if err := rm(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
	}
}

// lookupIDs resolves a user and a group name to ids.
func lookupIDs(owner, group string) (uid, gid int, err error) {
	u, err := user.Lookup(owner)
	if err != nil {
		return 0, 0, fmt.Errorf("no user %s: %w", owner, err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, 0, fmt.Errorf("no group %s: %w", group, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid, nil
}

// mkdirRootPath creates the missing directories of dir, 0755 and root's,
// so that the daemon and users can traverse them.
func mkdirRootPath(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := mkdirRootPath(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Mkdir applies the umask; these directories must be traversable.
	return os.Chmod(dir, 0o755)
}

// systemConfigInPlace reports whether the system config.json is usable by
// the system daemon: root's, 0644, on the file store.
func systemConfigInPlace(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != systemConfigMode {
		return false
	}
	c, err := config.Load(path, systemLoadOpts())
	return err == nil && c.Backend == "file"
}

// writeSystemConfig creates the system policy (or restores the one
// uninstall-system kept), on the file store, root's and 0644. A config that
// records another backend is refused rather than switched.
func writeSystemConfig(ctx context.Context, path, saved string) error {
	if err := mkdirRootPath(filepath.Dir(path)); err != nil {
		return err
	}
	if exists(saved) && !exists(path) {
		if err := os.Rename(saved, path); err != nil {
			return err
		}
	}
	_, err := config.Update(ctx, path, systemLoadOpts(), func(c *config.Config) error {
		switch c.Backend {
		case "":
			c.Backend = "file"
		case "file":
		default:
			return fmt.Errorf("%s records the backend %q; the system daemon uses only its encrypted file store: "+
				"set \"backend\" to \"file\" there", path, c.Backend)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.Lchown(path, 0, 0); err != nil {
		return err
	}
	return os.Chmod(path, systemConfigMode)
}

// installBinary copies src to dst atomically, root's and 0755.
func installBinary(src, dst string) error {
	if err := mkdirRootPath(filepath.Dir(dst)); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return fsx.WriteWith(dst, 0o755, func(f *os.File) error {
		if _, err := io.Copy(f, in); err != nil {
			return err
		}
		return f.Chown(0, 0)
	})
}

// rootOnly checks that only root can change path: the file and every
// directory above it belong to root and are not writable by group or others
// (a sticky directory such as /tmp is accepted, since only root may then
// rename root's entries in it).
func rootOnly(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		uid, _, err := fileOwner(fi)
		if err != nil {
			return err
		}
		writable := fi.Mode().Perm()&0o022 != 0
		if p != real && fi.Mode()&fs.ModeSticky != 0 {
			writable = false
		}
		if uid != 0 || writable {
			return fmt.Errorf("%s can be changed by someone other than root (owner uid %d, mode %v), and whoever can change it "+
				"can replace the daemon's executable; install it under a root-only directory (the default is /usr/local/bin)",
				p, uid, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// sameContent reports whether two files have the same bytes.
func sameContent(a, b string) bool {
	ha, err := fileSum(a)
	if err != nil {
		return false
	}
	hb, err := fileSum(b)
	return err == nil && bytes.Equal(ha, hb)
}

func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// nologin is the shell of an account nobody logs in to.
func nologin() string {
	for _, p := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/false"
}

// systemctlQuiet asks systemctl a yes/no question about the unit.
func systemctlQuiet(verb string) bool {
	return exec.Command("systemctl", verb, "--quiet", "keychain-auth.service").Run() == nil
}

// runTool runs a system administration tool, with its output in the error.
func runTool(ctx context.Context, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s is not installed: %w; do this step by hand", name, err)
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
