// Package client is the Go SDK for the keychain-auth daemon: it finds the
// daemon's socket, speaks protocol version 1 over it, and turns responses into
// Go values and typed errors.
//
// # Identity
//
// The daemon decides what a caller may do from the kernel's view of the
// process on the other end of the socket (the SHA-256 of the executable image
// it runs), never from anything the client sends. There is nothing to
// configure here: register the program that links this package with
// `keychain-auth register <path>` and grant it services.
//
// # Close-on-exec
//
// The connection is created close-on-exec (Go's net package opens every socket
// with SOCK_CLOEXEC), so a child process you start with os/exec does not
// inherit it and cannot issue requests under your identity. This is the same
// guarantee the original client gave with O_CLOEXEC; it holds unless you hand
// the descriptor on yourself (for example in exec.Cmd.ExtraFiles).
//
// # Concurrency and cancellation
//
// A *Client holds one connection and is safe for concurrent use: requests are
// serialised, one request/response pair at a time, which keeps the stream
// simple and correct; dial several clients if you need parallelism. Every call
// honours its context's deadline and cancellation. A call interrupted
// mid-request closes the connection, because a half-written request or a
// half-read response would leave the stream out of step; every later call on
// that client returns an error wrapping ErrClosed, and you dial again.
//
// # Socket discovery
//
// Dial uses, in order: $KEYCHAIN_AUTH_SOCKET when set; the system daemon's
// socket <$KEYCHAIN_AUTH_SYSTEM_ROOT or />run/keychain-auth/agent.sock when it
// exists; the user daemon's socket $XDG_RUNTIME_DIR/keychain-auth/agent.sock,
// or $TMPDIR (or /tmp) + /keychain-auth-<uid>/agent.sock. See SocketPaths.
// When the machine is in system mode (<$KEYCHAIN_AUTH_SYSTEM_ROOT or
// />etc/keychain-auth/config.json exists) and the system socket is missing,
// Dial fails with ErrSystemDaemonDown instead of using the user socket, unless
// the caller passes AllowUserFallback.
// Windows named pipes are not implemented yet; Dial says so there.
package client
