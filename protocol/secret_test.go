package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A value given as bytes with WithSecret is sent exactly as the same value
// given as a string, on the fast path and on encoding/json's, and
// ClearSecrets wipes the caller's bytes.
func TestWithSecretEncodesLikeValue(t *testing.T) {
	for _, id := range []string{"", `7`, `"r-1"`, `[1, 2]`} { // the last takes encoding/json's path
		for _, v := range []string{"", "s3cr3t", "line\nbreak \"quoted\" \u2028 \xff"} {
			plain := v
			want := Success(json.RawMessage(id), []Result{{Target: "t", Value: &plain, Attributes: map[string]string{"k": "v"}}})
			if id == "" {
				want.ID = nil
			}
			secret := []byte(v)
			got := Success(want.ID, []Result{Result{Target: "t", Attributes: map[string]string{"k": "v"}}.WithSecret(secret)})
			wb, err := AppendResponse(nil, want)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := AppendResponse(nil, got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wb, gb) {
				t.Fatalf("id %s value %q:\n got %s\nwant %s", id, v, gb, wb)
			}
			mj, err := json.Marshal(got)
			if err != nil || !bytes.Equal(append(mj, '\n'), wb) {
				t.Fatalf("MarshalJSON: %s, %v; want %s", mj, err, wb)
			}
			got.ClearSecrets()
			if bytes.Count(secret, []byte{0}) != len(secret) {
				t.Fatalf("ClearSecrets left %q", secret)
			}
		}
	}
	// A nil value is an empty one, not an absent one.
	r := Success(nil, []Result{Result{Target: "t"}.WithSecret(nil)})
	if b, _ := AppendResponse(nil, r); !bytes.Contains(b, []byte(`"value":""`)) {
		t.Fatalf("WithSecret(nil): %s", b)
	}
}

// decodeBoth decodes line both ways and fails unless they agree: the same
// verdict and error, and on success the same request once the held values
// are read back as strings.
func decodeBoth(t *testing.T, line []byte) {
	t.Helper()
	want, werr := DecodeRequest(line)
	got, gerr := DecodeRequestSecrets(line)
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("%q: DecodeRequest error %v, DecodeRequestSecrets error %v", line, werr, gerr)
	}
	if got.Values != nil {
		t.Fatalf("%q: DecodeRequestSecrets filled Values", line)
	}
	if got.ValueCount() != want.ValueCount() {
		t.Fatalf("%q: %d values held, want %d", line, got.ValueCount(), want.ValueCount())
	}
	var vals []string
	for i := range got.ValueCount() {
		vals = append(vals, string(got.SecretValue(i)))
	}
	back := *got
	back.Values, back.secrets, back.holdSecrets = vals, nil, false
	if !reflect.DeepEqual(&back, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", line, back, *want)
	}
	held := got.secrets
	got.ClearSecrets()
	for i, v := range held {
		if bytes.Count(v, []byte{0}) != len(v) {
			t.Fatalf("%q: value %d not wiped: %q", line, i, v)
		}
	}
}

var secretSeeds = []string{
	`{"type":"REQUEST","action":"write","service":"s","targets":["a","b"],"values":["v1","line\nbreak \u00e9 \ud83d\ude00 \"q\""]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":[""]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":["\ud800"]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":[1]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a","b"],"values":["only one"]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":["\xff"]}`,
	`{"type":"REQUEST","action":"read","service":"s","targets":["a"],"values":["x"]}`,
	`{"type":"REQUEST","action":"check","values":["x"]}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":null}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":"x"}`,
	`{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":["a"],"values":["b"]}`,
}

func TestDecodeRequestSecretsMatchesDecodeRequest(t *testing.T) {
	for _, s := range secretSeeds {
		decodeBoth(t, []byte(s))
	}
	big := `{"type":"REQUEST","action":"write","service":"s","targets":["a"],"values":["` + strings.Repeat("x", MaxValueLen+1) + `"]}`
	decodeBoth(t, []byte(big))
}

func FuzzDecodeRequestSecretsMatchesDecodeRequest(f *testing.F) {
	for _, s := range secretSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		decodeBoth(t, line)
	})
}
