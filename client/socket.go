package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/The-17/keychain-auth/internal/paths"
)

// SocketPaths returns the sockets a client considers, in order of preference:
// only $KEYCHAIN_AUTH_SOCKET when it is set, else the system daemon's socket
// followed by the user daemon's. Dial takes the system socket when it exists;
// it takes the user socket only when the machine is not in system mode, or
// when the caller passes AllowUserFallback. A nil env means os.Getenv.
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

// ErrSystemDaemonDown is returned by Dial when the machine is in system mode
// but the system daemon's socket is missing. Dial does not then use the
// user's own daemon: the system daemon is the one that keeps the user's
// secrets out of reach of the user's other programs, and a program writing a
// secret to a user daemon instead would silently put it behind a weaker wall.
// It matches ErrNoDaemon too.
var ErrSystemDaemonDown = errors.New("the system daemon is not running")

// chooseSocket applies the rules of SocketPaths.
func chooseSocket(env func(string) string, allowUser bool) (string, error) {
	cands := SocketPaths(env)
	if len(cands) == 1 {
		return cands[0], nil
	}
	if _, err := os.Stat(cands[0]); err == nil {
		return cands[0], nil
	}
	if allowUser {
		return cands[1], nil
	}
	// The CLI's rule: install-system creates the system config.json, and
	// its presence is what puts the machine in system mode.
	cfg := paths.System(paths.Env{Getenv: env}).ConfigFile
	_, err := os.Stat(cfg)
	if errors.Is(err, fs.ErrNotExist) {
		return cands[1], nil
	}
	why := cfg + " exists"
	if err != nil {
		// Cannot tell: refuse rather than risk the downgrade.
		why = "cannot tell whether " + cfg + " exists (" + err.Error() + ")"
	}
	return "", fmt.Errorf("keychain-auth: %w: %w: this machine is in system mode (%s), but there is no socket at %s; "+
		"start the system daemon (sudo systemctl start keychain-auth); "+
		"to use your own user daemon at %s instead, pass client.AllowUserFallback() to Dial, or set %s to its socket",
		ErrNoDaemon, ErrSystemDaemonDown, why, cands[0], cands[1], paths.EnvSocket)
}

// Option configures Dial.
type Option func(*options)

type options struct {
	socket    string
	env       func(string) string
	allowUser bool
}

// WithSocket dials path instead of discovering the socket.
func WithSocket(path string) Option {
	return func(o *options) { o.socket = path }
}

// AllowUserFallback lets Dial use the user daemon's socket when the machine is
// in system mode but the system daemon's socket is missing. Without it Dial
// fails with ErrSystemDaemonDown, so that a program meant to talk to the
// system daemon never writes its secrets to a user daemon by accident.
func AllowUserFallback() Option {
	return func(o *options) { o.allowUser = true }
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
		var err error
		if path, err = chooseSocket(o.env, o.allowUser); err != nil {
			return nil, err
		}
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
