package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/The-17/keychain-auth/internal/fsx"
	"github.com/The-17/keychain-auth/internal/paths"
)

// The system store is sealed with a random key instead of a passphrase: the
// daemon starts unattended, and the key's file permissions (or systemd's
// credential encryption) are what keep other users out.
const (
	masterKeyName = "master.key"
	masterKeySize = 32
	// maxKeyFile bounds what is read: a key file is 32 bytes, or 64 hex
	// digits and a newline.
	maxKeyFile = 4 * masterKeySize
)

// ErrNoMasterKey: the system store exists but its key does not.
var ErrNoMasterKey = errors.New("the master key is missing")

// systemKey returns the system store's key and where it came from: the
// systemd credential master.key when the service was given one, else
// layout.KeyFile, created on the first start (when no store exists yet).
// The caller clears the key.
func (a *app) systemKey(ctx context.Context, layout paths.Layout, storeExists bool) (key []byte, source string, err error) {
	if dir := a.getenv(paths.EnvCredentials); dir != "" {
		p := filepath.Join(dir, masterKeyName)
		// systemd made the credential directory private to this service, and
		// its files may belong to root; only the content is checked.
		key, err := readKeyFile(p, -1)
		if err == nil {
			return key, "systemd credential " + p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", err
		}
	}
	key, err = readKeyFile(layout.KeyFile, a.uid)
	if err == nil {
		return key, layout.KeyFile, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	if storeExists {
		return nil, "", explain(ErrNoMasterKey, "the store %s exists but its master key %s is missing: restore the key from your backup "+
			"(a new key cannot open the old store), or move the store aside to start with an empty one", layout.StoreFile, layout.KeyFile)
	}
	return createKeyFile(ctx, layout.KeyFile, a.uid)
}

// createKeyFile writes a new random key, atomically and under the file's
// lock, unless another process created one meanwhile (then that one wins).
func createKeyFile(ctx context.Context, path string, uid int) ([]byte, string, error) {
	unlock, err := fsx.Lock(ctx, path)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	if key, err := readKeyFile(path, uid); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, path, err
	}
	key := make([]byte, masterKeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, "", fmt.Errorf("generate the master key: %w", err)
	}
	if err := fsx.WriteFile(path, key, fsx.FileMode); err != nil {
		clear(key)
		return nil, "", fmt.Errorf("create the master key: %w", err)
	}
	return key, path + " (created)", nil
}

// readKeyFile reads a key file: a regular file (not a symlink), owned by uid
// unless uid is -1, readable by its owner only, holding 32 raw bytes or 64
// hex digits.
func readKeyFile(path string, uid int) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read the master key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the master key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the master key %s is not a regular file; replace it with the key file", path)
	}
	if uid >= 0 {
		if err := checkPrivate(path, fi, uid, "chmod 600"); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, maxKeyFile+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		clear(buf)
		return nil, fmt.Errorf("read the master key %s: %w", path, err)
	}
	key, ok := parseKey(buf[:n])
	clear(buf)
	if !ok {
		return nil, fmt.Errorf("the master key %s is not %d bytes (or %d hex digits); restore it from your backup",
			path, masterKeySize, 2*masterKeySize)
	}
	return key, nil
}

// parseKey accepts 32 raw bytes, or 64 hex digits with surrounding
// whitespace (what `openssl rand -hex 32` writes).
func parseKey(b []byte) ([]byte, bool) {
	if len(b) == masterKeySize {
		return bytes.Clone(b), true
	}
	t := bytes.TrimSpace(b)
	if len(t) != 2*masterKeySize {
		return nil, false
	}
	key := make([]byte, masterKeySize)
	if _, err := hex.Decode(key, t); err != nil {
		clear(key)
		return nil, false
	}
	return key, true
}

// checkPrivate requires fi (of path) to belong to uid and to give its group
// and others nothing; fix is the chmod to suggest.
func checkPrivate(path string, fi fs.FileInfo, uid int, fix string) error {
	owner, _, err := fileOwner(fi)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if owner != uid {
		return fmt.Errorf("%s belongs to uid %d, not to the daemon's uid %d; run: chown %d %s",
			path, owner, uid, uid, shellQuote(path))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is open to other users (mode %04o); run: %s %s", path, fi.Mode().Perm(), fix, shellQuote(path))
	}
	return nil
}

// checkStateDir requires the system state directory to exist, be a real
// directory, belong to the daemon's uid and be private to it: it holds the
// store, its key, the audit log and the queue.
func checkStateDir(dir string, uid int) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, fsx.DirMode); err != nil {
			return fmt.Errorf("create the state directory %s: %w; set the system up with: sudo keychain-auth install-system", dir, err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the state directory %s is not a directory (a symlink is refused too)", dir)
	}
	return checkPrivate(dir, fi, uid, "chmod 700")
}
