package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/server"
)

type startOpts struct {
	socket         string
	backend        string
	passphraseFile string
	logFormat      string
	auditMaxSize   int64
	// notes from harden, said once each in serve (see sayOnce).
	notes []note
}

func (a *app) startCmd() *cobra.Command {
	var o startOpts
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run the daemon in the foreground until SIGINT or SIGTERM",
		Long: `Run the daemon in the foreground. It listens on the socket, answers registered
binaries according to config.json, and stops cleanly on SIGINT or SIGTERM.

The file backend needs a passphrase: from --passphrase-file, from the
systemd credential "passphrase" ($CREDENTIALS_DIRECTORY/passphrase, see
LoadCredential= in contrib/systemd/user/keychain-auth.service), from the
KEYCHAIN_AUTH_PASSPHRASE environment variable, or typed at the terminal
(twice when the store is created). A passphrase kept in a file is protected
by that file's permissions only: whoever can read it can open the store.
Under a desktop session the secret-service backend needs no passphrase.

Started by a service manager, the daemon serves on the socket it was passed
(socket activation: LISTEN_FDS, as systemd's keychain-auth.socket does) and
leaves that socket in place when it stops; with $NOTIFY_SOCKET set it
reports READY=1 once it serves and STOPPING=1 when it stops (Type=notify).
See install-service.

--mode system runs the system daemon (Linux; normally started by systemd, see
install-system): as its own user with CAP_SYS_PTRACE, serving every user who
can reach /run/keychain-auth/agent.sock, each in a namespace of its own, from
an encrypted file store keyed by /var/lib/keychain-auth/master.key (or the
systemd credential master.key). Without --mode, start runs the system daemon
when /etc/keychain-auth/config.json exists and you are its user (or root), and
a user-mode daemon when it does not; anyone else is told that the machine
already has a daemon, and may still run a personal one with --mode user.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.start(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.socket, "socket", "", "socket path (default $KEYCHAIN_AUTH_SOCKET, else $XDG_RUNTIME_DIR/keychain-auth/agent.sock)")
	f.StringVar(&o.backend, "backend", "auto", "secret store: auto, file, secret-service, keychain or wincred")
	f.StringVar(&o.passphraseFile, "passphrase-file", "", "read the file store's passphrase from this file")
	f.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	f.Int64Var(&o.auditMaxSize, "audit-max-size", 0, "rotate the audit log at this many bytes (tests)")
	f.MarkHidden("audit-max-size")
	return cmd
}

func (a *app) logger(format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(a.stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.stderr, nil)), nil
	}
	return nil, usagef("--log-format must be text or json, not %q", format)
}

func (a *app) start(ctx context.Context, o startOpts) error {
	log, err := a.logger(o.logFormat)
	if err != nil {
		return err
	}
	if !validBackend(o.backend) {
		return usagef("--backend must be one of auto, file, secret-service, keychain, wincred; not %q", o.backend)
	}
	warnings, notes := harden()
	for _, w := range warnings {
		log.Warn(w)
	}
	o.notes = notes
	mode, err := a.startMode()
	if err != nil {
		return err
	}
	if mode == paths.ModeSystem {
		run, err := a.prepareSystem(ctx, log, o)
		if err != nil {
			return err
		}
		defer run.be.Close()
		return a.serve(ctx, log, run, o)
	}
	layout, err := a.userLayout(o.socket)
	if err != nil {
		return err
	}
	if err := fsx.MkdirPrivate(layout.ConfigDir); err != nil {
		return err
	}
	loadOpts := config.LoadOptions{OwnerUID: a.uid}
	cfg, err := config.Load(layout.ConfigFile, loadOpts)
	if err != nil {
		return fmt.Errorf("cannot start: %w", err)
	}
	name, err := a.chooseBackend(ctx, log, o.backend, cfg.Backend)
	if err != nil {
		return err
	}
	be, err := a.openBackend(ctx, log, name, layout, o)
	if err != nil {
		return err
	}
	defer be.Close()
	if cfg.Backend != name {
		if _, err := config.Update(ctx, layout.ConfigFile, loadOpts, func(c *config.Config) error {
			c.Backend = name
			return nil
		}); err != nil {
			return fmt.Errorf("record backend choice: %w", err)
		}
	}

	return a.serve(ctx, log, daemonRun{layout: layout, loadOpts: loadOpts, backend: name, be: be,
		listen: server.ListenOptions{Path: layout.SocketPath, UID: a.uid, GID: -1}}, o)
}

func validBackend(name string) bool {
	switch name {
	case "auto", "file", "secret-service", "keychain", "wincred":
		return true
	}
	return false
}

// chooseBackend resolves the store to use. An explicit flag wins (and is
// recorded); otherwise the recorded choice; otherwise auto-detection. A
// recorded backend is never replaced silently.
func (a *app) chooseBackend(ctx context.Context, log *slog.Logger, flag, recorded string) (string, error) {
	if flag != "auto" {
		if recorded != "" && recorded != flag {
			log.Warn("switching backend as requested; secrets in the previous store are not moved",
				"from", recorded, "to", flag)
		}
		return flag, nil
	}
	if recorded != "" {
		return recorded, nil
	}
	return autoBackend(ctx, log), nil
}

func newRegistry() *backend.Registry {
	r := &backend.Registry{}
	file.Register(r)
	registerPlatformBackends(r)
	return r
}

func (a *app) openBackend(ctx context.Context, log *slog.Logger, name string, layout paths.Layout, o startOpts) (backend.Backend, error) {
	reg := newRegistry()
	opts := backend.Options{Path: layout.StoreFile, VersionPath: layout.StoreVersionFile, Logger: log}
	if name == "file" {
		exists, err := file.Exists(layout.StoreFile)
		if err != nil {
			return nil, err
		}
		pass, err := a.passphrase(o.passphraseFile, !exists)
		if err != nil {
			return nil, err
		}
		defer clear(pass)
		opts.Passphrase, opts.Create = pass, !exists
		opts.DeriveKey = deriveKeyInChild
	}
	be, err := reg.Open(ctx, name, opts)
	switch {
	case errors.Is(err, file.ErrWrongPassphrase):
		return nil, fmt.Errorf("wrong passphrase for %s; the store was not changed", layout.StoreFile)
	case err != nil && name != "file" && errors.Is(err, backend.ErrUnavailable):
		return nil, fmt.Errorf("the recorded backend %q is unavailable: %w; keychain-auth does not switch stores by itself: "+
			"fix it, or start with --backend file to use the encrypted file store deliberately", name, err)
	case err != nil:
		return nil, fmt.Errorf("open %s backend: %w", name, err)
	}
	if r, ok := be.(backend.Readier); ok {
		if err := r.Ready(ctx); err != nil {
			be.Close()
			return nil, fmt.Errorf("the %s backend cannot serve: %w; fix that (for a keyring: unlock it), "+
				"or start with --backend file to use the encrypted file store deliberately", name, err)
		}
	}
	return be, nil
}

// credPassphrase is the name of the systemd credential holding the file
// store's passphrase.
const credPassphrase = "passphrase"

// passphrase gets the file store's passphrase: --passphrase-file, then the
// systemd credential, then $KEYCHAIN_AUTH_PASSPHRASE, then the terminal
// (asked twice for a new store).
func (a *app) passphrase(path string, create bool) ([]byte, error) {
	if path == "" {
		// A systemd credential (LoadCredential=passphrase:...): only this
		// service's processes can read it.
		if dir := a.getenv(paths.EnvCredentials); dir != "" {
			if cred := filepath.Join(dir, credPassphrase); exists(cred) {
				path = cred
			}
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		p := bytes.TrimRight(b, "\r\n")
		clear(b[len(p):])
		if len(p) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", path)
		}
		return p, nil
	}
	if v := a.getenv(paths.EnvPassphrase); v != "" {
		return []byte(v), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("the file store needs a passphrase and there is no terminal to ask: " +
			"use --passphrase-file or set " + paths.EnvPassphrase)
	}
	defer tty.Close()
	ask := func(prompt string) ([]byte, error) {
		fmt.Fprint(tty, prompt)
		p, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return p, err
	}
	p, err := ask("keychain-auth passphrase: ")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(strings.TrimSpace(string(p))) == 0 {
		return nil, errors.New("empty passphrase refused")
	}
	if create {
		again, err := ask("repeat passphrase for the new store: ")
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		defer clear(again)
		if !bytes.Equal(p, again) {
			clear(p)
			return nil, errors.New("the passphrases do not match; nothing was created")
		}
	}
	return p, nil
}

// note is something the daemon says at start that the user may be unable to
// change (say, a resource limit only root can raise). Repeating it on every
// start would teach users to ignore the log, so it is said once per key.
type note struct {
	key, msg string
}

// sayOnce logs n at info level the first time, and at debug level once a
// marker file in dir records that it was said. A marker that cannot be
// written means saying it again next time, which is harmless.
func sayOnce(log *slog.Logger, dir string, n note) {
	marker := filepath.Join(dir, "said-"+n.key)
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		log.Debug(n.msg)
		return
	}
	if err == nil {
		f.Close()
	}
	log.Info(n.msg)
}
