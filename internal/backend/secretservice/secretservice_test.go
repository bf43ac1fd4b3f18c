package secretservice_test

// Every test here runs against a real gnome-keyring-daemon on a private
// D-Bus bus (see sstest). Each open gets its own bus and keyring: starting
// both takes about 50 ms, which is cheaper and far simpler than sharing one
// keyring and wiping it between tests, and it lets tests lock, kill or
// freeze their keyring without disturbing the others.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
	"github.com/The-17/keychain-auth/internal/backend/secretservice/sstest"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// open starts a keyring and opens a backend on it.
func open(t testing.TB, opts secretservice.Options) (*secretservice.Backend, *sstest.Keyring) {
	t.Helper()
	k := sstest.Start(t)
	if opts.Conn == nil {
		opts.Conn = k.Conn
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	b, err := secretservice.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v\ngnome-keyring-daemon said: %s", err, k.Log())
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, k
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b, _ := open(t, secretservice.Options{})
		return b
	})
}

// TestSessionIsEncrypted checks that DH was negotiated and, by monitoring
// every message on the bus, that neither a written nor a read value ever
// appears on it in the clear.
func TestSessionIsEncrypted(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	if got := b.Algorithm(); got != secretservice.AlgorithmDH {
		t.Fatalf("negotiated %q, want %q", got, secretservice.AlgorithmDH)
	}

	mon, err := dbus.Connect(k.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	if err := mon.BusObject().CallWithContext(t.Context(), "org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, []string{}, uint32(0)).Err; err != nil {
		t.Fatalf("BecomeMonitor: %v", err)
	}
	// Only now: with eavesdropping on, godbus would route the reply to
	// BecomeMonitor into the channel too and the call would never return.
	msgs := make(chan *dbus.Message, 1024)
	mon.Eavesdrop(msgs)
	var (
		mu      sync.Mutex
		seen    int
		leak    bool
		flushed bool
	)
	marker := []byte("PLAINTEXT-MARKER-7f3a9c")
	// The monitor gets messages in bus order, so once it sees a search
	// for this target it has seen everything sent before.
	flush := []byte("flush-7f3a9c")
	go func() {
		for m := range msgs {
			var buf bytes.Buffer
			// Byte arrays are not byte-swapped, so any order shows a leak.
			if err := m.EncodeTo(&buf, binary.LittleEndian); err != nil {
				continue
			}
			mu.Lock()
			seen++
			leak = leak || bytes.Contains(buf.Bytes(), marker)
			flushed = flushed || bytes.Contains(buf.Bytes(), flush)
			mu.Unlock()
		}
	}()

	ctx := t.Context()
	value := append(bytes.Clone(marker), " and more"...)
	if err := b.Set(ctx, "svc", []backend.Item{{Target: "t", Value: value}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "svc", "t")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Value, value) {
		t.Fatal("Get returned another value than Set stored")
	}
	if _, err := b.List(ctx, "svc", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "svc", string(flush)); !errors.Is(err, backend.ErrNotFound) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := flushed
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bus monitor never saw our last call; it is not watching")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen < 10 {
		t.Fatalf("the bus monitor saw only %d messages; it is not watching", seen)
	}
	if leak {
		t.Fatal("a secret value crossed the bus in the clear")
	}
}

func secretTool(t *testing.T, k *sstest.Keyring, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cmd := k.Command(ctx, "secret-tool", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("secret-tool %s: %w: %s", args[0], err, errBuf.String())
	}
	return string(out), errBuf.String(), nil
}

// searchDetails runs secret-tool search --all and returns what it prints
// about the matching items, without their secrets.
func searchDetails(t *testing.T, k *sstest.Keyring, attrs ...string) string {
	t.Helper()
	out, errOut, err := secretTool(t, k, "", append([]string{"search", "--all"}, attrs...)...)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.Lines(out + errOut) {
		if !strings.HasPrefix(line, "secret = ") {
			sb.WriteString(line)
		}
	}
	return sb.String()
}

func TestSecretToolFindsWhatWeWrite(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	value := "written by keychain-auth ✓"
	if err := b.Set(t.Context(), "aws", []backend.Item{{Target: "prod/key", Value: []byte(value), Attributes: map[string]string{"env": "prod"}}}); err != nil {
		t.Fatal(err)
	}
	got, _, err := secretTool(t, k, "", "lookup", secretservice.AttrService, "aws", secretservice.AttrTarget, "prod/key")
	if err != nil {
		t.Fatal(err)
	}
	if got != value {
		t.Fatalf("secret-tool lookup returned %d bytes, not the value we stored", len(got))
	}
	details := searchDetails(t, k, secretservice.AttrService, "aws")
	for _, want := range []string{"label = keychain-auth: aws/prod/key", "attribute.env = prod", "attribute." + secretservice.AttrTarget + " = prod/key"} {
		if !strings.Contains(details, want+"\n") {
			t.Errorf("secret-tool search shows %q, want a line %q", details, want)
		}
	}
}

func TestWeReadWhatSecretToolStores(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	value := "stored by secret-tool"
	if _, _, err := secretTool(t, k, value, "store", "--label", "from secret-tool",
		secretservice.AttrService, "gh", secretservice.AttrTarget, "token", "owner", "me"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(t.Context(), "gh", "token")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != value || got.Target != "token" || len(got.Attributes) != 1 || got.Attributes["owner"] != "me" {
		t.Fatalf("Get returned target %q, attributes %v, and a value that matches: %v", got.Target, got.Attributes, string(got.Value) == value)
	}
	items, err := b.List(t.Context(), "gh", "to", map[string]string{"owner": "me"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Target != "token" || string(items[0].Value) != value {
		t.Fatalf("List returned %d items", len(items))
	}

	// Overwriting it through us leaves one item, not a second one beside
	// secret-tool's (whose attributes differ from ours).
	if err := b.Set(t.Context(), "gh", []backend.Item{{Target: "token", Value: []byte("rotated")}}); err != nil {
		t.Fatal(err)
	}
	details := searchDetails(t, k, secretservice.AttrService, "gh")
	if n := strings.Count(details, "label = "); n != 1 {
		t.Fatalf("after overwriting, secret-tool finds %d items, want 1", n)
	}
	if got, _, _ := secretTool(t, k, "", "lookup", secretservice.AttrService, "gh", secretservice.AttrTarget, "token"); got != "rotated" {
		t.Fatal("secret-tool lookup does not see the overwritten value")
	}
}

func TestBinaryValuesSurvive(t *testing.T) {
	t.Parallel()
	b, _ := open(t, secretservice.Options{})
	if err := b.Ready(t.Context()); err != nil {
		t.Fatalf("Ready on an unlocked keyring: %v", err)
	}
	value := []byte{0, 0xff, 0xfe, 0x80, 0, 'a', 0xc3, 0x28, 0}
	if err := b.Set(t.Context(), "bin", []backend.Item{{Target: "t", Value: value}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(t.Context(), "bin", "t")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Value, value) {
		t.Fatal("a non-UTF-8 value with NUL bytes did not round-trip")
	}
}

func TestReservedAndUnsendableInputIsRejected(t *testing.T) {
	t.Parallel()
	b, _ := open(t, secretservice.Options{})
	ctx := t.Context()
	bad := []struct {
		name  string
		items []backend.Item
	}{
		{"reserved service attribute", []backend.Item{{Target: "t", Value: []byte("v"), Attributes: map[string]string{secretservice.AttrService: "other"}}}},
		{"reserved target attribute", []backend.Item{{Target: "t", Value: []byte("v"), Attributes: map[string]string{secretservice.AttrTarget: "other"}}}},
		{"NUL in target", []backend.Item{{Target: "a\x00b", Value: []byte("v")}}},
		{"invalid UTF-8 attribute", []backend.Item{{Target: "t", Value: []byte("v"), Attributes: map[string]string{"k": "\xff"}}}},
	}
	for _, c := range bad {
		if err := b.Set(ctx, "svc", append([]backend.Item{{Target: "ok", Value: []byte("v")}}, c.items...)); err == nil {
			t.Errorf("%s: Set accepted it", c.name)
		}
	}
	if _, err := b.List(ctx, "svc", "", map[string]string{secretservice.AttrTarget: "t"}); err == nil {
		t.Error("List accepted a reserved attribute as a filter")
	}
	// Validation happens before anything is written.
	if items, err := b.List(ctx, "svc", "", nil); err != nil || len(items) != 0 {
		t.Errorf("after rejected batches List = %d items, %v; want none", len(items), err)
	}
	// The connection survived: nothing invalid reached the bus.
	if err := b.Set(ctx, "svc", []backend.Item{{Target: "t", Value: []byte("v")}}); err != nil {
		t.Fatalf("Set after rejected input: %v", err)
	}
}

// TestLockedKeyring shows what gnome-keyring really does headless: Unlock of a
// locked collection returns a prompt, which we cannot show, so operations
// fail with ErrLocked and a hint, and work again once the user unlocks.
func TestLockedKeyring(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	ctx := t.Context()
	if err := b.Set(ctx, "svc", []backend.Item{{Target: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	k.Lock()
	wantLocked := func(op string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s on a locked keyring succeeded", op)
		case !errors.Is(err, backend.ErrLocked):
			t.Errorf("%s on a locked keyring = %v, want ErrLocked", op, err)
		case !strings.Contains(err.Error(), "gnome-keyring-daemon --unlock"):
			t.Errorf("%s: error %q does not tell the user how to unlock", op, err)
		}
	}
	_, err := b.Get(ctx, "svc", "t")
	wantLocked("Get", err)
	_, err = b.List(ctx, "svc", "", nil)
	wantLocked("List", err)
	wantLocked("Set", b.Set(ctx, "svc", []backend.Item{{Target: "new", Value: []byte("v")}}))
	wantLocked("Delete", b.Delete(ctx, "svc", []string{"t"}))
	wantLocked("Ready", b.Ready(ctx))

	// Attributes stay searchable while locked, so absence is still known.
	if _, err := b.Get(ctx, "svc", "absent"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get of an absent target on a locked keyring = %v, want ErrNotFound", err)
	}

	k.Unlock()
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after the user unlocked: %v", err)
	}
	got, err := b.Get(ctx, "svc", "t")
	if err != nil {
		t.Fatalf("Get after the user unlocked: %v", err)
	}
	if string(got.Value) != "v" {
		t.Fatal("Get after unlock returned another value")
	}
	if _, err := b.Get(ctx, "svc", "new"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("the Set refused while locked left an item behind: %v", err)
	}
}

// TestNoDefaultCollection: gnome-keyring started without --unlock has no
// login keyring, and creating one needs a prompt.
func TestNoDefaultCollection(t *testing.T) {
	t.Parallel()
	k := sstest.StartWith(t, sstest.Options{NoUnlock: true})
	b, err := secretservice.Open(t.Context(), secretservice.Options{Conn: k.Conn, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ready(t.Context()); !errors.Is(err, backend.ErrLocked) || !strings.Contains(err.Error(), "no default keyring") {
		t.Errorf("Ready without a default keyring = %v, want ErrLocked saying there is no default keyring", err)
	}
	if _, err := b.Get(t.Context(), "svc", "t"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get without a default keyring = %v, want ErrNotFound", err)
	}
	if items, err := b.List(t.Context(), "svc", "", nil); err != nil || len(items) != 0 {
		t.Errorf("List without a default keyring = %d items, %v; want none", len(items), err)
	}
	err = b.Set(t.Context(), "svc", []backend.Item{{Target: "t", Value: []byte("v")}})
	if !errors.Is(err, backend.ErrLocked) || !strings.Contains(err.Error(), "no default keyring") {
		t.Errorf("Set without a default keyring = %v, want ErrLocked saying there is no default keyring", err)
	}
}

func wantUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded without a service", op)
	case !errors.Is(err, backend.ErrUnavailable):
		t.Errorf("%s = %v, want ErrUnavailable", op, err)
	case errors.Is(err, backend.ErrNotFound):
		t.Errorf("%s = %v: a missing service must not look like a missing item", op, err)
	}
}

func allOps(t *testing.T, b backend.Backend) {
	t.Helper()
	ctx := t.Context()
	_, err := b.Get(ctx, "svc", "t")
	wantUnavailable(t, "Get", err)
	_, err = b.List(ctx, "svc", "", nil)
	wantUnavailable(t, "List", err)
	wantUnavailable(t, "Set", b.Set(ctx, "svc", []backend.Item{{Target: "t", Value: []byte("v")}}))
	wantUnavailable(t, "Delete", b.Delete(ctx, "svc", []string{"t"}))
}

func TestServiceGone(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	if err := b.Set(t.Context(), "svc", []backend.Item{{Target: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	k.Kill()
	allOps(t, b)
	if _, err := secretservice.Open(t.Context(), secretservice.Options{Conn: k.Conn, Logger: quietLogger()}); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Open without a service = %v, want ErrUnavailable", err)
	}
}

// TestServiceHung: a keyring that holds its name but never answers costs
// one CallTimeout per operation, then ErrUnavailable; it never hangs. Each
// operation must end well before DefaultCallTimeout: an operation that took
// that long did not use the CallTimeout it was given.
func TestServiceHung(t *testing.T) {
	t.Parallel()
	const callTimeout = 200 * time.Millisecond
	b, k := open(t, secretservice.Options{CallTimeout: callTimeout})
	k.Freeze()
	defer k.Thaw()
	ctx := t.Context()
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "svc", "t"); return err }},
		{"List", func() error { _, err := b.List(ctx, "svc", "", nil); return err }},
		{"Set", func() error { return b.Set(ctx, "svc", []backend.Item{{Target: "t", Value: []byte("v")}}) }},
		{"Delete", func() error { return b.Delete(ctx, "svc", []string{"t"}) }},
	} {
		start := time.Now()
		err := op.run()
		took := time.Since(start)
		wantUnavailable(t, op.name, err)
		t.Logf("%s against a hung keyring: %v (CallTimeout %v)", op.name, took, callTimeout)
		// Generous: a few CallTimeouts and a loaded machine fit well under it.
		if bound := secretservice.DefaultCallTimeout * 4 / 5; took >= bound {
			t.Errorf("%s took %v against a hung keyring; with CallTimeout %v it must end well before %v", op.name, took, callTimeout, bound)
		}
	}
}

func TestBusConnectionClosed(t *testing.T) {
	t.Parallel()
	k := sstest.Start(t)
	conn, err := dbus.Connect(k.Addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secretservice.Open(t.Context(), secretservice.Options{Conn: conn, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn.Close()
	allOps(t, b)
}

// TestServiceRestart: after the keyring daemon restarts, our session is gone;
// the backend opens a new one and the data (on disk) is still there.
func TestServiceRestart(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	b, k := open(t, secretservice.Options{Logger: logs.logger()})
	if err := b.Set(t.Context(), "svc", []backend.Item{{Target: "t", Value: []byte("persisted")}}); err != nil {
		t.Fatal(err)
	}
	k.Restart()
	got, err := b.Get(t.Context(), "svc", "t")
	if err != nil {
		t.Fatalf("Get after the keyring daemon restarted: %v\n%s", err, k.Log())
	}
	if string(got.Value) != "persisted" {
		t.Fatal("Get after restart returned another value")
	}
	if err := b.Set(t.Context(), "svc", []backend.Item{{Target: "t2", Value: []byte("v")}}); err != nil {
		t.Fatalf("Set after restart: %v", err)
	}
	if got := b.Algorithm(); got != secretservice.AlgorithmDH {
		t.Errorf("after restart the session is %q, want %q", got, secretservice.AlgorithmDH)
	}
	if !strings.Contains(logs.String(), "opened a new one") {
		t.Errorf("the restart did not go through session renewal; log: %q", logs.String())
	}
}

// TestSameTargetTwiceInOneBatch: the later item wins and no duplicate stays.
func TestSameTargetTwiceInOneBatch(t *testing.T) {
	t.Parallel()
	b, k := open(t, secretservice.Options{})
	err := b.Set(t.Context(), "svc", []backend.Item{
		{Target: "t", Value: []byte("first"), Attributes: map[string]string{"a": "1"}},
		{Target: "t", Value: []byte("second"), Attributes: map[string]string{"b": "2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(t.Context(), "svc", "t")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "second" || got.Attributes["b"] != "2" || len(got.Attributes) != 1 {
		t.Fatalf("Get after a batch naming t twice: attributes %v; want the later item", got.Attributes)
	}
	if n := strings.Count(searchDetails(t, k, secretservice.AttrService, "svc"), "label = "); n != 1 {
		t.Fatalf("the keyring holds %d items for the target, want 1", n)
	}
}

func TestAvailableOn(t *testing.T) {
	t.Parallel()
	k := sstest.Start(t)
	ok, err := secretservice.AvailableOn(t.Context(), k.Conn)
	if err != nil || !ok {
		t.Fatalf("AvailableOn with a running keyring = %v, %v; want true", ok, err)
	}
	k.Kill()
	ok, err = secretservice.AvailableOn(t.Context(), k.Conn)
	if err != nil || ok {
		t.Fatalf("AvailableOn without a keyring = %v, %v; want false", ok, err)
	}
}

// TestOpenUsesSessionBusFromEnvironment covers Open with no Conn and
// Available, which read DBUS_SESSION_BUS_ADDRESS; t.Setenv rules out
// t.Parallel here.
func TestOpenUsesSessionBusFromEnvironment(t *testing.T) {
	k := sstest.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", k.Addr)
	ok, err := secretservice.Available(t.Context())
	if err != nil || !ok {
		t.Fatalf("Available = %v, %v; want true", ok, err)
	}
	var reg backend.Registry
	secretservice.Register(&reg)
	b, err := reg.Open(t.Context(), secretservice.Name, backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(t.Context(), "svc", []backend.Item{{Target: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	ok, err = secretservice.Available(t.Context())
	if err != nil || ok {
		t.Fatalf("Available without a session bus = %v, %v; want false, nil", ok, err)
	}
	if _, err := reg.Open(t.Context(), secretservice.Name, backend.Options{}); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open without a session bus = %v, want ErrUnavailable", err)
	}
}

func TestGetManyReturnsPresentTargetsOnly(t *testing.T) {
	t.Parallel()
	b, _ := open(t, secretservice.Options{})
	ctx := context.Background()
	if err := b.Set(ctx, "svc", []backend.Item{
		{Target: "a", Value: []byte("A"), Attributes: map[string]string{"k": "1"}},
		{Target: "c", Value: []byte("C")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "other", []backend.Item{{Target: "b", Value: []byte("not this service")}}); err != nil {
		t.Fatal(err)
	}
	items, err := b.GetMany(ctx, "svc", []string{"c", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.Target] = string(it.Value)
	}
	if len(got) != 2 || got["a"] != "A" || got["c"] != "C" {
		t.Fatalf("GetMany: %v", got)
	}
	for _, it := range items {
		if it.Target == "a" && it.Attributes["k"] != "1" {
			t.Errorf("attributes lost: %v", it.Attributes)
		}
	}
}
