package protocol

import (
	"encoding/binary"
	"math/bits"
)

// validJSON reports whether b is exactly one JSON value, with optional
// surrounding whitespace: the verdict of encoding/json's Valid, on every input.
//
// It is hand-written because it runs on every request line, and json.Valid,
// which steps a state machine through a function pointer per byte, was the
// largest single cost of decoding a small request. This is a plain loop over
// the bytes, with a table and eight-byte words for string contents, and it
// allocates nothing unless the input nests more than 128 levels deep. Its
// verdict is pinned to json.Valid's by the differential fuzz test
// FuzzValidMatchesEncodingJSON (valid_test.go), so any change here must keep
// that test passing; what json.Valid accepts is deliberately reproduced,
// including:
//
//   - whitespace is space, tab, CR and LF only (no BOM, no form feed);
//   - numbers follow RFC 8259: an optional '-', then 0 or a digit run not
//     starting with 0, an optional '.' with at least one digit, an optional
//     exponent with an optional sign and at least one digit;
//   - in strings, bytes below 0x20 are refused, an escape is one of
//     \" \\ \/ \b \f \n \r \t or \u with exactly four hex digits, and any
//     other byte, invalid UTF-8 and lone surrogate escapes included, is
//     accepted (the decoder refuses those later, by field name);
//   - more than maxNestingDepth arrays and objects open at once is refused.
func validJSON(b []byte) bool {
	// open holds one bit per open container, set for an object; the first
	// 128 levels live on the stack.
	var small [2]uint64
	open := small[:]
	depth := 0
	i := skipSpace(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxNestingDepth {
				return false
			}
			if depth>>6 == len(open) {
				open = append(open, 0)
			}
			bit := uint64(1) << (depth & 63)
			i = skipSpace(b, i+1)
			if i >= len(b) {
				return false
			}
			if c == '[' {
				open[depth>>6] &^= bit
				depth++
				if b[i] != ']' {
					continue // the first element
				}
			} else {
				open[depth>>6] |= bit
				depth++
				if b[i] != '}' {
					if i = objectKey(b, i); i < 0 {
						return false
					}
					continue // the first member's value
				}
			}
			depth-- // an empty container, closed by b[i]
			i++
		case '"':
			if i = validStringEnd(b, i); i < 0 {
				return false
			}
		case 't':
			if len(b)-i < 4 || string(b[i:i+4]) != "true" {
				return false
			}
			i += 4
		case 'f':
			if len(b)-i < 5 || string(b[i:i+5]) != "false" {
				return false
			}
			i += 5
		case 'n':
			if len(b)-i < 4 || string(b[i:i+4]) != "null" {
				return false
			}
			i += 4
		default:
			if i = numberEnd(b, i); i < 0 {
				return false
			}
		}
		// A value ended just before b[i]: what follows must close its
		// container or separate it from the next value. A number, true,
		// false or null running into other bytes ("01", "truex") ends here.
		for {
			i = skipSpace(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			object := open[(depth-1)>>6]&(1<<((depth-1)&63)) != 0
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
				if object {
					if i = objectKey(b, i); i < 0 {
						return false
					}
				}
			case '}':
				if !object {
					return false
				}
				depth--
				i++
				continue
			case ']':
				if object {
					return false
				}
				depth--
				i++
				continue
			default:
				return false
			}
			break // the next value starts at b[i]
		}
	}
}

// maxNestingDepth is how many arrays and objects may be open at once:
// encoding/json's scanner (maxNestingDepth in scanner.go) refuses one more.
const maxNestingDepth = 10000

// objectKey checks the key string at b[i] and the colon after it, and
// returns the index of the member's value (after any whitespace), or -1.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validStringEnd(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// strPlain marks the bytes that stand for themselves inside a JSON string:
// all but the quote, the backslash and the control bytes below 0x20.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexDigit marks the bytes allowed in a \u escape.
var hexDigit = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()

const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// validStringEnd checks the string starting at b[i] == '"' and returns the
// index just past its closing quote, or -1. It looks at eight bytes at a time
// (values can be 64 KiB long) and jumps to the first that is not plain; the
// last few bytes of the line go through the table.
func validStringEnd(b []byte, i int) int {
	i++
	for {
		if len(b)-i >= 8 {
			v := binary.LittleEndian.Uint64(b[i:])
			// The high bit of a byte of special is set where v has a byte
			// below 0x20, a '"' or a '\\' (v^q has a zero byte there).
			// Above the first such byte, borrows can set more bits; below
			// it none are set, so its index is exact.
			q := v ^ ('"' * swarOnes)
			s := v ^ ('\\' * swarOnes)
			special := ((v - 0x20*swarOnes) | (q - swarOnes) | (s - swarOnes)) &^ v & swarHighs
			if special == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(special) >> 3
		} else {
			for i < len(b) && strPlain[b[i]] {
				i++
			}
			if i >= len(b) {
				return -1
			}
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !hexDigit[b[i+2]] || !hexDigit[b[i+3]] || !hexDigit[b[i+4]] || !hexDigit[b[i+5]] {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default: // a control byte
			return -1
		}
	}
}

// numberEnd checks the number starting at b[i] and returns the index just
// past it, or -1. It stops at the first byte that cannot continue the
// number; the caller judges that byte.
func numberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return -1
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i = digitsEnd(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
