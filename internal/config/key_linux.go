package config

import (
	"io/fs"
	"syscall"
	"time"
)

func keyOf(fi fs.FileInfo) fileKey {
	k := fileKey{exists: true, size: fi.Size(), mtime: fi.ModTime(), mode: uint32(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), uint64(st.Ino)
		k.ctime = time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
	}
	return k
}
