package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/policy"
)

// ErrNotRegistered: the binary an admin command names has no entry.
var ErrNotRegistered = errors.New("not registered")

// writeJSON prints one JSON document, the form integrations parse.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// target is what a <hash|path> argument names, resolved as far as possible
// before config.json is locked (hashing a file can take a while).
type target struct {
	arg string
	// isHash: the argument is a full hash or a prefix of one.
	isHash bool
	// path is the resolved path of the file named, or, for a file that no
	// longer exists, the absolute form of the argument (its entry may still
	// be there to unregister).
	path string
	// fileHash is the current hash of that file; empty when it is missing.
	fileHash string
}

// parseTarget decides whether arg is a hash or a path. "sha256:..." is
// always a hash; an existing file is a path; otherwise 8 or more hex digits
// are a hash prefix and anything else a path whose file is gone.
func (a *app) parseTarget(ctx context.Context, arg string) (target, error) {
	t := target{arg: arg}
	if strings.HasPrefix(strings.ToLower(arg), "sha256:") {
		t.isHash = true
		return t, nil
	}
	if _, err := os.Lstat(arg); err == nil {
		resolved, hash, err := a.hashBinary(ctx, arg)
		if err != nil {
			return t, err
		}
		t.path, t.fileHash = resolved, hash
		return t, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return t, fmt.Errorf("cannot read %s: %w", arg, unwrapPathErr(err))
	}
	if len(arg) >= config.MinHashPrefix && isHex(arg) {
		t.isHash = true
		return t, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return t, err
	}
	t.path = abs
	return t, nil
}

// shellQuote makes s one word for a POSIX shell, so hints can be pasted.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@+=,%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// plural writes a count with the noun that agrees with it: "1 record",
// "0 records", "2 records".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func isHex(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')
	}) < 0
}

// hashes finds the registered hashes t names in c. A path names the hashes
// of the entries registered at it, or, when there are none, the entries of
// the file's current hash (the same binary reached by another path).
// Warnings go to w.
func (t target) hashes(c *config.Config, w io.Writer) ([]string, error) {
	if t.isHash {
		h, err := config.ResolveHash(t.arg, c.Hashes())
		if err != nil {
			return nil, fmt.Errorf("%w; the registered binaries are listed by: keychain-auth list", describeLookup(err, c))
		}
		return []string{h}, nil
	}
	var out []string
	for _, i := range c.FindByPath(t.path) {
		e := c.Binaries[i]
		if t.fileHash != "" && e.Hash != t.fileHash {
			fmt.Fprintf(w, "warning: %s changed on disk since it was registered (registered %s, file now %s); "+
				"this applies to the registered hash; to move its privileges to the new file run: keychain-auth upgrade %s\n",
				t.path, policy.ShortHash(e.Hash), policy.ShortHash(t.fileHash), t.path)
		}
		out = append(out, e.Hash)
	}
	if len(out) == 0 && t.fileHash != "" && len(c.FindByHash(t.fileHash)) > 0 {
		out = append(out, t.fileHash)
	}
	if len(out) == 0 {
		if t.fileHash == "" {
			return nil, fmt.Errorf("cannot find %s: no such file, and no registered binary has that path; "+
				"the registered binaries are listed by: keychain-auth list", t.arg)
		}
		return nil, fmt.Errorf("%s (%s) is %w; register it with: keychain-auth register %s",
			t.path, policy.ShortHash(t.fileHash), ErrNotRegistered, t.path)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// describeLookup adds the paths of ambiguous candidates to a hash lookup
// error, so the user can tell them apart.
func describeLookup(err error, c *config.Config) error {
	var le *config.HashLookupError
	if !errors.As(err, &le) || !errors.Is(err, config.ErrAmbiguousHash) {
		return err
	}
	names := make([]string, len(le.Candidates))
	for i, h := range le.Candidates {
		names[i] = fmt.Sprintf("%s (%s)", h, strings.Join(pathsOf(c, h), ", "))
	}
	return explain(config.ErrAmbiguousHash, "%q matches %d registered binaries: %s; give more digits",
		le.Input, len(names), strings.Join(names, ", "))
}

// explained is a sentinel error told in a full sentence: errors.Is still
// finds the sentinel, but its terse text is not repeated to the user.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

func explain(sentinel error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), err: sentinel}
}

func pathsOf(c *config.Config, hash string) []string {
	var out []string
	for _, i := range c.FindByHash(hash) {
		out = append(out, c.Binaries[i].Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// identity is one binary as the daemon sees it: a hash, the paths it is
// registered at, and the union of the privileges of its entries.
type identity struct {
	hash  string
	paths []string
	privs config.Entry
}

func identityOf(c *config.Config, hash string) identity {
	id := identity{hash: hash, privs: config.Entry{Hash: hash, AllowedReadServices: []string{}, AllowedWriteServices: []string{}}}
	for _, i := range c.FindByHash(hash) {
		e := c.Binaries[i]
		id.paths = append(id.paths, e.Path)
		id.privs.AllowedReadServices = mergeSorted(id.privs.AllowedReadServices, e.AllowedReadServices)
		id.privs.AllowedWriteServices = mergeSorted(id.privs.AllowedWriteServices, e.AllowedWriteServices)
		id.privs.CanSearch = id.privs.CanSearch || e.CanSearch
	}
	slices.Sort(id.paths)
	id.paths = slices.Compact(id.paths)
	return id
}

func (id identity) String() string {
	if len(id.paths) == 0 {
		return id.hash
	}
	return fmt.Sprintf("%s (%s)", strings.Join(id.paths, ", "), id.hash)
}

// change is one binary's privileges before and after an edit.
type change struct {
	before, after identity
	removed       bool
}

// editEntries applies edit to every entry of the binaries t names, in one
// locked update of config.json, and returns each binary's privileges before
// and after; command names the command run, for hints. Editing every entry of a hash, not only the one at a path,
// matters for revoke: the daemon grants the union of a hash's entries, so a
// privilege left on a sibling entry would still be in force.
func (a *app) editEntries(ctx context.Context, command string, t target, edit func(c *config.Config, hash string)) ([]change, error) {
	layout, err := a.adminLayout(command)
	if err != nil {
		return nil, err
	}
	var changes []change
	_, err = config.Update(ctx, layout.ConfigFile, a.loadOpts(), func(c *config.Config) error {
		hashes, err := t.hashes(c, a.stderr)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			before := identityOf(c, h)
			edit(c, h)
			changes = append(changes, change{before: before, after: identityOf(c, h), removed: len(c.FindByHash(h)) == 0})
		}
		return nil
	})
	return changes, err
}

// printChanges shows what an edit did, binary by binary.
func printChanges(w io.Writer, verb string, changes []change) {
	for _, ch := range changes {
		if ch.removed {
			fmt.Fprintf(w, "%s %s\n", verb, ch.before)
			fmt.Fprintf(w, "  before: %s\n", privileges(ch.before.privs))
			fmt.Fprintf(w, "  after:  not registered (every connection from it is refused)\n")
			continue
		}
		if samePrivileges(ch.before.privs, ch.after.privs) {
			fmt.Fprintf(w, "unchanged %s\n", ch.after)
			fmt.Fprintf(w, "  %s\n", privileges(ch.after.privs))
			continue
		}
		fmt.Fprintf(w, "%s %s\n", verb, ch.after)
		fmt.Fprintf(w, "  before: %s\n", privileges(ch.before.privs))
		fmt.Fprintf(w, "  after:  %s\n", privileges(ch.after.privs))
	}
}

func samePrivileges(a, b config.Entry) bool {
	return slices.Equal(a.AllowedReadServices, b.AllowedReadServices) &&
		slices.Equal(a.AllowedWriteServices, b.AllowedWriteServices) && a.CanSearch == b.CanSearch
}
