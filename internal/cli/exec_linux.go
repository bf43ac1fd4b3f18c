package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/client"
	"github.com/The-17/keychain-auth/internal/peer"
)

// envExecPause names a FIFO that exec opens and reads to its end after it
// opened the program and before it asks the daemon, and envExecPauseAfter
// one it reads after the daemon answered, before the program runs: test
// seams, so that a test can replace or rewrite the program's file in
// between.
const (
	envExecPause      = "KEYCHAIN_AUTH_TEST_EXEC_PAUSE_FIFO"
	envExecPauseAfter = "KEYCHAIN_AUTH_TEST_EXEC_PAUSE_AFTER_FIFO"
)

func (a *app) execProgram(ctx context.Context, f execFlags, args []string) error {
	mappings, err := parseExecFlags(f)
	if err != nil {
		return err
	}
	// The program inherits this environment: the daemon's rules for the
	// dynamic loader variables of its peers apply to it.
	if msg := peer.LoaderEnvProblem(os.Environ()); msg != "" {
		return fmt.Errorf("exec: not run: %s", strings.Replace(msg, "the process was started with", "the environment sets", 1))
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
	leased, err := protectImage(fd)
	if err != nil {
		return fmt.Errorf("exec: %s not run: %w", path, err)
	}
	if err := a.testPause(envExecPause); err != nil {
		return err
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

	if err := a.testPause(envExecPauseAfter); err != nil {
		return err
	}
	// The file's content must still be what the daemon hashed. The lease
	// is how that is known: anyone who opened the file for writing since
	// broke it (and waits for this process to exec or exit). Without one
	// (a file this user cannot write), a write in place by its owner
	// would still change its size or mtime, unless the owner put the
	// mtime back. (Not ctime: renaming another file over the path changes
	// the opened file's ctime, and that case is exactly the one the
	// descriptor makes safe.)
	if leased {
		if lt, err := unix.FcntlInt(uintptr(fd), unix.F_GETLEASE, 0); err != nil || lt != unix.F_RDLCK {
			return fmt.Errorf("exec: %s was opened for writing after it was checked; not run", path)
		}
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return fmt.Errorf("exec: stat %s: %w", path, err)
	}
	if after.Size != before.Size || after.Mtim != before.Mtim {
		return fmt.Errorf("exec: %s was modified after it was checked; not run", path)
	}
	env := childEnv(os.Environ(), set)
	err = execFD(fd, args, env)
	return fmt.Errorf("exec: run %s: %w", path, err)
}

// execFD runs the program open as fd in place of this process. It goes
// through syscall.Exec on the descriptor's /proc/self/fd link, which the
// kernel resolves to the open file itself, not to whatever the path names
// now (what fexecve does on Linux): unlike a raw execveat, syscall.Exec
// stops the Go runtime from creating threads during the exec and gives the
// program the open-files limit this process was started with, not the one
// the runtime raised for itself.
func execFD(fd int, argv, env []string) error {
	return syscall.Exec("/proc/self/fd/"+strconv.Itoa(fd), argv, env)
}

// protectImage takes a read lease on the program's file, so that nobody can
// open it for writing, or truncate it, between the daemon's hash and the
// exec without this process knowing: such an open breaks the lease (and
// blocks until this process execs or exits, after which the running image
// cannot be opened for writing at all). A file already open for writing
// somewhere cannot be leased and is refused. A file the caller does not
// own cannot be leased either (without CAP_LEASE); that is fine when this
// user cannot write it, since then no process of theirs can change it, and
// refused otherwise. It reports whether the lease was taken.
func protectImage(fd int) (bool, error) {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EBUSY):
		return false, errors.New("another process has it open for writing, so it could change between the check and the run")
	}
	switch werr := unix.Faccessat2(fd, "", unix.W_OK, unix.AT_EMPTY_PATH|unix.AT_EACCESS); {
	case errors.Is(werr, unix.EACCES), errors.Is(werr, unix.EPERM), errors.Is(werr, unix.EROFS):
		return false, nil // this user cannot write it
	case werr == nil:
		return false, fmt.Errorf("it is writable by this user and cannot be protected against writes while it is checked (lease: %v)", err)
	default:
		return false, fmt.Errorf("cannot protect it against writes while it is checked (lease: %v) nor tell whether this user can write it (%v)", err, werr)
	}
}

// testPause waits on the FIFO the environment variable name names, if set.
func (a *app) testPause(name string) error {
	fifo := a.getenv(name)
	if fifo == "" {
		return nil
	}
	if err := waitFIFO(fifo); err != nil {
		return fmt.Errorf("exec: test pause: %w", err)
	}
	return nil
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
