package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
)

// followPoll is how often `audit --follow` looks for new records.
const followPoll = 200 * time.Millisecond

type auditOpts struct {
	follow, asJSON, verify, denied bool
	since, binary, service         string
}

func (a *app) auditCmd() *cobra.Command {
	var o auditOpts
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show, follow or verify the audit log of the daemon's decisions",
		Long: `Show the audit log: one record per request, refused connection, change of
config.json, daemon start and stop, oldest first, across the rotated files.

The table shows time, result, action, service, targets, the binary (path and
short hash) and the reason. --json prints the records as stored, one per line.
Filters combine: --since 1h (or 30m, 2d, or a time such as 2026-11-29T10:00:00Z),
--binary <hash prefix|path>, --service S, --denied.

--follow keeps printing new records (across rotation) until interrupted; add
--since to skip the history. --verify checks the hash chain of every file and
exits 1 naming the first record that was altered, removed or reordered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.audit(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.follow, "follow", false, "keep printing new records until interrupted")
	f.StringVar(&o.since, "since", "", "only records from this long ago (1h, 30m, 2d) or since this time (RFC 3339)")
	f.StringVar(&o.binary, "binary", "", "only records of this binary: a hash prefix or a path")
	f.StringVar(&o.service, "service", "", "only records for this service")
	f.BoolVar(&o.denied, "denied", false, "only denied requests and connections")
	f.BoolVar(&o.asJSON, "json", false, "print records as stored, one JSON object per line")
	f.BoolVar(&o.verify, "verify", false, "check the hash chain across all files; exit 1 at the first broken record")
	return cmd
}

func (a *app) audit(ctx context.Context, o auditOpts) error {
	layout, err := a.layout()
	if err != nil {
		return err
	}
	path := layout.AuditFile
	if o.verify {
		if o.follow || o.asJSON || o.since != "" || o.binary != "" || o.service != "" || o.denied {
			return usagef("--verify checks the whole log and takes no other flag")
		}
		return a.verifyAudit(path)
	}
	keep, err := auditFilter(o, time.Now())
	if err != nil {
		return err
	}
	out := newAuditPrinter(a.stdout, o.asJSON, o.follow)
	show := func(e audit.Entry) error {
		if e.Err != nil {
			fmt.Fprintf(a.stderr, "keychain-auth: %s:%d: unreadable record skipped: %v\n", e.File, e.Line, e.Err)
			return nil
		}
		if keep(e.Record) {
			out.print(e)
		}
		return nil
	}
	if !o.follow {
		files, err := audit.Files(path)
		if err != nil {
			return fmt.Errorf("read audit log: %w", err)
		}
		if len(files) == 0 {
			fmt.Fprintf(a.stderr, "no audit log at %s yet; the daemon creates it when it starts\n", path)
			return nil
		}
		if err := audit.Read(path, show); err != nil {
			return fmt.Errorf("read audit log %s: %w", path, err)
		}
		return out.flush()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := audit.Follow(ctx, path, followPoll, show); err != nil {
		return fmt.Errorf("follow audit log %s: %w", path, err)
	}
	return out.flush()
}

func (a *app) verifyAudit(path string) error {
	n, err := audit.Verify(path)
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		verified := plural(n, "record before it verifies", "records before it verify")
		return fmt.Errorf("audit log broken at %v (%s); "+
			"the log was altered or damaged after it was written: keep a copy of %s* for investigation", ve, verified, path)
	case err != nil:
		return fmt.Errorf("verify audit log: %w", err)
	}
	files, _ := audit.Files(path)
	fmt.Fprintf(a.stdout, "audit log intact: %s in %s (%s)\n", plural(n, "record", "records"), plural(len(files), "file", "files"), path)
	return nil
}

// auditFilter turns the filter flags into a predicate.
func auditFilter(o auditOpts, now time.Time) (func(audit.Record) bool, error) {
	var since time.Time
	if o.since != "" {
		t, err := parseSince(o.since, now)
		if err != nil {
			return nil, err
		}
		since = t
	}
	var matchBinary func(audit.Record) bool
	if o.binary != "" {
		m, err := binaryMatcher(o.binary)
		if err != nil {
			return nil, err
		}
		matchBinary = m
	}
	return func(r audit.Record) bool {
		switch {
		case !since.IsZero() && r.Time.Before(since):
			return false
		case matchBinary != nil && !matchBinary(r):
			return false
		case o.service != "" && r.Service != o.service:
			return false
		case o.denied && r.Result != audit.ResultDenied:
			return false
		}
		return true
	}, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since needs a duration such as 1h, 30m or 2d, or a time such as 2026-11-29T10:00:00Z; not %q", s)
}

// binaryMatcher matches records of a binary named by a hash prefix or a
// path. An existing file, or anything with a slash, is a path; it matches
// the recorded path of whatever ran from there, in any version.
func binaryMatcher(arg string) (func(audit.Record) bool, error) {
	hexPart := strings.TrimPrefix(strings.ToLower(arg), "sha256:")
	_, statErr := os.Stat(arg)
	if statErr != nil && !strings.ContainsRune(arg, filepath.Separator) {
		if hexPart == "" || strings.Trim(hexPart, "0123456789abcdef") != "" {
			return nil, usagef("--binary needs a hash prefix (hex digits) or the path of a binary; %q is neither", arg)
		}
		return func(r audit.Record) bool {
			return strings.HasPrefix(strings.TrimPrefix(r.BinaryHash, "sha256:"), hexPart)
		}, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	resolved := abs
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		resolved = p
	}
	return func(r audit.Record) bool { return r.BinaryPath == abs || r.BinaryPath == resolved }, nil
}

// auditPrinter writes records as a table or as stored lines.
type auditPrinter struct {
	w      io.Writer
	tw     *tabwriter.Writer
	asJSON bool
	// stream: print each row at once with fixed widths (--follow), rather
	// than aligning the whole table at the end.
	stream bool
	header bool
}

func newAuditPrinter(w io.Writer, asJSON, stream bool) *auditPrinter {
	p := &auditPrinter{w: w, asJSON: asJSON, stream: stream}
	if !asJSON && !stream {
		p.tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	return p
}

func (p *auditPrinter) print(e audit.Entry) {
	if p.asJSON {
		p.w.Write(append(e.Raw, '\n'))
		return
	}
	cols := auditColumns(e.Record)
	if !p.header {
		p.header = true
		p.row([]string{"TIME", "RESULT", "ACTION", "SERVICE", "TARGETS", "BINARY", "REASON"})
	}
	p.row(cols)
}

func (p *auditPrinter) row(cols []string) {
	if p.stream {
		fmt.Fprintf(p.w, "%-25s  %-8s  %-14s  %-16s  %-30s  %-40s  %s\n",
			cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6])
		return
	}
	fmt.Fprintln(p.tw, strings.Join(cols, "\t"))
}

func (p *auditPrinter) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

// auditColumns is one table row. Everything shown is made safe for a
// terminal: a binary's path is chosen by whoever placed the binary.
func auditColumns(r audit.Record) []string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return printable(s)
	}
	action := r.Action
	switch r.Event {
	case audit.EventRequest:
	case audit.EventConnectDenied:
		action = "connect"
		if r.Action != "" {
			action += ":" + r.Action
		}
	default:
		action = r.Event
	}
	targets := strings.Join(r.Targets, ",")
	if t := []rune(targets); len(t) > 40 {
		targets = fmt.Sprintf("%s…(%d)", string(t[:36]), len(r.Targets))
	}
	binary := r.BinaryPath
	if h := strings.TrimPrefix(r.BinaryHash, "sha256:"); h != "" {
		binary += " (" + h[:min(12, len(h))] + ")"
	}
	reason := r.Reason
	if r.Message != "" && (reason == "" || r.Result == audit.ResultError) {
		reason = strings.TrimSpace(reason + " " + r.Message)
	}
	return []string{r.Time.Local().Format(time.RFC3339), dash(r.Result), dash(action), dash(r.Service),
		dash(targets), dash(binary), dash(reason)}
}

// startAudit opens the audit log for the daemon and records its start:
// who it is, what it serves, how many entries config.json holds, and what
// the log's tail check found. It primes cache, so that the daemon records
// every change of config.json from this point on.
func (a *app) startAudit(ctx context.Context, log *slog.Logger, layout paths.Layout, maxSize int64,
	cache *config.Cache, backend string) (*audit.Log, error) {
	l, err := audit.Open(layout.AuditFile, audit.Options{MaxSize: maxSize, Logger: log})
	if errors.Is(err, audit.ErrInUse) {
		return nil, inUseError(layout.AuditFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start without the audit log: %w", err)
	}
	tail := l.TailCheck()
	details := map[string]any{
		"version": version(), "mode": layout.Mode, "backend": backend, "socket": layout.SocketPath,
		"config": layout.ConfigFile, "tail_check": tail.Status,
	}
	if cfg, err := cache.Get(); err != nil {
		details["config_error"] = err.Error()
	} else {
		details["entries"] = len(cfg.Binaries)
	}
	rec := audit.Record{Event: audit.EventDaemonStart, PID: os.Getpid(), Message: tail.Detail}
	uid := uint32(a.uid)
	rec.UID = &uid
	if exe, err := os.Executable(); err == nil {
		rec.BinaryPath = exe
		if id, err := attest.New(attest.Options{}).HashPath(ctx, exe); err == nil {
			rec.BinaryHash = id.Hash
		}
	}
	rec.Details, _ = json.Marshal(details)
	if err := l.Log(ctx, rec); err != nil {
		l.Close()
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	return l, nil
}

// stopAudit records the daemon's stop and closes the log, leaving the last
// hash for the next start to check.
func (a *app) stopAudit(log *slog.Logger, l *audit.Log) {
	uid := uint32(a.uid)
	err := l.Log(context.Background(), audit.Record{Event: audit.EventDaemonStop, PID: os.Getpid(), UID: &uid})
	if err != nil {
		log.Error("cannot record the daemon's stop in the audit log", "err", err)
	}
	if err := l.Close(); err != nil {
		log.Error("cannot close the audit log cleanly; the next start will report its tail as unchecked", "err", err)
	}
}

// inUseError says which daemon holds the audit log and what works instead:
// a daemon on another --socket with the same HOME shares the first one's
// audit log, config and store, so it can never start.
func inUseError(file string, err error) error {
	who := "another keychain-auth daemon"
	if pid, socket, ok := lastDaemonStart(file); ok {
		who = fmt.Sprintf("another keychain-auth daemon (its start is logged as pid %d on %s)", pid, socket)
	}
	return fmt.Errorf("cannot start: %s holds the audit log %s (%w). Stop it first; "+
		"a second daemon needs its own state as well as its own socket: run it with another HOME, "+
		"or with XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR pointing to directories of its own", who, file, audit.ErrInUse)
}

// lastDaemonStart finds the pid and socket of the latest daemon_start
// record in the log; the daemon holding the log wrote it.
func lastDaemonStart(file string) (pid int, socket string, ok bool) {
	audit.Read(file, func(e audit.Entry) error {
		if e.Err != nil || e.Record.Event != audit.EventDaemonStart {
			return nil
		}
		var d struct {
			Socket string `json:"socket"`
		}
		json.Unmarshal(e.Record.Details, &d)
		pid, socket, ok = e.Record.PID, d.Socket, e.Record.PID > 0 && d.Socket != ""
		return nil
	})
	return pid, socket, ok
}
