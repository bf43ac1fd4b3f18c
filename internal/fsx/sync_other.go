//go:build !windows

package fsx

const dirSyncable = true
