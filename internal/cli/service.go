package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/contrib/launchd"
)

func (a *app) installServiceCmd() *cobra.Command {
	var printOnly, uninstall bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Run the user daemon as a service: systemd user units (Linux), a launchd agent (macOS), a logon task (Windows)",
		Long: `Make the user-mode daemon start on its own and restart if it fails.

On Linux this writes the systemd user units keychain-auth.socket and
keychain-auth.service (contrib/systemd/user/, with ExecStart= running this
executable) to $XDG_CONFIG_HOME/systemd/user and runs
  systemctl --user enable --now keychain-auth.socket
systemd then listens on $XDG_RUNTIME_DIR/keychain-auth/agent.sock from login on
and starts the daemon at the first connection (socket activation). The
variables XDG_CONFIG_HOME and XDG_DATA_HOME, when set in your shell, are
written into the unit so that the daemon finds the same files as the admin
commands. The file store's passphrase cannot be typed to a service: use the
secret-service backend, or a systemd credential (see keychain-auth start --help).

On macOS this writes the launchd user agent ~/Library/LaunchAgents/` + launchd.Label + `.plist
(contrib/launchd/ with this executable's path, a log file under ~/Library/Logs/keychain-auth
and the variables that decide where the daemon's files are: TMPDIR, XDG_*, KEYCHAIN_AUTH_SOCKET)
and loads it with launchctl.

On Windows it creates the Task Scheduler task "keychain-auth", which runs
"keychain-auth start" as you at each logon with your normal (not elevated)
rights, from where this executable is now. That daemon has no console: with the
file store it cannot ask for a passphrase, so use the Credential Manager store
(the default on Windows) or set KEYCHAIN_AUTH_PASSPHRASE in your user
environment.

Running it again after an upgrade updates and restarts the service; steps
already in place are skipped. --uninstall stops the service and removes what
install-service wrote. --print shows every step without doing any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			title := "install-service"
			if uninstall {
				title = "install-service --uninstall"
			}
			p, err := a.servicePlan(uninstall)
			if err != nil {
				return err
			}
			return a.runPlan(cmd.Context(), title, p, printOnly)
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print every step without doing it")
	cmd.Flags().BoolVar(&uninstall, "uninstall", false, "stop the service and remove its files")
	return cmd
}

// selfExecutable is the running program's resolved path: what a service
// should run.
func selfExecutable() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this program's executable to install it: %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return self, nil
}
