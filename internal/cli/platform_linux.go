package cli

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
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

func registerPlatformBackends(r *backend.Registry) {}

// autoBackend picks the store for a first start. The Secret Service backend
// is not built yet, so Linux uses the encrypted file store.
func autoBackend(ctx context.Context, log *slog.Logger) string {
	return "file"
}
