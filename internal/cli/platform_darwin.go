package cli

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/keychain"
)

// harden keeps same-user debuggers out of the daemon (PT_DENY_ATTACH) and
// secrets out of core dumps. It returns warnings for what failed.
func harden() (warnings []string, notes []note) {
	unix.Umask(0o077)
	if err := unix.PtraceDenyAttach(); err != nil {
		warnings = append(warnings, "cannot refuse debuggers (ptrace PT_DENY_ATTACH): "+err.Error())
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		warnings = append(warnings, "cannot disable core dumps (RLIMIT_CORE): "+err.Error())
	}
	// mlockall is left out: with MCL_FUTURE the Go runtime dies the first
	// time a locked mapping cannot grow. The Keychain, not this process,
	// keeps secrets at rest.
	return warnings, nil
}

func registerPlatformBackends(r *backend.Registry) {
	keychain.Register(r)
}

// autoBackend picks the login keychain on macOS.
func autoBackend(ctx context.Context, log *slog.Logger) string {
	return keychain.Name
}
