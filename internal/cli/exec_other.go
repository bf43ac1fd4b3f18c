//go:build !linux

package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// execProgram: exec needs descriptor passing and execveat, implemented on
// Linux only so far.
func (a *app) execProgram(_ context.Context, f execFlags, _ []string) error {
	if _, err := parseExecFlags(f); err != nil {
		return err
	}
	return fmt.Errorf("exec is not available on %s yet (it needs descriptor passing and execveat, implemented on Linux only): %w",
		runtime.GOOS, errors.ErrUnsupported)
}
