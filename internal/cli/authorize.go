package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) authorizeCmd() *cobra.Command {
	var allowInterpreter bool
	cmd := &cobra.Command{
		Use:   "authorize <path> <service>",
		Short: "Register a binary if needed and let it read, write and search one service",
		Long: `One step for setup scripts: register the binary at <path> (if it is not yet)
and grant it read and write on <service> plus the search privilege, so it can
store, list and prefix-read its own secrets. Equivalent to:

  keychain-auth register <path> --read <service> --write <service> --search

If <path> is registered but the file there changed (an update or a rebuild),
its entry moves to the new hash, keeping its privileges, as upgrade would;
stdout says so, and a running daemon records the change as policy_change.

Interpreters are refused unless --allow-interpreter is given.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.authorize(cmd.Context(), args[0], args[1], allowInterpreter)
		},
	}
	cmd.Flags().BoolVar(&allowInterpreter, "allow-interpreter", false,
		"authorize an interpreter anyway (its hash covers every script it runs)")
	return cmd
}

func (a *app) authorize(ctx context.Context, path, service string, allowInterpreter bool) error {
	g := grantFlags{read: []string{service}, write: []string{service}, search: true, allowInterpreter: allowInterpreter}
	return a.registerAs(ctx, "authorize", path, g, true, func(resolved string) string {
		return fmt.Sprintf("authorized %s for service %s", resolved, shellQuote(service))
	})
}
