package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// Success returns a success response carrying results. A nil results is
// sent as an empty list, because clients tell success by its presence too.
// Set Missing on the result for absent targets.
func Success(id json.RawMessage, results []Result) *Response {
	if results == nil {
		results = []Result{}
	}
	return &Response{Type: TypeResponse, ID: id, Status: StatusSuccess, Results: results}
}

// Failure returns a response for reason with the status that reason always
// has. An empty reason becomes internal_error: a failure without one would
// read as success. message is sent to the client: never put a secret in it.
func Failure(id json.RawMessage, reason Reason, message string) *Response {
	if reason == "" {
		reason = ReasonInternalError
	}
	return &Response{Type: TypeResponse, ID: id, Status: StatusOf(reason), Reason: reason, Message: message}
}

// wireResponse is the encoded form of Response: Results becomes a pointer so
// that an empty list on success survives omitempty while any list on failure
// is left out.
type wireResponse struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Status  Status          `json:"status"`
	Reason  Reason          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
	Missing []string        `json:"missing,omitempty"`
	Results *[]Result       `json:"results,omitempty"`
}

func (r *Response) wire() *wireResponse {
	w := &wireResponse{Type: r.Type, ID: r.ID, Status: r.Status, Reason: r.Reason, Message: r.Message, Missing: r.Missing}
	if w.Type == "" {
		w.Type = TypeResponse
	}
	if r.Status == StatusSuccess {
		results := r.Results
		if results == nil {
			results = []Result{}
		}
		if slices.ContainsFunc(results, func(res Result) bool { return res.secret != nil }) {
			// encoding/json needs values as strings: this rare path (an
			// id that is not one compact scalar) copies them.
			results = slices.Clone(results)
			for i := range results {
				if results[i].secret != nil {
					v := string(results[i].secret)
					results[i].Value, results[i].secret = &v, nil
				}
			}
		}
		w.Results = &results
	}
	return w
}

// MarshalJSON encodes the response with "results" present (as [] when empty)
// exactly when Status is success.
func (r Response) MarshalJSON() ([]byte, error) {
	if fastEncodable(&r) {
		return appendResponse(make([]byte, 0, responseLen(&r)), &r), nil
	}
	b, err := encodeLine(r.wire())
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

// WriteResponse writes r as one line with a single Write, so responses
// written from several goroutines never interleave mid-line.
func WriteResponse(w io.Writer, r *Response) error {
	b, err := AppendResponse(nil, r)
	if err != nil {
		return err
	}
	err = writeAll(w, b)
	clear(b) // results may hold secrets
	if err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}

// AppendResponse appends r, encoded as one line, to dst and returns the
// extended buffer. Replies carry secret values, so no copy is left behind:
// when dst must grow, the old buffer is cleared. The caller clears the
// result once it is written.
//
// The encoding is hand-written (see appendResponse) and is byte for byte
// what encoding/json produces. Only a response whose id is not one compact
// JSON scalar, which DecodeRequest never returns, goes through encoding/json
// itself, which keeps a copy of what it encoded in a pooled buffer.
func AppendResponse(dst []byte, r *Response) ([]byte, error) {
	if fastEncodable(r) {
		return appendResponseLine(dst, r), nil
	}
	b, err := encodeLine(r.wire())
	if err != nil {
		return dst, fmt.Errorf("encode response: %w", err)
	}
	defer clear(b)
	if len(dst)+len(b) > cap(dst) {
		grown := make([]byte, len(dst), 2*cap(dst)+len(b))
		copy(grown, dst)
		clear(dst)
		dst = grown
	}
	return append(dst, b...), nil
}

// WriteRequest writes r as one line with a single Write. An empty Type is
// sent as "REQUEST". It does not validate r (call Validate for a local check)
// but refuses, writing nothing, a request longer than MaxLineSize, which the
// daemon would answer with request_too_large and a closed connection.
func WriteRequest(w io.Writer, r *Request) error {
	req := *r
	if req.Type == "" {
		req.Type = TypeRequest
	}
	b, err := encodeLine(&req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	defer clear(b) // values may be secrets
	if len(b)-1 > MaxLineSize {
		return fmt.Errorf("encode request: %w: it is %d bytes and the limit is %d; split the batch", ErrLineTooLong, len(b)-1, MaxLineSize)
	}
	if err := writeAll(w, b); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	return nil
}

// encodeLine encodes v as JSON followed by '\n'. HTML escaping is off so that
// an id is echoed byte for byte and values are not inflated.
func encodeLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeAll(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// DecodeResponse parses one response line for a client. Unknown fields are
// ignored. It checks that the line is a RESPONSE with a known status and that
// a failure names a reason; it does not check that results are sorted or
// that the id matches the request, which is the caller's business.
func DecodeResponse(line []byte) (*Response, error) {
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		// Syntax errors quote a character of the line, which may belong to
		// a value; report the position only.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: not valid JSON (syntax error at byte %d)", ErrMalformedResponse, se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: field %q has the wrong JSON type (%s)", ErrMalformedResponse, te.Field, te.Value)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	if r.Type != TypeResponse {
		return nil, fmt.Errorf("%w: type is %s, want %q", ErrMalformedResponse, quoteName(r.Type), TypeResponse)
	}
	switch r.Status {
	case StatusSuccess:
	case StatusDenied, StatusError:
		if r.Reason == "" {
			return nil, fmt.Errorf("%w: status %q without a reason", ErrMalformedResponse, r.Status)
		}
	default:
		return nil, fmt.Errorf("%w: unknown status %s", ErrMalformedResponse, quoteName(string(r.Status)))
	}
	if len(r.ID) > 0 && !utf8.Valid(r.ID) {
		return nil, fmt.Errorf("%w: id is not valid UTF-8", ErrMalformedResponse)
	}
	return &r, nil
}
