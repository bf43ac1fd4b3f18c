//go:build !linux

package cli

func systemModeSupported() error { return errNoSystemMode }

func checkSystemCaps() error { return errNoSystemMode }
