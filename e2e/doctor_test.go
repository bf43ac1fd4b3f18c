//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doctorFinding struct {
	Check, Severity, Subject, Detail, Fix string
}

type doctorOut struct {
	Healthy  bool
	Problems int
	Findings []doctorFinding
}

func (e *env) doctor(t *testing.T) (doctorOut, int) {
	t.Helper()
	out, errOut, code := e.ka("doctor", "--json")
	var r doctorOut
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json is not one JSON object: %v\n%s\n%s", err, out, errOut)
	}
	return r, code
}

// find returns the findings of a check whose subject contains subject.
func (r doctorOut) find(check, subject string) []doctorFinding {
	var out []doctorFinding
	for _, f := range r.Findings {
		if f.Check == check && strings.Contains(f.Subject, subject) {
			out = append(out, f)
		}
	}
	return out
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustKA("register", client, "--read", "svc", "--write", "svc")
	e.start()
	wantOK := func(r doctorOut, check string) {
		t.Helper()
		fs := r.find(check, "")
		if len(fs) == 0 {
			t.Errorf("doctor did not check %s", check)
		}
		for _, f := range fs {
			if f.Severity != "ok" {
				t.Errorf("%s: %s %s: %s", check, f.Severity, f.Subject, f.Detail)
			}
		}
	}
	r, code := e.doctor(t)
	if code != 0 || !r.Healthy || r.Problems != 0 {
		t.Fatalf("healthy setup: exit %d, %+v", code, r)
	}
	for _, c := range []string{"daemon", "socket-dir", "config", "audit", "backend", "registered", "pending", "audit-chain"} {
		wantOK(r, c)
	}
	if f := r.find("daemon", e.socket); len(f) != 1 {
		t.Errorf("doctor does not name the socket the daemon answers on: %+v", r.find("daemon", ""))
	}
	// The text form says the same, and exits 0.
	out, _, code := e.ka("doctor")
	if code != 0 || !strings.Contains(out, "0 problems") {
		t.Errorf("doctor (text): exit %d\n%s", code, out)
	}
}

func TestDoctorBroken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	changed, gone := filepath.Join(dir, "changed"), filepath.Join(dir, "gone")
	copyFile(t, client, changed)
	copyFile(t, client, gone)
	e.mustKA("register", changed, "--read", "svc")
	e.mustKA("register", gone, "--read", "*")
	d := e.start()
	e.call(client2, req("read", "svc", []string{"k"})) // queued for approval
	d.stop()
	copyFile(t, client2, changed) // rebuilt
	os.Remove(gone)
	// An audit record altered after the fact.
	audit := e.path(".local", "share", "keychain-auth", "audit.log")
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(audit, bytes.Replace(b, []byte(`"svc"`), []byte(`"svX"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(e.pendingFile(), 0o644)

	r, code := e.doctor(t)
	if code != 1 || r.Healthy {
		t.Fatalf("broken setup: exit %d, healthy=%v", code, r.Healthy)
	}
	want := []struct{ check, subject, severity, fix string }{
		{"daemon", e.socket, "problem", "keychain-auth start"},
		{"registered", changed, "problem", "keychain-auth upgrade " + changed},
		{"registered", gone, "problem", "keychain-auth unregister sha256:"},
		{"wildcard", gone, "warning", "revoke"},
		{"pending", e.pendingFile(), "problem", "chmod 0600"},
		{"pending", e.pendingFile(), "warning", "list-pending"},
		{"audit-chain", audit, "problem", "audit --verify"},
	}
	for _, w := range want {
		found := false
		for _, f := range r.find(w.check, w.subject) {
			if f.Severity == w.severity && strings.Contains(f.Fix, w.fix) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s %s finding on %s with a fix containing %q; got %+v", w.severity, w.check, w.subject, w.fix, r.find(w.check, ""))
		}
	}
	if strings.Contains(r.find("registered", changed)[0].Detail, "svc") {
		t.Error("doctor printed policy in place of the file's state")
	}
	out, errOut, code := e.ka("doctor")
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.HasPrefix(errOut, "keychain-auth: doctor found ") {
		t.Errorf("doctor (text): exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, passphrase) {
		t.Error("doctor printed the passphrase")
	}
}
