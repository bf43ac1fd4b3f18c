//go:build !windows

package wincred

import (
	"context"
	"fmt"
	"runtime"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Register adds the backend to r; on this OS opening it fails and says why.
func Register(r *backend.Registry) {
	r.Register(Name, func(ctx context.Context, opts backend.Options) (backend.Backend, error) {
		return Open(ctx, opts)
	})
}

// Open fails: Credential Manager exists only on Windows.
func Open(context.Context, backend.Options) (*Store, error) {
	return nil, fmt.Errorf("the wincred backend (Windows Credential Manager) is not available on %s; use --backend file: %w", runtime.GOOS, backend.ErrUnavailable)
}
