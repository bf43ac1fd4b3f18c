//go:build unix && !linux

package activation

// acceptConn: SO_ACCEPTCONN is Linux's; elsewhere a socket that is not
// listening fails at the first Accept instead.
func acceptConn(int) error { return nil }
