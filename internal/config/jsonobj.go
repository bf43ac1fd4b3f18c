package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// member is one key of an object written in a fixed order.
type member struct {
	key   string
	value any
	omit  bool
}

// encodeObject writes members in the given order followed by the preserved
// unknown members sorted by key. Known fields come first so a diff of a
// rewritten file stays readable; unknown values are copied as they were.
func encodeObject(members []member, extra map[string]json.RawMessage) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	put := func(key string, value any) error {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, err := marshalCompact(key)
		if err != nil {
			return err
		}
		v, err := marshalCompact(value)
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
		return nil
	}
	for _, m := range members {
		if m.omit {
			continue
		}
		if err := put(m.key, m.value); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if err := put(k, extra[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshalCompact is json.Marshal without HTML escaping, so paths and service
// names containing & < > stay readable in the file.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// marshalFile renders a whole file: two-space indentation, trailing newline.
func marshalFile(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// splitUnknown returns the members of obj whose keys are not in known. A key
// that differs from a known one only by case is an error: encoding/json would
// silently take it as the known field, while the original tool ignores it, so
// the two would read different policies from one file.
func splitUnknown(obj map[string]json.RawMessage, known []string) (map[string]json.RawMessage, string, error) {
	var extra map[string]json.RawMessage
	for k, v := range obj {
		if slices.Contains(known, k) {
			continue
		}
		for _, kk := range known {
			if strings.EqualFold(k, kk) {
				return nil, k, fmt.Errorf("unknown field %q looks like %q; field names are case-sensitive", k, kk)
			}
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[k] = v
	}
	return extra, "", nil
}

func cloneRaw(m map[string]json.RawMessage) map[string]json.RawMessage {
	if m == nil {
		return nil
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// nonNil makes an absent list encode as [] rather than null, which the
// original tool and existing integrations expect.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
