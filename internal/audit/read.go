package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Files lists the log's files that exist, oldest first: path.N .. path.1,
// then path itself.
func Files(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gens []int
	live := false
	for _, e := range ents {
		name := e.Name()
		if name == base {
			live = true
			continue
		}
		rest, ok := strings.CutPrefix(name, base+".")
		if !ok || rest == "" || strings.TrimLeft(rest, "0123456789") != "" || rest[0] == '0' {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil {
			gens = append(gens, n)
		}
	}
	slices.Sort(gens)
	out := make([]string, 0, len(gens)+1)
	for i := len(gens) - 1; i >= 0; i-- {
		out = append(out, path+"."+strconv.Itoa(gens[i]))
	}
	if live {
		out = append(out, path)
	}
	return out, nil
}

// Entry is a record read back, with where it is stored.
type Entry struct {
	Record Record
	// Raw is the line as stored, without its newline.
	Raw  []byte
	File string
	Line int
	// Err is set when the line could not be parsed; Record is then zero.
	// Reading does not check hashes: Verify does.
	Err error
}

func entryOf(line []byte, name string, n int) Entry {
	e := Entry{Raw: slices.Clone(line), File: name, Line: n}
	e.Err = json.Unmarshal(e.Raw, &e.Record)
	return e
}

// lineReader reads complete lines from a file that may still be growing:
// an incomplete last line is kept until its newline arrives.
type lineReader struct {
	f       *os.File
	r       *bufio.Reader
	name    string
	n       int // complete lines read
	partial []byte
}

func openLines(name string) (*lineReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &lineReader{f: f, r: bufio.NewReaderSize(f, 64<<10), name: name}, nil
}

// next returns the next complete line (valid until the following call), or
// ok false at the current end of the file.
func (lr *lineReader) next() (line []byte, ok bool, err error) {
	for {
		chunk, err := lr.r.ReadSlice('\n')
		switch {
		case err == nil:
			lr.n++
			chunk = chunk[:len(chunk)-1]
			if len(lr.partial) > 0 {
				line, lr.partial = append(lr.partial, chunk...), nil
				return line, true, nil
			}
			return chunk, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.partial = append(lr.partial, chunk...)
		case errors.Is(err, io.EOF):
			lr.partial = append(lr.partial, chunk...)
			return nil, false, nil
		default:
			return nil, false, err
		}
	}
}

func (lr *lineReader) close() { lr.f.Close() }

// scanFile calls fn for each line of the file; a last line without a
// newline is passed with complete false.
func scanFile(name string, fn func(line []byte, n int, complete bool) error) error {
	lr, err := openLines(name)
	if err != nil {
		return err
	}
	defer lr.close()
	for {
		line, ok, err := lr.next()
		if err != nil {
			return err
		}
		if !ok {
			if len(lr.partial) > 0 {
				return fn(lr.partial, lr.n+1, false)
			}
			return nil
		}
		if err := fn(line, lr.n, true); err != nil {
			return err
		}
	}
}

// Read calls fn for every complete record across the rotated files, oldest
// first, stopping at the first error fn returns. A line being written at
// that moment is not returned.
func Read(path string, fn func(Entry) error) error {
	files, err := Files(path)
	if err != nil {
		return err
	}
	for _, name := range files {
		err := scanFile(name, func(line []byte, n int, complete bool) error {
			if !complete {
				return nil
			}
			return fn(entryOf(line, name, n))
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // rotated away meanwhile
			return err
		}
	}
	return nil
}

// Follow calls fn for every record, like Read, then keeps polling for new
// ones every poll until ctx is done, when it returns nil. It follows
// rotation: when the live file is renamed, it finishes the old file, then
// goes on with the files after it.
func Follow(ctx context.Context, path string, poll time.Duration, fn func(Entry) error) error {
	fw := &follower{path: path, fn: fn}
	defer fw.closeCur()
	// Start counting at the oldest record, so that a file missed while
	// files are being renamed shows as a gap to fill (see emit).
	if files, err := Files(path); err == nil && len(files) > 0 {
		if seq, ok := firstSeq(files[0]); ok {
			fw.lastSeq, fw.counting = seq-1, true
		}
	}
	if err := fw.catchUp(nil); err != nil {
		return err
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := fw.poll(); err != nil {
			return err
		}
	}
}

type follower struct {
	path  string
	fn    func(Entry) error
	cur   *lineReader // the live file, once open
	curFI fs.FileInfo
	// lastSeq is the seq of the last record passed on; counting says it
	// is known, so that a jump past lastSeq+1 can be recognised.
	lastSeq  uint64
	counting bool
	filling  bool
}

func (fw *follower) closeCur() {
	if fw.cur != nil {
		fw.cur.close()
		fw.cur = nil
	}
}

// emit passes on a record unless it was already passed on: a file may be
// read again from its start when the follower lost its place.
//
// Files are found by name, and names shift by one at every rotation, so a
// follower racing the writer can skip a file. When a record's seq jumps,
// the missing ones are looked for in the rotated files first; what cannot
// be found any more (rotated away) is skipped.
func (fw *follower) emit(line []byte, name string, n int) error {
	e := entryOf(line, name, n)
	if e.Err == nil {
		seq := e.Record.Seq
		if fw.counting && seq <= fw.lastSeq {
			return nil
		}
		if fw.counting && seq > fw.lastSeq+1 && !fw.filling {
			if err := fw.fillGap(seq); err != nil {
				return err
			}
		}
		fw.lastSeq, fw.counting = seq, true
	}
	return fw.fn(e)
}

// fillGap passes on the records after lastSeq and before upTo that the
// rotated files still hold, oldest first.
func (fw *follower) fillGap(upTo uint64) error {
	fw.filling = true
	defer func() { fw.filling = false }()
	for range 3 { // names may shift under us again; look again
		files, err := Files(fw.path)
		if err != nil {
			return err
		}
		for _, name := range files {
			if name == fw.path {
				break
			}
			err := scanFile(name, func(line []byte, n int, complete bool) error {
				if !complete {
					return nil
				}
				var r struct{ Seq uint64 }
				if json.Unmarshal(line, &r) != nil || r.Seq <= fw.lastSeq || r.Seq >= upTo {
					return nil
				}
				return fw.emit(line, name, n)
			})
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if fw.lastSeq+1 >= upTo {
			return nil
		}
	}
	return nil
}

// firstSeq is the seq of the first record in the file, if it can be read.
func firstSeq(name string) (uint64, bool) {
	lr, err := openLines(name)
	if err != nil {
		return 0, false
	}
	defer lr.close()
	line, ok, err := lr.next()
	if err != nil || !ok {
		return 0, false
	}
	var r struct{ Seq uint64 }
	if json.Unmarshal(line, &r) != nil || r.Seq == 0 {
		return 0, false
	}
	return r.Seq, true
}

// drain passes on the complete lines of the live file written so far.
func (fw *follower) drain() error {
	for {
		line, ok, err := fw.cur.next()
		if err != nil || !ok {
			return err
		}
		if err := fw.emit(line, fw.cur.name, fw.cur.n); err != nil {
			return err
		}
	}
}

// catchUp opens the live file first, then reads the rotated files that
// come after done (all of them when done is nil) up to the live one, then
// the live one. Opening the live file before listing means a rotation in
// between cannot make a file slip past unread: it shows up in the listing,
// and anything newer is found by the next poll.
func (fw *follower) catchUp(done fs.FileInfo) error {
	lr, err := openLines(fw.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // between rename and create; look again next time
	}
	if err != nil {
		return err
	}
	fi, err := lr.f.Stat()
	if err != nil {
		lr.close()
		return err
	}
	files, err := Files(fw.path)
	if err != nil {
		lr.close()
		return err
	}
	start := 0
	if done != nil {
		for i, name := range files {
			if st, err := os.Stat(name); err == nil && os.SameFile(st, done) {
				start = i + 1
				break
			}
		}
	}
	for _, name := range files[start:] {
		if name == fw.path {
			break // it may be newer than lr by now; the next poll sees to it
		}
		if st, err := os.Stat(name); err == nil && os.SameFile(st, fi) {
			break
		}
		err := scanFile(name, func(line []byte, n int, complete bool) error {
			if !complete {
				return nil
			}
			return fw.emit(line, name, n)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			lr.close()
			return err
		}
	}
	fw.cur, fw.curFI = lr, fi
	return fw.drain()
}

func (fw *follower) poll() error {
	if fw.cur == nil {
		return fw.catchUp(nil)
	}
	if err := fw.drain(); err != nil {
		return err
	}
	now, err := os.Stat(fw.path)
	if err != nil || os.SameFile(fw.curFI, now) {
		return nil // unchanged, or mid-rotation: look again next time
	}
	// Rotated: the daemon finished the old file before renaming it.
	if err := fw.drain(); err != nil {
		return err
	}
	old := fw.curFI
	fw.closeCur()
	return fw.catchUp(old)
}
