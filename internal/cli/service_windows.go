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
// is needed. --uninstall deletes the task.
func (a *app) servicePlan(uninstall bool) (plan, error) {
	exe, err := os.Executable()
	if err != nil {
		return plan{}, fmt.Errorf("install-service: cannot find this executable: %w", err)
	}
	args := logonTaskArgs(exe)
	if uninstall {
		args = []string{"/Delete", "/TN", logonTaskName, "/F"}
	}
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
			"  remove it: keychain-auth install-service --uninstall"},
	}, nil
}

// serviceInstalled asks Task Scheduler whether the logon task exists.
func (a *app) serviceInstalled() bool {
	return exec.Command("schtasks", "/Query", "/TN", logonTaskName).Run() == nil
}

// serviceFindings: doctor reports only whether the task exists (see
// serviceInstalled); Task Scheduler's run state is not checked.
func (a *app) serviceFindings() []finding { return nil }
