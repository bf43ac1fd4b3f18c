//go:build !windows

package fsx

const dirSyncable = true

// restrictDir has nothing to add to DirMode here.
func restrictDir(string) error { return nil }
