package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/policy"
)

func (a *app) grantCmd() *cobra.Command {
	var g grantFlags
	cmd := &cobra.Command{
		Use:   "grant <hash|path> [--read S]... [--write S]... [--search]",
		Short: "Add privileges to a registered binary",
		Long: `Add privileges to a registered binary, named by its hash (full, or a unique
prefix of at least 8 hex digits) or by its path. The change applies to the
binary's hash, so every path it is registered at gets it. Prints the
privileges before and after.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.grant(cmd.Context(), args[0], g)
		},
	}
	g.bind(cmd, false)
	return cmd
}

func (g grantFlags) empty() bool { return len(g.read) == 0 && len(g.write) == 0 && !g.search }

func (a *app) grant(ctx context.Context, arg string, g grantFlags) error {
	if g.empty() {
		return usagef("nothing to grant: give --read S, --write S or --search")
	}
	if err := g.validate(); err != nil {
		return err
	}
	t, err := a.parseTarget(ctx, arg)
	if err != nil {
		return err
	}
	changes, err := a.editEntries(ctx, "grant", t, func(c *config.Config, hash string) {
		// One entry carries the grant: the daemon unites a hash's entries.
		if idx := c.FindByHash(hash); len(idx) > 0 {
			c.Binaries[idx[0]].Grant(g.read, g.write, g.search)
		}
	})
	if err != nil {
		return err
	}
	g.warn(a.stderr)
	printChanges(a.stdout, "granted", changes)
	return nil
}

func (a *app) revokeCmd() *cobra.Command {
	var (
		g   grantFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "revoke <hash|path> [--read S]... [--write S]... [--search] | --all",
		Short: "Remove privileges from a registered binary",
		Long: `Remove privileges from a registered binary, named by its hash (full, or a unique
prefix of at least 8 hex digits) or by its path. Patterns are removed exactly
as written: revoking "aws" leaves "aws-*". --all leaves the binary registered
with no privileges (it can still use check). Prints the privileges before and
after.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.revoke(cmd.Context(), args[0], g, all)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&g.read, "read", nil, "stop allowing reads of this service pattern (repeatable)")
	f.StringArrayVar(&g.write, "write", nil, "stop allowing writes and deletes in this service pattern (repeatable)")
	f.BoolVar(&g.search, "search", false, "take away the search privilege")
	f.BoolVar(&all, "all", false, "take away every privilege (the binary stays registered)")
	return cmd
}

func (a *app) revoke(ctx context.Context, arg string, g grantFlags, all bool) error {
	switch {
	case all && !g.empty():
		return usagef("--all already revokes everything; give either --all or --read/--write/--search")
	case !all && g.empty():
		return usagef("nothing to revoke: give --read S, --write S, --search, or --all")
	}
	if err := g.validate(); err != nil {
		return err
	}
	t, err := a.parseTarget(ctx, arg)
	if err != nil {
		return err
	}
	changes, err := a.editEntries(ctx, "revoke", t, func(c *config.Config, hash string) {
		for _, i := range c.FindByHash(hash) {
			if all {
				c.Binaries[i].RevokeAll()
			} else {
				c.Binaries[i].Revoke(g.read, g.write, g.search)
			}
		}
	})
	if err != nil {
		return err
	}
	printChanges(a.stdout, "revoked", changes)
	if !all {
		for _, ch := range changes {
			warnStillCovered(a, ch.after, "read", g.read, ch.after.privs.AllowedReadServices)
			warnStillCovered(a, ch.after, "write", g.write, ch.after.privs.AllowedWriteServices)
		}
	}
	return nil
}

// warnStillCovered points out a revoked name that another pattern still
// covers, because patterns are removed exactly, not expanded.
func warnStillCovered(a *app, id identity, kind string, revoked, left []string) {
	for _, s := range revoked {
		for _, p := range left {
			if p != s && policy.MatchService(p, s) {
				fmt.Fprintf(a.stderr, "warning: %s may still %s %q through the pattern %q; revoke that too if you meant it: "+
					"keychain-auth revoke %s --%s %s\n", policy.ShortHash(id.hash), kind, s, p, policy.ShortHash(id.hash), kind, shellQuote(p))
				break
			}
		}
	}
}

func (a *app) unregisterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unregister <hash|path>",
		Short: "Forget a registered binary and all its privileges",
		Long: `Remove a binary from config.json, named by its hash (full, or a unique prefix
of at least 8 hex digits) or by its path. Every entry of that hash goes,
whatever path it was registered at, since the hash is the binary's identity.
Its next connection is refused as unregistered.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.parseTarget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			changes, err := a.editEntries(cmd.Context(), "unregister", t, func(c *config.Config, hash string) {
				c.Remove(func(e config.Entry) bool { return e.Hash == hash })
			})
			if err != nil {
				return err
			}
			printChanges(a.stdout, "unregistered", changes)
			return nil
		},
	}
}
