package client

import (
	"errors"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// requestWriter is where a request is written: the connection, or, with
// prog, a writer that attaches prog's descriptor (SCM_RIGHTS) to the first
// bytes of the line.
func (c *Client) requestWriter(prog *os.File) (io.Writer, error) {
	if prog == nil {
		return c.conn, nil
	}
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return nil, errors.New("passing a descriptor needs a Unix socket connection")
	}
	return &rightsWriter{uc: uc, fd: int(prog.Fd())}, nil
}

type rightsWriter struct {
	uc   *net.UnixConn
	fd   int
	sent bool
}

func (w *rightsWriter) Write(p []byte) (int, error) {
	if w.sent {
		return w.uc.Write(p)
	}
	n, _, err := w.uc.WriteMsgUnix(p, unix.UnixRights(w.fd), nil)
	if n > 0 || err == nil {
		w.sent = true
	}
	if err != nil || n == len(p) {
		return n, err
	}
	// A stream socket may take part of a long line; the descriptor went
	// with that part.
	m, err := w.uc.Write(p[n:])
	return n + m, err
}
