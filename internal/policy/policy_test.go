package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/protocol"
)

const (
	hashA = "sha256:aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000"
	hashB = "sha256:bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000"
)

func TestMatchService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, service string
		want             bool
	}{
		{"aws", "aws", true},
		{"aws", "aws-prod", false},
		{"aws", "AWS", false},
		{"aws", "", false},
		{"aws-*", "aws-prod", true},
		{"aws-*", "aws-", true},
		{"aws-*", "aws", false},
		{"aws-*", "gcp-prod", false},
		{"aws-*", "xaws-prod", false},
		{"*", "anything", true},
		{"*", "", true},
		{"a*b", "a*b", true},   // a star in the middle is literal
		{"a*b", "axxb", false}, // ... and not a glob
		{"*aws", "*aws", true},
		{"*aws", "xaws", false},
		{"a**", "a*", true}, // only the last star is special
		{"a**", "ab", false},
		{"", "", true},
		{"", "aws", false},
	}
	for _, tt := range tests {
		if got := MatchService(tt.pattern, tt.service); got != tt.want {
			t.Errorf("MatchService(%q, %q) = %v, want %v", tt.pattern, tt.service, got, tt.want)
		}
	}
	if !IsWildcard("*") || IsWildcard("aws-*") || IsWildcard("**") {
		t.Error("IsWildcard must be true for a bare * only")
	}
}

func req(action protocol.Action, match protocol.Match, service string) *protocol.Request {
	return &protocol.Request{Type: protocol.TypeRequest, Action: action, Match: match, Service: service, Targets: []string{"t"}}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	var (
		none      = Grant{Hash: hashA}
		readAWS   = Grant{Hash: hashA, Read: []string{"aws"}}
		writeAWS  = Grant{Hash: hashA, Write: []string{"aws"}}
		rwAWS     = Grant{Hash: hashA, Read: []string{"aws"}, Write: []string{"aws"}}
		searchRW  = Grant{Hash: hashA, Read: []string{"aws"}, Write: []string{"aws"}, CanSearch: true}
		searchOnl = Grant{Hash: hashA, CanSearch: true}
		searchGCP = Grant{Hash: hashA, Read: []string{"gcp"}, Write: []string{"gcp"}, CanSearch: true}
		prefixed  = Grant{Hash: hashA, Read: []string{"aws-*"}, Write: []string{"db"}}
		all       = Grant{Hash: hashA, Read: []string{"*"}, Write: []string{"*"}, CanSearch: true}
	)
	const (
		allow = protocol.Reason("")
		anip  = protocol.ReasonActionNotInPolicy
		sna   = protocol.ReasonServiceNotAllowed
	)
	R, W, D, S, C := protocol.ActionRead, protocol.ActionWrite, protocol.ActionDelete, protocol.ActionSearch, protocol.ActionCheck
	ex, px := protocol.MatchExact, protocol.MatchPrefix
	tests := []struct {
		name  string
		grant Grant
		req   *protocol.Request
		want  protocol.Reason
	}{
		{"check with no privileges", none, req(C, "", ""), allow},
		{"check ignores service", readAWS, req(C, "", "gcp"), allow},

		{"exact read allowed", readAWS, req(R, "", "aws"), allow},
		{"exact read explicit match", readAWS, req(R, ex, "aws"), allow},
		{"exact read no read list", writeAWS, req(R, "", "aws"), anip},
		{"exact read other service", readAWS, req(R, "", "gcp"), sna},
		{"exact read needs no search", rwAWS, req(R, ex, "aws"), allow},
		{"write privilege does not allow read", searchGCP, req(R, "", "aws"), sna},

		{"write allowed", writeAWS, req(W, "", "aws"), allow},
		{"write with read only", readAWS, req(W, "", "aws"), anip},
		{"write other service", writeAWS, req(W, "", "gcp"), sna},
		{"prefix write never allowed", all, req(W, px, "aws"), protocol.ReasonMalformedRequest},

		{"exact delete allowed", writeAWS, req(D, "", "aws"), allow},
		{"exact delete with read only", readAWS, req(D, ex, "aws"), anip},
		{"exact delete other service", writeAWS, req(D, "", "gcp"), sna},

		{"prefix delete allowed", searchRW, req(D, px, "aws"), allow},
		{"prefix delete without search", rwAWS, req(D, px, "aws"), anip},
		{"prefix delete without write", Grant{Hash: hashA, Read: []string{"aws"}, CanSearch: true}, req(D, px, "aws"), anip},
		{"prefix delete other service", searchRW, req(D, px, "gcp"), sna},

		{"prefix read allowed", searchRW, req(R, px, "aws"), allow},
		{"prefix read without search", readAWS, req(R, px, "aws"), anip},
		{"prefix read with search only", searchOnl, req(R, px, "aws"), anip},
		{"prefix read other service", searchGCP, req(R, px, "aws"), sna},

		{"search default match allowed", searchRW, req(S, "", "aws"), allow},
		{"search exact allowed", searchRW, req(S, ex, "aws"), allow},
		{"search without search privilege", rwAWS, req(S, "", "aws"), anip},
		{"search exact still needs search", rwAWS, req(S, ex, "aws"), anip},
		{"search with search only", searchOnl, req(S, "", "aws"), anip},
		{"search with write only", Grant{Hash: hashA, Write: []string{"aws"}, CanSearch: true}, req(S, "", "aws"), anip},
		{"search other service", searchGCP, req(S, "", "aws"), sna},

		{"prefix pattern covers", prefixed, req(R, "", "aws-prod"), allow},
		{"prefix pattern covers bare prefix", prefixed, req(R, "", "aws-"), allow},
		{"prefix pattern does not cover stem", prefixed, req(R, "", "aws"), sna},
		{"read pattern does not leak into write", prefixed, req(W, "", "aws-prod"), sna},
		{"wildcard read", all, req(R, "", "anything"), allow},
		{"wildcard prefix delete", all, req(D, px, "x"), allow},
		{"wildcard search", all, req(S, "", "x"), allow},

		{"unknown action denied", all, req("launch", "", "aws"), protocol.ReasonMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.grant.Authorize(tt.req)
			if d.Reason != tt.want {
				t.Fatalf("reason = %q, want %q (message %q)", d.Reason, tt.want, d.Message)
			}
			if d.Allowed() != (tt.want == allow) {
				t.Fatalf("Allowed() = %v for reason %q", d.Allowed(), d.Reason)
			}
			if !d.Allowed() && d.Message == "" {
				t.Fatal("a denial must explain itself")
			}
			if protocol.StatusOf(d.Reason) == protocol.StatusSuccess && !d.Allowed() {
				t.Fatal("denial maps to success status")
			}
		})
	}
}

func TestAuthorizeMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		grant Grant
		req   *protocol.Request
		want  []string
	}{
		{"missing read", Grant{Hash: hashA}, req(protocol.ActionRead, "", "aws"),
			[]string{`read on service "aws"`, "no read privilege", "keychain-auth grant " + hashA + " --read aws"}},
		{"uncovered write lists what exists", Grant{Hash: hashA, Write: []string{"db", "gcp-*"}}, req(protocol.ActionWrite, "", "aws"),
			[]string{"write services (db, gcp-*)", `do not include "aws"`, "--write aws"}},
		{"prefix read names both flags", Grant{Hash: hashA}, req(protocol.ActionRead, protocol.MatchPrefix, "aws"),
			[]string{"prefix read", "no search privilege", "--search --read aws"}},
		{"odd service is quoted for the shell", Grant{Hash: hashA}, req(protocol.ActionRead, "", "my app's"),
			[]string{`--read 'my app'\''s'`}},
		{"grant without hash names the path", Grant{Paths: []string{"/opt/my tool"}}, req(protocol.ActionDelete, "", "aws"),
			[]string{`grant '/opt/my tool' --write aws`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.grant.Authorize(tt.req)
			for _, w := range tt.want {
				if !strings.Contains(d.Message, w) {
					t.Errorf("message %q lacks %q", d.Message, w)
				}
			}
		})
	}
}

func TestAuthorizeNeverEchoesValues(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-value-must-not-leak"
	r := req(protocol.ActionWrite, "", "aws")
	r.Values = []string{secret}
	for _, g := range []Grant{{Hash: hashA}, {Hash: hashA, Write: []string{"gcp"}}} {
		d := g.Authorize(r)
		if d.Allowed() {
			t.Fatal("write without the privilege was allowed")
		}
		if strings.Contains(d.Message, secret) {
			t.Fatal("denial message contains the value being written")
		}
	}
}

func TestAuthorizeSummarizesLongLists(t *testing.T) {
	t.Parallel()
	g := Grant{Hash: hashA}
	for i := range 50 {
		g.Read = append(g.Read, strings.Repeat("s", i+1))
	}
	d := g.Authorize(req(protocol.ActionRead, "", "aws"))
	if !strings.Contains(d.Message, "and 42 more") {
		t.Fatalf("long pattern list not summarized: %q", d.Message)
	}
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	entries := []Entry{
		{Path: "/usr/bin/tool", Hash: hashA, Read: []string{"gcp", "aws"}},
		{Path: "/opt/tool-copy", Hash: hashA, Read: []string{"aws", "db"}, Write: []string{"db"}, CanSearch: true},
		{Path: "/usr/bin/tool", Hash: hashA, Write: []string{"z"}, UIDs: []uint32{1001}},
		{Path: "/usr/bin/ops", Hash: hashB, Read: []string{"ops"}, UIDs: []uint32{2000, 2001}},
	}

	t.Run("union of entries with the hash", func(t *testing.T) {
		t.Parallel()
		g, d := Identify(entries, Caller{Hash: hashA, Path: "/somewhere/else", UID: 1000})
		if !d.Allowed() {
			t.Fatalf("denied: %+v", d)
		}
		want := Grant{Hash: hashA, Read: []string{"aws", "db", "gcp"}, Write: []string{"db"}, CanSearch: true,
			Paths: []string{"/opt/tool-copy", "/usr/bin/tool"}}
		if !grantEqual(g, want) {
			t.Fatalf("grant = %+v, want %+v", g, want)
		}
	})
	t.Run("uid-restricted entry joins the union for its uid", func(t *testing.T) {
		t.Parallel()
		g, d := Identify(entries, Caller{Hash: hashA, UID: 1001})
		if !d.Allowed() || !slices.Equal(g.Write, []string{"db", "z"}) {
			t.Fatalf("uid 1001: grant %+v, decision %+v", g, d)
		}
		g, _ = Identify(entries, Caller{Hash: hashA, UID: 1000})
		if slices.Contains(g.Write, "z") {
			t.Fatal("entry limited to uid 1001 applied to uid 1000")
		}
	})
	t.Run("foreign user", func(t *testing.T) {
		t.Parallel()
		g, d := Identify(entries, Caller{Hash: hashB, Path: "/usr/bin/ops", UID: 1000})
		if d.Reason != protocol.ReasonForeignUser || !strings.Contains(d.Message, "uid 1000") {
			t.Fatalf("decision = %+v", d)
		}
		if len(g.Read)+len(g.Write) != 0 || g.CanSearch {
			t.Fatalf("denied caller got privileges: %+v", g)
		}
		if _, d := Identify(entries, Caller{Hash: hashB, UID: 2001}); !d.Allowed() {
			t.Fatalf("listed uid denied: %+v", d)
		}
	})
	t.Run("hash mismatch on registered path", func(t *testing.T) {
		t.Parallel()
		const newHash = "sha256:cccccccccccc0000000000000000000000000000000000000000000000000000"
		_, d := Identify(entries, Caller{Hash: newHash, Path: "/usr/bin/tool", UID: 1000})
		if d.Reason != protocol.ReasonHashMismatch {
			t.Fatalf("decision = %+v", d)
		}
		if !strings.Contains(d.Message, "keychain-auth upgrade /usr/bin/tool") {
			t.Fatalf("no upgrade hint: %q", d.Message)
		}
	})
	t.Run("path compare is exact", func(t *testing.T) {
		t.Parallel()
		const newHash = "sha256:cccccccccccc0000000000000000000000000000000000000000000000000000"
		_, d := Identify(entries, Caller{Hash: newHash, Path: "/usr/bin/tool/", UID: 1000})
		if d.Reason != protocol.ReasonUnregisteredBinary {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("unregistered", func(t *testing.T) {
		t.Parallel()
		const newHash = "sha256:0123456789ab0000000000000000000000000000000000000000000000000000"
		_, d := Identify(entries, Caller{Hash: newHash, Path: "/tmp/x", UID: 1000})
		if d.Reason != protocol.ReasonUnregisteredBinary {
			t.Fatalf("decision = %+v", d)
		}
		if !strings.Contains(d.Message, "keychain-auth approve 0123456789ab") {
			t.Fatalf("no approve hint: %q", d.Message)
		}
		if _, d := Identify(nil, Caller{Hash: newHash}); d.Reason != protocol.ReasonUnregisteredBinary {
			t.Fatalf("empty policy: %+v", d)
		}
	})
	t.Run("empty caller path never matches", func(t *testing.T) {
		t.Parallel()
		_, d := Identify([]Entry{{Hash: hashA}}, Caller{Hash: hashB})
		if d.Reason != protocol.ReasonUnregisteredBinary {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("registered with zero privileges may only check", func(t *testing.T) {
		t.Parallel()
		g, d := Identify([]Entry{{Path: "/bin/x", Hash: hashA}}, Caller{Hash: hashA})
		if !d.Allowed() {
			t.Fatalf("denied: %+v", d)
		}
		if !g.Authorize(req(protocol.ActionCheck, "", "")).Allowed() {
			t.Fatal("check denied")
		}
		for _, a := range []protocol.Action{protocol.ActionRead, protocol.ActionWrite, protocol.ActionDelete, protocol.ActionSearch} {
			if d := g.Authorize(req(a, "", "aws")); d.Reason != protocol.ReasonActionNotInPolicy {
				t.Errorf("%s: %+v", a, d)
			}
		}
	})
	t.Run("identify does not modify entries", func(t *testing.T) {
		t.Parallel()
		es := []Entry{{Hash: hashA, Read: []string{"b", "a"}}, {Hash: hashA, Read: []string{"a"}}}
		Identify(es, Caller{Hash: hashA})
		if !slices.Equal(es[0].Read, []string{"b", "a"}) {
			t.Fatalf("entries mutated: %v", es[0].Read)
		}
	})
}

func grantEqual(a, b Grant) bool {
	return a.Hash == b.Hash && a.CanSearch == b.CanSearch && slices.Equal(a.Read, b.Read) &&
		slices.Equal(a.Write, b.Write) && slices.Equal(a.Paths, b.Paths)
}

func TestShortHash(t *testing.T) {
	t.Parallel()
	if got := ShortHash(hashB); got != "bbbbbbbbbbbb" {
		t.Fatalf("ShortHash = %q", got)
	}
	if got := ShortHash("sha256:abc"); got != "abc" {
		t.Fatalf("ShortHash of a short string = %q", got)
	}
}

func BenchmarkIdentifyAuthorize(b *testing.B) {
	entries := make([]Entry, 1000)
	for i := range entries {
		entries[i] = Entry{Path: "/bin/x", Hash: fmt.Sprintf("sha256:%064x", i), Read: []string{"aws-*", "gcp"}, Write: []string{"db"}, CanSearch: true}
	}
	c := Caller{Hash: entries[999].Hash, Path: "/bin/x", UID: 1000}
	r := req(protocol.ActionRead, protocol.MatchPrefix, "aws-prod")
	for b.Loop() {
		g, d := Identify(entries, c)
		if !d.Allowed() || !g.Authorize(r).Allowed() {
			b.Fatal("denied")
		}
	}
}
