//go:build !windows

package fsx

import "os"

const dirSyncable = true

// restrictDir has nothing to add to DirMode here.
func restrictDir(string) error { return nil }

// replace renames tmp over path.
func replace(tmp, path string) error { return os.Rename(tmp, path) }
