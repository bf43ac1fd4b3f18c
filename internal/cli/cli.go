// Package cli implements the keychain-auth command line: the daemon's start
// command and the admin commands that edit config.json and pending.json
// directly. It is a thin layer: each command parses flags, calls the packages
// below, and prints what changed.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/paths"
)

// Version, Commit and Date are set at build time (GoReleaser does it):
//
//	-ldflags "-X github.com/The-17/keychain-auth/internal/cli.Version=v1.2.3
//	          -X github.com/The-17/keychain-auth/internal/cli.Commit=<sha>
//	          -X github.com/The-17/keychain-auth/internal/cli.Date=<RFC 3339>"
//
// Left empty, they come from the module and VCS stamps of `go build`.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// buildInfo is the commit and date the binary was built from, or "unknown".
func buildInfo() (commit, date string) {
	commit, date = Commit, Date
	// GoReleaser stamps "none" and the zero time when it finds no git.
	if commit == "none" {
		commit = ""
	}
	if strings.HasPrefix(date, "0001-01-01") {
		date = ""
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				commit = s.Value
			case s.Key == "vcs.time" && date == "":
				date = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && Commit == "" && commit != "":
				defer func() { commit += "-dirty" }()
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return commit, date
}

// fullVersion is what `version` and `--version` print after the name.
func fullVersion() string {
	commit, date := buildInfo()
	return fmt.Sprintf("%s (commit %s, built %s)", version(), commit, date)
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks errors caused by how the command was called.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// app carries what commands need from the process, so tests can run several.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	uid            int
	// mode is --mode: auto (""), user or system.
	mode string
	// noHarden keeps a test process dumpable and its memory unlocked where
	// a command would harden the process it runs in (derive-key).
	noHarden bool
	// systemOwner is the uid that must own the system config.json for the
	// admin commands to read it: root (0). Tests run by an ordinary user,
	// who cannot make a file root's, set their own uid.
	systemOwner int
}

func (a *app) env() (paths.Env, error) {
	home := a.getenv("HOME")
	if home == "" {
		if u, err := user.Current(); err == nil {
			home = u.HomeDir
		}
	}
	return paths.Env{Getenv: a.getenv, Home: home, UID: a.uid}, nil
}

// userLayout is the user-mode layout with the --socket override applied.
func (a *app) userLayout(socket string) (paths.Layout, error) {
	e, err := a.env()
	if err != nil {
		return paths.Layout{}, err
	}
	l, err := paths.User(e)
	if err != nil {
		return l, err
	}
	if socket != "" {
		l.SocketPath = socket
	}
	return l, nil
}

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, uid: os.Getuid()}
	return a.run(context.Background(), args[1:])
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	err = a.sudoHint(err)
	msg := strings.TrimSpace(err.Error())
	var ue usageError
	usage := errors.As(err, &ue) || isCobraUsage(err)
	if first, rest, ok := strings.Cut(msg, "\n"); ok && usage && !errors.As(err, &ue) {
		// Cobra's own message with suggestions ("Did you mean this?" and
		// one command per line) stays in lines; joined, it was garbled.
		fmt.Fprintf(a.stderr, "keychain-auth: %s\n", first)
		for _, line := range strings.Split(rest, "\n") {
			if strings.TrimSpace(line) != "" {
				fmt.Fprintln(a.stderr, line)
			}
		}
	} else {
		fmt.Fprintf(a.stderr, "keychain-auth: %s\n", strings.ReplaceAll(msg, "\n", "; "))
	}
	if usage {
		return exitUsage
	}
	return exitFail
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires exactly", "bad flag syntax", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "keychain-auth",
		Short: "A local secret broker that answers only the binaries you approved",
		Long: `keychain-auth is a daemon that stands between local programs and your secret store.
Programs connect to its socket; the daemon asks the kernel who they are, hashes the
executable they run, and answers only what you approved for that exact binary.`,
		Version:       fullVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("keychain-auth {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.mode, "mode", modeAuto,
		"which daemon and files: auto (system when /etc/keychain-auth/config.json exists, else user), user or system")
	root.AddCommand(
		a.startCmd(),
		a.registerCmd(),
		a.listPendingCmd(),
		a.approveCmd(),
		a.listCmd(),
		a.grantCmd(),
		a.revokeCmd(),
		a.unregisterCmd(),
		a.upgradeCmd(),
		a.statusCmd(),
		a.authorizeCmd(),
		a.checkCmd(),
		a.auditCmd(),
		a.installServiceCmd(),
		a.doctorCmd(),
		a.installSystemCmd(),
		a.uninstallSystemCmd(),
		a.migrateCmd(),
		a.execCmd(),
		a.versionCmd(),
		a.deriveKeyCmd(),
	)
	a.addCompletions(root)
	return root
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from and the build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "keychain-auth %s\n", fullVersion())
			return nil
		},
	}
}
