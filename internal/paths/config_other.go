//go:build !darwin && !windows

package paths

// userConfigFallback is the config base, relative to the home directory,
// when XDG_CONFIG_HOME is not set.
func userConfigFallback() string { return ".config" }
