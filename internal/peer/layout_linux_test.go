package peer

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseLayout(t *testing.T) {
	t.Parallel()
	// Fields 3..52 of a real line, with distinct values where the layout is.
	fields := make([]string, 50)
	for i := range fields {
		fields[i] = "0"
	}
	set := map[int]string{28: "140730000000000", 48: "140730000001000", 49: "140730000001100", 50: "140730000001100", 51: "140730000002000"}
	for f, v := range set {
		fields[f-3] = v
	}
	tail := strings.Join(fields, " ") + "\n"
	want := execLayout{140730000000000, 140730000001000, 140730000001100, 140730000001100, 140730000002000}
	for _, comm := range []string{"(cat)", "(a b) c)", "())", "(x) 1 2 3)"} {
		got, err := parseLayout([]byte("1234 " + comm + " " + tail))
		if err != nil || got != want {
			t.Errorf("comm %s: parseLayout = %v, %v; want %v", comm, got, err, want)
		}
	}
	bad := map[string]string{
		"no command name":        "1234 cat " + tail,
		"too few fields":         "1234 (cat) S 1 2 3\n",
		"not a number":           "1234 (cat) " + strings.Replace(tail, "140730000001000", "14073x", 1),
		"hidden (all zero)":      "1234 (cat) " + strings.Repeat("0 ", 50) + "\n",
		"empty":                  "",
		"command name only":      "1234 (cat)",
		"negative where a count": "1234 (cat) " + strings.Replace(tail, "140730000000000", "-1", 1),
	}
	for name, line := range bad {
		if l, err := parseLayout([]byte(line)); err == nil {
			t.Errorf("%s: parseLayout accepted %q as %v", name, line, l)
		}
	}
}

// The layout of a running process reads the same every time (that an exec
// changes it is shown by the e2e attack test with real processes).
func TestLayoutOfSelfIsStable(t *testing.T) {
	t.Parallel()
	read := func(path string) execLayout {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := parseLayout(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return l
	}
	a, b := read("/proc/self/stat"), read("/proc/self/stat")
	if a != b {
		t.Errorf("layout of one process changed between two reads: %v, %v", a, b)
	}
}

func FuzzParseLayout(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("1 (x) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseLayout(b) // must not panic or loop
	})
}

// BenchmarkExeced is the per-read exec check: a pread of the pinned
// /proc/<pid>/maps and of /proc/<pid>/stat, and the layout comparison.
func BenchmarkExeced(b *testing.B) {
	p, err := newPeer(&unix.Ucred{Pid: int32(os.Getpid())}, -1, unix.ENOPROTOOPT)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.PinExec(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if execed, err := p.Execed(); execed || err != nil {
			b.Fatal(execed, err)
		}
	}
}
