package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/internal/paths"
)

// A migration writes in batches well under the protocol's limits (1000
// targets, 1 MiB per request line), so one large service does not fail as
// a whole.
const (
	migrateBatchTargets = 500
	migrateBatchBytes   = 512 << 10
)

func (a *app) migrateCmd() *cobra.Command {
	var toSystem bool
	var services []string
	cmd := &cobra.Command{
		Use:   "migrate --to-system --service S [--service S]...",
		Short: "Copy your secrets from your user daemon into the system daemon, through the daemons",
		Long: `Copy every secret of the given services from your user-mode daemon into the
system daemon, where they land in your own namespace (your uid). The values go
from one daemon's socket to the other's through this process's memory; they are
never written to disk in plaintext, and the user store keeps them until you
delete them there yourself.

Both daemons must be running, and each applies its policy to this very
binary, so register it first (the hash is what counts, not the path):

  keychain-auth --mode user register $(command -v keychain-auth) --read S --search
  sudo keychain-auth register $(command -v keychain-auth) --write S

Revoke both grants afterwards. Targets already in the system store under the
same names are overwritten. A service is copied in batches: if one fails, the
batches before it stay copied, and running the command again repeats them
harmlessly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !toSystem {
				return usagef("say where to: --to-system (the only direction so far)")
			}
			if len(services) == 0 {
				return usagef("name the services to copy with --service (repeatable): the daemons have no list of all services")
			}
			return a.migrate(cmd.Context(), services)
		},
	}
	cmd.Flags().BoolVar(&toSystem, "to-system", false, "copy from the user daemon to the system daemon")
	cmd.Flags().StringArrayVar(&services, "service", nil, "a service to copy (repeatable)")
	return cmd
}

func (a *app) migrate(ctx context.Context, services []string) error {
	e, err := a.env()
	if err != nil {
		return err
	}
	fromPath, toPath := paths.UserSocket(e), a.systemLayout().SocketPath
	if fromPath == toPath {
		return fmt.Errorf("the user socket and the system socket are both %s; unset %s so they differ", fromPath, paths.EnvSocket)
	}
	self, _ := os.Executable()
	from, err := client.Dial(ctx, client.WithSocket(fromPath))
	if err != nil {
		return fmt.Errorf("reach your user daemon: %w", err)
	}
	defer from.Close()
	to, err := client.Dial(ctx, client.WithSocket(toPath))
	if err != nil {
		return fmt.Errorf("reach the system daemon: %w", err)
	}
	defer to.Close()

	total := 0
	for _, svc := range services {
		items, err := from.ReadPrefix(ctx, svc, "")
		if err != nil {
			return migrateError(err, "read service "+svc+" from your user daemon",
				fmt.Sprintf("keychain-auth --mode user register %s --read %s --search", shellQuote(self), shellQuote(svc)))
		}
		n, err := copyItems(ctx, to, svc, items)
		total += n
		if err != nil {
			return migrateError(err, fmt.Sprintf("write service %s to the system daemon (after %d of %s)", svc, n, plural(len(items), "secret", "secrets")),
				fmt.Sprintf("sudo keychain-auth register %s --write %s", shellQuote(self), shellQuote(svc)))
		}
		fmt.Fprintf(a.stdout, "copied %s of service %s\n", plural(n, "secret", "secrets"), svc)
	}
	fmt.Fprintf(a.stdout, "copied %s in all; your user store still holds them: delete them there once the system daemon serves them\n", plural(total, "secret", "secrets"))
	return nil
}

// migrateError explains a refusal with the registration that fixes it.
func migrateError(err error, what, fix string) error {
	if errors.Is(err, client.ErrUnregistered) || errors.Is(err, client.ErrDenied) {
		return fmt.Errorf("%s: %w; this binary needs that privilege there: %s", what, err, fix)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// copyItems writes items to svc through to, grouped by attributes (a write
// carries one attribute set for all its targets) and in bounded batches. It
// returns how many were written.
func copyItems(ctx context.Context, to *client.Client, svc string, items []client.Item) (int, error) {
	groups := map[string][]client.Item{}
	for _, it := range items {
		k := attrKey(it.Attributes)
		groups[k] = append(groups[k], it)
	}
	written := 0
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		group := groups[k]
		attrs := group[0].Attributes
		batch, size := map[string]string{}, 0
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := to.Write(ctx, svc, batch, attrs); err != nil {
				return err
			}
			written += len(batch)
			batch, size = map[string]string{}, 0
			return nil
		}
		for _, it := range group {
			n := jsonLen(it.Target) + jsonLen(it.Value)
			if len(batch) > 0 && (len(batch) >= migrateBatchTargets || size+n > migrateBatchBytes) {
				if err := flush(); err != nil {
					return written, err
				}
			}
			batch[it.Target] = it.Value
			size += n
		}
		if err := flush(); err != nil {
			return written, err
		}
	}
	return written, nil
}

// attrKey is a canonical form of an attribute set, to group by.
func attrKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(jsonString(k))
		b.WriteByte('=')
		b.WriteString(jsonString(m[k]))
		b.WriteByte(';')
	}
	return b.String()
}

// jsonLen is how many bytes s takes in a request line.
func jsonLen(s string) int { return len(jsonString(s)) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
