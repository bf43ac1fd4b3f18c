package config

import "time"

// fileKey identifies one version of a file cheaply. Together with the size
// and mtime, the inode catches a replacement by rename and the ctime catches
// an in-place rewrite that kept the mtime, and a chmod or chown, which must
// be re-checked for safety.
type fileKey struct {
	exists bool
	size   int64
	mtime  time.Time
	mode   uint32
	dev    uint64
	ino    uint64
	ctime  time.Time
}

func (k fileKey) equal(o fileKey) bool {
	return k.exists == o.exists && k.size == o.size && k.mtime.Equal(o.mtime) && k.mode == o.mode &&
		k.dev == o.dev && k.ino == o.ino && k.ctime.Equal(o.ctime)
}
