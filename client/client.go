package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/The-17/keychain-auth/protocol"
)

// Client is one connection to the daemon. It is safe for concurrent use;
// calls take turns on the connection (see the package doc).
type Client struct {
	conn net.Conn
	path string
	r    *protocol.Reader

	// turn holds a token while a request/response pair is in flight. It is a
	// channel rather than a mutex so that waiting for a turn honours ctx.
	turn   chan struct{}
	nextID uint64 // guarded by turn

	mu     sync.Mutex
	broken error // why the connection is unusable; nil while it is usable
	closed bool  // Close was called
}

func newClient(conn net.Conn, path string) *Client {
	return &Client{
		conn: conn,
		path: path,
		// Responses carry whole values and are not bound by the request
		// line limit (a prefix read of a large service can exceed it). The
		// daemon behind a socket we chose is trusted, so no cap is imposed.
		r:    protocol.NewReaderLimit(conn, 0),
		turn: make(chan struct{}, 1),
	}
}

// SocketPath is the socket this client is connected to.
func (c *Client) SocketPath() string { return c.path }

// Close closes the connection. Calls in flight fail and later calls return an
// error wrapping ErrClosed. Closing twice is harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	wasBroken := c.broken != nil
	if !wasBroken {
		c.broken = fmt.Errorf("%w: Close was called", ErrClosed)
	}
	err := c.conn.Close()
	if wasBroken {
		// The connection was already closed when it broke.
		return nil
	}
	return err
}

// fail records why the connection can no longer be used and closes it; the
// first reason wins, since later ones are consequences of it. Later calls
// return the reason, which always matches ErrClosed.
func (c *Client) fail(reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		if !errors.Is(reason, ErrClosed) {
			reason = fmt.Errorf("%w after an earlier failure (%w); dial again", ErrClosed, reason)
		}
		c.broken = reason
	}
	_ = c.conn.Close()
}

func (c *Client) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// do sends req and returns the daemon's response. A non-success response is
// returned as *Error. Any transport failure closes the connection.
func (c *Client) do(ctx context.Context, req *protocol.Request) (*protocol.Response, error) {
	return c.doWith(ctx, req, nil)
}

// doWith is do sending prog's descriptor with the request line when prog is
// not nil (see ExecRead).
func (c *Client) doWith(ctx context.Context, req *protocol.Request, prog *os.File) (*protocol.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, opError(req, err)
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, opError(req, ctx.Err())
	}
	defer func() { <-c.turn }()
	if err := c.failure(); err != nil {
		return nil, opError(req, err)
	}

	c.nextID++
	id := json.RawMessage(strconv.AppendUint(nil, c.nextID, 10))
	req.Type = protocol.TypeRequest
	req.ID = id

	deadline, _ := ctx.Deadline() // zero means none, which also clears an old one
	if err := c.conn.SetDeadline(deadline); err != nil {
		err = fmt.Errorf("%w: setting the deadline on %s: %w", ErrClosed, c.path, err)
		c.fail(err)
		return nil, opError(req, err)
	}
	// finished stops a cancellation that races with the end of the exchange
	// from poisoning the next request's deadline.
	var (
		guard    sync.Mutex
		finished bool
	)
	stop := context.AfterFunc(ctx, func() {
		guard.Lock()
		defer guard.Unlock()
		if !finished {
			// A deadline in the past wakes a blocked read or write at once.
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	resp, err := c.exchange(id, req, prog)
	guard.Lock()
	finished = true
	guard.Unlock()
	stop()

	if errors.Is(err, errNotSent) {
		// Nothing reached the connection, so it is still in step.
		return nil, opError(req, err)
	}
	if err != nil {
		if ctxErr := contextError(ctx, err); ctxErr != nil {
			// The stream may hold half a request or half a response.
			c.fail(fmt.Errorf("%w: an earlier request was interrupted (%w); dial again", ErrClosed, ctxErr))
			return nil, opError(req, fmt.Errorf("%w; the connection was closed", ctxErr))
		}
		c.fail(err)
		return nil, opError(req, err)
	}
	if resp.Status == protocol.StatusSuccess {
		return resp, nil
	}
	e := &Error{
		Action:  req.Action,
		Service: req.Service,
		Status:  resp.Status,
		Reason:  resp.Reason,
		Message: resp.Message,
		Missing: resp.Missing,
	}
	if e.closesConnection() {
		c.fail(&closedAfter{refusal: e})
	}
	return nil, e
}

// closedAfter is why a client is unusable once the daemon closed the
// connection after refusing a request. The caller already has the refusal's
// full message, so later calls name it only briefly; errors.Is and errors.As
// still find it (ErrUnregistered, *Error) as well as ErrClosed.
type closedAfter struct{ refusal *Error }

func (c *closedAfter) Error() string {
	what := string(c.refusal.Action)
	if c.refusal.Service != "" {
		what += fmt.Sprintf(" on service %q", c.refusal.Service)
	}
	return fmt.Sprintf("%v: the daemon closed it after it %s an earlier %s (%s); dial again",
		ErrClosed, c.refusal.Status, what, c.refusal.Reason)
}

func (c *closedAfter) Unwrap() []error { return []error{ErrClosed, c.refusal} }

// errNotSent marks a request refused before any byte was written.
var errNotSent = errors.New("the request was not sent")

// exchange writes one request and reads its response.
func (c *Client) exchange(id json.RawMessage, req *protocol.Request, prog *os.File) (*protocol.Response, error) {
	w, err := c.requestWriter(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotSent, err)
	}
	if err := protocol.WriteRequest(w, req); err != nil {
		if errors.Is(err, protocol.ErrLineTooLong) {
			return nil, fmt.Errorf("%w: %w", errNotSent, err)
		}
		return nil, fmt.Errorf("%w: sending the request to %s failed: %w", ErrClosed, c.path, err)
	}
	line, err := c.r.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: the daemon at %s hung up before answering; check its log or `keychain-auth status`, then dial again", ErrClosed, c.path)
		}
		return nil, fmt.Errorf("%w: reading the response from %s failed: %w", ErrClosed, c.path, err)
	}
	resp, err := protocol.DecodeResponse(line)
	if err != nil {
		return nil, fmt.Errorf("%w from %s: %w; the connection was closed", ErrProtocol, c.path, err)
	}
	if err := checkID(id, resp); err != nil {
		return nil, fmt.Errorf("%w from %s: %w; the connection was closed", ErrProtocol, c.path, err)
	}
	return resp, nil
}

// checkID keeps request and response in step. Only an error response may lack
// the id: the daemon could not parse one out of a request it rejected.
func checkID(want json.RawMessage, resp *protocol.Response) error {
	got := resp.ID
	if len(got) == 0 || string(got) == "null" {
		if resp.Status == protocol.StatusSuccess {
			return fmt.Errorf("a successful response carries no id (expected %s)", want)
		}
		return nil
	}
	var a, b bytes.Buffer
	if json.Compact(&a, want) != nil || json.Compact(&b, got) != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		return fmt.Errorf("response id %.40s does not match request id %s", got, want)
	}
	return nil
}

// contextError turns an I/O failure caused by ctx into ctx's error. The
// connection deadline can fire a moment before ctx notices its own, so a
// timeout past ctx's deadline counts as context.DeadlineExceeded.
func contextError(ctx context.Context, ioErr error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(ioErr, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// opError says which request a client-side failure belongs to.
func opError(req *protocol.Request, err error) error {
	if req.Service == "" {
		return fmt.Errorf("keychain-auth: %s: %w", req.Action, err)
	}
	return fmt.Errorf("keychain-auth: %s on service %q: %w", req.Action, req.Service, err)
}
