//go:build !unix && !windows

package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
)

// dialSocket has no local transport to use on this platform.
func dialSocket(_ context.Context, _ string) (net.Conn, error) {
	return nil, fmt.Errorf("keychain-auth: no local socket transport is implemented for %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
