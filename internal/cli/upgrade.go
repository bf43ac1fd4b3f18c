package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
)

func (a *app) upgradeCmd() *cobra.Command {
	var allowInterpreter bool
	cmd := &cobra.Command{
		Use:   "upgrade <path>",
		Short: "Move a registered binary's privileges to the file now at its path",
		Long: `After a registered binary was rebuilt or updated, the daemon refuses the new file
with hash_mismatch. upgrade hashes the file at <path> again and moves the
privileges of the entry registered at that path to the new hash, recording
upgraded_at. Run it only if you trust the new file.

The new file passes the same interpreter guard as register: an interpreter
(or a copy of one) is refused unless --allow-interpreter, a #! script always.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.upgrade(cmd.Context(), args[0], allowInterpreter)
		},
	}
	cmd.Flags().BoolVar(&allowInterpreter, "allow-interpreter", false,
		"move the privileges to an interpreter anyway (its hash covers every script it runs)")
	return cmd
}

func (a *app) upgrade(ctx context.Context, path string, allowInterpreter bool) error {
	resolved, hash, err := a.hashBinary(ctx, path)
	if err != nil {
		return err
	}
	// A file replaced by an interpreter would otherwise hand its privileges
	// to every script that interpreter runs.
	ic := interpreterCheck{names: []string{path, resolved}, file: resolved, hash: hash, dirs: a.interpreterDirs()}
	if err := checkInterpreter(a.stderr, ic, allowInterpreter); err != nil {
		return err
	}
	layout, err := a.adminLayout("upgrade")
	if err != nil {
		return err
	}
	var (
		oldHashes []string
		result    config.Entry
		upToDate  bool
	)
	_, err = config.Update(ctx, layout.ConfigFile, a.loadOpts(), func(c *config.Config) error {
		idx := c.FindByPath(resolved)
		if len(idx) == 0 {
			hint := ""
			if others := c.FindByHash(hash); len(others) > 0 {
				hint = fmt.Sprintf(" (its hash is registered at %s, so it is already allowed)", c.Binaries[others[0]].Path)
			}
			return fmt.Errorf("%s is %w%s; there is nothing to upgrade; register it with: keychain-auth register %s",
				resolved, ErrNotRegistered, hint, shellQuote(resolved))
		}
		for _, i := range idx {
			if h := c.Binaries[i].Hash; h != hash {
				oldHashes = append(oldHashes, h)
			}
		}
		if len(oldHashes) == 0 {
			upToDate = true
		} else {
			c.Upgrade(resolved, hash, time.Now().Truncate(time.Second))
		}
		result = identityOf(c, hash).privs
		return nil
	})
	if err != nil {
		return err
	}
	if upToDate {
		fmt.Fprintf(a.stdout, "%s is already registered with its current hash; nothing to upgrade\n", resolved)
		printEntry(a.stdout, result)
		return nil
	}
	slices.Sort(oldHashes)
	oldHashes = slices.Compact(oldHashes)
	fmt.Fprintf(a.stdout, "upgraded %s\n", resolved)
	for _, h := range oldHashes {
		fmt.Fprintf(a.stdout, "  from:   %s\n", h)
	}
	printEntry(a.stdout, result)
	// The daemon queued the new file when it refused it; it is approved now.
	a.dropPending(ctx, layout, hash)
	return nil
}
