//go:build !darwin

package cli

import (
	"errors"
	"fmt"
	"runtime"
)

// servicePlan: only the macOS launchd agent exists so far.
func (a *app) servicePlan() (plan, error) {
	return plan{}, fmt.Errorf("install-service is not implemented on %s yet (it writes a launchd agent on macOS): %w; "+
		"start the daemon from your session's autostart with: keychain-auth start", runtime.GOOS, errors.ErrUnsupported)
}
