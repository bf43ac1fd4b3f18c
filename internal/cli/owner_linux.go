package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ownerOf returns the uid and gid that own path.
func ownerOf(path string) (uid, gid int, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	uid, gid, err = fileOwner(fi)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return uid, gid, nil
}

// fileOwner returns the uid and gid in fi.
func fileOwner(fi fs.FileInfo) (uid, gid int, err error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, errors.New("cannot tell who owns it")
	}
	return int(st.Uid), int(st.Gid), nil
}

// openNoFollow opens path for reading, refusing a symlink in its last
// component: a planted link must not redirect a secret.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
}

// asFileOwner runs fn with the file-system identity uid:gid, so whatever fn
// creates belongs to them and root's privilege to bypass file permissions is
// set aside meanwhile. Only the file-system ids of one locked thread change;
// the goroutine ends with the thread still locked, so the runtime retires
// that thread instead of reusing it with the changed identity.
func asFileOwner(uid, gid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.SetfsgidRetGid(gid)
		if got, _ := unix.SetfsgidRetGid(-1); got != gid {
			errc <- fmt.Errorf("cannot act as group %d (setfsgid): are you root?", gid)
			return
		}
		unix.SetfsuidRetUid(uid)
		if got, _ := unix.SetfsuidRetUid(-1); got != uid {
			errc <- fmt.Errorf("cannot act as uid %d (setfsuid): are you root?", uid)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
