package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
)

// statusReport is `status --json`. Integrations parse these names; add
// fields, never rename them.
type statusReport struct {
	DaemonRunning bool   `json:"daemon_running"`
	Version       string `json:"version"`
	Mode          string `json:"mode"`
	ConfigPath    string `json:"config_path"`
	PendingPath   string `json:"pending_path"`
	SocketPath    string `json:"socket_path"`
	RequiresSudo  bool   `json:"requires_sudo"`
	Backend       string `json:"backend"`
	Registered    int    `json:"registered"`
	Pending       int    `json:"pending"`
	// ConfigError and PendingError say why a file could not be read; the
	// counts are then 0.
	ConfigError  string `json:"config_error,omitempty"`
	PendingError string `json:"pending_error,omitempty"`
	// PendingHidden: the queue is the system daemon's and only root may
	// read it; Pending is then 0.
	PendingHidden bool `json:"pending_hidden,omitempty"`
}

// dialTimeout bounds the liveness probe: a daemon that does not accept
// within it is as good as down for every client.
const dialTimeout = 3 * time.Second

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the daemon is answering, and where everything is",
		Long: `Connect to the daemon's socket and report whether it answers, the socket and
config paths, the secret store backend, and how many binaries are registered
and waiting for approval. Exits 0 when the daemon answers and both files are
usable, 1 otherwise. The probe sends no request, so it is not queued for
approval.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.status(cmd.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func (a *app) status(ctx context.Context, asJSON bool) error {
	layout, err := a.layout()
	if err != nil {
		return err
	}
	r := statusReport{
		Version: version(), Mode: string(layout.Mode), ConfigPath: layout.ConfigFile,
		PendingPath: layout.PendingFile, SocketPath: layout.SocketPath, RequiresSudo: a.requiresSudo(layout),
	}
	if cfg, err := config.Load(layout.ConfigFile, a.loadOpts()); err != nil {
		r.ConfigError = err.Error()
	} else {
		r.Backend, r.Registered = cfg.Backend, len(cfg.Binaries)
	}
	if recs, err := config.LoadPending(layout.PendingFile, time.Now()); r.RequiresSudo && errors.Is(err, fs.ErrPermission) {
		// The system queue is the daemon's; not seeing it is expected, not
		// a fault.
		r.PendingHidden = true
	} else if err != nil {
		r.PendingError = err.Error()
	} else {
		r.Pending = len(recs)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// Connecting and hanging up is the whole probe: the daemon accepted, so
	// it is serving. Sending check would make an unregistered keychain-auth
	// binary look like a caller to approve.
	c, dialErr := client.Dial(dctx, client.WithSocket(layout.SocketPath))
	if dialErr == nil {
		r.DaemonRunning = true
		c.Close()
	}

	if asJSON {
		if err := writeJSON(a.stdout, r); err != nil {
			return err
		}
	} else {
		a.printStatus(r)
	}
	var errs []error
	if !r.DaemonRunning {
		how := "keychain-auth start"
		if layout.Mode == paths.ModeSystem {
			how = "sudo systemctl start keychain-auth (without systemd, see: keychain-auth install-system --print)"
		}
		errs = append(errs, fmt.Errorf("the daemon is not running on %s; start it with: %s", layout.SocketPath, how))
	}
	if r.ConfigError != "" {
		errs = append(errs, errors.New(r.ConfigError))
	}
	if r.PendingError != "" {
		errs = append(errs, errors.New(r.PendingError))
	}
	return errors.Join(errs...)
}

func (a *app) printStatus(r statusReport) {
	w := a.stdout
	state := "running"
	if !r.DaemonRunning {
		state = "not running"
	}
	fmt.Fprintf(w, "daemon:     %s\n", state)
	fmt.Fprintf(w, "socket:     %s\n", r.SocketPath)
	fmt.Fprintf(w, "mode:       %s\n", r.Mode)
	if r.RequiresSudo {
		fmt.Fprintf(w, "admin:      changing the policy needs sudo (system mode)\n")
	}
	fmt.Fprintf(w, "version:    %s\n", r.Version)
	fmt.Fprintf(w, "config:     %s\n", r.ConfigPath)
	switch {
	case r.ConfigError != "":
		fmt.Fprintf(w, "backend:    unknown (config.json is unusable)\n")
		fmt.Fprintf(w, "registered: unknown (config.json is unusable)\n")
	default:
		backend := r.Backend
		if backend == "" {
			backend = "not chosen yet (the first start chooses it)"
		}
		fmt.Fprintf(w, "backend:    %s\n", backend)
		fmt.Fprintf(w, "registered: %d\n", r.Registered)
	}
	switch {
	case r.PendingHidden:
		fmt.Fprintf(w, "pending:    only root may see them (sudo keychain-auth list-pending)\n")
	case r.PendingError != "":
		fmt.Fprintf(w, "pending:    unknown (pending.json is unusable)\n")
	case r.Pending > 0:
		fmt.Fprintf(w, "pending:    %d (review with: keychain-auth list-pending)\n", r.Pending)
	default:
		fmt.Fprintf(w, "pending:    0\n")
	}
}
