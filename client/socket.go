package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/The-17/keychain-auth/internal/paths"
)

// SocketPaths returns the sockets a client considers, in order of preference:
// only $KEYCHAIN_AUTH_SOCKET when it is set, else the system daemon's socket
// followed by the user daemon's. Dial takes the system socket when it exists
// and the user socket otherwise. A nil env means os.Getenv.
func SocketPaths(env func(string) string) []string {
	if env == nil {
		env = os.Getenv
	}
	if v := env(paths.EnvSocket); v != "" {
		return []string{v}
	}
	e := paths.Env{Getenv: env, UID: os.Getuid()}
	return []string{paths.System(e).SocketPath, paths.UserSocket(e)}
}

// chooseSocket applies the "system socket if it exists" rule to SocketPaths.
func chooseSocket(env func(string) string) string {
	cands := SocketPaths(env)
	if len(cands) == 1 {
		return cands[0]
	}
	if _, err := os.Stat(cands[0]); err == nil {
		return cands[0]
	}
	return cands[1]
}

// Option configures Dial.
type Option func(*options)

type options struct {
	socket string
	env    func(string) string
}

// WithSocket dials path instead of discovering the socket.
func WithSocket(path string) Option {
	return func(o *options) { o.socket = path }
}

// WithEnv replaces os.Getenv during socket discovery; tests use it to point
// the client at a private daemon without touching the process environment.
func WithEnv(getenv func(string) string) Option {
	return func(o *options) { o.env = getenv }
}

// Dial connects to the daemon. The socket is found as described in the
// package documentation unless WithSocket names one. ctx bounds the connect
// only; each later call takes its own context.
func Dial(ctx context.Context, opts ...Option) (*Client, error) {
	o := options{env: os.Getenv}
	for _, opt := range opts {
		opt(&o)
	}
	path := o.socket
	if path == "" {
		path = chooseSocket(o.env)
	}
	conn, err := dialSocket(ctx, path)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("keychain-auth: connecting to %s: %w", path, ctxErr)
		}
		if errors.Is(err, errors.ErrUnsupported) {
			return nil, err
		}
		return nil, fmt.Errorf("keychain-auth: %w at %s: %w; start it with `keychain-auth start`, or set %s to its socket",
			ErrNoDaemon, path, unwrapOp(err), paths.EnvSocket)
	}
	return newClient(conn, path), nil
}

// unwrapOp drops net.OpError's "dial unix <path>:" prefix, which would repeat
// the path the message already names.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
