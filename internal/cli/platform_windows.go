package cli

import (
	"context"
	"log/slog"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/wincred"
)

func harden() ([]string, []note) {
	return []string{"memory hardening (no crash dumps, locked memory) is not implemented on windows"}, nil
}

func registerPlatformBackends(r *backend.Registry) {
	wincred.Register(r)
}

// autoBackend picks Credential Manager, which every Windows user has.
func autoBackend(context.Context, *slog.Logger) string { return wincred.Name }
