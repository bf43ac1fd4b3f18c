//go:build !linux && !darwin && !windows

package cli

import (
	"context"
	"log/slog"

	"github.com/The-17/keychain-auth/internal/backend"
)

func harden() ([]string, []note) {
	return []string{"memory hardening (non-dumpable, no core dumps) is not implemented on this OS"}, nil
}

// registerPlatformBackends: the keychain (macOS) and wincred (Windows)
// backends are not implemented yet; only the file store is available.
func registerPlatformBackends(r *backend.Registry) {}

func autoBackend(ctx context.Context, log *slog.Logger) string {
	log.Warn("no native secret store backend on this OS yet; using the encrypted file store")
	return "file"
}
