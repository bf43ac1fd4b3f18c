package attest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func keyFromInfo(fi fs.FileInfo) Key {
	k := Key{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Dev, k.Ino = uint64(st.Dev), uint64(st.Ino)
		k.Ctime = int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec)
	}
	return k
}

// atHandleMntIDUnique asks name_to_handle_at for the 64-bit mount id that is
// never reused (Linux 6.12); x/sys/unix does not define it yet, and its
// NameToHandleAt wrapper reads the mount id as a 32-bit int, which this flag
// would overflow, hence the raw call below.
const atHandleMntIDUnique = 0x001

// maxHandleBytes is MAX_HANDLE_SZ, the most any filesystem's handle takes.
const maxHandleBytes = 128

// fileHandle is struct file_handle with room for the largest handle.
type fileHandle struct {
	bytes uint32
	typ   int32
	data  [maxHandleBytes]byte
}

// proveIdentity adds what tells this file apart from any later file that
// gets its inode number: the filesystem's file handle, which on ext4, xfs,
// btrfs and tmpfs carries the inode's generation (new for every inode
// allocation), and the mount it was reached through. Without both the key is
// left unproven and the file is hashed on every connection.
func proveIdentity(f *os.File, k *Key) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	var (
		h     fileHandle
		mount uint64
		errno syscall.Errno
	)
	empty := []byte{0}
	rc.Control(func(fd uintptr) {
		for _, flags := range []uintptr{unix.AT_EMPTY_PATH | atHandleMntIDUnique, unix.AT_EMPTY_PATH} {
			h.bytes, mount = maxHandleBytes, 0
			_, _, errno = unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, fd, uintptr(unsafe.Pointer(&empty[0])),
				uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&mount)), flags, 0)
			// EINVAL: a kernel before 6.12 that does not know the flag.
			// The 32-bit mount id it then gives can be reused, but the
			// handle's generation still tells files apart.
			if errno != unix.EINVAL {
				return
			}
		}
	})
	if errno != 0 || h.bytes == 0 || h.bytes > maxHandleBytes {
		return
	}
	k.Mount = mount
	b := make([]byte, 4+h.bytes)
	binary.LittleEndian.PutUint32(b, uint32(h.typ))
	copy(b[4:], h.data[:h.bytes])
	k.Handle = string(b)
}

// Filesystem magic numbers (statfs f_type) of filesystems whose file content
// the daemon cannot trust: what it reads may not be what the kernel maps
// for exec.
const (
	fuseMagic   = 0x65735546 // FUSE and fuseblk: a user-space server answers every read
	nfsMagic    = 0x6969
	smbMagic    = 0x517b
	cifsMagic   = 0xff534d42
	smb2Magic   = 0xfe534d42
	v9fsMagic   = 0x01021997 // 9p, also WSL's /mnt/c
	cephMagic   = 0x00c36400
	afsMagic    = 0x5346414f
	codaMagic   = 0x73757245
	ncpMagic    = 0x564c
	ocfs2Magic  = 0x7461636f
	gfs2Magic   = 0x01161970
	orangeMagic = 0x20030528
)

var untrustedFS = map[int64]string{
	fuseMagic: "FUSE", nfsMagic: "NFS", smbMagic: "SMB", cifsMagic: "CIFS", smb2Magic: "SMB2",
	v9fsMagic: "9p", cephMagic: "Ceph", afsMagic: "AFS", codaMagic: "Coda", ncpMagic: "NCP",
	ocfs2Magic: "OCFS2", gfs2Magic: "GFS2", orangeMagic: "OrangeFS",
}

// checkFilesystem refuses an image on a filesystem whose content another
// party serves: a FUSE server (which any user may mount through the setuid
// fusermount3) can hand the hasher one file and exec another, or change the
// bytes under unchanged attributes; a network filesystem's server or any
// other client can do the same, and cached pages need not match the server.
// The daemon cannot tell which bytes run, so it trusts none of them.
func checkFilesystem(f *os.File) error {
	var st unix.Statfs_t
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("check the filesystem of %s: %w", f.Name(), err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fstatfs(int(fd), &st)
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("check the filesystem of %s: %w", f.Name(), err)
	}
	if serr != nil {
		return fmt.Errorf("check the filesystem of %s: fstatfs: %w", f.Name(), serr)
	}
	if name, bad := untrustedFS[int64(uint32(st.Type))]; bad {
		return &UntrustedFSError{Name: f.Name(), FS: name}
	}
	return nil
}
