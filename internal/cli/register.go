package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/policy"
)

// grantFlags are the privilege flags shared by register, approve and grant.
type grantFlags struct {
	read, write      []string
	search           bool
	allowInterpreter bool
}

func (g *grantFlags) bind(cmd *cobra.Command, withInterpreter bool) {
	f := cmd.Flags()
	f.StringArrayVar(&g.read, "read", nil, "allow reading this service (repeatable; `aws-*` is a prefix pattern)")
	f.StringArrayVar(&g.write, "write", nil, "allow writing and deleting in this service (repeatable)")
	f.BoolVar(&g.search, "search", false, "allow listing targets (search, prefix read/delete) in its read/write services")
	if withInterpreter {
		f.BoolVar(&g.allowInterpreter, "allow-interpreter", false, "register an interpreter anyway (its hash covers every script it runs)")
	}
}

func (g *grantFlags) validate() error {
	for _, s := range append(slices.Clone(g.read), g.write...) {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return usagef("invalid service pattern %q", s)
		}
		if len(s) > 255 {
			return usagef("service pattern %q is longer than 255 bytes", s)
		}
	}
	return nil
}

// warn prints the warnings a grant deserves.
func (g *grantFlags) warn(w io.Writer) {
	for _, s := range append(slices.Clone(g.read), g.write...) {
		if policy.IsWildcard(s) {
			fmt.Fprintln(w, "warning: service pattern \"*\" grants access to EVERY service, including ones created later")
			return
		}
	}
}

// apply adds the flags' privileges to e.
func (g *grantFlags) apply(e *config.Entry) {
	e.AllowedReadServices = mergeSorted(e.AllowedReadServices, g.read)
	e.AllowedWriteServices = mergeSorted(e.AllowedWriteServices, g.write)
	e.CanSearch = e.CanSearch || g.search
}

func mergeSorted(have, add []string) []string {
	out := append(slices.Clone(have), add...)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func (a *app) registerCmd() *cobra.Command {
	var g grantFlags
	cmd := &cobra.Command{
		Use:   "register <path>",
		Short: "Register a binary by its current hash (0 privileges unless flags grant them)",
		Long: `Register the executable at <path>: its SHA-256 hash becomes an identity the daemon
recognises. Without flags the binary gets no privileges; add --read, --write and
--search to grant them. Registering again adds privileges.

Interpreters (python, node, bash, ...) are refused unless --allow-interpreter is
given: their hash says nothing about the script they run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.register(cmd.Context(), args[0], g)
		},
	}
	g.bind(cmd, true)
	return cmd
}

// resolveBinary returns the absolute, symlink-free path of an executable file.
func resolveBinary(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("cannot find %s: %w", path, unwrapPathErr(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	return real, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (a *app) hashBinary(ctx context.Context, path string) (resolved, hash string, err error) {
	resolved, err = resolveBinary(path)
	if err != nil {
		return "", "", err
	}
	// The file's real content decides what is trusted: hash it, never
	// take the cache's word (see hashcache.go), but leave the result there.
	h, save := a.hasher(false)
	id, err := h.HashPath(ctx, resolved)
	if err == nil {
		save()
	}
	if err != nil {
		return "", "", fmt.Errorf("hash %s: %w", resolved, err)
	}
	return resolved, id.Hash, nil
}

func (a *app) register(ctx context.Context, path string, g grantFlags) error {
	return a.registerAs(ctx, "register", path, g, false, func(resolved string) string { return "registered " + resolved })
}

// registerAs hashes path, applies the interpreter guard, adds g's privileges
// to the binary's entry (creating it if new), prints headline and the result,
// and drops the binary from the pending queue. command names the command
// run, for hints. With follow, an entry whose file changed is moved to the
// new hash (see enroll).
func (a *app) registerAs(ctx context.Context, command, path string, g grantFlags, follow bool, headline func(resolved string) string) error {
	if err := g.validate(); err != nil {
		return err
	}
	resolved, hash, err := a.hashBinary(ctx, path)
	if err != nil {
		return err
	}
	ic := interpreterCheck{names: []string{path, resolved}, file: resolved, hash: hash, dirs: a.interpreterDirs()}
	if err := checkInterpreter(a.stderr, ic, g.allowInterpreter); err != nil {
		return err
	}
	layout, err := a.adminLayout(command)
	if err != nil {
		return err
	}
	result, moved, err := a.enroll(ctx, layout, resolved, hash, g, follow)
	if err != nil {
		return err
	}
	g.warn(a.stderr)
	fmt.Fprintln(a.stdout, headline(resolved))
	for _, h := range moved {
		fmt.Fprintf(a.stdout, "  the file changed since it was registered: its entry moved from %s to the new hash, keeping its privileges\n", h)
	}
	printEntry(a.stdout, result)
	a.dropPending(ctx, layout, hash)
	return nil
}

// enroll registers hash at path, or adds the flags' privileges to the entry
// that already has both, in one locked update of config.json. A path that is
// registered under another hash is an upgrade, which moves the old entry's
// policy instead of leaving a stale entry behind: with follow (authorize,
// whose callers re-run it after an update to repair themselves) enroll does
// that, as upgrade would, and returns the hashes it moved from; without it,
// it refuses and points at upgrade.
func (a *app) enroll(ctx context.Context, layout paths.Layout, path, hash string, g grantFlags, follow bool) (result config.Entry, moved []string, err error) {
	_, err = config.Update(ctx, layout.ConfigFile, a.loadOpts(), func(c *config.Config) error {
		result, moved = config.Entry{}, nil
		for _, i := range c.FindByPath(path) {
			e := c.Binaries[i]
			if e.Hash == hash {
				continue
			}
			if !follow {
				return fmt.Errorf("%s is already registered with hash %s, and the file now has %s; "+
					"if you upgraded it, run: keychain-auth upgrade %s", path, policy.ShortHash(e.Hash), policy.ShortHash(hash), shellQuote(path))
			}
			if !slices.Contains(moved, e.Hash) {
				moved = append(moved, e.Hash)
			}
		}
		if len(moved) > 0 {
			c.Upgrade(path, hash, time.Now().Truncate(time.Second))
		}
		for _, i := range c.FindByPath(path) {
			e := &c.Binaries[i]
			g.apply(e)
			result = e.Clone()
			return nil
		}
		e := config.Entry{Path: path, Hash: hash, RegisteredAt: time.Now().UTC().Truncate(time.Second),
			AllowedReadServices: []string{}, AllowedWriteServices: []string{}}
		g.apply(&e)
		c.Binaries = append(c.Binaries, e)
		result = e.Clone()
		return nil
	})
	slices.Sort(moved)
	return result, moved, err
}

// dropPending removes a binary from the approval queue once it is
// registered. The registration already stands, so a queue that cannot be
// edited is only worth a warning.
func (a *app) dropPending(ctx context.Context, layout paths.Layout, hash string) {
	if _, _, err := a.removePending(ctx, layout, hash); err != nil {
		fmt.Fprintf(a.stderr, "warning: could not remove %s from the approval queue: %v\n", policy.ShortHash(hash), err)
	}
}

// printEntry shows an entry's identity and privileges.
func printEntry(w io.Writer, e config.Entry) {
	fmt.Fprintf(w, "  hash:   %s\n", e.Hash)
	fmt.Fprintf(w, "  %s\n", privileges(e))
}

func privileges(e config.Entry) string {
	list := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	search := "no"
	if e.CanSearch {
		search = "yes"
	}
	return fmt.Sprintf("read: %s  write: %s  search: %s", list(e.AllowedReadServices), list(e.AllowedWriteServices), search)
}
