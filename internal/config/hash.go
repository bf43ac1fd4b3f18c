package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

const hashPrefix = "sha256:"

// MinHashPrefix is the fewest hex digits ResolveHash accepts as a prefix.
const MinHashPrefix = 8

// Errors from ResolveHash.
var (
	ErrBadHash       = errors.New("not a hash")
	ErrUnknownHash   = errors.New("no such hash")
	ErrAmbiguousHash = errors.New("ambiguous hash prefix")
)

// HashLookupError says which input failed to resolve and, when it was
// ambiguous, the hashes it could mean.
type HashLookupError struct {
	Input      string
	Candidates []string
	Err        error
}

func (e *HashLookupError) Error() string {
	switch e.Err {
	case ErrAmbiguousHash:
		return fmt.Sprintf("%q matches %d hashes (%s); give more digits", e.Input, len(e.Candidates), strings.Join(e.Candidates, ", "))
	case ErrUnknownHash:
		return fmt.Sprintf("no known hash starts with %q", e.Input)
	}
	return fmt.Sprintf("%q is not a sha256 hash or a prefix of at least %d hex digits", e.Input, MinHashPrefix)
}

func (e *HashLookupError) Unwrap() error { return e.Err }

// ValidHash reports whether s is the canonical form "sha256:<64 lowercase hex>".
func ValidHash(s string) bool {
	hex, ok := strings.CutPrefix(s, hashPrefix)
	return ok && len(hex) == 64 && isLowerHex(hex)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func trimHashPrefix(s string) string {
	if len(s) >= len(hashPrefix) && strings.EqualFold(s[:len(hashPrefix)], hashPrefix) {
		return s[len(hashPrefix):]
	}
	return s
}

// ResolveHash finds the one hash among candidates that input names: a full
// hash with or without "sha256:", or a unique prefix of at least
// MinHashPrefix hex digits. Failures are *HashLookupError wrapping
// ErrBadHash, ErrUnknownHash or ErrAmbiguousHash.
func ResolveHash(input string, candidates []string) (string, error) {
	hex := strings.ToLower(trimHashPrefix(strings.TrimSpace(input)))
	if len(hex) < MinHashPrefix || len(hex) > 64 || !isLowerHex(hex) {
		return "", &HashLookupError{Input: input, Err: ErrBadHash}
	}
	var found []string
	for _, c := range candidates {
		if strings.HasPrefix(c, hashPrefix+hex) && !slices.Contains(found, c) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return "", &HashLookupError{Input: input, Err: ErrUnknownHash}
	case 1:
		return found[0], nil
	}
	slices.Sort(found)
	return "", &HashLookupError{Input: input, Candidates: found, Err: ErrAmbiguousHash}
}
