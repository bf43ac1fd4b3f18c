package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/The-17/keychain-auth/contrib/systemd"
	"github.com/The-17/keychain-auth/internal/activation"
	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/server"
)

// daemonRun is what start prepared for one mode: where everything is, the
// open store, and how to listen.
type daemonRun struct {
	layout   paths.Layout
	loadOpts config.LoadOptions
	backend  string
	be       backend.Backend
	listen   server.ListenOptions
	// anyUID: serve every uid that reaches the socket, each in its own
	// namespace of the store (system mode).
	anyUID bool
}

// serve listens, opens the audit log and runs the server until SIGINT or
// SIGTERM. The caller closes the store.
func (a *app) serve(ctx context.Context, log *slog.Logger, r daemonRun, o startOpts) error {
	// Catch the signals before the socket exists: a SIGTERM that arrives
	// while the daemon is still setting up must stop it cleanly (socket
	// removed, audit log closed), not kill it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, activated, err := a.listen(log, r)
	if err != nil {
		if r.layout.Mode == paths.ModeSystem && errors.Is(err, fs.ErrPermission) {
			dir := filepath.Dir(r.layout.SocketPath)
			return fmt.Errorf("%w; the socket directory is made by systemd (RuntimeDirectory=) or, without it, by root: "+
				"install -d -o %s -g %s -m 0750 %s", err, r.layout.SystemUser, r.layout.SystemUser, dir)
		}
		return err
	}
	cache := config.NewCache(r.layout.ConfigFile, r.loadOpts)
	alog, err := a.startAudit(ctx, log, r.layout, o.auditMaxSize, cache, r.backend)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.stopAudit(log, alog)
	for _, n := range o.notes {
		sayOnce(log, filepath.Dir(r.layout.AuditFile), n)
	}
	attestor := attest.New(attest.Options{})
	// keychain-auth exec is honoured only from this very binary.
	execHash, err := server.SelfHash(ctx, attestor)
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		log.Warn("keychain-auth exec is disabled: the daemon cannot identify its own binary", "err", err)
	}
	srv, err := server.New(server.Options{
		Listener:    ln,
		Backend:     r.be,
		Config:      cache,
		Audit:       alog,
		Attestor:    attestor,
		ExecHash:    execHash,
		PendingFile: r.layout.PendingFile,
		Logger:      log,
		UID:         uint32(a.uid),
		AnyUID:      r.anyUID,
	})
	if err != nil {
		ln.Close()
		return err
	}
	log.Info("keychain-auth started", "version", version(), "mode", r.layout.Mode, "socket", ln.Addr().String(),
		"socket_activated", activated, "backend", r.backend, "config", r.layout.ConfigFile)
	a.notify(log, "READY=1\nSTATUS=serving on "+ln.Addr().String())
	// STOPPING=1 as soon as the signal arrives, while connections drain;
	// the daemon does not exit before it is sent.
	stopped := make(chan struct{})
	stopNotify := context.AfterFunc(ctx, func() {
		a.notify(log, "STOPPING=1")
		close(stopped)
	})
	defer func() {
		if !stopNotify() {
			<-stopped
		}
	}()
	err = srv.Serve(ctx)
	ln.Close()
	if err != nil {
		return err
	}
	log.Info("keychain-auth stopped")
	return nil
}

// listen serves on the socket the service manager passed (socket
// activation), or creates the daemon's own. A passed socket is never
// unlinked: the service manager owns it.
func (a *app) listen(log *slog.Logger, r daemonRun) (ln *server.Listener, activated bool, err error) {
	passed, err := activation.Listeners(activation.Env{Getenv: a.getenv, PID: os.Getpid()})
	// Programs the daemon might start must not take the sockets for theirs.
	activation.Unsetenv()
	if err != nil {
		return nil, false, err
	}
	if len(passed) == 0 {
		ln, err := server.Listen(r.listen)
		return ln, false, err
	}
	ul, err := activation.Pick(passed, systemd.UserSocketName)
	if err != nil {
		return nil, false, err
	}
	ln, err = server.Adopt(ul, r.listen)
	if err != nil {
		ul.Close()
		return nil, false, err
	}
	if got := ln.Addr().String(); got != r.layout.SocketPath {
		log.Warn("the service manager passed a socket where clients do not look for it; "+
			"point them at it with "+paths.EnvSocket+"="+got, "passed", got, "expected", r.layout.SocketPath)
	}
	return ln, true, nil
}

// notify tells the service manager about the daemon's state, when it asked
// to be told ($NOTIFY_SOCKET, Type=notify).
func (a *app) notify(log *slog.Logger, state string) {
	if _, err := activation.Notify(a.getenv, state); err != nil {
		log.Warn("cannot notify the service manager", "error", err)
	}
}
