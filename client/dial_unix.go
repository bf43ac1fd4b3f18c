//go:build unix

package client

import (
	"context"
	"fmt"
	"net"
	"os"
)

// dialSocket connects to a Unix stream socket and checks who serves it. Go's
// net package creates the socket with SOCK_CLOEXEC, which is the
// close-on-exec contract in the package doc.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uid, known, err := peerUID(conn.(*net.UnixConn))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("keychain-auth: cannot tell who serves %s: %w", path, err)
	}
	if known && !trustedDaemonUID(uid, uint32(os.Getuid())) {
		conn.Close()
		return nil, fmt.Errorf("keychain-auth: %w: %s is served by uid %d, which is neither you, root nor the %s system user; "+
			"something may be impersonating the daemon: check who created that directory",
			ErrUntrustedDaemon, path, uid, systemUser())
	}
	return conn, nil
}
