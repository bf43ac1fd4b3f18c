package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/policy"
	"github.com/The-17/keychain-auth/protocol"
)

func (a *app) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check <path> [service]",
		Short: "Exit 0 if the binary at <path> is registered (and may read, write and search <service>)",
		Long: `Hash the file at <path> as it is now and look it up in config.json, as the daemon
would. Exit 0 when that hash is registered and, if a service is given, allowed
to read, write and search it; otherwise exit 1 with the reason on stderr.
Nothing is changed.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 2 {
				service = args[1]
			}
			return a.check(cmd.Context(), args[0], service)
		},
	}
}

func (a *app) check(ctx context.Context, path, service string) error {
	resolved, hash, err := a.hashBinary(ctx, path)
	if err != nil {
		return err
	}
	layout, err := a.layout()
	if err != nil {
		return err
	}
	cfg, err := config.Load(layout.ConfigFile, a.loadOpts())
	if err != nil {
		return err
	}
	caller := policy.Caller{Hash: hash, Path: resolved}
	if a.uid >= 0 {
		caller.UID = uint32(a.uid)
	}
	grant, d := policy.Identify(cfg.PolicyEntries(), caller)
	switch {
	case d.Reason == protocol.ReasonUnregisteredBinary:
		return fmt.Errorf("%s (%s) is %w; register it with: keychain-auth register %s",
			resolved, policy.ShortHash(hash), ErrNotRegistered, shellQuote(resolved))
	case !d.Allowed():
		return fmt.Errorf("%s: %s", d.Reason, d.Message)
	}
	entry := config.Entry{AllowedReadServices: grant.Read, AllowedWriteServices: grant.Write, CanSearch: grant.CanSearch}
	if service == "" {
		fmt.Fprintf(a.stdout, "%s is registered (%s)\n  %s\n", resolved, hash, privileges(entry))
		return nil
	}
	var missing []string
	for _, req := range []protocol.Request{
		{Action: protocol.ActionRead, Service: service},
		{Action: protocol.ActionWrite, Service: service},
		{Action: protocol.ActionSearch, Service: service},
	} {
		if !grant.Authorize(&req).Allowed() {
			missing = append(missing, string(req.Action))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is registered, but may not %s service %q (it has %s); to allow all three run: keychain-auth authorize %s %s",
			resolved, orList(missing), service, privileges(entry), shellQuote(resolved), shellQuote(service))
	}
	fmt.Fprintf(a.stdout, "%s may read, write and search service %q (%s)\n", resolved, service, hash)
	return nil
}

// orList joins words as a sentence does: "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
