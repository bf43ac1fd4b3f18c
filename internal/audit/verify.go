package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
)

// ErrBroken: the chain does not verify; a *VerifyError says where and why.
var ErrBroken = errors.New("audit log does not verify")

// VerifyError names the first record that breaks the chain.
type VerifyError struct {
	File string
	Line int    // 1-based
	Seq  uint64 // the record's seq, 0 if it could not be read
	Why  string
}

func (e *VerifyError) Error() string {
	if e.Seq != 0 {
		return fmt.Sprintf("%s:%d (seq %d): %s", e.File, e.Line, e.Seq, e.Why)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Why)
}

func (e *VerifyError) Unwrap() error { return ErrBroken }

// checkLine parses one stored line and checks it against its own hash and
// the canonical encoding. It returns the record when it could be parsed,
// and a description of the problem, if any.
func checkLine(line []byte) (*Record, string) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, "unparsable record: " + err.Error()
	}
	if !isHex64(r.Hash) {
		return &r, "the record has no valid hash"
	}
	canonical := r.appendCanonical(nil)
	if hashOf(canonical) != r.Hash {
		return &r, "the hash does not match the record: it was changed after it was written"
	}
	if !bytes.Equal(appendHashMember(canonical, r.Hash), line) {
		return &r, "the record is not in canonical form: members were added, removed, reordered or re-encoded"
	}
	return &r, ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Verify checks the whole chain at path, oldest rotated file first: every
// record's hash, each prev against the hash of the record before it (also
// across files), and seq going up by one. It returns how many records
// verified, and a *VerifyError (wrapping ErrBroken) naming the first record
// that does not. The oldest record present may point at one that was
// rotated away; only a chain that starts at seq 1 must start with an empty
// prev. An incomplete last line is reported too.
func Verify(path string) (int, error) {
	files, err := Files(path)
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no audit log at %s: %w", path, fs.ErrNotExist)
	}
	var (
		count int
		prev  *Record
	)
	for _, name := range files {
		err := scanFile(name, func(line []byte, n int, complete bool) error {
			fail := func(seq uint64, why string) error {
				return &VerifyError{File: name, Line: n, Seq: seq, Why: why}
			}
			if !complete {
				return fail(0, "incomplete last line (a write was cut short, or the file was truncated)")
			}
			rec, prob := checkLine(line)
			if prob != "" {
				var seq uint64
				if rec != nil {
					seq = rec.Seq
				}
				return fail(seq, prob)
			}
			switch {
			case prev == nil && rec.Seq == 1 && rec.Prev != "":
				return fail(rec.Seq, "the first record of the chain has a prev")
			case prev == nil:
			case rec.Seq != prev.Seq+1:
				return fail(rec.Seq, fmt.Sprintf("seq %d follows seq %d: records were removed, inserted or reordered",
					rec.Seq, prev.Seq))
			case rec.Prev != prev.Hash:
				return fail(rec.Seq, "prev does not match the hash of the record before it: records were removed, inserted or reordered")
			}
			prev = rec
			count++
			return nil
		})
		if err != nil {
			return count, err
		}
	}
	return count, nil
}
