//go:build unix

package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// checkSafe applies the permission check and, unless ownerUID is -1, requires
// the file to belong to ownerUID.
func checkSafe(path string, fi fs.FileInfo, ownerUID int) error {
	if err := checkPerm(path, fi); err != nil {
		return err
	}
	if ownerUID < 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: cannot tell who owns %s", ErrUnsafe, path)
	}
	if int64(st.Uid) != int64(ownerUID) {
		return fmt.Errorf("%w: %s is owned by uid %d, not uid %d; if the file is yours to trust, run: chown %d %s",
			ErrUnsafe, path, st.Uid, ownerUID, ownerUID, shellQuote(path))
	}
	return checkDir(filepath.Dir(path), ownerUID)
}

// checkDir refuses a directory that lets someone else replace the file in
// it: writable by its group or everyone, or owned by neither the expected
// owner nor root. A safe file in an unsafe directory can be renamed over.
func checkDir(dir string, ownerUID int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnsafe, dir, err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: the directory %s is writable by its group or by everyone (mode %04o), so others could "+
			"replace the file in it; run: chmod go-w %s", ErrUnsafe, dir, perm, shellQuote(dir))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int64(st.Uid) != int64(ownerUID) && st.Uid != 0 {
		return fmt.Errorf("%w: the directory %s is owned by uid %d, so that user could replace the file in it; "+
			"run: chown %d %s", ErrUnsafe, dir, st.Uid, ownerUID, shellQuote(dir))
	}
	return nil
}

// checkPerm refuses a file its group or everyone may write: whoever can
// write config.json can grant themselves any secret.
func checkPerm(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by its group or by everyone (mode %04o); run: chmod 600 %s",
			ErrUnsafe, path, perm, shellQuote(path))
	}
	return nil
}

// shellQuote makes s safe to paste into a POSIX shell as one word, for hints.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("-_./:@+=,%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
