package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// writeRecorder records each Write call separately.
type writeRecorder struct {
	writes []string
	short  bool
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	if w.short {
		return len(p) / 2, nil
	}
	return len(p), nil
}

func writeResponse(t *testing.T, r *Response) string {
	t.Helper()
	var w writeRecorder
	if err := WriteResponse(&w, r); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) != 1 {
		t.Fatalf("WriteResponse made %d Write calls, want 1", len(w.writes))
	}
	line := w.writes[0]
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		t.Fatalf("WriteResponse wrote %q, want exactly one line", line)
	}
	return strings.TrimSuffix(line, "\n")
}

func strp(s string) *string { return &s }

func TestResponseEncoding(t *testing.T) {
	t.Parallel()
	withResults := Success(json.RawMessage(`"r"`), []Result{
		{Target: "a", Value: strp("<v>\n&"), Attributes: map[string]string{"z": "1", "env": "prod"}},
		{Target: "b", Value: strp("")},
		{Target: "c"},
	})
	withResults.Missing = []string{"d"}
	failureWithResults := Failure(nil, ReasonBackendError, "the store failed")
	failureWithResults.Results = []Result{{Target: "leak", Value: strp("must not be sent")}}

	tests := []struct {
		name string
		resp *Response
		want string
	}{
		{"empty success", Success(json.RawMessage(`1`), nil),
			`{"type":"RESPONSE","id":1,"status":"success","results":[]}`},
		{"empty non-nil results", Success(nil, []Result{}),
			`{"type":"RESPONSE","status":"success","results":[]}`},
		{"results and missing", withResults,
			`{"type":"RESPONSE","id":"r","status":"success","missing":["d"],"results":[{"target":"a","value":"<v>\n&","attributes":{"env":"prod","z":"1"}},{"target":"b","value":""},{"target":"c"}]}`},
		{"denied", Failure(json.RawMessage(`null`), ReasonServiceNotAllowed, "not for service aws"),
			`{"type":"RESPONSE","id":null,"status":"denied","reason":"service_not_allowed","message":"not for service aws"}`},
		{"results dropped on failure", failureWithResults,
			`{"type":"RESPONSE","status":"error","reason":"backend_error","message":"the store failed"}`},
		{"not_found lists missing", func() *Response {
			r := Failure(json.RawMessage(`"q"`), ReasonNotFound, "2 targets do not exist; nothing was read")
			r.Missing = []string{"x", "y"}
			return r
		}(), `{"type":"RESPONSE","id":"q","status":"error","reason":"not_found","message":"2 targets do not exist; nothing was read","missing":["x","y"]}`},
		{"empty reason is internal_error", Failure(nil, "", "bug"),
			`{"type":"RESPONSE","status":"error","reason":"internal_error","message":"bug"}`},
		{"type filled in", &Response{Status: StatusSuccess},
			`{"type":"RESPONSE","status":"success","results":[]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := writeResponse(t, tc.resp); got != tc.want {
				t.Errorf("WriteResponse:\n got %s\nwant %s", got, tc.want)
			}
			// json.Marshal goes through MarshalJSON for values and
			// pointers alike; it only adds HTML escaping.
			for _, v := range []any{tc.resp, *tc.resp} {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				var got, want any
				if json.Unmarshal(b, &got) != nil || json.Unmarshal([]byte(tc.want), &want) != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("json.Marshal(%T) = %s, want %s", v, b, tc.want)
				}
			}
		})
	}
}

func TestFailureStatus(t *testing.T) {
	t.Parallel()
	want := map[Reason]Status{
		ReasonUnregisteredBinary: StatusDenied,
		ReasonActionNotInPolicy:  StatusDenied,
		ReasonServiceNotAllowed:  StatusDenied,
		ReasonProcessChanged:     StatusDenied,
		ReasonProcessTampered:    StatusDenied,
		ReasonForeignUser:        StatusDenied,
		ReasonHashMismatch:       StatusDenied,
		ReasonMalformedRequest:   StatusError,
		ReasonRequestTooLarge:    StatusError,
		ReasonNotFound:           StatusError,
		ReasonBackendLocked:      StatusError,
		ReasonBackendError:       StatusError,
		ReasonConfigInvalid:      StatusError,
		ReasonRateLimited:        StatusError,
		ReasonInternalError:      StatusError,
	}
	for reason, status := range want {
		r := Failure(nil, reason, "m")
		if r.Status != status || r.Reason != reason || r.Type != TypeResponse || r.Results != nil {
			t.Errorf("Failure(%s) = %+v, want status %s", reason, r, status)
		}
	}
}

func TestWriteResponseShortWrite(t *testing.T) {
	t.Parallel()
	err := WriteResponse(&writeRecorder{short: true}, Success(nil, nil))
	if !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: err = %v, want io.ErrShortWrite", err)
	}
}

func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	original := Success(json.RawMessage(`"id-1"`), []Result{{Target: "a", Value: strp("v1"), Attributes: map[string]string{"k": "v"}}})
	original.Missing = []string{"b"}
	line := writeResponse(t, original)
	got, err := DecodeResponse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, original) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, original)
	}

	future := `{"type":"RESPONSE","status":"denied","reason":"some_new_reason","message":"m","new_field":{"x":[1]}}` + "\r"
	got, err = DecodeResponse([]byte(future))
	if err != nil || got.Reason != "some_new_reason" || got.Status != StatusDenied {
		t.Errorf("response with unknown fields and reason: %+v, %v", got, err)
	}

	const secret = "hunter2-SECRET"
	bad := map[string]string{
		"not JSON":        `{"type":"RESPONSE","status":"success","results":[{"target":"a","value":` + secret + `}]}`,
		"wrong type":      `{"type":"REQUEST","status":"success"}`,
		"no type":         `{"status":"success"}`,
		"unknown status":  `{"type":"RESPONSE","status":"maybe"}`,
		"error no reason": `{"type":"RESPONSE","status":"error"}`,
		"value not text":  `{"type":"RESPONSE","status":"success","results":[{"target":"a","value":12345}]}`,
		"results object":  `{"type":"RESPONSE","status":"success","results":{"target":"a","value":"` + secret + `"}}`,
	}
	for name, line := range bad {
		_, err := DecodeResponse([]byte(line))
		if !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("%s: err = %v, want ErrMalformedResponse", name, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter") || strings.Contains(err.Error(), "12345") {
			t.Errorf("%s: message %q shows a value", name, err)
		}
	}
}

func TestWriteRequestRoundTrip(t *testing.T) {
	t.Parallel()
	r := &Request{ID: json.RawMessage(`"<a&b>"`), Action: ActionWrite, Service: "svc",
		Targets: []string{"t1", "t<2>"}, Values: []string{"line1\nline2", "\u2028"}, Attributes: map[string]string{"env": "dev"}}
	var w writeRecorder
	if err := WriteRequest(&w, r); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) != 1 || strings.Count(w.writes[0], "\n") != 1 || !strings.HasSuffix(w.writes[0], "\n") {
		t.Fatalf("WriteRequest wrote %q, want one line in one Write", w.writes)
	}
	if r.Type != "" {
		t.Error("WriteRequest changed the caller's request")
	}
	got, err := DecodeRequest([]byte(strings.TrimSuffix(w.writes[0], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.Type = TypeRequest
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
	}
}

func TestWriteRequestTooLarge(t *testing.T) {
	t.Parallel()
	r := &Request{Type: TypeRequest, Action: ActionWrite, Service: "s"}
	for i := range 20 {
		r.Targets = append(r.Targets, strings.Repeat("t", i+1))
		r.Values = append(r.Values, strings.Repeat("v", MaxValueLen))
	}
	var w writeRecorder
	err := WriteRequest(&w, r)
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if len(w.writes) != 0 {
		t.Errorf("wrote %d times; an oversized request must not be sent", len(w.writes))
	}
}

func BenchmarkWriteResponse(b *testing.B) {
	r := Success(json.RawMessage(`17`), []Result{{Target: "access_key_id", Value: strp("AKIAIOSFODNN7EXAMPLE")}})
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteResponse(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

// benchResponses are the replies the encoding benchmarks encode: a pipelined
// single read (the daemon's hot path), a batch read with attributes, a
// failure, and one 64 KiB value.
func benchResponses() []struct {
	name string
	resp *Response
} {
	batch := make([]Result, 10)
	for i := range batch {
		batch[i] = Result{Target: fmt.Sprintf("db/replica-%d/password", i), Value: strp("s3cr3t-" + strings.Repeat("x", 24)),
			Attributes: map[string]string{"env": "prod", "owner": "team-a", "rotated": "2024-01-01"}}
	}
	batchResp := Success(json.RawMessage(`"batch-1"`), batch)
	batchResp.Missing = []string{"db/replica-10/password"}
	return []struct {
		name string
		resp *Response
	}{
		{"read", Success(json.RawMessage(`17`), []Result{{Target: "access_key_id", Value: strp("AKIAIOSFODNN7EXAMPLE")}})},
		{"batch", batchResp},
		{"failure", Failure(json.RawMessage(`"r-9"`), ReasonServiceNotAllowed, "not for service aws")},
		{"value64k", Success(json.RawMessage(`1`), []Result{{Target: "blob", Value: strp(strings.Repeat("line of text\n", MaxValueLen/14))}})},
	}
}

// BenchmarkAppendResponse appends replies to a reused buffer the way the
// daemon queues pipelined replies (append, write, clear).
func BenchmarkAppendResponse(b *testing.B) {
	for _, bc := range benchResponses() {
		b.Run(bc.name, func(b *testing.B) {
			var out []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				out, err = AppendResponse(out[:0], bc.resp)
				if err != nil {
					b.Fatal(err)
				}
				clear(out)
			}
		})
	}
}
