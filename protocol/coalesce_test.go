package protocol

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestHasLine(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr)
	go func() {
		pw.Write([]byte("{\"a\":1}\n{\"b\":2}\n{\"c\""))
	}()
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if !r.HasLine() {
		t.Error("HasLine = false with a whole second line buffered")
	}
	if l, err := r.Next(); err != nil || string(l) != `{"b":2}` {
		t.Fatalf("second line %q, %v", l, err)
	}
	if r.HasLine() {
		t.Error("HasLine = true with only part of a line buffered: a server would hold its reply and wait")
	}
	go pw.Write([]byte(":3}\n"))
	if l, err := r.Next(); err != nil || string(l) != `{"c":3}` {
		t.Fatalf("third line %q, %v", l, err)
	}
	pw.Close()
	if r.HasLine() {
		t.Error("HasLine = true at the end of the stream")
	}
}

func TestAppendResponseLeavesNoCopyBehind(t *testing.T) {
	secret := strings.Repeat("s3cr3t", 50)
	resp := Success(nil, []Result{{Target: "t", Value: &secret}})
	buf, err := AppendResponse(make([]byte, 0, 16), resp)
	if err != nil {
		t.Fatal(err)
	}
	old := buf
	buf, err = AppendResponse(buf, resp)
	if err != nil {
		t.Fatal(err)
	}
	if &old[:cap(old)][0] == &buf[:cap(buf)][0] {
		t.Fatal("the buffer did not grow; the test needs it to")
	}
	if bytes.Contains(old[:cap(old)], []byte("s3cr3t")) {
		t.Error("the outgrown buffer still holds the secret value")
	}
	lines := strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], secret) {
		t.Errorf("two replies, one line each; got %q", buf)
	}
}
