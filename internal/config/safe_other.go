//go:build !unix && !windows

package config

import "io/fs"

// checkSafe does nothing here: this OS has neither the Unix modes nor the
// Windows ACLs the other files check.
func checkSafe(path string, fi fs.FileInfo, ownerUID int) error {
	return nil
}
