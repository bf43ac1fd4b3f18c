package attest

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func keyFromInfo(fi fs.FileInfo) Key {
	k := Key{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Dev, k.Ino = uint64(uint32(st.Dev)), st.Ino
		k.Ctime = int64(st.Ctimespec.Sec)*1e9 + int64(st.Ctimespec.Nsec)
	}
	return k
}

// proveIdentity has nothing to add on macOS: st_gen reads as 0 for anyone
// but root, so nothing proves that a file is not a new one that got a freed
// inode number, and every connection is hashed (see docs/threat-model.md).
func proveIdentity(*os.File, *Key) {}

// untrustedFS are the f_fstypename values of filesystems whose content
// another party serves (see the Linux checkFilesystem).
var untrustedFS = map[string]string{
	"macfuse": "FUSE", "osxfuse": "FUSE", "fusefs": "FUSE", "fuse-t": "FUSE",
	"nfs": "NFS", "smbfs": "SMB", "afpfs": "AFP", "webdav": "WebDAV", "cifs": "CIFS",
}

// checkFilesystem refuses an image on a FUSE or network volume.
func checkFilesystem(f *os.File) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("check the filesystem of %s: fstatfs: %w", f.Name(), err)
	}
	name := unix.ByteSliceToString(st.Fstypename[:])
	if fs, bad := untrustedFS[name]; bad || strings.Contains(name, "fuse") {
		if !bad {
			fs = "FUSE"
		}
		return &UntrustedFSError{Name: f.Name(), FS: fs}
	}
	return nil
}
