//go:build !linux

package sstest

import "os/exec"

// dieWithTest is a no-op where the kernel has no parent-death signal; the
// cleanups still stop the processes in a normal run.
func dieWithTest(*exec.Cmd) {}
