package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

func addSeeds(f *testing.F, files []string, extra ...string) {
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// FuzzParseConfig: no config.json content panics Parse, every refusal is an
// ErrInvalid, and an accepted config survives being written and read back
// unchanged, so an admin command that rewrites the file never alters a
// policy it did not mean to touch.
func FuzzParseConfig(f *testing.F) {
	addSeeds(f, []string{"testdata/original-config.json"},
		`{}`, `null`, `[]`, `{"protocol_version":"2"}`,
		`{"registered_binaries":[{"path":"/a","hash":"sha256:`+hex64+`","registered_at":"2026-01-02T03:04:05.123456789+02:00","upgraded_at":"2026-01-02T03:04:05","allowed_read_services":["a*","*"],"allowed_write_services":[],"can_search":true,"uids":[0,4294967295],"x":{"y":[1,2]}}],"backend":"file","z":null}`,
		`{"Registered_Binaries":[]}`, `{"registered_binaries":[{"path":"a","hash":"sha256:`+hex64+`"}]}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "config.json")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal %v is not ErrInvalid", err)
			}
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("accepted config cannot be written back: %v", err)
		}
		again, err := Parse(out, "config.json")
		if err != nil {
			t.Fatalf("written config is refused: %v\n%s", err, out)
		}
		if msg := configDiff(cfg, again); msg != "" {
			t.Fatalf("written and read back, the config changed: %s\n%s", msg, out)
		}
		if out2, err := again.Marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("writing is not stable (err %v):\n%s\n%s", err, out, out2)
		}
	})
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// configDiff compares what a config means: times as instants, absent and
// empty lists alike, an unset protocol_version as the one it is written as,
// unknown members as JSON values.
func configDiff(a, b *Config) string {
	version := func(v string) string {
		if v == "" {
			return New().ProtocolVersion
		}
		return v
	}
	switch {
	case version(a.ProtocolVersion) != version(b.ProtocolVersion):
		return "protocol_version"
	case a.Backend != b.Backend:
		return "backend"
	case len(a.Binaries) != len(b.Binaries):
		return "number of registered binaries"
	case !sameExtra(a.extra, b.extra):
		return "unknown top-level members"
	}
	for i, x := range a.Binaries {
		y := b.Binaries[i]
		switch {
		case x.Path != y.Path || x.Hash != y.Hash || x.CanSearch != y.CanSearch:
			return "path, hash or can_search of entry " + x.Path
		case !x.RegisteredAt.Equal(y.RegisteredAt):
			return "registered_at"
		case (x.UpgradedAt == nil) != (y.UpgradedAt == nil) || x.UpgradedAt != nil && !x.UpgradedAt.Equal(*y.UpgradedAt):
			return "upgraded_at"
		case !slices.Equal(x.AllowedReadServices, y.AllowedReadServices):
			return "allowed_read_services"
		case !slices.Equal(x.AllowedWriteServices, y.AllowedWriteServices):
			return "allowed_write_services"
		case !slices.Equal(x.UIDs, y.UIDs):
			return "uids"
		case !sameExtra(x.extra, y.extra):
			return "unknown members of an entry"
		}
	}
	return ""
}

func sameExtra(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !sameJSONValue(v, w) {
			return false
		}
	}
	return true
}

func sameJSONValue(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

// FuzzParsePending: no pending.json content panics ParsePending, every
// refusal is an ErrInvalid, and accepted records are written and read back
// unchanged (the daemon rewrites the file on every unknown caller).
func FuzzParsePending(f *testing.F) {
	addSeeds(f, []string{"testdata/original-pending.json"},
		`[]`, `null`, `{}`, `[{}]`,
		`[{"hash":"sha256:`+hex64+`","path":"/x","command_line":["a","\u0000"],"timestamp":"2026-11-29T08:15:00Z","first_seen":"2026-11-28T08:15:00+05:30","last_seen":"2026-11-29T08:15:00","count":-3,"pid":1,"ppid":0,"parent_path":"","cwd":"/","uid":7,"other":"kept"}]`)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ParsePending(data, "pending.json")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal %v is not ErrInvalid", err)
			}
			return
		}
		out, err := marshalPending(recs)
		if err != nil {
			t.Fatalf("accepted records cannot be written back: %v", err)
		}
		again, err := ParsePending(out, "pending.json")
		if err != nil {
			t.Fatalf("written records are refused: %v\n%s", err, out)
		}
		if len(again) != len(recs) {
			t.Fatalf("%d records read back, %d written", len(again), len(recs))
		}
		for i, a := range recs {
			b := again[i]
			same := a.Hash == b.Hash && a.Path == b.Path && slices.Equal(a.CommandLine, b.CommandLine) &&
				sameTime(a.Timestamp, b.Timestamp) && sameTime(a.FirstSeen, b.FirstSeen) && sameTime(a.LastSeen, b.LastSeen) &&
				a.Count == b.Count && a.PID == b.PID && a.PPID == b.PPID && a.ParentPath == b.ParentPath && a.Cwd == b.Cwd &&
				(a.UID == nil) == (b.UID == nil) && (a.UID == nil || *a.UID == *b.UID) && sameExtra(a.extra, b.extra)
			if !same {
				t.Fatalf("record %d changed when written and read back:\n%+v\n%+v", i, a, b)
			}
		}
	})
}

func sameTime(a, b time.Time) bool { return a.Equal(b) }
