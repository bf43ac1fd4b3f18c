//go:build !linux && !darwin

package config

import "io/fs"

// keyOf uses what every platform reports. Without an inode or ctime, a
// rewrite that keeps both the size and the mtime goes unnoticed until the
// next change; Windows' NTFS mtimes are fine-grained enough for that to be
// unlikely.
func keyOf(fi fs.FileInfo) fileKey {
	return fileKey{exists: true, size: fi.Size(), mtime: fi.ModTime(), mode: uint32(fi.Mode())}
}
