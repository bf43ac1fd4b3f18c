package policy

import "strings"

// MatchService reports whether a service pattern from the policy covers
// service. A pattern is an exact name, or a name ending in "*" that covers
// every service starting with what precedes the star ("aws-*" covers "aws-"
// and "aws-prod" but not "aws"). A bare "*" covers every service. A star
// anywhere but at the end is an ordinary character.
func MatchService(pattern, service string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(service, prefix)
	}
	return pattern == service
}

// IsWildcard reports whether pattern is the bare "*" that grants every
// service; register and approve warn about it.
func IsWildcard(pattern string) bool { return pattern == "*" }

// ShortHash is the abbreviated form of a "sha256:<hex>" hash shown to users:
// the first 12 hex digits, enough to be unique in practice and accepted by
// `keychain-auth approve` (which takes any unique prefix of 8 or more).
func ShortHash(hash string) string {
	hex := strings.TrimPrefix(hash, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// shellQuote returns s so that it can be pasted into a POSIX shell as one
// word; hints in messages are meant to be copied.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("-_./:@+=,%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
