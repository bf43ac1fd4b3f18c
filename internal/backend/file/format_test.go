package file

import (
	"bytes"
	"maps"
	"testing"
)

func TestItemADUnambiguous(t *testing.T) {
	t.Parallel()
	if bytes.Equal(itemAD("a", "bc"), itemAD("ab", "c")) {
		t.Error(`("a","bc") and ("ab","c") share associated data`)
	}
	if bytes.Equal(itemAD("", "x"), itemAD("x", "")) {
		t.Error(`("","x") and ("x","") share associated data`)
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add(encodePayload([]byte("value"), map[string]string{"k": "v", "": ""}))
	f.Add(encodePayload(nil, nil))
	f.Add([]byte{payloadVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{payloadVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		value, attrs, err := decodePayload(p)
		if err != nil {
			return
		}
		// Whatever decodes must be exactly what re-encodes to the same bytes.
		again := encodePayload(value, attrs)
		v2, a2, err := decodePayload(again)
		if err != nil || !bytes.Equal(v2, value) || !maps.Equal(a2, attrs) {
			t.Fatalf("payload does not round-trip: %v", err)
		}
	})
}
