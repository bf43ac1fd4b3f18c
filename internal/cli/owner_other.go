//go:build !linux

package cli

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
)

var errNoSystemMode = errors.New("system mode is implemented on Linux only, not on " + runtime.GOOS)

func ownerOf(string) (uid, gid int, err error) { return 0, 0, errNoSystemMode }

func asFileOwner(_, _ int, _ func() error) error { return errNoSystemMode }

func fileOwner(fs.FileInfo) (uid, gid int, err error) { return 0, 0, errNoSystemMode }

func openNoFollow(string) (*os.File, error) { return nil, errNoSystemMode }
