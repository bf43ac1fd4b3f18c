package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// maxFileSize bounds what is read into memory; real files are far smaller
// (pending.json, the larger one, stays under ~10 MiB with its caps).
const maxFileSize = 64 << 20

// LoadOptions say how config.json is checked and written.
type LoadOptions struct {
	// OwnerUID is the uid that must own config.json: the user in user mode,
	// 0 in system mode (so the zero value demands root). -1 skips the
	// ownership check; the check that the file is not group- or
	// world-writable always applies.
	OwnerUID int
	// FileMode is the mode Update writes the file with; 0 means 0600. System
	// mode uses 0644 so the unprivileged daemon can read root's file.
	FileMode os.FileMode
	// DirMode is the mode of a directory Update has to create; 0 means 0700.
	DirMode os.FileMode
}

func (o LoadOptions) fileMode() os.FileMode {
	if o.FileMode == 0 {
		return fsx.FileMode
	}
	return o.FileMode
}

// Load reads, checks and parses config.json at path. A missing file is an
// empty configuration. A file others could have written wraps ErrUnsafe; a
// file that does not parse or validate wraps ErrInvalid.
func Load(path string, opts LoadOptions) (*Config, error) {
	cfg, _, _, err := load(path, opts)
	return cfg, err
}

// load also returns the raw bytes (nil when missing) and the identity of the
// file read, so callers can tell whether anything changed.
func load(path string, opts LoadOptions) (*Config, []byte, fileKey, error) {
	data, fi, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil, fileKey{}, nil
	}
	if err != nil {
		return nil, nil, fileKey{}, err
	}
	key := keyOf(fi)
	if err := checkSafe(path, fi, opts.OwnerUID); err != nil {
		return nil, nil, key, err
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, nil, key, err
	}
	return cfg, data, key, nil
}

// readFile reads a regular file, refusing anything else (a FIFO would block
// the daemon forever), and returns the stat of the very file it read.
func readFile(path string) ([]byte, fs.FileInfo, error) {
	if fi, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("read %s: not a regular file (%s); replace it with a file: %w", path, fi.Mode().Type(), ErrInvalid)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("read %s: not a regular file; replace it with a file: %w", path, ErrInvalid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("read %s: larger than %d MiB, which no keychain-auth file should be; inspect it: %w", path, maxFileSize>>20, ErrInvalid)
	}
	return data, fi, nil
}

// Update changes config.json under its exclusive lock: it loads the current
// file (missing means empty), lets fn edit it, validates the result and
// writes it atomically. Nothing is written when loading fails (a file that
// does not parse is never overwritten), when fn returns an error, when the
// result is invalid, or when the content did not change. It returns the
// configuration as written.
func Update(ctx context.Context, path string, opts LoadOptions, fn func(*Config) error) (*Config, error) {
	// A private directory also gets a user-only ACL on Windows.
	mkdir := func(dir string) error { return fsx.MkdirPrivate(dir) }
	if opts.DirMode != 0 {
		mkdir = func(dir string) error { return os.MkdirAll(dir, opts.DirMode) }
	}
	if err := mkdir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	unlock, err := fsx.Lock(ctx, path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cfg, old, _, err := load(path, opts)
	if err != nil {
		return nil, err
	}
	if err := fn(cfg); err != nil {
		return nil, err
	}
	if cfg.ProtocolVersion == "" {
		cfg.ProtocolVersion = New().ProtocolVersion
	}
	if err := cfg.validate(path); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.unsaved = true
		}
		return nil, err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	if old != nil && bytes.Equal(data, old) {
		return cfg, nil
	}
	if err := fsx.WriteFile(path, data, opts.fileMode()); err != nil {
		return nil, err
	}
	return cfg, nil
}
