//go:build !windows

package server

import (
	"net"
	"path/filepath"
)

func testSocket(dir string) string { return filepath.Join(dir, "run", "agent.sock") }

func testDial(path string) (net.Conn, error) { return net.Dial("unix", path) }
