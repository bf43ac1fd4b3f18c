package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// validSeeds are the inputs where a hand-written JSON validator is most
// likely to part from encoding/json.
var validSeeds = []string{
	// whole input
	``, ` `, " \t\r\n", "\ufeff{}", "{}\ufeff", "\f{}", "\v1", "\x00", "{}\x00",
	`{}`, ` {} `, `{} {}`, `{}x`, `{},`, `{}}`, `{}]`, `1 2`, `"a""b"`, `nul`, `nullx`, `null `,
	`true`, `tru`, `truex`, `trUe`, `false`, `fals`, `falsey`, `null`, `NaN`, `Infinity`, `undefined`,
	// numbers
	`0`, `-0`, `-0.0`, `1e5`, `1E5`, `1e+5`, `1e-5`, `1e`, `1e+`, `1e-`, `1ee5`, `1.e5`, `01`, `-01`,
	`00`, `1.`, `.5`, `-.5`, `-`, `--1`, `+1`, `-a`, `1.5.5`, `1.5e5.5`, `0x10`, `1_000`, `0e0`, `-0E-0`,
	`123456789012345678901234567890`, `1e999999`, `[-]`, `[1.]`, `[1,]`, `{"a":-}`, `{"a":1.}`, `{"a":01}`,
	`[0,-0,1.5,2e3]`, `[1 2]`, `[1,,2]`, `[,1]`,
	// strings and escapes
	`""`, `"`, `"a`, `"\"`, `"\\"`, `"\\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\x41"`, `"\'"`, `"\0"`,
	`"\u"`, `"\u1"`, `"\u12"`, `"\u123"`, `"\u1234"`, `"\u12345"`, `"\uZZZZ"`, `"\u12G4"`, `"\U1234"`,
	`"\ud800"`, `"\udc00"`, `"\ud800\udc00"`, `"\udc00\ud800"`, `"\ud800\u0041"`, `"\uDBFF\uDFFF"`,
	"\"\x00\"", "\"\x01\"", "\"\x1f\"", "\"\t\"", "\"\n\"", "\"\x7f\"", "\"\x20\"",
	"\"\xff\"", "\"\xc3\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xc0\xaf\"", "\xff", "[\xff]",
	`"0123456789abcdef0123456789abcdef"`, `"0123456789abcdef0123456789abcde\"`, "\"0123456789abcdef\x1f0123456789\"",
	"\"01234567\x7f\x80\xfe\xff\"", `"0123456789\u00e9abcdef"`, "\"0123456\\\"\x1f\"", `"abcdefg\`, `"abcdefgh`,
	// objects and arrays
	`[]`, `[ ]`, `[`, `]`, `[[]]`, `[[]`, `[]]`, `[}`, `{]`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`,
	`{,}`, `{"a":1 "b":2}`, `{1:2}`, `{a:1}`, `{'a':1}`, `{"a":1}`, `{ "a" : 1 , "b" : [ 1 , { } ] }`,
	`{"a":[1,{"b":[]}],"c":{}}`, `{"a":[1,{"b":[]}],"c":{}`, `{"a":[1,{"b":[}],"c":{}}`, `[{"a":1]}`,
	`{"a":{"b":{"c":[[[["x"]]]]}}}`, `{"\u0074ype":1}`, `{"a\"":1}`, "{\"a\x01\":1}",
	// request lines
	`{"type":"REQUEST","action":"read","service":"svc","targets":["t000"]}`,
	`{"type":"REQUEST","id":17,"action":"read","service":"aws","targets":["access_key_id"]}` + "\r",
}

// nested returns n levels of arrays or objects around a value.
func nested(n int, object bool) string {
	if object {
		return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n)
	}
	return strings.Repeat(`[`, n) + `1` + strings.Repeat(`]`, n)
}

// mixedNested alternates arrays and objects, n levels in all.
func mixedNested(n int) string {
	var open, close strings.Builder
	for i := range n {
		if i%3 == 1 {
			open.WriteString(`{"k":`)
			close.WriteString(`}`)
		} else {
			open.WriteString(`[0,`)
			close.WriteString(`]`)
		}
	}
	c := []byte(close.String())
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return open.String() + `true` + string(c)
}

// nestingSeeds has nesting around the 128 levels validJSON keeps on the
// stack and around maxNestingDepth, for the plain tests. The fuzzer gets its
// nesting from wrapped instead: a 20 KiB seed would have it spend up to a
// minute minimizing each new input it found, running nothing else meanwhile.
func nestingSeeds() []string {
	var s []string
	for _, n := range []int{63, 64, 65, 127, 128, 129, 200, maxNestingDepth - 1, maxNestingDepth, maxNestingDepth + 1} {
		s = append(s, nested(n, false), nested(n, true), mixedNested(n))
	}
	// Unclosed and badly closed deep input, and runs of openers alone.
	return append(s,
		strings.Repeat(`[`, 200), mixedNested(200)[1:],
		strings.Repeat(`[`, 200)+strings.Repeat(`]`, 199)+`}`,
		strings.Repeat(`{"":`, 130)+`[`+strings.Repeat(`}`, 130)+`]`,
		strings.Repeat(`[`, maxNestingDepth), strings.Repeat(`[`, maxNestingDepth+1),
		mixedNested(maxNestingDepth)[1:], mixedNested(maxNestingDepth + 1)[1:],
		strings.Repeat(`[`, maxNestingDepth+1)+`x`,
		strings.Repeat(`[`, maxNestingDepth+1)+strings.Repeat(`]`, maxNestingDepth))
}

// wrapped puts b inside n levels of arrays and objects, mixed.
func wrapped(b []byte, n int) []byte {
	if n == 0 {
		return b
	}
	var open, close []byte
	for i := range n {
		if i%3 == 1 {
			open = append(open, `{"k":`...)
			close = append(close, '}')
		} else {
			open = append(open, '[')
			close = append(close, ']')
		}
	}
	slices.Reverse(close)
	return append(append(open, b...), close...)
}

func TestValidJSONNesting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want bool
	}{
		{nested(maxNestingDepth, false), true},
		{nested(maxNestingDepth, true), true},
		{mixedNested(maxNestingDepth), true},
		{nested(maxNestingDepth+1, false), false},
		{nested(maxNestingDepth+1, true), false},
		{mixedNested(maxNestingDepth + 1), false},
	} {
		if got, std := validJSON([]byte(tc.line)), json.Valid([]byte(tc.line)); got != tc.want || std != tc.want {
			t.Errorf("%.20s... (%d bytes): validJSON %v, json.Valid %v, want %v", tc.line, len(tc.line), got, std, tc.want)
		}
	}
}

// TestValidJSONDeep compares validJSON with json.Valid on nesting around
// the limit, which the fuzzer does not reach (see nestingSeeds), with every
// seed inside maxNestingDepth-1 and maxNestingDepth levels.
func TestValidJSONDeep(t *testing.T) {
	t.Parallel()
	check := func(line string) {
		t.Helper()
		if got, want := validJSON([]byte(line)), json.Valid([]byte(line)); got != want {
			t.Fatalf("validJSON(%.40q... %d bytes) = %v, json.Valid says %v", line, len(line), got, want)
		}
	}
	for _, s := range nestingSeeds() {
		check(s)
	}
	for _, s := range validSeeds {
		for _, n := range []int{maxNestingDepth - 1, maxNestingDepth} {
			check(strings.Repeat(`[`, n) + s + strings.Repeat(`]`, n))
			check(strings.Repeat(`{"a":`, n) + s + strings.Repeat(`}`, n))
		}
	}
}

// TestValidJSONLong compares validJSON with json.Valid on strings of the
// largest value size with a byte of each kind at each offset of the last
// words, and at the start, so the eight-byte steps meet it at every
// alignment and the tail is checked byte by byte.
func TestValidJSONLong(t *testing.T) {
	t.Parallel()
	value := []byte(strings.Repeat("0123456789abcdef", MaxValueLen/16))
	for _, ins := range []string{"\"", "\\", "\\n", "\\u00e9", "\\u00", "\\x", "\x00", "\x1f", "\x7f", "\xff", "\xc3\xa9", "\t"} {
		for _, at := range []int{0, 1, 7, 8, 9} {
			for _, from := range []int{at, len(value) - 24 + at} {
				for _, suffix := range []string{`"`, `"]`, `" `, ``} {
					v := append(append(bytes.Clone(value[:from]), ins...), value[from:]...)
					line := append(append([]byte(`"`), v...), suffix...)
					if got, want := validJSON(line), json.Valid(line); got != want {
						t.Errorf("validJSON: %v, json.Valid: %v, for %q at %d, suffix %q", got, want, ins, from, suffix)
					}
				}
			}
		}
	}
}

func TestValidJSONDoesNotAllocate(t *testing.T) {
	line := []byte(mixedNested(128) + " ")
	if !validJSON(line) {
		t.Fatal("validJSON refuses the test line")
	}
	if n := testing.AllocsPerRun(100, func() { validJSON(line) }); n != 0 {
		t.Errorf("validJSON allocates %v times per call", n)
	}
}

// FuzzValidMatchesEncodingJSON holds validJSON to json.Valid's verdict, and
// DecodeRequest to what it returned when it ran json.Valid (decodeRequestOld
// below): the same Request, the same error text, on every input. The input
// is b inside levels of arrays and objects, which lets small inputs reach
// past the 128 levels validJSON keeps on the stack.
func FuzzValidMatchesEncodingJSON(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s), uint8(0))
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(0))
	}
	for _, s := range []struct {
		b      string
		levels uint8
	}{
		{``, 64}, {`1`, 127}, {`1`, 128}, {`[]`, 127}, {`{}`, 128}, {`[`, 127}, {`]`, 128},
		{`{"a":[]}`, 200}, {`[1,{"b":-0.5e3}]`, 255}, {`"\u12"`, 130}, {`x`, 255},
	} {
		f.Add([]byte(s.b), s.levels)
	}
	f.Fuzz(func(t *testing.T, b []byte, levels uint8) {
		// Past a few KiB an input teaches nothing new (TestValidJSONLong
		// has the long strings), and the fuzzer would spend up to a minute
		// minimizing each one it found, running nothing else meanwhile.
		if len(b) > 4<<10 {
			return
		}
		b = wrapped(b, int(levels))
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
		if got, want := validID(b), validIDOld(b); got != want {
			t.Fatalf("validID(%q) = %v, with json.Valid it was %v", b, got, want)
		}
		checkDecodeMatchesOld(t, b)
	})
}

func TestDecodeRequestMatchesOld(t *testing.T) {
	t.Parallel()
	seeds := append(append(append([]string{}, validSeeds...), fuzzSeeds...), nestingSeeds()...)
	for _, s := range seeds {
		checkDecodeMatchesOld(t, []byte(s))
		// The same line inside a request, and with whitespace around it.
		checkDecodeMatchesOld(t, []byte(req(`"id":`+s+`,"action":"check"`)))
		checkDecodeMatchesOld(t, []byte(req(`"action":"read","service":"s","targets":[`+s+`]`)))
		checkDecodeMatchesOld(t, []byte(" \t"+s+"\r\n "))
	}
}

func checkDecodeMatchesOld(t *testing.T, line []byte) {
	t.Helper()
	orig := bytes.Clone(line)
	got, gotErr := DecodeRequest(line)
	want, wantErr := decodeRequestOld(orig)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("DecodeRequest(%q): error %v, the json.Valid path said %v", line, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeRequest(%q) = %+v, the json.Valid path gave %+v", line, got, want)
	}
	if !bytes.Equal(line, orig) {
		t.Fatalf("DecodeRequest changed its input to %q", line)
	}
}

// decodeRequestOld and decodeLineOld are DecodeRequest and decodeLine as
// they were before validJSON replaced json.Valid: the oracle for the
// differential tests. Validate, which both call, now checks an id with
// validJSON too; the fuzz test holds validID to validIDOld separately.
func decodeRequestOld(line []byte) (*Request, error) {
	var req Request
	err := decodeLineOld(&req, line)
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		return &Request{ID: req.ID}, err
	}
	if req.Action == ActionCheck {
		req = Request{Type: req.Type, ID: req.ID, Action: req.Action}
	}
	return &req, nil
}

func decodeLineOld(req *Request, line []byte) error {
	if !json.Valid(line) {
		return syntaxError(req, line)
	}
	i := skipSpace(line, 0)
	raw := line[i:valueEnd(line, i)]
	if raw[0] != '{' {
		return malformed("", "a request must be a JSON object, not "+kind(raw))
	}
	return decodeObject(req, raw)
}

func validIDOld(id json.RawMessage) bool {
	if !json.Valid(id) || !utf8.Valid(id) {
		return false
	}
	c := bytes.TrimLeft(id, " \t\r\n")[0]
	return c != '{' && c != '['
}

// BenchmarkValidJSON compares validJSON with json.Valid on a small request
// and on a write of one value of the largest size.
func BenchmarkValidJSON(b *testing.B) {
	value := strings.Repeat("0123456789abcdef", MaxValueLen/16)
	for _, line := range []struct{ name, text string }{
		{"read", `{"type":"REQUEST","action":"read","service":"svc","targets":["t000"]}`},
		{"write64K", req(`"action":"write","service":"s","targets":["t"],"values":["` + value + `"]`)},
	} {
		for _, v := range []struct {
			name  string
			valid func([]byte) bool
		}{{"validJSON", validJSON}, {"json.Valid", json.Valid}} {
			b.Run(line.name+"/"+v.name, func(b *testing.B) {
				text := []byte(line.text)
				b.ReportAllocs()
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					if !v.valid(text) {
						b.Fatal("refused")
					}
				}
			})
		}
	}
}
