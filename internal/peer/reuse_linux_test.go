package peer

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestReusedPIDIsNotMistaken makes the kernel hand a verified peer's pid to
// a new process (by setting ns_last_pid, which needs root) and shows that
// nothing read through the old Peer is taken from the new process.
func TestReusedPIDIsNotMistaken(t *testing.T) {
	const lastPID = "/proc/sys/kernel/ns_last_pid"
	// The file may be world-writable and still refuse writes without
	// CAP_SYS_ADMIN: probe by writing its current value back.
	cur, err := os.ReadFile(lastPID)
	if err == nil {
		err = os.WriteFile(lastPID, cur, 0)
	}
	if err != nil {
		// CI runs as root on a machine whose /proc/sys is writable; a
		// developer's ordinary account cannot stage pid reuse at all.
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("cannot write %s as root (%v): CI must be able to stage pid reuse", lastPID, err)
		}
		t.Skipf("SKIPPED: cannot write %s to force a pid to be reused (%v); run as root with a writable /proc/sys to cover pid reuse", lastPID, err)
	}
	sleep := lookPath(t, "sleep")

	old := exec.Command(sleep, "600")
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	pid := old.Process.Pid
	p := procPeer(t, pid)
	if err := p.Alive(); err != nil {
		t.Fatalf("peer alive before exit: %v", err)
	}
	old.Process.Kill()
	old.Wait()

	// Other processes on the machine fork too; try until the pid is ours.
	var reused *exec.Cmd
	for try := 0; try < 200 && reused == nil; try++ {
		if err := os.WriteFile(lastPID, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("write %s, opened for writing a moment ago: %v", lastPID, err)
		}
		cmd := exec.Command(sleep, "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			reused = cmd
			break
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	if reused == nil {
		msg := "could not get the kernel to reuse the pid in 200 tries; the machine forks too much"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
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
