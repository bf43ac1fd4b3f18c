// Package policy decides, without any I/O, what a caller may do: it turns the
// registered entries and the kernel-reported identity of a peer into a Grant,
// and a Grant plus one request into an allow/deny Decision with its reason.
package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/The-17/keychain-auth/protocol"
)

// Entry is one registration as far as policy is concerned. Read and Write hold
// service patterns (see MatchService). An empty UIDs admits every uid.
type Entry struct {
	Path      string
	Hash      string
	Read      []string
	Write     []string
	CanSearch bool
	UIDs      []uint32
}

// Caller is what the kernel says about a peer: the hash of the image it runs,
// the resolved path of that image, and its uid. Nothing here comes from the
// peer itself.
type Caller struct {
	Hash string
	Path string
	UID  uint32
}

// Grant is the union of every entry a caller may use. Lists are sorted and
// free of duplicates.
type Grant struct {
	// Hash is the caller's hash; it is only used to phrase grant hints.
	Hash      string
	Read      []string
	Write     []string
	CanSearch bool
	Paths     []string
}

// Decision is the outcome of a policy check. The zero value allows.
type Decision struct {
	Reason  protocol.Reason
	Message string
}

// Allowed reports whether the decision lets the caller proceed.
func (d Decision) Allowed() bool { return d.Reason == "" }

func deny(r protocol.Reason, format string, args ...any) Decision {
	return Decision{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Identify finds what caller c may use. A hash that is registered for c's uid
// yields the union of those entries. Otherwise the denial explains why:
// foreign_user when the hash is registered but only for other uids (the binary
// is known, so suggesting an upgrade would be wrong), hash_mismatch when the
// caller's path is registered under another hash (an upgraded or altered
// binary), and unregistered_binary for everything else.
func Identify(entries []Entry, c Caller) (Grant, Decision) {
	var own []Entry
	hashKnown := false
	for _, e := range entries {
		if e.Hash != c.Hash {
			continue
		}
		hashKnown = true
		if len(e.UIDs) == 0 || slices.Contains(e.UIDs, c.UID) {
			own = append(own, e)
		}
	}
	if len(own) > 0 {
		return union(c.Hash, own), Decision{}
	}
	name := c.Path
	if name == "" {
		name = "the calling binary"
	}
	if hashKnown {
		return Grant{}, deny(protocol.ReasonForeignUser,
			"%s (%s) is registered, but not for uid %d; an administrator can add this uid to its entry",
			name, ShortHash(c.Hash), c.UID)
	}
	if c.Path != "" {
		for _, e := range entries {
			if e.Path == c.Path {
				return Grant{}, deny(protocol.ReasonHashMismatch,
					"%s now has hash %s, but it is registered with %s (the file was upgraded or altered); if you trust the new file, run: keychain-auth upgrade %s",
					c.Path, ShortHash(c.Hash), ShortHash(e.Hash), shellQuote(c.Path))
			}
		}
	}
	return Grant{}, deny(protocol.ReasonUnregisteredBinary,
		"%s (%s) is not registered; review it with: keychain-auth list-pending, then allow it with: keychain-auth approve %s",
		name, ShortHash(c.Hash), ShortHash(c.Hash))
}

func union(hash string, entries []Entry) Grant {
	g := Grant{Hash: hash}
	for _, e := range entries {
		g.Read = append(g.Read, e.Read...)
		g.Write = append(g.Write, e.Write...)
		g.CanSearch = g.CanSearch || e.CanSearch
		if e.Path != "" {
			g.Paths = append(g.Paths, e.Path)
		}
	}
	g.Read = sortedSet(g.Read)
	g.Write = sortedSet(g.Write)
	g.Paths = sortedSet(g.Paths)
	return g
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// need is the set of privilege kinds one request requires.
type need struct {
	read, write, search bool
}

// requirement maps a request to the privileges DESIGN §4 demands for it and a
// short name of the operation for messages. ok is false for combinations the
// protocol never accepts (prefix write, unknown actions): policy denies those
// rather than guess.
func requirement(req *protocol.Request) (n need, what string, ok bool) {
	prefix := req.EffectiveMatch() == protocol.MatchPrefix
	switch req.Action {
	case protocol.ActionRead:
		if prefix {
			return need{read: true, search: true}, "prefix read", true
		}
		return need{read: true}, "read", true
	case protocol.ActionWrite:
		if prefix {
			return need{}, "", false
		}
		return need{write: true}, "write", true
	case protocol.ActionDelete:
		if prefix {
			return need{write: true, search: true}, "prefix delete", true
		}
		return need{write: true}, "delete", true
	case protocol.ActionSearch:
		return need{read: true, search: true}, "search", true
	}
	return need{}, "", false
}

// Authorize decides whether g permits req. check is always allowed (the caller
// is already identified); every other action needs the privileges of DESIGN
// §4. The reason is action_not_in_policy when a needed kind of privilege is
// absent altogether and service_not_allowed when all kinds exist but one does
// not cover the service.
func (g Grant) Authorize(req *protocol.Request) Decision {
	if req.Action == protocol.ActionCheck {
		return Decision{}
	}
	n, what, ok := requirement(req)
	if !ok {
		return deny(protocol.ReasonMalformedRequest,
			"action %q with match %q is not a valid request", req.Action, req.EffectiveMatch())
	}
	svc := req.Service
	var (
		absent   bool
		problems []string
		flags    []string
	)
	if n.search && !g.CanSearch {
		absent = true
		problems = append(problems, "it has no search privilege")
		flags = append(flags, "--search")
	}
	check := func(kind string, patterns []string) {
		switch {
		case len(patterns) == 0:
			absent = true
			problems = append(problems, "it has no "+kind+" privilege for any service")
		case !covers(patterns, svc):
			problems = append(problems, fmt.Sprintf("its %s services (%s) do not include %q", kind, summarize(patterns), svc))
		default:
			return
		}
		flags = append(flags, "--"+kind+" "+shellQuote(svc))
	}
	if n.read {
		check("read", g.Read)
	}
	if n.write {
		check("write", g.Write)
	}
	if len(problems) == 0 {
		return Decision{}
	}
	reason := protocol.ReasonServiceNotAllowed
	if absent {
		reason = protocol.ReasonActionNotInPolicy
	}
	return deny(reason, "%s on service %q denied: %s; to allow it run: keychain-auth grant %s %s",
		what, svc, strings.Join(problems, " and "), g.subject(), strings.Join(flags, " "))
}

// subject names the binary in a grant hint the way the CLI accepts it.
func (g Grant) subject() string {
	switch {
	case g.Hash != "":
		return g.Hash
	case len(g.Paths) > 0:
		return shellQuote(g.Paths[0])
	}
	return "<hash>"
}

func covers(patterns []string, service string) bool {
	for _, p := range patterns {
		if MatchService(p, service) {
			return true
		}
	}
	return false
}

// summarize lists patterns for a message without letting a huge policy flood it.
func summarize(patterns []string) string {
	const max = 8
	if len(patterns) <= max {
		return strings.Join(patterns, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(patterns[:max], ", "), len(patterns)-max)
}
