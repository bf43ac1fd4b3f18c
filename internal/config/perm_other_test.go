//go:build !unix

package config

import (
	"os"
	"testing"
)

// assertMode checks nothing here: outside Unix, Go synthesizes file modes
// from attributes and they do not describe access.
func assertMode(t *testing.T, path string, want os.FileMode) {}
