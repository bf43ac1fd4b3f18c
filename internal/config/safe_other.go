//go:build !unix

package config

import "io/fs"

// checkSafe does nothing here: on Windows the profile directory is protected
// by ACLs, and the mode bits Go reports are synthesized from the read-only
// attribute, so they say nothing about who else may write the file.
func checkSafe(path string, fi fs.FileInfo, ownerUID int) error {
	return nil
}
