package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	req(`"id":"r1","action":"read","service":"aws","targets":["key"]`),
	req(`"id":1e3,"action":"read","service":"aws","match":"exact","targets":["a","b"],"require_all":true`),
	req(`"action":"read","service":"aws","match":"prefix","targets":[""]`),
	req(`"action":"write","service":"db","targets":["u","p"],"values":["root","a\nb"],"attributes":{"env":"prod"}`),
	req(`"action":"delete","service":"db","match":"prefix","targets":["tmp/"]`),
	req(`"action":"search","service":"db"`),
	req(`"action":"search","service":"db","match":"exact","targets":["a"],"attributes":{"k":"v"}`),
	req(`"id":null,"action":"check","service":"x"`),
	`{"\u0074ype":"REQUEST","action":"read","service":"\u00e9","targets":["\ud83d\ude00","\"\\\/"]}`,
	`{"pid":1,"type":"REQUEST","x":{"y":["}",{"z":"]"}]},"action":"search","service":"s"}` + " \r",
	req(`"action":"read","service":"s","targets":["\ud800"]`),
	req(`"action":"read","service":"s","targets":["a","a"]`),
	req(`"id":{"a":1},"action":"check"`),
	req(`"action":"check"`) + `x`,
	`{"type":"REQUEST","action":"read"`,
	`[]`,
	``,
	"{\"type\":\"REQUEST\",\"action\":\"read\",\"service\":\"a\xff\",\"targets\":[\"t\"]}",
}

// FuzzDecodeRequest checks that no line panics the decoder, that every
// rejection is a well-formed ErrMalformed, and that every accepted request
// survives re-encoding unchanged: what the daemon acts on is exactly what a
// client meant, whichever way the client encoded it.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := DecodeRequest(line)
		if r == nil {
			t.Fatal("nil *Request")
		}
		if len(r.ID) > 0 && !fastEncodable(&Response{ID: r.ID}) {
			// Correct either way, but replies to such ids would all go
			// through encoding/json, the slow path.
			t.Fatalf("id %q would not take the hand-written reply encoder", r.ID)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
			if !reflect.DeepEqual(*r, Request{ID: r.ID}) {
				t.Fatalf("rejected request carries more than its id: %+v", r)
			}
			if len(r.ID) > 0 && !validID(r.ID) {
				t.Fatalf("recovered id %q is not a JSON scalar", r.ID)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted request fails Validate: %v", err)
		}
		for _, encode := range []func(*Request) ([]byte, error){
			func(r *Request) ([]byte, error) { return json.Marshal(r) },
			func(r *Request) ([]byte, error) {
				var b bytes.Buffer
				err := WriteRequest(&b, r)
				return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
			},
		} {
			b, err := encode(r)
			if err != nil {
				t.Fatalf("re-encoding an accepted request: %v", err)
			}
			again, err := DecodeRequest(b)
			if err != nil {
				t.Fatalf("re-encoded request %s rejected: %v", b, err)
			}
			if !sameRequest(r, again) {
				t.Fatalf("re-encoding changed the request:\n%+v\n%+v", r, again)
			}
		}
	})
}

// sameRequest compares requests, taking ids as JSON values: json.Marshal may
// re-escape a string id ("<" as \u003c) without changing it.
func sameRequest(a, b *Request) bool {
	x, y := *a, *b
	x.ID, y.ID = nil, nil
	return reflect.DeepEqual(x, y) && sameJSON(a.ID, b.ID)
}

func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	db := json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// FuzzUnquote holds the hand-written string decoder to encoding/json's: the
// same text for every string both accept, and a refusal only where
// encoding/json would have substituted U+FFFD.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`plain`, `a\"b\\c\/d`, `\b\f\n\r\t`, `\u00e9\u20AC`, `\ud83d\ude00`, `\ud800`, `\udc00x`, `\ud800\u0041`, `\ud800\\`, `\ud800\ud800\udc00`, "ab\xffc\\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := []byte(`"` + s + `"`)
		if !json.Valid(tok) {
			return
		}
		got, problem := unquote(tok)
		var std string
		if err := json.Unmarshal(tok, &std); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", tok, err)
		}
		if problem != "" {
			if !strings.ContainsRune(std, utf8.RuneError) {
				t.Fatalf("unquote refused %q (%s), encoding/json reads %q", tok, problem, std)
			}
			return
		}
		if utf8.ValidString(got) {
			if got != std {
				t.Fatalf("unquote(%q) = %q, encoding/json says %q", tok, got, std)
			}
		} else if !strings.ContainsRune(std, utf8.RuneError) {
			t.Fatalf("unquote(%q) kept invalid UTF-8 %q, but encoding/json read %q", tok, got, std)
		}
	})
}
