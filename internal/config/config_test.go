package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/The-17/keychain-auth/internal/policy"
)

const (
	fixtureConfig  = "testdata/original-config.json"
	fixturePending = "testdata/original-pending.json"

	hashAgent  = "sha256:9f2b6c1d0e8a7f3c5b4d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
	hashDeploy = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hashHelper = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("fixture written by the original tool is missing: %v", err)
	}
	return data
}

// writeFile puts data at dir/name with mode 0600 and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// compactJSON canonicalizes whitespace so values can be compared as JSON.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return buf.String()
}

func TestOriginalConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(readFixture(t, fixtureConfig), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProtocolVersion != "1" || cfg.Backend != "" || len(cfg.Binaries) != 2 {
		t.Fatalf("config = %+v", cfg)
	}
	a, d := cfg.Binaries[0], cfg.Binaries[1]
	if a.Path != "/usr/local/bin/agentsecrets" || a.Hash != hashAgent || !a.CanSearch ||
		!slices.Equal(a.AllowedReadServices, []string{"agentsecrets"}) ||
		!slices.Equal(a.AllowedWriteServices, []string{"agentsecrets"}) ||
		!a.RegisteredAt.Equal(time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)) {
		t.Errorf("first entry = %+v", a)
	}
	if d.Hash != hashDeploy || d.CanSearch || !slices.Equal(d.AllowedReadServices, []string{"aws", "gcp"}) ||
		len(d.AllowedWriteServices) != 0 || d.UpgradedAt != nil || len(d.UIDs) != 0 {
		t.Errorf("second entry = %+v", d)
	}
	if _, ok := cfg.Extra()["trusted_signers"]; !ok {
		t.Error("trusted_signers not kept")
	}

	// The loaded policy means what the original meant.
	g, dec := policy.Identify(cfg.PolicyEntries(), policy.Caller{Hash: hashDeploy, Path: d.Path, UID: 1000})
	if !dec.Allowed() || !slices.Equal(g.Read, []string{"aws", "gcp"}) || len(g.Write) != 0 || g.CanSearch {
		t.Errorf("policy of deploy-tool = %+v, %+v", g, dec)
	}
}

func TestRoundTripPreservesUnknownFields(t *testing.T) {
	t.Parallel()
	orig := readFixture(t, fixtureConfig)
	// Add unknown fields to an entry the way a newer tool might.
	in := bytes.Replace(orig, []byte(`"can_search": false`),
		[]byte(`"can_search": false, "signed_by": "release-key-2026", "notes": {"n": 1.50, "list": ["<&>", null]}`), 1)
	if bytes.Equal(in, orig) {
		t.Fatal("fixture changed shape; update the test")
	}

	cfg, err := Parse(in, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, []byte("}\n")) || !bytes.HasPrefix(out, []byte("{\n  \"protocol_version\"")) {
		t.Errorf("output is not indented JSON with a final newline:\n%s", out)
	}
	var before, after map[string]json.RawMessage
	json.Unmarshal(in, &before)
	json.Unmarshal(out, &after)
	if compactJSON(t, before["trusted_signers"]) != compactJSON(t, after["trusted_signers"]) {
		t.Errorf("trusted_signers changed:\n%s\n%s", before["trusted_signers"], after["trusted_signers"])
	}
	var entriesBefore, entriesAfter []map[string]json.RawMessage
	json.Unmarshal(before["registered_binaries"], &entriesBefore)
	json.Unmarshal(after["registered_binaries"], &entriesAfter)
	for i := range entriesBefore {
		for k, v := range entriesBefore[i] {
			if got := entriesAfter[i][k]; compactJSON(t, got) != compactJSON(t, v) {
				t.Errorf("entry %d field %s: %s, want %s", i, k, got, v)
			}
		}
		if len(entriesAfter[i]) != len(entriesBefore[i]) {
			t.Errorf("entry %d gained fields: %v", i, slices.Sorted(maps.Keys(entriesAfter[i])))
		}
	}
	// Unknown values are copied as written, not re-encoded: 1.50 stays 1.50.
	if !bytes.Contains(out, []byte(`1.5`)) || !bytes.Contains(out, []byte(`"<&>"`)) {
		t.Errorf("unknown value re-encoded:\n%s", out)
	}
	// A second round trip is stable.
	cfg2, err := Parse(out, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := cfg2.Marshal()
	if !bytes.Equal(out, out2) {
		t.Errorf("second round trip differs:\n%s\n---\n%s", out, out2)
	}
}

func TestMarshalListsNeverNull(t *testing.T) {
	t.Parallel()
	cfg := New()
	cfg.Binaries = append(cfg.Binaries, Entry{Path: "/bin/x", Hash: hashDeploy})
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("null")) {
		t.Fatalf("null in output:\n%s", out)
	}
	for _, want := range []string{`"allowed_read_services": []`, `"allowed_write_services": []`, `"can_search": false`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if out, _ := New().Marshal(); string(out) != "{\n  \"protocol_version\": \"1\",\n  \"registered_binaries\": []\n}\n" {
		t.Errorf("empty config encodes as:\n%s", out)
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data      string
		line, col int
		msg       string
	}{
		{"trailing comma", "{\n  \"protocol_version\": \"1\",\n}\n", 3, 1, "invalid character '}'"},
		{"truncated", "{\n  \"registered_binaries\": [\n", 2, 27, "unexpected end"},
		{"empty file", "", 1, 1, "unexpected end"},
		{"garbage after", "{}\nx", 2, 1, "after top-level value"},
		{"wrong type", "{\n  \"registered_binaries\": [\n    {\"can_search\": \"yes\"}\n  ]\n}", 3, 24, "registered_binaries.can_search: expected true or false, found string"},
		{"negative uid", "{\"registered_binaries\": [{\"uids\": [-1]}]}", 1, 37, "expected a non-negative integer"},
		{"array at top", "[]", 1, 1, "top level: expected an object"},
		{"null at top", "null", 1, 1, "found null"},
		{"column counts characters", "{\"ü\": 1,,}", 1, 9, "invalid character ','"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.data), "/x/config.json")
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *SyntaxError", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("SyntaxError does not match ErrInvalid")
			}
			if se.Line != tt.line || se.Column != tt.col || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", se.Line, se.Column, se.Msg, tt.line, tt.col, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "/x/config.json:") {
				t.Errorf("error does not start with the file name: %v", err)
			}
		})
	}
}

func TestParseValidation(t *testing.T) {
	t.Parallel()
	entry := func(fields string) string {
		return `{"registered_binaries":[{"path":"/bin/ok","hash":"` + hashDeploy + `"},{` + fields + `}]}`
	}
	good := `"path":"/bin/x","hash":"` + hashAgent + `"`
	tests := []struct {
		name, data, field string
	}{
		{"uppercase hash", entry(`"path":"/bin/x","hash":"` + strings.ToUpper(hashAgent) + `"`), "hash"},
		{"bare hex", entry(`"path":"/bin/x","hash":"` + hashAgent[7:] + `"`), "hash"},
		{"short hash", entry(`"path":"/bin/x","hash":"sha256:abc"`), "hash"},
		{"missing hash", entry(`"path":"/bin/x"`), "hash"},
		{"relative path", entry(`"path":"bin/x","hash":"` + hashAgent + `"`), "path"},
		{"missing path", entry(`"hash":"` + hashAgent + `"`), "path"},
		{"empty read pattern", entry(good + `,"allowed_read_services":["aws",""]`), "allowed_read_services"},
		{"null write pattern", entry(good + `,"allowed_write_services":[null]`), "allowed_write_services"},
		{"bad time", entry(good + `,"registered_at":"yesterday"`), "registered_at"},
		{"bad upgrade time", entry(good + `,"upgraded_at":"2026-13-01T00:00:00Z"`), "upgraded_at"},
		{"case-folded key", entry(good + `,"Can_Search":true`), "Can_Search"},
		{"future version", `{"protocol_version":"2"}`, "protocol_version"},
		{"case-folded top key", `{"Registered_Binaries":[]}`, "Registered_Binaries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.data), "config.json")
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v (%T), want *ValidationError", err, err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
			if ve.Index >= 0 && (ve.Index != 1 || !strings.Contains(err.Error(), "registered_binaries[1]."+tt.field)) {
				t.Errorf("error does not name entry 1: %v", err)
			}
		})
	}
}

func TestParseAcceptsOptionalFields(t *testing.T) {
	t.Parallel()
	data := `{"backend":"file","registered_binaries":[{"path":"/bin/x","hash":"` + hashAgent +
		`","registered_at":"2026-01-02T03:04:05","upgraded_at":"2026-02-03T04:05:06+01:00","uids":[1000,0],` +
		`"allowed_read_services":null}]}`
	cfg, err := Parse([]byte(data), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Binaries[0]
	if cfg.ProtocolVersion != "" || cfg.Backend != "file" || !slices.Equal(e.UIDs, []uint32{1000, 0}) ||
		e.UpgradedAt == nil || !e.UpgradedAt.Equal(time.Date(2026, 2, 3, 3, 5, 6, 0, time.UTC)) ||
		!e.RegisteredAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("entry = %+v", e)
	}
	out, _ := cfg.Marshal()
	for _, want := range []string{`"protocol_version": "1"`, `"backend": "file"`, `"upgraded_at": "2026-02-03T04:05:06+01:00"`, `"registered_at": "2026-01-02T03:04:05Z"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(readFixture(t, fixtureConfig), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := cfg.Marshal()
	c := cfg.Clone()
	c.Binaries[0].AllowedReadServices[0] = "changed"
	c.Binaries[1].Grant([]string{"x"}, []string{"y"}, true)
	c.Binaries = append(c.Binaries, Entry{Path: "/bin/z", Hash: hashHelper})
	c.extra["trusted_signers"][0] = ' '
	after, _ := cfg.Marshal()
	if !bytes.Equal(before, after) {
		t.Fatal("changing a clone changed the original")
	}
}

func TestValidateRejectsBadEdit(t *testing.T) {
	t.Parallel()
	cfg := New()
	cfg.Binaries = append(cfg.Binaries, Entry{Path: "/bin/x", Hash: "sha256:nothex"})
	if err := cfg.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v", err)
	}
}
