package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// Sentinel errors; the typed errors below match them with errors.Is.
var (
	// ErrInvalid: a file does not parse, has a value of the wrong type, or
	// breaks a validation rule. Such a file is never rewritten.
	ErrInvalid = errors.New("invalid file")
	// ErrUnsafe: a config file others could have written (group- or
	// world-writable, or owned by another user). Its policy is not trusted.
	ErrUnsafe = errors.New("unsafe file ownership or permissions")
)

// SyntaxError is a file that is not JSON of the expected shape. Line and
// Column (1-based, column in characters) locate the problem; 0 means unknown.
type SyntaxError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *SyntaxError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	return fmt.Sprintf("%s: %s (fix the file by hand; keychain-auth never rewrites a file it cannot parse)", loc, e.Msg)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *SyntaxError) Is(target error) bool { return target == ErrInvalid }

// ValidationError is well-formed JSON holding a value keychain-auth refuses,
// such as a hash that is not canonical. List names the array the bad record
// is in ("registered_binaries", or "" for pending.json's top-level array);
// Index is -1 for a top-level field.
type ValidationError struct {
	File  string
	List  string
	Index int
	Field string
	Msg   string

	// unsaved marks an error in an edit that was refused before it reached
	// the file, where "fix the file" would be the wrong advice.
	unsaved bool
}

func (e *ValidationError) Error() string {
	var where string
	switch {
	case e.Index < 0:
		where = e.Field
	default:
		where = fmt.Sprintf("%s[%d].%s", e.List, e.Index, e.Field)
	}
	if e.unsaved {
		return fmt.Sprintf("%s: %s: %s (the change was not written)", e.File, where, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s (fix or remove it by hand)", e.File, where, e.Msg)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// jsonError turns an encoding/json error on data into a *SyntaxError that
// points at the offending place.
func jsonError(data []byte, file string, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return &SyntaxError{File: file, Line: line, Column: col, Msg: syn.Error()}
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		field := typ.Field
		if field == "" {
			field = "top level"
		}
		return &SyntaxError{File: file, Line: line, Column: col,
			Msg: fmt.Sprintf("%s: expected %s, found %s", field, kindName(typ.Type), typ.Value)}
	}
	return &SyntaxError{File: file, Msg: err.Error()}
}

// position converts an encoding/json offset, which counts the bytes read up
// to and including the offending one, to a line and character column.
func position(data []byte, offset int64) (line, col int) {
	pos := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:pos]
	line = 1 + bytes.Count(before, []byte{'\n'})
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// kindName describes a Go type in JSON terms for a user editing the file.
func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "another type"
}
