//go:build !darwin && !windows

package paths

// userConfigFallback is the config base, relative to the home directory,
// when XDG_CONFIG_HOME is not set.
func userConfigFallback() string { return ".config" }

// userCacheFallback is the cache base, relative to the home directory,
// when XDG_CACHE_HOME is not set.
func userCacheFallback() string { return ".cache" }
