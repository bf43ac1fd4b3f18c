// Package secretservice stores secrets in the desktop keyring through the
// freedesktop Secret Service D-Bus API (GNOME Keyring; KWallet >= 5.97 speaks
// the same API), over an encrypted session, in the "default" collection.
package secretservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Name is the backend's name in a backend.Registry and in config.json.
const Name = "secret-service"

// DefaultCallTimeout bounds every D-Bus exchange when Options.CallTimeout is 0.
const DefaultCallTimeout = 5 * time.Second

// Attribute keys that place an item in keychain-auth's namespace. Other
// programs (secret-tool, Seahorse) find items by them.
const (
	AttrService = "keychain-auth-service"
	AttrTarget  = "keychain-auth-target"
)

const contentType = "text/plain"

// Options configure Open.
type Options struct {
	// Conn is the bus to use; nil means connect to the session bus, which the
	// Backend then owns and closes. A Conn passed in is never closed by the
	// Backend.
	Conn *dbus.Conn
	// CallTimeout bounds each D-Bus exchange (0 means DefaultCallTimeout),
	// so a hung keyring daemon turns into ErrUnavailable instead of a hang.
	CallTimeout time.Duration
	// Logger receives warnings (nil means slog.Default()). It never sees a
	// secret.
	Logger *slog.Logger
}

// Backend is a backend.Backend on the Secret Service. It is safe for
// concurrent use.
type Backend struct {
	conn    *dbus.Conn
	ownConn bool
	timeout time.Duration
	log     *slog.Logger

	// mu serialises batches against each other and against reads: a Set or
	// Delete snapshots, mutates and possibly rolls back several items, and no
	// reader in this process should see it half done. closed is guarded by mu.
	mu     sync.RWMutex
	closed bool

	smu  sync.Mutex // guards sess
	sess *session

	fault backend.Fault
}

var (
	_ backend.Backend       = (*Backend)(nil)
	_ backend.FaultInjector = (*Backend)(nil)
)

// session is an open Secret Service session; immutable once made.
type session struct {
	path dbus.ObjectPath
	alg  string
	key  []byte // AES key; nil for plain
}

// Register adds the "secret-service" backend, on the user's session bus, to r.
func Register(r *backend.Registry) {
	r.Register(Name, func(ctx context.Context, opts backend.Options) (backend.Backend, error) {
		return Open(ctx, Options{Logger: opts.Logger})
	})
}

// Open connects (unless opts.Conn is given) and negotiates an encrypted
// session with the Secret Service. It fails with ErrUnavailable when no
// service answers. A locked keyring is not an Open error: each operation
// reports ErrLocked if it needs the keyring and cannot unlock it.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	b := &Backend{conn: opts.Conn, timeout: opts.CallTimeout, log: opts.Logger}
	if b.timeout <= 0 {
		b.timeout = DefaultCallTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.conn == nil {
		addr, err := sessionBusAddress()
		if err != nil {
			return nil, fmt.Errorf("secret-service: %w; run keychain-auth inside a desktop session or choose --backend file: %w", err, backend.ErrUnavailable)
		}
		cctx, cancel := context.WithTimeout(ctx, b.timeout)
		conn, err := connect(cctx, addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("secret-service: %w", err)
		}
		b.conn, b.ownConn = conn, true
	}
	s, err := b.openSession(ctx)
	if err != nil {
		if b.ownConn {
			_ = b.conn.Close()
		}
		return nil, err
	}
	b.sess = s
	return b, nil
}

// Algorithm reports the session algorithm negotiated with the service:
// AlgorithmDH normally, AlgorithmPlain only if the service refused DH.
func (b *Backend) Algorithm() string {
	b.smu.Lock()
	defer b.smu.Unlock()
	if b.sess == nil {
		return ""
	}
	return b.sess.alg
}

// openSession negotiates dh-ietf1024-sha256-aes128-cbc-pkcs7, falling back to
// plain only when the service says it does not support DH.
func (b *Backend) openSession(ctx context.Context) (*session, error) {
	kp, err := newDHKeyPair()
	if err != nil {
		return nil, fmt.Errorf("secret-service: open session: %w", err)
	}
	var out dbus.Variant
	var path dbus.ObjectPath
	c := &call{path: servicePath, method: ifService + ".OpenSession",
		args: []any{AlgorithmDH, dbus.MakeVariant(kp.public)}, out: []any{&out, &path}}
	err = b.run(ctx, "open session", c)
	var de dbus.Error
	if err != nil && errors.As(c.err, &de) && de.Name == errNotSupported {
		b.log.Warn("the Secret Service refused an encrypted session; secrets will cross the session bus unencrypted",
			"algorithm", AlgorithmPlain, "refused", AlgorithmDH)
		if err := b.call1(ctx, "open plain session", servicePath, ifService+".OpenSession",
			[]any{AlgorithmPlain, dbus.MakeVariant("")}, &out, &path); err != nil {
			return nil, err
		}
		return &session{path: path, alg: AlgorithmPlain}, nil
	}
	if err != nil {
		return nil, err
	}
	peer, ok := out.Value().([]byte)
	if !ok {
		return nil, fmt.Errorf("secret-service: open session: service answered %s instead of a public key", out.Signature())
	}
	key, err := kp.sharedKey(peer)
	if err != nil {
		return nil, fmt.Errorf("secret-service: open session: %w", err)
	}
	return &session{path: path, alg: AlgorithmDH, key: key}, nil
}

func (b *Backend) session() *session {
	b.smu.Lock()
	defer b.smu.Unlock()
	return b.sess
}

// withSession runs fn with the current session and, if the service no longer
// knows it (the keyring daemon restarted behind the same bus), opens a new
// one and runs fn once more.
func (b *Backend) withSession(ctx context.Context, fn func(*session) error) error {
	s := b.session()
	err := fn(s)
	var de dbus.Error
	if err == nil || !errors.As(err, &de) || de.Name != errNoSession {
		return err
	}
	b.smu.Lock()
	if b.sess == s {
		ns, oerr := b.openSession(ctx)
		if oerr != nil {
			b.smu.Unlock()
			return oerr
		}
		b.sess = ns
		b.log.Info("the Secret Service forgot our session (did the keyring daemon restart?); opened a new one", "algorithm", ns.alg)
	}
	s = b.sess
	b.smu.Unlock()
	return fn(s)
}

// seal prepares plain for the bus under session s.
func (s *session) seal(plain []byte, ctype string) (wireSecret, error) {
	if ctype == "" {
		ctype = contentType
	}
	if s.key == nil {
		return wireSecret{Session: s.path, Parameters: []byte{}, Value: slices.Clone(plain), ContentType: ctype}, nil
	}
	iv, ct, err := encrypt(s.key, plain)
	if err != nil {
		return wireSecret{}, err
	}
	return wireSecret{Session: s.path, Parameters: iv, Value: ct, ContentType: ctype}, nil
}

// unseal returns a secret's value; the slice is the caller's.
func (s *session) unseal(w wireSecret) ([]byte, error) {
	if s.key == nil {
		return slices.Clone(w.Value), nil
	}
	return decrypt(s.key, w.Parameters, w.Value)
}

// InjectFault implements backend.FaultInjector: each item written and each
// target removed is one primitive mutation. Rollback writes are mutations
// too, but the fault is one-shot, so a rollback never trips it.
func (b *Backend) InjectFault(afterOps int, err error) {
	b.fault.Arm(afterOps, err)
}

func (b *Backend) step() error { return b.fault.Step("secret-service") }

// usable is checked at the start of every operation, under mu.
func (b *Backend) usable(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("secret-service: %s: %w", op, err)
	}
	if b.closed {
		return fmt.Errorf("secret-service: %s after Close: %w", op, backend.ErrUnavailable)
	}
	return nil
}

// Close ends the session, and the bus connection if Open made it. It waits
// for running operations; later calls fail with ErrUnavailable. Closing
// twice is harmless.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var err error
	if s := b.session(); s != nil && b.conn.Connected() {
		// Best effort: the service also drops sessions of departed clients.
		_ = b.call1(ctx, "close session", s.path, ifSession+".Close", nil)
		clear(s.key)
	}
	if b.ownConn {
		err = b.conn.Close()
	}
	return err
}

// Available reports whether the user's session bus has a Secret Service,
// running or activatable; `--backend auto` asks it. No session bus at all is
// (false, nil); an error means the bus exists but could not be asked.
func Available(ctx context.Context) (bool, error) {
	addr, err := sessionBusAddress()
	if err != nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	conn, err := connect(ctx, addr)
	if err != nil {
		return false, fmt.Errorf("secret-service: %w", err)
	}
	defer conn.Close()
	return AvailableOn(ctx, conn)
}

// AvailableOn is Available on a given bus connection.
func AvailableOn(ctx context.Context, conn *dbus.Conn) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	var owned bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&owned); err != nil {
		return false, fmt.Errorf("secret-service: ask the session bus whether %s is running: %w", busName, err)
	}
	if owned {
		return true, nil
	}
	var names []string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false, fmt.Errorf("secret-service: ask the session bus whether %s can be started: %w", busName, err)
	}
	return slices.Contains(names, busName), nil
}
