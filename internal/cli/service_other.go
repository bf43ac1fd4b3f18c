//go:build !windows

package cli

import "github.com/spf13/cobra"

// platformCommands are the commands only some OSes have; none here yet.
func (a *app) platformCommands() []*cobra.Command { return nil }
