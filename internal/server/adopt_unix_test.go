//go:build !windows

package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func passedSocket(t *testing.T, dirMode, sockMode os.FileMode) (*net.UnixListener, string) {
	t.Helper()
	base, err := os.MkdirTemp("", "adopt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	os.Chmod(path, sockMode)
	os.Chmod(dir, dirMode)
	return ul, path
}

func TestAdopt(t *testing.T) {
	ul, path := passedSocket(t, 0o700, 0o600)
	l, err := Adopt(ul, ListenOptions{UID: os.Getuid(), GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing an adopted listener removed the socket: %v", err)
	}

	ul, _ = passedSocket(t, 0o700, 0o666)
	if _, err := Adopt(ul, ListenOptions{UID: os.Getuid(), GID: -1}); !errors.Is(err, ErrUnsafeSocket) {
		t.Errorf("socket 0666: %v", err)
	}
	ul, _ = passedSocket(t, 0o755, 0o600)
	if _, err := Adopt(ul, ListenOptions{UID: os.Getuid(), GID: -1}); !errors.Is(err, ErrUnsafeSocketDir) {
		t.Errorf("directory 0755: %v", err)
	}
	ul, _ = passedSocket(t, 0o700, 0o600)
	if _, err := Adopt(ul, ListenOptions{UID: os.Getuid() + 1, GID: -1}); err == nil {
		t.Error("a socket in another uid's directory was adopted")
	}
}

// As root the socket file itself can belong to someone else while its
// directory is ours.
func TestAdoptRefusesForeignSocketFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chown the socket; the directory check above covers ordinary users")
	}
	ul, path := passedSocket(t, 0o700, 0o600)
	if err := os.Lchown(path, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := Adopt(ul, ListenOptions{UID: 0, GID: -1}); !errors.Is(err, ErrUnsafeSocket) {
		t.Errorf("socket owned by 65534: %v", err)
	}
}
