package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// DecodeRequest parses one request line (without its newline) and validates
// it with Validate.
//
// Field names are matched exactly (case-sensitive); unknown fields are
// ignored; a known field given twice is malformed. A JSON null stands for an
// absent field, except in "id", where null is a value to echo. Surrounding
// whitespace, including a trailing '\r', is allowed; anything else after the
// object is malformed. Empty arrays and objects decode as nil. On a check
// request every field other than type, id and action is dropped once it has
// been type-checked, so nothing downstream can act on data no rule looked at.
//
// On any error the returned Request is non-nil and holds only ID, set when
// the line carried a usable id (a JSON scalar, valid UTF-8), so the reply can
// echo it; the error matches ErrMalformed and names the offending field. The
// result never aliases line, which a Reader reuses.
func DecodeRequest(line []byte) (*Request, error) {
	return decodeRequest(line, false)
}

// DecodeRequestSecrets is DecodeRequest for the daemon: the values of a
// write are not decoded into Values, as strings no one can wipe, but held
// as bytes (see Request.SecretValue), which the caller wipes with
// ClearSecrets once the request is handled. Verdicts and errors are
// DecodeRequest's.
func DecodeRequestSecrets(line []byte) (*Request, error) {
	return decodeRequest(line, true)
}

func decodeRequest(line []byte, holdSecrets bool) (*Request, error) {
	req := Request{holdSecrets: holdSecrets}
	err := decodeLine(&req, line)
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		req.ClearSecrets()
		return &Request{ID: req.ID}, err
	}
	if req.Action == ActionCheck {
		req.ClearSecrets()
		req = Request{Type: req.Type, ID: req.ID, Action: req.Action}
	}
	return &req, nil
}

func decodeLine(req *Request, line []byte) error {
	// validJSON is json.Valid's verdict, hand-written for speed (valid.go).
	if !validJSON(line) {
		return syntaxError(req, line)
	}
	// The line is one value between optional whitespace, and no value ends
	// in whitespace, so the value runs to the last byte that is not space.
	i, end := skipSpace(line, 0), len(line)
	for isSpace(line[end-1]) {
		end--
	}
	raw := line[i:end]
	if raw[0] != '{' {
		return malformed("", "a request must be a JSON object, not "+kind(raw))
	}
	return decodeObject(req, raw)
}

// syntaxError explains why line is not one JSON value. The JSON parser's own
// message is not used: it quotes the offending character, which may be the
// first letter of an unquoted secret.
func syntaxError(req *Request, line []byte) error {
	if len(bytes.Trim(line, " \t\r\n")) == 0 {
		return malformed("", "the line is empty; send one JSON request object per line")
	}
	var first json.RawMessage
	if json.NewDecoder(bytes.NewReader(line)).Decode(&first) == nil {
		// The line starts with a complete value, so the trouble is what
		// follows it; the value itself may still yield an id to echo.
		if first[0] == '{' {
			_ = decodeObject(req, first)
		}
		return malformed("", "unexpected data after the JSON object; send exactly one object per line")
	}
	offset := int64(len(line))
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(line, new(json.RawMessage)), &se) {
		offset = se.Offset
	}
	if offset >= int64(len(line)) {
		return malformed("", "the line ends before the JSON object is complete")
	}
	return malformed("", fmt.Sprintf("not valid JSON (syntax error at byte %d)", offset))
}

// Indexes of the known request fields, for duplicate detection.
const (
	fieldType = iota
	fieldID
	fieldAction
	fieldService
	fieldMatch
	fieldTargets
	fieldValues
	fieldAttributes
	fieldRequireAll
	fieldExecFD
	fieldExecArgv
)

func fieldIndex(name []byte) (int, string) {
	switch string(name) {
	case "type":
		return fieldType, "type"
	case "id":
		return fieldID, "id"
	case "action":
		return fieldAction, "action"
	case "service":
		return fieldService, "service"
	case "match":
		return fieldMatch, "match"
	case "targets":
		return fieldTargets, "targets"
	case "values":
		return fieldValues, "values"
	case "attributes":
		return fieldAttributes, "attributes"
	case "require_all":
		return fieldRequireAll, "require_all"
	case "exec_fd":
		return fieldExecFD, "exec_fd"
	case "exec_argv":
		return fieldExecArgv, "exec_argv"
	}
	return -1, ""
}

// decodeObject fills req from the object obj. It keeps going after an error
// so that an id further along the line is still recovered, and returns the
// first error.
func decodeObject(req *Request, obj []byte) error {
	var seen uint
	var first error
	for key, val := range members(obj) {
		name := key[1 : len(key)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			s, problem := unquote(key)
			if problem != "" {
				continue // no known field name contains a surrogate
			}
			name = []byte(s)
		}
		idx, field := fieldIndex(name)
		if idx < 0 {
			continue
		}
		var err error
		if seen&(1<<idx) != 0 {
			err = malformed(field, "appears more than once; give each field once")
		} else {
			seen |= 1 << idx
			err = decodeField(req, idx, field, val)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

func decodeField(req *Request, idx int, field string, val []byte) error {
	var err error
	var s string
	switch idx {
	case fieldType:
		req.Type, err = decodeString(field, val)
	case fieldID:
		req.ID, err = decodeID(val)
	case fieldAction:
		s, err = decodeString(field, val)
		req.Action = Action(s)
	case fieldService:
		req.Service, err = decodeString(field, val)
	case fieldMatch:
		s, err = decodeString(field, val)
		req.Match = Match(s)
	case fieldTargets:
		req.Targets, err = decodeStrings(field, val)
	case fieldValues:
		if req.holdSecrets {
			req.secrets, err = decodeSecrets(field, val)
		} else {
			req.Values, err = decodeStrings(field, val)
		}
	case fieldAttributes:
		req.Attributes, err = decodeAttributes(val)
	case fieldRequireAll:
		req.RequireAll, err = decodeBool(field, val)
	case fieldExecFD:
		req.ExecFD, err = decodeBool(field, val)
	case fieldExecArgv:
		req.ExecArgv, err = decodeStrings(field, val)
	}
	return err
}

func decodeID(val []byte) (json.RawMessage, error) {
	switch val[0] {
	case '{', '[':
		return nil, malformed("id", "must be a string, number, boolean or null, not "+kind(val))
	case '"':
		if !utf8.Valid(val) {
			return nil, malformed("id", "is not valid UTF-8")
		}
	}
	return bytes.Clone(val), nil
}

// decodeString decodes a string field; null reads as absent.
func decodeString(field string, val []byte) (string, error) {
	switch val[0] {
	case 'n':
		return "", nil
	case '"':
		// The fixed words of the protocol come back as constants, which
		// spares an allocation for most fields of most requests.
		switch string(val[1 : len(val)-1]) {
		case TypeRequest:
			return TypeRequest, nil
		case string(ActionRead):
			return string(ActionRead), nil
		case string(ActionWrite):
			return string(ActionWrite), nil
		case string(ActionDelete):
			return string(ActionDelete), nil
		case string(ActionSearch):
			return string(ActionSearch), nil
		case string(ActionCheck):
			return string(ActionCheck), nil
		case string(MatchExact):
			return string(MatchExact), nil
		case string(MatchPrefix):
			return string(MatchPrefix), nil
		}
		s, problem := unquote(val)
		if problem != "" {
			return "", malformed(field, problem)
		}
		return s, nil
	}
	return "", malformed(field, "must be a string, not "+kind(val))
}

// decodeStrings decodes an array of strings; null reads as absent.
func decodeStrings(field string, val []byte) ([]string, error) {
	switch val[0] {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, malformed(field, "must be an array of strings, not "+kind(val))
	}
	var out []string
	for i, el := range elements(val) {
		if el[0] != '"' {
			return nil, malformed(indexed(field, i), "must be a string, not "+kind(el))
		}
		s, problem := unquote(el)
		if problem != "" {
			return nil, malformed(indexed(field, i), problem)
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeSecrets is decodeStrings for values, as bytes that can be cleared;
// on an error the ones decoded so far are cleared.
func decodeSecrets(field string, val []byte) ([][]byte, error) {
	switch val[0] {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, malformed(field, "must be an array of strings, not "+kind(val))
	}
	var out [][]byte
	for i, el := range elements(val) {
		var problem string
		var v []byte
		if el[0] != '"' {
			problem = "must be a string, not " + kind(el)
		} else {
			v, problem = unquoteBytes(el)
		}
		if problem != "" {
			for _, d := range out {
				clear(d)
			}
			return nil, malformed(indexed(field, i), problem)
		}
		out = append(out, v)
	}
	return out, nil
}

// decodeAttributes decodes an object of string values; null reads as absent.
func decodeAttributes(val []byte) (map[string]string, error) {
	switch val[0] {
	case 'n':
		return nil, nil
	case '{':
	default:
		return nil, malformed("attributes", "must be an object of string values, not "+kind(val))
	}
	var out map[string]string
	for keyTok, el := range members(val) {
		key, problem := unquote(keyTok)
		if problem != "" {
			return nil, malformed("attributes", "a key "+problem)
		}
		field := "attributes[" + quoteName(key) + "]"
		if el[0] != '"' {
			return nil, malformed(field, "must be a string, not "+kind(el))
		}
		v, problem := unquote(el)
		if problem != "" {
			return nil, malformed(field, "the value "+problem)
		}
		if out == nil {
			out = make(map[string]string)
		}
		if _, dup := out[key]; dup {
			return nil, malformed(field, "appears more than once; give each attribute once")
		}
		out[key] = v
	}
	return out, nil
}

// decodeBool decodes a boolean; null reads as false.
func decodeBool(field string, val []byte) (bool, error) {
	switch val[0] {
	case 't':
		return true, nil
	case 'f', 'n':
		return false, nil
	}
	return false, malformed(field, "must be true or false, not "+kind(val))
}
