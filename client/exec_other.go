//go:build !linux

package client

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// requestWriter: descriptor passing is implemented on Linux only.
func (c *Client) requestWriter(prog *os.File) (io.Writer, error) {
	if prog != nil {
		return nil, fmt.Errorf("passing a program descriptor is implemented on Linux only: %w", errors.ErrUnsupported)
	}
	return c.conn, nil
}
