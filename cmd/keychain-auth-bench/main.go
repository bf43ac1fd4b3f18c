// Command keychain-auth-bench measures a keychain-auth daemon from outside,
// the way clients see it, and prints a table (or JSON with --json).
//
// By default it starts its own daemon (itself, re-executed as the
// keychain-auth command line, so the daemon is the same code) in a
// temporary HOME with the file store and the audit log on, registers itself
// for the service "bench", and runs every scenario against it over
// loopback Unix sockets only. Every scenario is bounded in count and in
// time. It is a developer tool: the daemon binary does not contain it.
//
//	go run ./cmd/keychain-auth-bench [--json] [--quick] [--attest-mb N] [--conns N]
//
// With --socket it measures a daemon that is already running instead; this
// binary must then be registered there with --read bench --write bench
// --search. The unregistered-callers scenario is skipped then: it would fill
// that daemon's pending.json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/The-17/keychain-auth/internal/cli"
)

// asCLI, set in the environment, makes this binary behave as keychain-auth
// itself: that is how it starts its daemon and registers itself.
const asCLI = "KEYCHAIN_AUTH_BENCH_AS_CLI"

// asClient makes it a one-shot client (connect, one check request, print
// the reply): the cold-attestation scenario runs a large copy of itself so.
// The unregistered-callers scenario runs copies of itself as clients that
// connect n times in a row with one read each (oneShot, readLoop).
const asClient = "KEYCHAIN_AUTH_BENCH_AS_CLIENT"

type options struct {
	socket   string
	json     bool
	quick    bool
	attestMB int
	conns    int
	timeout  time.Duration
}

func main() {
	// The daemon runs its own image again, with an empty environment, to
	// derive the file store's key: that child is the CLI too.
	if os.Getenv(asCLI) == "1" || len(os.Args) == 2 && os.Args[1] == "derive-key" {
		os.Exit(cli.Main(os.Args))
	}
	if os.Getenv(asClient) == "1" {
		os.Exit(oneShot(os.Args[1:]))
	}
	if os.Getenv(asSSInner) == "1" {
		os.Exit(secretServiceInner())
	}
	var o options
	flag.StringVar(&o.socket, "socket", "", "measure the daemon on this socket instead of starting one")
	flag.BoolVar(&o.json, "json", false, "print one JSON document instead of a table")
	flag.BoolVar(&o.quick, "quick", false, "fewer iterations (for a smoke run)")
	flag.IntVar(&o.attestMB, "attest-mb", 300, "size of the image for the cold-attestation scenario, in MiB (0 skips it)")
	flag.IntVar(&o.conns, "conns", 1000, "connections held at once in the connection-flood scenario")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "stop after this long")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: keychain-auth-bench [flags]\n\n"+
			"Measures a keychain-auth daemon over its local socket (latency, pipelined and\n"+
			"concurrent reads against a raw echo server, batches, connection set-up, a\n"+
			"connection flood with the daemon's memory, unregistered callers (pending.json,\n"+
			"a retry loop, its effect on a registered client), cold attestation against\n"+
			"sha256sum and openssl). Starts its own daemon in a temporary HOME unless\n"+
			"--socket is given.\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "keychain-auth-bench:", err)
		os.Exit(1)
	}
}

func run(o options, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	b := &bench{opts: o, progress: progress}
	if o.socket == "" {
		d, err := startDaemon(ctx, "file")
		if err != nil {
			return err
		}
		defer d.stop()
		b.daemon = d
		b.socket = d.socket
	} else {
		b.socket = o.socket
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	rows := b.runAll(ctx)
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	printTable(out, rows)
	if ctx.Err() != nil {
		return errors.New("stopped at --timeout; the table holds what finished")
	}
	return nil
}

// row is one measured figure.
type row struct {
	Scenario string  `json:"scenario"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Note     string  `json:"note,omitempty"`
}

func printTable(w io.Writer, rows []row) {
	width := len("scenario")
	for _, r := range rows {
		width = max(width, len(r.Scenario))
	}
	fmt.Fprintf(w, "%-*s  %14s  %-10s  %s\n", width, "scenario", "value", "unit", "note")
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", width+2+14+2+10+2+20))
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %14s  %-10s  %s\n", width, r.Scenario, formatValue(r.Value), r.Unit, r.Note)
	}
}

func formatValue(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
