// Package config reads and writes keychain-auth's two state files, config.json
// (the registered binaries and their privileges) and pending.json (binaries
// turned away, waiting for review): parsing with exact error positions,
// validation, safety checks, and atomic updates under an exclusive lock.
package config

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/The-17/keychain-auth/internal/policy"
	"github.com/The-17/keychain-auth/protocol"
)

// Config is the content of config.json. Fields the program does not know,
// such as the original tool's trusted_signers, are kept and written back.
type Config struct {
	// ProtocolVersion is "1"; an empty value is written as "1".
	ProtocolVersion string
	// Backend names the secret store chosen when the store was first set up.
	Backend string
	// Binaries is the "registered_binaries" list.
	Binaries []Entry

	extra map[string]json.RawMessage
}

// Entry is one registered binary and what it may do.
type Entry struct {
	Path                 string
	Hash                 string
	RegisteredAt         time.Time
	UpgradedAt           *time.Time
	AllowedReadServices  []string
	AllowedWriteServices []string
	CanSearch            bool
	// UIDs limits the entry to these peer uids (system mode); empty means any.
	UIDs []uint32

	extra map[string]json.RawMessage
}

var (
	configKeys = []string{"protocol_version", "backend", "registered_binaries"}
	entryKeys  = []string{"path", "hash", "registered_at", "upgraded_at", "allowed_read_services",
		"allowed_write_services", "can_search", "uids"}
)

// New returns an empty configuration, what a missing config.json means.
func New() *Config {
	return &Config{ProtocolVersion: protocol.Version}
}

// Extra returns a copy of the unknown top-level fields, keyed by name.
func (c *Config) Extra() map[string]json.RawMessage { return cloneRaw(c.extra) }

// Extra returns a copy of the entry's unknown fields, keyed by name.
func (e *Entry) Extra() map[string]json.RawMessage { return cloneRaw(e.extra) }

// Clone returns a deep copy, for callers that want to compare before and after.
func (c *Config) Clone() *Config {
	out := *c
	out.extra = cloneRaw(c.extra)
	out.Binaries = make([]Entry, len(c.Binaries))
	for i := range c.Binaries {
		out.Binaries[i] = c.Binaries[i].Clone()
	}
	return &out
}

// Clone returns a deep copy of e.
func (e Entry) Clone() Entry {
	out := e
	if e.UpgradedAt != nil {
		t := *e.UpgradedAt
		out.UpgradedAt = &t
	}
	out.AllowedReadServices = slices.Clone(e.AllowedReadServices)
	out.AllowedWriteServices = slices.Clone(e.AllowedWriteServices)
	out.UIDs = slices.Clone(e.UIDs)
	out.extra = cloneRaw(e.extra)
	return out
}

// PolicyEntries converts the registrations for the policy package. The
// result shares slices with c, which callers treat as read-only.
func (c *Config) PolicyEntries() []policy.Entry {
	out := make([]policy.Entry, len(c.Binaries))
	for i, e := range c.Binaries {
		out[i] = policy.Entry{
			Path:      e.Path,
			Hash:      e.Hash,
			Read:      e.AllowedReadServices,
			Write:     e.AllowedWriteServices,
			CanSearch: e.CanSearch,
			UIDs:      e.UIDs,
		}
	}
	return out
}

// MarshalJSON writes the known fields in a fixed order, lists as [] when
// empty, then the preserved unknown fields.
func (c Config) MarshalJSON() ([]byte, error) {
	version := c.ProtocolVersion
	if version == "" {
		version = protocol.Version
	}
	return encodeObject([]member{
		{key: "protocol_version", value: version},
		{key: "backend", value: c.Backend, omit: c.Backend == ""},
		{key: "registered_binaries", value: nonNil(c.Binaries)},
	}, c.extra)
}

// MarshalJSON writes the known fields in a fixed order, lists as [] when
// empty, then the preserved unknown fields.
func (e Entry) MarshalJSON() ([]byte, error) {
	return encodeObject([]member{
		{key: "path", value: e.Path},
		{key: "hash", value: e.Hash},
		{key: "registered_at", value: e.RegisteredAt, omit: e.RegisteredAt.IsZero()},
		{key: "upgraded_at", value: e.UpgradedAt, omit: e.UpgradedAt == nil},
		{key: "allowed_read_services", value: nonNil(e.AllowedReadServices)},
		{key: "allowed_write_services", value: nonNil(e.AllowedWriteServices)},
		{key: "can_search", value: e.CanSearch},
		{key: "uids", value: e.UIDs, omit: len(e.UIDs) == 0},
	}, e.extra)
}

// Marshal renders c as config.json content: indented, with a final newline.
func (c *Config) Marshal() ([]byte, error) {
	data, err := marshalFile(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return data, nil
}

// rawConfig and rawEntry mirror the file with plain types only, so that
// encoding/json reports every type error with its offset in the whole file
// (an UnmarshalJSON method, such as time.Time's, would lose it).
type rawConfig struct {
	ProtocolVersion string     `json:"protocol_version"`
	Backend         string     `json:"backend"`
	Binaries        []rawEntry `json:"registered_binaries"`
}

type rawEntry struct {
	Path                 string   `json:"path"`
	Hash                 string   `json:"hash"`
	RegisteredAt         string   `json:"registered_at"`
	UpgradedAt           *string  `json:"upgraded_at"`
	AllowedReadServices  []string `json:"allowed_read_services"`
	AllowedWriteServices []string `json:"allowed_write_services"`
	CanSearch            bool     `json:"can_search"`
	UIDs                 []uint32 `json:"uids"`
}

// Parse decodes and validates config.json content; file names it in errors.
// A file that is not JSON, or holds a value of the wrong type, yields a
// *SyntaxError with the line and column; a value that breaks a rule yields a
// *ValidationError. Both match errors.Is(err, ErrInvalid).
func Parse(data []byte, file string) (*Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(data, file, err)
	}
	// The second pass cannot fail on a document the first accepted; it only
	// collects the members the first pass ignored.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError(data, file, err)
	}
	if top == nil {
		return nil, &SyntaxError{File: file, Line: 1, Column: 1, Msg: "expected a JSON object, found null"}
	}
	var objs []map[string]json.RawMessage
	if b, ok := top["registered_binaries"]; ok {
		if err := json.Unmarshal(b, &objs); err != nil {
			return nil, jsonError(data, file, err)
		}
	}
	cfg := &Config{ProtocolVersion: raw.ProtocolVersion, Backend: raw.Backend}
	extra, key, err := splitUnknown(top, configKeys)
	if err != nil {
		return nil, &ValidationError{File: file, Index: -1, Field: key, Msg: err.Error()}
	}
	cfg.extra = extra
	cfg.Binaries = make([]Entry, len(raw.Binaries))
	for i, r := range raw.Binaries {
		bad := func(field, format string, args ...any) error {
			return &ValidationError{File: file, List: "registered_binaries", Index: i, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		e := Entry{
			Path:                 r.Path,
			Hash:                 r.Hash,
			AllowedReadServices:  r.AllowedReadServices,
			AllowedWriteServices: r.AllowedWriteServices,
			CanSearch:            r.CanSearch,
			UIDs:                 r.UIDs,
		}
		if r.RegisteredAt != "" {
			if e.RegisteredAt, err = parseTime(r.RegisteredAt); err != nil {
				return nil, bad("registered_at", "%q is not an RFC 3339 time", r.RegisteredAt)
			}
		}
		if r.UpgradedAt != nil {
			t, err := parseTime(*r.UpgradedAt)
			if err != nil {
				return nil, bad("upgraded_at", "%q is not an RFC 3339 time", *r.UpgradedAt)
			}
			e.UpgradedAt = &t
		}
		if i < len(objs) {
			extra, key, err := splitUnknown(objs[i], entryKeys)
			if err != nil {
				return nil, bad(key, "%v", err)
			}
			e.extra = extra
		}
		cfg.Binaries[i] = e
	}
	if err := cfg.validate(file); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks the rules a config must satisfy before it is used or
// written: a supported protocol_version, canonical hashes, absolute paths,
// non-empty service patterns.
func (c *Config) Validate() error { return c.validate("config") }

func (c *Config) validate(file string) error {
	if c.ProtocolVersion != "" && c.ProtocolVersion != protocol.Version {
		return &ValidationError{File: file, Index: -1, Field: "protocol_version",
			Msg: fmt.Sprintf("version %q is not supported by this keychain-auth (it reads %q); upgrade keychain-auth", c.ProtocolVersion, protocol.Version)}
	}
	for i, e := range c.Binaries {
		bad := func(field, format string, args ...any) error {
			return &ValidationError{File: file, List: "registered_binaries", Index: i, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		if !ValidHash(e.Hash) {
			return bad("hash", "%q is not \"sha256:\" followed by 64 lowercase hex digits", e.Hash)
		}
		if e.Path == "" || !filepath.IsAbs(e.Path) {
			return bad("path", "%q is not an absolute path", e.Path)
		}
		if slices.Contains(e.AllowedReadServices, "") {
			return bad("allowed_read_services", "contains an empty service pattern")
		}
		if slices.Contains(e.AllowedWriteServices, "") {
			return bad("allowed_write_services", "contains an empty service pattern")
		}
	}
	return nil
}

// parseTime accepts RFC 3339 and, because hand-written and older files
// sometimes omit the zone, a zone-less timestamp taken as UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t, nil
	}
	if !strings.ContainsAny(s[min(len(s), 19):], "Zz+-") {
		if t, err2 := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err2 == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
