package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
)

func (a *app) platformCommands() []*cobra.Command {
	return []*cobra.Command{a.installServiceCmd()}
}

func (a *app) installServiceCmd() *cobra.Command {
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Start the daemon at every logon (a Task Scheduler task for this user)",
		Long: `Create the Task Scheduler task "keychain-auth", which runs "keychain-auth start"
as you each time you log on, with your normal (not elevated) rights. The task
starts this executable where it is now: move it first if it should live elsewhere.
Running the command again replaces the task. --print shows the schtasks command
without running it. To remove the task: schtasks /Delete /TN keychain-auth /F

The daemon started this way has no console: with the file store it cannot ask for
a passphrase, so use the Credential Manager store (the default on Windows), or
set KEYCHAIN_AUTH_PASSPHRASE in your user environment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.installService(cmd.Context(), printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the schtasks command without running it")
	return cmd
}

func (a *app) installService(ctx context.Context, printOnly bool) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install-service: cannot find this executable: %w", err)
	}
	args := logonTaskArgs(exe)
	show := windowsCommandLine(append([]string{"schtasks"}, args...)...)
	p := plan{
		steps: []step{{
			show: show,
			do: func(ctx context.Context) error {
				out, err := exec.CommandContext(ctx, "schtasks", args...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				return nil
			},
		}},
		notes: []string{"Once the task exists, the daemon starts at each logon; to start it now: keychain-auth start"},
	}
	return a.runPlan(ctx, "install-service", p, printOnly)
}
