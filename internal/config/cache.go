package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// Cache keeps the last loaded config.json and re-reads it only when the file
// changed, so the daemon can consult it on every new connection for the
// price of one stat. A load error is cached as well: a broken or unsafe
// config keeps answering the same error cheaply until the file is fixed.
//
// The *Config values it returns are shared between callers and must be
// treated as read-only; use Clone to get a copy to change.
type Cache struct {
	path string
	opts LoadOptions

	mu     sync.Mutex
	loaded bool
	key    fileKey
	cfg    *Config
	raw    []byte
	err    error
	loads  int // for tests: how many times the file was read
}

// NewCache returns a cache for the config.json at path, checked with opts.
func NewCache(path string, opts LoadOptions) *Cache {
	return &Cache{path: path, opts: opts}
}

// Get returns the current configuration or the reason it cannot be used.
func (c *Cache) Get() (*Config, error) {
	cfg, _, _, err := c.GetChanged()
	return cfg, err
}

// GetChanged is Get that also reports whether the configuration changed
// since the previous call, for logging policy changes. changed is true when
// the content differs or the file went from usable to unusable or back;
// a touch or a rewrite with identical bytes is not a change, and the first
// call never is. prev is the configuration the previous call returned (nil
// if it returned an error). Each change is reported to exactly one caller.
func (c *Cache) GetChanged() (cfg, prev *Config, changed bool, err error) {
	var key fileKey
	fi, statErr := os.Stat(c.path)
	switch {
	case statErr == nil:
		key = keyOf(fi)
	case !errors.Is(statErr, fs.ErrNotExist):
		// Not cached: a transient failure such as EACCES on a parent says
		// nothing about the file's content.
		return nil, nil, false, fmt.Errorf("read %s: %w", c.path, statErr)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && key.equal(c.key) {
		return c.cfg, c.cfg, false, c.err
	}
	newCfg, raw, newKey, newErr := load(c.path, c.opts)
	c.loads++
	if newKey.exists {
		// The key of the file actually read, so a replacement between the
		// stat above and the open is picked up by the next call.
		key = newKey
	}
	prev = c.cfg
	if c.loaded {
		switch {
		case newErr != nil || c.err != nil:
			changed = newErr == nil || c.err == nil || newErr.Error() != c.err.Error()
		default:
			changed = !bytes.Equal(raw, c.raw) || (raw == nil) != (c.raw == nil)
			if !changed {
				newCfg = c.cfg
			}
		}
	}
	c.loaded, c.key, c.cfg, c.raw, c.err = true, key, newCfg, raw, newErr
	return newCfg, prev, changed, newErr
}
