package pipe

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

func currentSID(t *testing.T) string {
	t.Helper()
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	return tu.User.Sid.String()
}

// underWine reports whether the test runs under Wine, which does not enforce
// pipe DACLs or FILE_FLAG_FIRST_PIPE_INSTANCE.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func testName(t *testing.T) string {
	return fmt.Sprintf(`%skeychain-auth-test-%d-%d`, Prefix, os.Getpid(), time.Now().UnixNano())
}

// echoServer answers every line with "echo: <line>".
func echoServer(t *testing.T, l *Listener) {
	t.Helper()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
			}()
		}
	}()
}

func TestEchoAndConcurrentClients(t *testing.T) {
	name := testName(t)
	l, err := Listen(name, currentSID(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echoServer(t, l)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c, err := Dial(t.Context(), name)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for j := range 3 {
				fmt.Fprintf(c, "c%d-%d\n", i, j)
				line, err := r.ReadString('\n')
				if want := fmt.Sprintf("echo: c%d-%d\n", i, j); err != nil || line != want {
					t.Errorf("client %d: got %q, %v; want %q", i, line, err, want)
				}
			}
		})
	}
	wg.Wait()
}

func TestReadDeadlines(t *testing.T) {
	name := testName(t)
	l, err := Listen(name, currentSID(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c.(*Conn)
		}
	}()
	cl, err := Dial(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	srv := <-accepted
	defer srv.Close()

	srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	_, err = srv.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("deadline fired after %v, want about 200ms", d)
	}

	// A deadline moved into the past from another goroutine wakes a blocked
	// read: the daemon's shutdown relies on it.
	srv.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		srv.SetReadDeadline(time.Now())
	}()
	done := make(chan error, 1)
	go func() { _, err := srv.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("interrupted read: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read blocked past a deadline set from another goroutine")
	}

	// After a timeout the connection still works.
	srv.SetReadDeadline(time.Time{})
	fmt.Fprintf(cl, "still here\n")
	line, err := bufio.NewReader(srv).ReadString('\n')
	if err != nil || line != "still here\n" {
		t.Errorf("read after timeouts: %q, %v", line, err)
	}
}

func TestCloseStopsAccept(t *testing.T) {
	l, err := Listen(testName(t), currentSID(t))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Accept after Close returned a connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if _, err := Dial(t.Context(), l.name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Dial after Close: %v, want not found", err)
	}
}

func TestSquatterMakesListenFail(t *testing.T) {
	name := testName(t)
	l, err := Listen(name, currentSID(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l2, err := Listen(name, currentSID(t))
	if err == nil {
		l2.Close()
		if underWine() {
			t.Skip("SKIPPED under Wine: it does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE; this runs on real Windows only")
		}
		t.Fatal("a second Listen on a name already served succeeded")
	}
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), name) {
		t.Errorf("second Listen: %v, want ErrExists naming the pipe", err)
	}
}

func TestPipeSecurityDescriptor(t *testing.T) {
	sid := currentSID(t)
	name := testName(t)
	l, err := Listen(name, sid)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sd, err := windows.GetSecurityInfo(l.pending, windows.SE_KERNEL_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	got := sd.String()
	if underWine() && !strings.Contains(got, sid) {
		t.Skipf("SKIPPED under Wine: it does not keep pipe DACLs (got %q); this runs on real Windows only", got)
	}
	// Windows shows the generic right it mapped (FA, all file access);
	// Wine shows GA as given.
	if !strings.HasPrefix(got, "D:P") {
		t.Errorf("pipe DACL %q is not protected from inheritance", got)
	}
	for _, who := range []string{sid, "SY"} {
		if !strings.Contains(got, "(A;;FA;;;"+who+")") && !strings.Contains(got, "(A;;GA;;;"+who+")") {
			t.Errorf("pipe security descriptor %q does not grant %s full access", got, who)
		}
	}
	if strings.Count(got, "(A;") != 2 {
		t.Errorf("pipe security descriptor %q grants more than the user and SYSTEM", got)
	}
}

// TestClientThatLeftEarly: a client that connects and closes before the
// server calls ConnectNamedPipe (a liveness probe) must not break Accept.
func TestClientThatLeftEarly(t *testing.T) {
	name := testName(t)
	l, err := Listen(name, currentSID(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	probe, err := Dial(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	echoServer(t, l)
	c, err := Dial(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "after the probe\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo: after the probe\n" {
		t.Errorf("got %q, %v", line, err)
	}
}

// A listener gives back the handles it made once it is closed, whether
// Accept was waiting or not: a daemon that restarts its listener (or a test
// suite that makes many) must not leak them. (Wine's GetProcessHandleCount
// answers 0, so the listener's own handles are asked directly.)
func TestCloseReleasesHandles(t *testing.T) {
	for _, accepting := range []bool{false, true} {
		l, err := Listen(testName(t), currentSID(t))
		if err != nil {
			t.Fatal(err)
		}
		closed := l.closed
		done := make(chan struct{})
		if accepting {
			go func() { l.Accept(); close(done) }()
			time.Sleep(20 * time.Millisecond) // let Accept wait on the event
		} else {
			close(done)
		}
		l.Close()
		<-done
		if _, err := windows.WaitForSingleObject(closed, 0); err == nil {
			t.Errorf("accepting=%v: the listener's close event is still open after Close", accepting)
		}
	}
}
