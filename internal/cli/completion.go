package cli

import (
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/config"
)

// backendNames are the values --backend takes.
var backendNames = []string{"auto", "file", "secret-service", "keychain", "wincred"}

// addCompletions teaches the shell completion (cobra's `completion bash|zsh|
// fish|powershell`) what the arguments are: hashes waiting for approval,
// registered hashes and paths, service names and backends. It reads the
// files only; a file that cannot be read just completes nothing.
func (a *app) addCompletions(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "approve":
			c.ValidArgsFunction = a.completeFirst(a.pendingCompletions)
		case "grant", "revoke", "unregister":
			c.ValidArgsFunction = a.completeFirst(a.registeredCompletions(true))
		case "upgrade":
			c.ValidArgsFunction = a.completeFirst(a.registeredCompletions(false))
		case "start":
			c.RegisterFlagCompletionFunc("backend", cobra.FixedCompletions(backendNames, cobra.ShellCompDirectiveNoFileComp))
		}
		for _, flag := range []string{"read", "write"} {
			if c.Flags().Lookup(flag) != nil {
				c.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
					return a.serviceCompletions(), cobra.ShellCompDirectiveNoFileComp
				})
			}
		}
	}
}

// completeFirst completes the first argument with list and nothing after it.
func (a *app) completeFirst(list func(toComplete string) []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return list(toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completionConfig loads config.json for completion, or nil.
func (a *app) completionConfig() *config.Config {
	l, err := a.layout()
	if err != nil {
		return nil
	}
	c, err := config.Load(l.ConfigFile, a.loadOpts())
	if err != nil {
		return nil
	}
	return c
}

// hashCandidate is how a hash is offered: as bare hex (which every command
// accepts), since bash splits words at ':' and would double a "sha256:" the
// user typed; in full when the user started typing it.
func hashCandidate(hash, toComplete string) string {
	if strings.HasPrefix(toComplete, "sha256:") {
		return hash
	}
	return strings.TrimPrefix(hash, "sha256:")
}

// pendingCompletions: the hashes waiting for approval, described by path.
func (a *app) pendingCompletions(toComplete string) []string {
	l, err := a.layout()
	if err != nil {
		return nil
	}
	recs, err := config.LoadPending(l.PendingFile, time.Now())
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range recs {
		out = append(out, hashCandidate(r.Hash, toComplete)+"\t"+describe(r.Path))
	}
	return out
}

// registeredCompletions: registered hashes (described by path) and, when
// withHashes is false or besides them, the registered paths.
func (a *app) registeredCompletions(withHashes bool) func(string) []string {
	return func(toComplete string) []string {
		c := a.completionConfig()
		if c == nil {
			return nil
		}
		var out []string
		seen := map[string]bool{}
		for _, e := range c.Binaries {
			if withHashes && !seen[e.Hash] {
				seen[e.Hash] = true
				out = append(out, hashCandidate(e.Hash, toComplete)+"\t"+describe(e.Path))
			}
			if !seen[e.Path] {
				seen[e.Path] = true
				out = append(out, e.Path)
			}
		}
		// Only paths when a path is being typed: the hashes would hide them.
		if strings.HasPrefix(toComplete, "/") || strings.HasPrefix(toComplete, ".") {
			out = slices.DeleteFunc(out, func(s string) bool { return !strings.HasPrefix(s, "/") })
		}
		return out
	}
}

// serviceCompletions: the service names already used in config.json.
func (a *app) serviceCompletions() []string {
	c := a.completionConfig()
	if c == nil {
		return nil
	}
	var out []string
	for _, e := range c.Binaries {
		for _, s := range append(slices.Clone(e.AllowedReadServices), e.AllowedWriteServices...) {
			if s != "*" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// describe makes a path safe as a completion description: one line, no
// control characters (a turned-away process chose it).
func describe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
