//go:build !darwin && !linux && !windows

package cli

import (
	"errors"
	"fmt"
	"runtime"
)

// servicePlan: only systemd user units (Linux), the launchd agent (macOS)
// and the logon task (Windows) exist so far.
func (a *app) servicePlan(bool) (plan, error) {
	return plan{}, fmt.Errorf("install-service is not implemented on %s yet (it writes systemd user units on Linux, a launchd agent on macOS, a logon task on Windows): %w; "+
		"start the daemon from your session's autostart with: keychain-auth start", runtime.GOOS, errors.ErrUnsupported)
}

func (a *app) serviceInstalled() bool { return false }

// serviceFindings: no service to check on this platform yet.
func (a *app) serviceFindings() []finding { return nil }
