package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/The-17/keychain-auth/contrib/launchd"
)

func (a *app) servicePlan(uninstall bool) (plan, error) {
	t, err := a.launchdTarget()
	if err != nil {
		return plan{}, err
	}
	if uninstall {
		return launchdUninstallPlan(t), nil
	}
	return launchdPlan(t), nil
}

// launchdUninstallPlan unloads the agent and removes its plist; the log
// file stays.
func launchdUninstallPlan(t launchdTarget) plan {
	plistPath := filepath.Join(t.home, "Library", "LaunchAgents", launchd.Label+".plist")
	service := "gui/" + strconv.Itoa(t.uid) + "/" + launchd.Label
	return plan{steps: []step{
		{
			show: "launchctl bootout " + service,
			done: func() bool { return runTool(context.Background(), "launchctl", "print", service) != nil },
			do:   func(ctx context.Context) error { return runTool(ctx, "launchctl", "bootout", service) },
		},
		removeStep(plistPath, false),
	}, notes: []string{fmt.Sprintf("The agent %s is stopped and will not start at login.", launchd.Label)}}
}

func (a *app) plistPath() string {
	e, _ := a.env()
	return filepath.Join(e.Home, "Library", "LaunchAgents", launchd.Label+".plist")
}

// serviceInstalled reports whether install-service wrote the agent.
func (a *app) serviceInstalled() bool { return exists(a.plistPath()) }

// serviceFindings is doctor's check of the launchd agent.
func (a *app) serviceFindings() []finding {
	if !a.serviceInstalled() {
		return []finding{{Check: "service", Severity: sevWarning, Subject: a.plistPath(),
			Detail: "the launchd agent is not installed: the daemon does not start at login", Fix: "keychain-auth install-service"}}
	}
	return []finding{{Check: "service", Severity: sevOK, Subject: a.plistPath(), Detail: "installed"}}
}
