package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// tricky holds strings that each take a different branch of encoding/json's
// string encoder.
var tricky = []string{
	``,
	`plain`,
	`"quoted" \back\slash /`,
	"\b\f\n\r\t",
	"\x00\x01\x1f\x7f",                // \u0000 \u0001 \u001f, DEL kept
	`<a href="x">&amp;</a>`,           // no HTML escaping
	"line\u2028para\u2029end",         // escaped even with HTML escaping off
	"\u2027\u202a",                    // neighbours of U+2028/U+2029, kept
	"caf\u00e9 \u20ac \U0001F600",     // valid multibyte, kept
	"\ufffd",                          // a valid U+FFFD, kept as UTF-8
	"a\xffb\xfe",                      // invalid bytes
	"\xe2\x80",                        // U+2028 cut short
	"\xe2\x80\xa8\xe2\x80",            // U+2028 then a truncated one
	"\xed\xa0\x80",                    // an encoded surrogate
	"\xc0\xaf",                        // overlong
	"\xf4\x90\x80\x80",                // beyond U+10FFFF
	"\x80abc",                         // lone continuation byte
	"end\xc3",                         // truncated at the end
	strings.Repeat("x\"\n\u2028", 40), // many escapes in a long string
}

func TestAppendResponseMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	many := make(map[string]string)
	for i := range 40 {
		many[fmt.Sprintf("k%02d\xff", 39-i)] = fmt.Sprint(i)
	}
	tests := []struct {
		name string
		resp *Response
		slow bool // left to encoding/json
	}{
		{"zero", &Response{}, false},
		{"empty success", Success(nil, nil), false},
		{"success, results nil", &Response{Status: StatusSuccess}, false},
		{"success, results empty", &Response{Status: StatusSuccess, Results: []Result{}}, false},
		{"failure drops results", &Response{Status: StatusError, Reason: ReasonNotFound, Results: []Result{{Target: "x", Value: strp("secret")}}}, false},
		{"unknown status drops results", &Response{Status: "maybe", Results: []Result{{Target: "x"}}}, false},
		{"missing empty is omitted", &Response{Status: StatusDenied, Missing: []string{}}, false},
		{"missing of empty strings", &Response{Status: StatusError, Missing: []string{"", ""}}, false},
		{"custom type", &Response{Type: "X\n\u2028", Status: StatusSuccess}, false},
		{"value nil, empty, set", Success(nil, []Result{{Target: "a"}, {Target: "b", Value: strp("")}, {Target: "c", Value: strp("v")}}), false},
		{"attributes nil and empty omitted", Success(nil, []Result{{Target: "a", Attributes: map[string]string{}}, {Target: "b"}}), false},
		{"attributes sorted by bytes", Success(nil, []Result{{Target: "a", Attributes: map[string]string{
			"z": "1", "Z": "2", "a": "", "é": "3", "\xff": "4", "\xfe": "5", "": "6", "a\x00": "7", "\u2028": "8",
		}}}), false},
		{"more attributes than the key buffer", Success(nil, []Result{{Target: "a", Attributes: many}}), false},
		{"id string", Success(json.RawMessage(`"r-1"`), nil), false},
		{"id string with escapes", Success(json.RawMessage(`"\"\\\/\b\f\n\r\t\u00e9\uD83D\ude00"`), nil), false},
		{"id string with raw non-ASCII", Success(json.RawMessage("\"caf\u00e9 <&> \u2028\""), nil), false},
		{"id string with invalid UTF-8", Success(json.RawMessage("\"a\xffb\""), nil), false},
		{"id numbers", Success(json.RawMessage(`-0.5e+10`), nil), false},
		{"id zero", Success(json.RawMessage(`0`), nil), false},
		{"id exponent", Success(json.RawMessage(`1E9`), nil), false},
		{"id true", Success(json.RawMessage(`true`), nil), false},
		{"id false", Success(json.RawMessage(`false`), nil), false},
		{"id null", Success(json.RawMessage(`null`), nil), false},
		{"id empty non-nil is omitted", Success(json.RawMessage{}, nil), false},
		{"id with spaces is compacted", Success(json.RawMessage(" 1\n"), nil), true},
		{"id object is compacted", Success(json.RawMessage(`{ "a" : [1, 2] }`), nil), true},
		{"id array", Success(json.RawMessage(`[]`), nil), true},
		{"id leading zero", Success(json.RawMessage(`01`), nil), true},
		{"id two values", Success(json.RawMessage(`1 2`), nil), true},
		{"id bare minus", Success(json.RawMessage(`-`), nil), true},
		{"id trailing dot", Success(json.RawMessage(`1.`), nil), true},
		{"id bare exponent", Success(json.RawMessage(`1e`), nil), true},
		{"id plus", Success(json.RawMessage(`+1`), nil), true},
		{"id unterminated string", Success(json.RawMessage(`"abc`), nil), true},
		{"id escaped closing quote", Success(json.RawMessage(`"abc\"`), nil), true},
		{"id bad escape", Success(json.RawMessage(`"\x"`), nil), true},
		{"id short unicode escape", Success(json.RawMessage(`"\u12"`), nil), true},
		{"id bad hex", Success(json.RawMessage(`"\u12g4"`), nil), true},
		{"id control byte in string", Success(json.RawMessage("\"a\tb\""), nil), true},
		{"id quote inside", Success(json.RawMessage(`"a"b"`), nil), true},
		{"id truncated literal", Success(json.RawMessage(`nul`), nil), true},
		{"id literal with tail", Success(json.RawMessage(`truex`), nil), true},
		{"id lone quote", Success(json.RawMessage(`"`), nil), true},
	}
	for i, s := range tricky {
		r := Failure(json.RawMessage(`7`), ReasonBackendError, s)
		r.Missing = []string{s, "m"}
		tests = append(tests, struct {
			name string
			resp *Response
			slow bool
		}{fmt.Sprintf("failure with tricky string %d", i), r, false})
		r = Success(json.RawMessage(`"x"`), []Result{
			{Target: s, Value: strp(s), Attributes: map[string]string{s: s, "k": s}},
			{Target: "t", Value: strp(s)},
		})
		r.Type = s
		r.Missing = []string{s}
		tests = append(tests, struct {
			name string
			resp *Response
			slow bool
		}{fmt.Sprintf("success with tricky string %d", i), r, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if fast := fastEncodable(tc.resp); fast == tc.slow {
				t.Errorf("fastEncodable = %v, want %v", fast, !tc.slow)
			}
			checkResponseEncoding(t, tc.resp)
		})
	}
}

// checkResponseEncoding checks that AppendResponse, WriteResponse and
// MarshalJSON give exactly what encoding/json gives for r (output or
// failure), and that the hand-written encoder's size is exact, which is what
// keeps it from ever reallocating a buffer it has written a secret to.
func checkResponseEncoding(t *testing.T, r *Response) {
	t.Helper()
	want, wantErr := encodeLine(r.wire())

	prefix := []byte("previous reply\n")
	got, err := AppendResponse(bytes.Clone(prefix), r)
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("AppendResponse succeeded with %q; encoding/json fails: %v", got, wantErr)
	case wantErr == nil && err != nil:
		t.Fatalf("AppendResponse: %v; encoding/json gives %q", err, want)
	case err != nil:
		if !bytes.Equal(got, prefix) {
			t.Errorf("AppendResponse failed but changed dst to %q", got)
		}
	case !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want):
		t.Fatalf("AppendResponse:\n got %q\nwant %q", got[min(len(prefix), len(got)):], want)
	}

	var w bytes.Buffer
	if err := WriteResponse(&w, r); (err != nil) != (wantErr != nil) || !bytes.Equal(w.Bytes(), want) {
		t.Errorf("WriteResponse: %q, %v; want %q, %v", w.Bytes(), err, want, wantErr)
	}

	b, err := r.MarshalJSON()
	if wantErr != nil {
		if err == nil {
			t.Errorf("MarshalJSON succeeded with %q; encoding/json fails: %v", b, wantErr)
		}
	} else if err != nil || !bytes.Equal(b, want[:len(want)-1]) {
		t.Errorf("MarshalJSON: %q, %v; want %q", b, err, want[:len(want)-1])
	}

	if fastEncodable(r) {
		if wantErr != nil {
			t.Fatalf("fastEncodable, but encoding/json fails: %v", wantErr)
		}
		n := responseLen(r)
		if n != len(want)-1 {
			t.Fatalf("responseLen = %d, the encoding is %d bytes", n, len(want)-1)
		}
		buf := make([]byte, 0, n)
		if out := appendResponse(buf, r); len(out) != n || cap(out) != n {
			t.Fatalf("appendResponse into a buffer of responseLen: len %d cap %d, want %d", len(out), cap(out), n)
		}
	}
}

func TestAppendResponseErrorKeepsDst(t *testing.T) {
	t.Parallel()
	dst := []byte("queued\n")
	got, err := AppendResponse(dst, Success(json.RawMessage(`{bad`), nil))
	var me *json.MarshalerError
	if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), "encode response: ") {
		t.Errorf("err = %v, want an encode response error from encoding/json", err)
	}
	if string(got) != "queued\n" {
		t.Errorf("dst = %q, want it unchanged", got)
	}
}

// TestAppendResponseSlowPathLeavesNoCopyBehind is
// TestAppendResponseLeavesNoCopyBehind for a response encoding/json encodes.
func TestAppendResponseSlowPathLeavesNoCopyBehind(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s3cr3t", 50)
	resp := Success(json.RawMessage(` "spaced id" `), []Result{{Target: "t", Value: &secret}})
	if fastEncodable(resp) {
		t.Fatal("the test needs a response left to encoding/json")
	}
	buf, err := AppendResponse(make([]byte, 0, 16), resp)
	if err != nil {
		t.Fatal(err)
	}
	old := buf
	if buf, err = AppendResponse(buf, resp); err != nil {
		t.Fatal(err)
	}
	if &old[:cap(old)][0] == &buf[:cap(buf)][0] {
		t.Fatal("the buffer did not grow; the test needs it to")
	}
	if bytes.Contains(old[:cap(old)], []byte("s3cr3t")) {
		t.Error("the outgrown buffer still holds the secret value")
	}
}

// FuzzAppendResponseMatchesEncodingJSON holds the hand-written response
// encoder to encoding/json (encodeLine(r.wire())) byte for byte, errors
// included. Lists are packed into one string each: missing splits on \x1e;
// results split on \x1e into results and each result on \x1f into target,
// then value, then attribute keys and values. shape picks what a string
// cannot say: nil against empty lists and maps, absent values, the status.
func FuzzAppendResponseMatchesEncodingJSON(f *testing.F) {
	f.Add("", "", "", "", []byte(nil), "", "", uint16(0))
	f.Add("RESPONSE", "success", "", "", []byte(`17`), "", "access_key_id\x1fAKIAIOSFODNN7EXAMPLE", uint16(0))
	f.Add("", "", "", "", []byte(`"r"`), "d", "a\x1f<v>\n&\x1fz\x1f1\x1fenv\x1fprod\x1eb\x1f\x1ec", uint16(0))
	f.Add("", "denied", "service_not_allowed", "not for service aws", []byte(`null`), "", "leak\x1fsecret", uint16(1<<5))
	f.Add("", "error", "not_found", "2 targets do not exist", []byte(`"q"`), "x\x1ey", "", uint16(2<<5))
	f.Add("X", "weird", "r", "m", []byte(` 1 `), "", "a", uint16(3<<5|0x1f))
	f.Add("", "", "", "", []byte(`{"a": [1, "b"]}`), "", "", uint16(2))
	f.Add("", "", "", "", []byte(`01`), "", "", uint16(4))
	f.Add("", "", "", "", []byte("\"a\xffb\\u00e9\""), "", "", uint16(8))
	for _, s := range tricky {
		f.Add(s, "", s, s, []byte(`-1.5E+3`), s+"\x1e"+s, s+"\x1f"+s+"\x1f"+s+"\x1f"+s+"\x1e"+s, uint16(0))
	}
	f.Fuzz(func(t *testing.T, typ, status, reason, message string, id []byte, missing, results string, shape uint16) {
		r := &Response{Type: typ, ID: id, Reason: Reason(reason), Message: message}
		if shape&8 != 0 && id == nil {
			r.ID = json.RawMessage{}
		}
		switch shape >> 5 & 3 {
		case 0:
			r.Status = StatusSuccess
		case 1:
			r.Status = StatusDenied
		case 2:
			r.Status = StatusError
		default:
			r.Status = Status(status)
		}
		if missing != "" || shape&1 != 0 {
			r.Missing = strings.Split(missing, "\x1e")
			if missing == "" {
				r.Missing = []string{}
			}
		}
		if results != "" || shape&2 != 0 {
			r.Results = []Result{}
		}
		if results != "" {
			for rec := range strings.SplitSeq(results, "\x1e") {
				fields := strings.Split(rec, "\x1f")
				res := Result{Target: fields[0]}
				if len(fields) > 1 {
					res.Value = &fields[1]
				}
				if len(fields) > 2 || shape&4 != 0 {
					res.Attributes = map[string]string{}
				}
				for i := 2; i < len(fields); i += 2 {
					v := ""
					if i+1 < len(fields) {
						v = fields[i+1]
					}
					res.Attributes[fields[i]] = v
				}
				r.Results = append(r.Results, res)
			}
		}
		checkResponseEncoding(t, r)
	})
}

// TestPlainRun checks the eight-bytes-at-a-time scan against the table for
// every byte at every position, among the plain bytes nearest the ones it
// looks for (where a borrow would show).
func TestPlainRun(t *testing.T) {
	t.Parallel()
	for _, fill := range []byte{'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f} {
		for c := range 256 {
			for p := range 20 {
				s := []byte(strings.Repeat(string(fill), 20))
				s[p] = byte(c)
				for start := range p + 1 {
					want := len(s)
					if jsonEscape[c] != 0 {
						want = p
					}
					if got := plainRun(string(s), start); got != want {
						t.Fatalf("plainRun(%q, %d) = %d, want %d", s, start, got, want)
					}
				}
			}
		}
	}
}
