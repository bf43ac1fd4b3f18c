package cli

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// execFlags are the flags of exec.
type execFlags struct {
	service    string
	env        []string
	prefix     string
	prefixSet  bool
	requireAll bool
}

func (a *app) execCmd() *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "exec --service S [--env NAME=target]... [--prefix P] [--require-all] -- program [args...]",
		Short: "Run a program with secrets in its environment, authorized by the program's own hash",
		Long: `exec runs program with secrets of service S in its environment. The daemon does not
authorize keychain-auth but the program itself: exec opens the program file, sends the
open descriptor to the daemon, which hashes it and applies that hash's policy, then exec
runs that very descriptor, so the file that was checked is the file that runs even if
the path is replaced meanwhile; a read lease held on the file from the open to the run
makes exec refuse a file opened for writing in between. An unregistered program is queued in
pending.json with its own path and command line, like any caller.

--env NAME=target puts one target into the variable NAME. --prefix P exports every target
whose name starts with P (the program needs --search), each under its name upper-cased
with every other character than A-Z and 0-9 turned into _. Targets that do not exist are
left unset and listed on stderr; with --require-all they fail the command instead.

Values go only into the program's environment: never into its arguments, a file or a log.
Exit status: the program's, or 1 when the daemon refuses. Linux only for now.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.prefixSet = cmd.Flags().Changed("prefix")
			return a.execProgram(cmd.Context(), f, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&f.service, "service", "", "the service whose secrets the program gets (required)")
	cmd.Flags().StringArrayVar(&f.env, "env", nil, "NAME=target: put target into variable NAME (repeatable)")
	cmd.Flags().StringVar(&f.prefix, "prefix", "", "export every target whose name starts with P (needs --search)")
	cmd.Flags().BoolVar(&f.requireAll, "require-all", false, "fail unless every --env target exists")
	return cmd
}

// envMapping is one --env flag.
type envMapping struct{ name, target string }

// parseExecFlags checks the flags and returns the --env mappings.
func parseExecFlags(f execFlags) ([]envMapping, error) {
	if f.service == "" {
		return nil, usagef("exec needs --service")
	}
	if len(f.env) > 0 && f.prefixSet {
		return nil, usagef("give either --env or --prefix, not both")
	}
	if len(f.env) == 0 && !f.prefixSet {
		return nil, usagef("exec needs --env NAME=target or --prefix P to say which secrets the program gets")
	}
	if f.requireAll && f.prefixSet {
		return nil, usagef("--require-all applies to --env; a prefix exports whatever exists")
	}
	var out []envMapping
	names := map[string]bool{}
	for _, e := range f.env {
		name, target, ok := strings.Cut(e, "=")
		if !ok || name == "" || target == "" {
			return nil, usagef("--env %q: give NAME=target", e)
		}
		if strings.ContainsRune(name, 0) || strings.ContainsRune(target, 0) {
			return nil, usagef("--env: NUL is not allowed")
		}
		if names[name] {
			return nil, usagef("--env: variable %s given twice", name)
		}
		if loaderName(name) {
			return nil, usagef("--env: %s is a dynamic loader variable; exec puts no secret there", name)
		}
		names[name] = true
		out = append(out, envMapping{name, target})
	}
	return out, nil
}

// envName turns a target into a variable name: upper-cased, every character
// other than A-Z and 0-9 replaced by _, and a leading digit prefixed by _.
func envName(target string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(target) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

// childEnv is environ with the variables in set replaced or added, those in
// name order.
func childEnv(environ []string, set map[string]string) []string {
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; ok {
			continue
		}
		out = append(out, kv)
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, n+"="+set[n])
	}
	return out
}

// loaderName reports whether the variable name is read by the dynamic
// loader (LD_*). A target exported by --prefix must not become one: whoever
// may write the service would choose the code the program loads.
func loaderName(name string) bool { return strings.HasPrefix(name, "LD_") }
