package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/policy"
)

// File states list reports for a registered path.
const (
	fileOK         = "ok"
	fileChanged    = "changed"
	fileMissing    = "missing"
	fileUnreadable = "unreadable"
)

// listedBinary is one line of `list --json`: the entry as config.json holds
// it, plus what the file at its path looks like now.
type listedBinary struct {
	Path                 string     `json:"path"`
	Hash                 string     `json:"hash"`
	RegisteredAt         *time.Time `json:"registered_at,omitempty"`
	UpgradedAt           *time.Time `json:"upgraded_at,omitempty"`
	AllowedReadServices  []string   `json:"allowed_read_services"`
	AllowedWriteServices []string   `json:"allowed_write_services"`
	CanSearch            bool       `json:"can_search"`
	UIDs                 []uint32   `json:"uids,omitempty"`
	// FileStatus is ok, changed (the file no longer has the registered
	// hash), missing or unreadable.
	FileStatus string `json:"file_status"`
	// CurrentHash is the file's hash when it changed.
	CurrentHash string `json:"current_hash,omitempty"`
	// FileError says why an unreadable file could not be hashed.
	FileError string `json:"file_error,omitempty"`
}

func (a *app) listCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the registered binaries and their privileges",
		Long: `Show every registered binary, its privileges and when it was registered. Each
path is hashed again, so a binary that was rebuilt or replaced since it was
registered is marked "changed on disk" (the daemon now refuses it with
hash_mismatch; run upgrade if you trust the new file). A file whose identity
(inode, size, times, file handle) is unchanged since it was last hashed is
not read again: its hash is kept in the user's cache directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.list(cmd.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the binaries as one JSON array")
	return cmd
}

func (a *app) list(ctx context.Context, asJSON bool) error {
	layout, err := a.layout()
	if err != nil {
		return err
	}
	cfg, err := config.Load(layout.ConfigFile, a.loadOpts())
	if err != nil {
		return err
	}
	hasher, save := a.hasher(true)
	out := make([]listedBinary, 0, len(cfg.Binaries))
	for _, e := range cfg.Binaries {
		lb := listedBinary{
			Path: e.Path, Hash: e.Hash, UpgradedAt: e.UpgradedAt,
			AllowedReadServices: nonNilStrings(e.AllowedReadServices), AllowedWriteServices: nonNilStrings(e.AllowedWriteServices),
			CanSearch: e.CanSearch, UIDs: e.UIDs,
		}
		if !e.RegisteredAt.IsZero() {
			t := e.RegisteredAt
			lb.RegisteredAt = &t
		}
		lb.FileStatus, lb.CurrentHash, lb.FileError = fileState(ctx, hasher, e)
		out = append(out, lb)
	}
	save()
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(a.stdout, "no binaries are registered; add one with: keychain-auth register <path>")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tPATH\tREAD\tWRITE\tSEARCH\tREGISTERED\tSTATUS")
	for _, b := range out {
		registered := "-"
		if b.RegisteredAt != nil {
			registered = b.RegisteredAt.UTC().Format(time.RFC3339)
		}
		search := "no"
		if b.CanSearch {
			search = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", policy.ShortHash(b.Hash), printable(b.Path),
			joinOrDash(b.AllowedReadServices), joinOrDash(b.AllowedWriteServices), search, registered, statusText(b))
	}
	return tw.Flush()
}

// fileState hashes the file at an entry's path and compares.
func fileState(ctx context.Context, hasher *attest.Attestor, e config.Entry) (status, current, problem string) {
	id, err := hasher.HashPath(ctx, e.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileMissing, "", ""
	case err != nil:
		return fileUnreadable, "", err.Error()
	case id.Hash != e.Hash:
		return fileChanged, id.Hash, ""
	}
	return fileOK, "", ""
}

func statusText(b listedBinary) string {
	switch b.FileStatus {
	case fileChanged:
		return fmt.Sprintf("changed on disk (now %s) — run: keychain-auth upgrade %s", policy.ShortHash(b.CurrentHash), shellQuote(b.Path))
	case fileMissing:
		return "missing: no file at this path"
	case fileUnreadable:
		return "unreadable: " + b.FileError
	}
	return b.FileStatus
}

func joinOrDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
