// Package pidreuse makes the kernel hand a dead process's pid to a new
// process, for the tests of the daemon's pid-reuse defences. It is test
// support only: nothing in the daemon or the CLI imports it.
//
// The kernel gives out pids in order after the last one it allocated in a
// pid namespace; /proc/sys/kernel/ns_last_pid sets that position and needs
// CAP_SYS_ADMIN. Any process on the machine that forks between the write and
// the fork of the process we start wins the pid, and if that process lives
// on, the pid is gone for good: Reuse reports that as ErrTaken so the caller
// can stage its scenario again with a new victim, instead of failing.
package pidreuse

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

const lastPIDFile = "/proc/sys/kernel/ns_last_pid"

// ErrTaken means another process on the machine now holds the pid.
var ErrTaken = errors.New("pidreuse: another process took the pid first")

// Tries bounds the attempts Reuse makes while the pid stays free.
const Tries = 200

// Available reports whether this process may set the next pid: the file may
// be world-writable and still refuse writes without CAP_SYS_ADMIN, so it is
// probed by writing its current value back.
func Available() error {
	cur, err := os.ReadFile(lastPIDFile)
	if err == nil {
		err = os.WriteFile(lastPIDFile, cur, 0)
	}
	return err
}

// Reuse starts processes with start until one gets pid, which must belong to
// a process that has exited and been reaped. A started process that got
// another pid is killed and reaped. It returns ErrTaken when another process
// holds pid, so the scenario must be staged again.
func Reuse(pid int, start func() (*exec.Cmd, error)) (*exec.Cmd, error) {
	f, err := os.OpenFile(lastPIDFile, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	prev := []byte(strconv.Itoa(pid - 1))
	var got []int
	for range Tries {
		if _, err := os.Lstat("/proc/" + strconv.Itoa(pid)); err == nil {
			return nil, fmt.Errorf("%w (pid %d)", ErrTaken, pid)
		}
		// One pwrite on a file already open: the window in which another
		// fork can win is as short as it gets from Go.
		if _, err := f.WriteAt(prev, 0); err != nil {
			return nil, fmt.Errorf("pidreuse: write %s: %w", lastPIDFile, err)
		}
		cmd, err := start()
		if err != nil {
			return nil, err
		}
		if cmd.Process.Pid == pid {
			return cmd, nil
		}
		got = append(got, cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
	}
	if len(got) > 5 {
		got = got[len(got)-5:]
	}
	return nil, fmt.Errorf("pidreuse: wanted pid %d %d times and never got it (the last ones: %v)", pid, Tries, got)
}
