package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// Limits of the pending queue.
const (
	// PendingTTL is how long a record is kept after it was last seen.
	PendingTTL = 24 * time.Hour
	// MaxPending is the most records pending.json holds; the oldest go first.
	MaxPending = 1000
	// Command lines are cut to these sizes so that a hostile process cannot
	// bloat the file: MaxPending records stay under a few MiB together.
	maxCmdArgs     = 64
	maxCmdLineSize = 4096
	maxPendingPath = 4096
)

// PendingRecord is one binary that was turned away, as stored in pending.json.
type PendingRecord struct {
	Hash        string
	Path        string
	CommandLine []string
	// Timestamp is the original tool's single time field. It is kept equal
	// to LastSeen so that readers which only know it expire records alike.
	Timestamp time.Time
	FirstSeen time.Time
	LastSeen  time.Time
	// Count is how many times the binary was turned away.
	Count      int
	PID        int
	PPID       int
	ParentPath string
	Cwd        string
	UID        *uint32
	// TeamID is the code-signing team of the binary (macOS), for the user
	// to recognise it; "" where there is none.
	TeamID string

	extra map[string]json.RawMessage
}

var pendingKeys = []string{"hash", "path", "command_line", "timestamp", "first_seen", "last_seen",
	"count", "pid", "ppid", "parent_path", "cwd", "uid", "team_id"}

// Extra returns a copy of the record's unknown fields, keyed by name.
func (r *PendingRecord) Extra() map[string]json.RawMessage { return cloneRaw(r.extra) }

// MarshalJSON writes the record with its fields in a fixed order, lists as []
// when empty, then the preserved unknown fields.
func (r PendingRecord) MarshalJSON() ([]byte, error) {
	return encodeObject([]member{
		{key: "hash", value: r.Hash},
		{key: "path", value: r.Path},
		{key: "command_line", value: nonNil(r.CommandLine)},
		{key: "timestamp", value: r.Timestamp},
		{key: "first_seen", value: r.FirstSeen},
		{key: "last_seen", value: r.LastSeen},
		{key: "count", value: r.Count},
		{key: "pid", value: r.PID},
		{key: "ppid", value: r.PPID},
		{key: "parent_path", value: r.ParentPath},
		{key: "cwd", value: r.Cwd},
		{key: "uid", value: r.UID, omit: r.UID == nil},
		{key: "team_id", value: r.TeamID, omit: r.TeamID == ""},
	}, r.extra)
}

// rawPending mirrors a record with plain types; see rawEntry for why.
type rawPending struct {
	Hash        string   `json:"hash"`
	Path        string   `json:"path"`
	CommandLine []string `json:"command_line"`
	Timestamp   string   `json:"timestamp"`
	FirstSeen   string   `json:"first_seen"`
	LastSeen    string   `json:"last_seen"`
	Count       int      `json:"count"`
	PID         int      `json:"pid"`
	PPID        int      `json:"ppid"`
	ParentPath  string   `json:"parent_path"`
	Cwd         string   `json:"cwd"`
	UID         *uint32  `json:"uid"`
	TeamID      string   `json:"team_id"`
}

// ParsePending decodes pending.json content as written, without expiring or
// merging anything. Records of the original tool, which carry only path,
// hash, command_line and timestamp, get first_seen and last_seen from
// timestamp and a count of 1.
func ParsePending(data []byte, file string) ([]PendingRecord, error) {
	var raws []rawPending
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, jsonError(data, file, err)
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(data, &objs); err != nil {
		return nil, jsonError(data, file, err)
	}
	recs := make([]PendingRecord, 0, len(raws))
	for i, r := range raws {
		bad := func(field, format string, args ...any) error {
			return &ValidationError{File: file, Index: i, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		rec := PendingRecord{
			Hash: r.Hash, Path: r.Path, CommandLine: r.CommandLine, Count: r.Count,
			PID: r.PID, PPID: r.PPID, ParentPath: r.ParentPath, Cwd: r.Cwd, UID: r.UID, TeamID: r.TeamID,
		}
		if !ValidHash(rec.Hash) {
			return nil, bad("hash", "%q is not \"sha256:\" followed by 64 lowercase hex digits", rec.Hash)
		}
		for _, f := range []struct {
			name string
			in   string
			out  *time.Time
		}{
			{"timestamp", r.Timestamp, &rec.Timestamp},
			{"first_seen", r.FirstSeen, &rec.FirstSeen},
			{"last_seen", r.LastSeen, &rec.LastSeen},
		} {
			if f.in == "" {
				continue
			}
			t, err := parseTime(f.in)
			if err != nil {
				return nil, bad(f.name, "%q is not an RFC 3339 time", f.in)
			}
			*f.out = t
		}
		if rec.LastSeen.IsZero() {
			rec.LastSeen = rec.Timestamp
		}
		if rec.LastSeen.IsZero() {
			rec.LastSeen = rec.FirstSeen
		}
		if rec.FirstSeen.IsZero() {
			rec.FirstSeen = firstSet(rec.Timestamp, rec.LastSeen)
		}
		if rec.Timestamp.IsZero() {
			rec.Timestamp = rec.LastSeen
		}
		if rec.Count < 1 {
			rec.Count = 1
		}
		if i < len(objs) {
			extra, key, err := splitUnknown(objs[i], pendingKeys)
			if err != nil {
				return nil, bad(key, "%v", err)
			}
			rec.extra = extra
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// firstSet returns a unless it is zero, else b.
func firstSet(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// normalizePending merges records of one hash (older tools appended one per
// attempt), drops those last seen more than PendingTTL before now (and those
// with no time at all, whose age is unknown), sorts newest first and keeps
// at most MaxPending.
func normalizePending(recs []PendingRecord, now time.Time) []PendingRecord {
	byHash := make(map[string]int, len(recs))
	out := make([]PendingRecord, 0, len(recs))
	for _, r := range recs {
		if r.LastSeen.IsZero() || now.Sub(r.LastSeen) > PendingTTL {
			continue
		}
		i, dup := byHash[r.Hash]
		if !dup {
			byHash[r.Hash] = len(out)
			out = append(out, r)
			continue
		}
		old := out[i]
		newer, older := r, old
		if old.LastSeen.After(r.LastSeen) {
			newer, older = old, r
		}
		newer.Count = old.Count + r.Count
		if older.FirstSeen.Before(newer.FirstSeen) {
			newer.FirstSeen = older.FirstSeen
		}
		out[i] = newer
	}
	sortPending(out)
	if len(out) > MaxPending {
		out = out[:MaxPending]
	}
	return out
}

func sortPending(recs []PendingRecord) {
	slices.SortStableFunc(recs, func(a, b PendingRecord) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
}

func marshalPending(recs []PendingRecord) ([]byte, error) {
	data, err := marshalFile(nonNil(recs))
	if err != nil {
		return nil, fmt.Errorf("encode pending records: %w", err)
	}
	return data, nil
}

// readPending returns the records in the file (missing means none) and its
// raw bytes (nil when missing).
func readPending(path string) ([]PendingRecord, []byte, error) {
	data, _, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	recs, err := ParsePending(data, path)
	if err != nil {
		return nil, nil, err
	}
	return recs, data, nil
}

// LoadPending returns the records of pending.json that are not expired
// relative to now, one per hash, newest first. A missing file has none.
func LoadPending(path string, now time.Time) ([]PendingRecord, error) {
	recs, _, err := readPending(path)
	if err != nil {
		return nil, err
	}
	return normalizePending(recs, now), nil
}

// updatePending is the locked read-modify-write shared by the writers. It
// writes only when the content changed, and never when the file does not
// parse.
func updatePending(ctx context.Context, path string, now time.Time, fn func([]PendingRecord) []PendingRecord) error {
	if err := fsx.MkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	unlock, err := fsx.Lock(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()
	recs, old, err := readPending(path)
	if err != nil {
		return err
	}
	recs = fn(normalizePending(recs, now))
	sortPending(recs)
	if len(recs) > MaxPending {
		recs = recs[:MaxPending]
	}
	data, err := marshalPending(recs)
	if err != nil {
		return err
	}
	if old != nil && bytes.Equal(data, old) {
		return nil
	}
	if old == nil && len(recs) == 0 {
		return nil
	}
	return fsx.WriteFile(path, data, fsx.FileMode)
}

// RecordPending notes that the binary rec.Hash was turned away at now. The
// first sighting creates a record; a repeat updates the record's last_seen,
// path, command line, process details and unknown fields, adds to its count
// and keeps its first_seen. rec.Count is the number of sightings being
// reported (0 means 1; see PendingLimiter.Admit); rec's times are ignored in
// favour of now. Expired records are dropped and, beyond MaxPending, the
// oldest. Over-long command lines and paths are cut.
func RecordPending(ctx context.Context, path string, rec PendingRecord, now time.Time) error {
	if !ValidHash(rec.Hash) {
		return fmt.Errorf("record pending binary in %s: hash %q is not canonical: %w", path, rec.Hash, ErrInvalid)
	}
	n := max(rec.Count, 1)
	rec = trimPending(rec)
	// UTC like the original tool's files, and without the monotonic reading.
	now = now.UTC()
	return updatePending(ctx, path, now, func(recs []PendingRecord) []PendingRecord {
		rec.LastSeen, rec.Timestamp = now, now
		i := slices.IndexFunc(recs, func(r PendingRecord) bool { return r.Hash == rec.Hash })
		if i < 0 {
			rec.FirstSeen, rec.Count = now, n
			return append(recs, rec)
		}
		old := recs[i]
		rec.FirstSeen = old.FirstSeen
		if rec.FirstSeen.After(now) {
			rec.FirstSeen = now
		}
		rec.Count = old.Count + n
		if old.extra != nil {
			merged := cloneRaw(old.extra)
			for k, v := range rec.extra {
				merged[k] = v
			}
			rec.extra = merged
		}
		recs[i] = rec
		return recs
	})
}

// RemovePending deletes the record for hash (after approval) and returns it.
// found is false when there was none; the file is then only rewritten if
// expired records had to go.
func RemovePending(ctx context.Context, path, hash string) (rec PendingRecord, found bool, err error) {
	err = updatePending(ctx, path, time.Now(), func(recs []PendingRecord) []PendingRecord {
		i := slices.IndexFunc(recs, func(r PendingRecord) bool { return r.Hash == hash })
		if i < 0 {
			return recs
		}
		rec, found = recs[i], true
		return slices.Delete(recs, i, i+1)
	})
	if err != nil {
		return PendingRecord{}, false, err
	}
	return rec, found, nil
}

// maxTeamID bounds a team identifier (Apple's are 10 characters).
const maxTeamID = 64

// trimPending bounds the sizes a hostile caller controls.
func trimPending(r PendingRecord) PendingRecord {
	r.Path = truncate(r.Path, maxPendingPath)
	r.ParentPath = truncate(r.ParentPath, maxPendingPath)
	r.Cwd = truncate(r.Cwd, maxPendingPath)
	r.TeamID = truncate(r.TeamID, maxTeamID)
	args := r.CommandLine
	r.CommandLine = make([]string, 0, min(len(args), maxCmdArgs+1))
	budget := maxCmdLineSize
	redactNext := false
	for i, a := range args {
		a, redactNext = redactArg(a, redactNext)
		if i == maxCmdArgs || budget <= 0 {
			cut := fmt.Sprintf("[%d more arguments cut]", len(args)-i)
			if len(args)-i == 1 {
				cut = "[1 more argument cut]"
			}
			r.CommandLine = append(r.CommandLine, cut)
			break
		}
		a = truncate(a, budget)
		budget -= len(a)
		r.CommandLine = append(r.CommandLine, a)
	}
	return r
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence, and
// marks the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// secretFlag matches option names that usually carry a credential.
var secretFlag = regexp.MustCompile(`(?i)^-{1,2}[a-z0-9_.-]*(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|credentials?|auth)[a-z0-9_.-]*$`)

// redactArg hides the value of an argument that looks like a credential
// (--password=x, or the argument after --token), because pending.json is
// shown to the user and kept for a day. It is display data: redacting too
// much costs a little context, redacting too little leaks a secret to disk.
func redactArg(arg string, isValue bool) (out string, nextIsValue bool) {
	if isValue {
		return "[redacted]", false
	}
	if name, _, ok := strings.Cut(arg, "="); ok && secretFlag.MatchString(name) {
		return name + "=[redacted]", false
	}
	return arg, secretFlag.MatchString(arg)
}
