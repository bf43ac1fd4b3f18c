package cli

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/policy"
)

func (a *app) listPendingCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list-pending",
		Short: "Show binaries that were turned away and wait for approval",
		Long: `Show the binaries the daemon turned away in the last 24 hours because they were
not registered (or no longer had their registered hash), newest first. Approve
one with: keychain-auth approve <hash prefix>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			layout, err := a.layout()
			if err != nil {
				return err
			}
			recs, err := config.LoadPending(layout.PendingFile, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				if recs == nil {
					recs = []config.PendingRecord{}
				}
				return writeJSON(a.stdout, recs)
			}
			if len(recs) == 0 {
				fmt.Fprintln(a.stdout, "no binaries are waiting for approval")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			// The system daemon queues callers of every user: say whose.
			withUser := layout.Mode == paths.ModeSystem
			if withUser {
				fmt.Fprint(tw, "USER\t")
			}
			fmt.Fprintln(tw, "HASH\tPATH\tCOUNT\tLAST SEEN\tCOMMAND LINE")
			now := time.Now()
			for _, r := range recs {
				if withUser {
					fmt.Fprintf(tw, "%s\t", userName(r.UID))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", policy.ShortHash(r.Hash), printable(r.Path), r.Count,
					ago(now, r.LastSeen), printable(strings.Join(r.CommandLine, " ")))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "\napprove one with: keychain-auth approve <hash> [--read S] [--write S] [--search]")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the records as one JSON array, newest first")
	return cmd
}

// userName shows a recorded uid with its account name: "alice (1000)".
func userName(uid *uint32) string {
	if uid == nil {
		return "?"
	}
	id := strconv.FormatUint(uint64(*uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return printable(u.Username) + " (" + id + ")"
	}
	return id
}

// ago renders a past time for a table: "42s ago", "5m ago", "3h ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return t.UTC().Format(time.RFC3339)
}

// printable keeps text that came from another process (its command line,
// its path) from moving the cursor or otherwise driving the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
