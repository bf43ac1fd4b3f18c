package protocol

import (
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Replies are encoded by hand rather than with encoding/json, for speed: every
// reply the daemon sends is encoded here, and encoding/json (reflection, an
// intermediate buffer, a final copy) took about 1.5 µs a reply, some 12% of
// the daemon's time in a profile of pipelined single reads. The hand-written
// encoder sizes the reply, makes room once, and writes it straight into the
// caller's buffer without allocating. That also keeps secret values out of
// any other buffer, where encoding/json leaves its output in a pooled buffer
// until that is reused.
//
// The output is not a format of its own: it is, byte for byte, what
// encodeLine(r.wire()) produces (HTML escaping off, fields in wireResponse's
// order, map keys sorted by their bytes, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped), and the differential fuzz test
// FuzzAppendResponseMatchesEncodingJSON pins it there. A response whose id
// encoding/json would have to compact or refuse (anything but one compact
// JSON scalar, and the request decoder produces nothing else) is left to
// encoding/json, so that it too encodes, or fails, exactly as before.

// fastEncodable reports whether appendResponse encodes r exactly as
// encoding/json would: whenever its id is absent or one compact JSON scalar.
func fastEncodable(r *Response) bool {
	return len(r.ID) == 0 || compactScalar(r.ID)
}

// appendResponseLine appends r, encoded as one line, to dst. When dst must
// grow, its contents move to a new array of twice its capacity plus the line
// and the old array is cleared, so no copy of a secret is left behind. r must
// be fastEncodable.
func appendResponseLine(dst []byte, r *Response) []byte {
	n := responseLen(r) + 1
	if len(dst)+n > cap(dst) {
		grown := make([]byte, len(dst), 2*cap(dst)+n)
		copy(grown, dst)
		clear(dst)
		dst = grown
	}
	// dst has room for the whole line: no append below reallocates.
	return append(appendResponse(dst, r), '\n')
}

// responseLen returns the length of appendResponse's encoding of r.
func responseLen(r *Response) int {
	n := len(`{"type":`) + stringLen(responseType(r)) + len(`,"status":`) + stringLen(string(r.Status)) + len(`}`)
	if len(r.ID) > 0 {
		n += len(`,"id":`) + len(r.ID)
	}
	if r.Reason != "" {
		n += len(`,"reason":`) + stringLen(string(r.Reason))
	}
	if r.Message != "" {
		n += len(`,"message":`) + stringLen(r.Message)
	}
	if len(r.Missing) > 0 {
		n += len(`,"missing":[]`) + len(r.Missing) - 1 // commas
		for _, m := range r.Missing {
			n += stringLen(m)
		}
	}
	if r.Status == StatusSuccess {
		n += len(`,"results":[]`)
		for i := range r.Results {
			if i > 0 {
				n++ // comma
			}
			n += resultLen(&r.Results[i])
		}
	}
	return n
}

func resultLen(res *Result) int {
	n := len(`{"target":`) + stringLen(res.Target) + len(`}`)
	if v, ok := res.value(); ok {
		n += len(`,"value":`) + stringLen(v)
	}
	if len(res.Attributes) > 0 {
		n += len(`,"attributes":{}`) + len(res.Attributes) - 1 // commas
		for k, v := range res.Attributes {
			n += stringLen(k) + len(`:`) + stringLen(v)
		}
	}
	return n
}

// appendResponse appends the JSON encoding of r, in the field order and with
// the omissions of wireResponse, to b. r must be fastEncodable. It grows b as
// append does: callers that care where the bytes go make room for
// responseLen(r) first.
func appendResponse(b []byte, r *Response) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, responseType(r))
	if len(r.ID) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, r.ID...)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, string(r.Reason))
	}
	if r.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, r.Message)
	}
	if len(r.Missing) > 0 {
		b = append(b, `,"missing":[`...)
		for i, m := range r.Missing {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m)
		}
		b = append(b, ']')
	}
	if r.Status == StatusSuccess {
		b = append(b, `,"results":[`...)
		for i := range r.Results {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendResult(b, &r.Results[i])
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendResult(b []byte, res *Result) []byte {
	b = append(b, `{"target":`...)
	b = appendString(b, res.Target)
	if v, ok := res.value(); ok {
		b = append(b, `,"value":`...)
		b = appendString(b, v)
	}
	if len(res.Attributes) > 0 {
		b = append(b, `,"attributes":{`...)
		// encoding/json sorts map keys by their bytes.
		var buf [8]attribute
		attrs := buf[:0]
		for k, v := range res.Attributes {
			attrs = append(attrs, attribute{k, v})
		}
		slices.SortFunc(attrs, func(a, b attribute) int { return strings.Compare(a.key, b.key) })
		for i, a := range attrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a.key)
			b = append(b, ':')
			b = appendString(b, a.value)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

type attribute struct{ key, value string }

// value returns the result's value and whether it has one. A value given
// with WithSecret is returned as a view of its bytes, not a copy: it is
// only read, while the reply is encoded, before ClearSecrets wipes them.
func (res *Result) value() (string, bool) {
	switch {
	case res.secret != nil:
		return unsafe.String(unsafe.SliceData(res.secret), len(res.secret)), true
	case res.Value != nil:
		return *res.Value, true
	}
	return "", false
}

// responseType is the type wire() sends: an empty Type goes out as RESPONSE.
func responseType(r *Response) string {
	if r.Type == "" {
		return TypeResponse
	}
	return r.Type
}

// jsonEscape holds, for each byte, how many bytes its encoding inside a JSON
// string adds to it: 0 for an ASCII byte that stands for itself, 1 for the
// two-byte escapes, 5 for \u00XX, and escapeMultibyte for a byte of 0x80 and
// up, which starts a UTF-8 sequence (or is invalid) and is looked at whole.
var jsonEscape = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = 5
	}
	for _, c := range []byte{'"', '\\', '\b', '\f', '\n', '\r', '\t'} {
		t[c] = 1
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = escapeMultibyte
	}
	return t
}()

const escapeMultibyte = 0xff

const hexDigits = "0123456789abcdef"

// stringLen returns the length of appendString's encoding of s.
func stringLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); {
		if i = plainRun(s, i); i == len(s) {
			break
		}
		e := jsonEscape[s[i]]
		if e != escapeMultibyte {
			n += int(e)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case size == 1: // invalid: one byte becomes \ufffd
			n += len(`\ufffd`) - 1
		case r == '\u2028' || r == '\u2029': // three bytes become \u202X
			n += len(`\u2028`) - size
		}
		i += size
	}
	return n
}

// appendString appends s as a JSON string exactly as encoding/json does with
// HTML escaping off: \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx,
// each byte that is not part of valid UTF-8 as \ufffd, U+2028 and U+2029
// escaped, everything else (DEL included) as it is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = plainRun(s, i); i == len(s) {
			break
		}
		c := s[i]
		if e := jsonEscape[c]; e != escapeMultibyte {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + 1
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainRun returns the index of the first byte of s at or after i that does
// not stand for itself in a JSON string (one below 0x20, '"', '\\', or one of
// 0x80 and up, which may need escaping), or len(s). It looks at eight bytes
// at a time: values run to 64 KiB and are mostly plain.
func plainRun(s string, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; len(s)-i >= 8; i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// Each term sets the high bit of a byte that is below 0x20, a
		// quote, a backslash or not ASCII. Borrows can only set high bits
		// above such a byte, so the lowest one set is exact.
		q, bs := x^(ones*'"'), x^(ones*'\\')
		m := (x - ones*0x20) | (q - ones) | (bs - ones)
		m = (m&^x | x) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && jsonEscape[s[i]] == 0 {
		i++
	}
	return i
}

// compactScalar reports whether raw is one JSON string, number, true, false
// or null with nothing around it: text encoding/json would copy unchanged
// when it encodes a json.RawMessage with HTML escaping off. (Its compaction
// checks the syntax but not the UTF-8 inside strings, so neither does this.)
func compactScalar(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"':
		return stringToken(raw)
	case 't':
		return string(raw) == "true"
	case 'f':
		return string(raw) == "false"
	case 'n':
		return string(raw) == "null"
	default:
		return numberToken(raw)
	}
}

// stringToken reports whether b is exactly one JSON string token.
func stringToken(b []byte) bool {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return false
	}
	end := len(b) - 1 // the closing quote
	for i := 1; i < end; i++ {
		switch c := b[i]; {
		case c < 0x20 || c == '"':
			return false
		case c == '\\':
			i++
			if i >= end {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= end {
					return false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return true
}

// numberToken reports whether b is exactly one JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberToken(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
