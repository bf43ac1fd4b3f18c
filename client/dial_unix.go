//go:build unix

package client

import (
	"context"
	"net"
)

// dialSocket connects to a Unix stream socket. Go's net package creates it
// with SOCK_CLOEXEC, which is the close-on-exec contract in the package doc.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}
