package secretservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Names from the freedesktop Secret Service API.
const (
	busName     = "org.freedesktop.secrets"
	servicePath = dbus.ObjectPath("/org/freedesktop/secrets")
	noPrompt    = dbus.ObjectPath("/")

	ifService    = "org.freedesktop.Secret.Service"
	ifCollection = "org.freedesktop.Secret.Collection"
	ifItem       = "org.freedesktop.Secret.Item"
	ifSession    = "org.freedesktop.Secret.Session"
	ifPrompt     = "org.freedesktop.Secret.Prompt"
	ifProps      = "org.freedesktop.DBus.Properties"

	errIsLocked     = "org.freedesktop.Secret.Error.IsLocked"
	errNoSession    = "org.freedesktop.Secret.Error.NoSession"
	errNotSupported = "org.freedesktop.DBus.Error.NotSupported"
)

// wireSecret is the API's Secret struct, (oayays).
type wireSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// maxInFlight bounds pipelined calls: replies are collected as they come, and
// a bus may cap how many replies one connection can have pending.
const maxInFlight = 64

// call is one method call in a pipeline.
type call struct {
	path   dbus.ObjectPath
	method string // "interface.Member"
	args   []any
	out    []any // pointers the reply is stored into
	err    error // raw error of this call, if any
}

// run sends calls without waiting for each reply in turn, so n calls cost
// about one round trip to the service instead of n. All of them share one
// CallTimeout. It returns the first failure, classified; each call's own
// raw error stays in call.err.
func (b *Backend) run(ctx context.Context, op string, calls ...*call) error {
	if len(calls) == 0 {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	window := min(len(calls), maxInFlight)
	done := make(chan *dbus.Call, window)
	byCall := make(map[*dbus.Call]*call, len(calls))
	next, inFlight := 0, 0
	for next < len(calls) || inFlight > 0 {
		for next < len(calls) && inFlight < window {
			c := calls[next]
			next++
			dc := b.conn.Object(busName, c.path).GoWithContext(tctx, c.method, 0, done, c.args...)
			byCall[dc] = c
			inFlight++
		}
		dc := <-done
		inFlight--
		c := byCall[dc]
		if dc.Err != nil {
			c.err = dc.Err
		} else if err := dbus.Store(dc.Body, c.out...); err != nil {
			c.err = fmt.Errorf("unexpected reply to %s: %w", c.method, err)
		}
	}
	for _, c := range calls {
		if c.err != nil {
			return b.classify(ctx, tctx, op, c.err)
		}
	}
	return nil
}

// call1 is run for a single call.
func (b *Backend) call1(ctx context.Context, op string, path dbus.ObjectPath, method string, args []any, out ...any) error {
	return b.run(ctx, op, &call{path: path, method: method, args: args, out: out})
}

// classify turns a D-Bus failure into an error that says what failed and
// wraps the backend sentinel a caller can act on. parent is the caller's
// context, tctx the one that also carries our CallTimeout: a caller's
// cancellation must stay a cancellation, while our own timeout means the
// service is not answering.
func (b *Backend) classify(parent, tctx context.Context, op string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("secret-service: %s: %w", op, perr)
	}
	if tctx != nil && errors.Is(tctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("secret-service: %s: %s did not answer within %s; check that gnome-keyring-daemon (or KWallet) is running and responsive: %w",
			op, busName, b.timeout, backend.ErrUnavailable)
	}
	if errors.Is(err, dbus.ErrClosed) || errors.Is(err, io.EOF) || !b.conn.Connected() {
		return fmt.Errorf("secret-service: %s: the D-Bus session bus connection is closed (%v); restart keychain-auth once the desktop session is back: %w",
			op, err, backend.ErrUnavailable)
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch {
		case isGone(de.Name):
			return fmt.Errorf("secret-service: %s: no Secret Service on the session bus (%s: %s); start gnome-keyring-daemon or KWallet, or choose another backend with --backend file: %w",
				op, de.Name, de.Error(), backend.ErrUnavailable)
		case de.Name == errIsLocked:
			return fmt.Errorf("secret-service: %s: %s: %w", op, unlockHint, backend.ErrLocked)
		}
		return fmt.Errorf("secret-service: %s: %s: %w", op, de.Name, err)
	}
	return fmt.Errorf("secret-service: %s: %w", op, err)
}

// isGone reports D-Bus errors that mean nobody is serving the API.
func isGone(name string) bool {
	switch name {
	case "org.freedesktop.DBus.Error.ServiceUnknown",
		"org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.NoReply",
		"org.freedesktop.DBus.Error.Disconnected",
		"org.freedesktop.DBus.Error.NoServer",
		"org.freedesktop.DBus.Error.Timeout",
		"org.freedesktop.DBus.Error.TimedOut":
		return true
	}
	return strings.HasPrefix(name, "org.freedesktop.DBus.Error.Spawn.")
}

const unlockHint = "the keyring is locked and unlocking it needs a password prompt, which a background daemon cannot show; " +
	"unlock it yourself (log in to the desktop, use Seahorse, or run `gnome-keyring-daemon --unlock` and type the password), then retry"

// sessionBusAddress finds the session bus the way the D-Bus specification
// says, without autolaunching one: a daemon must not spawn a bus as a side
// effect of looking for a keyring.
func sessionBusAddress() (string, error) {
	if addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" && addr != "autolaunch:" {
		return addr, nil
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		sock := filepath.Join(dir, "bus")
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix:path=" + dbus.EscapeBusAddressValue(sock), nil
		}
	}
	return "", errNoSessionBus
}

var errNoSessionBus = errors.New("no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus does not exist")

// connect dials addr, giving up when ctx ends. godbus's handshake takes no
// context, so a bus that accepts but never answers would otherwise hang us.
func connect(ctx context.Context, addr string) (*dbus.Conn, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := dbus.Connect(addr)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to the D-Bus session bus: %v: %w", r.err, backend.ErrUnavailable)
		}
		return r.conn, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to the D-Bus session bus: %w", ctx.Err())
	}
}
