package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// The canonical encoding of a record, which its hash covers, is the exact
// byte string Log writes minus the hash member:
//
//	{"time":"<UTC, 9-digit fraction>","seq":N,"event":"...",<other members>,"prev":"<hex or empty>"}
//
// Members appear in the fixed order of the Record fields, without
// whitespace. Access records carry every member from action to request_id
// (lists as [], an unknown uid as null); other records only the non-zero
// ones. message and details appear only when set. Strings are made valid
// UTF-8 (invalid bytes become U+FFFD) and escape only '"', '\\' and control
// characters, so decoding and re-encoding a line reproduces it exactly.
// The stored line is the canonical encoding with `,"hash":"<64 hex>"`
// inserted before the closing brace, then a newline; hash is the lowercase
// hex SHA-256 of the canonical encoding.
func (r *Record) appendCanonical(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, r.Time)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = r.appendBody(b)
	b = append(b, `,"prev":`...)
	b = appendString(b, r.Prev)
	return append(b, '}')
}

// appendBody writes the members between seq and prev, starting with a comma.
func (r *Record) appendBody(b []byte) []byte {
	b = append(b, `,"event":`...)
	b = appendString(b, r.Event)
	access := r.isAccess()
	str := func(b []byte, name, v string) []byte {
		if access || v != "" {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = appendString(b, v)
		}
		return b
	}
	b = str(b, "action", r.Action)
	b = str(b, "service", r.Service)
	b = str(b, "match", r.Match)
	if access || len(r.Targets) > 0 {
		b = append(b, `,"targets":[`...)
		for i, t := range r.Targets {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	b = str(b, "result", r.Result)
	b = str(b, "reason", r.Reason)
	if r.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, r.Message)
	}
	if access || r.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(r.PID), 10)
	}
	switch {
	case r.UID != nil:
		b = append(b, `,"uid":`...)
		b = strconv.AppendUint(b, uint64(*r.UID), 10)
	case access:
		b = append(b, `,"uid":null`...)
	}
	b = str(b, "binary_path", r.BinaryPath)
	b = str(b, "binary_hash", r.BinaryHash)
	if r.TeamID != "" {
		b = append(b, `,"team_id":`...)
		b = appendString(b, r.TeamID)
	}
	if access || r.Conn != 0 {
		b = append(b, `,"conn":`...)
		b = strconv.AppendUint(b, r.Conn, 10)
	}
	b = str(b, "request_id", r.RequestID)
	if len(r.Details) > 0 {
		b = append(b, `,"details":`...)
		b = append(b, r.Details...)
	}
	return b
}

// appendHashMember turns a canonical encoding into the stored form.
func appendHashMember(canonical []byte, hash string) []byte {
	b := canonical[:len(canonical)-1]
	b = append(b, `,"hash":"`...)
	b = append(b, hash...)
	return append(b, '"', '}')
}

// hashOf is the record hash of a canonical encoding.
func hashOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// appendTime writes t in UTC as timeLayout does, without the general
// formatter's cost: it runs once per request.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	digits := func(b []byte, v, n int) []byte {
		var buf [9]byte
		for i := n - 1; i >= 0; i-- {
			buf[i] = byte('0' + v%10)
			v /= 10
		}
		return append(b, buf[:n]...)
	}
	b = digits(b, year, 4)
	b = append(b, '-')
	b = digits(b, int(month), 2)
	b = append(b, '-')
	b = digits(b, day, 2)
	b = append(b, 'T')
	b = digits(b, hour, 2)
	b = append(b, ':')
	b = digits(b, minute, 2)
	b = append(b, ':')
	b = digits(b, sec, 2)
	b = append(b, '.')
	b = digits(b, t.Nanosecond(), 9)
	return append(b, 'Z')
}

const hexDigits = "0123456789abcdef"

// plainASCII marks the bytes appendString copies as they are without
// looking further: printable ASCII other than '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString writes s as a JSON string in the one form the canonical
// encoding allows.
func appendString(b []byte, s string) []byte {
	// Almost every string here (paths, hashes, names) is printable ASCII
	// that needs no escape: copy it in one go.
	i := 0
	for i < len(s) && plainASCII[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	if !utf8.ValidString(s) {
		s = toValidUTF8(s)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// toValidUTF8 replaces each invalid byte with U+FFFD, one for one, which is
// what a JSON decoder would make of it.
func toValidUTF8(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r) // range yields U+FFFD for each invalid byte
	}
	return string(out)
}
