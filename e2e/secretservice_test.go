package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend/secretservice/sstest"
	"github.com/The-17/keychain-auth/protocol"
)

// TestSecretServiceThroughDaemon runs the daemon on a real gnome-keyring on a
// private bus: auto picks it and records the choice, items interoperate with
// secret-tool both ways, and a recorded keyring that later vanishes stops the
// daemon from starting instead of silently switching stores.
func TestSecretServiceThroughDaemon(t *testing.T) {
	t.Parallel()
	k := sstest.Start(t)
	e := newEnv(t)
	e.vars = append(e.vars, "DBUS_SESSION_BUS_ADDRESS="+k.Addr)
	e.mustKA("register", client, "--read", "svc", "--write", "svc", "--search")
	d := e.start("--backend", "auto")
	waitFor(t, "start to log the backend it uses", func() bool {
		return strings.Contains(d.stderr.String(), "backend=secret-service")
	})
	var cfg struct{ Backend string }
	if err := json.Unmarshal(readFile(t, e.configFile()), &cfg); err != nil || cfg.Backend != "secret-service" {
		t.Fatalf("backend choice not recorded in config.json: %q %v", cfg.Backend, err)
	}

	wantStatus(t, e.one(client, req("write", "svc", []string{"api/token"}, "values", []string{"from-daemon-42"},
		"attributes", map[string]string{"env": "prod"})), protocol.StatusSuccess, "")
	ctx := ctxT(t)
	out, err := k.Command(ctx, "secret-tool", "lookup", "keychain-auth-service", "svc", "keychain-auth-target", "api/token").Output()
	if err != nil || string(out) != "from-daemon-42" {
		t.Errorf("secret-tool lookup of a daemon-written item: %q %v", out, err)
	}

	store := k.Command(ctx, "secret-tool", "store", "--label", "made by secret-tool",
		"keychain-auth-service", "svc", "keychain-auth-target", "api/other")
	store.Stdin = strings.NewReader("from-secret-tool-7")
	if out, err := store.CombinedOutput(); err != nil {
		t.Fatalf("secret-tool store: %v %s", err, out)
	}
	r := e.one(client, req("read", "svc", []string{"api/other", "api/token"}))
	if got := values(r); got["api/other"] != "from-secret-tool-7" || got["api/token"] != "from-daemon-42" {
		t.Errorf("daemon read of secret-tool items: %v (%s)", got, r.Message)
	}
	if got := targets(e.one(client, req("search", "svc", nil))); strings.Join(got, ",") != "api/other,api/token" {
		t.Errorf("search: %v", got)
	}
	d.stop()

	k.Kill()
	again := e.spawn("--backend", "auto") // auto: the recorded choice must be used
	if code := again.wait(); code != 1 {
		t.Fatalf("start with the recorded keyring gone: exit %d, want 1\n%s", code, again.stderr)
	}
	msg := again.stderr.String()
	if !strings.Contains(msg, "secret-service") || !strings.Contains(msg, "--backend file") {
		t.Errorf("the failure should name the backend and how to switch deliberately:\n%s", msg)
	}
	if exists(e.storeFile()) {
		t.Error("a file store was created although the recorded backend is secret-service")
	}
}
