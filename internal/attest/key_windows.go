package attest

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// keyOfFile asks the handle for the file's identity: the volume serial
// number and the 64-bit file reference number, plus the change time. Only
// NTFS is trusted with the cache: its reference number carries a sequence
// number that changes when a freed file record is reused, so a new file
// never takes an old one's identity. Elsewhere (FAT, ReFS, whose 128-bit
// IDs do not fit, network shares) Dev and Ino stay zero and the cache is off.
func keyOfFile(f *os.File, fi fs.FileInfo) Key {
	k := Key{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	h := windows.Handle(f.Fd())
	if !onNTFS(h) {
		return k
	}
	var d windows.ByHandleFileInformation
	if windows.GetFileInformationByHandle(h, &d) != nil {
		return k
	}
	bi, err := fsx.BasicInfoOf(h)
	if err != nil {
		return k
	}
	k.Dev = uint64(d.VolumeSerialNumber)
	k.Ino = uint64(d.FileIndexHigh)<<32 | uint64(d.FileIndexLow)
	k.Ctime = filetimeNanos(bi.ChangeTime)
	// The reference number's sequence part is the proof the cache asks
	// for (see Key): a reused file record gets a new one.
	k.Handle = fmt.Sprintf("ntfs:%x:%x", k.Dev, k.Ino)
	return k
}

// fileRemoteProtocolInfo is FILE_INFO_BY_HANDLE_CLASS FileRemoteProtocolInfo.
const fileRemoteProtocolInfo = 13

// checkFilesystem refuses an image on a network share (the server can
// change its bytes under unchanged attributes: see the Linux version) or on
// any volume that is not a disk volume, such as a user-mode filesystem
// (WinFsp, Dokan), which like FUSE can show the daemon other bytes than the
// loader maps (see windowsVolume). The remote-protocol query succeeds only
// for files reached over a redirector; the volume comes from the handle's
// NT path. A path that cannot be read refuses the image.
func checkFilesystem(f *os.File) error {
	h := windows.Handle(f.Fd())
	var info [256]byte
	if windows.GetFileInformationByHandleEx(h, fileRemoteProtocolInfo, &info[0], uint32(len(info))) == nil {
		return &UntrustedFSError{Name: f.Name(), FS: "network share"}
	}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n, err := windows.GetFinalPathNameByHandle(h, &buf[0], uint32(len(buf)), volumeNameNT)
	if err != nil || int(n) >= len(buf) {
		return &UntrustedFSError{Name: f.Name(), FS: "volume the daemon could not name (GetFinalPathNameByHandle failed)"}
	}
	if device, ok := windowsVolume(windows.UTF16ToString(buf[:n])); !ok {
		return &UntrustedFSError{Name: f.Name(), FS: "non-disk volume (" + device + ", such as a WinFsp, Dokan or network volume)"}
	}
	return nil
}

// volumeNameNT is GetFinalPathNameByHandle's VOLUME_NAME_NT.
const volumeNameNT = 0x2

func filetimeNanos(t int64) int64 {
	ft := windows.Filetime{LowDateTime: uint32(t), HighDateTime: uint32(t >> 32)}
	return ft.Nanoseconds()
}

func onNTFS(h windows.Handle) bool {
	var name [32]uint16
	if windows.GetVolumeInformationByHandle(h, nil, 0, nil, nil, nil, &name[0], uint32(len(name))) != nil {
		return false
	}
	return windows.UTF16ToString(name[:]) == "NTFS"
}

// statKey opens path to ask its handle, so a key from a path and one from an
// open file agree.
func statKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, err
	}
	return keyOfFile(f, fi), nil
}
