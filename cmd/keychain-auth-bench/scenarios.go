package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type bench struct {
	opts     options
	socket   string
	daemon   *daemon // nil with --socket
	progress io.Writer
	rows     []row
}

const (
	checkLine = `{"type":"REQUEST","action":"check"}`
	readLine  = `{"type":"REQUEST","action":"read","service":"bench","targets":["t000"]}`
)

func target(i int) string { return fmt.Sprintf("t%03d", i) }

func batchLine(action string, n int, values bool) string {
	var t, v []string
	for i := range n {
		t = append(t, `"`+target(i)+`"`)
		v = append(v, `"value-`+target(i)+`"`)
	}
	line := `{"type":"REQUEST","action":"` + action + `","service":"bench","targets":[` + strings.Join(t, ",") + `]`
	if values {
		line += `,"values":[` + strings.Join(v, ",") + `]`
	}
	return line + "}"
}

// conn is one client connection speaking raw protocol lines.
type conn struct {
	nc net.Conn
	r  *bufio.Reader
}

func dial(socket string) (*conn, error) {
	var (
		nc  net.Conn
		err error
	)
	// A flood can fill the listen backlog; the kernel then refuses with
	// EAGAIN, which a client retries.
	for try := 0; try < 200; try++ {
		if nc, err = net.Dial("unix", socket); err == nil {
			return &conn{nc: nc, r: bufio.NewReaderSize(nc, 1<<16)}, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, err
}

func (c *conn) roundTrip(line string) (string, error) {
	if _, err := io.WriteString(c.nc, line+"\n"); err != nil {
		return "", err
	}
	return c.r.ReadString('\n')
}

// pipeline sends line n times without waiting and reads the n replies,
// failing on the first reply that is not a success.
func (c *conn) pipeline(line string, n int) error {
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(c.nc, 1<<16)
		for range n {
			if _, err := w.WriteString(line + "\n"); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	// The checks allocate nothing, so the client does not limit the rate.
	echoed, success := []byte(line+"\n"), []byte(`"status":"success"`)
	for i := range n {
		resp, err := c.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reply %d of %d: %w", i+1, n, err)
		}
		if !bytes.Equal(resp, echoed) && !bytes.Contains(resp, success) {
			return fmt.Errorf("reply %d of %d: %s", i+1, n, resp)
		}
	}
	return <-errc
}

func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.progress, "keychain-auth-bench: "+format+"\n", args...)
}

func (b *bench) add(scenario string, value float64, unit, note string) {
	b.rows = append(b.rows, row{Scenario: scenario, Value: value, Unit: unit, Note: note})
}

func (b *bench) fail(scenario string, err error) {
	b.say("%s: %v", scenario, err)
	b.rows = append(b.rows, row{Scenario: scenario, Unit: "error", Note: err.Error()})
}

func (b *bench) iters(full, quick int) int {
	if b.opts.quick {
		return quick
	}
	return full
}

// prepare stores 100 secrets t000..t099 in the service "bench".
func (b *bench) prepare(ctx context.Context) error {
	c, err := dial(b.socket)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	resp, err := c.roundTrip(batchLine("write", 100, true))
	if err != nil || !strings.Contains(resp, `"success"`) {
		return fmt.Errorf("store 100 bench secrets: %v %s (is this binary registered with --read bench --write bench --search?)", err, resp)
	}
	return ctx.Err()
}

func (b *bench) runAll(ctx context.Context) []row {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"latency", b.latency},
		{"throughput", b.throughput},
		{"batch", b.batch},
		{"connect", b.connectSetup},
		{"flood", b.flood},
		{"unregistered callers", b.unregistered},
		{"attestation", b.coldAttest},
		{"secret service", b.secretService},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		b.say("%s ...", s.name)
		if err := s.run(ctx); err != nil {
			b.fail(s.name, err)
		}
	}
	return b.rows
}

func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func (b *bench) latency(ctx context.Context) error {
	c, err := dial(b.socket)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	n := b.iters(3000, 300)
	d := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		resp, err := c.roundTrip(readLine)
		if err != nil || !strings.Contains(resp, `"success"`) {
			return fmt.Errorf("read: %v %s", err, resp)
		}
		d = append(d, time.Since(start))
		if ctx.Err() != nil {
			break
		}
	}
	b.add("single read latency p50", micros(percentile(d, 0.50)), "µs", fmt.Sprintf("%d sequential reads, one connection", len(d)))
	b.add("single read latency p99", micros(percentile(d, 0.99)), "µs", "")
	return nil
}

// echoServer is the transport's own limit: a Unix-socket server that
// sends each line back, doing nothing else, and writes when it has read
// all that was there (as the daemon does).
func echoServer(dir string) (string, func(), error) {
	path := filepath.Join(dir, "echo.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r := bufio.NewReaderSize(nc, 1<<16)
				w := bufio.NewWriterSize(nc, 1<<16)
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						return
					}
					w.Write(line)
					if r.Buffered() == 0 && w.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return path, func() { l.Close() }, nil
}

// rate runs n pipelined requests spread over conns connections and
// returns requests per second.
func rate(socket, line string, conns, n int) (float64, error) {
	cs := make([]*conn, conns)
	for i := range cs {
		c, err := dial(socket)
		if err != nil {
			return 0, err
		}
		defer c.nc.Close()
		cs[i] = c
	}
	per := n / conns
	var wg sync.WaitGroup
	errs := make([]error, conns)
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.pipeline(line, per)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(per*conns) / elapsed.Seconds(), nil
}

func (b *bench) throughput(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "kab-echo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	echo, stop, err := echoServer(dir)
	if err != nil {
		return err
	}
	defer stop()
	n := b.iters(100000, 10000)
	echoRate, err := rate(echo, readLine, 1, 20*n)
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	one, err := rate(b.socket, readLine, 1, n)
	if err != nil {
		return err
	}
	b.add("raw Unix-socket line echo, 1 connection", echoRate, "lines/s", "the transport's own limit, same machine and run")
	b.add("pipelined reads, 1 connection", one, "reads/s", fmt.Sprintf("%.2f%% of the echo rate", 100*one/echoRate))
	for _, conns := range []int{1, 8, 64, 256} {
		if ctx.Err() != nil {
			return nil
		}
		r, err := rate(b.socket, readLine, conns, max(n, conns*100))
		if err != nil {
			return fmt.Errorf("%d connections: %w", conns, err)
		}
		b.add(fmt.Sprintf("total reads, %d connections", conns), r, "reads/s", "pipelined, all at once")
	}
	return nil
}

func (b *bench) batch(ctx context.Context) error {
	c, err := dial(b.socket)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	n := b.iters(300, 30)
	line := batchLine("read", 100, false)
	start := time.Now()
	for range n {
		if resp, err := c.roundTrip(line); err != nil || !strings.Contains(resp, `"success"`) {
			return fmt.Errorf("batch read: %v", err)
		}
	}
	batch := time.Since(start) / time.Duration(n)
	start = time.Now()
	for range n {
		for i := range 100 {
			l := `{"type":"REQUEST","action":"read","service":"bench","targets":["` + target(i) + `"]}`
			if resp, err := c.roundTrip(l); err != nil || !strings.Contains(resp, `"success"`) {
				return fmt.Errorf("single read: %v", err)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	singles := time.Since(start) / time.Duration(n)
	b.add("100-target batch read", micros(batch), "µs", "one request")
	b.add("100 single reads, one after another", micros(singles), "µs", fmt.Sprintf("%.1f× the batch", float64(singles)/float64(batch)))
	return nil
}

func (b *bench) connectSetup(ctx context.Context) error {
	n := b.iters(1000, 100)
	d := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		c, err := dial(b.socket)
		if err != nil {
			return err
		}
		resp, err := c.roundTrip(checkLine)
		c.nc.Close()
		if err != nil || !strings.Contains(resp, `"success"`) {
			return fmt.Errorf("check: %v %s", err, resp)
		}
		d = append(d, time.Since(start))
		if ctx.Err() != nil {
			break
		}
	}
	b.add("connect + verify + check p50", micros(percentile(d, 0.50)), "µs", "warm: the image hash is cached")
	b.add("connect + verify + check p99", micros(percentile(d, 0.99)), "µs", "")
	return nil
}

// flood holds opts.conns connections from this one process (one uid); the
// daemon serves up to its per-uid cap and refuses the rest.
func (b *bench) flood(ctx context.Context) error {
	n := b.opts.conns
	var (
		mu                  sync.Mutex
		served, limited, ko int
		held                []*conn
		wg                  sync.WaitGroup
	)
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(b.socket)
			if err != nil {
				mu.Lock()
				ko++
				mu.Unlock()
				return
			}
			c.nc.SetDeadline(time.Now().Add(60 * time.Second))
			resp, err := c.roundTrip(checkLine)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && strings.Contains(resp, `"success"`):
				served++
				held = append(held, c)
				return
			case err == nil && strings.Contains(resp, `"rate_limited"`):
				limited++
			default:
				ko++
			}
			c.nc.Close()
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range held {
			c.nc.Close()
		}
	}()
	b.add(fmt.Sprintf("%d connections held: served", n), float64(served), "conns", "")
	b.add(fmt.Sprintf("%d connections held: refused rate_limited", n), float64(limited), "conns", "")
	if ko > 0 {
		b.add(fmt.Sprintf("%d connections held: other outcome", n), float64(ko), "conns", "connect failed or an unexpected reply")
	}
	if b.daemon == nil {
		return nil
	}
	pid := b.daemon.pid()
	if rss, err := procStatusKB(pid, "VmRSS"); err == nil {
		b.add("daemon RSS while holding them", float64(rss)/1024, "MiB", "")
	} else {
		b.fail("daemon RSS", err)
	}
	if hwm, err := procStatusKB(pid, "VmHWM"); err == nil {
		b.add("daemon peak RSS (VmHWM) so far", float64(hwm)/1024, "MiB", "since the daemon started")
	} else {
		b.fail("daemon peak RSS", err)
	}
	// The daemon is non-dumpable, so /proc/<pid>/fd is root's.
	if fds, err := fdCount(pid); err == nil {
		b.add("daemon open descriptors", float64(fds), "fds", "")
	} else {
		b.add("daemon open descriptors", 0, "skipped", "needs root (the daemon is non-dumpable)")
	}
	return ctx.Err()
}

// coldAttest times the daemon hashing a large image it has never seen (a
// copy of this binary padded to --attest-mb) against sha256sum and openssl
// over the same file, all with the file in the page cache.
func (b *bench) coldAttest(ctx context.Context) error {
	if b.opts.attestMB <= 0 {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	img, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kab-img-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = f.Write(img)
	// Random padding: a file the page cache and the hash must really read.
	pad := make([]byte, 1<<20)
	for size := int64(len(img)); err == nil && size < int64(b.opts.attestMB)<<20; size += int64(len(pad)) {
		rand.Read(pad)
		_, err = f.Write(pad)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	timeCmd := func(name string, args ...string) (time.Duration, error) {
		start := time.Now()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), asClient+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s: %v %s", name, err, out)
		}
		return time.Since(start), nil
	}
	// Warm the page cache so all three read memory, not the disk.
	if _, err := timeCmd("cat", path); err != nil {
		return err
	}
	daemonT, err := timeCmd(path, b.socket)
	if err != nil {
		return err
	}
	b.add(fmt.Sprintf("cold attestation of a %d MiB image", b.opts.attestMB), float64(daemonT.Milliseconds()), "ms", "process start to the daemon's answer")
	for _, tool := range [][]string{{"sha256sum", path}, {"openssl", "dgst", "-sha256", path}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			b.add(tool[0], 0, "skipped", "not installed")
			continue
		}
		t, err := timeCmd(tool[0], tool[1:]...)
		if err != nil {
			return err
		}
		b.add(strings.Join(tool[:len(tool)-1], " ")+" of the same file", float64(t.Milliseconds()), "ms",
			fmt.Sprintf("daemon takes %.2f× its time", float64(daemonT)/float64(t)))
	}
	return nil
}

// oneShot is the client a large image runs as: one check, print the reply.
// An unregistered image gets a denial, after the daemon hashed all of it.
//
// With "read n" (or "read-served n") after the socket it connects n times
// in a row instead, each time with one read (readLoop).
func oneShot(args []string) int {
	if len(args) == 3 && (args[1] == "read" || args[1] == "read-served") {
		if n, err := strconv.Atoi(args[2]); err == nil && n > 0 {
			return readLoop(args[0], n, args[1] == "read-served")
		}
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: (as client) <socket> [read|read-served <n>]")
		return 2
	}
	c, err := dial(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.nc.Close()
	resp, err := c.roundTrip(checkLine)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(resp)
	return 0
}
