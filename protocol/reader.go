package protocol

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
)

const (
	// readBufSize is what a Reader holds for an idle connection; longer
	// lines are assembled in a buffer that grows only as data arrives, so
	// 256 quiet connections cost 1 MiB, not 256 MiB.
	readBufSize = 4 << 10
	// A line buffer that grew past keepBufSize is dropped before the next
	// line, so one large batch does not pin memory for the connection's life.
	keepBufSize = 64 << 10
)

// Reader splits a byte stream into newline-delimited lines and enforces a
// length limit on each. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	limit   int
	line    []byte
	err     error
	onStart func()
}

// NewReader returns a Reader for request lines, limited to MaxLineSize.
func NewReader(r io.Reader) *Reader { return NewReaderLimit(r, MaxLineSize) }

// NewReaderLimit returns a Reader whose lines may be up to limit bytes long,
// or of any length if limit <= 0. Clients reading responses need it: a
// response carries whole values and is not bound by MaxLineSize (a prefix read
// of a large service can exceed it), so pick a limit that suits your data.
func NewReaderLimit(r io.Reader, limit int) *Reader {
	if limit <= 0 {
		limit = math.MaxInt
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufSize), limit: limit}
}

// OnLineStart sets f to be called in Next once the first byte of a line is
// available and before the rest is read. The daemon uses it to switch from the
// idle timeout to the shorter deadline for finishing a started line.
func (r *Reader) OnLineStart(f func()) { r.onStart = f }

// HasLine reports whether a whole line is already buffered, so that Next
// will return it without reading from the stream. A server uses it to hold
// its replies while the client's pipelined requests keep coming, and write
// them together once it would have to wait.
func (r *Reader) HasLine() bool {
	if r.err != nil {
		return false
	}
	n := r.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// Next returns the next line without its '\n'. A '\r' before the newline is
// kept (it is JSON whitespace, so DecodeRequest accepts it); empty lines are
// returned too, as empty slices, and are for the caller to reject. A last
// line that ends at EOF without a newline is still returned, and the call
// after it returns io.EOF.
//
// The returned slice is only valid until the next call to Next, which may
// overwrite it.
//
// A line longer than the limit yields an error matching ErrLineTooLong, at
// most a few KiB after the limit is passed rather than at the newline. After
// any error, including io.EOF, every later call returns the same error: the
// rest of the stream can no longer be split reliably.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if cap(r.line) > keepBufSize {
		r.line = nil
	}
	r.line = r.line[:0]
	if r.onStart != nil {
		if _, err := r.br.Peek(1); err != nil {
			r.err = err
			return nil, err
		}
		r.onStart()
	}
	for {
		frag, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			frag = frag[:len(frag)-1]
			if len(r.line) == 0 {
				// The whole line sits in bufio's buffer: hand it out
				// without a copy.
				if len(frag) > r.limit {
					return nil, r.tooLong()
				}
				return frag, nil
			}
			r.line = append(r.line, frag...)
			if len(r.line) > r.limit {
				return nil, r.tooLong()
			}
			return r.line, nil
		case err == bufio.ErrBufferFull:
			r.line = append(r.line, frag...)
			if len(r.line) > r.limit {
				return nil, r.tooLong()
			}
		case err == io.EOF && len(frag)+len(r.line) > 0:
			r.line = append(r.line, frag...)
			r.err = io.EOF
			if len(r.line) > r.limit {
				return nil, r.tooLong()
			}
			return r.line, nil
		default:
			// A failure mid-line (a deadline, a reset) loses the bytes
			// already consumed, so a partial line is never returned.
			r.err = err
			return nil, err
		}
	}
}

func (r *Reader) tooLong() error {
	r.line = nil
	r.err = fmt.Errorf("%w: more than %d bytes before the newline", ErrLineTooLong, r.limit)
	return r.err
}
