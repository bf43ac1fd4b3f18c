package attest

import (
	"io/fs"
	"syscall"
)

func keyFromInfo(fi fs.FileInfo) Key {
	k := Key{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Dev, k.Ino = uint64(uint32(st.Dev)), st.Ino
		k.Ctime = int64(st.Ctimespec.Sec)*1e9 + int64(st.Ctimespec.Nsec)
	}
	return k
}
