package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
)

// Severity of one doctor finding. Only problems make doctor exit 1: a
// warning is a risk the user may have chosen (a `*` grant, an interpreter).
const (
	sevOK      = "ok"
	sevInfo    = "info"
	sevWarning = "warning"
	sevProblem = "problem"
)

// finding is one thing doctor checked. `doctor --json` prints these names;
// add fields, never rename them.
type finding struct {
	Check    string `json:"check"`
	Severity string `json:"severity"`
	Subject  string `json:"subject,omitempty"` // the file, socket or entry
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
}

// doctorReport is `doctor --json`.
type doctorReport struct {
	Mode     string    `json:"mode"`
	Healthy  bool      `json:"healthy"`
	Problems int       `json:"problems"`
	Warnings int       `json:"warnings"`
	Findings []finding `json:"findings"`
}

func (a *app) doctorCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the setup and explain what is wrong, with a fix for each problem",
		Long: `Check everything keychain-auth depends on and say how to fix what is wrong:

  - the daemon answers, and on which socket; the socket directory's owner and mode
  - the secret store backend is reachable (and unlocked, where that can be asked)
  - config.json, pending.json, the audit log and the file store: owners and modes
  - registered binaries whose file changed on disk (they need: keychain-auth upgrade)
    or vanished; interpreters registered; grants of every service ("*")
  - binaries waiting for approval
  - the audit log's hash chain
  - the user service (install-service): installed and enabled

Exit 0 when nothing is a problem (warnings are printed, but are choices the
user may have made), 1 otherwise. --json prints one object with every finding.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.doctor(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(a.stdout, r); err != nil {
					return err
				}
			} else {
				printDoctor(a.stdout, r)
			}
			if r.Problems > 0 {
				return fmt.Errorf("doctor found %s; each is listed above with its fix", plural(r.Problems, "problem", "problems"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// doctorRun gathers the findings of one doctor run.
type doctorRun struct {
	a      *app
	layout paths.Layout
	out    []finding
}

func (d *doctorRun) add(check, sev, subject, detail, fix string) {
	d.out = append(d.out, finding{Check: check, Severity: sev, Subject: subject, Detail: detail, Fix: fix})
}

func (a *app) doctor(ctx context.Context) (doctorReport, error) {
	layout, err := a.layout()
	if err != nil {
		return doctorReport{}, err
	}
	d := &doctorRun{a: a, layout: layout}
	running := d.daemon(ctx)
	d.socketDir()
	cfg := d.files()
	d.backend(ctx, cfg, running)
	if cfg != nil {
		d.entries(cfg)
	}
	d.pending()
	d.auditChain()
	if layout.Mode == paths.ModeUser {
		d.out = append(d.out, a.serviceFindings()...)
	}
	r := doctorReport{Mode: string(layout.Mode), Findings: d.out}
	for _, f := range d.out {
		switch f.Severity {
		case sevProblem:
			r.Problems++
		case sevWarning:
			r.Warnings++
		}
	}
	r.Healthy = r.Problems == 0
	return r, nil
}

func (d *doctorRun) daemon(ctx context.Context) bool {
	sock := d.layout.SocketPath
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// Connect and hang up, as status does: a request would queue this
	// binary for approval.
	c, err := client.Dial(dctx, client.WithSocket(sock))
	if err == nil {
		c.Close()
		d.add("daemon", sevOK, sock, "the daemon answers on this socket", "")
		return true
	}
	fix := "keychain-auth start (or, to run it as a service: keychain-auth install-service)"
	switch {
	case d.layout.Mode == paths.ModeSystem:
		fix = "sudo systemctl start keychain-auth"
	case d.a.serviceInstalled():
		fix = "systemctl --user start keychain-auth.socket (its log: journalctl --user -u keychain-auth.service)"
	}
	why := "nothing answers on this socket"
	if errors.Is(err, fs.ErrNotExist) {
		why = "the socket does not exist"
	}
	d.add("daemon", sevProblem, sock, why, fix)
	return false
}

func (d *doctorRun) socketDir() {
	dir := filepath.Dir(d.layout.SocketPath)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		d.add("socket-dir", sevInfo, dir, "does not exist yet; the daemon (or systemd's socket unit) creates it", "")
		return
	}
	if err != nil {
		d.add("socket-dir", sevProblem, dir, err.Error(), "make it readable by you, or choose another socket with "+paths.EnvSocket)
		return
	}
	want := os.FileMode(0o700)
	wantUID := d.a.uid
	if d.layout.Mode == paths.ModeSystem {
		want = systemSocketDirMode
		wantUID = -1 // the daemon user's; checked by the daemon itself
	}
	uid, known := ownerUID(fi)
	switch {
	case !fi.IsDir():
		d.add("socket-dir", sevProblem, dir, "is not a directory (a symlink is refused too)", "rm "+shellQuote(dir)+" and restart the daemon")
	case known && wantUID >= 0 && uid != wantUID:
		d.add("socket-dir", sevProblem, dir, fmt.Sprintf("is owned by uid %d, not you (%d): the daemon refuses it", uid, wantUID),
			"remove it (as its owner) and restart the daemon, or choose another socket with "+paths.EnvSocket)
	case fi.Mode().Perm()&^want != 0:
		d.add("socket-dir", sevProblem, dir, fmt.Sprintf("has mode %04o; others could reach the socket", fi.Mode().Perm()),
			fmt.Sprintf("chmod %04o %s", want, shellQuote(dir)))
	default:
		d.add("socket-dir", sevOK, dir, fmt.Sprintf("owned by uid %d, mode %04o", uid, fi.Mode().Perm()), "")
	}
}

// private checks that a file is the user's and no one else's; missing is
// fine when optional (reported as info saying missing, unless that is "").
func (d *doctorRun) private(check, path string, optional bool, missing string) (exists bool) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		sev := sevInfo
		if !optional {
			sev = sevProblem
		}
		if missing != "" {
			d.add(check, sev, path, missing, "")
		}
		return false
	}
	if err != nil && d.hiddenSystemFile(check, path, err) {
		return false
	}
	if err != nil {
		d.add(check, sevProblem, path, err.Error(), "make it readable by you (ls -l "+shellQuote(path)+")")
		return false
	}
	if d.layout.Mode == paths.ModeSystem {
		// The system files are root's or the daemon's; the daemon checks them.
		d.add(check, sevOK, path, fmt.Sprintf("mode %04o", fi.Mode().Perm()), "")
		return true
	}
	uid, known := ownerUID(fi)
	switch {
	case !fi.Mode().IsRegular():
		d.add(check, sevProblem, path, "is not a regular file", "move it aside")
	case known && uid != d.a.uid:
		d.add(check, sevProblem, path, fmt.Sprintf("is owned by uid %d, not you (%d): keychain-auth refuses it", uid, d.a.uid),
			fmt.Sprintf("chown %d %s (as root), after checking who changed it", d.a.uid, shellQuote(path)))
	case fi.Mode().Perm()&0o077 != 0:
		d.add(check, sevProblem, path, fmt.Sprintf("has mode %04o: others may read or change it", fi.Mode().Perm()),
			"chmod 0600 "+shellQuote(path))
	default:
		d.add(check, sevOK, path, fmt.Sprintf("yours, mode %04o", fi.Mode().Perm()), "")
	}
	return true
}

// files checks the config, pending and audit files, and returns the config
// when it loads.
func (d *doctorRun) files() *config.Config {
	var cfg *config.Config
	if d.private("config", d.layout.ConfigFile, true, "does not exist yet: nothing is registered (keychain-auth register <path> creates it)") {
		c, err := config.Load(d.layout.ConfigFile, d.a.loadOpts())
		if err != nil {
			d.add("config", sevProblem, d.layout.ConfigFile, err.Error(), "fix the file as the message says; it is never overwritten while broken")
		} else {
			cfg = c
		}
	} else {
		cfg = config.New()
	}
	d.private("pending", d.layout.PendingFile, true, "") // missing: reported as an empty queue
	d.private("audit", d.layout.AuditFile, true, "does not exist yet: the daemon creates it when it starts")
	return cfg
}

func (d *doctorRun) backend(ctx context.Context, cfg *config.Config, running bool) {
	name := ""
	if cfg != nil {
		name = cfg.Backend
	}
	switch {
	case name == "":
		d.add("backend", sevInfo, "", "no store chosen yet: the first start chooses one", "")
	case name == "file":
		if d.private("backend", d.layout.StoreFile, true, "the encrypted file store does not exist yet: start creates it") {
			if running {
				d.add("backend", sevOK, d.layout.StoreFile, "the file store is open in the running daemon (it was unlocked with its passphrase)", "")
			} else {
				d.add("backend", sevInfo, d.layout.StoreFile, "only the daemon can tell whether the passphrase opens it", "")
			}
		}
	default:
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		be, err := d.a.openBackend(bctx, slog.New(slog.NewTextHandler(io.Discard, nil)), name, d.layout, startOpts{})
		if err != nil {
			d.add("backend", sevProblem, name, err.Error(), "unlock or start the store (for secret-service: log in to the desktop session "+
				"or run gnome-keyring-daemon), or choose another with: keychain-auth start --backend file")
			return
		}
		be.Close()
		d.add("backend", sevOK, name, "reachable and ready", "")
	}
}

// entries looks for registered binaries that changed or vanished, for
// interpreters and for grants of every service.
func (d *doctorRun) entries(cfg *config.Config) {
	if len(cfg.Binaries) == 0 {
		d.add("registered", sevInfo, "", "no binaries are registered", "keychain-auth register <path> --read <service>")
		return
	}
	bad := 0
	hashes := map[string]string{}
	for _, e := range cfg.Binaries {
		subject := e.Path + " (" + shortHash(e.Hash) + ")"
		h, ok := hashes[e.Path]
		if !ok {
			var err error
			h, err = fileHash(e.Path)
			if errors.Is(err, fs.ErrNotExist) {
				h = ""
			} else if err != nil {
				h = "?" + err.Error()
			}
			hashes[e.Path] = h
		}
		switch {
		case h == "":
			bad++
			d.add("registered", sevProblem, subject, "the file is gone", "reinstall it and run: keychain-auth upgrade "+shellQuote(e.Path)+
				"; or, if it is gone for good: keychain-auth unregister "+e.Hash)
		case strings.HasPrefix(h, "?"):
			bad++
			d.add("registered", sevProblem, subject, "cannot read it to compare its hash: "+h[1:], "make it readable by you")
		case h != e.Hash:
			bad++
			d.add("registered", sevProblem, subject, "the file changed on disk (upgraded or rebuilt?): its hash is now "+shortHash(h)+
				", which is not registered, so the daemon refuses it", "if you trust the new file: keychain-auth upgrade "+shellQuote(e.Path))
		}
		ic := interpreterCheck{names: []string{e.Path}, dirs: d.a.interpreterDirs()}
		if h == e.Hash {
			ic.file, ic.hash = e.Path, e.Hash
		}
		if why, err := ic.identify(); err == nil && why != "" {
			d.add("interpreter", sevWarning, subject, "is an interpreter ("+why+"): every script it runs gets its privileges",
				"register the program itself instead, then: keychain-auth unregister "+e.Hash)
		}
		for _, kind := range []struct {
			flag string
			list []string
		}{{"--read", e.AllowedReadServices}, {"--write", e.AllowedWriteServices}} {
			if slices.Contains(kind.list, "*") {
				d.add("wildcard", sevWarning, subject, "may "+strings.TrimPrefix(kind.flag, "--")+" every service (\"*\")",
					"grant the services it needs, then: keychain-auth revoke "+e.Hash+" "+kind.flag+" '*'")
			}
		}
	}
	if bad == 0 {
		d.add("registered", sevOK, "", fmt.Sprintf("%s, every file unchanged", plural(len(cfg.Binaries), "binary registered", "binaries registered")), "")
	}
}

func (d *doctorRun) pending() {
	recs, err := config.LoadPending(d.layout.PendingFile, time.Now())
	switch {
	case err != nil && d.layout.Mode == paths.ModeSystem && errors.Is(err, fs.ErrPermission):
		d.add("pending", sevInfo, d.layout.PendingFile, "only root may read the system queue", "sudo keychain-auth list-pending")
	case err != nil:
		d.add("pending", sevProblem, d.layout.PendingFile, err.Error(), "fix or remove the file: it only queues approvals")
	case len(recs) > 0:
		d.add("pending", sevWarning, d.layout.PendingFile, plural(len(recs), "binary is", "binaries are")+" waiting for approval",
			"keychain-auth list-pending, then keychain-auth approve <hash> with the privileges it needs")
	default:
		d.add("pending", sevOK, d.layout.PendingFile, "no binary is waiting for approval", "")
	}
}

func (d *doctorRun) auditChain() {
	n, err := audit.Verify(d.layout.AuditFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Reported with the file.
	case err != nil && d.hiddenSystemFile("audit-chain", d.layout.AuditFile, err):
	case errors.Is(err, audit.ErrBroken):
		d.add("audit-chain", sevProblem, d.layout.AuditFile, err.Error(),
			"the log was altered, truncated or cut short: keep a copy for inspection (keychain-auth audit --verify shows the spot); "+
				"the daemon continues the chain from the last record")
	case err != nil:
		d.add("audit-chain", sevProblem, d.layout.AuditFile, err.Error(), "make the log readable by you")
	default:
		d.add("audit-chain", sevOK, d.layout.AuditFile, plural(n, "record verifies", "records verify"), "")
	}
}

// hiddenSystemFile reports (as info) a system-mode file only root and the
// daemon may read: expected for a user, not a fault.
func (d *doctorRun) hiddenSystemFile(check, path string, err error) bool {
	if d.layout.Mode != paths.ModeSystem || d.a.uid == 0 || !errors.Is(err, fs.ErrPermission) {
		return false
	}
	d.add(check, sevInfo, path, "only root and the daemon may read it", "sudo keychain-auth doctor")
	return true
}

func shortHash(h string) string {
	if len(h) > len("sha256:")+12 {
		return h[:len("sha256:")+12]
	}
	return h
}

func printDoctor(w io.Writer, r doctorReport) {
	mark := map[string]string{sevOK: "ok  ", sevInfo: "info", sevWarning: "WARN", sevProblem: "FAIL"}
	for _, f := range r.Findings {
		subject := ""
		if f.Subject != "" {
			subject = f.Subject + ": "
		}
		fmt.Fprintf(w, "%s  %-12s %s%s\n", mark[f.Severity], f.Check, subject, f.Detail)
		if f.Fix != "" && f.Severity != sevOK {
			fmt.Fprintf(w, "      %-12s fix: %s\n", "", f.Fix)
		}
	}
	fmt.Fprintf(w, "\n%s, %s (%s mode)\n", plural(r.Problems, "problem", "problems"), plural(r.Warnings, "warning", "warnings"), r.Mode)
}
