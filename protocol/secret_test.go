package protocol

import (
	"bytes"
	"encoding/json"
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
