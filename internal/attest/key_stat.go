//go:build !windows

package attest

import (
	"io/fs"
	"os"
)

// keyOfFile is the key of an open file, from its fstat, with what proves
// its identity where the OS gives that (see proveIdentity).
func keyOfFile(f *os.File, fi fs.FileInfo) Key {
	k := keyFromInfo(fi)
	proveIdentity(f, &k)
	return k
}

// statKey is the key of the file path resolves to, from a stat.
func statKey(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, err
	}
	return keyFromInfo(fi), nil
}
