//go:build !linux

package server

import (
	"context"
	"errors"
	"io"
	"net"
	"os"

	"github.com/The-17/keychain-auth/internal/attest"
)

// requestReader returns nc: descriptor passing is implemented on Linux only,
// so here no descriptor ever reaches the inbox and exec_fd requests are
// refused as lacking one.
func requestReader(nc net.Conn, _ *fdInbox) io.Reader { return nc }

// closeFD is never reached here: no descriptor is ever received.
func closeFD(int) {}

func descriptorPath(*os.File) string { return "" }

// SelfHash returns "": descriptor requests (keychain-auth exec) are
// implemented on Linux only.
func SelfHash(context.Context, *attest.Attestor) (string, error) {
	return "", errors.ErrUnsupported
}
