package peer

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// procargs2 builds kern.procargs2 bytes the way the macOS kernel lays them
// out: argc, exec path, NUL padding, argv, env, an empty string, apple strings.
func procargs2(argc int32, execPath string, pad int, argv, env, apple []string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(argc))
	b = append(b, execPath...)
	b = append(b, make([]byte, 1+pad)...)
	for _, s := range argv {
		b = append(append(b, s...), 0)
	}
	for _, s := range env {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	for _, s := range apple {
		b = append(append(b, s...), 0)
	}
	return b
}

func TestParseProcArgs(t *testing.T) {
	argv := []string{"/usr/local/bin/tool", "--flag", "a b"}
	env := []string{"HOME=/Users/me", "PATH=/usr/bin:/bin", "EMPTY="}
	apple := []string{"executable_path=/usr/local/bin/tool", "ptr_munge="}
	b := procargs2(3, "/usr/local/bin/tool", 5, argv, env, apple)
	pa, err := parseProcArgs(b)
	if err != nil {
		t.Fatal(err)
	}
	if pa.ExecPath != "/usr/local/bin/tool" {
		t.Errorf("ExecPath = %q", pa.ExecPath)
	}
	if !slices.Equal(pa.Argv, argv) {
		t.Errorf("Argv = %q, want %q", pa.Argv, argv)
	}
	if !slices.Equal(pa.Env, env) {
		t.Errorf("Env = %q, want %q (the apple strings after the empty one are not environment)", pa.Env, env)
	}
}

func TestParseProcArgsNoEnvironment(t *testing.T) {
	pa, err := parseProcArgs(procargs2(1, "/bin/x", 0, []string{"x"}, nil, []string{"executable_path=/bin/x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(pa.Env) != 0 {
		t.Errorf("Env = %q, want none", pa.Env)
	}
}

func TestParseProcArgsTruncatedEnvironmentKept(t *testing.T) {
	b := procargs2(1, "/bin/x", 0, []string{"x"}, []string{"A=1"}, nil)
	b = b[:len(b)-1] // drop the terminating empty string
	b = append(b, "DYLD_INSERT_LIBRARIES=/tmp/evil.dylib"...)
	pa, err := parseProcArgs(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "DYLD_INSERT_LIBRARIES=/tmp/evil.dylib"}
	if !slices.Equal(pa.Env, want) {
		t.Errorf("Env = %q, want %q: a cut-off last variable must still be seen", pa.Env, want)
	}
}

func TestParseProcArgsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"short argc":            {1, 0},
		"negative argc":         procargs2(-1, "/bin/x", 0, nil, nil, nil),
		"argc past the end":     procargs2(1000, "/bin/x", 0, []string{"x"}, nil, nil),
		"unterminated path":     append(binary.LittleEndian.AppendUint32(nil, 0), "/bin/x"...),
		"unterminated argument": append(binary.LittleEndian.AppendUint32(nil, 2), "/bin/x\x00x\x00y"...),
	} {
		if _, err := parseProcArgs(b); !errors.Is(err, errProcArgs) {
			t.Errorf("%s: err = %v, want errProcArgs", name, err)
		}
	}
}

func FuzzParseProcArgs(f *testing.F) {
	f.Add(procargs2(2, "/bin/x", 3, []string{"x", "y"}, []string{"A=1"}, []string{"k=v"}))
	f.Add(procargs2(0, "", 0, nil, nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pa, err := parseProcArgs(b)
		if err != nil {
			return
		}
		argc := int(int32(binary.LittleEndian.Uint32(b)))
		if len(pa.Argv) != argc {
			t.Fatalf("%d arguments parsed, argc says %d", len(pa.Argv), argc)
		}
		total := len(pa.ExecPath)
		for _, s := range append(pa.Argv, pa.Env...) {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("parsed string %q contains NUL", s)
			}
			total += len(s)
		}
		if total > len(b) {
			t.Fatalf("parsed %d bytes of strings out of %d bytes", total, len(b))
		}
	})
}

func TestDyldTampering(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string // substring of the reason; "" = not tampered
	}{
		{[]string{"HOME=/Users/me", "PATH=/usr/bin"}, ""},
		{[]string{"DYLD_INSERT_LIBRARIES=/tmp/evil.dylib"}, "DYLD_INSERT_LIBRARIES"},
		{[]string{"A=1", "DYLD_LIBRARY_PATH=/tmp/lib"}, "DYLD_LIBRARY_PATH"},
		{[]string{"DYLD_FRAMEWORK_PATH=/tmp/fw"}, "DYLD_FRAMEWORK_PATH"},
		{[]string{"DYLD_FALLBACK_LIBRARY_PATH=/tmp"}, "DYLD_FALLBACK_LIBRARY_PATH"},
		{[]string{"DYLD_IMAGE_SUFFIX=_debug"}, "DYLD_IMAGE_SUFFIX"},
		{[]string{"DYLD_INSERT_LIBRARIES="}, ""},
		{[]string{"DYLD_INSERT_LIBRARIES=: "}, ""},
		{[]string{"DYLD_PRINT_LIBRARIES=1"}, ""},
		{[]string{"LD_PRELOAD=/tmp/x.so"}, ""}, // ignored by dyld
		{[]string{"XDYLD_INSERT_LIBRARIES=/tmp/x"}, ""},
		{[]string{"DYLD_INSERT_LIBRARIES"}, ""}, // no '=': not a variable
	} {
		got := dyldTampering(c.env)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("dyldTampering(%q) = %q, want it to mention %q", c.env, got, c.want)
		}
	}
	long := "DYLD_INSERT_LIBRARIES=" + strings.Repeat("a", 10000)
	if got := dyldTampering([]string{long}); len(got) > 600 {
		t.Errorf("reason for a 10000-byte value is %d bytes; it must be cut short", len(got))
	}
}

func TestParseAuditToken(t *testing.T) {
	var b []byte
	for _, v := range []uint32{501, 502, 20, 503, 21, 4242, 100007, 77} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	tok, err := parseAuditToken(b)
	if err != nil {
		t.Fatal(err)
	}
	want := auditToken{AUID: 501, EUID: 502, EGID: 20, RUID: 503, RGID: 21, PID: 4242, ASID: 100007, PIDVersion: 77}
	if tok != want {
		t.Errorf("token = %+v, want %+v", tok, want)
	}
	if tokenFromWords(tok.words()) != tok {
		t.Error("words does not invert tokenFromWords")
	}
	if err := tok.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := parseAuditToken(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte audit token was accepted", n)
		}
	}
	for _, pid := range []int32{0, -1} {
		if err := (auditToken{PID: pid, PIDVersion: 1}).validate(); err == nil {
			t.Errorf("a token with pid %d was accepted", pid)
		}
	}
}

func TestPIDVersionFromUniqInfo(t *testing.T) {
	b := make([]byte, uniqIdentifierInfoSize)
	for i := range 32 {
		b[i] = 0xaa // uuid and unique ids must not leak into the version
	}
	binary.LittleEndian.PutUint32(b[32:], 123456)
	binary.LittleEndian.PutUint32(b[36:], 999) // p_orig_ppidversion on newer kernels
	v, err := pidVersionFromUniqInfo(b)
	if err != nil || v != 123456 {
		t.Errorf("pidVersionFromUniqInfo = %d, %v; want 123456", v, err)
	}
	if _, err := pidVersionFromUniqInfo(b[:40]); err == nil {
		t.Error("a short reply was accepted")
	}
}

func TestCwdFromVnodePathInfo(t *testing.T) {
	b := make([]byte, vnodePathInfoSize)
	for i := range vnodeInfoSize {
		b[i] = 0x2f // stat bytes before the path must not be read as path
	}
	copy(b[vnodeInfoSize:], "/Users/me/src")
	copy(b[2*vnodeInfoSize+maxPathLen:], "/")
	if got := cwdFromVnodePathInfo(b); got != "/Users/me/src" {
		t.Errorf("cwd = %q, want /Users/me/src", got)
	}
	if got := cwdFromVnodePathInfo(b[:100]); got != "" {
		t.Errorf("cwd from a short reply = %q, want empty", got)
	}
	if vnodePathInfoSize != 2352 {
		t.Errorf("sizeof(struct proc_vnodepathinfo) = %d, want 2352", vnodePathInfoSize)
	}
}

func TestCapArgs(t *testing.T) {
	argv := []string{"aaaa", "bbbb", "cccc"}
	if got := capArgs(argv, 10); !slices.Equal(got, argv[:2]) {
		t.Errorf("capArgs(10) = %q, want the first two (5 bytes each with NUL)", got)
	}
	if got := capArgs(argv, 15); !slices.Equal(got, argv) {
		t.Errorf("capArgs(15) = %q, want all", got)
	}
	if got := capArgs(argv, 3); len(got) != 0 {
		t.Errorf("capArgs(3) = %q, want none", got)
	}
}

func TestIsTraced(t *testing.T) {
	if !isTraced(0x00000800 | 0x4) {
		t.Error("P_TRACED set but not seen")
	}
	if isTraced(0x4 | 0x1000) {
		t.Error("P_TRACED clear but reported")
	}
}

func TestParseTeamID(t *testing.T) {
	blob := func(id string, extra int) []byte {
		b := make([]byte, 8, 8+len(id)+1+extra)
		binary.BigEndian.PutUint32(b[4:], uint32(8+len(id)+1))
		b = append(b, id...)
		b = append(b, 0)
		return append(b, make([]byte, extra)...)
	}
	if id, err := parseTeamID(blob("ABCDE12345", 20)); err != nil || id != "ABCDE12345" {
		t.Errorf("parseTeamID = %q, %v", id, err)
	}
	bad := map[string][]byte{
		"short header":        {0, 0, 0},
		"length past buffer":  append([]byte{0, 0, 0, 0, 0, 0, 0, 200}, "ABC\x00"...),
		"empty":               blob("", 0),
		"control character":   blob("AB\x1bC", 0),
		"non-ASCII":           blob("ÄBC", 0),
		"over the length cap": blob(strings.Repeat("A", maxTeamID+1), 0),
		"length below header": {0, 0, 0, 0, 0, 0, 0, 4, 'A', 0},
	}
	for name, b := range bad {
		if id, err := parseTeamID(b); err == nil {
			t.Errorf("%s: parseTeamID accepted %q", name, id)
		}
	}
}
