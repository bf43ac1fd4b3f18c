package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
)

// servicePlan on Windows creates the Task Scheduler task "keychain-auth",
// which runs "keychain-auth start" as the user at each logon with the
// user's normal (not elevated) rights. It starts this executable where it
// is now. The daemon it starts has no console: with the file store it
// cannot ask for a passphrase, so the Credential Manager store (the
// default on Windows) or KEYCHAIN_AUTH_PASSPHRASE in the user environment
// is needed. To remove the task: schtasks /Delete /TN keychain-auth /F
func (a *app) servicePlan() (plan, error) {
	exe, err := os.Executable()
	if err != nil {
		return plan{}, fmt.Errorf("install-service: cannot find this executable: %w", err)
	}
	args := logonTaskArgs(exe)
	return plan{
		steps: []step{{
			show: windowsCommandLine(append([]string{"schtasks"}, args...)...),
			do: func(ctx context.Context) error {
				out, err := exec.CommandContext(ctx, "schtasks", args...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				return nil
			},
		}},
		notes: []string{"Once the task exists, the daemon starts at each logon; to start it now: keychain-auth start\n" +
			"  remove it: schtasks /Delete /TN " + logonTaskName + " /F"},
	}, nil
}
