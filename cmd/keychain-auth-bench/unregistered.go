package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/fsx"
)

// unregistered measures what callers the daemon does not know cost it: each
// unregistered binary is hashed (cold, once per image) and, before its
// refusal goes out, recorded in pending.json (a locked read-modify-write,
// fsynced; a binary retrying is written at most once a second). The callers
// are copies of this binary with a few distinct bytes appended, so each
// hashes differently and still runs; a copy is written just before it runs
// and removed after, so the disk holds one at a time.
//
// It needs the bench's own daemon: against --socket it would fill the real
// daemon's pending.json with junk records.
func (b *bench) unregistered(ctx context.Context) error {
	if b.daemon == nil {
		b.add("unregistered callers", 0, "skipped", "needs the bench's own daemon (it would fill the real pending.json)")
		return nil
	}
	u, err := newUnregImages()
	if err != nil {
		return err
	}
	defer os.RemoveAll(u.dir)
	parts := []struct {
		name string
		run  func(context.Context, *unregImages) error
	}{
		{"unregistered callers: distinct binaries, one request each", b.unregDistinct},
		{"unregistered callers: one binary retrying", b.unregRetry},
		{"unregistered callers: retrying while a registered client reads", b.unregContention},
		{"unregistered callers: distinct binaries, pending.json full", b.unregFull},
	}
	for _, p := range parts {
		if ctx.Err() != nil {
			break
		}
		b.say("%s ...", p.name)
		// At --timeout a part reports what finished, or nothing; run
		// says the table is cut short.
		if err := p.run(ctx, u); err != nil && ctx.Err() == nil {
			b.fail(p.name, err)
		}
	}
	return nil
}

// unregImages writes unregistered copies of this binary.
type unregImages struct {
	dir, tag string
	image    []byte
	// retry is the copy the retry loop and the contention run use.
	retry string
}

func newUnregImages() (*unregImages, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	img, err := os.ReadFile(self)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kab-unreg-")
	if err != nil {
		return nil, err
	}
	tag := make([]byte, 8)
	rand.Read(tag)
	return &unregImages{dir: dir, tag: hex.EncodeToString(tag), image: img}, nil
}

// write makes the copy name: this image, then a line naming it (an ELF file
// runs with bytes after its end). It returns the copy's path and hash.
func (u *unregImages) write(name string) (string, string, error) {
	path := filepath.Join(u.dir, name)
	suffix := []byte("\nkeychain-auth-bench unregistered " + u.tag + " " + name + "\n")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return "", "", err
	}
	_, err = f.Write(u.image)
	if err == nil {
		_, err = f.Write(suffix)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", "", err
	}
	h := sha256.New()
	h.Write(u.image)
	h.Write(suffix)
	return path, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// loopClient is a copy of this binary running as a client that connects n
// times in a row, each time with one read request (readLoop): an
// unregistered copy expecting each to be refused, or this registered
// binary itself expecting each to be served.
type loopClient struct {
	cmd     *exec.Cmd
	started time.Time
	lines   chan string
	stderr  *lockedBuffer
}

func startRefuser(ctx context.Context, path, socket string, n int) (*loopClient, error) {
	return startReadLoop(ctx, path, socket, "read", n)
}

// startReadLoop starts path as a readLoop client; mode is "read"
// (expect refusals) or "read-served".
func startReadLoop(ctx context.Context, path, socket, mode string, n int) (*loopClient, error) {
	r := &loopClient{lines: make(chan string, 4), stderr: &lockedBuffer{}}
	r.cmd = exec.CommandContext(ctx, path, socket, mode, strconv.Itoa(n))
	r.cmd.Env = append(os.Environ(), asClient+"=1")
	r.cmd.Stderr = r.stderr
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// A copy just written can be busy for exec(2) while another fork of
	// this process still holds its descriptor (golang.org/issue/22315).
	for try := 0; ; try++ {
		r.started = time.Now()
		err = r.cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		r.cmd = exec.CommandContext(ctx, path, socket, mode, strconv.Itoa(n))
		r.cmd.Env = append(os.Environ(), asClient+"=1")
		r.cmd.Stderr = r.stderr
		if out, err = r.cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(r.lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			r.lines <- s.Text()
		}
	}()
	return r, nil
}

// next returns the child's next line and when it arrived; ok is false once
// its output ended.
func (r *loopClient) next() (line string, at time.Time, ok bool) {
	line, ok = <-r.lines
	return line, time.Now(), ok
}

// wait reaps the child and returns an error (with its stderr) if it failed.
func (r *loopClient) wait() error {
	for range r.lines {
	}
	if err := r.cmd.Wait(); err != nil {
		return fmt.Errorf("client %s: %v\n%s", filepath.Base(r.cmd.Path), err, r.stderr)
	}
	return nil
}

// finish reads the child's "done <n> <ns>" line and reaps it: n refusals
// took ns inside the child.
func (r *loopClient) finish() (time.Duration, time.Time, error) {
	for {
		line, at, ok := r.next()
		if !ok {
			return 0, time.Time{}, r.wait()
		}
		var n int
		var ns int64
		if _, err := fmt.Sscanf(line, "done %d %d", &n, &ns); err == nil {
			return time.Duration(ns), at, r.wait()
		}
	}
}

// readLoop is the client of these scenarios: it connects n times in a row,
// sending one read request each time, and fails unless every reply is the
// unregistered_binary refusal (served false) or a success (served true). It
// prints "start" before the first connection and "done <n> <nanoseconds>"
// after the last reply.
func readLoop(socket string, n int, served bool) int {
	want := `"unregistered_binary"`
	if served {
		want = `"success"`
	}
	fmt.Println("start")
	start := time.Now()
	for i := range n {
		c, err := dial(socket)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connection %d: %v\n", i+1, err)
			return 1
		}
		c.nc.SetDeadline(time.Now().Add(30 * time.Second))
		resp, err := c.roundTrip(readLine)
		c.nc.Close()
		if err != nil || !strings.Contains(resp, want) {
			fmt.Fprintf(os.Stderr, "connection %d: want %s, got %v %s\n", i+1, want, err, resp)
			return 1
		}
	}
	fmt.Printf("done %d %d\n", n, time.Since(start).Nanoseconds())
	return 0
}

// distinctRun is what runDistinct measured.
type distinctRun struct {
	refused []time.Duration // per caller, process start to its refusal
	total   time.Duration   // process start to exit, summed
	cpu     time.Duration   // the daemon's, -1 if unknown
}

// runDistinct starts n distinct unregistered binaries one after another,
// each connecting once with one read request.
func (b *bench) runDistinct(ctx context.Context, u *unregImages, prefix string, n int) (distinctRun, error) {
	var run distinctRun
	cpu0, cpuErr := procCPU(b.daemon.pid())
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		path, _, err := u.write(fmt.Sprintf("%s-%03d", prefix, i))
		if err != nil {
			return run, err
		}
		r, err := startRefuser(ctx, path, b.socket, 1)
		if err != nil {
			os.Remove(path)
			return run, err
		}
		_, at, err := r.finish()
		exited := time.Since(r.started)
		os.Remove(path)
		if err != nil && ctx.Err() != nil {
			break // --timeout: the callers before this one count
		}
		if err != nil {
			return run, err
		}
		run.refused = append(run.refused, at.Sub(r.started))
		run.total += exited
	}
	cpu1, cpuErr1 := procCPU(b.daemon.pid())
	run.cpu = cpu1 - cpu0
	if cpuErr != nil || cpuErr1 != nil {
		run.cpu = -1
	}
	return run, nil
}

// addDistinct reports a runDistinct and pending.json after it.
func (b *bench) addDistinct(u *unregImages, label string, run distinctRun, before int) error {
	k := len(run.refused)
	b.add(label+": start to refusal p50", millis(percentile(run.refused, 0.50)), "ms",
		fmt.Sprintf("each a distinct %.1f MiB image, one read request: hashed cold, recorded, refused", float64(len(u.image))/(1<<20)))
	b.add(label+": start to refusal p99", millis(percentile(run.refused, 0.99)), "ms", "")
	b.add(label+": total", millis(run.total), "ms", "one after another, process start to exit, copies' writing excluded")
	if run.cpu >= 0 {
		b.add(label+": daemon CPU per caller", millis(run.cpu)/float64(k), "ms", "user+system, 10 ms ticks")
	}
	if rss, err := procStatusKB(b.daemon.pid(), "VmRSS"); err == nil {
		b.add(label+": daemon RSS after", float64(rss)/1024, "MiB", "")
	}
	recs, size, err := b.daemon.pendingRecords()
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d before", before)
	if want := min(before+k, config.MaxPending); len(recs) != want {
		note += fmt.Sprintf("; want %d", want)
	}
	b.add(label+": pending.json records", float64(len(recs)), "records", note)
	b.add(label+": pending.json size", float64(size)/1024, "KiB",
		fmt.Sprintf("%.0f bytes a record", float64(size)/float64(max(len(recs), 1))))
	return nil
}

// unregDistinct starts N distinct unregistered binaries one after another,
// each connecting once with one read request.
func (b *bench) unregDistinct(ctx context.Context, u *unregImages) error {
	before, _, err := b.daemon.pendingRecords()
	if err != nil {
		return err
	}
	run, err := b.runDistinct(ctx, u, "caller", b.iters(200, 20))
	if err != nil || len(run.refused) == 0 {
		return err
	}
	return b.addDistinct(u, fmt.Sprintf("%d unregistered binaries", len(run.refused)), run, len(before))
}

// unregFull is unregDistinct once pending.json is at its cap: this tool
// tops it up to config.MaxPending records (copies of the latest one, older
// than all, under the file's lock), so that each new binary's record also
// pushes the oldest out, as it would after a flood of that many.
func (b *bench) unregFull(ctx context.Context, u *unregImages) error {
	path := b.daemon.pendingPath()
	unlock, err := fsx.Lock(ctx, path)
	if err != nil {
		return err
	}
	recs, _, err := b.daemon.pendingRecords()
	if err == nil && len(recs) == 0 {
		err = errors.New("pending.json has no record to copy")
	}
	if err != nil {
		unlock()
		return err
	}
	oldest := recs[0].LastSeen
	for _, r := range recs {
		if r.LastSeen.Before(oldest) {
			oldest = r.LastSeen
		}
	}
	for i := len(recs); i < config.MaxPending; i++ {
		r := recs[0]
		sum := sha256.Sum256([]byte("keychain-auth-bench filler " + u.tag + " " + strconv.Itoa(i)))
		r.Hash = "sha256:" + hex.EncodeToString(sum[:])
		r.Path = fmt.Sprintf("%s-filler-%04d", r.Path, i)
		r.LastSeen = oldest.Add(-time.Duration(i) * time.Second)
		r.FirstSeen, r.Timestamp, r.Count = r.LastSeen, r.LastSeen, 1
		recs = append(recs, r)
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err == nil {
		err = fsx.WriteFile(path, append(data, '\n'), fsx.FileMode)
	}
	unlock()
	if err != nil {
		return err
	}
	run, err := b.runDistinct(ctx, u, "full", b.iters(20, 5))
	if err != nil || len(run.refused) == 0 {
		return err
	}
	return b.addDistinct(u, fmt.Sprintf("%d more, pending.json full", len(run.refused)), run, len(recs))
}

// unregRetry runs one unregistered binary that connects M times in a row,
// then waits (bounded) for the daemon to flush the attempts it counted
// without writing. For comparison, this registered binary runs the same
// loop, each read served.
func (b *bench) unregRetry(ctx context.Context, u *unregImages) error {
	m := b.iters(2000, 200)
	path, hash, err := u.write("retry")
	if err != nil {
		return err
	}
	u.retry = path
	refusedRate, refusedCPU, doneAt, err := b.loopCost(ctx, path, "read", m)
	if err != nil {
		return err
	}
	auditSize, auditOK := b.daemon.auditRecordSize("connect_denied")
	// The registered loop runs while the last attempts wait for their flush.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	servedRate, servedCPU, _, err := b.loopCost(ctx, self, "read-served", m)
	if err != nil {
		return err
	}
	// The attempts after the last write reach pending.json by the end of
	// that write's second.
	var (
		count, records, size int
		flushed              time.Duration
	)
	for {
		recs, sz, err := b.daemon.pendingRecords()
		if err != nil {
			return err
		}
		count, records, size = 0, 0, sz
		for _, rec := range recs {
			if rec.Hash == hash {
				records++
				count += rec.Count
			}
		}
		flushed = time.Since(doneAt)
		if count >= m || flushed > 3*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.add(fmt.Sprintf("1 unregistered binary retrying, %d connections", m), refusedRate, "refusals/s",
		"in a row from one process, one read each; the first hashed cold")
	if refusedCPU >= 0 {
		b.add("retrying: daemon CPU per refusal", micros(refusedCPU)/float64(m), "µs", "user+system, 10 ms ticks")
	}
	if auditOK {
		b.add("retrying: audit record per refusal", auditSize, "bytes", "each refusal is audited; the log keeps 6 files of 10 MiB")
	}
	note := fmt.Sprintf("of %d refusals, in %d record(s); ", m, records)
	if count == m {
		note += fmt.Sprintf("complete %.0f ms after the last refusal", millis(flushed))
	} else {
		note += fmt.Sprintf("still %d after %.1f s", count, flushed.Seconds())
	}
	b.add("retrying: its count in pending.json", float64(count), "refusals", note)
	b.add("retrying: pending.json size after", float64(size)/1024, "KiB", "")
	b.add(fmt.Sprintf("registered binary, the same %d connections", m), servedRate, "conns/s",
		"for comparison: this binary (registered), each read served")
	if servedCPU >= 0 {
		b.add("registered: daemon CPU per connection", micros(servedCPU)/float64(m), "µs", "user+system, 10 ms ticks")
	}
	return nil
}

// loopCost runs path as a readLoop client of n connections and returns its
// connections per second (timed inside the client), the daemon's CPU time
// over the run (-1 if unknown) and when the client reported its end.
func (b *bench) loopCost(ctx context.Context, path, mode string, n int) (float64, time.Duration, time.Time, error) {
	cpu0, cpuErr := procCPU(b.daemon.pid())
	r, err := startReadLoop(ctx, path, b.socket, mode, n)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	took, doneAt, err := r.finish()
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	cpu1, cpuErr1 := procCPU(b.daemon.pid())
	cpu := cpu1 - cpu0
	if cpuErr != nil || cpuErr1 != nil {
		cpu = -1
	}
	return float64(n) / took.Seconds(), cpu, doneAt, nil
}

// unregContention measures a registered client's pipelined reads on one
// connection alone, while the unregistered retry loop runs, while this
// registered binary runs the same loop (the control: as many connections,
// served), and alone again.
func (b *bench) unregContention(ctx context.Context, u *unregImages) error {
	if u.retry == "" {
		path, _, err := u.write("retry")
		if err != nil {
			return err
		}
		u.retry = path
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	m := b.iters(2000, 200)
	c, err := dial(b.socket)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	const batchReads = 1000
	readFor := func(stop func() bool) (float64, error) {
		reads, start := 0, time.Now()
		for !stop() && ctx.Err() == nil {
			if err := c.pipeline(readLine, batchReads); err != nil {
				return 0, err
			}
			reads += batchReads
		}
		return float64(reads) / time.Since(start).Seconds(), nil
	}
	window := time.Duration(b.iters(1000, 250)) * time.Millisecond
	alone := func() (float64, error) {
		end := time.Now().Add(window)
		return readFor(func() bool { return time.Now().After(end) })
	}
	// during reads while path runs its loop, and returns both rates.
	during := func(path, mode string) (reads, conns float64, err error) {
		r, err := startReadLoop(ctx, path, b.socket, mode, m)
		if err != nil {
			return 0, 0, err
		}
		if line, _, ok := r.next(); !ok || line != "start" {
			return 0, 0, errors.Join(fmt.Errorf("client printed %q, not start", line), r.wait())
		}
		done := make(chan struct{})
		var (
			took time.Duration
			ferr error
		)
		go func() {
			defer close(done)
			took, _, ferr = r.finish()
		}()
		reads, err = readFor(func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
		<-done
		if err = errors.Join(err, ferr); err != nil {
			return 0, 0, err
		}
		return reads, float64(m) / took.Seconds(), nil
	}
	before, err := alone()
	if err != nil {
		return err
	}
	floodReads, floodRate, err := during(u.retry, "read")
	if err != nil {
		return err
	}
	churnReads, churnRate, err := during(self, "read-served")
	if err != nil {
		return err
	}
	after, err := alone()
	if err != nil {
		return err
	}
	without := (before + after) / 2
	b.add("registered pipelined reads, no other load", without, "reads/s",
		fmt.Sprintf("1 connection; mean of before (%.0f) and after (%.0f)", before, after))
	b.add("registered pipelined reads, during the retry loop", floodReads, "reads/s",
		fmt.Sprintf("%.0f%% of no load; meanwhile %d unregistered connections at %.0f/s", 100*floodReads/without, m, floodRate))
	b.add("registered pipelined reads, during a registered loop", churnReads, "reads/s",
		fmt.Sprintf("%.0f%% of no load; meanwhile %d registered connections at %.0f/s", 100*churnReads/without, m, churnRate))
	return nil
}

func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// pendingPath is where the bench daemon keeps pending.json (user mode,
// XDG_CONFIG_HOME under its HOME).
func (d *daemon) pendingPath() string {
	return filepath.Join(d.home, ".config", "keychain-auth", "pending.json")
}

// pendingRecords parses the bench daemon's pending.json (none when it does
// not exist yet) and returns its records and size.
func (d *daemon) pendingRecords() ([]config.PendingRecord, int, error) {
	path := d.pendingPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	recs, err := config.ParsePending(data, path)
	return recs, len(data), err
}

// auditRecordSize is the mean size of the latest audit records of event
// (at most 100 of them, from the last 256 KiB of the live log).
func (d *daemon) auditRecordSize(event string) (float64, bool) {
	f, err := os.Open(filepath.Join(d.home, ".local", "share", "keychain-auth", "audit.log"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	off := max(st.Size()-256<<10, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return 0, false
	}
	lines := strings.Split(string(buf), "\n")
	total, n := 0, 0
	for i := len(lines) - 1; i > 0 && n < 100; i-- {
		if strings.Contains(lines[i], `"event":"`+event+`"`) {
			total += len(lines[i]) + 1
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return float64(total) / float64(n), true
}

// procCPU is the user and system time pid has used (all its threads), from
// /proc/<pid>/stat in clock ticks of 10 ms.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	// After the command: state, ppid, ... utime is the 12th, stime the 13th.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
