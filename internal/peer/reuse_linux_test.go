package peer

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/The-17/keychain-auth/internal/pidreuse"
)

// TestReusedPIDIsNotMistaken makes the kernel hand a verified peer's pid to
// a new process (by setting ns_last_pid, which needs root) and shows that
// nothing read through the old Peer is taken from the new process.
func TestReusedPIDIsNotMistaken(t *testing.T) {
	if err := pidreuse.Available(); err != nil {
		// CI runs as root on a machine whose /proc/sys is writable; a
		// developer's ordinary account cannot stage pid reuse at all.
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("cannot set the next pid as root (%v): CI must be able to stage pid reuse", err)
		}
		t.Skipf("SKIPPED: cannot set the next pid (%v); run as root with a writable /proc/sys to cover pid reuse", err)
	}
	sleep := lookPath(t, "sleep")
	start := func() (*exec.Cmd, error) {
		cmd := exec.Command(sleep, "600")
		return cmd, cmd.Start()
	}

	// Another process on the machine may take the pid first and keep it:
	// then stage it all again with a new victim.
	var (
		p      *Peer
		pid    int
		reused *exec.Cmd
		lost   error
	)
	for attempt := 0; attempt < 5 && reused == nil; attempt++ {
		old, err := start()
		if err != nil {
			t.Fatal(err)
		}
		pid = old.Process.Pid
		p = procPeer(t, pid)
		if err := p.Alive(); err != nil {
			t.Fatalf("peer alive before exit: %v", err)
		}
		old.Process.Kill()
		old.Wait()
		if reused, err = pidreuse.Reuse(pid, start); errors.Is(err, pidreuse.ErrTaken) {
			lost = err
			t.Logf("attempt %d: %v; staging it again", attempt+1, err)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if reused == nil {
		t.Fatalf("other processes took the victim's pid 5 times in a row: %v", lost)
	}
	defer func() { reused.Process.Kill(); reused.Wait() }()
	if _, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil {
		t.Fatalf("the new process under the old pid is not visible: %v", err)
	}

	if err := p.Alive(); !errors.Is(err, ErrGone) {
		t.Errorf("Alive = %v, want ErrGone", err)
	}
	if f, err := p.OpenExe(); !errors.Is(err, ErrGone) {
		if f != nil {
			f.Close()
		}
		t.Errorf("OpenExe = %v, want ErrGone", err)
	}
	if _, err := p.ExeLink(); !errors.Is(err, ErrGone) {
		t.Errorf("ExeLink = %v, want ErrGone", err)
	}
	if _, err := p.Tampered(); !errors.Is(err, ErrGone) {
		t.Errorf("Tampered = %v, want ErrGone", err)
	}
	if info := p.Describe(); info.PPID != 0 || len(info.CommandLine) != 0 {
		t.Errorf("Describe answered for the new process: %+v", info)
	}
}
