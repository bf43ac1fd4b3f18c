package secretservice_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
	"github.com/The-17/keychain-auth/internal/backend/secretservice/sstest"
)

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openSessionOnly serves just Service.OpenSession, answering DH with a
// chosen error: gnome-keyring always accepts DH, so the fallback path needs a
// service that refuses it.
type openSessionOnly struct{ dhError string }

func (s openSessionOnly) OpenSession(alg string, _ dbus.Variant) (dbus.Variant, dbus.ObjectPath, *dbus.Error) {
	if alg != secretservice.AlgorithmPlain {
		return dbus.MakeVariant(""), "/", dbus.NewError(s.dhError, []any{"this test service does not do " + alg})
	}
	return dbus.MakeVariant(""), "/org/freedesktop/secrets/session/test", nil
}

func serveOpenSession(t *testing.T, k *sstest.Keyring, svc openSessionOnly) {
	t.Helper()
	conn, err := dbus.Connect(k.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Export(svc, "/org/freedesktop/secrets", "org.freedesktop.Secret.Service"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.secrets", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v, %v", reply, err)
	}
}

func TestPlainOnlyWhenDHIsRefused(t *testing.T) {
	t.Parallel()
	k := sstest.StartWith(t, sstest.Options{NoKeyring: true})
	serveOpenSession(t, k, openSessionOnly{dhError: "org.freedesktop.DBus.Error.NotSupported"})
	var logs logBuffer
	b, err := secretservice.Open(t.Context(), secretservice.Options{Conn: k.Conn, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Algorithm(); got != secretservice.AlgorithmPlain {
		t.Fatalf("negotiated %q, want %q after the service refused DH", got, secretservice.AlgorithmPlain)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "unencrypted") {
		t.Errorf("falling back to plain logged %q, want a warning that secrets travel unencrypted", out)
	}
}

func TestNoPlainFallbackOnOtherDHFailures(t *testing.T) {
	t.Parallel()
	k := sstest.StartWith(t, sstest.Options{NoKeyring: true})
	serveOpenSession(t, k, openSessionOnly{dhError: "org.freedesktop.DBus.Error.Failed"})
	b, err := secretservice.Open(t.Context(), secretservice.Options{Conn: k.Conn, Logger: quietLogger()})
	if err == nil {
		b.Close()
		t.Fatalf("Open succeeded with %q although DH failed for another reason than NotSupported", b.Algorithm())
	}
	if errors.Is(err, backend.ErrUnavailable) || errors.Is(err, backend.ErrLocked) {
		t.Errorf("Open = %v; a protocol failure is neither unavailable nor locked", err)
	}
}
