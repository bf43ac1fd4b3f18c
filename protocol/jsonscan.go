package protocol

import (
	"bytes"
	"iter"
	"unicode/utf16"
	"unicode/utf8"
)

// The request decoder walks JSON text that validJSON (valid.go) has already
// accepted, so these helpers trust the syntax and only find boundaries; they
// would index out of range on invalid input. Walking by hand instead of
// json.Unmarshal into the struct is what lets the decoder match field names
// exactly (encoding/json folds case), refuse duplicate fields, tell null from
// a wrong type, refuse unpaired surrogate escapes instead of turning them into
// U+FFFD (which would silently change a secret), and still recover the id when
// some other field is broken.

// isSpace reports whether c is JSON whitespace. The first comparison settles
// every byte that is not, which is what skipSpace mostly sees.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
// It jumps from quote to quote, because values can be 64 KiB long and a byte
// loop over them would dominate decoding.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		j += bytes.IndexByte(b[j:], '"')
		// A quote preceded by an odd run of backslashes is escaped. The run
		// cannot reach past b[i], which is the opening quote.
		n := 0
		for p := j - 1; b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// members yields the raw key (with quotes) and raw value of each member of
// the object obj, which runs from '{' to '}'.
func members(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		i := skipSpace(obj, 1)
		for obj[i] != '}' {
			keyEnd := stringEnd(obj, i)
			key := obj[i:keyEnd]
			i = skipSpace(obj, skipSpace(obj, keyEnd)+1) // past ':'
			end := valueEnd(obj, i)
			if !yield(key, obj[i:end]) {
				return
			}
			i = skipSpace(obj, end)
			if obj[i] == ',' {
				i = skipSpace(obj, i+1)
			}
		}
	}
}

// elements yields the index and raw value of each element of the array arr,
// which runs from '[' to ']'.
func elements(arr []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		i := skipSpace(arr, 1)
		for n := 0; arr[i] != ']'; n++ {
			end := valueEnd(arr, i)
			if !yield(n, arr[i:end]) {
				return
			}
			i = skipSpace(arr, end)
			if arr[i] == ',' {
				i = skipSpace(arr, i+1)
			}
		}
	}
}

// unquote decodes the JSON string token tok (quotes included). It keeps raw
// bytes as they are, invalid UTF-8 included, so that validation can reject
// them by name instead of them being replaced behind the client's back. It
// returns a problem description for an escaped surrogate that is not part of
// a pair, which has no UTF-8 form.
func unquote(tok []byte) (string, string) {
	s := tok[1 : len(tok)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s), ""
	}
	out, problem := unescape(make([]byte, 0, len(s)), s)
	if problem != "" {
		return "", problem
	}
	return string(out), ""
}

// unquoteBytes is unquote for a value that is a secret: the result is a new
// slice (never nil) the caller can clear, and no other copy is left behind.
func unquoteBytes(tok []byte) ([]byte, string) {
	s := tok[1 : len(tok)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return append(make([]byte, 0, len(s)), s...), ""
	}
	out, problem := unescape(make([]byte, 0, len(s)), s)
	if problem != "" {
		clear(out)
		return nil, problem
	}
	return out, ""
}

// unescape appends the decoded content of the string body s, which holds at
// least one backslash escape, to out.
func unescape(out, s []byte) ([]byte, string) {
	i := bytes.IndexByte(s, '\\')
	for {
		out = append(out, s[:i]...)
		s = s[i:]
		if len(s) == 0 {
			return out, ""
		}
		// s[0] is a backslash; validJSON vouches for what follows it.
		switch c := s[1]; c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[2:6])
			s = s[4:]
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || len(s) < 8 || s[2] != '\\' || s[3] != 'u' {
					return out, "contains an unpaired UTF-16 surrogate escape, which is not valid Unicode"
				}
				r = utf16.DecodeRune(r, hex4(s[4:8]))
				if r == utf8.RuneError {
					return out, "contains an unpaired UTF-16 surrogate escape, which is not valid Unicode"
				}
				s = s[6:]
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, c)
		}
		s = s[2:]
		if i = bytes.IndexByte(s, '\\'); i < 0 {
			i = len(s)
		}
	}
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// kind names the JSON type of a raw value for error messages.
func kind(raw []byte) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
