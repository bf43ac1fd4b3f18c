package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/client"
)

// envExecPause names a FIFO that exec opens and reads to its end after it
// opened the program and before it asks the daemon: a test seam, so that a
// test can replace the program's file in between.
const envExecPause = "KEYCHAIN_AUTH_TEST_EXEC_PAUSE_FIFO"

func (a *app) execProgram(ctx context.Context, f execFlags, args []string) error {
	mappings, err := parseExecFlags(f)
	if err != nil {
		return err
	}
	if err := a.checkLoaderEnv(); err != nil {
		return err
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("exec: open %s: %w", path, err)
	}
	prog := os.NewFile(uintptr(fd), path)
	defer prog.Close()
	var before unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return fmt.Errorf("exec: stat %s: %w", path, err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG || before.Mode&0o111 == 0 {
		return fmt.Errorf("exec: %s is not an executable regular file", path)
	}
	if fifo := a.getenv(envExecPause); fifo != "" {
		if err := waitFIFO(fifo); err != nil {
			return fmt.Errorf("exec: test pause: %w", err)
		}
	}

	c, err := client.Dial(ctx, client.WithEnv(a.getenv))
	if err != nil {
		return err
	}
	defer c.Close()
	targets := []string{f.prefix}
	if !f.prefixSet {
		targets = targets[:0]
		seen := map[string]bool{}
		for _, m := range mappings {
			if !seen[m.target] {
				seen[m.target] = true
				targets = append(targets, m.target)
			}
		}
	}
	var opts []client.RequestOption
	if f.requireAll {
		opts = append(opts, client.RequireAll())
	}
	res, err := c.ExecRead(ctx, prog, args, f.service, targets, f.prefixSet, opts...)
	if err != nil {
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.Missing != nil:
			return fmt.Errorf("exec: %s not run: these targets of %s do not exist: %v", path, f.service, ce.Missing)
		case errors.As(err, &ce):
			return fmt.Errorf("exec: %s not run (%s): %s", path, ce.Reason, ce.Message)
		}
		return fmt.Errorf("exec: %s not run: %w", path, err)
	}
	c.Close()
	// The values are in this process until it execs: keep other processes
	// of the user from attaching to read them. exec resets this for the
	// program.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("exec: make this process non-dumpable: %w", err)
	}

	set := map[string]string{}
	if f.prefixSet {
		from := map[string]string{}
		for _, it := range res.Items {
			name := envName(it.Target)
			if loaderName(name) {
				return fmt.Errorf("exec: target %q would be exported as the dynamic loader variable %s; not run (rename the target, or use --env)", it.Target, name)
			}
			if other, dup := from[name]; dup {
				return fmt.Errorf("exec: targets %q and %q both map to variable %s; rename one, or use --env", other, it.Target, name)
			}
			from[name] = it.Target
			set[name] = it.Value
		}
	} else {
		var unset []string
		for _, m := range mappings {
			if v, ok := res.Values[m.target]; ok {
				set[m.name] = v
			} else {
				unset = append(unset, m.name+" ("+m.target+")")
			}
		}
		if len(unset) > 0 {
			sort.Strings(unset)
			fmt.Fprintf(a.stderr, "keychain-auth: exec: left unset, absent from %s: %v\n", f.service, unset)
		}
	}

	// The file's content must still be what the daemon hashed: a write in
	// place since would change its size or mtime. (Not ctime: renaming
	// another file over the path changes the opened file's ctime, and that
	// case is exactly the one the descriptor makes safe.)
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return fmt.Errorf("exec: stat %s: %w", path, err)
	}
	if after.Size != before.Size || after.Mtim != before.Mtim {
		return fmt.Errorf("exec: %s was modified after it was checked; not run", path)
	}
	env := childEnv(os.Environ(), set)
	err = execveat(fd, args, env)
	return fmt.Errorf("exec: run %s: %w", path, err)
}

// execveat runs the program open as fd in place of this process.
func execveat(fd int, argv, env []string) error {
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return errno
}

func waitFIFO(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
