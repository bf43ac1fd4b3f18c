package cli_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/The-17/keychain-auth/internal/cli"
	"github.com/The-17/keychain-auth/internal/config"
)

// TestMain lets the scripts run `keychain-auth` as a real process: the test
// binary re-executes itself under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"keychain-auth": func() { os.Exit(cli.Main(os.Args)) },
	})
}

// TestScripts runs the command-line scenarios in testdata/script. Each gets
// a private HOME; $CFG is its keychain-auth config directory and $SOCK the
// daemon socket the commands look for.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("..", "..", "testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			run := filepath.Join(env.WorkDir, "run")
			for _, d := range []string{home, run} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			// A race-enabled binary otherwise sleeps a second at exit, and
			// the scripts run it hundreds of times.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			env.Setenv("HOME", home)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local", "share"))
			env.Setenv("XDG_RUNTIME_DIR", run)
			env.Setenv("KEYCHAIN_AUTH_SYSTEM_ROOT", filepath.Join(env.WorkDir, "sysroot"))
			env.Setenv("CFG", filepath.Join(home, ".config", "keychain-auth"))
			env.Setenv("SOCK", filepath.Join(run, "keychain-auth", "agent.sock"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkpending": cmdMkpending,
			"hashof":    cmdHashof,
			"jsonkeys":  cmdJSONKeys,
			"jsonlen":   cmdJSONLen,
			"listen":    cmdListen,
			"exitcode":  cmdExitcode,
		},
	})
}

// mkpending [-age DURATION] <hash> <path> [arg...] queues a binary as the
// daemon would after turning it away, DURATION ago (default now).
func cmdMkpending(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! mkpending")
	}
	now := time.Now()
	if len(args) >= 2 && args[0] == "-age" {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		now = now.Add(-d)
		args = args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: mkpending [-age DURATION] <hash> <path> [arg...]")
	}
	file := filepath.Join(ts.Getenv("CFG"), "pending.json")
	rec := config.PendingRecord{Hash: args[0], Path: args[1], CommandLine: args[1:], PID: 4242, PPID: 1,
		ParentPath: "/usr/bin/bash", Cwd: ts.Getenv("WORK")}
	ts.Check(config.RecordPending(context.Background(), file, rec, now))
}

// hashof <file> <VAR> sets $VAR to the file's "sha256:<hex>", $VAR_HEX to
// the bare hex and $VAR_PREFIX to its first 10 digits.
func cmdHashof(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: hashof <file> <VAR>")
	}
	sum := sha256.Sum256([]byte(ts.ReadFile(args[0])))
	h := hex.EncodeToString(sum[:])
	ts.Setenv(args[1], "sha256:"+h)
	ts.Setenv(args[1]+"_HEX", h)
	ts.Setenv(args[1]+"_PREFIX", h[:10])
}

// jsonkeys <object|each|N> key[=value]... parses stdout as one JSON document
// and checks that the object (each element of the array, or element N)
// has every key, and where given, that the value prints as value.
func cmdJSONKeys(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: jsonkeys <object|each|N> key[=value]...")
	}
	var doc any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &doc); err != nil {
		ts.Fatalf("stdout is not one JSON document: %v", err)
	}
	var objs []any
	switch args[0] {
	case "object":
		objs = []any{doc}
	case "each":
		arr, ok := doc.([]any)
		if !ok {
			ts.Fatalf("stdout is not a JSON array")
		}
		objs = arr
	default:
		n, err := strconv.Atoi(args[0])
		ts.Check(err)
		arr, ok := doc.([]any)
		if !ok || n >= len(arr) {
			ts.Fatalf("stdout has no array element %d", n)
		}
		objs = []any{arr[n]}
	}
	failed := ""
	for _, o := range objs {
		m, ok := o.(map[string]any)
		if !ok {
			ts.Fatalf("%v is not a JSON object", o)
		}
		for _, kv := range args[1:] {
			key, want, hasWant := strings.Cut(kv, "=")
			v, present := m[key]
			switch {
			case !present:
				failed = fmt.Sprintf("key %q is missing", key)
			case hasWant && jsonText(v) != want:
				failed = fmt.Sprintf("key %q is %s, want %s", key, jsonText(v), want)
			}
		}
	}
	switch {
	case failed != "" && !neg:
		ts.Fatalf("%s", failed)
	case failed == "" && neg:
		ts.Fatalf("all keys matched")
	}
}

// jsonText prints a decoded JSON value for comparison: strings bare, the
// rest as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonlen <n> checks that stdout is a JSON array of n elements.
func cmdJSONLen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: jsonlen <n>")
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &arr); err != nil {
		ts.Fatalf("stdout is not a JSON array: %v", err)
	}
	if strconv.Itoa(len(arr)) != args[0] {
		ts.Fatalf("stdout has %d elements, want %s", len(arr), args[0])
	}
}

// listen <socket> stands in for a daemon: it accepts connections on a Unix
// socket and hangs up, until the script ends.
func cmdListen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: listen <socket>")
	}
	ts.Check(os.MkdirAll(filepath.Dir(args[0]), 0o700))
	ln, err := net.Listen("unix", args[0])
	ts.Check(err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ts.Defer(func() { ln.Close() })
}

// exitcode <n> <command> [arg...] runs the command like exec and requires
// exit code n: the scripts tell usage errors (2) from failures (1).
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode <n> <command> [arg...]")
	}
	err := ts.Exec(args[1], args[2:]...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		ts.Fatalf("run %s: %v", args[1], err)
	}
	if strconv.Itoa(code) != args[0] {
		ts.Fatalf("%s exited with %d, want %s", args[1], code, args[0])
	}
}
