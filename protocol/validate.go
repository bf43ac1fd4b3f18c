package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// EffectiveMatch is the match the request asks for once defaults apply:
// Match when set, else exact for read, write and delete and prefix for search
// (clients that predate "match" send search without it and expect a prefix
// listing). It is empty for check, which matches nothing.
func (r *Request) EffectiveMatch() Match {
	if r.Match != "" {
		return r.Match
	}
	switch r.Action {
	case ActionRead, ActionWrite, ActionDelete:
		return MatchExact
	case ActionSearch:
		return MatchPrefix
	}
	return ""
}

// Validate checks every rule of protocol version 1 that a request can break
// on its own, and returns an error matching ErrMalformed that names the first
// offending field. Policy is not its business. Lengths are in bytes of UTF-8.
//
// Collections are judged by length, so an empty Targets, Values or Attributes
// is the same as an absent one, and RequireAll false is the same as absent:
// these are exactly the distinctions the JSON encoding of Request keeps.
func (r *Request) Validate() error {
	switch r.Type {
	case TypeRequest:
	case "":
		return malformed("type", `missing; every request carries "type":"REQUEST"`)
	default:
		return malformed("type", `must be "REQUEST"`)
	}
	if len(r.ID) > 0 && !validID(r.ID) {
		return malformed("id", "must be a single JSON string, number, boolean or null")
	}
	switch r.Action {
	case ActionRead, ActionWrite, ActionDelete, ActionSearch:
	case ActionCheck:
		// check needs nothing else; the other fields are ignored, except
		// those that could only mean the client misunderstood the call.
		if r.ValueCount() > 0 {
			return malformed("values", "only allowed on write")
		}
		if r.RequireAll {
			return malformed("require_all", "only allowed on an exact read or delete")
		}
		if r.ExecFD || len(r.ExecArgv) > 0 {
			return malformed("exec_fd", "only allowed on a read")
		}
		return nil
	case "":
		return malformed("action", "missing; use read, write, delete, search or check")
	default:
		return malformed("action", quoteName(string(r.Action))+" is not an action; use read, write, delete, search or check")
	}

	if err := r.validateService(); err != nil {
		return err
	}
	switch r.Match {
	case "", MatchExact, MatchPrefix:
	default:
		return malformed("match", `must be "exact" or "prefix"`)
	}
	m := r.EffectiveMatch()
	if r.Action == ActionWrite && m == MatchPrefix {
		return malformed("match", "prefix is not allowed on write; name every target exactly")
	}
	var err error
	if m == MatchPrefix {
		err = r.validatePrefix()
	} else {
		err = r.validateExactTargets()
	}
	if err != nil {
		return err
	}
	if err := r.validateValues(); err != nil {
		return err
	}
	if err := validateAttributes(r.Attributes); err != nil {
		return err
	}
	if r.RequireAll && (m != MatchExact || (r.Action != ActionRead && r.Action != ActionDelete)) {
		return malformed("require_all", "only allowed on an exact read or delete")
	}
	return r.validateExec()
}

// validateExec checks exec_fd and exec_argv. Whether a descriptor really
// came with the line is the transport's business, not this package's.
func (r *Request) validateExec() error {
	if !r.ExecFD {
		if len(r.ExecArgv) > 0 {
			return malformed("exec_argv", "only allowed with \"exec_fd\":true")
		}
		return nil
	}
	if r.Action != ActionRead {
		return malformed("exec_fd", "only allowed on a read")
	}
	if len(r.ExecArgv) > MaxExecArgs {
		return malformed("exec_argv", fmt.Sprintf("has %d entries; the limit is %d", len(r.ExecArgv), MaxExecArgs))
	}
	for i, a := range r.ExecArgv {
		if len(a) > MaxExecArgLen {
			return malformed(indexed("exec_argv", i), fmt.Sprintf("is %d bytes long; the limit is %d", len(a), MaxExecArgLen))
		}
		if !utf8.ValidString(a) {
			return malformed(indexed("exec_argv", i), "is not valid UTF-8")
		}
	}
	return nil
}

// indexed names element i of a list field, as in "targets[3]".
func indexed(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func validID(id json.RawMessage) bool {
	if !validJSON(id) || !utf8.Valid(id) {
		return false
	}
	c := id[skipSpace(id, 0)]
	return c != '{' && c != '['
}

func (r *Request) validateService() error {
	switch s := r.Service; {
	case s == "":
		return malformed("service", fmt.Sprintf("missing; a %s names the service it acts on (1 to %d bytes)", r.Action, MaxServiceLen))
	case len(s) > MaxServiceLen:
		return malformed("service", fmt.Sprintf("is %d bytes long; the limit is %d", len(s), MaxServiceLen))
	default:
		if p := textProblem(s); p != "" {
			return malformed("service", p)
		}
	}
	return nil
}

func (r *Request) validatePrefix() error {
	if r.Action == ActionSearch && len(r.Targets) == 0 {
		return nil // search without targets lists the whole service
	}
	if len(r.Targets) != 1 {
		return malformed("targets", fmt.Sprintf(`has %d entries; a prefix %s takes exactly one target, the prefix ("" for every target)`, len(r.Targets), r.Action))
	}
	t := r.Targets[0]
	if len(t) > MaxTargetLen {
		return malformed("targets[0]", fmt.Sprintf("the prefix is %d bytes long; the limit is %d", len(t), MaxTargetLen))
	}
	if p := textProblem(t); p != "" {
		return malformed("targets[0]", p)
	}
	return nil
}

func (r *Request) validateExactTargets() error {
	n := len(r.Targets)
	switch {
	case n == 0 && r.Action == ActionSearch:
		return malformed("targets", fmt.Sprintf(`missing; an exact search names 1 to %d targets (leave out "match" to list every target)`, MaxTargets))
	case n == 0:
		return malformed("targets", fmt.Sprintf("missing; a %s names 1 to %d targets", r.Action, MaxTargets))
	case n > MaxTargets:
		return malformed("targets", fmt.Sprintf("has %d entries; the limit is %d per request, so split the batch", n, MaxTargets))
	}
	for i, t := range r.Targets {
		switch {
		case t == "":
			return malformed(indexed("targets", i), fmt.Sprintf("is empty; target names are 1 to %d bytes", MaxTargetLen))
		case len(t) > MaxTargetLen:
			return malformed(indexed("targets", i), fmt.Sprintf("is %d bytes long; the limit is %d", len(t), MaxTargetLen))
		}
		if p := textProblem(t); p != "" {
			return malformed(indexed("targets", i), p)
		}
	}
	if i, j := duplicate(r.Targets); i >= 0 {
		return malformed(indexed("targets", j), fmt.Sprintf("repeats targets[%d]; name each target once", i))
	}
	return nil
}

// duplicate returns the indexes of the first repeated entry and of its
// earlier twin, or -1, -1.
func duplicate(ss []string) (int, int) {
	// A quadratic scan beats building a map for the small batches most
	// clients send.
	if len(ss) <= 16 {
		for j := 1; j < len(ss); j++ {
			for i := range j {
				if ss[i] == ss[j] {
					return i, j
				}
			}
		}
		return -1, -1
	}
	seen := make(map[string]int, len(ss))
	for j, s := range ss {
		if i, ok := seen[s]; ok {
			return i, j
		}
		seen[s] = j
	}
	return -1, -1
}

func (r *Request) validateValues() error {
	n := r.ValueCount()
	if r.Action != ActionWrite {
		if n > 0 {
			return malformed("values", "only allowed on write")
		}
		return nil
	}
	if n != len(r.Targets) {
		return malformed("values", fmt.Sprintf("has %s for %s; a write needs exactly one value per target",
			count(n, "entry", "entries"), count(len(r.Targets), "target", "targets")))
	}
	// Values are secrets: the messages give sizes and positions, never
	// content, and control characters are allowed (PEM keys have newlines).
	for i := range n {
		size, valid := 0, false
		if r.holdSecrets {
			size, valid = len(r.secrets[i]), utf8.Valid(r.secrets[i])
		} else {
			size, valid = len(r.Values[i]), utf8.ValidString(r.Values[i])
		}
		if size > MaxValueLen {
			return malformed(indexed("values", i), fmt.Sprintf("is %d bytes long; the limit is %d (64 KiB)", size, MaxValueLen))
		}
		if !valid {
			return malformed(indexed("values", i), "is not valid UTF-8; encode binary secrets, e.g. as base64")
		}
	}
	return nil
}

func validateAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return malformed("attributes", fmt.Sprintf("has %d pairs; the limit is %d", len(attrs), MaxAttributes))
	}
	// Map order is random; report the smallest offending key so the same
	// request always gets the same message.
	var badKey, problem string
	for k, v := range attrs {
		if p := attributeProblem(k, v); p != "" && (problem == "" || k < badKey) {
			badKey, problem = k, p
		}
	}
	if problem != "" {
		return malformed("attributes["+quoteName(badKey)+"]", problem)
	}
	return nil
}

func attributeProblem(k, v string) string {
	switch {
	case k == "":
		return fmt.Sprintf("the key is empty; keys are 1 to %d bytes", MaxAttrKeyLen)
	case len(k) > MaxAttrKeyLen:
		return fmt.Sprintf("the key is %d bytes long; the limit is %d", len(k), MaxAttrKeyLen)
	case len(v) > MaxAttrValueLen:
		return fmt.Sprintf("the value is %d bytes long; the limit is %d", len(v), MaxAttrValueLen)
	}
	if p := textProblem(k); p != "" {
		return "the key " + p
	}
	if p := textProblem(v); p != "" {
		return "the value " + p
	}
	return ""
}

// textProblem says why s cannot be a name (service, target, attribute), or
// returns "". Names end up in audit records, terminals and pending.json, so
// control characters, which could forge lines or escape sequences there,
// are refused: C0, DEL and C1.
func textProblem(s string) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return fmt.Sprintf("contains a control character (U+%04X at byte %d)", c, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Sprintf("is not valid UTF-8 (at byte %d)", i)
		}
		if r <= 0x9f {
			return fmt.Sprintf("contains a control character (U+%04X at byte %d)", r, i)
		}
		i += size
	}
	return ""
}

// count writes n with the noun that agrees with it: "1 entry", "2 entries".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
