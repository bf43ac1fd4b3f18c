package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/policy"
)

func (a *app) approveCmd() *cobra.Command {
	var g grantFlags
	cmd := &cobra.Command{
		Use:   "approve <hash> [--read S]... [--write S]... [--search]",
		Short: "Register a binary from the approval queue (0 privileges unless flags grant them)",
		Long: `Register a binary that the daemon turned away, as listed by list-pending. Name it
by its hash: "sha256:<hex>", bare hex, or a unique prefix of at least 8 hex
digits. Without flags it gets no privileges (only the check request works);
add --read, --write and --search, or use grant later.

Interpreters (python, node, bash, ...) are refused unless --allow-interpreter is
given: their hash says nothing about the script they run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.approve(cmd.Context(), args[0], g)
		},
	}
	g.bind(cmd, true)
	return cmd
}

func (a *app) approve(ctx context.Context, arg string, g grantFlags) error {
	if err := g.validate(); err != nil {
		return err
	}
	layout, err := a.adminLayout("approve")
	if err != nil {
		return err
	}
	recs, err := config.LoadPending(layout.PendingFile, time.Now())
	if err != nil {
		return err
	}
	hashes := make([]string, len(recs))
	for i, r := range recs {
		hashes[i] = r.Hash
	}
	hash, err := config.ResolveHash(arg, hashes)
	if errors.Is(err, config.ErrBadHash) {
		return usageError{err}
	}
	if errors.Is(err, config.ErrUnknownHash) {
		if cfg, lerr := config.Load(layout.ConfigFile, a.loadOpts()); lerr == nil {
			if h, rerr := config.ResolveHash(arg, cfg.Hashes()); rerr == nil {
				return fmt.Errorf("%s (%s) is already registered; change its privileges with: keychain-auth grant %s --read SERVICE",
					h, strings.Join(pathsOf(cfg, h), ", "), policy.ShortHash(h))
			}
		}
	}
	if err != nil {
		return a.pendingLookupError(err, arg, recs)
	}
	var rec config.PendingRecord
	for _, r := range recs {
		if r.Hash == hash {
			rec = r
		}
	}
	if rec.Path == "" || !filepath.IsAbs(rec.Path) {
		return fmt.Errorf("the pending record of %s has no usable path (%q); register the binary by its path instead: "+
			"keychain-auth register <path>", policy.ShortHash(hash), rec.Path)
	}
	// The daemon resolved this path from the running image, so its name is
	// the interpreter's name when a script was run by one. The file there
	// now is examined too, for a renamed interpreter, when it is still the
	// one that was turned away.
	ic := interpreterCheck{names: []string{rec.Path}}
	if h, err := fileHash(rec.Path); err == nil && h == hash {
		ic.file, ic.hash, ic.dirs = rec.Path, hash, a.interpreterDirs()
	}
	if err := checkInterpreter(a.stderr, ic, g.allowInterpreter); err != nil {
		return err
	}
	entry, _, err := a.enroll(ctx, layout, rec.Path, hash, g, false)
	if err != nil {
		return err
	}
	g.warn(a.stderr)
	fmt.Fprintf(a.stdout, "approved %s\n", printable(rec.Path))
	printEntry(a.stdout, entry)
	if g.empty() && len(entry.AllowedReadServices) == 0 && len(entry.AllowedWriteServices) == 0 && !entry.CanSearch {
		fmt.Fprintf(a.stdout, "it has no privileges yet (only check works); grant some with: keychain-auth grant %s --read SERVICE\n",
			policy.ShortHash(hash))
	}
	if _, _, err := a.removePending(ctx, layout, hash); err != nil {
		return fmt.Errorf("the binary is registered, but its record could not be removed from the approval queue: %w", err)
	}
	return nil
}

// pendingLookupError explains a failed approve lookup and names the
// candidates: the ambiguous ones, or the whole queue when nothing matched.
func (a *app) pendingLookupError(err error, arg string, recs []config.PendingRecord) error {
	describe := func(hashes []string) string {
		var parts []string
		for _, h := range hashes {
			for _, r := range recs {
				if r.Hash == h {
					parts = append(parts, fmt.Sprintf("%s (%s)", h, printable(r.Path)))
				}
			}
		}
		return strings.Join(parts, ", ")
	}
	var le *config.HashLookupError
	errors.As(err, &le)
	switch {
	case errors.Is(err, config.ErrAmbiguousHash):
		return explain(config.ErrAmbiguousHash, "%q matches %d pending binaries: %s; give more digits",
			arg, len(le.Candidates), describe(le.Candidates))
	case errors.Is(err, config.ErrUnknownHash):
		if len(recs) == 0 {
			return explain(config.ErrUnknownHash, "no pending binary has a hash starting with %q: the approval queue is empty "+
				"(records expire after 24 hours); register the binary by its path instead: keychain-auth register <path>", arg)
		}
		const shown = 10
		var all []string
		for _, r := range recs[:min(len(recs), shown)] {
			all = append(all, r.Hash)
		}
		more := ""
		if len(recs) > shown {
			more = fmt.Sprintf(" and %d more (see keychain-auth list-pending)", len(recs)-shown)
		}
		return explain(config.ErrUnknownHash, "no pending binary has a hash starting with %q; pending: %s%s",
			arg, describe(all), more)
	}
	return err
}
