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

// checkWants are the privileges check asks about; none set means all three,
// the original tool's meaning.
type checkWants struct{ read, write, search bool }

func (w checkWants) any() bool { return w.read || w.write || w.search }

func (a *app) checkCmd() *cobra.Command {
	var w checkWants
	cmd := &cobra.Command{
		Use:   "check <path> [service]",
		Short: "Exit 0 if the binary at <path> is registered (and may read, write and search <service>)",
		Long: `Hash the file at <path> as it is now and look it up in config.json, as the daemon
would. Exit 0 when that hash is registered and, if a service is given, allowed
to read, write and search it; otherwise exit 1 with the reason on stderr.
--read, --write and --search ask about exactly those privileges instead of
all three. Nothing is changed.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 2 {
				service = args[1]
			}
			if service == "" && w.any() {
				return usagef("--read, --write and --search need a service: keychain-auth check <path> <service> --read")
			}
			return a.check(cmd.Context(), args[0], service, w)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&w.read, "read", false, "require only the privileges given: reading <service>")
	f.BoolVar(&w.write, "write", false, "require writing and deleting in <service>")
	f.BoolVar(&w.search, "search", false, "require listing targets of <service>")
	return cmd
}

func (a *app) check(ctx context.Context, path, service string, w checkWants) error {
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
	if !w.any() {
		w = checkWants{read: true, write: true, search: true}
	}
	allowed := func(action protocol.Action) bool {
		req := protocol.Request{Action: action, Service: service}
		return grant.Authorize(&req).Allowed()
	}
	var asked, missing, flags []string
	for _, c := range []struct {
		want   bool
		action protocol.Action
		flag   string
	}{
		{w.read, protocol.ActionRead, "--read"},
		{w.write, protocol.ActionWrite, "--write"},
		{w.search, protocol.ActionSearch, "--search"},
	} {
		if !c.want {
			continue
		}
		asked = append(asked, string(c.action))
		if !allowed(c.action) {
			missing = append(missing, string(c.action))
			switch {
			case c.action != protocol.ActionSearch:
				flags = append(flags, c.flag, shellQuote(service))
			case !allowed(protocol.ActionRead) && !w.read:
				// Search lists what the binary may read.
				flags = append(flags, "--search", "--read", shellQuote(service))
			default:
				flags = append(flags, "--search")
			}
		}
	}
	if len(missing) > 0 {
		fix := fmt.Sprintf("to allow all three run: keychain-auth authorize %s %s", shellQuote(resolved), shellQuote(service))
		if len(asked) < 3 {
			fix = fmt.Sprintf("to allow it run: keychain-auth grant %s %s", shellQuote(resolved), strings.Join(flags, " "))
		}
		return fmt.Errorf("%s is registered, but may not %s service %q (it has %s); %s",
			resolved, orList(missing), service, privileges(entry), fix)
	}
	fmt.Fprintf(a.stdout, "%s may %s service %q (%s)\n", resolved, andList(asked), service, hash)
	return nil
}

// andList joins words as a sentence does: "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// orList joins words as a sentence does: "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
