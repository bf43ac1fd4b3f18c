package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The tool is run as users run it: built, then started with --quick. Every
// scenario must produce its figures and none may end in an error; the
// flood must see the daemon's per-uid cap, and pending.json every
// unregistered caller.
func TestQuickRunProducesEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds and runs the benchmark tool (about 15 s)")
	}
	bin := filepath.Join(t.TempDir(), "keychain-auth-bench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--quick", "--json", "--attest-mb", "16", "--conns", "300")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keychain-auth-bench: %v\n%s", err, stderr.String())
	}
	var rows []row
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	got := map[string]row{}
	for _, r := range rows {
		if r.Unit == "error" {
			t.Errorf("scenario %s failed: %s\n%s", r.Scenario, r.Note, stderr.String())
		}
		got[r.Scenario] = r
	}
	for _, want := range []string{
		"single read latency p50", "raw Unix-socket line echo, 1 connection", "pipelined reads, 1 connection",
		"total reads, 256 connections", "100-target batch read", "connect + verify + check p99",
		"daemon RSS while holding them", "cold attestation of a 16 MiB image",
		"20 unregistered binaries: start to refusal p50", "20 unregistered binaries: daemon RSS after",
		"1 unregistered binary retrying, 200 connections", "registered binary, the same 200 connections",
		"registered pipelined reads, no other load", "registered pipelined reads, during the retry loop",
		"registered pipelined reads, during a registered loop", "5 more, pending.json full: start to refusal p50",
	} {
		if r, ok := got[want]; !ok || r.Value <= 0 {
			t.Errorf("no figure for %q (%+v)", want, r)
		}
	}
	if got["300 connections held: served"].Value != 256 || got["300 connections held: refused rate_limited"].Value != 44 {
		t.Errorf("flood of 300: served %v, refused %v; want 256 and 44 (the per-uid cap)",
			got["300 connections held: served"].Value, got["300 connections held: refused rate_limited"].Value)
	}
	// Every unregistered caller is in pending.json before its refusal; the
	// retrying one's attempts are all counted within about a second; the
	// file stays at its cap.
	for name, want := range map[string]float64{
		"20 unregistered binaries: pending.json records":  20,
		"retrying: its count in pending.json":             200,
		"5 more, pending.json full: pending.json records": 1000,
	} {
		if r := got[name]; r.Value != want {
			t.Errorf("%s: %v (%s), want %v", name, r.Value, r.Note, want)
		}
	}
	if os.Getenv("CI") == "true" {
		if r := got["Secret Service: 100-secret batch through the daemon"]; r.Value <= 0 {
			t.Errorf("the Secret Service comparison did not run in CI: %+v", r)
		}
	}
}
