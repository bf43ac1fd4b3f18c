package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
)

// harden makes the daemon's memory unreadable to same-uid processes and
// keeps secrets out of core dumps. It returns warnings for what failed, and
// notes: facts worth saying once that the user may be unable to change.
func harden() (warnings []string, notes []note) {
	unix.Umask(0o077)
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		warnings = append(warnings, "cannot disable ptrace/dumping (PR_SET_DUMPABLE): "+err.Error())
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		warnings = append(warnings, "cannot disable core dumps (RLIMIT_CORE): "+err.Error())
	}
	if w, n := lockMemory(); w != "" {
		warnings = append(warnings, w)
	} else if n.msg != "" {
		notes = append(notes, n)
	}
	return warnings, notes
}

// lockMemory keeps the pages secrets pass through out of swap: every page,
// present and future, is locked once it is first touched (MCL_ONFAULT, so
// the runtime's large address reservations are not made resident).
//
// It is only attempted when nothing limits it. With a finite RLIMIT_MEMLOCK
// and no CAP_IPC_LOCK, MCL_FUTURE makes every later mapping count against
// the limit, and the Go runtime treats a mapping it cannot get as a fatal
// out-of-memory error: the daemon would crash the first time its heap grew.
// Swap exposure is the lesser harm, so that case is reported instead.
func lockMemory() (warning string, n note) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return memNotLocked + "read RLIMIT_MEMLOCK: " + err.Error(), note{}
	}
	if lim.Cur != unix.RLIM_INFINITY && lim.Max == unix.RLIM_INFINITY {
		lim.Cur = lim.Max
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim) != nil {
			unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		}
	}
	if lim.Cur != unix.RLIM_INFINITY && !hasCapability(unix.CAP_IPC_LOCK) {
		return "", memlockNote(lim, swapActive())
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return memNotLocked + err.Error(), note{}
	}
	return "", note{}
}

const memNotLocked = "memory not locked (mlockall), so secrets may reach swap: "

// memlockNote says why memory stays unlocked under a finite limit. It is a
// note, not a warning: an ordinary user cannot raise a hard limit (so
// "ulimit -l unlimited" would fail), and the daemon runs well without the
// lock. Without active swap there is nothing to say: no page can reach it.
func memlockNote(lim unix.Rlimit, swap bool) note {
	if !swap {
		return note{}
	}
	return note{
		key: "memlock-" + strconv.FormatUint(lim.Max, 10),
		msg: memNotLocked + "RLIMIT_MEMLOCK is " + strconv.FormatUint(lim.Cur, 10) + " bytes (hard limit " +
			strconv.FormatUint(lim.Max, 10) + "), which only root can raise. If that matters to you: have root set " +
			"\"<user> hard memlock unlimited\" in /etc/security/limits.d/ and start the daemon from a new login, " +
			"or encrypt swap, or run the daemon in system mode (sudo keychain-auth install-system). " +
			"This is said once for this limit",
	}
}

// swapActive reports whether any swap area is in use. /proc/swaps has a
// header line and one line per area; when it cannot be read, assume swap.
func swapActive() bool {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		return true
	}
	return len(bytes.Split(bytes.TrimSpace(b), []byte("\n"))) > 1
}

// hasCapability reports whether the process has capability c in its
// effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

func registerPlatformBackends(r *backend.Registry) {
	secretservice.Register(r)
}

// autoBackend picks the store for a first start: the Secret Service when the
// session bus has it (running or activatable), else the encrypted file store.
func autoBackend(ctx context.Context, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := secretservice.Available(ctx)
	switch {
	case err != nil:
		log.Info("cannot tell whether a Secret Service is available; using the encrypted file store", "err", err)
	case !ok:
		log.Info("no Secret Service on the session bus; using the encrypted file store")
	default:
		return secretservice.Name
	}
	return "file"
}
