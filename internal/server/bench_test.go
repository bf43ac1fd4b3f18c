package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
	"github.com/The-17/keychain-auth/protocol"
)

// benchServer runs the daemon over a real socket with the encrypted file
// store holding n secrets in service "svc".
func benchServer(b *testing.B, n int, tweak ...func(*Options)) *testServer {
	b.Helper()
	st, err := file.OpenWithParams(context.Background(), backend.Options{
		Path: filepath.Join(b.TempDir(), "keyring.json"), Passphrase: []byte("bench"), Create: true,
	}, file.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	items := make([]backend.Item, n)
	for i := range items {
		items[i] = backend.Item{Target: fmt.Sprintf("t%03d", i), Value: []byte(fmt.Sprintf("value-%03d-0123456789abcdef", i))}
	}
	if err := st.Set(context.Background(), "svc", items); err != nil {
		b.Fatal(err)
	}
	return startServer(b, st, &grant{read: []string{"svc"}}, tweak...)
}

// BenchmarkReadLatency: one single-target read, request to reply.
func BenchmarkReadLatency(b *testing.B) {
	ts := benchServer(b, 1)
	c := ts.dial(b)
	line := readReq("svc", "t000")
	c.roundTrip(line) // connect-time verification is not part of the figure
	b.ResetTimer()
	for b.Loop() {
		if r := c.roundTrip(line); r.Status != protocol.StatusSuccess {
			b.Fatal(r.Message)
		}
	}
}

// BenchmarkReadPipelined: single-target reads sent back to back on one
// connection, replies read concurrently; reports reads/s.
func BenchmarkReadPipelined(b *testing.B) {
	pipelinedReads(b, benchServer(b, 1))
}

// BenchmarkReadPipelinedAudit is BenchmarkReadPipelined with every request
// recorded in a real audit log on disk: the difference is what auditing
// costs per request.
func BenchmarkReadPipelinedAudit(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Options{SyncInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	pipelinedReads(b, benchServer(b, 1, func(o *Options) { o.Audit = l }))
}

func pipelinedReads(b *testing.B, ts *testServer) {
	c := ts.dial(b)
	line := []byte(readReq("svc", "t000") + "\n")
	c.roundTrip(string(line[:len(line)-1]))
	b.ResetTimer()
	// The client writes through a buffer and checks replies without
	// decoding them, as keychain-auth-bench does, so that it is not what
	// limits the rate.
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(c.nc, 1<<16)
		for i := 0; i < b.N; i++ {
			if _, err := w.Write(line); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	success := []byte(`"status":"success"`)
	for i := 0; i < b.N; i++ {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(l, success) {
			b.Fatalf("reply %d: %s", i, l)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkBatch100 compares one 100-target read with 100 single reads.
func BenchmarkBatch100(b *testing.B) {
	targets := make([]string, 100)
	for i := range targets {
		targets[i] = fmt.Sprintf("t%03d", i)
	}
	b.Run("one-request", func(b *testing.B) {
		ts := benchServer(b, 100)
		c := ts.dial(b)
		line := readReq("svc", targets...)
		for b.Loop() {
			if r := c.roundTrip(line); len(r.Results) != 100 {
				b.Fatalf("got %d results", len(r.Results))
			}
		}
	})
	b.Run("100-requests", func(b *testing.B) {
		ts := benchServer(b, 100)
		c := ts.dial(b)
		for b.Loop() {
			for _, t := range targets {
				if r := c.roundTrip(readReq("svc", t)); len(r.Results) != 1 {
					b.Fatal(r.Message)
				}
			}
		}
	})
}
