package protocol

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

var (
	// ErrMalformed matches every error DecodeRequest and Validate return: the
	// request broke a rule of the protocol and the daemon answers it with
	// reason malformed_request.
	ErrMalformed = errors.New("malformed request")

	// ErrLineTooLong is returned by Reader.Next for a line longer than the
	// reader's limit (MaxLineSize for requests); the daemon answers it with
	// reason request_too_large and closes the connection.
	ErrLineTooLong = errors.New("line too long")

	// ErrMalformedResponse matches every error DecodeResponse returns.
	ErrMalformedResponse = errors.New("malformed response")
)

// MalformedError says which rule a request broke, and in which field, so that
// a client author can fix the request from the message alone. Problem never
// quotes a secret value.
type MalformedError struct {
	// Field names the offending field the way a client author writes it:
	// "service", "targets[3]", `attributes["env"]`. It is empty when the line
	// as a whole is at fault (not JSON, not an object).
	Field   string
	Problem string
}

func (e *MalformedError) Error() string {
	if e.Field == "" {
		return "malformed request: " + e.Problem
	}
	return "malformed request: " + e.Field + ": " + e.Problem
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(field, problem string) error {
	return &MalformedError{Field: field, Problem: problem}
}

// quoteName quotes a client-supplied name for an error message, cut short so
// that a 1 MiB junk field cannot turn into a 1 MiB error reply. Only names
// (actions, attribute keys) go through here, never values.
func quoteName(s string) string {
	const limit = 48
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
