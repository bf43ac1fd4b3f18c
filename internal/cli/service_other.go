//go:build !darwin && !windows

package cli

import (
	"errors"
	"fmt"
	"runtime"
)

// servicePlan: only the macOS launchd agent and the Windows logon task
// exist so far.
func (a *app) servicePlan() (plan, error) {
	return plan{}, fmt.Errorf("install-service is not implemented on %s yet (it writes a launchd agent on macOS, a logon task on Windows): %w; "+
		"start the daemon from your session's autostart with: keychain-auth start", runtime.GOOS, errors.ErrUnsupported)
}
