package cli

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/secretservice"
)

// harden makes the daemon's memory unreadable to same-uid processes and
// keeps secrets out of core dumps. It returns warnings for what failed.
func harden() (warnings []string) {
	unix.Umask(0o077)
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		warnings = append(warnings, "cannot disable ptrace/dumping (PR_SET_DUMPABLE): "+err.Error())
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		warnings = append(warnings, "cannot disable core dumps (RLIMIT_CORE): "+err.Error())
	}
	if w := lockMemory(); w != "" {
		warnings = append(warnings, w)
	}
	return warnings
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
func lockMemory() string {
	const what = "memory not locked (mlockall), so secrets may reach swap: "
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return what + "read RLIMIT_MEMLOCK: " + err.Error()
	}
	if lim.Cur != unix.RLIM_INFINITY && lim.Max == unix.RLIM_INFINITY {
		lim.Cur = lim.Max
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim) != nil {
			unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		}
	}
	if lim.Cur != unix.RLIM_INFINITY && !hasCapability(unix.CAP_IPC_LOCK) {
		return what + "RLIMIT_MEMLOCK is " + strconv.FormatUint(lim.Cur, 10) +
			" bytes; give the daemon an unlimited one (systemd: LimitMEMLOCK=infinity; shell: ulimit -l unlimited) or CAP_IPC_LOCK"
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return what + err.Error()
	}
	return ""
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
