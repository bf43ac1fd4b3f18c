package fsx

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// replaceTimeout bounds how long replace waits for others to close path.
const replaceTimeout = 2 * time.Second

// replace renames tmp over path. Windows refuses to replace a file that
// someone has open without FILE_SHARE_DELETE (Go's os.Open, most editors,
// virus scanners): a CLI reading pending.json while the daemon records a
// caller made that record fail. Such opens are short, so the rename is
// retried, with a growing pause, for up to replaceTimeout.
func replace(tmp, path string) error {
	deadline := time.Now().Add(replaceTimeout)
	pause := time.Millisecond
	for {
		err := os.Rename(tmp, path)
		if err == nil || !sharingError(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func sharingError(err error) bool {
	return errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}

const dirSyncable = false

func restrictDir(dir string) error {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString(PrivateSDDL(tu.User.Sid.String()))
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

// BasicInfo is FILE_BASIC_INFO: times in 100 ns intervals since 1601.
type BasicInfo struct {
	CreationTime, LastAccessTime, LastWriteTime, ChangeTime int64
	FileAttributes                                          uint32
	_                                                       uint32
}

// BasicInfoOf reads the FILE_BASIC_INFO of an open file.
func BasicInfoOf(h windows.Handle) (BasicInfo, error) {
	var bi BasicInfo
	err := windows.GetFileInformationByHandleEx(h, windows.FileBasicInfo, (*byte)(unsafe.Pointer(&bi)), uint32(unsafe.Sizeof(bi)))
	return bi, err
}
