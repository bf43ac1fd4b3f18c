package server

import (
	"context"
	"net"
	"path/filepath"

	"github.com/The-17/keychain-auth/internal/pipe"
)

// testSocket names a pipe after the test's temporary directory, so that
// servers of parallel tests never share one.
func testSocket(dir string) string { return pipe.Prefix + "keychain-auth-test-" + filepath.Base(dir) }

func testDial(path string) (net.Conn, error) { return pipe.Dial(context.Background(), path) }
