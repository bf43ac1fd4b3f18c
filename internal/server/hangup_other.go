//go:build !linux

package server

import (
	"context"
	"net"
)

// cancelOnHangup does not watch for a hang-up here: a hash whose client left
// runs to its end (bounded by the size cap).
func cancelOnHangup(ctx context.Context, _ net.Conn) (context.Context, func()) {
	return context.WithCancel(ctx)
}
