//go:build !unix

package sstest

import (
	"errors"
	"os"
)

func pause(*os.Process, bool) error {
	return errors.New("sstest: freezing a process needs SIGSTOP, which this OS does not have")
}
