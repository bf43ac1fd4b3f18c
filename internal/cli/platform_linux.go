package cli

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
)

// harden makes the daemon's memory unreadable to same-uid processes and
// keeps secrets out of core dumps. It returns warnings for what failed.
func harden() (warnings []string) {
	unix.Umask(0o077)
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		warnings = append(warnings, "cannot disable ptrace/dumping (PR_SET_DUMPABLE): "+err.Error())
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		warnings = append(warnings, "cannot disable core dumps (RLIMIT_CORE): "+err.Error())
	}
	return warnings
}

func registerPlatformBackends(r *backend.Registry) {
	secretservice.Register(r)
}

// autoBackend picks the store for a first start: the Secret Service when the
// session bus has it (running or activatable), else the encrypted file store.
func autoBackend(ctx context.Context, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := secretservice.Available(ctx)
	switch {
	case err != nil:
		log.Info("cannot tell whether a Secret Service is available; using the encrypted file store", "err", err)
	case !ok:
		log.Info("no Secret Service on the session bus; using the encrypted file store")
	default:
		return secretservice.Name
	}
	return "file"
}
