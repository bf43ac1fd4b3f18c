package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/The-17/keychain-auth/internal/fsx"
)

// TailStatus is the outcome of comparing the log's last record with the one
// the previous daemon recorded.
type TailStatus string

const (
	// TailNew: no log and no state yet; a first start.
	TailNew TailStatus = "new"
	// TailOK: the log ends with the record the previous daemon wrote last.
	TailOK TailStatus = "ok"
	// TailUncleanStop: the previous daemon did not stop cleanly; the log
	// holds at least the records it had when it started, but records of
	// its last moments (up to one sync interval) may be lost.
	TailUncleanStop TailStatus = "unclean_stop"
	// TailNoState: there is a log but no state file, so its tail cannot be
	// checked (the state file was deleted, or the log came from elsewhere).
	TailNoState TailStatus = "no_state"
	// TailMismatch: the log does not end where the previous daemon left it:
	// records were removed, edited or appended while no daemon was running.
	TailMismatch TailStatus = "mismatch"
)

// TailCheck is what Open found at the end of the existing log.
type TailCheck struct {
	Status TailStatus
	// Detail explains any status other than new and ok, in words.
	Detail string
}

// state is audit.state: the chain's end as the daemon last knew it.
type state struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	// Stopped is true when written by Close, false while a daemon runs.
	Stopped bool   `json:"stopped"`
	Time    string `json:"time"`
}

func (l *Log) writeState(stopped bool) error {
	b, err := json.Marshal(state{Seq: l.seq, Hash: l.last, Stopped: stopped,
		Time: l.opts.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	if err := fsx.WriteFile(l.statePath, append(b, '\n'), fsx.FileMode); err != nil {
		return fmt.Errorf("record the audit log's last hash: %w", err)
	}
	return nil
}

func readState(path string) (st state, exists bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, true, fmt.Errorf("%s: %w", path, err)
	}
	return st, true, nil
}

// inspect finds the chain's end, removes an incomplete last line of the live
// file and compares the end with the state file. Called by Open only.
func (l *Log) inspect() error {
	st, haveState, stErr := readState(l.statePath)
	var notes []string
	if stErr != nil {
		notes = append(notes, fmt.Sprintf("the state file is unreadable (%v)", stErr))
	}
	files, err := Files(l.path)
	if err != nil {
		return err
	}
	var (
		last     *Record
		lastFile string
		badLast  string
		partial  int64
	)
	for i := len(files) - 1; i >= 0 && last == nil && badLast == ""; i-- {
		name := files[i]
		line, end, size, err := lastLine(name)
		if err != nil {
			return err
		}
		if name == l.path && end < size {
			// Only a failed write or a crash leaves this; it never was a
			// record anyone was answered on.
			if err := l.f.Truncate(end); err != nil {
				return fmt.Errorf("remove incomplete last line: %w", err)
			}
			partial = size - end
			notes = append(notes, fmt.Sprintf("an incomplete last line of %d bytes was removed", partial))
		}
		if line == nil {
			continue
		}
		lastFile = name
		rec, prob := checkLine(line)
		if prob != "" {
			badLast = prob
			if rec != nil {
				last = rec
			}
			break
		}
		last = rec
	}

	status := TailOK
	switch {
	case stErr != nil:
		status = TailMismatch
	case !haveState && last == nil && badLast == "":
		status = TailNew
	case !haveState:
		status = TailNoState
		notes = append(notes, "the state file "+l.statePath+" is missing, so the log's tail cannot be checked")
	case last == nil && badLast == "":
		status = TailMismatch
		notes = append(notes, fmt.Sprintf("the log is gone: the previous daemon ended at seq %d", st.Seq))
	case badLast != "":
		status = TailMismatch
	case st.Stopped && (last.Seq != st.Seq || last.Hash != st.Hash):
		status = TailMismatch
		notes = append(notes, fmt.Sprintf("the previous daemon stopped at seq %d (hash %.16s), but the log ends at seq %d (hash %.16s)",
			st.Seq, st.Hash, last.Seq, last.Hash))
	case !st.Stopped && last.Seq < st.Seq:
		status = TailMismatch
		notes = append(notes, fmt.Sprintf("the previous daemon started after seq %d, but the log ends at seq %d", st.Seq, last.Seq))
	case !st.Stopped:
		status = TailUncleanStop
		notes = append(notes, "the previous daemon did not stop cleanly; its last records may be lost")
	case partial > 0:
		status = TailMismatch
		notes = append(notes, "data was appended after the previous daemon stopped")
	}
	if badLast != "" {
		notes = append(notes, fmt.Sprintf("the last record in %s does not verify: %s", lastFile, badLast))
	}

	// Chain on from what the daemon itself last wrote when it knows better
	// than the file: after a truncation the next record then shows a gap
	// or a broken link that Verify reports, not a seamless chain.
	switch {
	case haveState && stErr == nil && (st.Stopped || last == nil || last.Seq < st.Seq):
		l.seq, l.last = st.Seq, st.Hash
	case last != nil:
		l.seq, l.last = last.Seq, last.Hash
	}
	l.tail = TailCheck{Status: status, Detail: strings.Join(notes, "; ")}
	if status == TailMismatch || status == TailNoState {
		l.log.Warn("audit log tail check failed: the log may have been altered while the daemon was not running",
			"file", l.path, "detail", l.tail.Detail)
	}
	return nil
}

// lastLine returns the last complete line of the file (without its
// newline; nil if there is none), the offset just past it, where an
// incomplete line would start, and the file's size.
func lastLine(name string) (line []byte, end, size int64, err error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size = fi.Size()
	for w := int64(64 << 10); ; w *= 2 {
		off := max(0, size-w)
		data := make([]byte, size-off)
		if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, 0, err
		}
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			if off == 0 {
				return nil, 0, size, nil
			}
			continue
		}
		j := bytes.LastIndexByte(data[:i], '\n')
		if j < 0 && off > 0 {
			continue
		}
		return data[j+1 : i], off + int64(i) + 1, size, nil
	}
}

// trimIncomplete cuts off an incomplete last line of the file at name,
// open as f, and returns the new size and how many bytes went.
func trimIncomplete(name string, f file, size int64) (newSize, removed int64, err error) {
	if size == 0 {
		return 0, 0, nil
	}
	_, end, n, err := lastLine(name)
	if err != nil || end == n {
		return n, 0, err
	}
	if err := f.Truncate(end); err != nil {
		return 0, 0, err
	}
	return end, n - end, nil
}
