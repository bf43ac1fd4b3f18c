package protocol

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll drains r, copying each line because Next may reuse its buffer.
func readAll(t *testing.T, r *Reader) ([]string, error) {
	t.Helper()
	var lines []string
	for {
		line, err := r.Next()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

func TestReaderSplitsLines(t *testing.T) {
	t.Parallel()
	input := "first\n\nthird\r\n" + strings.Repeat("L", 10000) + "\nlast without newline"
	want := []string{"first", "", "third\r", strings.Repeat("L", 10000), "last without newline"}
	sources := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(input) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(input)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(input)) },
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := NewReader(src())
			got, err := readAll(t, r)
			if err != io.EOF {
				t.Fatalf("ended with %v, want io.EOF", err)
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("lines = %q, want %q", got, want)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after EOF = %v, want io.EOF again", err)
			}
		})
	}
}

func TestReaderFinalNewlineMakesNoExtraLine(t *testing.T) {
	t.Parallel()
	got, err := readAll(t, NewReader(strings.NewReader("a\nb\n")))
	if err != io.EOF || strings.Join(got, "|") != "a|b" {
		t.Errorf("lines = %q, err = %v; want [a b], io.EOF", got, err)
	}
	got, err = readAll(t, NewReader(strings.NewReader("")))
	if err != io.EOF || len(got) != 0 {
		t.Errorf("empty stream: lines = %q, err = %v; want none, io.EOF", got, err)
	}
}

func TestReaderLineCap(t *testing.T) {
	t.Parallel()
	full := strings.Repeat("x", MaxLineSize)
	tests := []struct {
		name    string
		input   string
		wantLen int // length of the first line, or -1 for ErrLineTooLong
	}{
		{"exactly MaxLineSize", full + "\nnext\n", MaxLineSize},
		{"exactly MaxLineSize at EOF", full, MaxLineSize},
		{"MaxLineSize+1", full + "x\nnext\n", -1},
		{"MaxLineSize+1 at EOF", full + "x", -1},
		{"far too long, no newline", full + full, -1},
	}
	for _, tc := range tests {
		for _, slow := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var src io.Reader = strings.NewReader(tc.input)
				if slow {
					src = iotest.HalfReader(src)
				}
				r := NewReader(src)
				line, err := r.Next()
				if tc.wantLen < 0 {
					if !errors.Is(err, ErrLineTooLong) {
						t.Fatalf("Next = %d bytes, %v; want ErrLineTooLong", len(line), err)
					}
					if _, again := r.Next(); !errors.Is(again, ErrLineTooLong) {
						t.Errorf("Next after ErrLineTooLong = %v; the reader must stay failed", again)
					}
					return
				}
				if err != nil || len(line) != tc.wantLen {
					t.Fatalf("Next = %d bytes, %v; want %d bytes", len(line), err, tc.wantLen)
				}
			})
		}
	}
}

func TestReaderLimit(t *testing.T) {
	t.Parallel()
	r := NewReaderLimit(strings.NewReader("12345\n123456\n"), 5)
	if line, err := r.Next(); err != nil || string(line) != "12345" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("second line err = %v, want ErrLineTooLong", err)
	}
	// Without a limit a response of any size gets through.
	big := strings.Repeat("r", 3*MaxLineSize)
	line, err := NewReaderLimit(strings.NewReader(big+"\n"), 0).Next()
	if err != nil || len(line) != len(big) {
		t.Fatalf("unlimited reader: %d bytes, %v", len(line), err)
	}
}

func TestReaderLongLineThenShort(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 200<<10)
	r := NewReader(strings.NewReader(long + "\nshort\n"))
	first, err := r.Next()
	if err != nil || string(first) != long {
		t.Fatalf("long line: %d bytes, %v", len(first), err)
	}
	second, err := r.Next()
	if err != nil || string(second) != "short" {
		t.Fatalf("short line: %q, %v", second, err)
	}
}

func TestReaderDoesNotReturnPartialLineOnError(t *testing.T) {
	t.Parallel()
	boom := errors.New("deadline exceeded")
	src := io.MultiReader(strings.NewReader("whole\nhalf a li"), iotest.ErrReader(boom))
	r := NewReader(src)
	if line, err := r.Next(); err != nil || string(line) != "whole" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	if line, err := r.Next(); !errors.Is(err, boom) || line != nil {
		t.Fatalf("Next = %q, %v; want nil and the read error", line, err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next after error = %v, want the same error", err)
	}
}

func TestReaderOnLineStart(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader("a\nb\n\nc"))
	starts := 0
	r.OnLineStart(func() { starts++ })
	got, err := readAll(t, r)
	if err != io.EOF || len(got) != 4 {
		t.Fatalf("lines = %q, %v", got, err)
	}
	if starts != 4 {
		t.Errorf("OnLineStart ran %d times for 4 lines", starts)
	}
}

// A daemon holds a Reader per connection, up to 256 per uid: an idle one
// must not cost a full line buffer.
func TestReaderStartsSmall(t *testing.T) {
	const n = 100
	readers := make([]*Reader, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range readers {
		readers[i] = NewReader(strings.NewReader(""))
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
		t.Errorf("NewReader allocates %d bytes up front; want well under MaxLineSize", per)
	}
	runtime.KeepAlive(readers)
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(2), uint8(0))
	f.Add([]byte("0123456789\n"), uint8(10), uint8(1))
	f.Add([]byte("0123456789\n"), uint8(9), uint8(2))
	f.Add([]byte("\n\n\r\n"), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, limit, mode uint8) {
		var src io.Reader = bytes.NewReader(data)
		switch mode % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		want := bytes.Split(data, []byte("\n"))
		if len(data) == 0 || data[len(data)-1] == '\n' {
			want = want[:len(want)-1]
		}
		lim := int(limit) + 1
		r := NewReaderLimit(src, lim)
		for i := 0; ; i++ {
			line, err := r.Next()
			if errors.Is(err, ErrLineTooLong) {
				if i >= len(want) || len(want[i]) <= lim {
					t.Fatalf("ErrLineTooLong at line %d, but it is within the limit %d", i, lim)
				}
				return
			}
			if err == io.EOF {
				if i != len(want) {
					t.Fatalf("EOF after %d lines, want %d", i, len(want))
				}
				return
			}
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if i >= len(want) || !bytes.Equal(line, want[i]) {
				t.Fatalf("line %d = %q, want %q", i, line, want)
			}
			if len(line) > lim {
				t.Fatalf("line %d is %d bytes, over the limit %d", i, len(line), lim)
			}
		}
	})
}
