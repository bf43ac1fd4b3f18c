//go:build !linux

package cli

import "os"

// selfImage is what to execute to run this program again; without
// /proc/self/exe the path it was started from is all there is.
func selfImage() (string, error) { return os.Executable() }
