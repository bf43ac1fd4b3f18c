package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// req builds a request line from a JSON fragment of extra members.
func req(members string) string {
	if members == "" {
		return `{"type":"REQUEST"}`
	}
	return `{"type":"REQUEST",` + members + `}`
}

func jsonList(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestDecodeRequestRejects(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		line  string
		field string // MalformedError.Field; "" for the line as a whole
		text  string // part of the message
	}{
		{"empty line", "", "", "empty"},
		{"blank line", " \t\r", "", "empty"},
		{"truncated", `{"type":"REQUEST","action":"read"`, "", "ends before"},
		{"not JSON", `hello`, "", "not valid JSON"},
		{"array", `[{"type":"REQUEST"}]`, "", "must be a JSON object, not an array"},
		{"string", `"REQUEST"`, "", "must be a JSON object, not a string"},
		{"trailing data", req(`"action":"check"`) + ` x`, "", "after the JSON object"},
		{"two objects", req(`"action":"check"`) + req(`"action":"check"`), "", "after the JSON object"},
		{"no type", `{"action":"read","service":"s","targets":["a"]}`, "type", "missing"},
		{"type lower case", `{"type":"request","action":"check"}`, "type", `"REQUEST"`},
		{"type case-folded key", `{"Type":"REQUEST","action":"check"}`, "type", "missing"},
		{"type number", `{"type":1,"action":"check"}`, "type", "must be a string, not a number"},
		{"no action", req(`"service":"s","targets":["a"]`), "action", "missing"},
		{"unknown action", req(`"action":"READ","service":"s","targets":["a"]`), "action", `"READ" is not an action`},
		{"action number", req(`"action":7`), "action", "must be a string"},
		{"no service", req(`"action":"read","targets":["a"]`), "service", "missing"},
		{"service null", req(`"action":"read","service":null,"targets":["a"]`), "service", "missing"},
		{"service too long", req(`"action":"read","service":"` + long(256) + `","targets":["a"]`), "service", "256 bytes"},
		{"service C0", req(`"action":"read","service":"a\u0007b","targets":["a"]`), "service", "control character (U+0007 at byte 1)"},
		{"service DEL", req(`"action":"read","service":"a` + "\x7f" + `","targets":["a"]`), "service", "control character (U+007F"},
		{"service C1", req(`"action":"read","service":"a\u0085","targets":["a"]`), "service", "control character (U+0085"},
		{"service bad UTF-8", req(`"action":"read","service":"a` + "\xff" + `","targets":["a"]`), "service", "not valid UTF-8"},
		{"service array", req(`"action":"read","service":["s"],"targets":["a"]`), "service", "must be a string, not an array"},
		{"service twice", req(`"action":"read","service":"a","service":"b","targets":["a"]`), "service", "more than once"},
		{"exec_fd on write", req(`"action":"write","service":"s","targets":["a"],"values":["v"],"exec_fd":true`), "exec_fd", "only allowed on a read"},
		{"exec_fd on check", req(`"action":"check","exec_fd":true`), "exec_fd", "only allowed on a read"},
		{"exec_fd string", req(`"action":"read","service":"s","targets":["a"],"exec_fd":"yes"`), "exec_fd", "must be true or false"},
		{"exec_argv without exec_fd", req(`"action":"read","service":"s","targets":["a"],"exec_argv":["x"]`), "exec_argv", "only allowed with"},
		{"exec_argv entry too long", req(`"action":"read","service":"s","targets":["a"],"exec_fd":true,"exec_argv":["` + long(MaxExecArgLen+1) + `"]`), "exec_argv[0]", "the limit is 4096"},
		{"unknown match", req(`"action":"read","service":"s","match":"glob","targets":["a"]`), "match", `"exact" or "prefix"`},
		{"prefix write", req(`"action":"write","service":"s","match":"prefix","targets":["a"],"values":["1"]`), "match", "not allowed on write"},
		{"read without targets", req(`"action":"read","service":"s"`), "targets", "missing"},
		{"write empty targets", req(`"action":"write","service":"s","targets":[],"values":[]`), "targets", "missing"},
		{"targets string", req(`"action":"read","service":"s","targets":"a"`), "targets", "must be an array of strings, not a string"},
		{"target number", req(`"action":"read","service":"s","targets":["a",2]`), "targets[1]", "must be a string, not a number"},
		{"target null", req(`"action":"read","service":"s","targets":[null]`), "targets[0]", "must be a string, not null"},
		{"target control", req(`"action":"read","service":"s","targets":["a","b","c","d\ne"]`), "targets[3]", "contains a control character"},
		{"target empty", req(`"action":"delete","service":"s","targets":[""]`), "targets[0]", "is empty"},
		{"target too long", req(`"action":"read","service":"s","targets":["` + long(1025) + `"]`), "targets[0]", "1025 bytes"},
		{"target duplicate", req(`"action":"read","service":"s","targets":["a","b","a"]`), "targets[2]", "repeats targets[0]"},
		{"target duplicate in big batch", req(`"action":"read","service":"s","targets":` + jsonList(40, func(i int) string { return fmt.Sprintf(`"t%d"`, i%30) })), "targets[30]", "repeats targets[0]"},
		{"target lone high surrogate", req(`"action":"read","service":"s","targets":["\ud800"]`), "targets[0]", "unpaired UTF-16 surrogate"},
		{"target lone low surrogate", req(`"action":"read","service":"s","targets":["a\udc00"]`), "targets[0]", "unpaired UTF-16 surrogate"},
		{"target bad surrogate pair", req(`"action":"read","service":"s","targets":["\ud800\u0041"]`), "targets[0]", "unpaired UTF-16 surrogate"},
		{"too many targets", req(`"action":"read","service":"s","targets":` + jsonList(1001, func(i int) string { return fmt.Sprintf(`"t%d"`, i) })), "targets", "has 1001 entries"},
		{"prefix two targets", req(`"action":"read","service":"s","match":"prefix","targets":["a","b"]`), "targets", "exactly one target"},
		{"prefix no target", req(`"action":"delete","service":"s","match":"prefix"`), "targets", "exactly one target"},
		{"prefix too long", req(`"action":"read","service":"s","match":"prefix","targets":["` + long(1025) + `"]`), "targets[0]", "1025 bytes"},
		{"prefix control", req(`"action":"read","service":"s","match":"prefix","targets":["\u001b["]`), "targets[0]", "control character (U+001B"},
		{"search two targets", req(`"action":"search","service":"s","targets":["a","b"]`), "targets", "exactly one target"},
		{"exact search no targets", req(`"action":"search","service":"s","match":"exact"`), "targets", "exact search"},
		{"values on read", req(`"action":"read","service":"s","targets":["a"],"values":["x"]`), "values", "only allowed on write"},
		{"values on delete", req(`"action":"delete","service":"s","targets":["a"],"values":["x"]`), "values", "only allowed on write"},
		{"values on search", req(`"action":"search","service":"s","values":["x"]`), "values", "only allowed on write"},
		{"write without values", req(`"action":"write","service":"s","targets":["a"]`), "values", "0 entries for 1 target"},
		{"write too few values", req(`"action":"write","service":"s","targets":["a","b"],"values":["1"]`), "values", "1 entry for 2 targets"},
		{"value too long", req(`"action":"write","service":"s","targets":["a"],"values":["` + long(MaxValueLen+1) + `"]`), "values[0]", "65537 bytes"},
		{"value null", req(`"action":"write","service":"s","targets":["a","b"],"values":["1",null]`), "values[1]", "must be a string, not null"},
		{"value object", req(`"action":"write","service":"s","targets":["a"],"values":{"a":"1"}`), "values", "must be an array of strings, not an object"},
		{"value lone surrogate", req(`"action":"write","service":"s","targets":["a"],"values":["\udfff"]`), "values[0]", "unpaired UTF-16 surrogate"},
		{"value bad UTF-8", req(`"action":"write","service":"s","targets":["a"],"values":["` + "\xc3" + `"]`), "values[0]", "not valid UTF-8"},
		{"attributes array", req(`"action":"read","service":"s","targets":["a"],"attributes":["a"]`), "attributes", "must be an object of string values, not an array"},
		{"attribute number", req(`"action":"read","service":"s","targets":["a"],"attributes":{"env":1}`), `attributes["env"]`, "must be a string, not a number"},
		{"attribute twice", req(`"action":"read","service":"s","targets":["a"],"attributes":{"a":"1","a":"2"}`), `attributes["a"]`, "more than once"},
		{"too many attributes", req(`"action":"write","service":"s","targets":["a"],"values":["1"],"attributes":{` + strings.Trim(jsonList(65, func(i int) string { return fmt.Sprintf(`"k%d":"v"`, i) }), "[]") + `}`), "attributes", "has 65 pairs"},
		{"attribute empty key", req(`"action":"read","service":"s","targets":["a"],"attributes":{"":"v"}`), `attributes[""]`, "key is empty"},
		{"attribute key too long", req(`"action":"read","service":"s","targets":["a"],"attributes":{"` + long(256) + `":"v"}`), `attributes["` + long(48) + `"...]`, "key is 256 bytes"},
		{"attribute key control", req(`"action":"read","service":"s","targets":["a"],"attributes":{"a\tb":"v"}`), `attributes["a\tb"]`, "key contains a control character"},
		{"attribute value control", req(`"action":"read","service":"s","targets":["a"],"attributes":{"env":"p\u009b"}`), `attributes["env"]`, "value contains a control character (U+009B"},
		{"attribute value too long", req(`"action":"search","service":"s","attributes":{"env":"` + long(1025) + `"}`), `attributes["env"]`, "value is 1025 bytes"},
		{"attribute value surrogate", req(`"action":"search","service":"s","attributes":{"env":"\ud83d"}`), `attributes["env"]`, "unpaired UTF-16 surrogate"},
		{"first bad attribute reported", req(`"action":"search","service":"s","attributes":{"z":"\u0001","b":"\u0001","m":""}`), `attributes["b"]`, "control character"},
		{"require_all on write", req(`"action":"write","service":"s","targets":["a"],"values":["1"],"require_all":true`), "require_all", "exact read or delete"},
		{"require_all on prefix read", req(`"action":"read","service":"s","match":"prefix","targets":[""],"require_all":true`), "require_all", "exact read or delete"},
		{"require_all on search", req(`"action":"search","service":"s","match":"exact","targets":["a"],"require_all":true`), "require_all", "exact read or delete"},
		{"require_all string", req(`"action":"read","service":"s","targets":["a"],"require_all":"yes"`), "require_all", "must be true or false, not a string"},
		{"id object", req(`"id":{"n":1},"action":"check"`), "id", "not an object"},
		{"id array", req(`"id":[1],"action":"check"`), "id", "not an array"},
		{"id twice", req(`"id":1,"id":2,"action":"check"`), "id", "more than once"},
		{"values on check", req(`"action":"check","values":["x"]`), "values", "only allowed on write"},
		{"require_all on check", req(`"action":"check","require_all":true`), "require_all", "exact read or delete"},
		{"check with ill-typed targets", req(`"action":"check","targets":5`), "targets", "must be an array of strings"},
		{"check with ill-typed service", req(`"action":"check","service":{}`), "service", "must be a string"},
	}
	fields := map[string]bool{}
	for _, tc := range tests {
		fields[tc.field] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := DecodeRequest([]byte(tc.line))
			if err == nil {
				t.Fatalf("accepted %.200s", tc.line)
			}
			if r == nil {
				t.Fatal("returned a nil *Request with the error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not match ErrMalformed", err)
			}
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %q is not a *MalformedError", err)
			}
			if me.Field != tc.field {
				t.Errorf("field = %q, want %q (error %q)", me.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field+": ") && tc.field != "" {
				t.Errorf("message %q does not name field %q", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("message %q does not say %q", err, tc.text)
			}
			if len(err.Error()) > 300 {
				t.Errorf("message is %d bytes long; it must stay short whatever the input", len(err.Error()))
			}
		})
	}
	if len(tests) < 25 || len(fields) < 10 {
		t.Errorf("only %d bad requests over %d fields", len(tests), len(fields))
	}
}

func TestDecodeRequestAccepts(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("v", MaxValueLen)
	thousand := make([]string, MaxTargets)
	for i := range thousand {
		thousand[i] = fmt.Sprintf("t%04d", i)
	}
	sixtyFour := map[string]string{}
	for i := range MaxAttributes {
		sixtyFour[fmt.Sprintf("k%d", i)] = ""
	}
	tests := []struct {
		name  string
		line  string
		want  Request
		match Match
	}{
		{"single read", req(`"id":"r1","action":"read","service":"aws","targets":["key"]`),
			Request{Type: "REQUEST", ID: json.RawMessage(`"r1"`), Action: ActionRead, Service: "aws", Targets: []string{"key"}}, MatchExact},
		{"batch read with require_all", req(`"action":"read","service":"aws","match":"exact","targets":["a","b"],"require_all":true`),
			Request{Type: "REQUEST", Action: ActionRead, Service: "aws", Match: MatchExact, Targets: []string{"a", "b"}, RequireAll: true}, MatchExact},
		{"exec read", req(`"action":"read","service":"aws","targets":["a"],"exec_fd":true,"exec_argv":["tool","-v"]`),
			Request{Type: "REQUEST", Action: ActionRead, Service: "aws", Targets: []string{"a"}, ExecFD: true, ExecArgv: []string{"tool", "-v"}}, MatchExact},
		{"prefix read of everything", req(`"action":"read","service":"aws","match":"prefix","targets":[""]`),
			Request{Type: "REQUEST", Action: ActionRead, Service: "aws", Match: MatchPrefix, Targets: []string{""}}, MatchPrefix},
		{"write batch", req(`"action":"write","service":"db","targets":["user","pem","empty"],"values":["root","-----BEGIN-----\nabc\n-----END-----\n",""],"attributes":{"env":"prod"}`),
			Request{Type: "REQUEST", Action: ActionWrite, Service: "db", Targets: []string{"user", "pem", "empty"},
				Values: []string{"root", "-----BEGIN-----\nabc\n-----END-----\n", ""}, Attributes: map[string]string{"env": "prod"}}, MatchExact},
		{"write 64 KiB value", req(`"action":"write","service":"db","targets":["big"],"values":["` + big + `"]`),
			Request{Type: "REQUEST", Action: ActionWrite, Service: "db", Targets: []string{"big"}, Values: []string{big}}, MatchExact},
		{"delete with require_all", req(`"action":"delete","service":"db","targets":["a"],"require_all":true`),
			Request{Type: "REQUEST", Action: ActionDelete, Service: "db", Targets: []string{"a"}, RequireAll: true}, MatchExact},
		{"prefix delete", req(`"action":"delete","service":"db","match":"prefix","targets":["tmp/"]`),
			Request{Type: "REQUEST", Action: ActionDelete, Service: "db", Match: MatchPrefix, Targets: []string{"tmp/"}}, MatchPrefix},
		{"search everything", req(`"action":"search","service":"db"`),
			Request{Type: "REQUEST", Action: ActionSearch, Service: "db"}, MatchPrefix},
		{"search prefix without match", req(`"action":"search","service":"db","targets":["us"],"attributes":{"env":"prod"}`),
			Request{Type: "REQUEST", Action: ActionSearch, Service: "db", Targets: []string{"us"}, Attributes: map[string]string{"env": "prod"}}, MatchPrefix},
		{"search prefix without targets", req(`"action":"search","service":"db","match":"prefix","targets":[]`),
			Request{Type: "REQUEST", Action: ActionSearch, Service: "db", Match: MatchPrefix}, MatchPrefix},
		{"search exact", req(`"action":"search","service":"db","match":"exact","targets":["a","b"]`),
			Request{Type: "REQUEST", Action: ActionSearch, Service: "db", Match: MatchExact, Targets: []string{"a", "b"}}, MatchExact},
		{"check", req(`"action":"check"`), Request{Type: "REQUEST", Action: ActionCheck}, ""},
		{"check drops ignored fields", req(`"id":9,"action":"check","service":"x\u0001","match":"glob","targets":["a","a"],"attributes":{"":""}`),
			Request{Type: "REQUEST", ID: json.RawMessage(`9`), Action: ActionCheck}, ""},
		{"unknown fields ignored", `{"pid":1,"type":"REQUEST","extra":{"deep":[1,{"x":"}"}]},"action":"read","service":"s","targets":["a"],"Service":"other"}`,
			Request{Type: "REQUEST", Action: ActionRead, Service: "s", Targets: []string{"a"}}, MatchExact},
		{"nulls read as absent", req(`"id":null,"action":"search","service":"s","match":null,"targets":null,"values":null,"attributes":null,"require_all":null`),
			Request{Type: "REQUEST", ID: json.RawMessage(`null`), Action: ActionSearch, Service: "s"}, MatchPrefix},
		{"whitespace and CR", " \t{ \"type\" : \"REQUEST\" , \"action\" : \"read\" , \"service\" : \"s\" , \"targets\" : [ \"a\" ] } \r",
			Request{Type: "REQUEST", Action: ActionRead, Service: "s", Targets: []string{"a"}}, MatchExact},
		{"escaped keys and strings", `{"\u0074ype":"REQUEST","action":"re\u0061d","service":"\u00e9t\u00e9","targets":["a\/b","\ud83d\ude00","\"q\""]}`,
			Request{Type: "REQUEST", Action: ActionRead, Service: "été", Targets: []string{"a/b", "😀", `"q"`}}, MatchExact},
		{"literal replacement character", req(`"action":"read","service":"s","targets":["\ufffd"]`),
			Request{Type: "REQUEST", Action: ActionRead, Service: "s", Targets: []string{"\uFFFD"}}, MatchExact},
		{"limits exactly", req(`"action":"read","service":"` + strings.Repeat("s", MaxServiceLen) + `","targets":["` + strings.Repeat("t", MaxTargetLen) + `"]`),
			Request{Type: "REQUEST", Action: ActionRead, Service: strings.Repeat("s", MaxServiceLen), Targets: []string{strings.Repeat("t", MaxTargetLen)}}, MatchExact},
		{"1000 targets", req(`"action":"delete","service":"s","targets":` + jsonList(MaxTargets, func(i int) string { return `"` + thousand[i] + `"` })),
			Request{Type: "REQUEST", Action: ActionDelete, Service: "s", Targets: thousand}, MatchExact},
		{"64 attributes", req(`"action":"search","service":"s","attributes":{` + strings.Trim(jsonList(MaxAttributes, func(i int) string { return fmt.Sprintf(`"k%d":""`, i) }), "[]") + `}`),
			Request{Type: "REQUEST", Action: ActionSearch, Service: "s", Attributes: sixtyFour}, MatchPrefix},
		{"require_all false anywhere", req(`"action":"write","service":"s","targets":["a"],"values":["1"],"require_all":false`),
			Request{Type: "REQUEST", Action: ActionWrite, Service: "s", Targets: []string{"a"}, Values: []string{"1"}}, MatchExact},
		{"values empty on read", req(`"action":"read","service":"s","targets":["a"],"values":[]`),
			Request{Type: "REQUEST", Action: ActionRead, Service: "s", Targets: []string{"a"}}, MatchExact},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeRequest([]byte(tc.line))
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("decoded\n %+v\nwant\n %+v", *got, tc.want)
			}
			if m := got.EffectiveMatch(); m != tc.match {
				t.Errorf("EffectiveMatch = %q, want %q", m, tc.match)
			}
		})
	}
}

func TestDecodeRequestEchoesID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line, id string // id "" means none must be recovered
		ok             bool
	}{
		{"string", req(`"id":"abc-1","action":"check"`), `"abc-1"`, true},
		{"escaped string kept verbatim", req(`"id":"\u003c\/x>","action":"check"`), `"\u003c\/x>"`, true},
		{"number kept verbatim", req(`"id": 4.20e1 ,"action":"check"`), `4.20e1`, true},
		{"negative integer", req(`"id":-7,"action":"check"`), `-7`, true},
		{"null", req(`"id":null,"action":"check"`), `null`, true},
		{"boolean", req(`"id":false,"action":"check"`), `false`, true},
		{"object rejected", req(`"id":{"a":1},"action":"check"`), "", false},
		{"array rejected", req(`"id":["a"],"action":"check"`), "", false},
		{"invalid UTF-8 not echoed", req(`"id":"` + "\xfe" + `","action":"check"`), "", false},
		{"echoed when a later field is ill-typed", `{"id":7,"type":"REQUEST","action":"read","service":5}`, `7`, false},
		{"echoed when an earlier field is ill-typed", `{"service":5,"type":"REQUEST","action":"read","id":"x"}`, `"x"`, false},
		{"echoed when a rule fails", req(`"action":"read","service":"s","targets":["a","a"],"id":"dup"`), `"dup"`, false},
		{"echoed despite trailing data", req(`"id":"t","action":"check"`) + `,`, `"t"`, false},
		{"first of two ids echoed", req(`"id":1,"id":2,"action":"check"`), `1`, false},
		{"lost when the JSON is broken", `{"id":"z","type":"REQUEST",`, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := DecodeRequest([]byte(tc.line))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if string(r.ID) != tc.id {
				t.Errorf("ID = %q, want %q", r.ID, tc.id)
			}
			if tc.id == "" && r.ID != nil {
				t.Errorf("ID = %q, want nil", r.ID)
			}
			// The reply must carry the id byte for byte.
			var out strings.Builder
			if err := WriteResponse(&out, Failure(r.ID, ReasonMalformedRequest, "x")); err != nil {
				t.Fatal(err)
			}
			want := `{"type":"RESPONSE",`
			if tc.id != "" {
				want += `"id":` + tc.id + `,`
			}
			if !strings.HasPrefix(out.String(), want) {
				t.Errorf("reply %q does not start with %q", out.String(), want)
			}
		})
	}
}

func TestDecodeRequestErrorsKeepSecretsOut(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-SECRET"
	lines := []string{
		req(`"action":"read","service":"s","targets":["a"],"values":["` + secret + `"]`),
		req(`"action":"write","service":"s","targets":["a","b"],"values":["` + secret + `"]`),
		req(`"action":"write","service":"s","targets":["a"],"values":["` + strings.Repeat(secret, 5000) + `"]`),
		req(`"action":"write","service":"s","targets":["a"],"values":["` + secret + "\xff" + `"]`),
		req(`"action":"write","service":"s","targets":["a"],"values":["` + secret + `\ud800"]`),
		req(`"action":"write","service":"s","targets":["a"],"values":[` + secret + `]`),
		req(`"action":"write","service":"s","targets":["a"],"values":["`+secret+`"]`) + secret,
		req(`"action":"write","service":"s","targets":["a"],"values":["` + secret + "\n" + `"]`),
		req(`"action":"write","service":"s","targets":["a"],"values":["` + secret + `"],"require_all":true`),
		req(`"action":"check","values":["` + secret + `"]`),
	}
	for i, line := range lines {
		_, err := DecodeRequest([]byte(line))
		if err == nil {
			t.Errorf("line %d accepted", i)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "hunter") || strings.Contains(msg, "'h'") {
			t.Errorf("line %d: message %q shows the secret", i, msg)
		}
	}
}

func TestEffectiveMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		action Action
		match  Match
		want   Match
	}{
		{ActionRead, "", MatchExact},
		{ActionWrite, "", MatchExact},
		{ActionDelete, "", MatchExact},
		{ActionSearch, "", MatchPrefix},
		{ActionCheck, "", ""},
		{ActionRead, MatchPrefix, MatchPrefix},
		{ActionSearch, MatchExact, MatchExact},
	}
	for _, tc := range tests {
		r := Request{Action: tc.action, Match: tc.match}
		if got := r.EffectiveMatch(); got != tc.want {
			t.Errorf("%s with match %q: EffectiveMatch = %q, want %q", tc.action, tc.match, got, tc.want)
		}
	}
}

// Requests built in Go (by the client SDK, say) never went through the
// decoder, so Validate must catch on its own what JSON could not express.
func TestValidateBuiltRequests(t *testing.T) {
	t.Parallel()
	base := func() Request {
		return Request{Type: TypeRequest, Action: ActionWrite, Service: "s", Targets: []string{"a"}, Values: []string{"v"}}
	}
	ok := base()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Request)
		field string
	}{
		{"id object", func(r *Request) { r.ID = json.RawMessage(`{}`) }, "id"},
		{"id not JSON", func(r *Request) { r.ID = json.RawMessage(`abc`) }, "id"},
		{"id two values", func(r *Request) { r.ID = json.RawMessage(`1 2`) }, "id"},
		{"id object after blanks", func(r *Request) { r.ID = json.RawMessage(" \n{}") }, "id"},
		{"empty type", func(r *Request) { r.Type = "" }, "type"},
		{"value not UTF-8", func(r *Request) { r.Values[0] = "\xff" }, "values[0]"},
		{"target not UTF-8", func(r *Request) { r.Targets[0] = "a\xc0" }, "targets[0]"},
		{"attribute key not UTF-8", func(r *Request) { r.Attributes = map[string]string{"\x80": "v"} }, `attributes["\x80"]`},
		{"empty match read as default", func(r *Request) { r.Match = ""; r.Values = nil }, "values"},
	}
	for _, tc := range tests {
		r := base()
		tc.edit(&r)
		err := r.Validate()
		var me *MalformedError
		if !errors.As(err, &me) || me.Field != tc.field || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want a MalformedError on %q", tc.name, err, tc.field)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	line := []byte(`{"type":"REQUEST","id":17,"action":"read","service":"aws","targets":["access_key_id"]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := DecodeRequest(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequestBatch100(b *testing.B) {
	line := []byte(req(`"action":"read","service":"aws","targets":` + jsonList(100, func(i int) string { return fmt.Sprintf(`"target-%03d"`, i) })))
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := DecodeRequest(line); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValueCountMessageAgreesInNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{req(`"action":"write","service":"s","targets":["a"],"values":["1","2"]`), "has 2 entries for 1 target;"},
		{req(`"action":"write","service":"s","targets":["a","b"],"values":["1"]`), "has 1 entry for 2 targets;"},
	} {
		_, err := DecodeRequest([]byte(tc.line))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.line, err, tc.want)
		}
	}
}
